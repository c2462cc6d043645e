"""EnCodec's continuous pre-quantisation embeddings (`transformers.EncodecModel`) as CAM latents."""

from __future__ import annotations

from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from transformers import EncodecConfig, EncodecModel

from .base import AudioAutoencoderMixin

# Keys of `EncodecConfig.to_diff_dict()` that describe the saving library, not the model.
_BOOKKEEPING_KEYS = ("transformers_version", "model_type", "_name_or_path", "architectures", "dtype")


class EncodecAutoencoder(ModelMixin, ConfigMixin, AudioAutoencoderMixin):
    """
    Wraps `transformers.EncodecModel` and uses its encoder output *before* the residual vector quantiser as
    continuous latents, decoded by its decoder directly (the quantiser is never used). Latents are
    `[B, T, hidden_size]`, `T = N // prod(upsampling_ratios)`.

    With the default `encodec_config` (`EncodecConfig`'s defaults, the `facebook/encodec_24khz` architecture):
    24 kHz mono, 128 latent dims, 320 samples per latent (75 latents/s: many more frames per second than the
    paper's setting, so long contexts cost more). Pretrained weights load with `from_encodec`.

    Only unchunked, unnormalised configurations are supported (`chunk_length_s=None`, `normalize=False`, as in
    `encodec_24khz`): `encodec_48khz` rescales each 1 s chunk by its loudness, which a frame-by-frame
    generator of continuous latents has no way to reproduce.

    Args:
        encodec_config (`dict`, *optional*): keyword arguments of `transformers.EncodecConfig`; its defaults
            when `None`.
        latents_mean (`list[float]`, *optional*): per-channel latent mean, set by `fit_latent_statistics`.
        latents_std (`list[float]`, *optional*): per-channel latent standard deviation, set likewise.
    """

    @register_to_config
    def __init__(
        self,
        encodec_config: dict[str, Any] | None = None,
        latents_mean: list[float] | None = None,
        latents_std: list[float] | None = None,
    ):
        super().__init__()
        config = EncodecConfig(**(encodec_config or {}))
        if config.chunk_length_s is not None or config.normalize:
            raise ValueError(
                "EncodecAutoencoder supports only unchunked, unnormalised EnCodec models "
                "(chunk_length_s=None, normalize=False, e.g. facebook/encodec_24khz)."
            )
        self.model = EncodecModel(config)

    @classmethod
    def from_encodec(cls, pretrained_model_name_or_path: str, **kwargs) -> EncodecAutoencoder:
        """
        Wrap pretrained EnCodec weights (a Hub id such as `facebook/encodec_24khz`, or a local folder;
        `kwargs` go to `EncodecModel.from_pretrained`). Call `fit_latent_statistics` afterwards, then
        `save_pretrained`.
        """
        encodec = EncodecModel.from_pretrained(pretrained_model_name_or_path, **kwargs)
        encodec_config = {
            key: value for key, value in encodec.config.to_diff_dict().items() if key not in _BOOKKEEPING_KEYS
        }
        model = cls(encodec_config=encodec_config)
        model.model.load_state_dict(encodec.state_dict())
        return model

    @property
    def sample_rate(self) -> int:
        return self.model.config.sampling_rate

    @property
    def audio_channels(self) -> int:
        return self.model.config.audio_channels

    @property
    def latent_dim(self) -> int:
        return self.model.config.hidden_size

    @property
    def hop_length(self) -> int:
        hop = 1
        for ratio in self.model.config.upsampling_ratios:
            hop *= ratio
        return hop

    def _encode(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.shape[-1] // self.hop_length
        embeddings = self.model.encoder(audio[..., : frames * self.hop_length].to(self.model.dtype))
        return embeddings.float().transpose(1, 2)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.model.decoder(latents.transpose(1, 2).to(self.model.dtype)).float()
