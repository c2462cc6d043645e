"""Audio helpers: resampling (the one implementation that the codecs, the embeddings and the dataset
builders share), and waveforms in any layout as one batch."""

from __future__ import annotations

from math import gcd

import numpy as np
import torch


def resample_audio(
    audio: torch.Tensor | np.ndarray, orig_sample_rate: int, target_sample_rate: int, axis: int = -1
) -> torch.Tensor | np.ndarray:
    """Resamples audio with a polyphase filter (`scipy.signal.resample_poly`, Kaiser window): deterministic,
    and it needs no system library.

    Args:
        audio (`torch.Tensor` or `np.ndarray`): floating-point audio at `orig_sample_rate`, samples along
            `axis`.
        orig_sample_rate (`int`): the rate of `audio`, in Hz.
        target_sample_rate (`int`): the wanted rate, in Hz.
        axis (`int`, defaults to -1): the time axis (0 for `[samples, channels]` arrays).

    Returns:
        The same type as `audio`, with `ceil(N * target / orig)` samples along `axis` (`audio` itself when the
        rates are equal); a tensor keeps its dtype and device, an array its floating dtype. Not differentiable
        (it goes through NumPy): resampling belongs to data preparation, not to a training graph.
    """
    if orig_sample_rate == target_sample_rate:
        return audio
    # Imported here: scipy.signal takes a second to import, and most users never resample.
    from scipy.signal import resample_poly

    common = gcd(int(orig_sample_rate), int(target_sample_rate))
    up, down = int(target_sample_rate) // common, int(orig_sample_rate) // common
    if isinstance(audio, torch.Tensor):
        resampled = resample_poly(audio.detach().cpu().double().numpy(), up, down, axis=axis)
        return torch.from_numpy(np.ascontiguousarray(resampled)).to(device=audio.device, dtype=audio.dtype)
    resampled = resample_poly(audio, up, down, axis=axis)
    dtype = audio.dtype if np.issubdtype(audio.dtype, np.floating) else np.float32
    return resampled.astype(dtype, copy=False)


def as_audio_batch(audio: torch.Tensor | np.ndarray | list | tuple) -> torch.Tensor:
    """A waveform `(samples,)` or `(channels, samples)`, a batch `(batch_size, channels, samples)`, or a list
    of waveforms of one shape, as a float tensor `(batch_size, channels, samples)`."""
    if isinstance(audio, list | tuple):
        return torch.stack([as_audio_batch(waveform)[0] for waveform in audio])
    audio = torch.as_tensor(audio).float()
    return audio[None, None] if audio.ndim == 1 else audio[None] if audio.ndim == 2 else audio


__all__ = ["as_audio_batch", "resample_audio"]
