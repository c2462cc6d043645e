"""The parts of a training run around the objective (`cam_hf.training`): seeds that make a resume exact, the
precision, checks of the loss and of the processes, the step log, validation, and the run's summary for its
card.

Exact resume: the data order of each epoch is Accelerate's seedable sampler (a permutation seeded by
`data_seed(seed) + epoch`), and everything random in a step (crops, noise levels, noises, flow times, label
dropout) comes from generators seeded by (seed, micro-step, process) (`step_generator`): a run killed anywhere
and resumed from a checkpoint draws the same numbers as a run never stopped.
"""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np
import torch
from accelerate import Accelerator

from ..listening import plot_spectrograms
from ..pipeline_cam import CAMPipeline
from ..sampler import default_scheduler
from .latent_clips import LatentClips, collate_clips
from .objective import CAMForTraining

LOG_FILE = "train_log.jsonl"
# Seeds of the epochs' orders and of the per-step generators are mixed from the run's seed with these primes.
SEED_MIX = (1_000_003, 7_919)


def data_seed(seed: int) -> int:
    """The `data_seed` of Accelerate's seedable sampler, which permutes epoch e with `torch.randperm` seeded
    by `data_seed + e`. `seed * 1_000_003 + e` is the order every run of examples/train.py has used, so that
    checkpoints of earlier runs resume on the same order."""
    return seed * SEED_MIX[0]


def step_generator(
    seed: int, micro_step: int, process_index: int, stream: int, device="cpu"
) -> torch.Generator:
    """A generator of one micro-step (stream 0: crops, 1: the model's noise): a pure function of its
    arguments, so a resumed run draws the same numbers."""
    mixed = ((seed * SEED_MIX[0] + micro_step) * SEED_MIX[1] + process_index) * 2 + stream
    return torch.Generator(device=device).manual_seed(mixed % 2**63)


