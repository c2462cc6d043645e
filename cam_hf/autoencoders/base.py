"""The interface every CAM audio autoencoder shares.

An autoencoder maps audio `[B, C, N]` to continuous latents `[B, T, D]` and back. The CAM Backbone and Sampler
only ever see latents, so everything they rely on lives here: the sample rate and channel count the codec wants,
the latent size `D`, the frame rate, and per-channel latent statistics that bring latents to ~unit scale (the
Sampler's noise and the noise augmentation both assume it).

Subclasses are `ModelMixin` + `ConfigMixin` (so a pipeline saves and loads them) and implement five things:
the `sample_rate`, `audio_channels`, `latent_dim` and `hop_length` properties, plus `_encode` / `_decode` on audio
already in the codec's format and on latents without normalisation. Input checking, channel conversion,
resampling and normalisation are done once, here.
"""

from __future__ import annotations

from collections.abc import Iterable
from math import gcd

import numpy as np
import torch
from scipy.signal import resample_poly

# A latent channel whose standard deviation is below this is treated as constant: dividing by ~0 would blow up.
_MIN_STD = 1e-5


def resample_audio(audio: torch.Tensor, orig_sample_rate: int, target_sample_rate: int) -> torch.Tensor:
    """
    Resample audio with a polyphase filter (`scipy.signal.resample_poly`, Kaiser window).

    Args:
        audio (`torch.Tensor` of shape `[..., N]`): audio at `orig_sample_rate`.
        orig_sample_rate (`int`): the rate of `audio`, in Hz.
        target_sample_rate (`int`): the wanted rate, in Hz.

    Returns:
        `torch.Tensor` of shape `[..., ceil(N * target / orig)]`, same dtype and device as `audio`. Not
        differentiable (it goes through NumPy): resampling belongs to data preparation, not to a training graph.
    """
    if orig_sample_rate == target_sample_rate:
        return audio
    common = gcd(int(orig_sample_rate), int(target_sample_rate))
    up, down = int(target_sample_rate) // common, int(orig_sample_rate) // common
    resampled = resample_poly(audio.detach().cpu().double().numpy(), up, down, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(resampled)).to(device=audio.device, dtype=audio.dtype)


