"""The step log of a training run, `OUTPUT_DIR/train_log.jsonl`: one JSON line per optimiser step (and one per
validation), which a resumed run continues and the run's summary reads.
"""

import json
import os
import time

import numpy as np
import torch
from accelerate import Accelerator

LOG_FILE = "train_log.jsonl"


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
        """Start timing the next step (frames per second count training, not checkpoints or validation)."""
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
        """Log the optimiser step made of the micro-batches added since the clock restarted; return the
        step's record (the line written to the log)."""
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


__all__ = ["LOG_FILE", "StepLog", "read_log"]
