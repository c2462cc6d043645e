"""Evaluating saved pipelines on long generations: FAD by position, its floor, latent drift and pitch, for a
sweep of settings on the same seeds (`examples/evaluate.py` is the command line over `evaluate_models`).

A *run* is one model, one setting (instrument, k_inf, Sampler steps, mode) and `seed_sets x num_samples`
samples; sample j of every run uses seed `seed + j`, so runs differ only in what the sweep changes. Each
sample is `contexts` Backbone contexts long and cut into windows of `window_frames`; window w of the samples
of one seed set is one set, measured against the reference (or, for an instrument, against that instrument's
real clips).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..pipeline_cam import CAMPipeline
from ..sampler import DEFAULT_NUM_INFERENCE_STEPS
from .accumulation import (
    RealWindows,
    accumulation_summary,
    fad_of_sets,
    latent_window_statistics,
    window_bounds,
)
from .embeddings import AudioEmbedding, CrepeEmbedding, LatentEmbedding, load_embedding
from .pitch import window_pitch_figures
from .reference import ReferenceAudio
from .report import relative_path, run_summary_line

MODES = ("unconditional", "continuation")
PITCH_FIGURES = ("pitch_confidence", "pitch_changes_per_s")
NOTE = (
    "Every FAD stands beside its floor: real windows held out of the reference, a set of the same size, "
    "against the same reference. FAD in an embedding other than VGGish or CLAP with official weights is not "
    "comparable with published FAD numbers."
)


@dataclass
class EvaluationConfig:
    """
    What to generate and how to measure it. The list fields are sweeps: every combination is a run.

    Args:
        num_samples (`int`, defaults to 32): generated samples per seed set.
        seed_sets (`int`, defaults to 1): independent seed sets; their spread is reported.
        seed (`int`, defaults to 0): sample j of every run uses seed `seed + j`; also seeds the floors' draws.
        contexts (`float`, defaults to 4.0): sample length, in Backbone contexts.
        window_frames (`int`, *optional*): frames per window (default: half the context).
        inference_noise (`list[float]`, *optional*): k_inf values (default: the model's own).
        num_inference_steps (`list[int]`, *optional*): Sampler steps per frame (default: the Sampler's own).
        temperature (`list[float]`, *optional*): the Sampler's starting-noise variance tau (default: the
            Sampler's own).
        modes (`list[str]`, defaults to both): `"unconditional"` and/or `"continuation"` (of held-out real
            prompts).
        instruments (`list[str | None]`, *optional*): for an instrument-conditioned model, generate each of
            these instruments and measure it against its own real clips; `None` in the list is a run without
            instrument against the whole reference; `["all"]` is every instrument of the model that the
            reference has.
        guidance_scale (`float`, *optional*): classifier-free guidance of instrument runs (the pipeline's
            default).
        prompt_frames (`int`, *optional*): prompt length of continuations (default a quarter of the context).
        batch_size (`int`, defaults to 16): samples generated at once.
        floor_sets (`int`, defaults to 2): disjoint real sets drawn for each floor and each real pitch figure.
        fad_inf (`bool`): also FAD-infinity. codec_floor (`bool`): also the floor of real audio through the
            codec.
        device (`str`, defaults to `"cpu"`): where the pipeline runs.
    """

    num_samples: int = 32
    seed_sets: int = 1
    seed: int = 0
    contexts: float = 4.0
    window_frames: int | None = None
    inference_noise: list[float] | None = None
    num_inference_steps: list[int] | None = None
    temperature: list[float] | None = None
    modes: list[str] = field(default_factory=lambda: list(MODES))
    instruments: list[str | None] | None = None
    guidance_scale: float | None = None
    prompt_frames: int | None = None
    batch_size: int = 16
    floor_sets: int = 2
    fad_inf: bool = False
    codec_floor: bool = False
    device: str = "cpu"

    def __post_init__(self):
        for name in ("num_samples", "seed_sets", "batch_size", "floor_sets"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)!r}.")
        for name in ("window_frames", "prompt_frames"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)!r}.")
        if self.contexts <= 0:
            raise ValueError(f"`contexts` must be positive, got {self.contexts}.")
        for tau in self.temperature or []:
            if not isinstance(tau, int | float) or not tau > 0:
                raise ValueError(f"`temperature` must hold positive numbers, got {tau!r}.")
        for steps in self.num_inference_steps or []:
            if not isinstance(steps, int) or steps < 1:
                raise ValueError(f"`num_inference_steps` must hold positive integers, got {steps!r}.")
        unknown = sorted(set(self.modes) - set(MODES))
        if unknown or not self.modes:
            raise ValueError(f"`modes` must be a non-empty list of {MODES}, got {self.modes!r}.")

    @property
    def total_samples(self) -> int:
        return self.seed_sets * self.num_samples

    @property
    def seed_set_samples(self) -> list[range]:
        return [range(s * self.num_samples, (s + 1) * self.num_samples) for s in range(self.seed_sets)]


@dataclass(frozen=True)
class RunSetting:
    """What one run generates: the instrument (`None`: none), k_inf, Sampler steps per frame, the Sampler's
    temperature and the mode."""

    instrument: str | None
    inference_noise: float
    num_inference_steps: int
    temperature: float
    mode: str


@dataclass(frozen=True)
class WindowLayout:
    """Where a sample's windows lie: `bounds` are `(start, end)` frames, `centres` in Backbone contexts."""

    context_frames: int
    frame_rate: float
    window_frames: int
    num_frames: int
    bounds: list[tuple[int, int]]

    @classmethod
    def for_pipeline(cls, pipe: CAMPipeline, config: EvaluationConfig) -> WindowLayout:
        context = pipe.context_frames
        window_frames = config.window_frames or max(1, context // 2)
        num_frames = max(window_frames, round(config.contexts * context))
        return cls(
            context, pipe.frame_rate, window_frames, num_frames, window_bounds(num_frames, window_frames)
        )

    @property
    def window_seconds(self) -> float:
        return self.window_frames / self.frame_rate

    @property
    def centres(self) -> list[float]:
        return [(start + end) / 2 / self.context_frames for start, end in self.bounds]


def run_settings(pipe: CAMPipeline, config: EvaluationConfig, reference: ReferenceAudio) -> list[RunSetting]:
    """Every combination of the sweeps, with defaults resolved from the pipeline, instruments checked."""
    known = list(pipe.backbone.config.instrument_names or [])
    instruments = list(config.instruments or [None])
    if "all" in instruments:
        labelled = set(reference.labels)
        instruments = [name for name in instruments if name != "all"]
        instruments += [name for name in known if name in labelled]
        if not instruments:
            raise ValueError(
                f"No instrument of the model ({known}) labels a reference clip: check --instrument_column."
            )
    for name in instruments:
        if name is not None and name not in known:
            raise ValueError(
                f"Instrument {name!r} is not one the model was trained on "
                f"({known or 'none: it is unconditional'})."
            )
    noise = config.inference_noise or [pipe.backbone.config.inference_noise]
    default_steps = pipe.sampler.config.get("num_inference_steps", DEFAULT_NUM_INFERENCE_STEPS)
    steps = config.num_inference_steps or [default_steps]
    temperatures = config.temperature or [pipe.sampler.config.get("temperature", 1.0)]
    sweeps = itertools.product(instruments, noise, steps, temperatures, config.modes)
    return [RunSetting(*values) for values in sweeps]


def generate_latents(
    pipe: CAMPipeline,
    config: EvaluationConfig,
    num_frames: int,
    setting: RunSetting,
    prompts: torch.Tensor | None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yields `(first_sample, latents [B, num_frames, D])` for samples `0 .. total_samples - 1`, sample j
    seeded `seed + j`; continuation j continues prompt `j % len(prompts)`."""
    total = config.total_samples
    description = (
        f"generating {setting.mode}, k_inf={setting.inference_noise}, steps={setting.num_inference_steps}, "
        f"temperature={setting.temperature}"
    )
    for first in tqdm(range(0, total, config.batch_size), desc=description, unit="batch", leave=False):
        count = min(config.batch_size, total - first)
        kwargs = {
            "num_frames": num_frames,
            "output_type": "latent",
            "inference_noise": setting.inference_noise,
            "num_inference_steps": setting.num_inference_steps,
            "temperature": setting.temperature,
            "generator": [
                torch.Generator(config.device).manual_seed(config.seed + first + i) for i in range(count)
            ],
        }
        if setting.instrument is not None:
            kwargs["instrument"] = setting.instrument
            if config.guidance_scale is not None:
                kwargs["guidance_scale"] = config.guidance_scale
        if setting.mode == "continuation":
            chosen = [(first + i) % len(prompts) for i in range(count)]
            kwargs.update(prompt_latents=prompts[chosen].to(config.device), num_waveforms_per_prompt=1)
        else:
            kwargs.update(num_waveforms_per_prompt=count)
        yield first, pipe(**kwargs).audios.float().cpu().numpy()


def decode_waveforms(autoencoder, latents: np.ndarray) -> list[np.ndarray]:
    """
    Latents `[B, T, D]` -> B mono waveforms, decoded one at a time: a batch of long waveforms makes
    Griffin-Lim's STFTs outgrow the CPU caches (8 x 53 s decoded 2x slower together than one by one,
    measured).
    """
    waveforms = []
    for latent in latents:
        audio = autoencoder.decode(torch.from_numpy(latent)[None].to(autoencoder.device))[0]
        waveforms.append(audio.float().mean(dim=0).cpu().numpy())
    return waveforms


class GeneratedWindows:
    """
    A run's samples: their latents, and their audio embeddings and pitch figures per window (audio is decoded
    only when an audio embedding or the pitch track needs it). Latent embeddings are computed from the latents
    on demand.
    """

    def __init__(self, total: int, layout: WindowLayout, latent_dim: int, audio_embeddings, crepe):
        self.layout = layout
        self.latents = np.zeros((total, layout.num_frames, latent_dim), dtype=np.float32)
        # Per audio embedding, per sample: the vectors of each window.
        self.audio_vectors = {embedding.name: [None] * total for embedding in audio_embeddings}
        self.pitch = np.zeros((total, len(layout.bounds), len(PITCH_FIGURES))) if crepe is not None else None
        self.audio_embeddings, self.crepe = list(audio_embeddings), crepe
        self.timings = {"generate_s": 0.0, "decode_s": 0.0, "embed_s": 0.0, "decoded_samples": 0}

    @property
    def needs_audio(self) -> bool:
        return bool(self.audio_embeddings) or self.crepe is not None

    def add(self, first: int, latents: np.ndarray, autoencoder, sample_rate: int) -> None:
        """Store a batch of samples `first ..`; decode and embed their audio when needed."""
        self.latents[first : first + len(latents)] = latents
        if not self.needs_audio:
            return
        started = time.perf_counter()
        waveforms = decode_waveforms(autoencoder, latents)
        self.timings["decode_s"] += time.perf_counter() - started
        self.timings["decoded_samples"] += len(waveforms)
        started = time.perf_counter()
        hop = autoencoder.hop_length
        for sample, audio in enumerate(waveforms, start=first):
            pieces = [audio[start * hop : end * hop] for start, end in self.layout.bounds]
            for embedding in self.audio_embeddings:
                self.audio_vectors[embedding.name][sample] = embedding.embed(pieces, sample_rate)
            if self.crepe is not None:
                self.pitch[sample] = window_pitch_figures(self.crepe.pitch_track(pieces, sample_rate))
        self.timings["embed_s"] += time.perf_counter() - started

    def vectors(self, embedding: AudioEmbedding, window: int, samples: Sequence[int]) -> np.ndarray:
        """The embedding vectors of window `window` of `samples`, stacked."""
        if isinstance(embedding, LatentEmbedding):
            start, end = self.layout.bounds[window]
            return np.concatenate([embedding.embed_latents(self.latents[j, start:end]) for j in samples])
        return np.concatenate([self.audio_vectors[embedding.name][j][window] for j in samples])


def reference_windows(
    reference: ReferenceAudio, embedding: AudioEmbedding, layout: WindowLayout, autoencoder_key: str
) -> RealWindows:
    """The real windows an embedding's generated windows are measured against."""
    if isinstance(embedding, LatentEmbedding):
        return reference.latent_windows(embedding, autoencoder_key, layout.window_frames)
    return reference.audio_windows(embedding, layout.window_seconds)


def fad_figures(
    generated: GeneratedWindows,
    embedding: AudioEmbedding,
    real: RealWindows,
    config: EvaluationConfig,
    codec: RealWindows | None = None,
) -> dict:
    """FAD per window and over the whole sample (per seed set, mean, spread) beside floors, and its rise."""
    sets, windows = config.seed_set_samples, range(len(generated.layout.bounds))
    floors = {"floor": real}
    if codec is not None:
        floors["codec_floor"] = codec
    # Every window's generated set has num_samples windows: one floor serves them all.
    window_floors = {
        name: windows.floor(config.num_samples, config.floor_sets, config.seed)
        for name, windows in floors.items()
    }
    per_window = [
        {
            **fad_of_sets(
                [generated.vectors(embedding, w, samples) for samples in sets],
                real.reference,
                config.fad_inf,
                config.seed,
            ),
            **window_floors,
        }
        for w in windows
    ]
    whole_sets = [
        np.concatenate([generated.vectors(embedding, w, samples) for w in windows]) for samples in sets
    ]
    whole = fad_of_sets(whole_sets, real.reference, config.fad_inf, config.seed)
    for name, pool in floors.items():
        whole[name] = pool.floor(config.num_samples * len(windows), config.floor_sets, config.seed)
    accumulation = accumulation_summary([window["fad"] for window in per_window], generated.layout.centres)
    return {"per_window": per_window, "whole": whole, **accumulation}


def prompt_pitch_figures(
    autoencoder, prompts: torch.Tensor, crepe: CrepeEmbedding, config: EvaluationConfig, sample_rate: int
) -> dict:
    """
    The pitch figures of the prompts the continuations start from, decoded as the samples are: what each
    continuation's own pace was before the model took over.

    Continuation j continues prompt `j % len(prompts)`, so each sample is paired with its own prompt: the
    figures are means over the samples (per seed set too), comparable with the windows' figures.

    Returns:
        `dict`: per pitch figure, its `mean` over all samples and `values` over each seed set.
    """
    tracks = crepe.pitch_track(decode_waveforms(autoencoder, prompts.float().cpu().numpy()), sample_rate)
    per_prompt = window_pitch_figures(tracks)  # [prompts, figures]
    per_sample = per_prompt[np.arange(config.total_samples) % len(prompts)]
    per_set = [per_sample[list(samples)].mean(axis=0) for samples in config.seed_set_samples]
    return {
        name: {"mean": float(per_sample[:, f].mean()), "values": [float(values[f]) for values in per_set]}
        for f, name in enumerate(PITCH_FIGURES)
    }


def pitch_figures_by_window(generated: GeneratedWindows, config: EvaluationConfig) -> list[dict]:
    """Per window, each pitch figure's mean over all samples and over each seed set."""
    mean = generated.pitch.mean(axis=0)  # [windows, figures]
    per_set = [generated.pitch[list(samples)].mean(axis=0) for samples in config.seed_set_samples]
    return [
        {
            name: {"mean": float(mean[w, f]), "values": [float(values[w, f]) for values in per_set]}
            for f, name in enumerate(PITCH_FIGURES)
        }
        for w in range(len(generated.layout.bounds))
    ]


@dataclass
class RunContext:
    """What the runs of one model share: the pipeline, its window layout, its embeddings, the reference."""

    pipe: CAMPipeline
    autoencoder_key: str
    layout: WindowLayout
    embeddings: list[AudioEmbedding]
    reference: ReferenceAudio
    crepe: CrepeEmbedding | None = None

    def reference_for(self, setting: RunSetting) -> ReferenceAudio:
        return self.reference if setting.instrument is None else self.reference.subset(setting.instrument)

    def prompt_frames(self, config: EvaluationConfig) -> int:
        return config.prompt_frames or max(1, self.layout.context_frames // 4)

    def check_reference(self, settings: Sequence[RunSetting], config: EvaluationConfig) -> None:
        """
        Reference windows, floors, real pitch figures and prompts of every run, before generating anything: a
        reference too small fails here, not after an hour.
        """
        autoencoder = self.pipe.autoencoder
        for setting in settings:
            reference = self.reference_for(setting)
            for embedding in self.embeddings:
                windows = reference_windows(reference, embedding, self.layout, self.autoencoder_key)
                windows.floor(config.num_samples * len(self.layout.bounds), config.floor_sets, config.seed)
            reference_windows(reference, LatentEmbedding(autoencoder), self.layout, self.autoencoder_key)
            if self.crepe is not None:
                reference.pitch_figures(
                    self.crepe, self.layout.window_seconds, config.num_samples, config.floor_sets, config.seed
                )
            if setting.mode == "continuation":
                reference.prompts(autoencoder, self.prompt_frames(config))


def evaluate_run(context: RunContext, setting: RunSetting, config: EvaluationConfig) -> dict:
    """
    Generate one run's samples and compute all its figures.

    Args:
        context ([`RunContext`]): the model and what its runs share.
        setting ([`RunSetting`]): what this run generates.
        config ([`EvaluationConfig`]).

    Returns:
        `dict`: the run's setting, its `windows` (bounds, latent drift, pitch figures), `fad` per embedding
        (`per_window`, `whole`, `fad_acc`, `fad_ratio`, `fad_slope_per_context`), `real_pitch` with the pitch
        track (and `prompt_pitch`, the prompts' own, for continuations), `reference` (the instrument's clips)
        for an instrument run, and `timings`.
    """
    pipe, layout = context.pipe, context.layout
    reference = context.reference_for(setting)
    audio_embeddings = [e for e in context.embeddings if not isinstance(e, LatentEmbedding)]
    generated = GeneratedWindows(
        config.total_samples, layout, pipe.autoencoder.latent_dim, audio_embeddings, context.crepe
    )
    prompts = (
        reference.prompts(pipe.autoencoder, context.prompt_frames(config))
        if (setting.mode == "continuation")
        else None
    )
    started = time.perf_counter()
    for first, latents in generate_latents(pipe, config, layout.num_frames, setting, prompts):
        generated.timings["generate_s"] += time.perf_counter() - started
        generated.add(first, latents, pipe.autoencoder, pipe.sample_rate)
        started = time.perf_counter()

    run = {
        **asdict(setting),
        "num_samples_per_set": config.num_samples,
        "seed_sets": config.seed_sets,
        "windows": [
            {
                "index": w,
                "start_frame": start,
                "end_frame": end,
                "start_s": start / layout.frame_rate,
                "end_s": end / layout.frame_rate,
                "centre_contexts": centre,
            }
            for w, ((start, end), centre) in enumerate(zip(layout.bounds, layout.centres, strict=True))
        ],
        "timings": generated.timings,
        "fad": {},
    }
    if setting.instrument is not None:
        run["reference"] = reference.description  # the instrument's clips
    real_latents = reference.latent_windows(
        LatentEmbedding(pipe.autoencoder), context.autoencoder_key, layout.window_frames
    ).reference
    drift = latent_window_statistics(
        generated.latents, layout.bounds, real_latents.mean, np.sqrt(np.diag(real_latents.covariance))
    )
    for window, statistics in zip(run["windows"], drift, strict=True):
        window["latent"] = statistics
    if context.crepe is not None:
        for window, figures in zip(run["windows"], pitch_figures_by_window(generated, config), strict=True):
            window.update(figures)
        run["real_pitch"] = reference.pitch_figures(
            context.crepe, layout.window_seconds, config.num_samples, config.floor_sets, config.seed
        )
        if prompts is not None:
            run["prompt_pitch"] = prompt_pitch_figures(
                pipe.autoencoder, prompts, context.crepe, config, pipe.sample_rate
            )
    for embedding in context.embeddings:
        real = reference_windows(reference, embedding, layout, context.autoencoder_key)
        codec = None
        if config.codec_floor and not isinstance(embedding, LatentEmbedding):
            needed = config.num_samples * len(layout.bounds) * config.floor_sets
            codec = reference.codec_windows(
                pipe.autoencoder, context.autoencoder_key, embedding, layout.window_seconds, needed
            )
        run["fad"][embedding.name] = fad_figures(generated, embedding, real, config, codec)
    return run


def evaluate_models(
    models: Sequence[str],
    reference: ReferenceAudio,
    embedding_specs: Sequence[str],
    config: EvaluationConfig,
    model_names: Sequence[str] | None = None,
    pitch_track: bool = False,
    crepe_hop_seconds: float = 0.05,
    log: Callable[[str], None] | None = print,
) -> dict:
    """
    Evaluate saved pipelines, one after the other, on every setting of `config`'s sweeps.

    Args:
        models (`Sequence[str]`): saved `CAMPipeline` folders or Hub ids.
        reference ([`ReferenceAudio`]): the real audio.
        embedding_specs (`Sequence[str]`): embeddings by name (see `load_embedding`); `latent` ones use each
            model's autoencoder.
        config ([`EvaluationConfig`]).
        model_names (`Sequence[str]`, *optional*): labels of the models (default: their folder names).
        pitch_track (`bool`, defaults to False): also CREPE-tiny's pitch figures per window (pitch confidence
            and pitch changes per second), beside those of held-out real windows.
        crepe_hop_seconds (`float`, defaults to 0.05): frame spacing of CREPE (embeddings and pitch track).
        log (`Callable`, *optional*): called with one line per finished run (`None`: silent).

    Returns:
        `dict`: `reference` (its description), `embeddings` (each one's description), `runs` (see
        `evaluate_run`, with `model`, `model_name`, `context_frames`, `frame_rate`, `num_frames`,
        `window_frames`), `wall_time_s`, `note`; with `pitch_track`, `real_pitch_confidence` (of the whole
        reference's held-out windows).
    """
    names = (
        list(model_names) if model_names else [os.path.basename(os.path.normpath(model)) for model in models]
    )
    if len(names) != len(models):
        raise ValueError(f"Got {len(names)} model names for {len(models)} models: pass one per model.")
    started = time.perf_counter()
    is_latent = [spec.partition(":")[0] == "latent" for spec in embedding_specs]
    # Audio embeddings are loaded once; latent ones belong to each model's autoencoder.
    audio_embeddings = [
        load_embedding(spec, crepe_hop_seconds=crepe_hop_seconds)
        for spec, latent in zip(embedding_specs, is_latent, strict=True)
        if not latent
    ]
    crepe = load_embedding("crepe-tiny", crepe_hop_seconds=crepe_hop_seconds) if pitch_track else None
    results = {"reference": reference.description, "embeddings": [], "runs": []}
    for model, name in zip(models, names, strict=True):
        pipe = CAMPipeline.from_pretrained(model).to(config.device)
        pipe.set_progress_bar_config(disable=True)
        embeddings = audio_embeddings + [
            load_embedding(spec, autoencoder=pipe.autoencoder)
            for spec, latent in zip(embedding_specs, is_latent, strict=True)
            if latent
        ]
        for embedding in embeddings:
            if embedding.name not in [e["name"] for e in results["embeddings"]]:
                results["embeddings"].append(embedding.describe())
        layout = WindowLayout.for_pipeline(pipe, config)
        context = RunContext(pipe, model, layout, embeddings, reference, crepe)
        settings = run_settings(pipe, config, reference)
        context.check_reference(settings, config)
        for setting in settings:
            run = evaluate_run(context, setting, config)
            run.update(
                model=relative_path(model),
                model_name=name,
                context_frames=layout.context_frames,
                frame_rate=layout.frame_rate,
                num_frames=layout.num_frames,
                window_frames=layout.window_frames,
            )
            results["runs"].append(run)
            if log is not None:
                log(run_summary_line(run))
        del pipe, context
    if crepe is not None and any(run["instrument"] is None for run in results["runs"]):
        run = next(run for run in results["runs"] if run["instrument"] is None)
        results["real_pitch_confidence"] = run["real_pitch"]["pitch_confidence"]["mean"]
    results["wall_time_s"] = time.perf_counter() - started
    results["note"] = NOTE
    return results


__all__ = [
    "MODES",
    "EvaluationConfig",
    "GeneratedWindows",
    "RunContext",
    "RunSetting",
    "WindowLayout",
    "decode_waveforms",
    "evaluate_models",
    "evaluate_run",
    "generate_latents",
    "run_settings",
]
