"""Generation speed of CAMPipeline on CPU, side by side with transformers' MusicGen decoder of the same size.

Prints, for Backbones of musicgen-small's size (24 layers x 1024, 16 heads) and for the default small one
(`CAMConfig()`: 12 layers x 768), each with the Sampler at the pipeline's defaults. Two musicgen-small-sized
Backbones: one whose SwiGLU width (2816) gives it the weights MusicGen's decoder reads per step (the usual 2/3
x 4 x hidden rule that matches a 2-matrix MLP of 4096 with a 3-matrix one), and one with SwiGLU 4096 (a third
more weights per step than MusicGen's decoder reads). For each:

  * ms per frame: the Backbone's cached step, the Sampler, and the whole frame, at batch 1;
  * seconds of audio per wall second for 10 s and 60 s, with the KV cache (the pipeline as shipped, sliding
    window included) and without it (the Backbone recomputed over the whole window for every frame: the
    baseline a cache-less implementation would be, written here, not in the library);
  * transformers' `MusicgenForCausalLM` (musicgen-small's decoder: 24 x 1024, 16 heads, ffn 4096, 4 codebooks,
    vocab 2048; random weights, as speed does not depend on them) generating the same durations at 50
    tokens/s, and the ratio CAM / MusicGen of seconds of audio per wall second;
  * the time of frame 50 and of frame 600 with a real cache of that length, and the sliding-window pipeline's
    per-frame times with the amortised cost of its window rebuilds;
  * the Backbone step's weight-read bandwidth against the machine's measured matrix-vector bandwidth, fp32 and
    bf16;
  * peak resident memory while generating 10 s and 60 s;
  * for the small model, the real-time factor including decoding with the default mel codec (Griffin-Lim).

Frame rate: 22050 / 2048 = 10.77 latent frames per second, the default mel codec's and Music2Latent's (44100 /
4096); so 10 s is 108 frames and 60 s is 647. Latents have 128 dims (the mel codec's default). Neither side's
audio decoder is in the CAM-vs-MusicGen ratio (MusicGen's EnCodec decoder is not run); decoding is timed
separately.

What is measured and what is extrapolated (each figure says which):
  * CAM with the cache: measured, the whole 10 s and 60 s, through
    `CAMPipeline.__call__(output_type="latent")`.
  * CAM without the cache: the per-frame cost (Backbone over a window of L frames + Sampler) is measured at
    several window lengths L and interpolated linearly; the total is the sum over the frames of the run (the
    window grows to the context, 255 frames, then slides by one frame per frame). Running it whole would take
    tens of minutes.
  * MusicGen: per-step times are measured from the start and after a prompt of `--musicgen_prompt` tokens
    (read off a streamer, one timestamp per step); the per-step cost is fitted as a line in the position
    (attention and cache growth are linear in it) and summed over the 503 (10 s) or 3003 (60 s) steps.
    `--musicgen_full` also measures the whole `generate` for each duration, prints it next to the
    extrapolation and uses it in the ratios.

Timings are wall clock on a machine others may be using: the load average is printed at the start and the end,
and the ratios are taken from figures measured in the same run. Benchmarks print figures; they never assert
timings.

Run:  .venv/bin/python benchmarks/bench_generate.py  [--musicgen_full] [--skip_musicgen] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch
from _common import FrameClock, PeakMemory, load_average

from cam_hf import CAMModel, CAMPipeline, CAMSampler, MelAutoencoder, sample_next_frame
from cam_hf.pipeline_cam import DEFAULT_NUM_INFERENCE_STEPS
from cam_hf.testing_utils import random_pipeline

# Latent frames per second: the mel codec's default (and Music2Latent's 44100 / 4096).
FRAME_RATE = 22050 / 2048
LATENT_DIM = 128  # the mel codec's default latent size
MUSICGEN_TOKENS_PER_S = 50  # musicgen-small's EnCodec: 32 kHz, 640 samples per token
DURATIONS = [10.0, 60.0]
SIZES = {
    # 24 x 1024 with SwiGLU 2816: 12.8 M weights per layer, as
    # MusicGen's self-attention + 2-matrix 4096 MLP (12.6 M).
    "musicgen-small size": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=2816
    ),
    "musicgen-small layers, SwiGLU 4096": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    ),
    "small (CAMConfig defaults)": dict(),
}


# ---- the machine -------------------------------------------------------------------------------------------


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def matvec_bandwidth(dtype: torch.dtype, megabytes: int = 256, repeats: int = 15) -> float:
    """GB/s of a batch-1 matrix-vector product (`F.linear`) on a matrix far larger than the caches: the rate
    at which this machine can stream weights through the same kernel a Backbone step uses. Best of
    `repeats`."""
    columns = 4096
    rows = megabytes * 2**20 // (columns * torch.finfo(dtype).bits // 8)
    weight = torch.randn(rows, columns).to(dtype)
    vector = torch.randn(1, columns).to(dtype)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.nn.functional.linear(vector, weight)
        best = min(best, time.perf_counter() - start)
    return weight.numel() * weight.element_size() / best / 1e9


# ---- CAM ---------------------------------------------------------------------------------------------------


def fitted_mel_autoencoder() -> MelAutoencoder:
    """The default mel codec with its PCA fitted on 20 s of synthetic tones, so that it can decode."""
    autoencoder = MelAutoencoder()
    generator = torch.Generator().manual_seed(0)
    time_axis = torch.arange(20 * 22050) / 22050
    tones = sum(
        torch.sin(2 * math.pi * f * time_axis * (1 + 0.1 * torch.sin(time_axis))) for f in (220, 330, 495)
    )
    autoencoder.fit_latent_statistics(
        (0.1 * tones + 0.01 * torch.randn(tones.shape, generator=generator))[None, None]
    )
    return autoencoder


def build_pipeline(
    size: str, max_position_embeddings: int = 256, seed: int = 0, sampler_width: int | None = None
) -> CAMPipeline:
    """A pipeline with random weights (speed does not depend on them) on the default mel codec
    (`random_pipeline`, whose Sampler output layers get random values, as a trained Sampler has: zero ones
    would make every frame the noise itself)."""
    return random_pipeline(
        autoencoder=fitted_mel_autoencoder(),
        backbone_config=dict(max_position_embeddings=max_position_embeddings, **SIZES[size]),
        sampler_config={"width": sampler_width} if sampler_width else {},
        output_std=0.02,
        seed=seed,
    )


def num_parameters_and_bytes(module: torch.nn.Module) -> tuple[int, int]:
    return sum(p.numel() for p in module.parameters()), sum(
        p.numel() * p.element_size() for p in module.parameters()
    )


@torch.no_grad()
def backbone_step_ms(backbone: CAMModel, position: int, steps: int = 12, warmup: int = 3) -> float:
    """Median ms of one cached Backbone step at `position` (the start vector is position 0): the cache is
    filled with `position - 1` frames in one pass, then frames are fed one at a time from there."""
    dtype = backbone.dtype
    cache = backbone(torch.randn(1, position - warmup - 1, LATENT_DIM, dtype=dtype), use_cache=True).cache
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        backbone(torch.randn(1, 1, LATENT_DIM, dtype=dtype), cache=cache, use_cache=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


@torch.no_grad()
def sampler_ms(pipe: CAMPipeline, steps: int, repeats: int = 20) -> float:
    """Median ms of drawing one frame (all `steps` flow steps) at batch 1."""
    condition = torch.randn(1, pipe.backbone.config.hidden_size, dtype=pipe.backbone.dtype)
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        sample_next_frame(pipe.sampler, pipe.scheduler, condition, steps)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def frame_at_position_ms(
    pipe: CAMPipeline, position: int, steps: int, count: int = 10, warmup: int = 2
) -> float:
    """Median ms of a whole frame (Sampler, noise mixing, cached Backbone step), through the pipeline's own
    loop, at cache position `position`: a prompt of `position - 1` frames fills the cache first (the Backbone
    needs `max_position_embeddings > position + warmup + count`, so that the window does not slide
    meanwhile)."""
    clock = FrameClock()
    pipe(
        prompt_latents=torch.randn(1, position - 1, LATENT_DIM),
        num_frames=warmup + count + 1,
        num_inference_steps=steps,
        output_type="latent",
        context_shift=pipe.context_frames - (position - 1),
        callback_on_step_end=clock,
    )
    # Between two callbacks: the Backbone step that feeds frame i back, then the Sampler drawing frame i + 1.
    return float(np.median(clock.wall_ms()[1 + warmup :]))


def run_pipeline(pipe: CAMPipeline, num_frames: int, steps: int) -> dict:
    """Generates `num_frames` latent frames with `CAMPipeline.__call__`, timestamping every frame, then
    decodes them."""
    clock = FrameClock()
    with PeakMemory() as memory:
        clock.start()
        latents = pipe(
            num_frames=num_frames,
            num_inference_steps=steps,
            output_type="latent",
            generator=torch.Generator().manual_seed(0),
            callback_on_step_end=clock,
        ).audios
        seconds = time.perf_counter() - clock.wall[0]
    with PeakMemory() as decode_memory:
        decode = decode_seconds(pipe, latents)
    return {
        "seconds": seconds,
        "per_frame_ms": clock.wall_ms().tolist(),
        "decode_seconds": decode,
        "rss_before_mib": memory.baseline / 2**20,
        "peak_rss_mib": memory.peak / 2**20,
        "decode_peak_rss_mib": decode_memory.peak / 2**20,
    }


def run_pipeline_in_fresh_process(
    size: str, num_frames: int, steps: int, threads: int | None, sampler_width: int | None
) -> dict:
    """`run_pipeline` in a new Python process, so that its peak memory is that of a process that only builds
    the pipeline and generates (not inflated by this process's earlier measurements, whose freed memory the
    allocator keeps), and its timing starts from a clean allocator too."""
    command = [sys.executable, os.path.abspath(__file__), "--_child_run", size, str(num_frames), str(steps)]
    if threads:
        command += ["--threads", str(threads)]
    if sampler_width:
        command += ["--sampler_width", str(sampler_width)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result["per_frame_ms"] = np.array(result["per_frame_ms"])
    return result


@torch.no_grad()
def no_cache_frame_ms(pipe: CAMPipeline, window: int, steps: int, repeats: int = 2) -> float:
    """Ms of one frame WITHOUT a KV cache: the Backbone recomputed over the last `window` frames (behind the
    start vector, as in training), then the Sampler. Best of `repeats`."""
    history = torch.randn(1, window, LATENT_DIM)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        condition = pipe.backbone(history, use_cache=False).last_hidden_state[:, -1]
        sample_next_frame(pipe.sampler, pipe.scheduler, condition, steps)
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def no_cache_seconds(pipe: CAMPipeline, durations, steps: int) -> tuple[dict, dict]:
    """Extrapolated wall time of generating each duration without a cache: the frame cost measured at a few
    window lengths, interpolated, and summed over the frames (window = frames so far, capped at the
    context)."""
    context = pipe.context_frames
    lengths = sorted({0, 16, 64, 128, 192, context})
    measured = {length: no_cache_frame_ms(pipe, length, steps) for length in lengths}
    totals = {}
    for duration in durations:
        windows = np.minimum(np.arange(math.ceil(duration * FRAME_RATE)), context)
        totals[duration] = float(np.interp(windows, lengths, [measured[x] for x in lengths]).sum()) / 1000
    return totals, measured


@torch.no_grad()
def decode_seconds(pipe: CAMPipeline, latents: torch.Tensor) -> float:
    start = time.perf_counter()
    pipe.decode_latents(latents, decode_chunk_frames=64, decode_context_frames=4)
    return time.perf_counter() - start


# ---- MusicGen ----------------------------------------------------------------------------------------------


class StepClock:
    """A `generate` streamer that only records when each step's tokens arrive."""

    def __init__(self):
        self.stamps = []

    def put(self, value):
        self.stamps.append(time.perf_counter())

    def end(self):
        self.stamps.append(time.perf_counter())


