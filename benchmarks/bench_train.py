"""Training speed and memory of `CAMForTraining`, side by side with the same step on transformers'
`LlamaModel`.

For each preset and precision, one optimiser step (forward, backward, AdamW) of `CAMForTraining` with our
Backbone (`CAMModel`) against the same step whose Backbone is transformers' `LlamaModel` of equal size.
Everything else is shared: the same `CAMForTraining` code, the same Sampler, the same batch and the same
random draws (noise levels, noises, flow times), and the Llama side sits behind the same input projection and
start vector (`LlamaBackbone`, below). Its weights are copied from ours, so both sides compute the same
function: the largest difference of their outputs, and the loss of the last step on each side, are printed as
the proof.

Printed:
  * training frames per second (batch x frames per crop / step time), median over `--steps` steps per
    side, the steps of the two sides alternated (A B B A A B ...) so that load from other jobs on a shared
    machine falls on both, and the ratio ours / Llama (the target is at least 0.9);
  * peak resident memory of each side, each measured in a fresh process that only builds it and trains a
    few steps (`resource.getrusage` maxrss), next to the resident memory before the first step (imports,
    weights);
  * the same ratio for the Backbone's forward + backward alone, and for the control: the Sampler and the
    optimiser, the same work with the same numbers on both sides, whose distance from 1 shows the noise of
    the measurement;
  * where the step time goes (Backbone forward/backward, Sampler forward/backward, optimiser, the rest),
    read off hooks during the timed steps.

Precisions: `fp32`, and `bf16` = fp32 weights with `torch.autocast("cpu", torch.bfloat16)` around the forward.

Timings are wall clock on a machine others may be using: the load average is printed at the start and the end.
Benchmarks print figures; they never assert timings.

Run:  .venv/bin/python benchmarks/bench_train.py  [--presets small base] [--dtypes fp32 bf16] [--steps 20]
      [--threads 1] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from _common import load_average
from torch import nn
from transformers import LlamaConfig, LlamaModel
from transformers.modeling_outputs import BaseModelOutputWithPast

from cam_hf import CAMConfig, CAMForTraining, CAMModel, CAMSampler
from cam_hf.training import MODEL_PRESETS

LATENT_DIM = 128  # the mel codec's default latent size
BATCH_SIZE = 16
SAMPLER_BATCH_MUL = 4
MEMORY_STEPS = 3  # steps each fresh memory process trains: AdamW's state exists after the first


@dataclass(frozen=True)
class Preset:
    """A model size and training crop, from `cam_hf.training.MODEL_PRESETS` (`examples/train.py --preset`)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    sampler_width: int
    sampler_num_blocks: int
    context_frames: int


PRESETS = {
    name: Preset(
        **sizes["backbone"],
        sampler_width=sizes["sampler"]["width"],
        sampler_num_blocks=sizes["sampler"]["num_blocks"],
        context_frames=sizes["context_frames"],
    )
    for name, sizes in MODEL_PRESETS.items()
}
BACKBONES = ("ours", "llama")
DTYPES = {"fp32": None, "bf16": torch.bfloat16}  # the autocast dtype of each precision
# Phases of a step, in the order they run; "other" is what
# lies between them (noise augmentation, indexing, the loss).
PHASES = (
    "backbone forward",
    "sampler forward",
    "sampler backward",
    "backbone backward",
    "optimiser",
    "other",
)
# Parts of a step compared side by side: the whole step (None),
# the Backbone alone, and the control (identical work).
RATIO_PARTS = {
    "step": None,
    "Backbone": ("backbone forward", "backbone backward"),
    "control": ("sampler forward", "sampler backward", "optimiser"),
}


# ---- the two Backbones -------------------------------------------------------------------------------------