def choose_precision(requested: str) -> tuple[str, str]:
    """The mixed precision to train in and why: `auto` takes bf16 only where the hardware computes it
    natively (on an AVX2-only CPU a bf16 step is ~11x slower than fp32)."""
    if requested != "auto":
        return requested, "asked for"
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return "bf16", f"{torch.cuda.get_device_name()} computes bf16 natively"
        return "no", f"{torch.cuda.get_device_name()} has no native bf16"
    flags = set()
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            flags = {flag for line in f if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if native:
        return "bf16", f"the CPU has {', '.join(native)}"
    return "no", f"the CPU has no native bf16 ({torch.backends.cpu.get_cpu_capability()}): fp32 is faster"


def stop_if_not_finite(
    accelerator: Accelerator, loss: torch.Tensor, grad_norm, step: int, last_checkpoint: str | None
) -> None:
    """Stops the run (on every process) at the first non-finite loss or gradient, before the optimiser uses
    it."""
    values = torch.stack(
        [loss.detach().float(), torch.as_tensor(grad_norm, dtype=torch.float32, device=loss.device)]
    )
    if bool(torch.isfinite(accelerator.gather(values[None])).all()):
        return
    where = (
        f"the last good checkpoint is {last_checkpoint}"
        if last_checkpoint
        else "no checkpoint was written yet"
    )
    raise FloatingPointError(
        f"Non-finite training loss ({loss.item()}) or gradient norm ({float(grad_norm)}) at step {step}: "
        f"stopping without saving; {where}. Lower --learning_rate, raise --lr_warmup_steps, or check the "
        "data, then resume with --resume_from_checkpoint latest."
    )


def check_weights_in_sync(accelerator: Accelerator, model: torch.nn.Module) -> None:
    """After distributed training every process must hold the same weights: a cheap checksum proves it."""
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    gathered = accelerator.gather(checksum[None].to(accelerator.device))
    if not torch.allclose(gathered, gathered[:1].expand_as(gathered), rtol=0, atol=0):
        raise RuntimeError(f"The processes ended with different weights (checksums {gathered.tolist()}).")


# ---- the step log
# --------------------------------------------------------------------------------------------------


def read_log(path: str) -> list[dict]:
    """The records of a `train_log.jsonl` (none if it does not exist)."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class StepLog:
    r"""
    `OUTPUT_DIR/train_log.jsonl`, one JSON line per optimiser step (`step`, `epoch`, `loss`, `lr`,
    `grad_norm`, `frames_per_s`, `frames`, `wall_s`, `clip_indices`), also sent to the trackers. Opened on a
    resumed run, it drops the lines past the checkpoint's step (a killed run may have logged steps its last
    checkpoint does not hold) and goes on counting the wall time from theirs.

    Args:
        accelerator (`Accelerator`): the run's (only its main process writes).
        output_dir (`str`): the run's folder.
        step (`int`): the step the run continues from.
    """

    def __init__(self, accelerator: Accelerator, output_dir: str, step: int):
        self.accelerator, self.path = accelerator, os.path.join(output_dir, LOG_FILE)
        self.wall_before = 0.0
        if accelerator.is_main_process:
            kept = [record for record in read_log(self.path) if record["step"] <= step]
            with open(self.path + ".tmp", "w") as f:
                f.writelines(json.dumps(record) + "\n" for record in kept)
            os.replace(self.path + ".tmp", self.path)
            self.wall_before = max([record.get("wall_s", 0.0) for record in kept], default=0.0)
        self.started = time.time()
        self.restart_clock()

    def restart_clock(self) -> None:
        """Start timing the next step: frames per second count training only, not checkpoints and
        validation."""
        self.step_start, self.frames, self.losses, self.indices = time.time(), 0, [], []

    def add_micro_batch(
        self, loss: torch.Tensor, attention_mask: torch.Tensor, indices: torch.Tensor
    ) -> None:
        """Count one micro-batch of every process (a collective call: every process makes it)."""
        device = self.accelerator.device
        self.losses.append(self.accelerator.gather(loss.detach()[None]).mean().item())
        self.frames += int(self.accelerator.gather(attention_mask.sum()[None].to(device)).sum().item())
        self.indices += self.accelerator.gather(indices.to(device)).tolist()

    def write_step(self, step: int, epoch: int, lr: float, grad_norm) -> dict:
        """Log the optimiser step made of the micro-batches added since the clock restarted; returns its
        record."""
        elapsed = time.time() - self.step_start
        record = {
            "step": step,
            "epoch": epoch,
            "loss": float(np.mean(self.losses)),
            "lr": lr,
            "grad_norm": float(grad_norm),
            "frames_per_s": self.frames / max(elapsed, 1e-9),
            "frames": self.frames,
            "wall_s": self.wall_before + time.time() - self.started,
            "clip_indices": self.indices,
        }
        if self.accelerator.is_main_process:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
            self.accelerator.log({k: v for k, v in record.items() if k != "clip_indices"}, step=step)
        return record

    def read(self) -> list[dict]:
        """Every record of the run, before and after any resume."""
        return read_log(self.path)


# ---- validation
# ----------------------------------------------------------------------------------------------------


def training_pipeline(model: CAMForTraining, autoencoder) -> CAMPipeline:
    """The pipeline of the model being trained (its modules, not copies)."""
    return CAMPipeline(
        backbone=model.backbone,
        sampler=model.sampler,
        scheduler=default_scheduler(model.sampler),
        autoencoder=autoencoder,
    )


@torch.no_grad()
def validation_loss(
    model: CAMForTraining, clips: LatentClips, context_frames: int, batch_size: int, seed: int
) -> float:
    """Mean loss over the clips' first `context_frames` frames, with fixed noise: comparable across steps."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(clips), batch_size):
        batch = collate_clips(clips.__getitems__(list(range(start, min(start + batch_size, len(clips))))))
        lengths = batch["lengths"].clamp(max=context_frames)
        latents = batch["latents"][:, : int(lengths.max())].float().to(device)
        mask = (torch.arange(latents.shape[1])[None] < lengths[:, None]).long().to(device)
        ids = batch.get("instrument_ids")
        output = model(
            latents,
            attention_mask=mask,
            generator=generator,
            instrument_ids=ids.to(device) if ids is not None else None,
        )
        total += output.frame_losses.sum().item()
        count += output.frame_losses.numel()
    model.train()
    return total / max(count, 1)


