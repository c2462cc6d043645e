"""Generation speed of a trained CAMPipeline (by default the one shipped in models/), old code and new side by
side in one run.

The old code is another revision of cam_hf (`--baseline_revision`, by default the one before the frame loop,
decoding and import work of docs/performance.md), exported with `git archive` and imported beside this one
under the name `cam_hf_baseline`: both pipelines are built from the same saved weights in one process and
every figure is measured for the old and the new in turn, `--repeats` times, so that the load other work puts
on the machine falls on both alike. Each version runs with its own defaults (steps per frame from its
Sampler's config, Griffin-Lim iterations from its codec's, `--old_griffin_lim_iters` for the old one) unless
`--num_inference_steps` says otherwise, with one torch thread per stage (`--threads`). Printed side by side:

  * seconds of audio per wall second, decoding included and frames alone, on 1 core and on 2 cores (the
    process pinned to them): the new pipeline decodes on a second thread, beside the frame loop;
  * milliseconds per frame by stage, in the CPU time of the thread doing the work (which other processes' load
    disturbs much less than the wall), medians over the repeats: the Backbone's cached step, the Sampler's
    steps, the whole frame loop per frame, with classifier-free guidance, and Griffin-Lim decoding;
  * the time from `pipe.stream(...)` to its first chunk, with each version's default chunks (the new code's
    grow from 4 frames to 64; older code streams 64 from the start) and with chunks of 16 throughout;
  * from a cold start (a fresh `python` for each version), the time to `import cam_hf`, to
    `from cam_hf import CAMPipeline`, to the loaded pipeline and to the first chunk of `stream()`: the first
    sound a player could start;
  * with `--old_model revision`, the old code runs the model shipped at the old revision, so that the
    comparison is of what a user got then against what they get now (a new model may take fewer steps);
  * the new code's frame loop eager and compiled (`pipe.enable_compiled_frame_step()`, one compiled call per
    frame), in turn, without a callback (a callback turns the compiled step off): the CPU milliseconds per
    frame of a whole call, seconds of audio per wall second for the frames alone and with decoding, and the
    time the first call of each shape took to compile (unguided, and guided with w = 2);
  * the load average at the start and the end. Benchmarks print figures; they never assert them.

Run:  .venv/bin/python benchmarks/bench_shipped_model.py  [--model DIR] [--seconds 10] [--repeats 3]
      [--baseline_revision REV] [--num_inference_steps N] [--threads 1] [--old_model same|revision]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial

import numpy as np
import torch
from _common import REPOSITORY, FrameClock, load_average
from diffusers.utils.torch_utils import randn_tensor

# The revision before the frame loop, decoding and import work (docs/performance.md).
BASELINE_REVISION = "99dcf0a"
SHIPPED_NAME = "cam-music21-small"
# The cold start: what a script that plays the model's first sound does, timed from the interpreter's start.
COLD_START = """
import json, sys, time
stamps = {"started": time.time()}
import cam_hf
stamps["import cam_hf"] = time.time()
from cam_hf import CAMPipeline
stamps["from cam_hf import CAMPipeline"] = time.time()
pipe = CAMPipeline.from_pretrained(sys.argv[1])
pipe.set_progress_bar_config(disable=True)
pipe.autoencoder.register_to_config(griffin_lim_iters=int(sys.argv[2]))
stamps["pipeline loaded"] = time.time()
instrument = (pipe.backbone.config.instrument_names or [None])[0]
guidance = 2.0 if instrument else 1.0
next(iter(pipe.stream(audio_length_in_s=10.0, instrument=instrument, guidance_scale=guidance)))
stamps["first chunk"] = time.time()
print(json.dumps(stamps))
"""


def export_revision(revision: str) -> str:
    """A temporary folder holding `revision`'s cam_hf twice: as `fresh/cam_hf` (for a fresh process) and as
    `beside/cam_hf_baseline` (to import beside this one). `git archive` leaves the repository as it is."""
    folder = tempfile.mkdtemp(prefix=f"cam_hf-{revision}-")
    command = ["git", "-C", REPOSITORY, "archive", revision, "cam_hf", os.path.join("models", SHIPPED_NAME)]
    archive = subprocess.run(command, capture_output=True, check=True)
    os.makedirs(os.path.join(folder, "fresh"))
    subprocess.run(["tar", "-x", "-C", os.path.join(folder, "fresh")], input=archive.stdout, check=True)
    beside = os.path.join(folder, "beside", "cam_hf_baseline")
    shutil.copytree(os.path.join(folder, "fresh", "cam_hf"), beside)
    return folder


def build_pipeline(package: str, model: str):
    """The pipeline saved in `model`, built from `package`'s classes (`cam_hf` or `cam_hf_baseline`)."""
    import diffusers

    with open(os.path.join(model, "model_index.json")) as f:
        index = json.load(f)
    components = {}
    for name, (library, class_name) in ((k, v) for k, v in index.items() if not k.startswith("_")):
        if library == "diffusers":
            module = diffusers
        else:
            module = importlib.import_module(library.replace("cam_hf", package, 1))
        components[name] = getattr(module, class_name).from_pretrained(os.path.join(model, name))
    pipe = importlib.import_module(package).CAMPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def in_turn(versions: list[str], repeats: int):
    """(repeat, version) pairs, the order of the versions alternating from one repeat to the next."""
    for repeat in range(repeats):
        for version in versions if repeat % 2 == 0 else versions[::-1]:
            yield repeat, version


