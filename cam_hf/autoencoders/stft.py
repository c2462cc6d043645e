"""The STFT pair of the mel codec's two decoders (Griffin-Lim and the vocoder), on frames laid out
`[B, frames, bins]`: `torch.stft` / `torch.istft` with `center=True`, reflect padding and a given window,
written out with `torch.fft.rfft` / `irfft`.

Why not `torch.istft`: it overlap-adds through `unfold`'s backward and recomputes the window envelope at every
call, which together cost more than its FFTs (`docs/performance.md`). Here the overlap-add is `n_fft / hop`
shifted additions of hop-long blocks, and the envelope is computed once by the caller and reused: Griffin-Lim
runs 17 inverses per call on frames of one length. Each FFT runs along contiguous memory. The results equal
`torch.stft` / `torch.istft`'s to float rounding (`tests/test_griffin_lim.py`, `tests/test_vocoder.py`).
"""

from __future__ import annotations

import torch


def overlap_add(frames: torch.Tensor, hop_length: int) -> torch.Tensor:
    """
    Frames overlap-added `hop_length` apart.

    Args:
        frames (`torch.Tensor` of shape `[B, T, n_fft]`).
        hop_length (`int`): the distance between consecutive frames' starts, in samples.

    Returns:
        `torch.Tensor` of shape `[B, (T - 1) * hop_length + n_fft]`.
    """
    batch, count, n_fft = frames.shape
    if n_fft % hop_length:  # the general case, through `fold` (several times slower)
        size = (1, (count - 1) * hop_length + n_fft)
        folded = torch.nn.functional.fold(frames.mT, size, (1, n_fft), stride=(1, hop_length))
        return folded.reshape(batch, -1)
    # Each frame's hop-long blocks, added in `n_fft / hop` shifted passes.
    blocks = frames.reshape(batch, count, n_fft // hop_length, hop_length)
    audio = frames.new_zeros(batch, count + n_fft // hop_length - 1, hop_length)
    for shift in range(n_fft // hop_length):
        audio[:, shift : shift + count] += blocks[:, :, shift]
    return audio.reshape(batch, -1)


def inverse_window_envelope(
    window: torch.Tensor, hop_length: int, num_frames: int, length: int
) -> torch.Tensor:
    """
    1 / the overlap-added squared window over the `length` samples that an inverse STFT of `num_frames`
    centred frames keeps: what `torch.istft` divides by.

    Returns:
        `torch.Tensor` of shape `[length]`.
    """
    half = window.shape[0] // 2
    squared = window.square().expand(1, num_frames, -1)
    return 1 / overlap_add(squared, hop_length)[0, half : half + length]


def frames_stft(audio: torch.Tensor, window: torch.Tensor, hop_length: int) -> torch.Tensor:
    """
    `torch.stft(audio, n_fft, hop_length, window=window, center=True, return_complex=True)`, transposed.

    Args:
        audio (`torch.Tensor` of shape `[B, N]`).
        window (`torch.Tensor` of shape `[n_fft]`).
        hop_length (`int`).

    Returns:
        `torch.Tensor` of shape `[B, N // hop_length + 1, n_fft // 2 + 1]`, complex.
    """
    n_fft = window.shape[0]
    padded = torch.nn.functional.pad(audio[:, None], (n_fft // 2, n_fft // 2), mode="reflect")[:, 0]
    return torch.fft.rfft(padded.unfold(-1, n_fft, hop_length) * window, dim=-1)


def frames_istft(
    spectrum: torch.Tensor,
    window: torch.Tensor,
    hop_length: int,
    length: int,
    inverse_envelope: torch.Tensor | None = None,
) -> torch.Tensor:
    """
    `torch.istft(spectrum.mT, n_fft, hop_length, window=window, center=True, length=length)`.

    Args:
        spectrum (`torch.Tensor` of shape `[B, frames, n_fft // 2 + 1]`, complex).
        window (`torch.Tensor` of shape `[n_fft]`).
        hop_length (`int`).
        length (`int`): samples to return, at most `(frames - 1) * hop_length`.
        inverse_envelope (`torch.Tensor` of shape `[length]`, *optional*): `inverse_window_envelope` for these
            sizes, when the caller reuses it; computed here otherwise.

    Returns:
        `torch.Tensor` of shape `[B, length]`.
    """
    n_fft = window.shape[0]
    if inverse_envelope is None:
        inverse_envelope = inverse_window_envelope(window, hop_length, spectrum.shape[1], length)
    frames = torch.fft.irfft(spectrum, n=n_fft, dim=-1) * window
    return overlap_add(frames, hop_length)[:, n_fft // 2 : n_fft // 2 + length] * inverse_envelope


__all__ = ["frames_istft", "frames_stft", "inverse_window_envelope", "overlap_add"]
