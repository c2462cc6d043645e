"""Reconstruction losses of the mel codec's vocoder (`MelVocoder`): multi-resolution STFT and mel L1.

Written here rather than taken from a package: `vocos` needs torchaudio, whose newest release (2.11.1) pins
torch 2.11 while this project runs 2.13, and it pins `encodec==0.1.1` (and `pytorch-lightning==1.8.6` for
training); `auraloss` installs cleanly (torch and numpy) but has not been released since 2023-04, and its mel
loss has its own filterbank and log floor, while the one that matters here is the codec's own
(`MelAutoencoder.log_mel`). What is left is the few lines below.
"""

from __future__ import annotations

import torch

# STFT magnitudes are floored here before the log: about the noise floor of 16-bit audio in these magnitudes
# (Hann-windowed sums of ~1e-5 samples), so that inaudible bins do not steer the log-magnitude term.
MAGNITUDE_FLOOR = 1e-4
# FFT sizes of the multi-resolution STFT loss (hop a quarter of each): about 23, 46 and 93 ms at 22.05 kHz.
STFT_LOSS_FFT_SIZES = (512, 1024, 2048)


def _check_pair(prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.ndim != 2 or prediction.shape != target.shape:
        raise ValueError(
            "prediction and target must be audio of the same shape [batch, samples], got "
            f"{tuple(prediction.shape)} and {tuple(target.shape)}: cut both to the same length."
        )


def stft_magnitude(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """
    Args:
        audio (`torch.Tensor` of shape `[B, N]`).
        n_fft (`int`): FFT size (Hann window of that length, centred frames).
        hop_length (`int`): hop in samples.

    Returns:
        `torch.Tensor` of shape `[B, n_fft // 2 + 1, frames]`: magnitudes, floored at `MAGNITUDE_FLOOR` (the
        floor also keeps the gradient of the magnitude finite at zero).
    """
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spectrum = torch.stft(audio, n_fft, hop_length, window=window, center=True, return_complex=True)
    return (spectrum.real.square() + spectrum.imag.square()).clamp(min=MAGNITUDE_FLOOR**2).sqrt()


def multi_resolution_stft_loss(
    prediction: torch.Tensor, target: torch.Tensor, fft_sizes: tuple[int, ...] = STFT_LOSS_FFT_SIZES
) -> torch.Tensor:
    """
    Multi-resolution STFT loss (Yamamoto et al., Parallel WaveGAN, arXiv 1910.11480): at each FFT size (hop a
    quarter of it), spectral convergence `||S - S^||_F / ||S||_F` plus the mean absolute difference of log
    magnitudes; averaged over the sizes. Several sizes keep the vocoder from trading time resolution for
    frequency resolution, which one size would let it do.

    Args:
        prediction (`torch.Tensor` of shape `[B, N]`): decoded audio.
        target (`torch.Tensor` of shape `[B, N]`): the original audio.
        fft_sizes (`tuple[int, ...]`, defaults to `(512, 1024, 2048)`): each below twice the audio's length
            (centred frames reflect-pad half an FFT on each side).

    Returns:
        `torch.Tensor`: a scalar, 0 for identical audio.
    """
    _check_pair(prediction, target)
    total = prediction.new_zeros(())
    for n_fft in fft_sizes:
        predicted = stft_magnitude(prediction, n_fft, n_fft // 4)
        original = stft_magnitude(target, n_fft, n_fft // 4)
        convergence = torch.linalg.norm(original - predicted) / torch.linalg.norm(original)
        total = total + convergence + (original.log() - predicted.log()).abs().mean()
    return total / len(fft_sizes)


def mel_loss(codec, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """
    Mean absolute difference of the codec's log-mel frames (its filterbank, STFT and log floor, so that the
    vocoder is judged on what the latents hold).

    Args:
        codec (`MelAutoencoder`): the mel codec the vocoder decodes for.
        prediction (`torch.Tensor` of shape `[B, N]`): decoded audio, `N` a multiple of the codec's
            `stft_hop_length`.
        target (`torch.Tensor` of shape `[B, N]`): the original audio.

    Returns:
        `torch.Tensor`: a scalar, 0 for identical audio.
    """
    _check_pair(prediction, target)
    return (codec.log_mel(prediction[:, None]) - codec.log_mel(target[:, None])).abs().mean()


__all__ = [
    "MAGNITUDE_FLOOR",
    "STFT_LOSS_FFT_SIZES",
    "mel_loss",
    "multi_resolution_stft_loss",
    "stft_magnitude",
]