def measure(pipes: dict, seconds: float, steps: dict, repeats: int) -> dict[str, dict[str, list[float]]]:
    """Every figure of every repeat, for each version: {figure: {version: [values]}}."""
    samples: dict[str, dict[str, list[float]]] = {}

    def record(name: str, version: str, value: float) -> None:
        samples.setdefault(name, {}).setdefault(version, []).append(value)

    instrument = (pipes["new"].backbone.config.instrument_names or [None])[0]
    for version, pipe in pipes.items():  # warm-up
        pipe(num_frames=8, output_type="latent", num_inference_steps=steps[version], instrument=instrument)
    all_cores = sorted(os.sched_getaffinity(0))
    for setting, cores in (("1 core", all_cores[:1]), ("2 cores", all_cores[:2])):
        os.sched_setaffinity(0, cores)
        for _, version in in_turn(list(pipes), repeats):
            pipe, kwargs = pipes[version], dict(num_inference_steps=steps[version], instrument=instrument)
            for output_type, label in (("np", "with decoding"), ("latent", "frames only")):
                clock, start = FrameClock(), time.perf_counter()
                pipe(
                    audio_length_in_s=seconds,
                    output_type=output_type,
                    callback_on_step_end=clock,
                    generator=torch.Generator().manual_seed(0),
                    **kwargs,
                )
                record(f"{label}, {setting} (x real time)", version, seconds / (time.perf_counter() - start))
                if setting == "2 cores" and output_type == "latent":
                    record("frame loop, per frame (CPU ms)", version, float(np.median(clock.cpu_ms()[1:])))
            if setting == "2 cores" and instrument is not None:
                clock = FrameClock()
                pipe(
                    audio_length_in_s=seconds,
                    output_type="latent",
                    callback_on_step_end=clock,
                    guidance_scale=2.0,
                    generator=torch.Generator().manual_seed(0),
                    **kwargs,
                )
                record("frame loop, guidance w = 2 (CPU ms)", version, float(np.median(clock.cpu_ms()[1:])))

    # The stages, each measured for the old and the new in turn, step by step.
    for name, figures in stage_times(pipes, steps, repeats).items():
        for version, values in figures.items():
            samples.setdefault(name, {})[version] = values
    generator = torch.Generator().manual_seed(0)
    latents = pipes["new"](
        audio_length_in_s=seconds,
        output_type="latent",
        generator=generator,
        num_inference_steps=steps["new"],
        instrument=instrument,
    ).audios
    for _, version in in_turn(list(pipes), repeats):
        start = time.thread_time()
        pipes[version].decode_latents(latents)
        cpu_ms = 1000 * (time.thread_time() - start) / latents.shape[1]
        record("decoding, per frame (CPU ms)", version, cpu_ms)
    # Each version's default chunks (the new code starts with 4 frames and doubles up to 64; older code
    # streams 64 from the start), then chunks of 16 frames throughout.
    for label, chunk_frames in (("default chunks", None), ("16-frame chunks", 16)):
        for _, version in in_turn(list(pipes), repeats):
            chunking = {}
            if chunk_frames is not None:
                chunking["decode_chunk_frames"] = chunk_frames
                if "decode_first_chunk_frames" in inspect.signature(pipes[version].stream).parameters:
                    chunking["decode_first_chunk_frames"] = chunk_frames
            start = time.perf_counter()
            chunks = pipes[version].stream(
                audio_length_in_s=seconds,
                num_inference_steps=steps[version],
                instrument=instrument,
                **chunking,
            )
            next(iter(chunks))
            record(f"first chunk of stream(), {label} (ms)", version, 1000 * (time.perf_counter() - start))
            chunks.close()
    return samples


