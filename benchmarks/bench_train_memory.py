"""Training on corpora of growing size: resident memory must not grow with the dataset, and the speed must
hold.

`examples/train.py` itself trains `--steps` optimiser steps of the `--preset` model on a latent dataset and on
concatenations of it (1x and 8x by default), each run in a fresh process, and the process's memory is read
from `/proc/self/status` every 20 ms:
  * peak RSS (`VmHWM`): everything resident, memory-mapped dataset pages included;
  * peak anonymous RSS (`RssAnon`): the process's own memory, what a corpus held in RAM would fill;
  * peak file-backed RSS (`RssFile`): pages of memory-mapped files (the dataset, the libraries), which
    the kernel drops again under memory pressure.
Speed: steps per second and training frames per second, medians over the steps of `train_log.jsonl` (its
timing leaves out checkpoints and validation), and the whole run's wall time (start-up and the final save
included).

`--baseline DIR` runs the same commands with another checkout of cam_hf (its `examples/train.py`, importing
its own `cam_hf`), interleaved with this one's so that load from other jobs falls on both: figures side by
side.

The dataset: `--dataset_dir` (a latent dataset; its train split is used) or, by default, synthetic latents
shaped like the mel codec's (107 frames x 128 dims, float16, `--clips` clips). Multiples are concatenations
saved once in a temporary folder. Wall-clock figures on a machine others use: the load average is printed at
the start and the end. Benchmarks print figures; they never assert them.

Run:  .venv/bin/python benchmarks/bench_train_memory.py [--dataset_dir DIR] [--clips 2000] [--multiples 1 8]
      [--steps 30] [--preset small] [--baseline DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATUS_FIELDS = ("VmHWM", "RssAnon", "RssFile")


def read_status() -> dict[str, float]:
    """This process's memory figures from /proc/self/status, in MiB."""
    figures = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in STATUS_FIELDS:
                figures[name] = int(value.split()[0]) / 1024
    return figures


class MemoryPeaks(threading.Thread):
    """Samples /proc/self/status every `interval` seconds and keeps the largest value of each field."""

    def __init__(self, interval: float = 0.02):
        super().__init__(daemon=True)
        self.interval, self.peaks, self.running = interval, {}, True

    def run(self) -> None:
        while self.running:
            for name, value in read_status().items():
                self.peaks[name] = max(self.peaks.get(name, 0.0), value)
            time.sleep(self.interval)

    def stop(self) -> dict[str, float]:
        self.running = False
        self.join()
        for name, value in read_status().items():
            self.peaks[name] = max(self.peaks.get(name, 0.0), value)
        return self.peaks


# ---- the datasets ----------------------------------------------------------------------------------------


def write_synthetic(path: str, num_clips: int, frames: int = 107, latent_dim: int = 128) -> None:
    """A latent dataset of random float16 latents (lengths `frames - i % 3`) with a weight-free codec."""
    from datasets import Array2D, Dataset, DatasetDict, Features, Value

    from cam_hf import MelAutoencoder

    features = Features(
        {"latents": Array2D(shape=(None, latent_dim), dtype="float16"), "num_frames": Value("int32")}
    )

    def rows():
        rng = np.random.default_rng(0)
        for i in range(num_clips):
            length = frames - i % 3
            yield {
                "latents": rng.standard_normal((length, latent_dim)).astype(np.float16),
                "num_frames": length,
            }

    with tempfile.TemporaryDirectory() as cache:
        train = Dataset.from_generator(rows, features=features, cache_dir=cache)
        DatasetDict({"train": train}).save_to_disk(path)
    # The codec's latent is its mel bands (no PCA to fit): training only needs its size and rate.
    MelAutoencoder(n_mels=latent_dim, frames_per_latent=1, latent_dim=latent_dim).save_pretrained(
        os.path.join(path, "autoencoder")
    )
    with open(os.path.join(path, "encode_summary.json"), "w") as f:
        json.dump({"synthetic": True}, f)


def write_multiple(base: str, path: str, multiple: int) -> None:
    """`multiple` copies of `base`'s train split, concatenated, with `base`'s codec."""
    from datasets import DatasetDict, concatenate_datasets, load_from_disk

    train = load_from_disk(base)["train"]
    DatasetDict({"train": concatenate_datasets([train] * multiple)}).save_to_disk(path)
    shutil.copytree(os.path.join(base, "autoencoder"), os.path.join(path, "autoencoder"))
    shutil.copy(os.path.join(base, "encode_summary.json"), os.path.join(path, "encode_summary.json"))


