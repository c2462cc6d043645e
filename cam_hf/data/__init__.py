"""Datasets for cam_hf: the built-in single-instrument dataset (music21 melodies rendered with a SoundFont)
and users' own audio, both as a `datasets.DatasetDict` of fixed-length FLAC clips split by piece; and latent
datasets, the same clips encoded once by a CAM autoencoder for training.

Needs the `data` extra (`music21`, `pretty_midi`) and `tinysoundfont` (`pip install --no-deps tinysoundfont`).
Not imported by `import cam_hf`, so the model works without these packages.
"""

from ..autoencoders.loading import check_same_autoencoder, load_autoencoder
from .build_from_audio import AudioBuildConfig, build_audio_dataset
from .build_from_corpus import CorpusBuildConfig, build_corpus_dataset
from .clips import decode_audio
from .encode import encode_audio_dataset, load_or_encode_latent_dataset
from .hub import push_to_hub
from .instruments import DEFAULT_INSTRUMENTS, INSTRUMENTS, resolve_instruments
from .latents import is_latent_dataset, load_latent_dataset
from .summary import read_summary

__all__ = [
    "AudioBuildConfig",
    "CorpusBuildConfig",
    "DEFAULT_INSTRUMENTS",
    "INSTRUMENTS",
    "build_audio_dataset",
    "build_corpus_dataset",
    "check_same_autoencoder",
    "decode_audio",
    "encode_audio_dataset",
    "is_latent_dataset",
    "load_autoencoder",
    "load_latent_dataset",
    "load_or_encode_latent_dataset",
    "push_to_hub",
    "read_summary",
    "resolve_instruments",
]
