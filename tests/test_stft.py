"""cam_hf/autoencoders/stft.py, the STFT pair of the mel codec's decoders: `torch.stft` / `torch.istft`'s
results (centred, reflect padding), on frames laid out `[B, frames, bins]`."""

import pytest
import torch

from cam_hf.autoencoders.stft import frames_istft, frames_stft, inverse_window_envelope, overlap_add


# The last through `fold`, the general case.
@pytest.mark.parametrize(("n_fft", "hop_length"), [(1024, 256), (64, 16), (60, 16)])
def test_the_pair_equals_torch_stft_and_istft(n_fft, hop_length):
    generator = torch.Generator().manual_seed(0)
    window = torch.hann_window(n_fft)
    audio = torch.randn(3, 40 * hop_length, generator=generator)
    spectrum = frames_stft(audio, window, hop_length)
    expected = torch.stft(audio, n_fft, hop_length, window=window, center=True, return_complex=True)
    torch.testing.assert_close(spectrum, expected.mT, rtol=1e-4, atol=1e-4)

    # Any spectrum, not only a consistent one, and a length shorter than the frames cover.
    spectrum = torch.randn(3, 41, n_fft // 2 + 1, dtype=torch.complex64, generator=generator)
    for length in (40 * hop_length, 37 * hop_length + 5):
        expected = torch.istft(spectrum.mT, n_fft, hop_length, window=window, center=True, length=length)
        torch.testing.assert_close(frames_istft(spectrum, window, hop_length, length), expected)
        envelope = inverse_window_envelope(window, hop_length, 41, length)
        torch.testing.assert_close(frames_istft(spectrum, window, hop_length, length, envelope), expected)


def test_overlap_add_places_each_frame_one_hop_after_the_last():
    frames = torch.arange(1.0, 4.0)[None, :, None].expand(2, 3, 8)  # frames of 1s, 2s and 3s
    added = overlap_add(frames, 2)
    assert added.shape == (2, 12)
    torch.testing.assert_close(added[0], torch.tensor([1, 1, 3, 3, 6, 6, 6, 6, 5, 5, 3, 3.0]))


def test_the_inverse_differentiates():
    # The vocoder trains through it.
    spectrum = torch.randn(1, 9, 33, dtype=torch.complex64, requires_grad=True)
    frames_istft(spectrum, torch.hann_window(64), 16, 128).square().sum().backward()
    assert spectrum.grad is not None and torch.isfinite(torch.view_as_real(spectrum.grad)).all()
