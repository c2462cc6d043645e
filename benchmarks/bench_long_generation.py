"""Generating for a long time: the cost of a frame and the memory held must not grow with the length.

A tiny random model (`cam_hf.testing_utils`: Backbone 2 layers x 32 with a 255-frame context, Sampler 2 blocks x 32,
16 flow steps per frame) on a mel codec at the default rate (22.05 kHz, 2048 samples and 128 dims per frame, i.e.
10.77 frames/s; 16 mel bands x 8 frames, so no PCA to fit; Griffin-Lim), so that an hour of audio takes minutes and
whatever grows with the length (copies of the frames so far, caches, decoding buffers) is a large share of each
frame, where a real model's weights would hide it.

For each duration (10 s, 600 s and 3600 s by default), in a fresh process: `CAMPipeline.stream` is consumed chunk
by chunk and each chunk dropped (as a player does once it has played it), every frame timestamped from
`callback_on_step_end`, the resident memory sampled every 2 ms. Printed per duration: ms per frame (median, mean
including the window rebuilds and the decoding of each chunk, and the means over the first and the last 10 % of the
frames, whose ratio shows any growth), wall time, peak RSS and its growth over the built pipeline.

`--baseline PATH` runs the same measurement with another checkout of cam_hf (its child processes import cam_hf
from PATH: a git worktree of an older commit, say; it needs `cam_hf/testing_utils.py`, copy it in if the commit
predates it) and prints the ratios side by side. Timings are wall clock on a machine others may use: the load
average is printed at the start and the end. Benchmarks print figures; they never assert them.

Run:  .venv/bin/python benchmarks/bench_long_generation.py  [--durations 10 600 3600] [--baseline DIR]
      [--num_inference_steps 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from bench_generate import PeakMemory, load_average

BACKBONE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=64, max_position_embeddings=256)


def measure(seconds: float, steps: int, threads: int) -> dict:
    """Streams `seconds` of audio from the tiny pipeline (in this process) and returns the figures."""
    import torch

    from cam_hf import MelAutoencoder
    from cam_hf.testing_utils import random_pipeline

    torch.set_num_threads(threads)
    pipe = random_pipeline(autoencoder=MelAutoencoder(n_mels=16), backbone_config=BACKBONE)
    stamps = []

    def on_frame(pipe, index, timestep, callback_kwargs):
        stamps.append(time.perf_counter())
        return callback_kwargs

    with PeakMemory() as memory:
        start = time.perf_counter()
        chunks = pipe.stream(audio_length_in_s=seconds, num_inference_steps=steps,
                             generator=torch.Generator().manual_seed(0), callback_on_step_end=on_frame)
        samples = sum(chunk.shape[-1] for chunk in chunks)
        wall = time.perf_counter() - start
    return {"wall_s": wall, "per_frame_ms": (np.diff([start] + stamps) * 1000).tolist(), "samples": samples,
            "rss_before_mib": memory.baseline / 2**20, "peak_rss_mib": memory.peak / 2**20}


def measure_in_fresh_process(seconds: float, steps: int, threads: int, library: str | None) -> dict:
    """`measure` in a new Python process (its own peak memory, a clean allocator), importing cam_hf from `library`
    when given."""
    environment = dict(os.environ)
    if library:
        environment["PYTHONPATH"] = os.pathsep.join([library, environment.get("PYTHONPATH", "")])
    command = [sys.executable, os.path.abspath(__file__), "--_child", str(seconds), "--num_inference_steps", str(steps),
               "--threads", str(threads)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment).stdout
    return json.loads(output.strip().splitlines()[-1])


def summary(result: dict) -> dict:
    per_frame = np.array(result["per_frame_ms"])
    tenth = max(1, len(per_frame) // 10)
    return {
        "frames": len(per_frame),
        "median": float(np.median(per_frame)),
        "mean": float(per_frame.mean()),
        "first": float(per_frame[:tenth].mean()),
        "last": float(per_frame[-tenth:].mean()),
        "wall": result["wall_s"],
        "peak": result["peak_rss_mib"],
        "growth": result["peak_rss_mib"] - result["rss_before_mib"],
    }


def describe(name: str, figures: dict) -> str:
    return (
        f"  {name}: {figures['frames']} frames in {figures['wall']:.1f} s; ms per frame median {figures['median']:.2f}, "
        f"mean {figures['mean']:.2f}, first 10 % {figures['first']:.2f}, last 10 % {figures['last']:.2f} "
        f"({100 * (figures['last'] / figures['first'] - 1):+.0f} %); peak RSS {figures['peak']:,.0f} MiB "
        f"(+{figures['growth']:,.0f} MiB over the built pipeline)"
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=float, nargs="+", default=[10.0, 600.0, 3600.0],
                        help="Seconds of audio to generate, each in a fresh process.")
    parser.add_argument("--baseline", default=None,
                        help="Another checkout of cam_hf to measure side by side (its folder, holding cam_hf/).")
    parser.add_argument("--num_inference_steps", type=int, default=16, help="Sampler flow steps per frame.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves a core to other work).")
    parser.add_argument("--_child", type=float, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args._child is not None:
        print(json.dumps(measure(args._child, args.num_inference_steps, args.threads)))
        return
    print(f"tiny pipeline: Backbone {BACKBONE}, Sampler 2 x 32, {args.num_inference_steps} steps, mel codec "
          "(10.77 frames/s), "
          f"{args.threads} thread(s); load average at start: {load_average()}")
    for seconds in args.durations:
        print(f"=== {seconds:.0f} s", flush=True)
        current = summary(measure_in_fresh_process(seconds, args.num_inference_steps, args.threads, None))
        print(describe("this checkout", current), flush=True)
        if args.baseline:
            baseline = summary(measure_in_fresh_process(seconds, args.num_inference_steps, args.threads, args.baseline))
            print(describe(f"baseline {args.baseline}", baseline))
            print(f"  this checkout / baseline: mean ms per frame {current['mean'] / baseline['mean']:.2f}x, last 10 % "
                  f"{current['last'] / baseline['last']:.2f}x, wall {current['wall'] / baseline['wall']:.2f}x, "
                  f"RSS growth {current['growth']:,.0f} vs {baseline['growth']:,.0f} MiB", flush=True)
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