class AudioAutoencoderMixin:
    """
    Shared behaviour of the CAM autoencoders: checked `encode` / `decode`, channel conversion, resampling, and latent
    normalisation with statistics stored in the config (`latents_mean`, `latents_std`, lists of `latent_dim` floats,
    or `None` before `fit_latent_statistics` has been called, in which case latents are returned unnormalised).

    Channel policy: mono audio given to a stereo autoencoder is duplicated to both channels; stereo audio given to a
    mono autoencoder is averaged to mono; any other mismatch raises `ValueError`.

    Sample-rate policy: when `sample_rate` is passed to `encode` and differs from the autoencoder's, the audio is
    resampled with `resample_audio`. When it is not passed, the audio is assumed to be at the autoencoder's rate.
    """

    # ---- implemented by each autoencoder -------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        raise NotImplementedError

    @property
    def audio_channels(self) -> int:
        raise NotImplementedError

    @property
    def latent_dim(self) -> int:
        raise NotImplementedError

    @property
    def hop_length(self) -> int:
        """Audio samples per latent frame."""
        raise NotImplementedError

    def _encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Checked audio `[B, audio_channels, N]` at `sample_rate`, float32 -> raw latents `[B, T, latent_dim]`."""
        raise NotImplementedError

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) latents `[B, T, latent_dim]` -> audio `[B, audio_channels, N]`."""
        raise NotImplementedError

    # ---- shared ----------------------------------------------------------------------------------------------

    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def min_audio_length(self) -> int:
        """The fewest samples (at `sample_rate`) that give one latent frame."""
        return self.hop_length

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """
        Encode audio to normalised latents.

        Args:
            audio (`torch.Tensor` of shape `[B, C, N]`): float audio in [-1, 1]. `C` may differ from
                `audio_channels` by mono <-> stereo (converted, see the class docstring).
            sample_rate (`int`, *optional*): the rate of `audio`; resampled to `self.sample_rate` when it differs.

        Returns:
            `torch.Tensor` of shape `[B, T, latent_dim]`, with `T = N // hop_length` (N counted at `sample_rate`;
            trailing samples short of a whole frame are dropped), normalised with the stored statistics.
        """
        audio = self.prepare_audio(audio, sample_rate)
        return self.normalize_latents(self._encode(audio))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """
        Decode normalised latents to audio.

        Args:
            latents (`torch.Tensor` of shape `[B, T, latent_dim]`): latents as returned by `encode` (or generated).

        Returns:
            `torch.Tensor` of shape `[B, audio_channels, T * hop_length]` at `sample_rate`.
        """
        self._check_latents(latents)
        return self._decode(self.denormalize_latents(latents.float()))

    def prepare_audio(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """
        Check audio and bring it to this autoencoder's channel count and sample rate, as float32 on its device.

        Raises:
            `ValueError`: wrong number of dimensions, unsupported channel count, non-finite values, or too short.
        """
        if isinstance(audio, np.ndarray):
            audio = torch.from_numpy(audio)
        if not isinstance(audio, torch.Tensor):
            raise ValueError(f"audio must be a torch.Tensor of shape [B, C, N], got {type(audio).__name__}.")
        if audio.ndim != 3:
            raise ValueError(
                f"audio must have shape [batch, channels, samples], got {tuple(audio.shape)}. "
                "Add the missing axes, e.g. `audio[None, None]` for a 1-D signal or `audio[None]` for [C, N]."
            )
        if audio.shape[-1] == 0:
            raise ValueError("audio has zero samples: pass at least one frame of audio.")
        if not audio.is_floating_point():
            raise ValueError(f"audio must be floating point in [-1, 1], got dtype {audio.dtype}.")
        if not torch.isfinite(audio).all():
            raise ValueError("audio contains NaN or infinite values: clean or clip it before encoding.")

        channels = audio.shape[1]
        if channels != self.audio_channels:
            if channels == 1 and self.audio_channels == 2:
                audio = audio.expand(-1, 2, -1)
            elif channels == 2 and self.audio_channels == 1:
                audio = audio.mean(dim=1, keepdim=True)
            else:
                raise ValueError(
                    f"audio has {channels} channels but this autoencoder takes {self.audio_channels}; only "
                    "mono <-> stereo is converted automatically. Mix or select channels before encoding."
                )

        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            if sample_rate <= 0:
                raise ValueError(f"sample_rate must be positive, got {sample_rate}.")
            audio = resample_audio(audio, int(sample_rate), self.sample_rate)

        if audio.shape[-1] < self.min_audio_length:
            raise ValueError(
                f"audio has {audio.shape[-1]} samples at {self.sample_rate} Hz, fewer than the "
                f"{self.min_audio_length} needed for one latent frame: pass longer audio."
            )
        return audio.to(device=self.device, dtype=torch.float32).contiguous()

    def _check_latents(self, latents: torch.Tensor) -> None:
        if not isinstance(latents, torch.Tensor) or latents.ndim != 3:
            shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise ValueError(f"latents must be a tensor of shape [batch, frames, latent_dim], got {shape}.")
        if latents.shape[-1] != self.latent_dim:
            raise ValueError(
                f"latents have {latents.shape[-1]} channels but this autoencoder's latent_dim is "
                f"{self.latent_dim}: they were made by another autoencoder or a Backbone of another size."
            )
        if latents.shape[1] == 0:
            raise ValueError("latents have zero frames: nothing to decode.")
        if not torch.isfinite(latents).all():
            raise ValueError("latents contain NaN or infinite values: the generator diverged upstream.")

    # ---- latent statistics -------------------------------------------------------------------------------------

    def _latent_statistics(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        mean, std = self.config.latents_mean, self.config.latents_std
        if mean is None or std is None:
            return None
        mean = torch.tensor(mean, dtype=latents.dtype, device=latents.device)
        std = torch.tensor(std, dtype=latents.dtype, device=latents.device)
        return mean, std

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw latents `[..., D]` -> `(latents - latents_mean) / latents_std` (identity when not fitted)."""
        statistics = self._latent_statistics(latents)
        return latents if statistics is None else (latents - statistics[0]) / statistics[1]

    def denormalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Inverse of `normalize_latents`."""
        statistics = self._latent_statistics(latents)
        return latents if statistics is None else latents * statistics[1] + statistics[0]

    def _iterate_audio(self, audio: torch.Tensor | Iterable[torch.Tensor], sample_rate: int | None):
        """Yield checked audio batches from one tensor `[B, C, N]` or an iterable of `[B, C, N]` / `[C, N]`."""
        batches = [audio] if isinstance(audio, torch.Tensor | np.ndarray) else audio
        for batch in batches:
            batch = torch.as_tensor(batch)
            yield self.prepare_audio(batch[None] if batch.ndim == 2 else batch, sample_rate)

    @torch.no_grad()
    def fit_latent_statistics(
        self, audio: torch.Tensor | Iterable[torch.Tensor], sample_rate: int | None = None
    ) -> None:
        """
        Compute the per-channel mean and standard deviation of the raw latents of `audio` and store them in the
        config (`latents_mean`, `latents_std`), so that `encode` returns ~unit-scale latents from now on and
        `save_pretrained` keeps the statistics.

        Args:
            audio (`torch.Tensor` of shape `[B, C, N]`, or an iterable of such tensors or of `[C, N]` tensors):
                representative audio; a few minutes is plenty. Statistics are pooled over every frame of every item.
            sample_rate (`int`, *optional*): the rate of `audio` when it is not `self.sample_rate`.
        """
        count, total, total_sq = 0, 0.0, 0.0
        for batch in self._iterate_audio(audio, sample_rate):
            latents = self._encode(batch).reshape(-1, self.latent_dim).double()
            count += latents.shape[0]
            total = total + latents.sum(0)
            total_sq = total_sq + (latents**2).sum(0)
        if count == 0:
            raise ValueError("fit_latent_statistics got no audio: pass a tensor or a non-empty iterable.")
        mean = total / count
        std = (total_sq / count - mean**2).clamp(min=0).sqrt().clamp(min=_MIN_STD)
        self.register_to_config(latents_mean=mean.float().tolist(), latents_std=std.float().tolist())
