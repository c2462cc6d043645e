"""Tests of cam_hf.autoencoders: the shared interface, the mel codec's reconstruction, save/load round trips,
the loaders of pretrained weights (on tiny random weights written in each library's own format), bad input,
and the crossfade between decoded chunks.
"""

import os
import subprocess
import sys

import librosa
import numpy as np
import pytest
import torch

from cam_hf.autoencoders import (
    EncodecAutoencoder,
    MelAutoencoder,
    Music2LatentAutoencoder,
    OobleckAutoencoder,
    check_same_autoencoder,
    resample_audio,
)
from cam_hf.autoencoders.base import crossfade
from cam_hf.autoencoders.metrics import spectral_metrics

# Tiny configurations: a few thousand parameters, so that every test runs in well under a second.
TINY_MEL = dict(
    sample_rate=8000, n_fft=256, stft_hop_length=64, n_mels=16, frames_per_latent=4, latent_dim=24
)
TINY_OOBLECK = dict(
    encoder_hidden_size=8,
    downsampling_ratios=[2, 4],
    channel_multiples=[1, 2],
    decoder_channels=8,
    decoder_input_channels=4,
    audio_channels=2,
    sampling_rate=16000,
)
TINY_ENCODEC = dict(
    target_bandwidths=[1.5],
    sampling_rate=16000,
    audio_channels=1,
    num_filters=4,
    upsampling_ratios=[4, 2],
    hidden_size=8,
    num_residual_layers=1,
    num_lstm_layers=1,
    codebook_size=16,
    codebook_dim=8,
)


