"""Generating for a long time: the cost of a frame and the memory held must not grow with the length.

A tiny random model (`cam_hf.testing_utils`: Backbone 2 layers x 32 with a 255-frame context, Sampler 2 blocks
x 32, 16 flow steps per frame) on a mel codec at the default rate (22.05 kHz, 2048 samples and 128 dims per
frame, i.e. 10.77 frames/s; 16 mel bands x 8 frames, so no PCA to fit; Griffin-Lim), so that an hour of audio
takes minutes and whatever grows with the length (copies of the frames so far, caches, decoding buffers) is a
large share of each frame, where a real model's weights would hide it.

For each duration (10 s, 600 s and 3600 s by default), in a fresh process: `CAMPipeline.stream` is consumed
chunk by chunk and each chunk dropped (as a player does once it has played it), every frame timestamped from
`callback_on_step_end` in wall time and in the CPU time of the thread making the frames (decoding runs on
another), the resident memory sampled every 2 ms. Printed per duration: ms per frame (median; mean, which
includes the window rebuilds and the decoding of each chunk; the mean over each tenth of the run, first to
last, whose spread shows any growth with the length), wall time, peak RSS and its growth over the built
pipeline. On a machine others use, read the CPU times: other processes' load moves the wall times by tens of
percent over a long run.

`--baseline PATH` runs the same measurement with another checkout of cam_hf (its child processes import cam_hf
from PATH: a git worktree of an older commit, say; it needs `cam_hf/testing_utils.py`, copy it in if the
commit predates it) and prints the ratios side by side. Timings are wall clock on a machine others may use:
the load average is printed at the start and the end. Benchmarks print figures; they never assert them.

Run:  .venv/bin/python benchmarks/bench_long_generation.py  [--durations 10 600 3600] [--baseline DIR]
      [--num_inference_steps 16] [--output_type np|latent] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from _common import FrameClock, PeakMemory, load_average

BACKBONE = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=64,
    max_position_embeddings=256,
)


def measure(seconds: float, steps: int, output_type: str, threads: int) -> dict:
    """Streams `seconds` of audio from the tiny pipeline (in this process) and returns the figures."""
    import torch

    from cam_hf import MelAutoencoder
    from cam_hf.testing_utils import random_pipeline

    torch.set_num_threads(threads)
    pipe = random_pipeline(autoencoder=MelAutoencoder(n_mels=16), backbone_config=BACKBONE)
    clock = FrameClock()
    with PeakMemory() as memory:
        clock.start()
        chunks = pipe.stream(
            audio_length_in_s=seconds,
            num_inference_steps=steps,
            output_type=output_type,
            generator=torch.Generator().manual_seed(0),
            callback_on_step_end=clock,
        )
        values = sum(chunk.numel() if isinstance(chunk, torch.Tensor) else chunk.size for chunk in chunks)
        wall = time.perf_counter() - clock.wall[0]
    return {
        "wall_s": wall,
        "wall_ms": clock.wall_ms().tolist(),
        "cpu_ms": clock.cpu_ms().tolist(),
        "values": values,
        "rss_before_mib": memory.baseline / 2**20,
        "peak_rss_mib": memory.peak / 2**20,
    }


def measure_in_fresh_process(
    seconds: float, steps: int, output_type: str, threads: int, library: str | None
) -> dict:
    """`measure` in a new Python process (its own peak memory, a clean allocator), importing cam_hf from
    `library` when given."""
    environment = dict(os.environ)
    if library:
        environment["PYTHONPATH"] = os.pathsep.join([library, environment.get("PYTHONPATH", "")])
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--_child",
        str(seconds),
        "--num_inference_steps",
        str(steps),
        "--output_type",
        output_type,
        "--threads",
        str(threads),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment).stdout
    return json.loads(output.strip().splitlines()[-1])


def summary(result: dict) -> dict:
    """Per-frame figures: median and mean (the mean includes the window rebuilds and the decoding of each
    chunk), and the mean over each tenth of the frames, first to last, whose spread shows any growth with the
    length."""
    figures = {
        "frames": len(result["wall_ms"]),
        "wall": result["wall_s"],
        "peak": result["peak_rss_mib"],
        "growth": result["peak_rss_mib"] - result["rss_before_mib"],
    }
    for clock in ("wall_ms", "cpu_ms"):
        per_frame = np.array(result[clock])
        tenths = [float(part.mean()) for part in np.array_split(per_frame, 10)]
        figures[clock] = {
            "median": float(np.median(per_frame)),
            "mean": float(per_frame.mean()),
            "tenths": tenths,
        }
    return figures


def describe(name: str, figures: dict) -> str:
    lines = [
        f"  {name}: {figures['frames']} frames in {figures['wall']:.1f} s; peak RSS {figures['peak']:,.0f} "
        f"MiB (+{figures['growth']:,.0f} MiB over the built pipeline)"
    ]
    for clock, label in (("wall_ms", "wall"), ("cpu_ms", "CPU ")):
        per_frame = figures[clock]
        tenths = per_frame["tenths"]
        lines.append(
            f"    {label} ms per frame: median {per_frame['median']:.2f}, mean {per_frame['mean']:.2f}; mean "
            f"by tenth of the run {' '.join(f'{x:.1f}' for x in tenths)} (last / first "
            f"{tenths[-1] / tenths[0]:.2f})"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--durations",
        type=float,
        nargs="+",
        default=[10.0, 600.0, 3600.0],
        help="Seconds of audio to generate, each in a fresh process.",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="Another checkout of cam_hf to measure side by side (its folder, holding cam_hf/).",
    )
    parser.add_argument("--num_inference_steps", type=int, default=16, help="Sampler flow steps per frame.")
    parser.add_argument(
        "--output_type",
        choices=["np", "latent"],
        default="np",
        help="'latent' leaves decoding out: frames are then cheap, and any growth stands out.",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 leaves a core to other work)."
    )
    parser.add_argument("--_child", type=float, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args._child is not None:
        print(json.dumps(measure(args._child, args.num_inference_steps, args.output_type, args.threads)))
        return
    print(
        f"tiny pipeline: Backbone {BACKBONE}, Sampler 2 x 32, {args.num_inference_steps} steps, mel codec "
        f"(10.77 frames/s), output_type {args.output_type!r}, "
        f"{args.threads} thread(s); load average at start: {load_average()}"
    )
    for seconds in args.durations:
        print(f"=== {seconds:.0f} s", flush=True)
        current = summary(
            measure_in_fresh_process(seconds, args.num_inference_steps, args.output_type, args.threads, None)
        )
        print(describe("this checkout", current), flush=True)
        if args.baseline:
            baseline = summary(
                measure_in_fresh_process(
                    seconds, args.num_inference_steps, args.output_type, args.threads, args.baseline
                )
            )
            print(describe(f"baseline {args.baseline}", baseline))
            cpu, cpu_baseline = current["cpu_ms"], baseline["cpu_ms"]
            print(
                "  this checkout / baseline: CPU ms per frame, mean "
                f"{cpu['mean'] / cpu_baseline['mean']:.2f}x, last tenth "
                f"{cpu['tenths'][-1] / cpu_baseline['tenths'][-1]:.2f}x; wall "
                f"{current['wall'] / baseline['wall']:.2f}x; "
                f"RSS growth {current['growth']:,.0f} vs {baseline['growth']:,.0f} MiB",
                flush=True,
            )
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
