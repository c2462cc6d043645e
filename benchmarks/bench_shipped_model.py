"""Generation speed of a trained CAMPipeline (by default the one shipped in models/), old code and new side by
side.

The old code is another revision of cam_hf (`--baseline_revision`, by default the one before the frame loop,
decoding and import work of docs/performance.md), exported with `git archive` to a temporary folder; every
measurement runs in a fresh process that imports cam_hf from that folder or from this repository, the two
alternating, for `--rounds` rounds: speeds keep the best round (the least disturbed by other work on the
machine), CPU times the median. Each version runs with its own defaults (steps per frame from its Sampler's
config, Griffin-Lim iterations from the codec's), unless `--num_inference_steps` says otherwise. Printed side
by side:

  * seconds of audio per wall second with decoding, on 1 core (the process pinned to it) and on 2 cores, one
    torch thread per stage (the new pipeline decodes on a second thread, beside the frame loop, so it uses two
    cores with one torch thread; `--two_threads` adds two torch threads per stage), and without decoding;
  * milliseconds per frame by stage, in the CPU time of the thread that does the work (which other processes'
    load disturbs much less than the wall): the Backbone's cached step, the Sampler's steps, the rest of the
    frame loop (a frame of the pipeline minus the two), and Griffin-Lim decoding per frame;
  * the time from `pipe.stream(...)` to its first chunk, in a warm process, with the default chunk (64 frames)
    and with `decode_chunk_frames=16`;
  * from a cold start (a fresh `python`), the time to `import cam_hf`, to `from cam_hf import CAMPipeline`, to
    the loaded pipeline and to the first chunk of `stream()`: the first sound a player could start;
  * the load average at the start and the end. Benchmarks print figures; they never assert them.

Run:  .venv/bin/python benchmarks/bench_shipped_model.py  [--model DIR] [--seconds 20] [--rounds 2]
      [--baseline_revision REV | --baseline DIR] [--num_inference_steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import REPOSITORY, FrameClock, load_average, run_script

# The revision before the frame loop, decoding and import work (docs/performance.md, "Before and after").
BASELINE_REVISION = "99dcf0a"
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
if len(sys.argv) > 2:
    pipe.autoencoder.register_to_config(griffin_lim_iters=int(sys.argv[2]))
stamps["pipeline loaded"] = time.time()
instrument = (pipe.backbone.config.instrument_names or [None])[0]
guidance = 2.0 if instrument else 1.0
next(iter(pipe.stream(audio_length_in_s=10.0, instrument=instrument, guidance_scale=guidance)))
stamps["first chunk"] = time.time()
print(json.dumps(stamps))
"""