def evict_from_page_cache(folder: str) -> None:
    """Drop `folder`'s files from the page cache, so that a run reads its corpus cold, as one larger than RAM
    is read. (Pages of a file still cached are mapped into the process around each access, in large blocks:
    its file-backed RSS would then depend on what ran before.)"""
    os.sync()  # written pages must be clean to be dropped
    for parent, _, names in os.walk(folder):
        for name in names:
            descriptor = os.open(os.path.join(parent, name), os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


# ---- one run, in a fresh process -------------------------------------------------------------------------


def run_worker(checkout: str, train_args: list[str]) -> None:
    """Runs `checkout`'s examples/train.py in this process and prints its figures as one JSON line."""
    sys.path.insert(0, os.path.join(checkout, "examples"))
    sys.path.insert(0, checkout)
    import train  # noqa: E402  (the checkout's script and, through it, its cam_hf)

    peaks = MemoryPeaks()
    peaks.start()
    started = time.perf_counter()
    train.main(train_args)
    wall = time.perf_counter() - started
    figures = peaks.stop()
    figures.update({f"{name} at the end": value for name, value in read_status().items() if name != "VmHWM"})
    output_dir = train_args[train_args.index("--output_dir") + 1]
    with open(os.path.join(output_dir, "train_log.jsonl")) as f:
        steps = [record for record in map(json.loads, f) if "loss" in record][1:]  # the first one warms up
    seconds = [record["frames"] / record["frames_per_s"] for record in steps]
    print(
        "RESULT "
        + json.dumps(
            {
                **figures,
                "steps_per_s": 1 / float(np.median(seconds)),
                "frames_per_s": float(np.median([record["frames_per_s"] for record in steps])),
                "wall_s": wall,
                "cam_hf": sys.modules["cam_hf"].__file__,
            }
        ),
        flush=True,
    )


def measure(checkout: str, dataset: str, output_dir: str, args: argparse.Namespace) -> dict:
    train_args = [
        "--dataset_dir", dataset, "--output_dir", output_dir, "--preset", args.preset,
        "--train_batch_size", str(args.batch_size), "--max_train_steps", str(args.steps),
        "--checkpointing_steps", str(10 * args.steps), "--validation_steps", str(10 * args.steps),
        "--num_validation_prompts", "0", "--num_validation_samples", "0", "--mixed_precision", "no",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1", PYTHONPATH=checkout)
    command = [sys.executable, os.path.abspath(__file__), "--worker", checkout, "--", *train_args]
    evict_from_page_cache(dataset)
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"The run with {checkout} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset_dir", default=None, help="A latent dataset (default: synthetic latents).")
    parser.add_argument("--clips", type=int, default=2000, help="Clips of the synthetic dataset (1x).")
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 8], help="Dataset sizes, in copies.")
    parser.add_argument("--steps", type=int, default=30, help="Optimiser steps per run.")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--baseline", default=None, help="Another checkout of cam_hf, measured side by side.")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from bench_generate import load_average  # here, not above: a worker imports only the checkout it measures

    checkouts = {"this checkout": ROOT}
    if args.baseline:
        checkouts["baseline"] = os.path.abspath(args.baseline)
    print(f"load average at start: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.dataset_dir
        if base is None:
            base = os.path.join(tmp, "synthetic")
            write_synthetic(base, args.clips)
        rows = []
        for multiple in args.multiples:
            dataset = os.path.join(tmp, f"latents-{multiple}x")
            write_multiple(base, dataset, multiple)
            size = sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(dataset)
                       for name in names) / 2**20  # fmt: skip
            for name, checkout in checkouts.items():
                figures = measure(checkout, dataset, os.path.join(tmp, f"run-{multiple}x-{len(rows)}"), args)
                rows.append((multiple, size, name, figures))
                print(f"{multiple}x ({size:.0f} MiB on disk), {name}: {json.dumps(figures)}", flush=True)
    print(f"load average at end: {load_average()}")
    print(
        f"\n{args.steps} steps of the {args.preset!r} preset, batch {args.batch_size}, {args.threads} "
        "thread(s)\n| dataset | checkout | peak RSS (MiB) | peak anonymous (MiB) | peak file-backed (MiB) | "
        "steps/s | frames/s | wall (s) |\n|---|---|---|---|---|---|---|---|"
    )
    for multiple, size, name, f in rows:
        print(
            f"| {multiple}x ({size:.0f} MiB) | {name} | {f['VmHWM']:.0f} | {f['RssAnon']:.0f} | "
            f"{f['RssFile']:.0f} | {f['steps_per_s']:.3f} | {f['frames_per_s']:.0f} | {f['wall_s']:.0f} |"
        )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        run_worker(sys.argv[2], sys.argv[sys.argv.index("--") + 1 :])
    else:
        main()
