"""Audio autoencoders for CAM: audio [B, C, N] <-> continuous latents [B, T, D], one shared interface.

`MelAutoencoder` needs no weights (the default; `MelVocoder` is its optional learned decoder). The others wrap
another library's codec (transformers' EnCodec, diffusers' Oobleck, the optional `music2latent` package), so
each is imported on first use: importing this package never imports their stacks, nor requires the optional
extra.
"""

import importlib
from typing import TYPE_CHECKING

# Public name -> the module (in this package) that defines it.
_NAME_TO_MODULE = {
    "AudioAutoencoderMixin": "base",
    "resample_audio": "base",
    "EncodecAutoencoder": "encodec",
    "check_same_autoencoder": "loading",
    "load_autoencoder": "loading",
    "MelAutoencoder": "mel",
    "MelVocoder": "vocoder",
    "Music2LatentAutoencoder": "music2latent",
    "OobleckAutoencoder": "oobleck",
}

if TYPE_CHECKING:
    from .base import AudioAutoencoderMixin, resample_audio
    from .encodec import EncodecAutoencoder
    from .loading import check_same_autoencoder, load_autoencoder
    from .mel import MelAutoencoder
    from .music2latent import Music2LatentAutoencoder
    from .oobleck import OobleckAutoencoder
    from .vocoder import MelVocoder


def __getattr__(name: str):
    if name not in _NAME_TO_MODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_NAME_TO_MODULE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAME_TO_MODULE})


__all__ = [
    "AudioAutoencoderMixin",
    "EncodecAutoencoder",
    "MelAutoencoder",
    "MelVocoder",
    "Music2LatentAutoencoder",
    "OobleckAutoencoder",
    "check_same_autoencoder",
    "load_autoencoder",
    "resample_audio",
]
