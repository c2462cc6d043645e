"""The Frechet distance, the `evaluate` metric module, and the error-accumulation maths (offline)."""

import evaluate
import numpy as np
import pytest
from scipy import linalg

from cam_hf.evaluation import (
    METRIC_PATH,
    PitchTrack,
    RealWindows,
    StatisticsAccumulator,
    accumulation_summary,
    count_pitch_changes,
    embedding_statistics,
    fad_of_sets,
    frechet_distance,
    frechet_distance_from_embeddings,
    frechet_distance_inf,
    latent_window_statistics,
    sqrtm_psd,
    trace_sqrt_product,
    window_bounds,
    window_pitch_figures,
)
from cam_hf.evaluation.frechet import GaussianStatistics


def random_covariance(rng, dim, rank=None):
    factor = rng.normal(size=(dim, rank or dim))
    return factor @ factor.T / dim


def gaussian_closed_form(mean_a, cov_a, mean_b, cov_b):
    """The textbook formula with scipy's general (complex) matrix square root, for well-conditioned inputs."""
    root = linalg.sqrtm(cov_a @ cov_b)
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root).real)


# ---- the Frechet distance ----------------------------------------------------------------------------------


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    dim = 6
    mean_a, mean_b = rng.normal(size=dim), rng.normal(size=dim)
    cov_a, cov_b = random_covariance(rng, dim), random_covariance(rng, dim)
    ours = frechet_distance(GaussianStatistics(mean_a, cov_a, 100), GaussianStatistics(mean_b, cov_b, 100))
    assert ours == pytest.approx(gaussian_closed_form(mean_a, cov_a, mean_b, cov_b), rel=1e-9)
    # Diagonal covariances: W2^2 = |mu_a - mu_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2, no matrix root at all.
    var_a, var_b = rng.uniform(0.1, 3, dim), rng.uniform(0.1, 3, dim)
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    diagonal = frechet_distance(
        GaussianStatistics(mean_a, np.diag(var_a), 2), GaussianStatistics(mean_b, np.diag(var_b), 2)
    )
    assert diagonal == pytest.approx(expected, rel=1e-12)


def test_sample_estimate_converges_to_the_population_distance():
    rng = np.random.default_rng(1)
    dim = 4
    mean_b = np.full(dim, 0.5)
    cov_a, cov_b = np.eye(dim), np.diag([1.0, 2.0, 0.5, 1.5])
    truth = frechet_distance(
        GaussianStatistics(np.zeros(dim), cov_a, 0), GaussianStatistics(mean_b, cov_b, 0)
    )
    a = rng.multivariate_normal(np.zeros(dim), cov_a, size=200_000)
    b = rng.multivariate_normal(mean_b, cov_b, size=200_000)
    assert frechet_distance_from_embeddings(a, b) == pytest.approx(truth, rel=0.02)


def test_matrix_square_root_stays_real_for_near_singular_covariances():
    rng = np.random.default_rng(2)
    dim = 40
    cov_a, cov_b = (
        random_covariance(rng, dim, rank=5),
        random_covariance(rng, dim, rank=3),
    )  # rank 5 and 3 of 40
    root = sqrtm_psd(cov_a)
    assert np.isrealobj(root) and np.allclose(root @ root, cov_a, atol=1e-10)
    value = trace_sqrt_product(cov_a, cov_b)
    assert np.isfinite(value) and value >= 0
    # Against the closed form on the same pair made full rank: continuous as the regulariser vanishes.
    eps = 1e-9 * np.eye(dim)
    reference = np.trace(linalg.sqrtm((cov_a + eps) @ (cov_b + eps))).real
    assert value == pytest.approx(reference, rel=1e-3)


def test_identical_sets_score_near_zero_and_shifted_sets_higher():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3000, 16))
    assert frechet_distance_from_embeddings(a, a) == pytest.approx(0.0, abs=1e-8)
    same_distribution = frechet_distance_from_embeddings(a, rng.normal(size=(3000, 16)))
    assert same_distribution < 0.15  # small-sample bias, ~dim^2 / N
    shifts = [
        frechet_distance_from_embeddings(a + shift, rng.normal(size=(3000, 16))) for shift in (0.25, 0.5, 1.0)
    ]
    assert same_distribution < shifts[0] < shifts[1] < shifts[2]
    assert shifts[2] == pytest.approx(16 * 1.0**2, rel=0.05)  # the mean term: |shift|^2 per dimension


@pytest.mark.parametrize(
    "embeddings_a, embeddings_b, message",
    [
        (np.zeros((0, 4)), np.ones((10, 4)), "empty"),
        (np.ones((10, 4)), np.ones((10, 5)), "different dimensions"),
        (np.full((10, 4), np.nan), np.ones((10, 4)), "NaN"),
        (np.ones((4, 4)), np.ones((10, 4)), "at least 5 are needed"),
        (np.ones(10), np.ones((10, 4)), "2-D"),
    ],
)
def test_bad_embeddings_are_rejected_clearly(embeddings_a, embeddings_b, message):
    rng = np.random.default_rng(0)
    if embeddings_b.ndim == 2 and embeddings_b.shape[0] == 10:
        embeddings_b = rng.normal(size=embeddings_b.shape)
    with pytest.raises(ValueError, match=message):
        frechet_distance_from_embeddings(embeddings_a, embeddings_b)


