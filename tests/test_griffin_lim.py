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
        initial = torch.polar(torch.ones(2, bins, 5), torch.rand(2, bins, 5) * 2 * torch.pi)
    audio, phase = codec.griffin_lim(magnitude, length, initial)
    expected_audio, expected_phase = griffin_lim_on_torch_stft(codec, magnitude, length, initial)
    assert audio.shape == expected_audio.shape and phase.shape == expected_phase.shape
    torch.testing.assert_close(audio, expected_audio, rtol=0, atol=1e-4 * expected_audio.abs().max().item())
    # The phase where the magnitude is not ~0 (elsewhere it is any unit phasor, and multiplies nothing).
    audible = torch.cat([magnitude, magnitude[..., -1:]], dim=-1) > 1e-3
    torch.testing.assert_close(phase[audible], expected_phase[audible], rtol=0, atol=1e-3)