def generation_part(pipe, name: str):
    """`name` (`SlidingWindow`, `FrameSampler`, `sample_next_frame`) from `pipe`'s revision of cam_hf, or
    `None`: from its `generation` module, or where revisions without one kept it (the Backbone's, the
    pipeline's or the Sampler's module)."""
    package = type(pipe).__module__.rpartition(".")[0]
    modules = [f"{package}.generation"] if importlib.util.find_spec(f"{package}.generation") else []
    modules += [type(part).__module__ for part in (pipe.backbone, pipe, pipe.sampler)]
    return next((getattr(m, name) for m in map(importlib.import_module, modules) if hasattr(m, name)), None)


@torch.no_grad()
def stage_times(pipes: dict, steps: dict, repeats: int, frames: int = 40) -> dict[str, dict[str, list]]:
    """CPU ms of the Backbone's cached step and of a frame's Sampler steps, old and new alternating."""
    backbone_ms, sampler_ms = {version: [] for version in pipes}, {version: [] for version in pipes}
    windows, draws, conditions = {}, {}, {}
    for version, pipe in pipes.items():
        ids = pipe.prepare_instrument_ids((pipe.backbone.config.instrument_names or [None])[0], 1)
        shift = pipe.context_frames // 2
        window_class = generation_part(pipe, "SlidingWindow")
        windows[version] = window_class(pipe.backbone, shift, torch.tensor(0.02), ids)
        frame_sampler = generation_part(pipe, "FrameSampler")
        if frame_sampler is not None:
            draws[version] = frame_sampler(pipe.sampler, pipe.scheduler, steps[version])
        else:  # a revision without FrameSampler prepared the steps at every frame
            draw = generation_part(pipe, "sample_next_frame")
            draws[version] = partial(draw, pipe.sampler, pipe.scheduler, num_inference_steps=steps[version])
    latent_dim = pipes["new"].backbone.config.latent_dim
    # A Backbone with a short context also reads the frames clean (older revisions' windows take no such
    # argument); for timing, the fed frames serve as their own clean ones.
    clean = {v: bool(getattr(p.backbone.config, "short_context_frames", 0)) for v, p in pipes.items()}
    for _ in range(repeats):
        prompt = torch.randn(1, pipes["new"].context_frames // 2, latent_dim)
        for version in pipes:
            conditions[version] = windows[version].start(prompt, *([prompt] if clean[version] else []))
        for _ in range(min(frames, pipes["new"].context_frames // 2 - 1)):
            frame = randn_tensor((1, latent_dim))
            for version in pipes:
                start = time.thread_time()
                conditions[version] = windows[version].append(frame, *([frame] if clean[version] else []))
                backbone_ms[version].append(1000 * (time.thread_time() - start))
                start = time.thread_time()
                draws[version](conditions[version])
                sampler_ms[version].append(1000 * (time.thread_time() - start))
    return {"Backbone step (CPU ms)": backbone_ms, "Sampler, a frame's steps (CPU ms)": sampler_ms}


def compiled_frames(pipe, seconds: float, steps: int, repeats: int) -> dict[str, dict[str, list[float]]]:
    """The new pipeline's frames alone, eager and compiled in turn: {figure: {"eager" | "compiled": values}}.
    The compile times are those of the first call of each shape in this process (Inductor's on-disk cache,
    warm after an earlier run, shortens them)."""
    samples: dict[str, dict[str, list[float]]] = {}
    instrument = (pipe.backbone.config.instrument_names or [None])[0]
    settings = {"unguided": {}, "guided w = 2": {"guidance_scale": 2.0}} if instrument else {"unguided": {}}

    def generate(num_frames: int | None = None, output_type: str = "latent", **kwargs) -> None:
        length = {"num_frames": num_frames} if num_frames else {"audio_length_in_s": seconds}
        generator = torch.Generator().manual_seed(0)
        pipe(output_type=output_type, num_inference_steps=steps, instrument=instrument, generator=generator,
             **length, **kwargs)  # fmt: skip

    pipe.enable_compiled_frame_step()
    for label, kwargs in settings.items():
        start = time.perf_counter()
        generate(num_frames=8, **kwargs)
        samples.setdefault(f"compile, first call {label} (s)", {})["compiled"] = [time.perf_counter() - start]
    num_frames = math.ceil(seconds * pipe.frame_rate)
    for repeat in range(repeats):
        for mode in ("eager", "compiled") if repeat % 2 == 0 else ("compiled", "eager"):
            # Disabled, the pipeline keeps its compiled steps for the next enable.
            pipe.enable_compiled_frame_step() if mode == "compiled" else pipe.disable_compiled_frame_step()
            for label, kwargs in settings.items():
                start, cpu = time.perf_counter(), time.thread_time()
                generate(**kwargs)
                figures = {
                    f"frame loop, {label}, per frame (CPU ms)": 1000
                    * (time.thread_time() - cpu)
                    / num_frames,
                    f"frames only, {label} (x real time)": seconds / (time.perf_counter() - start),
                }
                # Decoding runs on the second core, beside the frame loop, as in `__call__`.
                start = time.perf_counter()
                generate(output_type="np", **kwargs)
                figures[f"with decoding, {label} (x real time)"] = seconds / (time.perf_counter() - start)
                for name, value in figures.items():
                    samples.setdefault(name, {}).setdefault(mode, []).append(value)
    pipe.disable_compiled_frame_step()
    return samples


def cold_start(model: str, checkout: str | None, griffin_lim_iters: int) -> dict:
    # One torch thread per stage, as in the other figures.
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    if checkout is not None:
        env["PYTHONPATH"] = checkout
    started = time.time()
    command = [sys.executable, "-c", COLD_START, model, str(griffin_lim_iters)]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()
    )
    stamps = json.loads(result.stdout.strip().splitlines()[-1])
    return {f"cold start: {name} (s)": stamp - started for name, stamp in stamps.items() if name != "started"}


def main(argv=None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--model", default=os.path.join(REPOSITORY, "models", SHIPPED_NAME))
    parser.add_argument("--seconds", type=float, default=10.0, help="Audio generated per run.")
    parser.add_argument("--repeats", type=int, default=3, help="Measurements of each figure per version.")
    parser.add_argument("--baseline_revision", default=BASELINE_REVISION, help="The old code's git revision.")
    parser.add_argument(
        "--num_inference_steps",
        type=int,
        help="Steps per frame for both (default: each version's Sampler's own).",
    )
    parser.add_argument(
        "--old_griffin_lim_iters",
        type=int,
        default=32,
        help="Griffin-Lim iterations of the old code (the shipped codec's, before).",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per stage.")
    parser.add_argument(
        "--old_model",
        choices=("same", "revision"),
        default="same",
        help="What the old code runs: the new one's weights (`same`), or the model shipped "
        "at --baseline_revision (`revision`: old model and code against new model and code).",
    )
    args = parser.parse_args(argv)
    # The cold starts run in another folder: a relative model path must still find the model.
    if os.path.isdir(args.model):
        args.model = os.path.abspath(args.model)
    torch.set_num_threads(args.threads)
    folder = export_revision(args.baseline_revision)
    sys.path.append(os.path.join(folder, "beside"))
    print(
        f"model {args.model}; {args.seconds:g} s per run, {args.repeats} repeats; old: cam_hf of "
        f"{args.baseline_revision}; {args.threads} torch thread(s) per stage; load average at start: "
        f"{load_average()}",
        flush=True,
    )

    models = {"old": args.model, "new": args.model}
    if args.old_model == "revision":
        models["old"] = os.path.join(folder, "fresh", "models", SHIPPED_NAME)
    print(f"old model: {models['old']}", flush=True)
    pipes = {"old": build_pipeline("cam_hf_baseline", models["old"])}
    pipes["new"] = build_pipeline("cam_hf", args.model)
    if not importlib.import_module("cam_hf").__file__.startswith(REPOSITORY):
        raise RuntimeError(f"cam_hf was not imported from {REPOSITORY}: run from the repository.")
    pipes["old"].autoencoder.register_to_config(griffin_lim_iters=args.old_griffin_lim_iters)
    steps = {
        version: args.num_inference_steps or pipe.sampler.config.get("num_inference_steps", 16)
        for version, pipe in pipes.items()
    }
    samples = measure(pipes, args.seconds, steps, args.repeats)
    samples["steps per frame"] = {version: [value] for version, value in steps.items()}
    samples["Griffin-Lim iterations"] = {
        version: [pipe.autoencoder.config.griffin_lim_iters] for version, pipe in pipes.items()
    }
    for _ in range(args.repeats):
        for version, checkout in (("old", os.path.join(folder, "fresh")), ("new", None)):
            iterations = pipes[version].autoencoder.config.griffin_lim_iters
            figures = cold_start(models[version], checkout, iterations)
            for name, value in figures.items():
                samples.setdefault(name, {}).setdefault(version, []).append(value)

    print(f"\n{'':60s}{'old':>10s}{'new':>10s}{'new / old':>11s}")
    for name, values in samples.items():
        # Speeds: the best repeat (the least disturbed); CPU times: the median; latencies: the best.
        aggregate = max if "x real time" in name else statistics.median if "CPU ms" in name else min
        old, new = (aggregate(values[version]) for version in ("old", "new"))
        print(f"{name:60s}{old:10.2f}{new:10.2f}{new / old:11.2f}")
    compiled = compiled_frames(pipes["new"], args.seconds, steps["new"], args.repeats)
    print(f"\nnew code, frame loop eager and compiled (2 cores; load average now {load_average()})")
    print(f"{'':60s}{'eager':>10s}{'compiled':>10s}{'c / e':>11s}")
    for name, values in compiled.items():
        aggregate = max if "x real time" in name else statistics.median if "CPU ms" in name else min
        fast = aggregate(values["compiled"])
        if "eager" not in values:  # a compile time
            print(f"{name:60s}{'':10s}{fast:10.2f}")
            continue
        eager = aggregate(values["eager"])
        print(f"{name:60s}{eager:10.2f}{fast:10.2f}{fast / eager:11.2f}")
    print(f"\nload average at end: {load_average()}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
