#!/usr/bin/env python
"""Speed and memory of the built-in dataset's builder on a fixed subset of the music21 corpus.

Prints clips per second, the real-time factor of rendering (seconds of audio per second of synthesizer
time, and of synthesis + cutting + FLAC encoding), and the peak memory of the main process and the workers.

    python benchmarks/bench_dataset.py --num_workers 2
"""

import argparse
import os
import resource
import tempfile
import time

from cam_hf.data import CorpusBuildConfig, build_corpus_dataset, read_summary

# Folk tunes (single-tune files and one 50-tune collection), chorales and Renaissance voices.
SUBSET = ["ryansMammoth/A*.abc", "oneills1850/0001-0050.abc", "bach/bwv2*.mxl", "palestrina/Agnus_0*.krn"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_workers", type=int, default=2, help="Worker processes.")
    parser.add_argument("--renderer", default="tinysoundfont", help="tinysoundfont, fluidsynth or auto.")
    parser.add_argument("--output_dir", default=None, help="Keep the dataset here (default: a temporary folder).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        output_dir = args.output_dir or os.path.join(tmp, "dataset")
        config = CorpusBuildConfig(sources=SUBSET, renderer=args.renderer)
        start = time.perf_counter()
        dataset = build_corpus_dataset(output_dir, config, num_workers=args.num_workers, progress=False)
        wall = time.perf_counter() - start
        summary = read_summary(output_dir)
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(output_dir) for f in fs)
    counts = summary["counts"]
    clips = sum(len(split) for split in dataset.values())
    # ru_maxrss is in KiB on Linux; for children it is the largest finished child (a worker).
    peak_main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"subset: {SUBSET}")
    print(f"renderer: {args.renderer}, workers: {args.num_workers}, CPU cores: {os.cpu_count()}")
    print(f"score files {counts['score files']}, pieces {counts['pieces listed']}, melodies {counts['melodies rendered']}")
    print(f"clips: {clips} ({clips * config.clip_seconds / 3600:.2f} h) in {wall:.1f} s -> {clips / wall:.2f} clips/s")
    print(f"parse time (sum over workers): {counts['parse wall seconds']:.1f} s")
    print(
        f"rendering real-time factor: {counts['seconds rendered'] / counts['synthesis wall seconds']:.0f}x (synthesizer), "
        f"{counts['seconds rendered'] / counts['render wall seconds']:.0f}x (with cutting and FLAC encoding)"
    )
    print(f"peak memory: main {peak_main:.0f} MiB, largest worker {peak_worker:.0f} MiB")
    print(f"size on disk: {size / 2**20:.1f} MiB ({size / max(clips, 1) / 1024:.0f} KiB per clip)")


if __name__ == "__main__":
    main()