class LlamaBackbone(nn.Module):
    r"""
    transformers' `LlamaModel` behind the same input projection and start vector as [`CAMModel`], with the
    part of `CAMModel`'s interface that [`CAMForTraining`] uses, so that a training step differs only in the
    transformer.

    Args:
        config ([`CAMConfig`]): the size of the transformer, and the noise-augmentation settings
            `CAMForTraining` reads.
    """

    def __init__(self, config: CAMConfig):
        super().__init__()
        self.config = config
        self.input_proj = nn.Linear(config.latent_dim, config.hidden_size)
        self.start_embedding = nn.Parameter(torch.zeros(config.hidden_size))
        llama_config = LlamaConfig(
            vocab_size=1,  # the embedding table is unused (inputs_embeds): one row, so it costs no memory
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_key_value_heads,
            max_position_embeddings=config.max_position_embeddings,
            rms_norm_eps=config.rms_norm_eps,
            rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
            attention_dropout=config.attention_dropout,
            pad_token_id=None,
            bos_token_id=None,
            eos_token_id=None,
        )
        self.llama = LlamaModel(llama_config)

    @classmethod
    def copy_of(cls, backbone: CAMModel) -> LlamaBackbone:
        """A `LlamaBackbone` with `backbone`'s weights: the parameter names of the layers and final norm
        match."""
        llama_backbone = cls(backbone.config)
        llama_backbone.input_proj.load_state_dict(backbone.input_proj.state_dict())
        llama_backbone.start_embedding.data.copy_(backbone.start_embedding.data)
        transformer = {
            name: value
            for name, value in backbone.state_dict().items()
            if name.startswith(("layers.", "norm."))
        }
        missing, unexpected = llama_backbone.llama.load_state_dict(transformer, strict=False)
        if unexpected or set(missing) != {"embed_tokens.weight"}:
            raise RuntimeError(
                f"LlamaModel's parameters differ from CAMModel's: missing {missing}, extra {unexpected}."
            )
        return llama_backbone

    def forward(
        self,
        latents: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        use_cache: bool = False,
        noise_level: torch.Tensor | None = None,
        instrument_ids: torch.LongTensor | None = None,
    ) -> BaseModelOutputWithPast:
        r"""
        Args:
            latents (`torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`): the (noise-augmented)
                frames.
            attention_mask (`torch.Tensor` of shape `(batch_size, num_frames)`, *optional*): 1 for real
                frames.
            use_cache (`bool`): must be `False` (training).
            noise_level, instrument_ids: must be `None`: the presets condition on neither (each would add one
                embedding per frame or per sequence, the same on both sides).

        Returns:
            [`~transformers.modeling_outputs.BaseModelOutputWithPast`] whose `last_hidden_state`, of shape
            `(batch_size, num_frames + 1, hidden_size)`, holds z_0..z_T as `CAMModel`'s does.
        """
        if use_cache or noise_level is not None or instrument_ids is not None:
            raise ValueError(
                "LlamaBackbone is for training an unconditional Backbone: pass none of `use_cache=True`, "
                "`noise_level`, `instrument_ids`."
            )
        hidden_states = self.input_proj(latents)
        start = self.start_embedding.to(hidden_states.dtype).expand(latents.shape[0], 1, -1)
        hidden_states = torch.cat([start, hidden_states], dim=1)
        if attention_mask is not None:
            attention_mask = torch.cat(
                [attention_mask.new_ones(attention_mask.shape[0], 1), attention_mask], dim=1
            )
        return self.llama(inputs_embeds=hidden_states, attention_mask=attention_mask, use_cache=False)


def build_trainers(
    preset_name: str, sides: tuple[str, ...] = BACKBONES, seed: int = 0
) -> dict[str, CAMForTraining]:
    """`CAMForTraining` with our Backbone and/or with `LlamaBackbone`, in training mode. With both sides, they
    share the Sampler's initial weights and the Backbone's (copied into Llama's): the same function on both
    sides. With Llama's alone (a memory run, which must hold nothing else), Llama's Backbone has its own
    initial weights."""
    preset = PRESETS[preset_name]
    torch.manual_seed(seed)
    config = CAMConfig(
        latent_dim=LATENT_DIM,
        hidden_size=preset.hidden_size,
        num_hidden_layers=preset.num_hidden_layers,
        num_attention_heads=preset.num_attention_heads,
        intermediate_size=preset.intermediate_size,
        # A crop of T frames spans the start vector and T - 1 inputs.
        max_position_embeddings=preset.context_frames,
    )
    sampler = CAMSampler(
        latent_dim=LATENT_DIM,
        condition_dim=preset.hidden_size,
        width=preset.sampler_width,
        num_blocks=preset.sampler_num_blocks,
        time_distribution="logit_normal",
    )
    backbones = {}
    if "ours" in sides:
        backbones["ours"] = CAMModel(config)
    if "llama" in sides:
        backbones["llama"] = LlamaBackbone.copy_of(backbones["ours"]) if backbones else LlamaBackbone(config)
    trainers = {}
    for side, backbone in backbones.items():
        side_sampler = sampler
        if trainers:
            side_sampler = CAMSampler.from_config(sampler.config)
            side_sampler.load_state_dict(sampler.state_dict())
        trainers[side] = CAMForTraining(backbone, side_sampler, sampler_batch_mul=SAMPLER_BATCH_MUL).train()
    return trainers


