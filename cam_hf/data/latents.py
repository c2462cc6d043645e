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
