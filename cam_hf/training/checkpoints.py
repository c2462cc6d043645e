"""Checkpoints of a training run: `OUTPUT_DIR/checkpoint-STEP`, holding Accelerate's `save_state`
and `training_state.json`.

    checkpoint-STEP/
      model.safetensors, optimizer.bin, scheduler.bin, random_states_N.pkl    Accelerate's states
      custom_checkpoint_0.pkl     the EMA (diffusers' EMAModel, registered for checkpointing)
      training_state.json         {"step": STEP}

A checkpoint of the legacy layout holds the EMA as `ema.safetensors` (`shadow.I` tensors) instead, with its
step count in `training_state.json`: it resumes exactly too, so that no existing run loses its EMA.

A checkpoint is checked before it is resumed: a missing or truncated file (a full disk, a copy cut short) is
named, and `latest` falls back to the newest whole checkpoint. The bad one is kept, renamed, never deleted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from diffusers.training_utils import EMAModel
from safetensors import safe_open
from safetensors.torch import load_file

logger = get_logger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "training_state.json"
LEGACY_EMA_FILE = "ema.safetensors"
EMA_FILE = "custom_checkpoint_0.pkl"  # Accelerate's name for the first object registered for checkpointing
# What every checkpoint holds, as the prefixes of Accelerate's names whatever the distributed backend (FSDP
# shards the model and optimizer into folders, DeepSpeed keeps both in `pytorch_model/`).
REQUIRED = {
    "model weights (model.safetensors)": ("model", "pytorch_model"),
    "optimizer state (optimizer.bin)": ("optimizer", "pytorch_model"),
    "random states (random_states_0.pkl)": ("random_states_0",),
}
SET_ASIDE_SUFFIX = ".corrupt"


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """Checkpoints in `output_dir` as (step, path), oldest first. Folders being written (`.tmp`) or set aside
    as corrupt do not count."""
    if not os.path.isdir(output_dir):
        return []
    found = [
        (int(match.group(1)), os.path.join(output_dir, name))
        for name in os.listdir(output_dir)
        if (match := CHECKPOINT_PATTERN.match(name))
    ]
    return sorted(found)


def _unreadable(path: str) -> str | None:
    """Why the file at `path` cannot be loaded, or `None` when it can. Nothing is unpickled: torch's zip files
    are checked against their CRCs, safetensors files against their header, and the EMA state is read
    with `weights_only=True`."""
    name = os.path.basename(path)
    try:
        if name.endswith(".safetensors"):
            with safe_open(path, "pt") as weights:
                weights.keys()
        elif name == EMA_FILE:
            # Accelerate loads registered objects with `weights_only=False`: pass only tensors and numbers.
            torch.load(path, map_location="cpu", weights_only=True)
        elif name.endswith((".bin", ".pkl")):
            with zipfile.ZipFile(path) as archive:
                broken = archive.testzip()
            if broken is not None:
                return f"its member {broken} fails its CRC check"
        elif name.endswith(".json"):
            with open(path) as f:
                json.load(f)
    except Exception as error:  # any failure to read is what this check reports
        return f"{type(error).__name__}: {str(error).strip()[:200]}"
    return None


def check_checkpoint(path: str, with_ema: bool = False) -> list[str]:
    r"""
    What would stop a resume from the checkpoint at `path`: missing files and files that cannot be read.

    Args:
        path (`str`): a `checkpoint-STEP` folder.
        with_ema (`bool`, defaults to `False`): whether the run keeps an EMA, in which case the checkpoint
            must hold one.

    Returns:
        `list[str]`: one line per problem, naming the file; empty for a whole checkpoint.
    """
    if not os.path.isdir(path):
        return [f"{path} is not a folder"]
    names = set(os.listdir(path))
    problems = [f"{os.path.join(path, STATE_FILE)} is missing"] if STATE_FILE not in names else []
    problems += [
        f"{path} holds no {what}"
        for what, prefixes in REQUIRED.items()
        if not any(n.startswith(prefixes) for n in names)
    ]
    for folder, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            reason = _unreadable(os.path.join(folder, name))
            if reason is not None:
                problems.append(f"{os.path.join(folder, name)} cannot be read ({reason})")
    if with_ema and not names & {EMA_FILE, LEGACY_EMA_FILE} and STATE_FILE in names:
        problems.append(f"{path} holds no EMA weights ({EMA_FILE}): it was saved without --use_ema")
    return problems


def _set_aside(path: str) -> str:
    """Rename a corrupt checkpoint so that no later run resumes from it or writes over it, and return the
    name it now has."""
    target, number = path + SET_ASIDE_SUFFIX, 1
    while os.path.exists(target):
        target, number = f"{path}{SET_ASIDE_SUFFIX}-{number}", number + 1
    os.replace(path, target)
    return target


def find_checkpoint(
    accelerator: Accelerator, output_dir: str, requested: str, with_ema: bool = False
) -> str | None:
    r"""
    The checkpoint to resume from, checked first (`check_checkpoint`).

    Args:
        accelerator (`Accelerator`): the run's (only its main process renames folders).
        output_dir (`str`): the run's folder.
        requested (`str`): `"latest"`, or the path of a `checkpoint-STEP` folder.
        with_ema (`bool`, defaults to `False`): whether the run keeps an EMA.

    Returns:
        `str` or `None`: the path, or `None` when `latest` finds no checkpoint yet (the run starts from
        scratch). With `latest`, corrupt checkpoints newer than the newest whole one are logged with their bad
        files and renamed `checkpoint-STEP.corrupt` (kept, never deleted). A corrupt checkpoint asked for by
        path is a `ValueError` that names the bad files and the whole checkpoints to pick from instead.
    """
    if requested != "latest":
        if not os.path.isdir(requested) or not any(
            name == STATE_FILE or name.startswith(("model", "optimizer")) for name in os.listdir(requested)
        ):
            raise ValueError(
                f"--resume_from_checkpoint {requested!r} is not a checkpoint folder written by this script "
                f"(no {STATE_FILE}): pass `latest` or an output_dir/checkpoint-STEP folder."
            )
        problems = check_checkpoint(requested, with_ema)
        if problems:
            parent = os.path.dirname(os.path.normpath(requested))
            whole = [path for _, path in list_checkpoints(parent) if not check_checkpoint(path, with_ema)]
            raise ValueError(
                f"The checkpoint {requested} cannot be resumed: {'; '.join(problems)}. Whole checkpoints "
                f"beside it: {whole or 'none'}; pass one of them (or `latest`) to --resume_from_checkpoint."
            )
        return requested
    checkpoints = list_checkpoints(output_dir)
    corrupt = []
    for _, path in reversed(checkpoints):
        problems = check_checkpoint(path, with_ema)
        if not problems:
            break
        if with_ema and all("holds no EMA weights" in problem for problem in problems):
            raise ValueError(f"{path} was saved without --use_ema: resume it without --use_ema.")
        corrupt.append((path, problems))
    else:
        path = None
    if corrupt and path is None:
        every_problem = "; ".join(problem for _, problems in corrupt for problem in problems)
        raise ValueError(
            f"No checkpoint of {output_dir} can be resumed: {every_problem}. Restore a whole copy, or move "
            "them away to start from scratch."
        )
    accelerator.wait_for_everyone()  # every process has checked the folders before any is renamed
    for bad, problems in corrupt:
        if accelerator.is_main_process:
            kept = _set_aside(bad)
            logger.warning(
                f"Checkpoint {bad} is corrupt ({'; '.join(problems)}): kept as {kept}, resuming from {path}.",
                main_process_only=True,
            )
    accelerator.wait_for_everyone()
    if path is None:
        logger.info(f"No checkpoint in {output_dir} yet: starting from scratch.", main_process_only=True)
    return path


def save_checkpoint(
    accelerator: Accelerator, output_dir: str, step: int, total_limit: int | None = None
) -> str:
    r"""
    `accelerator.save_state` into `checkpoint-STEP.tmp`, then one rename: a run killed while saving keeps its
    last checkpoint whole. Objects registered for checkpointing (the EMA) are saved with it.

    Accelerate's own naming (`ProjectConfiguration(automatic_checkpoint_naming=True, total_limit=...)`) does
    not fit: it numbers checkpoints by save count rather than by step, writes in place (a kill while saving
    leaves a half-written checkpoint under its final name), and deletes the oldest before the new one is
    whole, while runs and docs name checkpoints by step and existing checkpoints must resume. So this
    function names them and rotates them, after the rename.

    Args:
        accelerator (`Accelerator`): the run's.
        output_dir (`str`): the run's folder.
        step (`int`): the optimiser step just taken.
        total_limit (`int`, *optional*): keep only the newest `total_limit` checkpoints.

    Returns:
        `str`: the checkpoint's path.
    """
    final = os.path.join(output_dir, f"checkpoint-{step}")
    partial = final + ".tmp"
    if accelerator.is_main_process and os.path.exists(partial):
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(partial)
    if accelerator.is_main_process:
        with open(os.path.join(partial, STATE_FILE), "w") as f:
            json.dump({"step": step}, f)
        os.replace(partial, final)
        if total_limit is not None:
            for _, old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def resume_from_checkpoint(accelerator: Accelerator, path: str | None, ema: EMAModel | None = None) -> int:
    r"""
    Register the EMA with Accelerate for checkpointing and restore the checkpoint at `path` (one written by
    `save_checkpoint`, or a legacy one with `ema.safetensors`).

    Args:
        accelerator (`Accelerator`): the run's, with the model, optimizer and scheduler prepared.
        path (`str`, *optional*): the checkpoint (`find_checkpoint`); `None` starts from scratch.
        ema (`EMAModel`, *optional*): the run's EMA of the weights.

    Returns:
        `int`: the step the run continues from.
    """
    legacy_ema = ema is not None and path is not None and os.path.isfile(os.path.join(path, LEGACY_EMA_FILE))
    if ema is not None and not legacy_ema:
        accelerator.register_for_checkpointing(ema)  # before `load_state`, which restores registered objects
    if path is None:
        return 0
    accelerator.load_state(path)
    with open(os.path.join(path, STATE_FILE)) as f:
        state = json.load(f)
    if legacy_ema:
        shadow = load_file(os.path.join(path, LEGACY_EMA_FILE))
        ema.shadow_params = [shadow[f"shadow.{i}"].to(p.device) for i, p in enumerate(ema.shadow_params)]
        ema.optimization_step = state["ema"]["optimization_step"]
        accelerator.register_for_checkpointing(ema)
    elif ema is not None:
        ema.to(accelerator.device)  # Accelerate loads registered objects onto the CPU
    logger.info(f"Resumed from {path} at step {state['step']}.", main_process_only=True)
    return state["step"]


__all__ = [
    "check_checkpoint",
    "find_checkpoint",
    "list_checkpoints",
    "resume_from_checkpoint",
    "save_checkpoint",
]
