"""Griffin-Lim decoding of the mel codec: quality against cost, to choose its iterations, its starting
phase, its implementation and the chunking.

Encodes test clips with a pipeline's mel codec (by default the shipped model's) and decodes them the way a
pipeline does (`decode_chunked`: chunks growing 4, 8, 16, 32, then 64 frames, with 4 of context), with 32, 16,
8 and 4 iterations, each with the phase of every chunk starting at random (as before) or from the phase the
previous chunk reached on the frames they share (the codec's default). A second table compares, at the codec's
defaults, Griffin-Lim on `torch.stft` / `torch.istft` (before) with the codec's own on `torch.fft` (now), and
chunks of 64 frames throughout with growing ones. For each setting it prints, averaged over the clips:

  * spectral convergence and log-spectral distance against the original clip (the codec's whole loss: mel
    bands, PCA, phase), as `cam_hf.autoencoders.metrics.spectral_metrics` computes them;
  * the inconsistency of the phase alone: ||(|STFT(decoded)| - M)|| / ||M||, M the magnitude the codec
    decodes;
  * milliseconds per latent frame, on this thread's CPU clock (what the decoding thread costs) and on the
    wall.

A third table times one Griffin-Lim call against the frames it decodes (a chunk and its context: 8 frames for
the first chunk of 4, 72 for a chunk of 64), on `torch.stft` and on `torch.fft`: whether a call's cost is per
call (it would fall per frame as the chunks grow) or per frame.

Old (32 iterations, random start; `torch.stft`, chunks of 64) and new (the codec's defaults) are measured in
the same run. Benchmarks print figures; they never assert them.

Run: .venv/bin/python benchmarks/bench_griffin_lim.py [--model DIR] [--dataset DIR] [--clips 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

import numpy as np
import soundfile as sf
import torch
from _common import REPOSITORY, load_average

from cam_hf import CAMPipeline, MelAutoencoder
from cam_hf.autoencoders.metrics import spectral_metrics
from cam_hf.testing_utils import griffin_lim_on_torch_stft
from cam_hf.utils.audio import resample_audio


class RandomStartMelAutoencoder(MelAutoencoder):
    """The mel codec with every chunk's phase starting at random, as decoding did before it carried the
    phase."""

    def _decode_continuing(self, latents, phase, keep_from):
        return super()._decode_continuing(latents, None, keep_from)


class TorchStftMelAutoencoder(MelAutoencoder):
    """The mel codec with Griffin-Lim as it was written before, on `torch.stft` / `torch.istft`: the same
    algorithm, at twice the cost (`docs/performance.md`)."""

    def griffin_lim(self, magnitude, length, initial_phase=None):
        return griffin_lim_on_torch_stft(self, magnitude, length, initial_phase)


def same_codec(codec: MelAutoencoder, cls: type[MelAutoencoder]) -> MelAutoencoder:
    """`codec` (config and fitted PCA) as an instance of `cls`."""
    copy = cls.from_config(codec.config)
    copy.load_state_dict(codec.state_dict())
    return copy


def test_clips(dataset: str, count: int, sample_rate: int) -> list[np.ndarray]:
    """`count` clips spread over the test split of a dataset built by `examples/make_dataset.py`, mono, at
    `sample_rate`."""
    from datasets import load_from_disk

    path = os.path.join(dataset, "test")
    if not os.path.isdir(path):
        raise SystemExit(
            f"No test split at {path}: build the dataset first (`make data`), or pass --dataset."
        )
    split = load_from_disk(path)
    clips = []
    for index in np.linspace(0, len(split) - 1, count).astype(int):
        encoded = io.BytesIO(split[int(index)]["audio"]["bytes"])
        audio, rate = sf.read(encoded, dtype="float32", always_2d=True)
        clips.append(resample_audio(audio.mean(axis=1), rate, sample_rate))
    return clips


def measure(
    codec: MelAutoencoder, clips: list[np.ndarray], iterations: int, first_chunk_frames: int = 4
) -> dict[str, float]:
    codec.register_to_config(griffin_lim_iters=iterations)
    config, figures = codec.config, {"sc": [], "lsd": [], "inconsistency": [], "cpu_ms": [], "wall_ms": []}
    for clip in clips:
        latents = codec.encode(torch.from_numpy(clip)[None, None])
        wall, cpu = time.perf_counter(), time.thread_time()
        decoded = codec.decode_chunked(latents, decode_first_chunk_frames=first_chunk_frames)[0, 0]
        figures["cpu_ms"].append(1000 * (time.thread_time() - cpu) / latents.shape[1])
        figures["wall_ms"].append(1000 * (time.perf_counter() - wall) / latents.shape[1])
        sc, lsd = spectral_metrics(clip, decoded.numpy(), config.n_fft, config.stft_hop_length)
        figures["sc"].append(sc)
        figures["lsd"].append(lsd)
        # The magnitude the codec decodes: its own (lossy) log-mel, back through the filterbank's inverse.
        stacked = torch.matmul(codec.denormalize_latents(latents), codec.projection.T) + codec.projection_mean
        mel = codec._unstack(stacked)[0].exp()
        magnitude = torch.matmul(codec.mel_inverse, mel).clamp(min=0)[0]
        rebuilt = codec._stft(decoded[None])[0, :, : magnitude.shape[-1]].abs()
        inconsistency = torch.linalg.norm(rebuilt - magnitude) / torch.linalg.norm(magnitude)
        figures["inconsistency"].append(inconsistency.item())
    return {name: statistics.mean(values) for name, values in figures.items()}


def cost_per_frame(codec: MelAutoencoder, latents: torch.Tensor, frames: int, repeats: int = 3) -> float:
    """CPU ms per latent frame of one `griffin_lim` call on the first `frames` frames of `latents` `[1, T, D]`
    (the best of `repeats` rounds of ~200 frames)."""
    log_mel = codec.latents_to_log_mel(codec.denormalize_latents(latents[:, :frames]))[:, 0]
    magnitude = torch.matmul(codec.mel_inverse, log_mel.exp()).clamp(min=0)
    calls, best = max(2, 200 // frames), float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(calls):
            codec.griffin_lim(magnitude, frames * codec.hop_length)
        best = min(best, (time.thread_time() - start) / calls)
    return 1000 * best / frames


def main(argv=None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--model", default=os.path.join(REPOSITORY, "models", "cam-music21-small"))
    parser.add_argument("--dataset", default=os.path.join(REPOSITORY, "data", "cam-music21-3k"))
    parser.add_argument("--clips", type=int, default=8, help="Test clips (10 s each in the built-in one).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the decoding thread's).")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    codec = CAMPipeline.from_pretrained(args.model).autoencoder
    if not isinstance(codec, MelAutoencoder):
        raise SystemExit(f"{args.model} decodes with {type(codec).__name__}, not the mel codec.")
    default_iterations = MelAutoencoder().config.griffin_lim_iters
    random_start = same_codec(codec, RandomStartMelAutoencoder)
    clips = test_clips(args.dataset, args.clips, codec.sample_rate)
    seconds = sum(map(len, clips)) / codec.sample_rate
    print(
        f"{len(clips)} test clips of {args.dataset}, {seconds:.0f} s in all; {args.threads} torch "
        f"thread(s); load average at start: {load_average()}"
    )

    print(
        f"\n{'iterations':>10s} {'phase start':>14s} {'SC':>8s} {'LSD dB':>8s} {'inconsist.':>11s} "
        f"{'CPU ms/frame':>13s} {'wall ms/frame':>14s}"
    )
    for iterations in (32, 16, 8, 4):
        for name, decoder in (("random", random_start), ("previous chunk", codec)):
            row = measure(decoder, clips, iterations)
            label = " (old settings)" if (iterations, name) == (32, "random") else ""
            label = " (new)" if (iterations, name) == (default_iterations, "previous chunk") else label
            figures = f"{row['sc']:8.4f} {row['lsd']:8.3f} {row['inconsistency']:11.4f}"
            times = f"{row['cpu_ms']:13.2f} {row['wall_ms']:14.2f}"
            print(f"{iterations:>10d} {name:>14s} {figures} {times}{label}")
    print(f"\n{default_iterations} iterations, phase carried: implementation and chunking\n")
    print(
        f"{'Griffin-Lim on':>14s} {'chunks':>12s} {'SC':>8s} {'LSD dB':>8s} {'inconsist.':>11s} "
        f"{'CPU ms/frame':>13s} {'wall ms/frame':>14s}"
    )
    rows = [
        ("torch.stft", same_codec(codec, TorchStftMelAutoencoder), 64, " (before)"),
        ("torch.stft", same_codec(codec, TorchStftMelAutoencoder), 4, ""),
        ("torch.fft", codec, 64, ""),
        ("torch.fft", codec, 4, " (now)"),
    ]
    for name, decoder, first, label in rows:
        row = measure(decoder, clips, default_iterations, first)
        figures = f"{row['sc']:8.4f} {row['lsd']:8.3f} {row['inconsistency']:11.4f}"
        times = f"{row['cpu_ms']:13.2f} {row['wall_ms']:14.2f}"
        print(f"{name:>14s} {f'{first} -> 64':>12s} {figures} {times}{label}")
    codec.register_to_config(griffin_lim_iters=default_iterations)
    before = same_codec(codec, TorchStftMelAutoencoder)
    latents = codec.encode(torch.from_numpy(np.concatenate(clips))[None, None])
    print(f"\n{default_iterations} iterations: CPU ms per frame of one call against the frames it decodes\n")
    print(f"{'frames':>7s} {'torch.stft':>11s} {'torch.fft':>10s} {'ratio':>6s}")
    for frames in (8, 16, 24, 40, 72, 136):
        if frames <= latents.shape[1]:
            old, new = cost_per_frame(before, latents, frames), cost_per_frame(codec, latents, frames)
            print(f"{frames:>7d} {old:>11.2f} {new:>10.2f} {new / old:>6.2f}")
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
