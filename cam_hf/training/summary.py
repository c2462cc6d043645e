"""The summary of a finished training run: its figures (`training_summary.json`), the training section of its
model card, and the trained pipeline saved with both.
"""

from __future__ import annotations

import json
import os
import platform

import numpy as np
import torch
from accelerate import Accelerator

from ..pipeline_cam import CAMPipeline
from .latent_clips import LatentClips
from .models import training_pipeline
from .objective import CAMForTraining


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
    """The run's figures, from the whole log, so that a resumed run counts every step before and after
    its resume. `final_validation_loss` is `None` when no validation ran."""
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
        "final_validation_loss": round(validation_losses[-1], 4) if validation_losses else None,
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
    validation_loss = summary["final_validation_loss"]
    return (
        f"Trained with `examples/train.py` of cam_hf on `{dataset_path}` ({summary['train_clips']:,} "
        f"training clips, {summary['train_hours']:.1f} h of audio).\n\n"
        "| | |\n|---|---|\n"
        f"| optimiser steps | {summary['steps']:,} (batch {summary['batch_clips']} clips x up to "
        f"{summary['context_frames']} frames) |\n"
        f"| audio seen | {summary['hours_seen']:.1f} h ({summary['frames_seen']:,} frames) |\n"
        f"| wall time | {summary['wall_hours']:.2f} h on {summary['hardware']} |\n"
        f"| final training loss | {summary['final_train_loss']:.4f} (mean of the last 100 steps) |\n"
        f"| final validation loss | {'not measured' if validation_loss is None else validation_loss} |\n"
        f"| weights | {weights} |\n\n"
        f"Command:\n\n```bash\n{command}\n```\n"
    )


__all__ = ["hardware_name", "save_trained_pipeline", "summarize_run", "training_details"]
