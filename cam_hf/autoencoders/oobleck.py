"""Stable Audio's Oobleck VAE (`diffusers.AutoencoderOobleck`) behind the CAM autoencoder interface."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderOobleck
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .base import AudioAutoencoderMixin


class OobleckAutoencoder(ModelMixin, ConfigMixin, AudioAutoencoderMixin):
    """
    Wraps `diffusers.AutoencoderOobleck`. Latents are the mean of the VAE posterior (deterministic, no
    sampling), `[B, T, decoder_input_channels]` with `T = N // prod(downsampling_ratios)`.

    With the default `vae_config` (`AutoencoderOobleck`'s defaults, the Stable Audio Open architecture):
    44.1 kHz stereo, 64 latent dims, 2048 samples per latent (21.5 latents/s). Pretrained weights (e.g.
    `stabilityai/stable-audio-open-1.0`, subfolder `vae`, a gated repository) load with `from_vae`.

    Args:
        vae_config (`dict`, *optional*): keyword arguments of `AutoencoderOobleck` (`encoder_hidden_size`,
            `downsampling_ratios`, `channel_multiples`, `decoder_channels`, `decoder_input_channels`,
            `audio_channels`, `sampling_rate`); its defaults when `None`.
        latents_mean (`list[float]`, *optional*): per-channel latent mean, set by `fit_latent_statistics`.
        latents_std (`list[float]`, *optional*): per-channel latent standard deviation, set likewise.
    """

    @register_to_config
    def __init__(
        self,
        vae_config: dict[str, Any] | None = None,
        latents_mean: list[float] | None = None,
        latents_std: list[float] | None = None,
    ):
        super().__init__()
        self.vae = AutoencoderOobleck(**(vae_config or {}))

    @classmethod
    def from_vae(
        cls, pretrained_model_name_or_path: str, subfolder: str | None = "vae", **kwargs
    ) -> OobleckAutoencoder:
        """
        Wrap pretrained `AutoencoderOobleck` weights (a Hub id or a local folder, as for
        `AutoencoderOobleck.from_pretrained`, to which `subfolder` and `kwargs` are passed).
        Call `fit_latent_statistics` afterwards, then `save_pretrained` to keep both.
        """
        vae = AutoencoderOobleck.from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        vae_config = {key: value for key, value in vae.config.items() if not key.startswith("_")}
        model = cls(vae_config=vae_config)
        model.vae.load_state_dict(vae.state_dict())
        return model

    @property
    def sample_rate(self) -> int:
        return self.vae.config.sampling_rate

    @property
    def audio_channels(self) -> int:
        return self.vae.config.audio_channels

    @property
    def latent_dim(self) -> int:
        return self.vae.config.decoder_input_channels

    @property
    def hop_length(self) -> int:
        return self.vae.hop_length

    def _encode(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.shape[-1] // self.hop_length
        audio = audio[..., : frames * self.hop_length].to(self.vae.dtype)
        posterior = self.vae.encode(audio).latent_dist
        return posterior.mean.float().transpose(1, 2)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        audio = self.vae.decode(latents.transpose(1, 2).to(self.vae.dtype)).sample
        return audio.float()
