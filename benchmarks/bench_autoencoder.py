"""Reconstruction quality and speed of the mel codec (`MelAutoencoder`) on real music, next to librosa.

Audio: Bach chorales from music21's corpus rendered with pretty_midi's bundled General MIDI SoundFont through
tinysoundfont (no download). The PCA is fitted on some chorales and measured on others. Falls back to a
synthesised harmonic signal when music21 / tinysoundfont are missing.

Compared, all at the same STFT / mel settings (n_fft, hop, mels, Griffin-Lim iterations):
  * `MelAutoencoder` as configured (PCA to `latent_dim`): the whole encode -> decode path;
  * the same codec without PCA (latent_dim = stacked dim): isolates what the projection costs;
  * `librosa.feature.inverse.mel_to_audio` on the same mel magnitudes (NNLS mel inversion + Griffin-Lim).

Metrics, on STFT magnitudes at the codec's n_fft / hop:
  * spectral convergence  SC  = ||S - S_hat||_F / ||S||_F                           (lower is better)
  * log-spectral distance LSD = mean over frames of sqrt(mean over bins of (10 log10(P / P_hat))^2), in dB,
    with powers floored 80 dB below the reference's peak, so that inaudible near-silent bins (where any codec
    with a log floor differs by tens of dB) do not dominate                         (lower is better)
  * speed as times faster than real time (seconds of audio per second of compute).

Run:  .venv/bin/python benchmarks/bench_autoencoder.py  [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import librosa
import numpy as np
import torch

from cam_hf.autoencoders import MelAutoencoder
from cam_hf.autoencoders.metrics import spectral_metrics

FIT_PIECES = ["bach/bwv66.6", "bach/bwv7.7", "bach/bwv10.7", "bach/bwv11.6"]
TEST_PIECES = ["bach/bwv26.6", "bach/bwv32.6"]
# General MIDI presets (0-based): acoustic grand piano, string ensemble, flute.
PROGRAMS = [0, 48, 73]


def render_piece(name: str, program: int, sample_rate: int, seconds_per_quarter: float = 0.5) -> np.ndarray:
    """Render a music21 corpus score with the General MIDI SoundFont that pretty_midi ships; mono float32."""
    import music21
    import pretty_midi
    import tinysoundfont

    score = music21.corpus.parse(name)
    events = []  # (time in seconds, is_note_on, pitch)
    for note in score.flatten().notes:
        start = float(note.offset) * seconds_per_quarter
        end = start + float(note.duration.quarterLength) * seconds_per_quarter
        for pitch in note.pitches:
            events.append((start, True, pitch.midi))
            events.append((end, False, pitch.midi))
    events.sort(key=lambda event: (event[0], event[1]))  # note-offs before note-ons at the same instant

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    soundfont = synth.sfload(os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2"))
    synth.program_select(0, soundfont, 0, program)
    chunks, now = [], 0.0
    for when, is_on, pitch in events + [(events[-1][0] + 1.0, False, 0)]:  # 1 s of release at the end
        samples = int(round(when * sample_rate)) - int(round(now * sample_rate))
        if samples > 0:
            chunks.append(np.frombuffer(synth.generate(samples), dtype=np.float32).reshape(-1, 2).mean(1))
        now = when
        if is_on:
            synth.noteon(0, pitch, 90)
        elif pitch:
            synth.noteoff(0, pitch)
    audio = np.concatenate(chunks)
    return (0.9 * audio / max(np.abs(audio).max(), 1e-6)).astype(np.float32)


def synthetic_audio(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Fallback: notes of a harmonic tone with vibrato and decaying envelopes."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sample_rate), dtype=np.float64)
    note = int(0.4 * sample_rate)
    t = np.arange(note) / sample_rate
    for start in range(0, len(out) - note, note // 2):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        tone = sum(
            np.sin(2 * np.pi * f0 * h * t * (1 + 0.003 * np.sin(2 * np.pi * 5 * t))) / h for h in range(1, 10)
        )
        out[start : start + note] += tone * np.exp(-4 * t)
    return (0.9 * out / np.abs(out).max()).astype(np.float32)


def load_audio(sample_rate: int, quick: bool) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    fit, test = (FIT_PIECES[:2], TEST_PIECES[:1]) if quick else (FIT_PIECES, TEST_PIECES)
    try:
        fit_audio = [render_piece(p, prog, sample_rate) for p in fit for prog in PROGRAMS]
        test_audio = [render_piece(p, prog, sample_rate) for p in test for prog in PROGRAMS]
        source = (
            f"music21 chorales rendered with TimGM6mb.sf2 (fit: {fit}; test: {test}; GM programs {PROGRAMS})"
        )
    except ImportError as error:
        print(f"music21 / tinysoundfont unavailable ({error}); using a synthetic harmonic signal")
        fit_audio = [synthetic_audio(60, sample_rate, seed) for seed in range(2)]
        test_audio = [synthetic_audio(30, sample_rate, 10)]
        source = "synthetic harmonic notes"
    return fit_audio, test_audio, source


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer pieces, for a fast check")
    parser.add_argument("--griffin_lim_iters", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    codec = MelAutoencoder(griffin_lim_iters=args.griffin_lim_iters)
    cfg = codec.config
    # The default, a smaller projection, and none at all (what the PCA costs).
    codecs = {
        f"MelAutoencoder (PCA {codec.latent_dim})": codec,
        "MelAutoencoder (PCA 64)": MelAutoencoder(griffin_lim_iters=args.griffin_lim_iters, latent_dim=64),
        f"MelAutoencoder (no PCA, {codec.stacked_dim})": MelAutoencoder(
            griffin_lim_iters=args.griffin_lim_iters, latent_dim=codec.stacked_dim
        ),
    }
    fit_audio, test_audio, source = load_audio(cfg.sample_rate, args.quick)
    print(f"audio: {source}")
    print(
        f"codec: {cfg.sample_rate} Hz, n_fft {cfg.n_fft}, hop {cfg.stft_hop_length}, {cfg.n_mels} mels, "
        f"{cfg.frames_per_latent} frames/latent -> {codec.frame_rate:.2f} latents/s, "
        f"stacked {codec.stacked_dim} -> latent_dim {codec.latent_dim}; "
        f"Griffin-Lim {cfg.griffin_lim_iters} iters"
    )

    fit_batches = [torch.from_numpy(a)[None] for a in fit_audio]
    start = time.perf_counter()
    codec.fit_latent_statistics(fit_batches)
    fit_seconds = sum(map(len, fit_audio)) / cfg.sample_rate
    print(f"PCA fit on {fit_seconds:.0f} s of audio in {time.perf_counter() - start:.2f} s")
    for other in list(codecs.values())[1:]:
        other.fit_latent_statistics(fit_batches)

    results = {name: [] for name in [*codecs, "librosa mel_to_audio"]}
    timings = {"encode": 0.0, "decode": 0.0, "librosa": 0.0}
    seconds = 0.0
    for audio in test_audio:
        x = torch.from_numpy(audio)[None, None]
        seconds += len(audio) / cfg.sample_rate
        start = time.perf_counter()
        latents = codec.encode(x)
        timings["encode"] += time.perf_counter() - start
        start = time.perf_counter()
        codec.decode(latents)
        timings["decode"] += time.perf_counter() - start
        for name, model in codecs.items():
            decoded = model.decode(model.encode(x))[0, 0].numpy()
            results[name].append(spectral_metrics(audio, decoded, cfg.n_fft, cfg.stft_hop_length))

        # librosa at the same settings, on the same mel magnitudes (power=1, Slaney mels).
        cropped = audio[: len(audio) // codec.hop_length * codec.hop_length]
        mel_kwargs = {
            "sr": cfg.sample_rate,
            "n_fft": cfg.n_fft,
            "hop_length": cfg.stft_hop_length,
            "power": 1.0,
        }
        mel = librosa.feature.melspectrogram(y=cropped, n_mels=cfg.n_mels, **mel_kwargs)
        start = time.perf_counter()
        decoded = librosa.feature.inverse.mel_to_audio(
            mel, n_iter=cfg.griffin_lim_iters, length=len(cropped), **mel_kwargs
        )
        timings["librosa"] += time.perf_counter() - start
        results["librosa mel_to_audio"].append(
            spectral_metrics(audio, decoded, cfg.n_fft, cfg.stft_hop_length)
        )

    print(f"\nreconstruction on {seconds:.0f} s of held-out audio ({len(test_audio)} clips)")
    print(f"{'method':<32} {'SC':>6} {'LSD dB':>7}")
    for name, values in results.items():
        sc, lsd = np.mean(values, axis=0)
        print(f"{name:<32} {sc:6.3f} {lsd:7.2f}")
    print(f"\nspeed on {torch.get_num_threads()} CPU threads (x real time: audio seconds per compute second)")
    print(f"MelAutoencoder.encode            {seconds / timings['encode']:8.1f}x")
    print(f"MelAutoencoder.decode            {seconds / timings['decode']:8.1f}x")
    print(f"librosa mel_to_audio             {seconds / timings['librosa']:8.1f}x")


if __name__ == "__main__":
    main()
