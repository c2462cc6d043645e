"""The mel codec's Griffin-Lim (an STFT pair written out on `torch.fft`) against the same algorithm on
`torch.stft` / `torch.istft`, which it replaced for speed: the same audio and phase to float rounding."""

import pytest
import torch

from cam_hf.autoencoders import MelAutoencoder
from cam_hf.testing_utils import griffin_lim_on_torch_stft, tiny_mel_autoencoder


@pytest.mark.parametrize(
    "codec",
    [
        MelAutoencoder(latent_dim=640, griffin_lim_iters=16),  # the shipped STFT: n_fft 1024, hop 256
        tiny_mel_autoencoder(),  # n_fft 256, hop 64
        MelAutoencoder(  # a hop that does not divide n_fft: the overlap-add goes through `fold`
            sample_rate=8000, n_fft=256, stft_hop_length=96, n_mels=16, frames_per_latent=2, latent_dim=32
        ),
        MelAutoencoder(latent_dim=640, griffin_lim_iters=0),
    ],
    ids=["shipped-stft", "tiny", "uneven-hop", "no-iterations"],
)
@pytest.mark.parametrize("continued", [False, True])
def test_griffin_lim_equals_the_torch_stft_loop(codec, continued):
    frames = 13 * codec.config.frames_per_latent
    bins = codec.config.n_fft // 2 + 1
    magnitude = torch.rand(2, bins, frames, generator=torch.Generator().manual_seed(1)) ** 4
    length = frames * codec.config.stft_hop_length
    initial = None
    if continued:  # a stream's next chunk: the first frames start from phase reached before
        angles = torch.rand(2, bins, 5, generator=torch.Generator().manual_seed(2)) * 2 * torch.pi
        initial = torch.polar(torch.ones(2, bins, 5), angles)
    audio, phase = codec.griffin_lim(magnitude, length, initial)
    expected_audio, expected_phase = griffin_lim_on_torch_stft(codec, magnitude, length, initial)
    assert audio.shape == expected_audio.shape and phase.shape == expected_phase.shape
    # Fast Griffin-Lim's momentum iterations amplify float rounding: over 16 of them, the two loops' audio
    # differs by up to ~4e-4 of its peak (12 random magnitudes measured); without iterations, by rounding.
    tolerance = 1e-3 if codec.config.griffin_lim_iters else 1e-5
    peak = expected_audio.abs().max().item()
    torch.testing.assert_close(audio, expected_audio, rtol=0, atol=tolerance * peak)
    # The phase as the spectrum it makes, weighted by its magnitude: where a bin is faint its phase is ill
    # conditioned and matters only as much as the bin does; where it is 0 it is any unit phasor and multiplies
    # nothing. (Measured: at most 0.011 over the same 12 magnitudes.)
    weight = torch.cat([magnitude, magnitude[..., -1:]], dim=-1)
    torch.testing.assert_close(phase * weight, expected_phase * weight, rtol=0, atol=30 * tolerance)