def build_musicgen():
    from transformers import GenerationConfig, MusicgenDecoderConfig, MusicgenForCausalLM

    torch.manual_seed(0)
    config = MusicgenDecoderConfig(
        vocab_size=2048,
        num_hidden_layers=24,
        hidden_size=1024,
        num_attention_heads=16,
        ffn_dim=4096,
        num_codebooks=4,
        max_position_embeddings=4096,
    )
    model = MusicgenForCausalLM(config).eval()
    # MusicGen's own sampling settings (top-k 250); a fresh model has no generation defaults, so the special
    # tokens are given here: 2048 is musicgen-small's pad / start token.
    generation_config = GenerationConfig(
        do_sample=True,
        top_k=250,
        pad_token_id=2048,
        bos_token_id=2048,
        decoder_start_token_id=2048,
        num_return_sequences=1,
    )
    return model, generation_config


def musicgen_bytes_read_per_step(model) -> int:
    """Bytes of weights a batch-1 MusicGen decoding step reads: not the cross-attention layers (skipped
    without encoder states, as here: unconditional generation, like CAM's) and, of the codebook embedding
    tables, one row each.
    """
    total = 0
    for name, parameter in model.named_parameters():
        if "encoder_attn" in name:
            continue
        read = parameter[:1] if "embed_tokens" in name else parameter
        total += read.numel() * parameter.element_size()
    return total


