"""Loading latent datasets: an audio `DatasetDict` encoded once by a CAM autoencoder (`encode.py`), as the
model trains on it.

A latent dataset is a folder holding the `DatasetDict` (`save_to_disk`), the fitted codec in `autoencoder/`
(`save_pretrained`), the options of its encoding in `encode_options.json` and, written last,
`encode_summary.json`: an encoding is finished once that file exists.
"""

from __future__ import annotations

import json
import os

from datasets import DatasetDict

from ..autoencoders import AudioAutoencoderMixin
from ..autoencoders.loading import AUTOENCODERS
from .summary import ENCODE_SUMMARY_FILE

OPTIONS_FILE = "encode_options.json"
SUMMARY_FILE = ENCODE_SUMMARY_FILE
AUTOENCODER_DIR = "autoencoder"


def is_latent_dataset(path: str) -> bool:
    """Whether `path` holds a finished latent dataset (as written by `encode_audio_dataset`)."""
    return os.path.isfile(os.path.join(path, SUMMARY_FILE)) and os.path.isdir(
        os.path.join(path, AUTOENCODER_DIR)
    )


def load_latent_dataset(path: str) -> tuple[DatasetDict, AudioAutoencoderMixin]:
    """
    Load a latent dataset written by `encode_audio_dataset`, with the autoencoder it was encoded with.

    Args:
        path (`str`): the `output_dir` of `encode_audio_dataset`.

    Returns:
        `tuple`: the `datasets.DatasetDict` (memory-mapped) and the fitted autoencoder (`from_pretrained`,
            eval mode).
    """
    if not is_latent_dataset(path):
        unfinished = os.path.isfile(os.path.join(path, OPTIONS_FILE))
        raise ValueError(
            f"{path!r} is not a finished latent dataset"
            + (
                ": its encoding was interrupted; run examples/encode_dataset.py with the same options to "
                "resume it."
                if unfinished
                else ": make one with `python examples/encode_dataset.py --dataset_dir AUDIO --output_dir "
                "DIR`."
            )
        )
    with open(os.path.join(path, AUTOENCODER_DIR, "config.json")) as f:
        class_name = json.load(f).get("_class_name")
    classes = {cls.__name__: cls for cls in AUTOENCODERS.values()}
    if class_name not in classes:
        raise ValueError(
            f"{path!r} was encoded with {class_name!r}, not one of {sorted(classes)}: load it with its own "
            "class."
        )
    autoencoder = classes[class_name].from_pretrained(os.path.join(path, AUTOENCODER_DIR)).eval()
    return DatasetDict.load_from_disk(path), autoencoder


def load_or_encode_latent_dataset(
    dataset_dir: str,
    cache_dir: str | None = None,
    autoencoder: str | AudioAutoencoderMixin = "mel",
    autoencoder_path: str | None = None,
) -> tuple[DatasetDict, AudioAutoencoderMixin, str]:
    r"""
    A latent dataset to train on: `dataset_dir` itself when it is one, else the audio dataset `dataset_dir`
    encoded into `cache_dir` (once: a finished encoding is reused, an interrupted one resumed).

    Args:
        dataset_dir (`str`): a latent dataset, or an audio `DatasetDict` saved with `save_to_disk`.
        cache_dir (`str`, *optional*): where an audio dataset is encoded to; needed for one.
        autoencoder (`str` or `AudioAutoencoderMixin`, defaults to `"mel"`): the codec that encodes an audio
            dataset (a name for `load_autoencoder`, or a codec, e.g. a pipeline's).
        autoencoder_path (`str`, *optional*): the weights of a codec given by name.

    Returns:
        `tuple`: the latent `DatasetDict`, its autoencoder, and the folder they were loaded from.
    """
    # Imported here: the encoder writes the layout this module defines, so it imports this module.
    from .encode import encode_audio_dataset

    if not os.path.isdir(dataset_dir):
        raise ValueError(
            f"dataset_dir {dataset_dir!r} is not a folder: pass a dataset saved by examples/make_dataset.py "
            "or examples/encode_dataset.py."
        )
    path = dataset_dir
    if not is_latent_dataset(dataset_dir):
        if cache_dir is None:
            raise ValueError(f"{dataset_dir!r} is an audio dataset: pass a cache_dir to encode it into.")
        encode_audio_dataset(
            dataset_dir, cache_dir, autoencoder=autoencoder, autoencoder_path=autoencoder_path
        )
        path = cache_dir
    dataset, codec = load_latent_dataset(path)
    return dataset, codec, path
