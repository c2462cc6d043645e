"""Checks made while a training run goes on: a non-finite loss or gradient stops it before the optimiser uses
it, and at the end every process must hold the same weights.
"""

import torch
from accelerate import Accelerator


def stop_if_not_finite(
    accelerator: Accelerator, loss: torch.Tensor, grad_norm, step: int, last_checkpoint: str | None
) -> None:
    """Stops the run on every process at the first non-finite loss or gradient norm, before the optimiser
    takes a step with it."""
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


__all__ = ["check_weights_in_sync", "stop_if_not_finite"]