def make_batch(preset_name: str, seed: int = 0) -> torch.Tensor:
    """A batch of `BATCH_SIZE` crops of the preset's context, shape `(BATCH_SIZE, context_frames,
    LATENT_DIM)`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH_SIZE, PRESETS[preset_name].context_frames, LATENT_DIM, generator=generator)


# ---- one training step, timed by phase ---------------------------------------------------------------------


class PhaseClock:
    """Timestamps of a training step's phases, taken by hooks: forward pre/post hooks on the Backbone and the
    Sampler, and a gradient hook on the Backbone's output, which fires when the backward pass has gone through
    the Sampler and reaches the Backbone (autograd on CPU runs the graph in one thread, Sampler side
    first)."""

    def __init__(self, trainer: CAMForTraining):
        self.stamps: dict[str, float] = {}
        for name, module in (("backbone", trainer.backbone), ("sampler", trainer.sampler)):
            module.register_forward_pre_hook(self._stamp_hook(f"{name} forward start"))
            module.register_forward_hook(self._stamp_hook(f"{name} forward end"))
        trainer.backbone.register_forward_hook(self._watch_backbone_output)

    def _stamp_hook(self, event: str):
        def hook(*_):
            self.stamps[event] = time.perf_counter()

        return hook

    def _watch_backbone_output(self, module, inputs, output):
        def on_gradient(gradient):
            self.stamps["backbone backward start"] = time.perf_counter()

        output.last_hidden_state.register_hook(on_gradient)

    def stamp(self, event: str) -> None:
        self.stamps[event] = time.perf_counter()

    def phases(self) -> dict[str, float]:
        """Seconds per phase of the last step; they add up to the step's time."""
        s = self.stamps
        seconds = {
            "backbone forward": s["backbone forward end"] - s["backbone forward start"],
            "sampler forward": s["sampler forward end"] - s["sampler forward start"],
            "sampler backward": s["backbone backward start"] - s["backward start"],
            "backbone backward": s["backward end"] - s["backbone backward start"],
            "optimiser": s["step end"] - s["backward end"],
        }
        seconds["other"] = s["step end"] - s["step start"] - sum(seconds.values())
        return seconds


def train_step(
    trainer: CAMForTraining,
    optimizer: torch.optim.Optimizer,
    latents: torch.Tensor,
    step: int,
    autocast_dtype: torch.dtype | None,
    clock: PhaseClock | None = None,
) -> float:
    """One optimiser step (forward, backward, AdamW); its random draws are seeded by `step`, so both sides
    draw the same. Returns the loss."""
    stamp = clock.stamp if clock is not None else lambda event: None
    generator = torch.Generator().manual_seed(step)
    stamp("step start")
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        loss = trainer(latents, generator=generator).loss
    stamp("backward start")
    loss.backward()
    stamp("backward end")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    stamp("step end")
    return loss.item()


def make_optimizer(trainer: CAMForTraining) -> torch.optim.Optimizer:
    return torch.optim.AdamW(trainer.parameters(), lr=3e-4)


def time_interleaved(preset_name: str, dtype: str, steps: int, warmup_steps: int, profile: bool) -> dict:
    """Times `steps` steps of each side after `warmup_steps`, alternating the sides (A B B A ...) step by
    step.

    Returns:
        `dict` with, per side, `seconds` (per step), `phases` (seconds per phase, per step) and `last_loss`.
    """
    trainers = build_trainers(preset_name)
    optimizers = {name: make_optimizer(trainer) for name, trainer in trainers.items()}
    clocks = {name: PhaseClock(trainer) for name, trainer in trainers.items()}
    latents = make_batch(preset_name)
    autocast_dtype = DTYPES[dtype]
    results = {name: {"seconds": [], "phases": [], "last_loss": None} for name in BACKBONES}
    for step in range(warmup_steps + steps):
        order = BACKBONES if step % 2 == 0 else BACKBONES[::-1]
        for name in order:
            start = time.perf_counter()
            loss = train_step(trainers[name], optimizers[name], latents, step, autocast_dtype, clocks[name])
            seconds = time.perf_counter() - start
            results[name]["last_loss"] = loss
            if step >= warmup_steps:
                results[name]["seconds"].append(seconds)
                results[name]["phases"].append(clocks[name].phases())
    if profile:
        for name in BACKBONES:
            print_operator_profile(
                trainers[name], optimizers[name], latents, autocast_dtype, f"{preset_name} {dtype} {name}"
            )
    return results


