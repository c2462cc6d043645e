"""The CAM autoencoders by name: building one with its weights (`load_autoencoder`), and checking that a
latent dataset's codec is a pipeline's own (`check_same_autoencoder`).

Imports every autoencoder's module, so it is imported only on first use of these names (see `__init__.py`).
"""

from __future__ import annotations

import json
import math
import os

import torch

from .base import AudioAutoencoderMixin
from .encodec import EncodecAutoencoder
from .mel import MelAutoencoder
from .music2latent import Music2LatentAutoencoder
from .oobleck import OobleckAutoencoder

# The autoencoders `load_autoencoder` builds by name, and where their pretrained weights come from by default.
AUTOENCODERS = {
    "mel": MelAutoencoder,
    "music2latent": Music2LatentAutoencoder,
    "oobleck": OobleckAutoencoder,
    "encodec": EncodecAutoencoder,
}
DEFAULT_WEIGHTS = {
    "music2latent": "SonyCSLParis/music2latent",
    "oobleck": "stabilityai/stable-audio-open-1.0",
    "encodec": "facebook/encodec_24khz",
}


def _saved_by_cam_hf(path: str | None, cls: type) -> bool:
    """Whether `path` is a folder that `cls.save_pretrained` wrote: a fitted codec, such as the `autoencoder`
    folder of a pipeline."""
    config = os.path.join(path or "", "config.json")
    if path is None or not os.path.isfile(config):
        return False
    with open(config) as f:
        return json.load(f).get("_class_name") == cls.__name__


def load_autoencoder(name: str, path: str | None = None) -> AudioAutoencoderMixin:
    """
    Build one of the CAM autoencoders by name.

    Args:
        name (`str`): `"mel"` (weight-free, the default codec), `"music2latent"`, `"oobleck"` or `"encodec"`.
        path (`str`, *optional*): a folder written by the autoencoder's `save_pretrained` (a fitted codec,
            e.g. a trained pipeline's `autoencoder` subfolder: its statistics are kept), or pretrained weights
            in their own format: `music2latent.pt` (or its folder), a Stable Audio folder with a `vae`
            subfolder or an `AutoencoderOobleck` folder, an `EncodecModel` folder; a Hub id works when online.
            Default: the released weights' Hub id (`DEFAULT_WEIGHTS`); none for the mel codec.

    Returns:
        `AudioAutoencoderMixin`: the autoencoder, on CPU, in eval mode.
    """
    if name not in AUTOENCODERS:
        raise ValueError(f"autoencoder must be one of {sorted(AUTOENCODERS)}, got {name!r}.")
    cls = AUTOENCODERS[name]
    if _saved_by_cam_hf(path, cls):
        model = cls.from_pretrained(path)
    elif name == "mel":
        if path is not None:
            raise ValueError(
                f"autoencoder_path {path!r} is not a folder saved by MelAutoencoder.save_pretrained (its "
                "config.json names another class or is missing): pass a fitted mel codec's folder, or no "
                "path for a new one."
            )
        model = MelAutoencoder()
    elif name == "music2latent":
        model = Music2LatentAutoencoder.from_music2latent_checkpoint(path or DEFAULT_WEIGHTS[name])
    elif name == "oobleck":
        path = path or DEFAULT_WEIGHTS[name]
        local_without_vae = os.path.isdir(path) and not os.path.isdir(os.path.join(path, "vae"))
        model = OobleckAutoencoder.from_vae(path, subfolder=None if local_without_vae else "vae")
    else:
        model = EncodecAutoencoder.from_encodec(path or DEFAULT_WEIGHTS[name])
    return model.eval()


# Statistics fitted on the same audio by another CPU differ in the last digits (the mel codec's PCA by ~3e-5
# between an AVX2 and an AVX-512 machine): far below what storing latents in float16 rounds (relative 5e-4).
SAME_CODEC_RTOL, SAME_CODEC_ATOL = 1e-3, 1e-4


def _same_value(value, other) -> bool:
    """Equal, with numbers, lists of numbers and tensors compared within `SAME_CODEC_RTOL`/`_ATOL`."""
    if isinstance(value, torch.Tensor) and isinstance(other, torch.Tensor):
        value, other = value.cpu().double(), other.cpu().double()
        return value.shape == other.shape and torch.allclose(value, other, SAME_CODEC_RTOL, SAME_CODEC_ATOL)
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(other, numbers) and not isinstance(value, bool):
        return math.isclose(value, other, rel_tol=SAME_CODEC_RTOL, abs_tol=SAME_CODEC_ATOL)
    if isinstance(value, list | tuple) and isinstance(other, list | tuple):
        return len(value) == len(other) and all(map(_same_value, value, other))
    return value == other


def check_same_autoencoder(
    dataset_autoencoder: AudioAutoencoderMixin,
    pipeline_autoencoder: AudioAutoencoderMixin,
    dataset_path: str,
    pipeline_path: str,
) -> None:
    r"""
    Raises `ValueError` unless a latent dataset was encoded by a pipeline's own autoencoder (same class,
    config and weights or statistics, numbers within a relative 1e-3): latents of another codec mean
    nothing to that pipeline's model. Settings that only change decoding (the codec's `decode_only_config`)
    may differ.

    Args:
        dataset_autoencoder (`AudioAutoencoderMixin`): the codec a latent dataset carries.
        pipeline_autoencoder (`AudioAutoencoderMixin`): the pipeline's codec.
        dataset_path (`str`), pipeline_path (`str`): where they come from, for the message.
    """
    ours, theirs = dataset_autoencoder, pipeline_autoencoder
    ignored = set(ours.decode_only_config)
    config = {k: v for k, v in ours.config.items() if not k.startswith("_") and k not in ignored}
    their_config = {k: v for k, v in theirs.config.items() if not k.startswith("_") and k not in ignored}
    keys = sorted(set(config) | set(their_config))
    differs = [k for k in keys if not _same_value(config.get(k), their_config.get(k))]
    state, their_state = ours.state_dict(), theirs.state_dict()
    if not differs and state.keys() == their_state.keys():
        differs = [k for k in state if not _same_value(state[k], their_state[k])]
    elif not differs:
        differs = ["weights"]
    if type(ours) is not type(theirs) or differs:
        what = (
            f"{type(ours).__name__} vs {type(theirs).__name__}"
            if type(ours) is not type(theirs)
            else f"they differ in {differs[:5]}"
        )
        raise ValueError(
            f"The dataset {dataset_path!r} was encoded with another autoencoder than the pipeline "
            f"{pipeline_path!r} ({what}; latent size {ours.latent_dim} vs {theirs.latent_dim}): its latents "
            "would mean nothing to the model. Encode your audio with the pipeline's own: `python "
            "examples/encode_dataset.py --dataset_dir AUDIO --output_dir LATENTS --autoencoder_path "
            f"{pipeline_path}/autoencoder`, or pass the audio dataset itself as --dataset_dir."
        )