def test_accumulator_equals_statistics_of_the_whole_set():
    rng = np.random.default_rng(4)
    data = 1000 + rng.normal(size=(500, 6))  # a large mean: the shift keeps the covariance exact
    accumulator = StatisticsAccumulator()
    for chunk in np.array_split(data, 7):
        accumulator.update(chunk)
    streamed, whole = accumulator.statistics(), embedding_statistics(data)
    np.testing.assert_allclose(streamed.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.covariance, whole.covariance, atol=1e-9)
    with pytest.raises(ValueError, match="dimension 3"):
        accumulator.update(np.ones((2, 3)))
    with pytest.raises(ValueError, match="empty"):
        StatisticsAccumulator().statistics()


def test_fad_inf_removes_the_small_sample_bias():
    rng = np.random.default_rng(5)
    dim = 8
    reference = GaussianStatistics(np.zeros(dim), np.eye(dim), 10**9)  # the population itself
    samples = rng.normal(size=(400, dim))  # the same distribution: true distance 0
    biased = frechet_distance(embedding_statistics(samples), reference)
    fit = frechet_distance_inf(samples, reference, num_steps=20)
    assert biased > 0.05  # ~ dim^2 / (2 N) of bias at N = 400
    assert abs(fit.score) < biased / 3 and fit.slope > 0 and len(fit.points) == 20
    with pytest.raises(ValueError, match="min_samples"):
        frechet_distance_inf(samples[:9], reference)  # 9 vectors of 8 dims: no room for subsets


# ---- the evaluate metric module ----------------------------------------------------------------------------


def test_metric_loads_offline_by_path_and_computes_the_library_value():
    fad = evaluate.load(METRIC_PATH)
    rng = np.random.default_rng(6)
    generated, real = rng.normal(size=(300, 8)) + 0.3, rng.normal(size=(500, 8))
    result = fad.compute(
        predictions=[generated], references=[real], held_out_references=rng.normal(size=(600, 8))
    )
    assert result["frechet_distance"] == pytest.approx(
        frechet_distance_from_embeddings(generated, real), rel=1e-5
    )
    assert result["num_predictions"] == 300 and result["num_references"] == 500
    assert result["floor_num_vectors"] == 300 and result["floor"] < result["frechet_distance"]
    assert result["comparable_with_published_fad"] is False
    # Chunks of a set may arrive over several add_batch calls.
    fad.add_batch(predictions=[generated[:100], generated[100:]], references=[real[:250], real[250:]])
    assert fad.compute()["frechet_distance"] == pytest.approx(result["frechet_distance"], rel=1e-5)
    with pytest.raises(ValueError, match="at least 9 are needed"):
        fad.compute(predictions=[generated[:5]], references=[real])


def test_metric_audio_config_embeds_waveforms():
    fad = evaluate.load(METRIC_PATH, "audio")
    rng = np.random.default_rng(7)
    rate = 16000
    t = np.arange(2 * rate) / rate

    def tones(count, base):
        return [
            (
                0.3 * np.sin(2 * np.pi * rng.uniform(base, 1.5 * base) * t) + 0.01 * rng.normal(size=t.size)
            ).astype(np.float32)
            for _ in range(count)
        ]

    real, more_real, other = tones(24, 300), tones(24, 300), tones(24, 1200)
    near = fad.compute(predictions=[more_real], references=[real], sample_rate=rate, embedding="spectral")
    far = fad.compute(predictions=[other], references=[real], sample_rate=rate, embedding="spectral")
    assert near["embedding"] == "spectral" and near["num_predictions"] == 24 * 7
    assert far["frechet_distance"] > 3 * near["frechet_distance"]
    nan_clip = list(real)
    nan_clip[3] = np.full(2 * rate, np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match="Clip 3 .* NaN"):
        fad.compute(predictions=[nan_clip], references=[real], sample_rate=rate)
    with pytest.raises(ValueError, match="sample_rate"):
        fad.compute(predictions=[real], references=[real])


# ---- error accumulation ------------------------------------------------------------------------------------


def test_windows_by_position():
    assert window_bounds(10, 4) == [(0, 4), (4, 8)]
    assert window_bounds(8, 8) == [(0, 8)]
    with pytest.raises(ValueError, match="shorter than one window"):
        window_bounds(3, 4)
    with pytest.raises(ValueError, match="positive"):
        window_bounds(10, 0)