def harmonic_notes(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Half-second notes of a 7-harmonic tone with decaying envelopes, overlapping, at random pitches."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sample_rate))
    note = min(int(0.5 * sample_rate), len(out))
    t = np.arange(note) / sample_rate
    for start in range(0, len(out) - note + 1, max(note // 2, 1)):
        f0 = 220.0 * 2 ** (rng.integers(0, 12) / 12)
        out[start : start + note] += sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8)) * np.exp(
            -3 * t
        )
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def audio_tensor(
    seconds: float, sample_rate: int, channels: int = 1, batch: int = 1, seed: int = 0
) -> torch.Tensor:
    clips = [harmonic_notes(seconds, sample_rate, seed + i) for i in range(batch * channels)]
    return torch.from_numpy(np.stack(clips)).reshape(batch, channels, -1)


def fitted_tiny_mel(**overrides) -> MelAutoencoder:
    codec = MelAutoencoder(**{**TINY_MEL, **overrides})
    codec.fit_latent_statistics(audio_tensor(6.0, codec.sample_rate, codec.audio_channels, seed=100))
    return codec


def public_config(model) -> dict:
    """The config without diffusers' bookkeeping (`_name_or_path`, `_use_default_values`, ...)."""
    return {key: value for key, value in model.config.items() if not key.startswith("_")}


def assert_same_model(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


# ---- the mel codec -----------------------------------------------------------------------------------------


def test_mel_default_config_matches_the_design_target():
    codec = MelAutoencoder()
    # An MLP flow head models frames of ~64-128 dims well (docs/autoencoders.md); ~10-20 frames per second.
    assert (codec.sample_rate, codec.audio_channels, codec.latent_dim) == (22050, 1, 128)
    assert codec.hop_length == 2048 and codec.stacked_dim == 640
    assert codec.frame_rate == pytest.approx(10.766, abs=1e-3)


def test_mel_shapes_and_lengths():
    codec = fitted_tiny_mel()
    audio = audio_tensor(1.0, 8000, batch=2)[
        ..., :7000
    ]  # 27 whole latent frames of 256 samples, and a remainder
    latents = codec.encode(audio)
    assert latents.shape == (2, 7000 // codec.hop_length, codec.latent_dim)
    decoded = codec.decode(latents)
    assert decoded.shape == (2, 1, latents.shape[1] * codec.hop_length)
    assert torch.isfinite(decoded).all()


def test_mel_projection_must_be_fitted_when_it_reduces():
    codec = MelAutoencoder(**TINY_MEL)
    with pytest.raises(ValueError, match="fit_latent_statistics"):
        codec.encode(audio_tensor(1.0, 8000))
    with pytest.raises(ValueError, match="exceeds"):
        MelAutoencoder(**{**TINY_MEL, "latent_dim": 65})  # stacked dim is 16 * 4 = 64


def test_mel_without_projection_needs_no_fitting_and_stacks_losslessly():
    codec = MelAutoencoder(**{**TINY_MEL, "latent_dim": 64})
    audio = audio_tensor(1.0, 8000)[..., : 10 * codec.hop_length]
    latents = codec.encode(audio)
    log_mel = codec.log_mel(audio)  # [1, 1, n_mels, 40]
    # Latent frame t holds mel frames 4t .. 4t + 3, each as n_mels consecutive values.
    assert torch.equal(latents[0, 2, 16:32], log_mel[0, 0, :, 9])
    assert torch.equal(codec._unstack(latents), log_mel)


def test_mel_pca_is_inverted_on_decode_and_normalises_latents():
    codec = MelAutoencoder(**TINY_MEL)  # PCA 64 -> 24
    audio = audio_tensor(6.0, 8000, seed=100)
    codec.fit_latent_statistics(audio)
    assert codec.config.pca_fitted
    # Orthonormal axes: decoding applies the transpose, the exact inverse within the projection's span.
    assert torch.allclose(codec.projection.T @ codec.projection, torch.eye(24), atol=1e-5)
    latents = codec.encode(audio)
    # Fitted on this audio: every channel has mean 0 and standard deviation 1.
    assert latents.mean(dim=(0, 1)).abs().max() < 1e-3
    assert (latents.std(dim=(0, 1), unbiased=False) - 1).abs().max() < 1e-3
    stacked = codec._stacked_features(audio)
    restored = torch.matmul(codec.denormalize_latents(latents), codec.projection.T) + codec.projection_mean
    # 24 of 64 axes keep most of the variance of these harmonic notes...
    residual = (restored - stacked).pow(2).mean() / (stacked - stacked.mean((0, 1))).pow(2).mean()
    assert residual < 0.05
    # ...and projecting the restored frames again gives the same latents (a projection is idempotent).
    reprojected = codec.normalize_latents(torch.matmul(restored - codec.projection_mean, codec.projection))
    assert torch.allclose(reprojected, latents, atol=1e-3)


def test_mel_reconstruction_quality_on_a_harmonic_signal():
    """The default codec (PCA 640 -> 128) fitted on one clip, measured on another, next to librosa's mel
    inversion.

    Measured: PCA SC 0.45 / LSD 7.1 dB; no PCA SC 0.32 / LSD 6.7 dB; librosa mel_to_audio SC 0.31-0.32 / LSD
    6.6 dB.
    """
    fit = torch.from_numpy(harmonic_notes(16.0, 22050, seed=1))[None, None]
    test = harmonic_notes(4.0, 22050, seed=2)
    codec = MelAutoencoder()
    codec.fit_latent_statistics(fit)
    decoded = codec.decode(codec.encode(torch.from_numpy(test)[None, None]))[0, 0].numpy()
    sc, lsd = spectral_metrics(test, decoded, 1024, 256)
    assert sc < 0.55 and lsd < 8.5

    # Without the projection, mel inversion + Griffin-Lim alone must be as good as librosa's at
    # the same settings.
    no_pca = MelAutoencoder(latent_dim=640)
    decoded = no_pca.decode(no_pca.encode(torch.from_numpy(test)[None, None]))[0, 0].numpy()
    sc_no_pca, lsd_no_pca = spectral_metrics(test, decoded, 1024, 256)
    mel = librosa.feature.melspectrogram(y=test, sr=22050, n_fft=1024, hop_length=256, n_mels=80, power=1.0)
    reference = librosa.feature.inverse.mel_to_audio(
        mel, sr=22050, n_fft=1024, hop_length=256, power=1.0, n_iter=32
    )
    sc_librosa, lsd_librosa = spectral_metrics(test, reference, 1024, 256)
    assert sc_no_pca < sc_librosa + 0.05 and lsd_no_pca < lsd_librosa + 1.0


def test_mel_decode_is_deterministic():
    codec = fitted_tiny_mel()
    latents = codec.encode(audio_tensor(1.0, 8000))
    assert torch.equal(codec.decode(latents), codec.decode(latents))


def test_mel_codec_computes_in_float32_after_a_dtype_cast():
    codec = fitted_tiny_mel()
    audio = audio_tensor(1.0, 8000)
    latents = codec.encode(audio)
    codec.to(torch.bfloat16)  # what `pipeline.to(torch.bfloat16)` does to every component
    cast_latents = codec.encode(audio)
    assert cast_latents.dtype == torch.float32
    # It reports the dtype it was cast to (diffusers' dtype moves expect that) and computes in float32.
    assert codec.dtype == torch.bfloat16 and codec.projection.dtype == torch.float32
    assert torch.equal(cast_latents, latents)
    assert codec.decode(latents.to(torch.bfloat16)).dtype == torch.float32


def test_mel_stereo_codes_channels_independently():
    codec = MelAutoencoder(**{**TINY_MEL, "audio_channels": 2, "latent_dim": 128})  # stacked: 2 * 16 * 4
    audio = audio_tensor(1.0, 8000, channels=2)
    latents = codec.encode(audio)
    left = MelAutoencoder(**{**TINY_MEL, "latent_dim": 64}).encode(audio[:, :1])
    assert latents.shape[-1] == 128
    assert torch.equal(latents[..., :64], left)
    assert codec.decode(latents).shape[:2] == (1, 2)


# ---- the shared interface: channels, sample rates, statistics, bad input -----------------------------------


def test_channel_conversion():
    mono_codec = MelAutoencoder(**{**TINY_MEL, "latent_dim": 64})
    stereo = audio_tensor(1.0, 8000, channels=2)
    # Stereo into a mono codec: averaged.
    assert torch.equal(mono_codec.encode(stereo), mono_codec.encode(stereo.mean(1, keepdim=True)))
    # Mono into a stereo codec: duplicated.
    stereo_codec = MelAutoencoder(**{**TINY_MEL, "audio_channels": 2, "latent_dim": 128})
    mono = stereo[:, :1]
    assert torch.equal(stereo_codec.encode(mono), stereo_codec.encode(mono.repeat(1, 2, 1)))
    with pytest.raises(ValueError, match="3 channels"):
        mono_codec.encode(torch.zeros(1, 3, 8000))


def test_resample_audio_keeps_pitch_and_duration():
    t = np.arange(44100) / 44100
    sine = torch.from_numpy(np.sin(2 * np.pi * 441.0 * t).astype(np.float32))[None, None]
    resampled = resample_audio(sine, 44100, 22050)
    assert resampled.shape == (1, 1, 22050) and resampled.dtype == torch.float32
    spectrum = np.abs(np.fft.rfft(resampled[0, 0].numpy()))
    assert np.argmax(spectrum) == 441  # 1 Hz bins over one second
    assert resample_audio(sine, 44100, 44100) is sine


def test_encode_resamples_audio_at_another_rate():
    codec = MelAutoencoder(**{**TINY_MEL, "latent_dim": 64})
    at_codec_rate = torch.from_numpy(harmonic_notes(2.0, 8000))[None, None]
    at_16k = resample_audio(at_codec_rate, 8000, 16000)
    latents = codec.encode(at_16k, sample_rate=16000)
    direct = codec.encode(at_codec_rate)
    assert latents.shape == direct.shape
    # Up- then down-sampling is near-transparent below the Nyquist frequency: log-mels agree
    # closely where loud.
    loud = direct > direct.max() - 5
    assert (latents - direct)[loud].abs().mean() < 0.05
    # Without sample_rate the audio is taken to be at the codec's rate: twice as many frames.
    assert codec.encode(at_16k).shape[1] == at_16k.shape[-1] // codec.hop_length


def test_fit_latent_statistics_accepts_iterables_and_other_rates():
    codec = OobleckAutoencoder(vae_config=TINY_OOBLECK)
    batches = [audio_tensor(0.2, 16000, channels=2, seed=i)[0] for i in range(3)]  # [C, N] items
    codec.fit_latent_statistics(batches)
    latents = codec.encode(torch.stack(batches))
    assert len(codec.config.latents_mean) == codec.latent_dim == 4
    assert latents.mean(dim=(0, 1)).abs().max() < 1e-3
    assert (latents.std(dim=(0, 1), unbiased=False) - 1).abs().max() < 1e-3
    codec.fit_latent_statistics(resample_audio(torch.stack(batches), 16000, 8000), sample_rate=8000)
    with pytest.raises(ValueError, match="no audio"):
        codec.fit_latent_statistics([])


def test_bad_input_raises_clear_errors():
    codec = fitted_tiny_mel()
    audio = audio_tensor(1.0, 8000)
    with pytest.raises(ValueError, match=r"\[batch, channels, samples\]"):
        codec.encode(audio[0])
    with pytest.raises(ValueError, match="zero samples"):
        codec.encode(audio[..., :0])
    with pytest.raises(ValueError, match="fewer than the 256"):
        codec.encode(audio[..., :255])
    bad = audio.clone()
    bad[0, 0, 10] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        codec.encode(bad)
    with pytest.raises(ValueError, match="floating point"):
        codec.encode((audio * 1000).to(torch.int16))
    with pytest.raises(ValueError, match="sample_rate must be positive"):
        codec.encode(audio, sample_rate=-8000)
    latents = codec.encode(audio)
    with pytest.raises(ValueError, match="latent_dim is 24"):
        codec.decode(latents[..., :20])
    with pytest.raises(ValueError, match=r"\[batch, frames, latent_dim\]"):
        codec.decode(latents[0])
    with pytest.raises(ValueError, match="zero frames"):
        codec.decode(latents[:, :0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        codec.decode(latents * float("inf"))


# ---- Oobleck and EnCodec -----------------------------------------------------------------------------------


def test_oobleck_shapes_and_pretrained_loading(tmp_path):
    from diffusers import AutoencoderOobleck

    # A tiny VAE saved by diffusers itself, loaded the way users load Stable Audio's (`from_vae`).
    torch.manual_seed(0)
    vae = AutoencoderOobleck(**TINY_OOBLECK)
    vae.save_pretrained(tmp_path / "stable-audio" / "vae")
    codec = OobleckAutoencoder.from_vae(str(tmp_path / "stable-audio"), subfolder="vae")
    assert_same_model(codec.vae, vae)
    assert (codec.sample_rate, codec.audio_channels, codec.latent_dim, codec.hop_length) == (16000, 2, 4, 8)

    audio = audio_tensor(0.1, 16000, channels=2, batch=2)  # 1600 samples
    latents = codec.encode(audio)
    assert latents.shape == (2, 200, 4)
    # Latents are the posterior mean: the same as the VAE's own encoder.
    assert torch.allclose(latents, vae.encode(audio).latent_dist.mean.transpose(1, 2), atol=1e-6)
    assert codec.decode(latents).shape == (2, 2, 1600)


def test_encodec_uses_prequantisation_embeddings(tmp_path):
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    encodec = EncodecModel(EncodecConfig(**TINY_ENCODEC))
    encodec.save_pretrained(tmp_path / "encodec")
    codec = EncodecAutoencoder.from_encodec(str(tmp_path / "encodec"))
    assert_same_model(codec.model, encodec)
    assert (codec.sample_rate, codec.audio_channels, codec.latent_dim, codec.hop_length) == (16000, 1, 8, 8)

    audio = audio_tensor(0.1, 16000, batch=2)
    latents = codec.encode(audio)
    assert latents.shape == (2, 200, 8)
    assert torch.allclose(latents, encodec.encoder(audio).transpose(1, 2), atol=1e-6)
    decoded = codec.decode(latents)
    assert decoded.shape == (2, 1, 1600)
    assert torch.allclose(decoded, encodec.decoder(latents.transpose(1, 2)), atol=1e-6)
    with pytest.raises(ValueError, match="unchunked"):
        EncodecAutoencoder(encodec_config={**TINY_ENCODEC, "chunk_length_s": 1.0, "overlap": 0.01})


# ---- save_pretrained / from_pretrained ---------------------------------------------------------------------


def _tiny_oobleck():
    codec = OobleckAutoencoder(vae_config=TINY_OOBLECK)
    codec.fit_latent_statistics(audio_tensor(0.2, 16000, channels=2))
    return codec, audio_tensor(0.1, 16000, channels=2, seed=5)


def _tiny_encodec():
    codec = EncodecAutoencoder(encodec_config=TINY_ENCODEC)
    codec.fit_latent_statistics(audio_tensor(0.2, 16000))
    return codec, audio_tensor(0.1, 16000, seed=5)


def _tiny_mel():
    return fitted_tiny_mel(), audio_tensor(1.0, 8000, seed=5)


@pytest.mark.parametrize("make", [_tiny_mel, _tiny_oobleck, _tiny_encodec], ids=["mel", "oobleck", "encodec"])
def test_save_pretrained_round_trip_is_bit_exact(make, tmp_path):
    torch.manual_seed(0)
    codec, audio = make()
    codec.save_pretrained(tmp_path)
    loaded = type(codec).from_pretrained(tmp_path)
    assert loaded.config.latents_mean == codec.config.latents_mean is not None
    assert loaded.config.latents_std == codec.config.latents_std is not None
    assert public_config(loaded) == public_config(codec)
    assert_same_model(loaded, codec)
    latents = codec.encode(audio)
    assert torch.equal(loaded.encode(audio), latents)
    assert torch.equal(loaded.decode(latents), codec.decode(latents))


# ---- Music2Latent (optional extra) -------------------------------------------------------------------------


class NotATensor:
    """An object that `torch.load(weights_only=True)` must refuse to unpickle."""


@pytest.fixture(scope="module")
def music2latent_checkpoint(tmp_path_factory):
    """A randomly initialised Music2Latent UNet written exactly as the package stores `music2latent.pt`."""
    pytest.importorskip("music2latent")
    from music2latent.models import UNet

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("music2latent")
    torch.save({"gen_state_dict": UNet().state_dict()}, folder / "music2latent.pt")
    return folder / "music2latent.pt"


def test_music2latent_loads_its_own_checkpoint_format(music2latent_checkpoint):
    from music2latent.inference import EncoderDecoder

    codec = Music2LatentAutoencoder.from_music2latent_checkpoint(str(music2latent_checkpoint.parent))
    assert (codec.sample_rate, codec.audio_channels, codec.latent_dim, codec.hop_length) == (
        44100,
        1,
        64,
        4096,
    )

    # The package's own loader (EncoderDecoder.get_models, skipping __init__'s download) on the same file.
    reference = EncoderDecoder.__new__(EncoderDecoder)
    reference.device, reference.load_path_inference = torch.device("cpu"), str(music2latent_checkpoint)
    reference.get_models()
    assert_same_model(codec.gen, reference.gen)

    audio = audio_tensor(0.4, 44100, batch=2)  # 17640 samples: 4 latents
    latents = codec.encode(audio)
    assert latents.shape == (2, 4, 64)
    # Same latents as the package's `encode` on audio padded as our wrapper pads it (see music2latent.py).
    padded = torch.nn.functional.pad(audio[..., : 4 * 4096], (768, 768), mode="reflect")
    expected = torch.as_tensor(reference.encode(padded[0].numpy()))  # [channels, 64, T]
    assert torch.allclose(latents[0], expected[0].T, atol=1e-5)

    torch.manual_seed(0)
    decoded = codec.decode(latents)
    assert decoded.shape == (2, 1, 4 * 4096) and torch.isfinite(decoded).all()


def test_music2latent_stereo_and_save_round_trip(music2latent_checkpoint, tmp_path):
    codec = Music2LatentAutoencoder.from_music2latent_checkpoint(
        str(music2latent_checkpoint), audio_channels=2
    )
    audio = audio_tensor(0.2, 44100, channels=2)
    codec.fit_latent_statistics(audio)
    latents = codec.encode(audio)
    assert latents.shape == (1, 2, 128)
    codec.save_pretrained(tmp_path)
    loaded = Music2LatentAutoencoder.from_pretrained(tmp_path)
    assert loaded.config.latents_std == codec.config.latents_std
    assert_same_model(loaded, codec)
    assert torch.equal(loaded.encode(audio), latents)


def test_music2latent_refuses_incomplete_checkpoints(music2latent_checkpoint, tmp_path):
    state = torch.load(music2latent_checkpoint, weights_only=True)
    state["gen_state_dict"].pop(next(iter(state["gen_state_dict"])))
    torch.save(state, tmp_path / "music2latent.pt")
    with pytest.raises(ValueError, match="lacks 1 Music2Latent weights"):
        Music2LatentAutoencoder.from_music2latent_checkpoint(str(tmp_path))
    # Arbitrary pickled objects are refused (torch.load with weights_only=True), with an explanation.
    torch.save({"gen_state_dict": {}, "extra": NotATensor()}, tmp_path / "music2latent.pt")
    with pytest.raises(ValueError, match="not loaded for safety"):
        Music2LatentAutoencoder.from_music2latent_checkpoint(str(tmp_path / "music2latent.pt"))


def test_package_imports_without_music2latent():
    """`import cam_hf.autoencoders` must work without the optional extra; building the wrapper says
    what to install."""
    code = (
        "import sys; sys.modules['music2latent'] = None\n"
        "from cam_hf.autoencoders import Music2LatentAutoencoder, MelAutoencoder\n"
        "try:\n    Music2LatentAutoencoder()\nexcept ImportError as e:\n    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "pip install cam_hf[music2latent]" in result.stdout


def test_crossfade_goes_from_the_old_chunk_to_the_new():
    outgoing, incoming = torch.zeros(1, 1, 4), torch.ones(1, 1, 10)
    blended = crossfade(outgoing, incoming)
    assert blended.shape == (1, 1, 10)
    ramp = blended[0, 0, :4]
    assert (ramp > 0).all() and (ramp < 1).all() and (ramp.diff() > 0).all()
    assert torch.equal(blended[..., 4:], incoming[..., 4:])


def test_statistics_refitted_on_another_cpu_are_the_same_codec(tmp_path):
    # The shipped codec's PCA refitted from the same audio on an AVX-512 machine differed from the AVX2 fit by
    # up to 3e-5: the same latents after float16 storage, so the same codec; a real change is another.
    torch.manual_seed(0)
    codec = MelAutoencoder(
        sample_rate=8000, n_fft=256, stft_hop_length=64, n_mels=16, frames_per_latent=2, latent_dim=8
    )
    codec.fit_latent_statistics([torch.randn(1, 8000) for _ in range(4)], sample_rate=8000)
    codec.save_pretrained(tmp_path)
    refitted = MelAutoencoder.from_pretrained(tmp_path)
    refitted.load_state_dict({name: value + 3e-5 for name, value in codec.state_dict().items()})
    refitted.register_to_config(latents_std=[std * (1 + 1e-5) for std in codec.config.latents_std])
    check_same_autoencoder(refitted, codec, "dataset", "pipeline")
    refitted.projection.data[0, 0] += 0.01
    with pytest.raises(ValueError, match=r"differ in \['projection'\]"):
        check_same_autoencoder(refitted, codec, "dataset", "pipeline")
