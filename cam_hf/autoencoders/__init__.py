"""Audio autoencoders for CAM: audio [B, C, N] <-> continuous latents [B, T, D]."""

from .base import AudioAutoencoderMixin, resample_audio
from .mel import MelAutoencoder

__all__ = ["AudioAutoencoderMixin", "MelAutoencoder", "resample_audio"]
