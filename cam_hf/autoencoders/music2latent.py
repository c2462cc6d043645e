"""Music2Latent (Pasini et al., 2024), the CAM paper's autoencoder, behind the CAM autoencoder interface.

The `music2latent` package and its weights are licensed CC BY-NC 4.0 (non-commercial), so it is an optional
extra (`pip install cam_hf[music2latent]`), imported only when this autoencoder is built. Encoding and
decoding go through the package's own functions (`encode_audio_inference`, `decode_latent_inference`), so the
latents are exactly those of `music2latent.EncoderDecoder`, reshaped to `[B, T, D]`.
"""

from __future__ import annotations

import importlib
import os
import pickle
import warnings

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import logging

from .base import AudioAutoencoderMixin

logger = logging.get_logger(__name__)

# Fixed by the released architecture (music2latent/hparams.py): 44.1 kHz, an STFT hop of 512 and 8x time
# downsampling, so 4096 samples per latent (10.77 latents/s), 64 channels per latent.
MUSIC2LATENT_SAMPLE_RATE = 44100
MUSIC2LATENT_HOP_LENGTH = 4096
MUSIC2LATENT_CHANNELS = 64
# The encoder reads STFT frames 4 hops long without centre padding, so N samples give (N - 3 * 512) // 4096
# latents. Padding half of that on each side lines latent t up with samples [t * 4096, (t + 1) * 4096).
_EDGE = 3 * 512 // 2


def _import_music2latent():
    try:
        return importlib.import_module("music2latent.inference")
    except ImportError as error:
        raise ImportError(
            "Music2LatentAutoencoder needs the `music2latent` package (CC BY-NC 4.0, non-commercial): "
            "`pip install cam_hf[music2latent]` or `pip install music2latent`."
        ) from error


class Music2LatentAutoencoder(ModelMixin, ConfigMixin, AudioAutoencoderMixin):
    """
    Music2Latent: 44.1 kHz audio, 64 channels per latent per audio channel, 4096 samples per latent (10.77/s).
    Audio channels are coded independently (as the package does) and concatenated in each latent frame, so
    `latent_dim = 64 * audio_channels`. Decoding runs the consistency model from random noise: it is
    stochastic (seed `torch` for repeatable audio) and `denoising_steps` trades speed for quality.

    Load the released weights with `from_music2latent_checkpoint()` (Hub `SonyCSLParis/music2latent`, or a
    local `music2latent.pt`); after `fit_latent_statistics`, `save_pretrained` writes them as safetensors.

    Args:
        audio_channels (`int`, defaults to 1): 1 (mono) or 2 (stereo).
        denoising_steps (`int`, defaults to 1): consistency-model steps at decode (the package's default).
        latents_mean (`list[float]`, *optional*): per-channel latent mean, set by `fit_latent_statistics`.
        latents_std (`list[float]`, *optional*): per-channel latent standard deviation, set likewise.
    """

    @register_to_config
    def __init__(
        self,
        audio_channels: int = 1,
        denoising_steps: int = 1,
        latents_mean: list[float] | None = None,
        latents_std: list[float] | None = None,
    ):
        super().__init__()
        if audio_channels not in (1, 2):
            raise ValueError(f"audio_channels must be 1 or 2, got {audio_channels}.")
        inference = _import_music2latent()
        # Named `gen` as in the package: its inference functions read `trainer.gen`, and we pass `self`.
        self.gen = inference.UNet()

    @classmethod
    def from_music2latent_checkpoint(
        cls,
        checkpoint: str = "SonyCSLParis/music2latent",
        filename: str = "music2latent.pt",
        **kwargs,
    ) -> Music2LatentAutoencoder:
        """
        Load weights saved in music2latent's own format (a `torch.save` dict whose `gen_state_dict` holds the
        UNet's state dict).

        Args:
            checkpoint (`str`, defaults to `"SonyCSLParis/music2latent"`): a `.pt` file, a folder holding
                `filename`, or a Hub repository id to download `filename` from.
            filename (`str`, defaults to `"music2latent.pt"`): the checkpoint's file name in a folder or
                repository.
            kwargs: constructor arguments (`audio_channels`, `denoising_steps`).

        Returns:
            `Music2LatentAutoencoder` with the checkpoint's weights and no latent statistics yet.
        """
        if os.path.isfile(checkpoint):
            path = checkpoint
        elif os.path.isdir(checkpoint):
            path = os.path.join(checkpoint, filename)
        else:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(repo_id=checkpoint, filename=filename)
        # The format is a pickle; weights_only=True refuses anything but tensors and plain containers.
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)["gen_state_dict"]
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"{path} holds objects other than tensors and plain containers, which are not loaded for "
                "safety (torch.load(weights_only=True)). Re-save its 'gen_state_dict' alone if you trust the "
                "file."
            ) from error
        model = cls(**kwargs)
        # The package loads with strict=False; a missing weight would silently stay random, so refuse that.
        missing, unexpected = model.gen.load_state_dict(state_dict, strict=False)
        if missing:
            raise ValueError(f"{path} lacks {len(missing)} Music2Latent weights, e.g. {missing[:3]}.")
        if unexpected:
            logger.warning(f"Ignored {len(unexpected)} unexpected entries of {path}, e.g. {unexpected[:3]}.")
        return model

    @property
    def sample_rate(self) -> int:
        return MUSIC2LATENT_SAMPLE_RATE

    @property
    def audio_channels(self) -> int:
        return self.config.audio_channels

    @property
    def latent_dim(self) -> int:
        return MUSIC2LATENT_CHANNELS * self.config.audio_channels

    @property
    def hop_length(self) -> int:
        return MUSIC2LATENT_HOP_LENGTH

    def _encode(self, audio: torch.Tensor) -> torch.Tensor:
        inference = _import_music2latent()
        batch, channels, _ = audio.shape
        frames = audio.shape[-1] // self.hop_length
        audio = audio[..., : frames * self.hop_length]
        audio = torch.nn.functional.pad(audio, (_EDGE, _EDGE), mode="reflect").reshape(batch * channels, -1)
        with _quiet_cuda_autocast():
            latents = inference.encode_audio_inference(
                audio,
                self,
                inference.max_waveform_length_encode,
                inference.max_batch_size_encode,
                device=self.device,
            )
        # [B * C, 64, T] -> [B, T, C * 64]
        latents = latents.float().reshape(batch, channels, MUSIC2LATENT_CHANNELS, -1).permute(0, 3, 1, 2)
        return latents.reshape(batch, -1, self.latent_dim)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        inference = _import_music2latent()
        batch, frames, _ = latents.shape
        channels = self.config.audio_channels
        latents = latents.reshape(batch, frames, channels, MUSIC2LATENT_CHANNELS).permute(0, 2, 3, 1)
        with _quiet_cuda_autocast():
            audio = inference.decode_latent_inference(
                latents.reshape(batch * channels, MUSIC2LATENT_CHANNELS, frames),
                self,
                inference.max_waveform_length_decode,
                inference.max_batch_size_decode,
                diffusion_steps=self.config.denoising_steps,
                device=self.device,
            )
        audio = torch.as_tensor(audio, device=latents.device).float()[
            ..., _EDGE : _EDGE + frames * self.hop_length
        ]
        return audio.reshape(batch, channels, -1)


class _quiet_cuda_autocast(warnings.catch_warnings):
    """
    The package wraps its calls in `torch.autocast("cuda")`, which warns on every call on a CPU-only machine.
    """

    def __enter__(self):
        super().__enter__()
        warnings.filterwarnings("ignore", message=".*CUDA is not available.*")
        return self