def run_validation(
    accelerator: Accelerator,
    model: CAMForTraining,
    ema,
    autoencoder,
    clips: LatentClips,
    output_dir: str,
    step: int,
    batch_size: int,
    seed: int,
    audio_options: dict | None = None,
    tracker=None,
) -> None:
    r"""
    Validation on the main process: the loss (logged to `train_log.jsonl` and the trackers) and, with
    `audio_options`, the audio of `write_validation_audio` in `output_dir/validation/step-STEP`. With the EMA
    weights when kept (the raw weights are restored after); the training random state is untouched.

    Args:
        accelerator (`Accelerator`): the run's.
        model ([`CAMForTraining`]): the unwrapped model being trained.
        ema (`EMAModel`, *optional*): the EMA of its weights.
        autoencoder (`AudioAutoencoderMixin`): the codec of the latents.
        clips ([`LatentClips`]): the validation clips.
        output_dir (`str`): the run's folder.
        step (`int`): the optimiser step.
        batch_size (`int`), seed (`int`): of the validation loss.
        audio_options (`dict`, *optional*): the `num_prompts`, `num_samples`, `seconds` and
            `num_inference_steps` of `write_validation_audio`; `None` writes no audio.
        tracker (*optional*): a TensorBoard `SummaryWriter` for the audio and figures.
    """
    if accelerator.is_main_process:
        with torch.random.fork_rng(devices=[]):
            if ema is not None:
                ema.store(model.parameters())
                ema.copy_to(model.parameters())
            context_frames = model.backbone.config.max_position_embeddings - 1
            loss = validation_loss(model, clips, context_frames, batch_size, seed)
            with open(os.path.join(output_dir, LOG_FILE), "a") as f:
                f.write(json.dumps({"step": step, "validation_loss": loss}) + "\n")
            accelerator.log({"validation_loss": loss}, step=step)
            if audio_options:
                pipe = training_pipeline(model, autoencoder)
                pipe.set_progress_bar_config(disable=True)
                folder = os.path.join(output_dir, "validation", f"step-{step:07d}")
                write_validation_audio(
                    pipe, clips, folder, **audio_options, seed=seed, tracker=tracker, step=step
                )
                model.train()
            if ema is not None:
                ema.restore(model.parameters())
    accelerator.wait_for_everyone()


