"""The trained model shipped in models/cam-music21-small: complete, small, safetensors only, and it loads and
plays.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from cam_hf import CAMPipeline

MODEL = Path(__file__).resolve().parents[1] / "models" / "cam-music21-small"


def test_the_shipped_model_is_small_and_holds_no_pickles():
    files = [path for path in MODEL.rglob("*") if path.is_file()]
    assert (MODEL / "model_index.json").is_file() and (MODEL / "README.md").is_file()
    assert sum(path.stat().st_size for path in files) < 30 * 2**20
    assert not [path for path in files if path.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
    assert len([path for path in files if path.suffix == ".safetensors"]) >= 3  # Backbone, Sampler, codec


def test_the_shipped_remote_code_is_the_librarys():
    # `AutoModel.from_pretrained(..., trust_remote_code=True)` runs the copies next to the weights: they must
    # not drift from the sources the tests check.
    library = Path(__file__).resolve().parents[1] / "cam_hf"
    for name in ("modeling_cam.py", "configuration_cam.py"):
        shipped = (MODEL / "backbone" / name).read_text()
        assert shipped == (library / name).read_text(), f"copy cam_hf/{name} to {MODEL.name}/backbone/"


def test_the_shipped_model_generates_each_of_its_instruments():
    pipe = CAMPipeline.from_pretrained(str(MODEL))
    pipe.set_progress_bar_config(disable=True)
    names = pipe.backbone.config.instrument_names
    assert len(names) == 12 and "violin" in names and "flute" in names
    with open(MODEL / "backbone" / "config.json") as f:
        assert json.load(f)["instrument_names"] == names  # a saved model knows its labels
    frames = pipe(
        batch_size=len(names),
        instrument=names,
        num_frames=12,
        output_type="latent",
        generator=[torch.Generator().manual_seed(i) for i in range(len(names))],
    ).audios
    assert frames.shape == (len(names), 12, pipe.backbone.config.latent_dim) and torch.isfinite(frames).all()
    audio = pipe(
        instrument="cello",
        guidance_scale=2.0,
        audio_length_in_s=1.0,
        generator=torch.Generator().manual_seed(0),
    ).audios
    assert audio.shape[-1] >= pipe.sample_rate and np.isfinite(audio).all() and 0 < np.abs(audio).max() < 4


def test_a_stream_dropped_just_before_exit_ends_the_process_cleanly():
    # The decoding thread is busy with the next chunk when the first one is taken and the script ends: closing
    # the stream waits for it, instead of leaving it inside torch while the interpreter shuts down (which
    # aborted the process: "terminate called without an active exception").
    script = (
        "import sys\n"
        "from cam_hf import CAMPipeline\n"
        "pipe = CAMPipeline.from_pretrained(sys.argv[1])\n"
        "pipe.set_progress_bar_config(disable=True)\n"
        "print(next(iter(pipe.stream(audio_length_in_s=20.0, decode_chunk_frames=8))).shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(MODEL)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0 and "terminate called" not in result.stderr, result.stderr[-2000:]
    assert "(1, 1, 8192)" in result.stdout  # the first chunk: 4 frames of 2048 samples (then 8, 8, ...)


def test_the_shipped_model_generates_what_it_generated_when_it_shipped():
    # tests/data/shipped_model_frames.json holds the first frames the shipped model drew, for fixed seeds,
    # with the code of the commit that shipped it (its `made_by`): changing or moving code must not change
    # what a user gets. Re-make it (these cases, written as JSON) only when the shipped weights change.
    reference = json.loads((Path(__file__).parent / "data" / "shipped_model_frames.json").read_text())[
        "frames"
    ]
    pipe = CAMPipeline.from_pretrained(str(MODEL))
    pipe.set_progress_bar_config(disable=True)
    t = np.arange(22050) / 22050
    prompt = (0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-2 * t)).astype(np.float32)
    cases = {
        "unconditional": dict(generator=torch.Generator().manual_seed(0)),
        "violin, guidance 2": dict(
            instrument="violin", guidance_scale=2.0, generator=torch.Generator().manual_seed(1)
        ),
        "continuation": dict(audio=prompt, sample_rate=22050, generator=torch.Generator().manual_seed(2)),
    }
    for name, kwargs in cases.items():
        frames = pipe(num_frames=12, output_type="latent", **kwargs).audios[0, :8, :32]
        torch.testing.assert_close(frames, torch.tensor(reference[name]), rtol=0, atol=1e-4, msg=name)
