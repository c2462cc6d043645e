"""Generation speed of a trained CAMPipeline (by default the one shipped in models/) on this CPU.

Prints, for the pipeline in float32 (the reference) and in bfloat16, side by side:

  * seconds of audio per wall second, decoding included (what a user waits for), and without decoding;
  * milliseconds per frame for the frames alone (Backbone step + Sampler flow), from the pipeline's callback;
  * the cost of classifier-free guidance on the instrument: the same frames with `guidance_scale` 1 (one pass) and
    3 (the conditional and unconditional halves in one batch of two), as ms per frame and as a ratio.

Each figure is the best of `--repeats` runs (the least disturbed by other work on the machine); the load average is
printed at the start and the end. Benchmarks print figures; they never assert them.

Run:  .venv/bin/python benchmarks/bench_shipped_model.py  [--model DIR] [--seconds 20] [--threads 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from cam_hf import CAMPipeline

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(pipe: CAMPipeline, seconds: float, output_type: str, repeats: int, **kwargs) -> tuple[float, float]:
    """Best wall time of `repeats` calls, and the mean ms per frame of the frames (callback to callback) in it."""
    best, best_frame_ms = float("inf"), float("nan")
    for _ in range(repeats):
        stamps: list[float] = []

        def clock(pipe, index, timestep, callback_kwargs, stamps=stamps):
            stamps.append(time.perf_counter())
            return callback_kwargs

        start = time.perf_counter()
        pipe(audio_length_in_s=seconds, output_type=output_type, generator=torch.Generator().manual_seed(0),
             callback_on_step_end=clock, **kwargs)
        wall = time.perf_counter() - start
        if wall < best:
            best = wall
            best_frame_ms = 1000 * (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1)
    return best, best_frame_ms


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.join(REPOSITORY, "models", "cam-music21-small"))
    parser.add_argument("--seconds", type=float, default=20.0, help="Audio generated per run.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores).")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"model {args.model}; {args.seconds:g} s per run, best of {args.repeats}; {torch.get_num_threads()} torch "
          f"thread(s); load average at start: {load_average()}")

    rows = {}
    for dtype in (torch.float32, torch.bfloat16):
        pipe = CAMPipeline.from_pretrained(args.model, torch_dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        instrument = (pipe.backbone.config.instrument_names or [None])[0]
        with_decoding, _ = timed(pipe, args.seconds, "np", args.repeats, instrument=instrument)
        frames_only, frame_ms = timed(pipe, args.seconds, "latent", args.repeats, instrument=instrument)
        row = {"with decoding": args.seconds / with_decoding, "frames only": args.seconds / frames_only,
               "ms per frame": frame_ms}
        if instrument is not None:
            _, guided_ms = timed(pipe, args.seconds, "latent", args.repeats, instrument=instrument, guidance_scale=3.0)
            row["ms per frame, guided"] = guided_ms
            row["guidance cost"] = guided_ms / frame_ms
        rows[str(dtype).replace("torch.", "")] = row

    names = list(rows)
    print(f"\n{'':28s}" + "".join(f"{name:>14s}" for name in names) + f"{'bf16 / fp32':>14s}")
    for key in rows[names[0]]:
        values = [rows[name][key] for name in names]
        unit = "x real time" if key in ("with decoding", "frames only") else ""
        print(f"{key + (' (' + unit + ')' if unit else ''):28s}" + "".join(f"{v:14.2f}" for v in values)
              + f"{values[1] / values[0]:14.2f}")
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