@torch.no_grad()
def write_validation_audio(
    pipe: CAMPipeline,
    clips: LatentClips,
    folder: str,
    num_prompts: int,
    num_samples: int,
    seconds: float,
    num_inference_steps: int,
    seed: int,
    tracker=None,
    step: int = 0,
) -> list[str]:
    r"""
    Continuations of fixed validation prompts and samples from scratch, as WAV files and spectrogram PNGs.

    Args:
        pipe ([`CAMPipeline`]): the model being trained.
        clips ([`LatentClips`]): validation clips; the first `num_prompts` are continued from their first
            half.
        folder (`str`): where the files go.
        num_prompts (`int`), num_samples (`int`): how many continuations and samples (one per instrument in
            turn for a conditioned model).
        seconds (`float`): the length generated each time.
        num_inference_steps (`int`): Sampler steps per frame.
        seed (`int`): the generations' seeds are `seed + i` (prompts) and `seed + 1000 + i` (samples).
        tracker (*optional*): a TensorBoard `SummaryWriter` that also gets the audio and the figures.
        step (`int`, defaults to 0): the training step, for the tracker.

    Returns:
        `list[str]`: the files written.
    """
    import matplotlib.pyplot as plt
    import soundfile as sf

    os.makedirs(folder, exist_ok=True)
    rate, written = pipe.sample_rate, []
    num_frames = max(1, round(seconds * pipe.frame_rate))
    config = pipe.backbone.config

    def write(name: str, rows: list[tuple[str, np.ndarray]], marker_s: float | None = None) -> None:
        sf.write(os.path.join(folder, f"{name}.wav"), np.clip(rows[-1][1], -1, 1), rate)
        figure = plot_spectrograms(rows, rate, marker_s)
        figure.savefig(os.path.join(folder, f"{name}.png"), dpi=80)
        written.extend([os.path.join(folder, f"{name}.wav"), os.path.join(folder, f"{name}.png")])
        if tracker is not None:
            tracker.add_audio(
                f"validation/{name}", torch.from_numpy(rows[-1][1])[None], step, sample_rate=rate
            )
            tracker.add_figure(f"validation/{name}", figure, step)
        plt.close(figure)

    for i in range(min(num_prompts, len(clips))):
        clip = clips[i]
        real = clip["latents"].float()[None]
        prompt = real[:, : max(1, real.shape[1] // 2)]
        kwargs = (
            {"instrument": clip["instrument_id"]}
            if config.num_instruments and "instrument_id" in clip
            else {}
        )
        continuation = pipe(
            prompt_latents=prompt,
            num_frames=num_frames,
            output_type="latent",
            num_inference_steps=num_inference_steps,
            generator=torch.Generator().manual_seed(seed + i),
            **kwargs,
        ).audios
        real_audio = pipe.autoencoder.decode(real).float()[0, 0].numpy()
        generated = (
            pipe.autoencoder.decode(torch.cat([prompt, continuation.float()], dim=1)).float()[0, 0].numpy()
        )
        rows = [
            ("real clip (through the autoencoder)", real_audio),
            ("prompt, then the model's continuation", generated),
        ]
        write(f"prompt-{i}", rows, marker_s=prompt.shape[1] / pipe.frame_rate)
    for i in range(num_samples):
        kwargs, title = {}, "unconditional sample"
        if config.num_instruments:
            kwargs["instrument"] = i % config.num_instruments
            title = f"sample, instrument {config.instrument_names[kwargs['instrument']]!r}"
        audio = pipe(
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            generator=torch.Generator().manual_seed(seed + 1000 + i),
            **kwargs,
        ).audios[0, 0]
        write(f"sample-{i}", [(title, audio)])
    return written


# ---- the run's summary, for its card
# -------------------------------------------------------------------------------


def hardware_name(accelerator: Accelerator) -> str:
    """What the run trains on, e.g. `2 x CPU (x86_64, 1 threads)`."""
    if accelerator.device.type == "cuda":
        name = torch.cuda.get_device_name(accelerator.device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return f"{accelerator.num_processes} x {name}"


def summarize_run(
    log: list[dict],
    train_clips: LatentClips,
    validation_clips: LatentClips | None,
    model: CAMForTraining,
    context_frames: int,
    frame_rate: float,
    batch_clips: int,
    hardware: str,
) -> dict:
    """The run's figures, from the whole log (so a resumed run counts every step, before and after the
    resume)."""
    steps = [record for record in log if "loss" in record]
    validation_losses = [record["validation_loss"] for record in log if "validation_loss" in record]
    frames_seen = sum(record["frames"] for record in steps)
    return {
        "steps": steps[-1]["step"] if steps else 0,
        "train_clips": len(train_clips),
        "train_hours": train_clips.num_frames() / frame_rate / 3600,
        "validation_clips": len(validation_clips) if validation_clips is not None else 0,
        "batch_clips": batch_clips,
        "context_frames": context_frames,
        "frames_seen": frames_seen,
        "hours_seen": frames_seen / frame_rate / 3600,
        "wall_hours": (steps[-1]["wall_s"] if steps else 0.0) / 3600,
        "mean_frames_per_s": frames_seen / max(steps[-1]["wall_s"], 1e-9) if steps else 0.0,
        "hardware": hardware,
        "parameters": {
            "backbone": sum(p.numel() for p in model.backbone.parameters()),
            "sampler": sum(p.numel() for p in model.sampler.parameters()),
        },
        "final_train_loss": float(np.mean([record["loss"] for record in steps[-100:]]))
        if steps
        else float("nan"),
        "final_validation_loss": round(validation_losses[-1], 4) if validation_losses else "not measured",
    }


def save_trained_pipeline(
    model: CAMForTraining,
    autoencoder,
    output_dir: str,
    summary: dict,
    details: str,
    hub_model_id: str | None = None,
    hub_token: str | None = None,
) -> CAMPipeline:
    """Save the trained pipeline into `output_dir` with its model card (whose training section is `details`)
    and `training_summary.json`, and push it to the Hub as `hub_model_id` if given. Returns the pipeline."""
    pipe = training_pipeline(model, autoencoder)
    readme = os.path.join(output_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)  # a resumed run rewrites the card with the whole run's figures
    pipe.save_pretrained(output_dir, training_details=details)
    with open(os.path.join(output_dir, "training_summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if hub_model_id is not None:
        pipe.push_to_hub(hub_model_id, token=hub_token, training_details=details)
    return pipe


def training_details(summary: dict, dataset_path: str, command: str, ema_decay: float | None = None) -> str:
    """The training section of the model card (markdown), from `summarize_run`'s figures and the command."""
    weights = f"EMA (decay {ema_decay})" if ema_decay is not None else "raw (no EMA)"
    return (
        f"Trained with `examples/train.py` of cam_hf on `{dataset_path}` ({summary['train_clips']:,} "
        f"training clips, {summary['train_hours']:.1f} h of audio).\n\n"
        "| | |\n|---|---|\n"
        f"| optimiser steps | {summary['steps']:,} (batch {summary['batch_clips']} clips x up to "
        f"{summary['context_frames']} frames) |\n"
        f"| audio seen | {summary['hours_seen']:.1f} h ({summary['frames_seen']:,} frames) |\n"
        f"| wall time | {summary['wall_hours']:.2f} h on {summary['hardware']} |\n"
        f"| final training loss | {summary['final_train_loss']:.4f} (mean of the last 100 steps) |\n"
        f"| final validation loss | {summary['final_validation_loss']} |\n"
        f"| weights | {weights} |\n\n"
        f"Command:\n\n```bash\n{command}\n```\n"
    )


__all__ = [
    "LOG_FILE",
    "check_weights_in_sync",
    "choose_precision",
    "data_seed",
    "hardware_name",
    "read_log",
    "run_validation",
    "save_trained_pipeline",
    "StepLog",
    "stop_if_not_finite",
    "step_generator",
    "summarize_run",
    "training_details",
    "training_pipeline",
    "validation_loss",
    "write_validation_audio",
]