def measure(
    model: str, seconds: float, threads: int, cores: int, steps: int | None, griffin_lim_iters: int | None
) -> dict:
    """In this process (a worker): speed figures of the pipeline in `model` with this process's cam_hf."""
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    import numpy as np
    import torch

    import cam_hf
    from cam_hf import CAMPipeline, sample_next_frame
    from cam_hf.pipeline_cam import SlidingWindow

    torch.set_num_threads(threads)
    pipe = CAMPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    if griffin_lim_iters is not None:
        pipe.autoencoder.register_to_config(griffin_lim_iters=griffin_lim_iters)
    steps = steps or pipe.sampler.config.get("num_inference_steps", 16)
    instrument = (pipe.backbone.config.instrument_names or [None])[0]
    kwargs = dict(audio_length_in_s=seconds, instrument=instrument, num_inference_steps=steps)
    figures = {"steps": steps, "griffin_lim_iters": pipe.autoencoder.config.griffin_lim_iters}

    def generate(output_type: str, **extra) -> tuple[float, FrameClock]:
        clock = FrameClock()
        start = time.perf_counter()
        pipe(output_type=output_type, generator=torch.Generator().manual_seed(0), callback_on_step_end=clock,
             **kwargs, **extra)
        return time.perf_counter() - start, clock

    generate("latent")  # warm-up
    wall, _ = generate("np")
    figures["with decoding (x real time)"] = seconds / wall
    wall, clock = generate("latent")
    figures["frames only (x real time)"] = seconds / wall
    frame_ms = float(np.median(clock.cpu_ms()[1:]))
    if instrument is not None:
        _, guided = generate("latent", guidance_scale=2.0)
        figures["frame loop with guidance w = 2, per frame (CPU ms)"] = float(np.median(guided.cpu_ms()[1:]))

    with torch.no_grad():
        ids = None if instrument is None else pipe.prepare_instrument_ids(instrument, 1)
        window = SlidingWindow(pipe.backbone, pipe.context_frames // 2, torch.tensor(0.02), ids)
        condition = window.start(torch.randn(1, pipe.context_frames // 2, pipe.backbone.config.latent_dim))
        frame = torch.randn(1, pipe.backbone.config.latent_dim)
        backbone = []
        for _ in range(pipe.context_frames // 2 - 1):
            start = time.thread_time()
            condition = window.append(frame)
            backbone.append(1000 * (time.thread_time() - start))
        if hasattr(cam_hf.sampler, "FrameSampler"):
            draw = cam_hf.sampler.FrameSampler(pipe.sampler, pipe.scheduler, steps)
        else:  # the old loop: sample_next_frame prepared the steps at every frame
            def draw(condition):
                return sample_next_frame(pipe.sampler, pipe.scheduler, condition, steps)
        sampler = []
        for _ in range(100):
            start = time.thread_time()
            draw(condition)
            sampler.append(1000 * (time.thread_time() - start))
        latents = pipe(output_type="latent", generator=torch.Generator().manual_seed(0), **kwargs).audios
        start, wall = time.thread_time(), time.perf_counter()
        pipe.decode_latents(latents)
        decode_cpu, decode_wall = time.thread_time() - start, time.perf_counter() - wall
    backbone_ms, sampler_ms = statistics.median(backbone), statistics.median(sampler)
    figures["Backbone step (CPU ms)"] = backbone_ms
    figures["Sampler, all steps of a frame (CPU ms)"] = sampler_ms
    figures["rest of the frame loop (CPU ms)"] = frame_ms - backbone_ms - sampler_ms
    figures["frame loop, per frame (CPU ms)"] = frame_ms
    figures["decoding, per frame (CPU ms)"] = 1000 * decode_cpu / latents.shape[1]
    figures["decoding, per frame (wall ms)"] = 1000 * decode_wall / latents.shape[1]

    for chunk_frames in (64, 16):
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            generator = torch.Generator().manual_seed(0)
            next(iter(pipe.stream(decode_chunk_frames=chunk_frames, generator=generator, **kwargs)))
            best = min(best, time.perf_counter() - start)
        figures[f"first chunk of stream(), {chunk_frames}-frame chunks (ms)"] = 1000 * best
    return figures


def export_revision(revision: str) -> str:
    """`cam_hf` of `revision` in a temporary folder (`git archive`: the repository itself is left as it
    is)."""
    folder = tempfile.mkdtemp(prefix=f"cam_hf-{revision}-")
    command = ["git", "-C", REPOSITORY, "archive", revision, "cam_hf"]
    archive = subprocess.run(command, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
    return folder


def cold_start(model: str, checkout: str | None, griffin_lim_iters: int | None) -> dict:
    # One torch thread per stage: on a machine others use, two threads per stage stall each other.
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    if checkout is not None:
        env["PYTHONPATH"] = checkout
    started = time.time()
    command = [sys.executable, "-c", COLD_START, model]
    if griffin_lim_iters is not None:
        command.append(str(griffin_lim_iters))
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()
    )
    stamps = json.loads(result.stdout.strip().splitlines()[-1])
    return {f"cold start: {name} (s)": stamp - started for name, stamp in stamps.items() if name != "started"}


def main(argv=None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--model", default=os.path.join(REPOSITORY, "models", "cam-music21-small"))
    parser.add_argument("--seconds", type=float, default=20.0, help="Audio generated per run.")
    parser.add_argument("--rounds", type=int, default=2, help="Fresh processes per version and setting.")
    parser.add_argument("--baseline_revision", default=BASELINE_REVISION, help="The old code's git revision.")
    parser.add_argument("--baseline", help="A folder holding the old code's cam_hf, instead of a revision.")
    parser.add_argument("--num_inference_steps", type=int,
                        help="Steps per frame for both (default: each version's own).")
    parser.add_argument("--old_griffin_lim_iters", type=int, default=32,
                        help="Griffin-Lim iterations of the old code (the shipped codec's, before).")
    parser.add_argument("--two_threads", action="store_true",
                        help="Also two torch threads per stage on 2 cores (stalls on a loaded machine).")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.model, args.seconds, **json.loads(args.worker))))
        return

    baseline = args.baseline or export_revision(args.baseline_revision)
    versions = {"old": (baseline, args.old_griffin_lim_iters), "new": (None, None)}
    settings = {"1 core": dict(cores=1, threads=1), "2 cores": dict(cores=2, threads=1)}
    if args.two_threads:
        settings["2 cores, 2 torch threads"] = dict(cores=2, threads=2)
    old = args.baseline or args.baseline_revision
    print(f"model {args.model}; {args.seconds:g} s per run; old: cam_hf of {old}; {args.rounds} rounds; "
          f"load average at start: {load_average()}", flush=True)
    # Every figure of every round: speeds keep the best round, CPU times the median, latencies the best.
    samples: dict[str, dict[str, list[float]]] = {}
    worker = [os.path.abspath(__file__), "--model", args.model, "--seconds", str(args.seconds)]
    for _ in range(args.rounds):
        for version, (checkout, griffin_lim_iters) in versions.items():
            for setting, options in settings.items():
                options = dict(options, steps=args.num_inference_steps, griffin_lim_iters=griffin_lim_iters)
                figures = run_script(worker[0], [*worker[1:], "--worker", json.dumps(options)], checkout)
                for name, value in figures.items():
                    if "x real time" in name:
                        name = f"{name.replace(' (x real time)', '')}, {setting} (x real time)"
                    elif setting != "2 cores":
                        continue
                    samples.setdefault(name, {}).setdefault(version, []).append(value)
            for name, value in cold_start(args.model, checkout, griffin_lim_iters).items():
                samples.setdefault(name, {}).setdefault(version, []).append(value)
            print(f"  {version} done, load average {load_average()}", flush=True)

    print(f"\n{'':60s}{'old':>10s}{'new':>10s}{'new / old':>11s}")
    for name, values in samples.items():
        aggregate = max if "x real time" in name else statistics.median if "CPU ms" in name else min
        old, new = (aggregate(values.get(version, [float("nan")])) for version in ("old", "new"))
        print(f"{name:60s}{old:10.2f}{new:10.2f}{new / old:11.2f}")
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