def paired_ratio(results: dict, part: str) -> float:
    """Median over the timed rounds of Llama's seconds / ours for `part` of the step (see `RATIO_PARTS`): the
    two sides' steps of a round ran back to back, so a burst of load from other jobs mostly hits both."""
    phases = RATIO_PARTS[part]

    def seconds(side: str) -> np.ndarray:
        if phases is None:
            return np.array(results[side]["seconds"])
        return np.array([sum(step[phase] for phase in phases) for step in results[side]["phases"]])

    return float(np.median(seconds("llama") / seconds("ours")))


def print_operator_profile(trainer, optimizer, latents, autocast_dtype, title: str, steps: int = 3) -> None:
    """torch.profiler's operator table (self CPU time) over `steps` steps: where to look when one side is
    slower."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for step in range(steps):
            train_step(trainer, optimizer, latents, step, autocast_dtype)
    print(f"\n--- torch.profiler, {title}, {steps} steps, by self CPU time ---")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


# ---- memory, in a fresh process per side -------------------------------------------------------------------


def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_memory(preset_name: str, dtype: str, side: str) -> dict:
    """Resident memory of this process before training one side (imports, weights, batch) and its peak over
    `MEMORY_STEPS` steps. Meant for a fresh process that builds only this side: `ru_maxrss` is the peak of the
    process's whole life, and memory freed earlier may stay resident."""
    trainer = build_trainers(preset_name, sides=(side,))[side]
    optimizer = make_optimizer(trainer)
    latents = make_batch(preset_name)
    before = resident_mib()
    for step in range(MEMORY_STEPS):
        train_step(trainer, optimizer, latents, step, DTYPES[dtype])
    return {"before_mib": before, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure_memory_in_fresh_process(preset_name: str, dtype: str, side: str, threads: int) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--threads",
        str(threads),
        "--_child_memory",
        preset_name,
        dtype,
        side,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


# ---- report ------------------------------------------------------------------------------------------------


def describe_machine(threads: int) -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    # Without native bf16 instructions (AVX512-BF16 or AMX),
    # oneDNN emulates bf16 matrix products, far slower than fp32.
    native_bf16 = "yes" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "no (emulated: slow)"
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {threads} thread(s), CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, native bf16 matrix kernels: {native_bf16}"
    )


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--presets",
        nargs="+",
        choices=list(PRESETS),
        default=["small", "base"],
        help="Model presets to measure (the shipped model is `small` or `base`).",
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        choices=list(DTYPES),
        default=list(DTYPES),
        help="fp32, and/or bf16 autocast over fp32 weights.",
    )
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per side and configuration.")
    parser.add_argument(
        "--warmup_steps",
        type=int,
        default=3,
        help="Untimed steps per side first (AdamW's state, the allocator's pools).",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument(
        "--profile", action="store_true", help="Also print torch.profiler's operator table of each side."
    )
    parser.add_argument("--skip_memory", action="store_true", help="Leave the fresh-process memory runs out.")
    # Internal: the memory of one side in a child process (see `measure_memory_in_fresh_process`).
    parser.add_argument(
        "--_child_memory", nargs=3, metavar=("PRESET", "DTYPE", "SIDE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1 or args.warmup_steps < 0:
        parser.error(
            f"--steps and --threads must be at least 1 and --warmup_steps at least 0, got {args.steps}, "
            f"{args.threads} and {args.warmup_steps}."
        )
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args._child_memory:
        print(json.dumps(measure_memory(*args._child_memory)))
        return

    print(f"machine: {describe_machine(args.threads)}; load average at start: {load_average()}")
    print(
        f"batch {BATCH_SIZE} crops, latent_dim {LATENT_DIM}, sampler_batch_mul {SAMPLER_BATCH_MUL}, AdamW; "
        f"{args.warmup_steps} warm-up + {args.steps} timed steps per side, sides alternated step by step\n",
        flush=True,
    )
    speed_rows, phase_rows = [], []
    for preset_name in args.presets:
        preset = PRESETS[preset_name]
        trainers = build_trainers(preset_name)
        backbone_parameters = {name: num_parameters(trainer.backbone) for name, trainer in trainers.items()}
        print(
            f"{preset_name}: Backbone {preset.num_hidden_layers} x {preset.hidden_size}, "
            f"{preset.num_attention_heads} heads, SwiGLU {preset.intermediate_size} (ours "
            f"{backbone_parameters['ours'] / 1e6:.2f} M trainable parameters, Llama "
            f"{backbone_parameters['llama'] / 1e6:.2f} M); Sampler {preset.sampler_num_blocks} x "
            f"{preset.sampler_width} ({num_parameters(trainers['ours'].sampler) / 1e6:.2f} M); context "
            f"{preset.context_frames} frames; attention: ours "
            f"{trainers['ours'].backbone.config._attn_implementation}, Llama "
            f"{trainers['llama'].backbone.llama.config._attn_implementation}"
        )
        with torch.no_grad():
            inputs = make_batch(preset_name)[:, :-1]
            difference = (
                (
                    trainers["ours"].backbone(inputs, use_cache=False).last_hidden_state
                    - trainers["llama"].backbone(inputs).last_hidden_state
                )
                .abs()
                .max()
                .item()
            )
        print(
            f"  same function: max |z_ours - z_Llama| = {difference:.2e} on the batch (fp32, weights copied)",
            flush=True,
        )
        del trainers
        frames_per_step = BATCH_SIZE * preset.context_frames
        for dtype in args.dtypes:
            results = time_interleaved(preset_name, dtype, args.steps, args.warmup_steps, args.profile)
            memory = {}
            if not args.skip_memory:
                memory = {
                    side: measure_memory_in_fresh_process(preset_name, dtype, side, args.threads)
                    for side in BACKBONES
                }
            median = {side: float(np.median(results[side]["seconds"])) for side in BACKBONES}
            ratios = {part: paired_ratio(results, part) for part in RATIO_PARTS}
            print(
                f"  {dtype}: median step ours {1000 * median['ours']:.0f} ms, Llama "
                f"{1000 * median['llama']:.0f} ms; paired ratio {ratios['step']:.3f}; loss of the last step "
                f"ours {results['ours']['last_loss']:.5f}, Llama {results['llama']['last_loss']:.5f} (the "
                f"same training run on both sides, up to rounding); load average {load_average()}",
                flush=True,
            )
            speed_rows.append(
                [
                    preset_name,
                    dtype,
                    f"{1000 * median['ours']:.0f}",
                    f"{1000 * median['llama']:.0f}",
                    f"{frames_per_step / median['ours']:,.0f}",
                    f"{frames_per_step / median['llama']:,.0f}",
                    f"{median['llama'] / median['ours']:.3f}",
                    *(f"{ratios[part]:.3f}" for part in RATIO_PARTS),
                    *(
                        f"{memory[side]['peak_mib']:,.0f} ({memory[side]['before_mib']:,.0f})"
                        if memory
                        else "-"
                        for side in BACKBONES
                    ),
                ]
            )
            for side in BACKBONES:
                phases = {
                    phase: 1000 * float(np.median([p[phase] for p in results[side]["phases"]]))
                    for phase in PHASES
                }
                total = sum(phases.values())
                phase_rows.append(
                    [
                        preset_name,
                        dtype,
                        side,
                        *(f"{phases[phase]:.0f} ({100 * phases[phase] / total:.0f}%)" for phase in PHASES),
                    ]
                )

    print(
        "\nTraining speed: median step; frames/s = batch x frames per crop / median step; ratio = ours / "
        "Llama frames per second, from the medians and as the median of the ratios of adjacent steps "
        "(paired), for the whole step, the Backbone's forward + backward alone, and the control: the Sampler "
        "and optimiser, the same work on both sides, whose distance from 1 is the noise of the measurement. "
        "Peak RSS in MiB of a fresh process per side (in brackets: RSS before the first step)."
    )
    print_table(
        [
            "preset",
            "dtype",
            "ours ms",
            "Llama ms",
            "ours frames/s",
            "Llama frames/s",
            "ratio",
            *(f"paired: {part}" for part in RATIO_PARTS),
            "ours peak RSS",
            "Llama peak RSS",
        ],
        speed_rows,
    )
    print("\nWhere a step goes: median ms per phase (share of their sum)")
    print_table(["preset", "dtype", "side", *PHASES], phase_rows)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
