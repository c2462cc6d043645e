#!/usr/bin/env python
"""Speed and memory of building the datasets, and what storing latents costs.

`build`: the built-in dataset's builder on a fixed subset of the music21 corpus. Prints clips per second, the
real-time factor of rendering (seconds of audio per second of synthesizer time, and of synthesis + cutting +
FLAC encoding), and the peak memory of the main process and the workers.

    python benchmarks/bench_dataset.py build --num_workers 2

`latents`: encoding a built audio dataset with the default mel codec. Prints clips per second with 1 and with
`--num_workers` worker processes (side by side, on the same clips), and the reconstruction error of audio
decoded from float16 latents against float32 latents (spectral convergence and log-spectral distance against
the original, `cam_hf.autoencoders.metrics`, and between the two decodings), for both latent normalisations.

    python benchmarks/bench_dataset.py latents --dataset_dir data/cam-music21-3k --num_workers 2
"""

import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np
import torch
from datasets import DatasetDict, load_from_disk

from cam_hf.autoencoders.metrics import spectral_metrics
from cam_hf.data import (
    CorpusBuildConfig,
    build_corpus_dataset,
    decode_audio,
    encode_audio_dataset,
    load_latent_dataset,
    read_summary,
)

# Folk tunes (single-tune files and one 50-tune collection), chorales and Renaissance voices.
SUBSET = ["ryansMammoth/A*.abc", "oneills1850/0001-0050.abc", "bach/bwv2*.mxl", "palestrina/Agnus_0*.krn"]


def bench_build(args):
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
    print(
        f"score files {counts['score files']}, pieces {counts['pieces listed']}, melodies "
        f"{counts['melodies rendered']}"
    )
    print(
        f"clips: {clips} ({clips * config.clip_seconds / 3600:.2f} h) in {wall:.1f} s -> {clips / wall:.2f} "
        "clips/s"
    )
    print(f"parse time (sum over workers): {counts['parse wall seconds']:.1f} s")
    print(
        f"rendering real-time factor: {counts['seconds rendered'] / counts['synthesis wall seconds']:.0f}x "
        f"(synthesizer), {counts['seconds rendered'] / counts['render wall seconds']:.0f}x (with cutting and "
        "FLAC encoding)"
    )
    print(f"peak memory: main {peak_main:.0f} MiB, largest worker {peak_worker:.0f} MiB")
    print(f"size on disk: {size / 2**20:.1f} MiB ({size / max(clips, 1) / 1024:.0f} KiB per clip)")


def bench_latents(args):
    audio = load_from_disk(args.dataset_dir)
    train = audio["train"].select(range(min(args.clips, len(audio["train"]))))
    held_out = (
        audio["validation"]
        if "validation" in audio
        else audio["train"].select(range(len(train), len(audio["train"])))
    )
    held_out = held_out.select(range(min(args.reconstruction_clips, len(held_out))))
    with tempfile.TemporaryDirectory() as tmp:
        DatasetDict({"train": train}).save_to_disk(os.path.join(tmp, "audio"))
        # 1. Speed, on the same clips: one process, then worker processes.
        for workers in sorted({1, args.num_workers}):
            start = time.perf_counter()
            encode_audio_dataset(
                os.path.join(tmp, "audio"),
                os.path.join(tmp, f"latents-{workers}"),
                fit_seconds=args.fit_seconds,
                num_workers=workers,
                progress=False,
            )
            wall = time.perf_counter() - start
            with open(os.path.join(tmp, f"latents-{workers}", "encode_summary.json")) as f:
                summary = json.load(f)
            print(
                f"encode {len(train)} clips ({summary['hours']:.2f} h), {workers} worker(s): {wall:.1f} s "
                f"wall (fitting on {args.fit_seconds:g} s: {summary['fit_seconds']:.1f} s) -> "
                f"{len(train) / wall:.1f} clips/s, "
                f"{len(train) / max(wall - summary['fit_seconds'], 1e-9):.1f} clips/s excluding the fit"
            )
        # 2. float16 against float32, per normalisation, on
        # held-out clips (the codec was fitted on train clips).
        _, codec = load_latent_dataset(os.path.join(tmp, "latents-1"))
    if not len(held_out):
        return
    per_channel_std = torch.tensor(codec.config.latents_std)
    clips = [decode_audio(row["audio"]) for row in held_out]
    cfg = codec.config
    print(
        f"reconstruction of {len(clips)} held-out clips at {cfg.sample_rate} Hz (n_fft {cfg.n_fft}, hop "
        f"{cfg.stft_hop_length}):"
    )
    print(
        "normalisation | latents | SC vs original | LSD vs original (dB) | SC fp16 vs fp32 decode | LSD fp16 "
        "vs fp32 (dB)"
    )
    for normalization in ("per_channel", "global"):
        # A global scale is the RMS of the per-channel stds: the same codec with other `latents_std`.
        std = (
            per_channel_std
            if normalization == "per_channel"
            else per_channel_std.square().mean().sqrt().expand_as(per_channel_std)
        )
        codec.register_to_config(latents_std=std.tolist())
        metrics = {"float32": [], "float16": [], "between": []}
        for clip, rate in clips:
            original = torch.from_numpy(clip)[None, None]
            latents = codec.encode(original, sample_rate=rate)
            reference = codec.prepare_audio(original, rate)[0, 0].numpy()
            decoded = {
                name: codec.decode(latents.to(dtype).float())[0, 0].numpy()
                for name, dtype in (("float32", torch.float32), ("float16", torch.float16))
            }
            for name in ("float32", "float16"):
                metrics[name].append(
                    spectral_metrics(reference, decoded[name], cfg.n_fft, cfg.stft_hop_length)
                )
            metrics["between"].append(
                spectral_metrics(decoded["float32"], decoded["float16"], cfg.n_fft, cfg.stft_hop_length)
            )
        between = np.mean(metrics["between"], axis=0)
        for name in ("float32", "float16"):
            sc, lsd = np.mean(metrics[name], axis=0)
            extra = f"{between[0]:.5f} | {between[1]:.4f}" if name == "float16" else "- | -"
            print(f"{normalization} | {name} | {sc:.4f} | {lsd:.3f} | {extra}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="The built-in dataset's builder on a fixed corpus subset.")
    build.add_argument("--num_workers", type=int, default=2, help="Worker processes.")
    build.add_argument("--renderer", default="tinysoundfont", help="tinysoundfont, fluidsynth or auto.")
    build.add_argument(
        "--output_dir", default=None, help="Keep the dataset here (default: a temporary folder)."
    )
    latents = commands.add_parser("latents", help="Encoding speed and the cost of float16 latents.")
    latents.add_argument("--dataset_dir", required=True, help="A built audio dataset (make_dataset.py).")
    latents.add_argument(
        "--num_workers", type=int, default=2, help="Worker processes, timed beside one process."
    )
    latents.add_argument("--clips", type=int, default=512, help="Train clips encoded for the timing.")
    latents.add_argument(
        "--fit_seconds", type=float, default=3600.0, help="Seconds of those clips the codec is fitted on."
    )
    latents.add_argument(
        "--reconstruction_clips",
        type=int,
        default=48,
        help="Held-out clips decoded for the errors (0: none).",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.command == "build":
        bench_build(args)
    else:
        bench_latents(args)


if __name__ == "__main__":
    main()