def musicgen_steps(duration: float, num_codebooks: int = 4) -> int:
    """Decoding steps for `duration` seconds: one per 50 Hz token frame, plus the delay pattern's codebooks -
    1."""
    return round(duration * MUSICGEN_TOKENS_PER_S) + num_codebooks - 1


@torch.no_grad()
def musicgen_generate(
    model, generation_config, new_tokens: int, prompt_length: int = 1
) -> tuple[float, np.ndarray]:
    """Runs `generate` for `new_tokens` steps after a prompt; returns the wall time and the per-step times in
    ms (the first step includes the prompt's prefill and is left out of the per-step times)."""
    prompt = torch.full((model.config.num_codebooks, prompt_length), 2048)
    if prompt_length > 1:
        prompt[:, 1:] = torch.randint(0, 2048, (model.config.num_codebooks, prompt_length - 1))
    clock = StepClock()
    start = time.perf_counter()
    model.generate(prompt, generation_config=generation_config, max_new_tokens=new_tokens, streamer=clock)
    total = time.perf_counter() - start
    # stamps: [prompt put, step 1 (with prefill), step 2, ..., step n, end]
    return total, np.diff(clock.stamps[1:-1]) * 1000


# ---- report ------------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--num_inference_steps",
        type=int,
        default=None,
        help="Sampler flow steps per frame (default: the pipeline's default).",
    )
    parser.add_argument(
        "--sampler_width",
        type=int,
        default=None,
        help="Sampler width (default: CAMSampler's default), e.g. 1024 to compare.",
    )
    parser.add_argument(
        "--sizes", nargs="+", choices=list(SIZES), default=list(SIZES), help="Backbone sizes."
    )
    parser.add_argument(
        "--durations",
        type=float,
        nargs="+",
        default=DURATIONS,
        help="Seconds of audio to time (default 10 and 60; the last is used for the per-frame figures).",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's, = cores)."
    )
    parser.add_argument(
        "--musicgen_prompt",
        type=int,
        default=1000,
        help="Prompt length (tokens) at which MusicGen's per-step time is measured for the fit.",
    )
    parser.add_argument(
        "--musicgen_full",
        action="store_true",
        help="Also measure MusicGen's whole generate for every duration, and use that in the ratios "
        "(10 s: ~40 s, 60 s: ~4 min on this machine).",
    )
    parser.add_argument("--skip_musicgen", action="store_true", help="Leave MusicGen out (no ratios).")
    parser.add_argument("--skip_bf16", action="store_true", help="Leave the bf16 step measurement out.")
    # Internal: one pipeline run in a child process (see `run_pipeline_in_fresh_process`).
    parser.add_argument("--_child_run", nargs=3, metavar=("SIZE", "FRAMES", "STEPS"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._child_run:
        size, num_frames, steps = args._child_run
        result = run_pipeline(
            build_pipeline(size, sampler_width=args.sampler_width), int(num_frames), int(steps)
        )
        print(json.dumps(result))
        return
    steps = args.num_inference_steps or DEFAULT_NUM_INFERENCE_STEPS
    durations = args.durations
    frames = {d: math.ceil(d * FRAME_RATE) for d in durations}
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads; load average at start: {load_average()}"
    )
    print(
        f"frame rate assumed: {FRAME_RATE:.2f} latent frames/s (mel codec 2048/22050 s; Music2Latent "
        "4096/44100 s): " + ", ".join(f"{d:.0f} s = {n} frames" for d, n in frames.items())
    )
    bandwidth = {dtype: matvec_bandwidth(dtype) for dtype in (torch.float32, torch.bfloat16)}
    print(
        f"measured matrix-vector bandwidth (batch-1 F.linear, 256 MiB matrix, best of 15): "
        f"fp32 {bandwidth[torch.float32]:.1f} GB/s, bf16 {bandwidth[torch.bfloat16]:.1f} GB/s"
    )
    print(
        f"Sampler: width {args.sampler_width or CAMSampler().config.width}, {CAMSampler().config.num_blocks} "
        f"blocks, {steps} flow-matching Euler steps per frame (the pipeline's default)\n"
    )

    speeds = {}
    for size in args.sizes:
        pipe = build_pipeline(size, sampler_width=args.sampler_width)
        params, nbytes = num_parameters_and_bytes(pipe.backbone)
        sampler_params, _ = num_parameters_and_bytes(pipe.sampler)
        print(
            f"=== {size}: Backbone {params / 1e6:.1f} M parameters ({nbytes / 1e9:.2f} GB fp32), Sampler "
            f"{sampler_params / 1e6:.1f} M, context {pipe.context_frames} frames"
        )

        # Per frame, at batch 1. The machine's bandwidth is measured again next to
        # each step measurement and the best figure of the run is kept: a single
        # measurement can land in a burst of other load on a shared machine.
        for dtype in bandwidth:
            bandwidth[dtype] = max(bandwidth[dtype], matvec_bandwidth(dtype))
        step = backbone_step_ms(pipe.backbone, 50)
        sample = sampler_ms(pipe, steps)
        print(
            f"  batch-1 Backbone step at position 50: {step:.1f} ms; Sampler ({steps} steps): {sample:.1f} ms"
        )
        achieved = nbytes / (step / 1000) / 1e9
        print(
            f"  weight-read bandwidth of the step, fp32: {achieved:.1f} GB/s = "
            f"{100 * achieved / bandwidth[torch.float32]:.0f} % of the measured "
            f"{bandwidth[torch.float32]:.1f} GB/s "
            "(best matrix-vector figure of this run so far)"
        )
        if not args.skip_bf16:
            pipe.backbone.to(torch.bfloat16)
            step_bf16 = backbone_step_ms(pipe.backbone, 50)
            pipe.backbone.to(torch.float32)
            achieved_bf16 = nbytes / 2 / (step_bf16 / 1000) / 1e9
            print(
                f"  weight-read bandwidth of the step, bf16: {step_bf16:.1f} ms, {achieved_bf16:.1f} GB/s = "
                f"{100 * achieved_bf16 / bandwidth[torch.bfloat16]:.0f} % of the measured "
                f"{bandwidth[torch.bfloat16]:.1f} GB/s ({step / step_bf16:.2f}x the fp32 step; not the "
                "default)"
            )

        # Frame 50 against frame 600, each with a real cache of that length.
        long_pipe = build_pipeline(size, max_position_embeddings=1024, sampler_width=args.sampler_width)
        # Alternated and repeated, keeping the lower median of each, so that a burst of load on a shared
        # machine does not land on one position only.
        step_50, step_600, at_50, at_600 = math.inf, math.inf, math.inf, math.inf
        for _ in range(2):
            step_50 = min(step_50, backbone_step_ms(long_pipe.backbone, 50))
            step_600 = min(step_600, backbone_step_ms(long_pipe.backbone, 600))
            at_50 = min(at_50, frame_at_position_ms(long_pipe, 50, steps))
            at_600 = min(at_600, frame_at_position_ms(long_pipe, 600, steps))
        del long_pipe
        print(
            f"  Backbone step alone with a real cache: position 50 {step_50:.1f} ms, position 600 "
            f"{step_600:.1f} ms ({100 * (step_600 / step_50 - 1):+.1f} %)"
        )
        print(
            "  whole frame (Sampler + step) with a real cache, max_position_embeddings=1024: frame 50 "
            f"{at_50:.1f} ms, frame 600 {at_600:.1f} ms ({100 * (at_600 / at_50 - 1):+.1f} %)"
        )

        # The pipeline as shipped, with the cache and its sliding window, each duration in a fresh process.
        runs = {
            d: run_pipeline_in_fresh_process(size, frames[d], steps, args.threads, args.sampler_width)
            for d in durations
        }
        per_frame = runs[durations[-1]]["per_frame_ms"]
        median = np.median(per_frame)
        rebuilds = per_frame > 3 * median
        print(
            f"  pipeline per frame over {len(per_frame)} frames (context {pipe.context_frames}, window "
            f"rebuilt every {pipe.context_frames // 2} frames): median {median:.1f} ms, mean "
            f"{per_frame.mean():.1f} ms (rebuilds amortised); frame 50 "
            f"{per_frame[min(49, len(per_frame) - 1)]:.1f} ms, frame 600 "
            f"{per_frame[min(599, len(per_frame) - 1)]:.1f} ms (single frames, noisy); {rebuilds.sum()} "
            f"rebuild frames of {per_frame[rebuilds].mean() if rebuilds.any() else 0:.0f} ms = "
            f"{(per_frame[rebuilds] - median).sum() / len(per_frame):.1f} ms per frame amortised"
        )
        if len(per_frame) >= 610:
            early, late = np.median(per_frame[40:60]), np.median(per_frame[590:610])
            print(
                f"  pipeline frames 41-60 median {early:.1f} ms, frames 591-610 median {late:.1f} ms "
                f"({100 * (late / early - 1):+.1f} %; the sliding window holds at most {pipe.context_frames} "
                "frames)"
            )
        without, measured = no_cache_seconds(pipe, durations, steps)
        print(
            "  without cache, ms per frame by window length (measured): "
            + ", ".join(f"{length}: {ms:.0f}" for length, ms in measured.items())
        )
        for duration in durations:
            run = runs[duration]
            speeds[(size, duration, "cache")] = duration / run["seconds"]
            speeds[(size, duration, "no cache")] = duration / without[duration]
            print(
                f"  {duration:.0f} s: with cache {run['seconds']:.1f} s wall (measured) = "
                f"{duration / run['seconds']:.2f} s of audio per s; without cache {without[duration]:.1f} "
                "s "
                f"(extrapolated) = {duration / without[duration]:.2f} s of audio per s"
            )
            print(
                f"        peak memory (fresh process, cache): {run['peak_rss_mib']:,.0f} MiB RSS while "
                f"generating, {run['peak_rss_mib'] - run['rss_before_mib']:,.0f} MiB above the built "
                f"pipeline; {run['decode_peak_rss_mib']:,.0f} MiB while decoding"
            )
        for duration in durations:
            decode = runs[duration]["decode_seconds"]
            total = runs[duration]["seconds"] + decode
            print(
                f"  {duration:.0f} s including mel decoding (Griffin-Lim, {decode:.1f} s): {total:.1f} s "
                f"wall = {duration / total:.2f}x real time"
            )
        del pipe, runs
        print()

    if args.skip_musicgen:
        print(f"load average at end: {load_average()}")
        return
    model, generation_config = build_musicgen()
    mg_params, _ = num_parameters_and_bytes(model)
    mg_bytes = musicgen_bytes_read_per_step(model)
    print(
        "=== MusicGen decoder (MusicgenForCausalLM, musicgen-small's config, random weights): "
        f"{mg_params / 1e6:.1f} M parameters, {MUSICGEN_TOKENS_PER_S} token frames/s, sdpa, top-k 250 "
        "sampling"
    )
    early_total, early = musicgen_generate(model, generation_config, 64)
    _, late = musicgen_generate(model, generation_config, 24, prompt_length=args.musicgen_prompt)
    early_ms, late_ms = float(np.median(early[8:])), float(np.median(late))
    slope = (late_ms - early_ms) / (args.musicgen_prompt - 36)  # ms per position (the early median is at ~36)
    print(
        f"  per step: {early_ms:.1f} ms near position 36, {late_ms:.1f} ms near position "
        f"{args.musicgen_prompt} (measured; weight-read bandwidth {mg_bytes / (early_ms / 1000) / 1e9:.1f} "
        f"GB/s); fitted {early_ms - 36 * slope:.1f} ms + {1000 * slope:.2f} us x position"
    )
    mg_seconds = {}
    for duration in durations:
        n = musicgen_steps(duration)
        mg_seconds[duration] = (n * (early_ms - 36 * slope) + slope * n * (n - 1) / 2) / 1000
        print(
            f"  {duration:.0f} s = {n} steps: {mg_seconds[duration]:.1f} s (extrapolated) = "
            f"{duration / mg_seconds[duration]:.3f} s of audio per s"
        )
    if args.musicgen_full:
        for duration in durations:
            with PeakMemory() as memory:
                full, _ = musicgen_generate(model, generation_config, musicgen_steps(duration))
            print(
                f"  {duration:.0f} s measured whole: {full:.1f} s = {duration / full:.3f} s of audio per s "
                f"(extrapolation {100 * (mg_seconds[duration] / full - 1):+.0f} %), {memory.describe()}",
                flush=True,
            )
            mg_seconds[duration] = full
    del model

    source = "measured whole" if args.musicgen_full else "extrapolated"
    print(f"\n=== CAM seconds of audio per wall second / MusicGen's ({source}), same durations, this run")
    for size in args.sizes:
        for duration in durations:
            cached = speeds[(size, duration, "cache")] * mg_seconds[duration] / duration
            uncached = speeds[(size, duration, "no cache")] * mg_seconds[duration] / duration
            print(f"  {size}, {duration:.0f} s: with cache {cached:.1f}x, without cache {uncached:.2f}x")
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