def test_accumulation_summary_and_latent_drift():
    summary = accumulation_summary([2.0, 3.0, 4.0, 6.0], [0.25, 0.75, 1.25, 1.75])
    assert summary["fad_acc"] == 4.0 and summary["fad_ratio"] == 3.0
    assert summary["fad_slope_per_context"] == pytest.approx(
        np.polyfit([0.25, 0.75, 1.25, 1.75], [2, 3, 4, 6], 1)[0]
    )
    rng = np.random.default_rng(8)
    drift = np.linspace(0, 2, 40)[None, :, None]  # the mean walks away frame by frame
    latents = rng.normal(size=(50, 40, 4)) + drift
    stats = latent_window_statistics(latents, window_bounds(40, 10), np.zeros(4), np.ones(4))
    shifts = [window["mean_shift"] for window in stats]
    assert shifts == sorted(shifts) and shifts[0] < 0.5 < 1.5 < shifts[-1]
    assert all(0.9 < window["std_ratio"] < 1.1 for window in stats)


def test_real_windows_floor_is_near_the_generated_fad_for_real_like_sets():
    rng = np.random.default_rng(9)
    clips = [rng.normal(size=(40, 3)) for _ in range(30)]  # already "embedded": 40 frames of 3 dims per clip

    def windows_of_clip(_, clip):
        return [clip[start : start + 10] for start in range(0, 40, 10)]

    real = RealWindows.build(clips, [i % 2 == 0 for i in range(30)], windows_of_clip)
    assert real.num_reference_windows == 60 and len(real.held_out) == 60
    floor = real.floor(num_windows=20, num_sets=2)
    assert floor["same_size"] and len(floor["values"]) == 2 and floor["num_windows"] == 20
    same = fad_of_sets([rng.normal(size=(200, 3)), rng.normal(size=(200, 3))], real.reference)
    shifted = fad_of_sets([rng.normal(size=(200, 3)) + 1.0], real.reference)
    assert abs(same["fad"] - floor["fad"]) < 0.2 < shifted["fad"] - floor["fad"]
    too_big = real.floor(num_windows=100)
    assert not too_big["same_size"] and too_big["num_windows"] == 60
    with pytest.raises(ValueError, match="No reference window"):
        RealWindows.build(clips[:2], [True, True], windows_of_clip)


def test_reference_audio_from_a_folder_and_its_errors(tmp_path):
    import soundfile as sf

    from cam_hf.evaluation import load_reference_audio

    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "a.wav", np.zeros((800, 2), dtype=np.float32), 8000)  # stereo: averaged to mono
    sf.write(tmp_path / "sub" / "b.flac", np.ones(1600, dtype=np.float32) * 0.1, 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    clips, rates, names = load_reference_audio(str(tmp_path))
    assert names == ["a.wav", "sub/b.flac"] and rates == [8000, 16000]
    assert [c.shape for c in clips] == [(800,), (1600,)]
    assert len(load_reference_audio(str(tmp_path), max_clips=1)[0]) == 1
    with pytest.raises(ValueError, match="not a folder"):
        load_reference_audio(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        load_reference_audio(str(tmp_path / "empty"))
    (tmp_path / "sub" / "broken.wav").write_bytes(b"RIFF not audio")
    with pytest.raises(ValueError, match="Could not read reference file"):
        load_reference_audio(str(tmp_path))


# ---- pitch changes -----------------------------------------------------------------------------------------


def test_pitch_changes_count_notes_not_vibrato_slips_or_unpitched_frames():
    frames = np.arange(40)
    vibrato = PitchTrack(69 + 0.3 * np.sin(2 * np.pi * 5 * frames * 0.05), np.full(40, 0.9), seconds=2.0)
    assert count_pitch_changes(vibrato) == 0  # one held note, however it wobbles within a semitone
    scale = np.repeat(60.0 + np.arange(8), 5)  # 8 notes a semitone apart, 5 frames each
    assert count_pitch_changes(PitchTrack(scale, np.full(40, 0.9), 2.0)) == 7
    slipped = np.full(40, 60.0)
    slipped[17] = 72.0  # a one-frame octave error of the pitch tracker
    assert count_pitch_changes(PitchTrack(slipped, np.full(40, 0.9), 2.0)) == 0
    unpitched = np.full(40, 0.9)
    unpitched[::2] = 0.1  # every other frame is noise at a random "pitch": not a note
    noisy = np.where(unpitched > 0.5, 60.0, np.random.default_rng(0).uniform(40, 90, 40))
    assert count_pitch_changes(PitchTrack(noisy, unpitched, 2.0)) == 0
    assert count_pitch_changes(PitchTrack(noisy, np.full(40, 0.1), 2.0)) == 0  # nothing pitched at all
    figures = window_pitch_figures([PitchTrack(scale, np.full(40, 0.9), 2.0), vibrato])
    assert figures.shape == (2, 2) and figures[0].tolist() == pytest.approx([0.9, 3.5]) and figures[1, 1] == 0
    with pytest.raises(ValueError, match="voicing_threshold"):
        count_pitch_changes(vibrato, voicing_threshold=1.5)
    with pytest.raises(ValueError, match="min_interval"):
        count_pitch_changes(vibrato, min_interval=0)
