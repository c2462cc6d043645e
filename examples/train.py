#!/usr/bin/env python
"""Train a Continuous Autoregressive Model (CAM, arXiv 2411.18447) with 🤗 Accelerate.

    # a latent dataset made by examples/encode_dataset.py (or an audio dataset: encoded once, then cached)
    accelerate launch examples/train.py --dataset_dir data/cam-music21-mel --output_dir runs/cam-small \\
        --preset small --conditioning instrument --max_train_steps 20000 --report_to tensorboard
    # one process on this machine, no `accelerate config` needed:
    python examples/train.py --dataset_dir data/cam-music21-mel --output_dir runs/cam-small --preset tiny
    # continue exactly where a run stopped (killed, out of time, ...):
    python examples/train.py ... --resume_from_checkpoint latest
    # fine-tune a saved pipeline on your own music (encoded with that pipeline's autoencoder):
    python examples/train.py --pretrained_model_name_or_path models/cam-music21-small \
        --dataset_dir data/my-music-latents --output_dir runs/my-cam --max_train_steps 2000 --learning_rate 1e-4

What a step does: draw a crop of up to the Backbone's context from each clip (every crop begins with the learned start
vector, as the pipeline's sliding window does at generation), corrupt the Backbone's inputs with noise k ~ U(0, k_max),
and train the Sampler with rectified flow on the clean next frames (`cam_hf.CAMForTraining`).

Exact resume: the data order is a permutation seeded by (seed, epoch); crops, noise levels, noises, flow times and label
dropout come from a generator seeded by (seed, micro-step, process). Accelerate's `save_state` keeps the model, optimizer,
LR scheduler and RNG states; `skip_first_batches` re-enters the epoch at the right batch. A run killed at any point and
resumed logs the same losses, step for step, as a run never stopped.

Output folder: `checkpoint-STEP/` (Accelerate states), `train_log.jsonl` (one line per optimiser step), `validation/`
(WAV + spectrogram PNG), `logs/` (TensorBoard), and at the end the trained `CAMPipeline` (loads with
`CAMPipeline.from_pretrained(output_dir)`) with its model card. See docs/training.md.
"""

import argparse
import json
import math
import os
import platform
import re
import shutil
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from accelerate.logging import get_logger  # noqa: E402
from accelerate.utils import ProjectConfiguration, set_seed  # noqa: E402
from diffusers.optimization import get_scheduler  # noqa: E402
from diffusers.training_utils import EMAModel  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from cam_hf import CAMConfig, CAMForTraining, CAMModel, CAMPipeline, CAMSampler, default_scheduler  # noqa: E402
from cam_hf.sampler import DEFAULT_NUM_INFERENCE_STEPS  # noqa: E402
from cam_hf.training import MODEL_PRESETS  # noqa: E402

logger = get_logger(__name__)

LOG_FILE = "train_log.jsonl"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
# Seeds of the per-step generators are mixed from (seed, micro-step, process) with these primes.
SEED_MIX = (1_000_003, 7_919)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=type("Formatter", (argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter), {}),
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset_dir", required=True,
                      help="A latent dataset (examples/encode_dataset.py) or an audio DatasetDict (make_dataset.py); "
                           "an audio dataset is encoded once into --latent_cache_dir and reused by later runs.")
    data.add_argument("--latent_cache_dir", default=None,
                      help="Where an audio --dataset_dir is encoded to (default: DATASET_DIR-latents-AUTOENCODER).")
    data.add_argument("--autoencoder", default="mel", choices=["mel", "music2latent", "oobleck", "encodec"],
                      help="Autoencoder that encodes an audio --dataset_dir (a latent dataset carries its own).")
    data.add_argument("--autoencoder_path", default=None, help="Weights of --autoencoder (folder or Hub id).")
    data.add_argument("--train_split", default="train")
    data.add_argument("--validation_split", default="validation")
    data.add_argument("--dataloader_num_workers", type=int, default=0)

    model = parser.add_argument_group("model size")
    model.add_argument("--pretrained_model_name_or_path", default=None,
                       help="Fine-tune a saved CAMPipeline (folder or Hub id): its Backbone, Sampler, instrument labels "
                            "and autoencoder. The dataset must be encoded with that autoencoder (encode_dataset.py "
                            "--autoencoder_path PATH/autoencoder); an audio --dataset_dir is encoded with it. Size "
                            "options (--preset, --backbone_config, ...) do not apply; the noise and Sampler options "
                            "default to the pipeline's.")
    model.add_argument("--freeze_backbone", action="store_true",
                       help="Train the Sampler only (the Backbone's outputs still see the training noise): a head-only "
                            "stage, e.g. fitting a few-step Sampler to a trained model.")
    model.add_argument("--preset", default="small", choices=sorted(MODEL_PRESETS),
                       help="Named sizes: " + "; ".join(
                           f"{name}: Backbone {p['backbone']['num_hidden_layers']} x {p['backbone']['hidden_size']}, "
                           f"Sampler {p['sampler']['num_blocks']} x {p['sampler']['width']}, context "
                           f"{p['context_frames']}" for name, p in MODEL_PRESETS.items()))
    model.add_argument("--backbone_config", default=None,
                       help="A JSON file of CAMConfig fields overriding the preset (e.g. hidden_size, num_hidden_layers).")
    model.add_argument("--sampler_config", default=None, help="A JSON file of CAMSampler arguments overriding the preset.")
    model.add_argument("--context_frames", type=int, default=None,
                       help="Longest training crop, in latent frames (default: the preset's). The Backbone's "
                            "max_position_embeddings follows it: context_frames + 1 (the start vector). Generation "
                            "beyond it slides a window of this size.")
    model.add_argument("--short_crop_fraction", type=float, default=0.0,
                       help="Share of crops drawn shorter than the context (uniform length). A causal Backbone already "
                            "trains every prefix of a crop, so this only weights the first positions more.")
    model.add_argument("--conditioning", default="none", choices=["none", "instrument"],
                       help="instrument: condition on the --instrument_column label, with label dropout for "
                            "classifier-free guidance.")
    model.add_argument("--instrument_column", default="instrument_name")
    model.add_argument("--instrument_dropout", type=float, default=0.1,
                       help="Probability of training a sequence as 'no instrument' (classifier-free guidance).")
    model.add_argument("--gradient_checkpointing", action="store_true", help="Recompute the Backbone's activations.")

    noise = parser.add_argument_group("noise augmentation (CAMConfig)")
    # Defaults of None are filled in by `resolve_defaults`: the pipeline's values when fine-tuning, else these.
    noise.add_argument("--max_training_noise", type=float, default=None,
                       help=f"k_max: k ~ U(0, k_max); 0 = plain AR baseline (default {FRESH_DEFAULTS['max_training_noise']}).")
    noise.add_argument("--noise_mixing", default=None, choices=["linear", "variance_preserving"],
                       help=f"Default {FRESH_DEFAULTS['noise_mixing']}.")
    noise.add_argument("--noise_sampling", default=None, choices=["per_frame", "per_sequence"],
                       help=f"Default {FRESH_DEFAULTS['noise_sampling']}.")
    noise.add_argument("--condition_on_noise_level", action="store_true", help="Tell the Backbone each frame's k.")
    noise.add_argument("--inference_noise", type=float, default=None,
                       help=f"k_inf stored in the config for generation (default {FRESH_DEFAULTS['inference_noise']}).")

    sampler = parser.add_argument_group("Sampler")
    sampler.add_argument("--prediction_type", default=None, choices=["flow", "epsilon"],
                         help="flow: rectified flow (the paper's); epsilon: DDPM noise prediction (MAR-style baseline).")
    sampler.add_argument("--time_distribution", default=None, choices=["uniform", "logit_normal"],
                         help=f"Default {FRESH_DEFAULTS['time_distribution']}.")
    sampler.add_argument("--few_step_objective", default=None, choices=["none", "shortcut"],
                         help="shortcut: a Sampler that also learns to jump (arXiv 2410.12557) and draws a frame in 1-4 "
                              "steps (docs/training.md). Fine-tuning a plain flow head with it starts from that head.")
    sampler.add_argument("--shortcut_fraction", type=float, default=0.25,
                         help="Share of a shortcut Sampler's rows trained for self-consistency (the rest: flow).")
    sampler.add_argument("--max_shortcut_steps", type=int, default=16,
                         help="Finest uniform grid of a shortcut Sampler (a power of two).")
    sampler.add_argument("--default_inference_steps", type=int, default=None,
                         help="Sampler steps per frame stored in its config, used when generation does not say "
                              "(default: the pipeline's, else 16 for a flow Sampler and 4 for a shortcut one).")
    sampler.add_argument("--sampler_width", type=int, default=None, help="Default: the preset's.")
    sampler.add_argument("--sampler_blocks", type=int, default=None, help="Default: the preset's.")
    sampler.add_argument("--sampler_batch_mul", type=int, default=4, help="(noise, time) draws per Backbone output.")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--train_batch_size", type=int, default=16, help="Clips per process per micro-step.")
    optim.add_argument("--gradient_accumulation_steps", type=int, default=1)
    optim.add_argument("--max_train_steps", type=int, default=1000,
                       help="Optimiser steps: the length of the run and of its LR schedule.")
    optim.add_argument("--stop_after_steps", type=int, default=None,
                       help="End the run after this step (checkpoint, validation, trained pipeline and card) with the "
                            "LR schedule of --max_train_steps unchanged: a run cut to a time budget, which the same "
                            "command without this option later resumes and continues.")
    optim.add_argument("--learning_rate", type=float, default=3e-4)
    optim.add_argument("--lr_scheduler", default="cosine",
                       choices=["cosine", "linear", "constant", "constant_with_warmup"])
    optim.add_argument("--lr_warmup_steps", type=int, default=500)
    optim.add_argument("--adam_beta1", type=float, default=0.9)
    optim.add_argument("--adam_beta2", type=float, default=0.99)
    optim.add_argument("--adam_weight_decay", type=float, default=0.01)
    optim.add_argument("--max_grad_norm", type=float, default=1.0)
    optim.add_argument("--mixed_precision", default="auto", choices=["auto", "no", "fp16", "bf16"],
                       help="auto: bf16 where the hardware computes it natively (a GPU with bf16, a CPU with AVX-512 "
                            "bf16 or AMX), else fp32; the choice is logged. On an AVX2-only CPU bf16 is ~11x slower.")
    optim.add_argument("--use_ema", action="store_true", help="Keep an EMA of the weights (saved and validated).")
    optim.add_argument("--ema_decay", type=float, default=0.999)
    optim.add_argument("--seed", type=int, default=0)

    run = parser.add_argument_group("logging, validation, checkpoints, sharing")
    run.add_argument("--output_dir", required=True)
    run.add_argument("--report_to", default="none", choices=["none", "tensorboard", "wandb", "all"])
    run.add_argument("--logging_dir", default="logs", help="TensorBoard folder, inside --output_dir.")
    run.add_argument("--validation_steps", type=int, default=1000, help="Validate every N steps (and at the end).")
    run.add_argument("--num_validation_prompts", type=int, default=2, help="Validation clips continued from their first half.")
    run.add_argument("--num_validation_samples", type=int, default=2, help="Unconditional (or per-instrument) samples.")
    run.add_argument("--validation_seconds", type=float, default=8.0, help="Length of each generated validation sample.")
    run.add_argument("--validation_inference_steps", type=int, default=16, help="Sampler steps per frame in validation.")
    run.add_argument("--checkpointing_steps", type=int, default=500)
    run.add_argument("--checkpoints_total_limit", type=int, default=None, help="Keep only the newest N checkpoints.")
    run.add_argument("--resume_from_checkpoint", default=None, help="`latest` or a checkpoint-STEP folder.")
    run.add_argument("--push_to_hub", action="store_true")
    run.add_argument("--hub_model_id", default=None)
    run.add_argument("--hub_token", default=None)
    args = parser.parse_args(argv)
    check_args(args)
    return args


# What a run from scratch uses for the options that default to the pipeline's values when fine-tuning.
FRESH_DEFAULTS = {"max_training_noise": 1.0, "noise_mixing": "linear", "noise_sampling": "per_frame",
                  "inference_noise": 0.02, "prediction_type": "flow", "time_distribution": "logit_normal",
                  "few_step_objective": "none"}


def check_args(args: argparse.Namespace) -> None:
    for name in ("train_batch_size", "gradient_accumulation_steps", "max_train_steps", "checkpointing_steps",
                 "validation_steps", "sampler_batch_mul", "stop_after_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}.")
    if args.context_frames is not None and args.context_frames < 1:
        raise ValueError(f"--context_frames must be a positive integer, got {args.context_frames}.")
    if not 0.0 <= args.short_crop_fraction <= 1.0:
        raise ValueError(f"--short_crop_fraction must be in [0, 1], got {args.short_crop_fraction}.")
    if args.learning_rate <= 0 or not math.isfinite(args.learning_rate):
        raise ValueError(f"--learning_rate must be a positive number, got {args.learning_rate}.")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        raise ValueError(f"--checkpoints_total_limit must be at least 1, got {args.checkpoints_total_limit}.")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/cam-music).")
    for name in ("backbone_config", "sampler_config"):
        path = getattr(args, name)
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"--{name} {path!r} is not a file: pass a JSON file of configuration fields.")
    if args.pretrained_model_name_or_path is not None:
        sizes = [f"--{name}" for name in ("backbone_config", "sampler_config", "sampler_width", "sampler_blocks",
                                          "prediction_type") if getattr(args, name) is not None]
        if args.condition_on_noise_level:
            sizes.append("--condition_on_noise_level")
        if sizes:
            raise ValueError(f"{', '.join(sizes)} change(s) the network of --pretrained_model_name_or_path: a "
                             "fine-tuned model keeps its shape. Train from scratch to change it.")
    elif args.freeze_backbone:
        raise ValueError("--freeze_backbone trains the Sampler of a trained Backbone: pass "
                         "--pretrained_model_name_or_path.")
    if not 0.0 <= args.shortcut_fraction < 1.0:
        raise ValueError(f"--shortcut_fraction must be in [0, 1), got {args.shortcut_fraction}.")
    if args.default_inference_steps is not None and args.default_inference_steps < 1:
        raise ValueError(f"--default_inference_steps must be a positive integer, got {args.default_inference_steps}.")


def resolve_defaults(args: argparse.Namespace, pretrained: CAMPipeline | None) -> None:
    """Fill the options left unset: from the pipeline being fine-tuned, else `FRESH_DEFAULTS`."""
    if pretrained is not None:
        backbone, sampler = pretrained.backbone.config, pretrained.sampler.config
        inherited = {"max_training_noise": backbone.max_training_noise, "noise_mixing": backbone.noise_mixing,
                     "noise_sampling": backbone.noise_sampling, "inference_noise": backbone.inference_noise,
                     "prediction_type": sampler.prediction_type, "time_distribution": sampler.time_distribution,
                     "few_step_objective": sampler.few_step_objective or "none"}
        args.condition_on_noise_level = backbone.condition_on_noise_level
    else:
        inherited = FRESH_DEFAULTS
    for name, value in inherited.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.few_step_objective != "none" and args.prediction_type != "flow":
        raise ValueError(f"--few_step_objective {args.few_step_objective} needs a flow Sampler, got --prediction_type "
                         f"{args.prediction_type}.")


def choose_precision(requested: str) -> tuple[str, str]:
    """The mixed precision to train in and why: `auto` takes bf16 only where the hardware computes it natively."""
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


# ---- data ----------------------------------------------------------------------------------------------------------


def load_training_data(args: argparse.Namespace, accelerator: Accelerator, pretrained: CAMPipeline | None = None):
    """The latent DatasetDict and its autoencoder; an audio dataset is encoded first (once, on the main process),
    with the autoencoder of the pipeline being fine-tuned if there is one."""
    from cam_hf.data import encode_audio_dataset, is_latent_dataset, load_latent_dataset

    path = args.dataset_dir
    if not os.path.isdir(path):
        raise ValueError(f"--dataset_dir {path!r} is not a folder: pass a dataset saved by make_dataset.py or "
                         "encode_dataset.py.")
    if not is_latent_dataset(path):
        name = "pretrained" if pretrained is not None else args.autoencoder
        cache = args.latent_cache_dir or f"{path.rstrip('/')}-latents-{name}"
        with accelerator.main_process_first():
            if accelerator.is_main_process:
                if pretrained is not None:
                    encode_audio_dataset(path, cache, autoencoder=pretrained.autoencoder)
                else:
                    encode_audio_dataset(path, cache, autoencoder=args.autoencoder,
                                         autoencoder_path=args.autoencoder_path)
        path = cache
    dataset, autoencoder = load_latent_dataset(path)
    if args.train_split not in dataset:
        raise ValueError(f"The dataset at {path!r} has no {args.train_split!r} split; it has {sorted(dataset)}.")
    return dataset, autoencoder, path


def read_latents(split) -> list[torch.Tensor]:
    """Every clip's latents `[T, D]`, read straight from the Arrow column: no Python list per value (row by row, a
    10,000-clip split takes minutes; this, a fraction of a second)."""
    if split._indices is not None:  # a selected or shuffled view: materialise its rows first
        split = split.flatten_indices()
    clips = []
    for chunk in split.data.column("latents").chunks:
        storage = chunk.storage if hasattr(chunk, "storage") else chunk  # list<list<value>>: clips of frames
        frames = storage.flatten()
        values = torch.from_numpy(frames.flatten().to_numpy(zero_copy_only=False).copy()).view(len(frames), -1)
        offsets = storage.offsets.to_numpy()
        offsets = offsets - offsets[0]
        clips += [values[start:end].to(torch.float16) for start, end in zip(offsets[:-1], offsets[1:], strict=True)]
    return clips


class LatentClips(torch.utils.data.Dataset):
    """Whole clips of a latent split, held in memory as float16 `[T, D]` tensors (a few hundred MB for 10^4 clips)."""

    def __init__(self, split, instrument_column: str | None = None, instrument_names: list[str] | None = None):
        self.clips = read_latents(split)
        self.instrument_ids = None
        if instrument_column is not None:
            index = {name: i for i, name in enumerate(instrument_names)}
            unknown = sorted(set(split[instrument_column]) - set(index))
            if unknown:
                raise ValueError(f"Instruments {unknown} are not among the model's {instrument_names}.")
            self.instrument_ids = [index[name] for name in split[instrument_column]]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        item = {"index": index, "latents": self.clips[index]}
        if self.instrument_ids is not None:
            item["instrument_id"] = self.instrument_ids[index]
        return item


def collate_clips(items: list[dict]) -> dict:
    """Whole clips, right-padded to the longest, with their lengths; cropping happens in the training loop."""
    lengths = torch.tensor([item["latents"].shape[0] for item in items])
    latents = torch.zeros(len(items), int(lengths.max()), items[0]["latents"].shape[1], dtype=torch.float16)
    for row, item in enumerate(items):
        latents[row, : lengths[row]] = item["latents"]
    batch = {"index": torch.tensor([item["index"] for item in items]), "latents": latents, "lengths": lengths}
    if "instrument_id" in items[0]:
        batch["instrument_ids"] = torch.tensor([item["instrument_id"] for item in items])
    return batch


class EpochPermutation(torch.utils.data.Sampler):
    """A shuffled order of the clips that depends only on (seed, epoch): the same after a resume, on every process."""

    def __init__(self, num_items: int, seed: int):
        self.num_items, self.seed, self.epoch = num_items, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * SEED_MIX[0] + self.epoch)
        return iter(torch.randperm(self.num_items, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_items


def random_crops(latents, lengths, context_frames: int, short_crop_fraction: float, generator: torch.Generator):
    r"""
    One random crop of each clip, of `context_frames` frames (or the whole clip when shorter; a share
    `short_crop_fraction` of crops gets a uniform length in [1, that]), right-padded and masked.

    Args:
        latents (`torch.Tensor` of shape `(batch_size, max_length, latent_dim)`): whole clips, right-padded.
        lengths (`torch.Tensor` of shape `(batch_size,)`): each clip's real length.
        context_frames (`int`): the longest crop.
        short_crop_fraction (`float`): share of crops drawn shorter.
        generator (`torch.Generator`): all randomness of the crops.

    Returns:
        `tuple`: crops `(batch_size, crop_length, latent_dim)` float32 and their attention mask `(batch_size,
        crop_length)` (1 for real frames).
    """
    crop_lengths = lengths.clamp(max=context_frames)
    short = torch.rand(len(lengths), generator=generator) < short_crop_fraction
    drawn = (torch.rand(len(lengths), generator=generator) * crop_lengths).long() + 1
    crop_lengths = torch.where(short, drawn.clamp(max=crop_lengths), crop_lengths)
    starts = (torch.rand(len(lengths), generator=generator) * (lengths - crop_lengths + 1)).long()
    width = int(crop_lengths.max())
    crops = latents.new_zeros(latents.shape[0], width, latents.shape[2], dtype=torch.float32)
    mask = torch.zeros(latents.shape[0], width, dtype=torch.long)
    for row, (start, length) in enumerate(zip(starts.tolist(), crop_lengths.tolist(), strict=True)):
        crops[row, :length] = latents[row, start : start + length].float()
        mask[row, :length] = 1
    return crops, mask


def step_generator(seed: int, micro_step: int, process_index: int, stream: int, device="cpu") -> torch.Generator:
    """A generator of one micro-step (stream 0: crops, 1: the model's noise): a pure function of its arguments, so a
    resumed run draws the same numbers."""
    mixed = ((seed * SEED_MIX[0] + micro_step) * SEED_MIX[1] + process_index) * 2 + stream
    return torch.Generator(device=device).manual_seed(mixed % 2**63)


# ---- model ---------------------------------------------------------------------------------------------------------


def check_same_autoencoder(dataset_autoencoder, pipeline_autoencoder, dataset_path: str, pipeline_path: str) -> None:
    """Fine-tuning needs latents made by the pipeline's own autoencoder: same class, config and weights/statistics."""
    ours, theirs = dataset_autoencoder, pipeline_autoencoder
    config = {k: v for k, v in ours.config.items() if not k.startswith("_")}
    their_config = {k: v for k, v in theirs.config.items() if not k.startswith("_")}
    differs = [k for k in sorted(set(config) | set(their_config)) if config.get(k) != their_config.get(k)]
    state, their_state = ours.state_dict(), theirs.state_dict()
    if not differs and state.keys() == their_state.keys():
        differs = [k for k in state if not torch.equal(state[k].cpu().float(), their_state[k].cpu().float())]
    elif not differs:
        differs = ["weights"]
    if type(ours) is not type(theirs) or differs:
        what = (f"{type(ours).__name__} vs {type(theirs).__name__}" if type(ours) is not type(theirs)
                else f"they differ in {differs[:5]}")
        raise ValueError(
            f"The dataset {dataset_path!r} was encoded with another autoencoder than the pipeline "
            f"{pipeline_path!r} ({what}; latent size {ours.latent_dim} vs {theirs.latent_dim}): its latents would mean "
            f"nothing to the model. Encode your audio with the pipeline's own: `python examples/encode_dataset.py "
            f"--dataset_dir AUDIO --output_dir LATENTS --autoencoder_path {pipeline_path}/autoencoder`, or pass the "
            "audio dataset itself as --dataset_dir."
        )


def training_instruments(args: argparse.Namespace, split, pretrained: CAMPipeline | None) -> list[str] | None:
    """The instrument labels the model is conditioned on: the pipeline's when fine-tuning, else the data's."""
    has_column = args.instrument_column in split.column_names
    if pretrained is None:
        if args.conditioning != "instrument":
            return None
        if not has_column:
            raise ValueError(f"--conditioning instrument needs the column {args.instrument_column!r}; the dataset has "
                             f"{split.column_names}.")
        return sorted(set(split[args.instrument_column]))
    names = pretrained.backbone.config.instrument_names
    if names is not None and not has_column:
        logger.info(f"The dataset has no {args.instrument_column!r} column: its clips train as 'no instrument' (the "
                    "unconditional model).", main_process_only=True)
    return names


def load_pretrained(args: argparse.Namespace) -> CAMPipeline | None:
    if args.pretrained_model_name_or_path is None:
        return None
    path = args.pretrained_model_name_or_path
    try:
        return CAMPipeline.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"--pretrained_model_name_or_path {path!r} is not a saved CAMPipeline ({error}): pass a folder "
                         "written by CAMPipeline.save_pretrained (e.g. models/cam-music21-small) or a Hub id.") from error


def build_model(args: argparse.Namespace, latent_dim: int, instrument_names: list[str] | None,
                pretrained: CAMPipeline | None = None) -> CAMForTraining:
    if pretrained is not None:
        return build_from_pretrained(args, pretrained)
    preset = MODEL_PRESETS[args.preset]
    context_frames = args.context_frames or preset["context_frames"]
    backbone_fields = dict(preset["backbone"])
    if args.backbone_config:
        with open(args.backbone_config) as f:
            backbone_fields.update(json.load(f))
    backbone_fields.update(
        latent_dim=latent_dim,
        max_position_embeddings=context_frames + 1,
        max_training_noise=args.max_training_noise,
        noise_mixing=args.noise_mixing,
        noise_sampling=args.noise_sampling,
        condition_on_noise_level=args.condition_on_noise_level,
        inference_noise=args.inference_noise,
        instrument_names=instrument_names,
    )
    sampler_fields = dict(preset["sampler"], prediction_type=args.prediction_type,
                          time_distribution=args.time_distribution, **few_step_fields(args))
    if args.sampler_config:
        with open(args.sampler_config) as f:
            sampler_fields.update(json.load(f))
    if args.sampler_width:
        sampler_fields["width"] = args.sampler_width
    if args.sampler_blocks:
        sampler_fields["num_blocks"] = args.sampler_blocks
    backbone = CAMModel(CAMConfig(**backbone_fields))
    sampler = CAMSampler(latent_dim=latent_dim, condition_dim=backbone.config.hidden_size, **sampler_fields)
    return training_module(args, backbone, sampler)


def few_step_fields(args: argparse.Namespace, default_steps: int | None = None) -> dict:
    """The Sampler config fields of the few-step options."""
    objective = None if args.few_step_objective == "none" else args.few_step_objective
    steps = args.default_inference_steps or default_steps or (4 if objective else DEFAULT_NUM_INFERENCE_STEPS)
    fields = {"few_step_objective": objective, "num_inference_steps": steps}
    if objective:
        fields["max_shortcut_steps"] = args.max_shortcut_steps
    return fields


def build_from_pretrained(args: argparse.Namespace, pretrained: CAMPipeline) -> CAMForTraining:
    """The pipeline's Backbone and Sampler with the run's noise settings; a flow head asked to become a shortcut head
    starts as exactly itself (`CAMSampler.from_flow_head`)."""
    backbone, sampler = pretrained.backbone, pretrained.sampler
    context_frames = args.context_frames or backbone.config.max_position_embeddings - 1
    # Settings of training and generation, not of the network's shape: a fine-tuning run may change them.
    for name, value in {"max_training_noise": args.max_training_noise, "noise_mixing": args.noise_mixing,
                        "noise_sampling": args.noise_sampling, "inference_noise": args.inference_noise,
                        "max_position_embeddings": context_frames + 1}.items():
        setattr(backbone.config, name, value)
    fields = few_step_fields(args, default_steps=sampler.config.num_inference_steps)
    if sampler.config.few_step_objective is None and fields["few_step_objective"] is not None:
        sampler = CAMSampler.from_flow_head(sampler, **fields)
    elif sampler.config.few_step_objective != fields["few_step_objective"]:
        raise ValueError(f"--few_step_objective {args.few_step_objective} cannot turn the pipeline's "
                         f"{sampler.config.few_step_objective} Sampler back into another: train from scratch.")
    else:
        sampler.register_to_config(**fields)
    sampler.register_to_config(time_distribution=args.time_distribution)
    return training_module(args, backbone, sampler)


def training_module(args: argparse.Namespace, backbone: CAMModel, sampler: CAMSampler) -> CAMForTraining:
    if args.gradient_checkpointing:
        backbone.gradient_checkpointing_enable()
    if args.freeze_backbone:
        backbone.requires_grad_(False)
    return CAMForTraining(backbone.train(), sampler.train(), sampler_batch_mul=args.sampler_batch_mul,
                          instrument_dropout=args.instrument_dropout, shortcut_fraction=args.shortcut_fraction)


# ---- checkpoints ---------------------------------------------------------------------------------------------------


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """Whole checkpoints as (step, path), oldest first. Folders still being written end in `.tmp` and never count."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), os.path.join(output_dir, name))
             for name in os.listdir(output_dir) if (m := CHECKPOINT_PATTERN.match(name))]
    return sorted(found)


def save_checkpoint(accelerator: Accelerator, args: argparse.Namespace, step: int, ema: EMAModel | None) -> str:
    """`save_state` into `checkpoint-STEP.tmp`, then one rename: a run killed while saving keeps its last checkpoint."""
    final = os.path.join(args.output_dir, f"checkpoint-{step}")
    partial = final + ".tmp"
    if accelerator.is_main_process and os.path.exists(partial):
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(partial)
    if accelerator.is_main_process:
        state = {"step": step}
        if ema is not None:
            save_file({f"shadow.{i}": p.contiguous() for i, p in enumerate(ema.shadow_params)},
                      os.path.join(partial, "ema.safetensors"))
            state["ema"] = {"optimization_step": ema.optimization_step, "decay": ema.decay}
        with open(os.path.join(partial, "training_state.json"), "w") as f:
            json.dump(state, f)
        os.replace(partial, final)
        if args.checkpoints_total_limit is not None:
            for _, old in list_checkpoints(args.output_dir)[: -args.checkpoints_total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, args: argparse.Namespace, ema: EMAModel | None) -> int:
    """Restore a checkpoint named by `--resume_from_checkpoint`; returns its step (0 when there is none yet)."""
    if args.resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(args.output_dir)
        if not checkpoints:
            logger.info(f"No checkpoint in {args.output_dir} yet: starting from scratch.", main_process_only=True)
            return 0
        path = checkpoints[-1][1]
    else:
        path = args.resume_from_checkpoint
        if not os.path.isfile(os.path.join(path, "training_state.json")):
            raise ValueError(f"--resume_from_checkpoint {path!r} is not a checkpoint folder written by this script "
                             "(no training_state.json): pass `latest` or an output_dir/checkpoint-STEP folder.")
    accelerator.load_state(path)
    with open(os.path.join(path, "training_state.json")) as f:
        state = json.load(f)
    if ema is not None:
        if "ema" not in state:
            raise ValueError(f"{path} was saved without --use_ema: resume it without --use_ema.")
        shadow = load_file(os.path.join(path, "ema.safetensors"))
        ema.shadow_params = [shadow[f"shadow.{i}"].to(p.device) for i, p in enumerate(ema.shadow_params)]
        ema.optimization_step = state["ema"]["optimization_step"]
    logger.info(f"Resumed from {path} at step {state['step']}.", main_process_only=True)
    return state["step"]


def read_log(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def truncate_log(path: str, step: int) -> float:
    """Drop log lines past `step` (a killed run may have logged steps that its last checkpoint does not hold);
    returns the training wall time logged up to `step`, in seconds."""
    kept = [record for record in read_log(path) if record["step"] <= step]
    with open(path + ".tmp", "w") as f:
        f.writelines(json.dumps(record) + "\n" for record in kept)
    os.replace(path + ".tmp", path)
    return max([record.get("wall_s", 0.0) for record in kept], default=0.0)


# ---- validation ----------------------------------------------------------------------------------------------------


@torch.no_grad()
def validation_loss(model: CAMForTraining, clips: LatentClips, context_frames: int, batch_size: int, seed: int) -> float:
    """Mean loss over the validation clips' first `context_frames` frames, with fixed noise: comparable across steps."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(clips), batch_size):
        batch = collate_clips([clips[i] for i in range(start, min(start + batch_size, len(clips)))])
        lengths = batch["lengths"].clamp(max=context_frames)
        latents = batch["latents"][:, : int(lengths.max())].float().to(device)
        mask = (torch.arange(latents.shape[1])[None] < lengths[:, None]).long().to(device)
        ids = batch.get("instrument_ids")
        output = model(latents, attention_mask=mask, generator=generator,
                       instrument_ids=ids.to(device) if ids is not None else None)
        total += output.frame_losses.sum().item()
        count += output.frame_losses.numel()
    model.train()
    return total / max(count, 1)


def save_spectrograms(path: str, rows: list[tuple[str, np.ndarray]], sample_rate: int, marker_s: float | None = None):
    """One log-magnitude spectrogram per row, stacked, on one time axis; a dashed line where a continuation starts."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 2.6 * len(rows)), squeeze=False, sharex=True)
    for ax, (title, audio) in zip(axes[:, 0], rows, strict=True):
        ax.specgram(audio, NFFT=1024, Fs=sample_rate, noverlap=768, cmap="magma", vmin=-120)
        ax.set_ylim(0, min(8000, sample_rate / 2))
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("Hz")
        if marker_s is not None:
            ax.axvline(marker_s, color="white", linestyle="--", linewidth=1)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return fig


@torch.no_grad()
def run_validation(pipe: CAMPipeline, clips: LatentClips, args: argparse.Namespace, step: int, tracker) -> list[str]:
    """Continuations of fixed validation prompts (the real clip above, prompt + continuation below) and samples."""
    folder = os.path.join(args.output_dir, "validation", f"step-{step:07d}")
    os.makedirs(folder, exist_ok=True)
    rate, written = pipe.sample_rate, []
    num_frames = max(1, round(args.validation_seconds * pipe.frame_rate))
    config = pipe.backbone.config

    def write(name: str, rows: list[tuple[str, np.ndarray]], marker_s: float | None = None):
        sf.write(os.path.join(folder, f"{name}.wav"), np.clip(rows[-1][1], -1, 1), rate)
        figure = save_spectrograms(os.path.join(folder, f"{name}.png"), rows, rate, marker_s)
        written.extend([os.path.join(folder, f"{name}.wav"), os.path.join(folder, f"{name}.png")])
        if tracker is not None:
            tracker.add_audio(f"validation/{name}", torch.from_numpy(rows[-1][1])[None], step, sample_rate=rate)
            tracker.add_figure(f"validation/{name}", figure, step)
        plt.close(figure)

    for i in range(min(args.num_validation_prompts, len(clips))):
        real = clips[i]["latents"].float()[None]
        prompt = real[:, : max(1, real.shape[1] // 2)]
        kwargs = {}
        if config.num_instruments and "instrument_id" in clips[i]:
            kwargs["instrument"] = clips[i]["instrument_id"]
        continuation = pipe(prompt_latents=prompt, num_frames=num_frames, output_type="latent",
                            num_inference_steps=args.validation_inference_steps,
                            generator=torch.Generator().manual_seed(args.seed + i), **kwargs).audios
        real_audio = pipe.autoencoder.decode(real).float()[0, 0].numpy()
        generated = pipe.autoencoder.decode(torch.cat([prompt, continuation.float()], dim=1)).float()[0, 0].numpy()
        write(f"prompt-{i}", [("real clip (through the autoencoder)", real_audio),
                              ("prompt, then the model's continuation", generated)],
              marker_s=prompt.shape[1] / pipe.frame_rate)
    for i in range(args.num_validation_samples):
        kwargs, title = {}, "unconditional sample"
        if config.num_instruments:
            kwargs["instrument"] = i % config.num_instruments
            title = f"sample, instrument {config.instrument_names[kwargs['instrument']]!r}"
        audio = pipe(num_frames=num_frames, num_inference_steps=args.validation_inference_steps,
                     generator=torch.Generator().manual_seed(args.seed + 1000 + i), **kwargs).audios[0, 0]
        write(f"sample-{i}", [(title, audio)])
    return written


# ---- the model card --------------------------------------------------------------------------------------------------


def training_details(args, summary: dict, dataset_path: str, argv: list[str]) -> str:
    command = "python examples/train.py " + " ".join(argv)
    return (
        f"Trained with `examples/train.py` of cam_hf on `{dataset_path}` ({summary['train_clips']:,} training clips, "
        f"{summary['train_hours']:.1f} h of audio).\n\n"
        "| | |\n|---|---|\n"
        f"| optimiser steps | {summary['steps']:,} (batch {summary['batch_clips']} clips x up to "
        f"{summary['context_frames']} frames) |\n"
        f"| audio seen | {summary['hours_seen']:.1f} h ({summary['frames_seen']:,} frames) |\n"
        f"| wall time | {summary['wall_hours']:.2f} h on {summary['hardware']} |\n"
        f"| final training loss | {summary['final_train_loss']:.4f} (mean of the last 100 steps) |\n"
        f"| final validation loss | {summary['final_validation_loss']} |\n"
        f"| weights | {'EMA (decay ' + str(args.ema_decay) + ')' if args.use_ema else 'raw (no EMA)'} |\n\n"
        f"Command:\n\n```bash\n{command}\n```\n"
    )


def hardware(accelerator: Accelerator) -> str:
    if accelerator.device.type == "cuda":
        name = torch.cuda.get_device_name(accelerator.device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return f"{accelerator.num_processes} x {name}"


# ---- training --------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    pretrained = load_pretrained(args)
    resolve_defaults(args, pretrained)
    precision, why = choose_precision(args.mixed_precision)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir,
                                            logging_dir=os.path.join(args.output_dir, args.logging_dir)),
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        # Without this check each process would train alone and all of them would write the same output folder.
        raise RuntimeError(
            f"{launched} processes were launched but Accelerate sees {accelerator.num_processes}: on CPUs, launch with "
            "`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N examples/train.py ...`."
        )
    logger.info(f"Precision: {'fp32' if precision == 'no' else precision} ({why}).", main_process_only=True)
    set_seed(args.seed)  # model initialisation; everything random in a step has its own generator
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, "train_args.json"), "w") as f:
            json.dump(dict(vars(args), precision=precision), f, indent=1)

    # 1. Data: whole clips in memory; the order is a seeded permutation per epoch.
    dataset, autoencoder, dataset_path = load_training_data(args, accelerator, pretrained)
    if pretrained is not None:
        check_same_autoencoder(autoencoder, pretrained.autoencoder, dataset_path, args.pretrained_model_name_or_path)
    train_split = dataset[args.train_split]
    instrument_names = training_instruments(args, train_split, pretrained)
    column = args.instrument_column if instrument_names and args.instrument_column in train_split.column_names else None
    train_clips = LatentClips(train_split, column, instrument_names)
    validation_clips = (LatentClips(dataset[args.validation_split], column, instrument_names)
                        if args.validation_split in dataset else None)
    sampler = EpochPermutation(len(train_clips), args.seed)
    dataloader = torch.utils.data.DataLoader(train_clips, batch_size=args.train_batch_size, sampler=sampler,
                                             collate_fn=collate_clips, num_workers=args.dataloader_num_workers,
                                             drop_last=True)
    if len(dataloader) == 0:
        raise ValueError(f"The train split has {len(train_clips)} clips, fewer than --train_batch_size "
                         f"{args.train_batch_size}: lower the batch size.")

    # 2. Model, optimiser, schedule.
    model = build_model(args, autoencoder.latent_dim, instrument_names, pretrained)
    context_frames = model.backbone.config.max_position_embeddings - 1
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.adam_weight_decay)
    # The prepared scheduler steps once per process at each optimiser step, as in diffusers' training examples.
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer,
                                 num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=args.max_train_steps * accelerator.num_processes)
    model, optimizer, dataloader, lr_scheduler = accelerator.prepare(model, optimizer, dataloader, lr_scheduler)
    unwrapped = accelerator.unwrap_model(model)
    ema = EMAModel(unwrapped.parameters(), decay=args.ema_decay) if args.use_ema else None

    step = load_checkpoint(accelerator, args, ema) if args.resume_from_checkpoint else 0
    log_path = os.path.join(args.output_dir, LOG_FILE)
    wall_before = 0.0
    if accelerator.is_main_process:
        wall_before = truncate_log(log_path, step)
        if args.report_to != "none":
            accelerator.init_trackers("cam_train", config={k: v for k, v in vars(args).items()
                                                           if isinstance(v, int | float | str | bool)})
    tracker = (accelerator.get_tracker("tensorboard", unwrap=True)
               if args.report_to in ("tensorboard", "all") and accelerator.is_main_process else None)

    num_params = sum(p.numel() for p in unwrapped.parameters())
    logger.info(f"{num_params:,} parameters; {len(train_clips):,} training clips; {len(dataloader)} micro-batches per "
                f"epoch per process; {accelerator.num_processes} process(es).", main_process_only=True)

    # 3. The loop. `micro_step` counts micro-batches; the checkpoint at optimiser step s resumes at s * accumulation.
    micro_step = step * args.gradient_accumulation_steps
    last_step = min(args.max_train_steps, args.stop_after_steps or args.max_train_steps)
    if step > last_step:
        # Saving now would label a later model as the one at `last_step`.
        raise ValueError(f"The checkpoint resumed is at step {step}, past --stop_after_steps/--max_train_steps "
                         f"{last_step}: resume from {args.output_dir}/checkpoint-{last_step} (or a copy of it) instead.")
    progress = tqdm(total=last_step, initial=step, desc="training", disable=not accelerator.is_main_process)
    started = time.time()
    last_checkpoint = list_checkpoints(args.output_dir)[-1][1] if list_checkpoints(args.output_dir) else None
    step_start, step_frames, step_losses = time.time(), 0, []
    model.train()
    while step < last_step:
        epoch, skip = divmod(micro_step, len(dataloader))
        # The prepared loader sets its sampler's epoch itself when iterated: tell it which epoch this is.
        dataloader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        batches = accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
        for batch in batches:
            crop_generator = step_generator(args.seed, micro_step, accelerator.process_index, stream=0)
            generator = step_generator(args.seed, micro_step, accelerator.process_index, 1, accelerator.device)
            crops, mask = random_crops(batch["latents"].cpu(), batch["lengths"].cpu(), context_frames,
                                       args.short_crop_fraction, crop_generator)
            with accelerator.accumulate(model):
                output = model(crops.to(accelerator.device), attention_mask=mask.to(accelerator.device),
                               generator=generator, instrument_ids=batch.get("instrument_ids"))
                accelerator.backward(output.loss)
                grad_norm = None
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(trainable, args.max_grad_norm)
                    stop_if_not_finite(accelerator, output.loss, grad_norm, step + 1, last_checkpoint)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            micro_step += 1
            step_losses.append(accelerator.gather(output.loss.detach()[None]).mean().item())
            step_frames += int(accelerator.gather(mask.sum()[None].to(accelerator.device)).sum().item())
            indices = accelerator.gather(batch["index"].to(accelerator.device)).tolist()
            if not accelerator.sync_gradients:
                continue

            # One optimiser step done.
            step += 1
            if ema is not None:
                ema.step(unwrapped.parameters())
            elapsed = time.time() - step_start
            loss = float(np.mean(step_losses))
            record = {"step": step, "epoch": epoch, "loss": loss, "lr": lr_scheduler.get_last_lr()[0],
                      "grad_norm": float(grad_norm), "frames_per_s": step_frames / max(elapsed, 1e-9),
                      "frames": step_frames, "wall_s": wall_before + time.time() - started, "clip_indices": indices}
            if accelerator.is_main_process:
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                accelerator.log({k: v for k, v in record.items() if k != "clip_indices"}, step=step)
            progress.update()
            progress.set_postfix(loss=f"{loss:.4f}", lr=f"{record['lr']:.2e}", fps=f"{record['frames_per_s']:.0f}")

            if step % args.checkpointing_steps == 0 or step == last_step:
                last_checkpoint = save_checkpoint(accelerator, args, step, ema)
            if validation_clips is not None and (step % args.validation_steps == 0 or step == last_step):
                validate(accelerator, unwrapped, ema, autoencoder, validation_clips, context_frames, args, step, tracker)
            # Frames per second count training only, not checkpoints and validation.
            step_start, step_frames, step_losses = time.time(), 0, []
            if step >= last_step:
                break
    progress.close()

    # 4. The trained pipeline (EMA weights when kept), its model card, and the summary.
    accelerator.wait_for_everyone()
    check_weights_in_sync(accelerator, unwrapped)
    if ema is not None:
        ema.copy_to(unwrapped.parameters())
    summary = None
    if accelerator.is_main_process:
        summary = summarize(args, train_clips, validation_clips, unwrapped, context_frames, autoencoder.frame_rate,
                            hardware(accelerator), read_log(log_path))
        pipe = make_pipeline(unwrapped, autoencoder)
        details = training_details(args, summary, dataset_path, argv)
        readme = os.path.join(args.output_dir, "README.md")
        if os.path.exists(readme):
            os.remove(readme)  # a resumed run rewrites the card with the whole run's figures
        pipe.save_pretrained(args.output_dir, training_details=details)
        with open(os.path.join(args.output_dir, "training_summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(f"Saved the trained CAMPipeline to {args.output_dir}: final training loss "
              f"{summary['final_train_loss']:.4f}, validation loss {summary['final_validation_loss']}.")
        if args.push_to_hub:
            pipe.push_to_hub(args.hub_model_id, token=args.hub_token, training_details=details)
    # Every process tears the process group down together: one that left while the main process was still saving
    # could leave the main process waiting on it at exit (seen once, on a loaded machine).
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def stop_if_not_finite(accelerator: Accelerator, loss: torch.Tensor, grad_norm, step: int, last_checkpoint) -> None:
    """Stops the run (on every process) at the first non-finite loss or gradient, before the optimiser uses it."""
    values = torch.stack([loss.detach().float(), torch.as_tensor(grad_norm, dtype=torch.float32, device=loss.device)])
    if bool(torch.isfinite(accelerator.gather(values[None])).all()):
        return
    where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
    raise FloatingPointError(
        f"Non-finite training loss ({loss.item()}) or gradient norm ({float(grad_norm)}) at step {step}: stopping "
        f"without saving; {where}. Lower --learning_rate, raise --lr_warmup_steps, or check the data, then resume "
        "with --resume_from_checkpoint latest."
    )


def validate(accelerator, unwrapped, ema, autoencoder, clips, context_frames, args, step, tracker) -> None:
    """Validation loss and audio on the main process, with the EMA weights when kept; training RNG untouched."""
    if accelerator.is_main_process:
        with torch.random.fork_rng(devices=[]):
            if ema is not None:
                ema.store(unwrapped.parameters())
                ema.copy_to(unwrapped.parameters())
            loss = validation_loss(unwrapped, clips, context_frames, args.train_batch_size, args.seed)
            with open(os.path.join(args.output_dir, LOG_FILE), "a") as f:
                f.write(json.dumps({"step": step, "validation_loss": loss}) + "\n")
            accelerator.log({"validation_loss": loss}, step=step)
            if args.num_validation_prompts or args.num_validation_samples:
                pipe = make_pipeline(unwrapped, autoencoder)
                pipe.set_progress_bar_config(disable=True)
                run_validation(pipe, clips, args, step, tracker)
                unwrapped.train()
            if ema is not None:
                ema.restore(unwrapped.parameters())
    accelerator.wait_for_everyone()


def make_pipeline(model: CAMForTraining, autoencoder) -> CAMPipeline:
    return CAMPipeline(backbone=model.backbone, sampler=model.sampler, scheduler=default_scheduler(model.sampler),
                       autoencoder=autoencoder)


def check_weights_in_sync(accelerator: Accelerator, model: torch.nn.Module) -> None:
    """After distributed training every process must hold the same weights: a cheap checksum proves it."""
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    gathered = accelerator.gather(checksum[None].to(accelerator.device))
    if not torch.allclose(gathered, gathered[:1].expand_as(gathered), rtol=0, atol=0):
        raise RuntimeError(f"The processes ended with different weights (checksums {gathered.tolist()}).")


def summarize(args, train_clips, validation_clips, model, context_frames, frame_rate, hardware_name, log) -> dict:
    """The run's figures, from the whole log (so a resumed run counts every step, before and after the resume)."""
    steps = [record for record in log if "loss" in record]
    validation_losses = [record["validation_loss"] for record in log if "validation_loss" in record]
    frames_seen = sum(record["frames"] for record in steps)
    train_frames = sum(len(clip) for clip in train_clips.clips)
    return {
        "steps": steps[-1]["step"] if steps else 0,
        "train_clips": len(train_clips),
        "train_hours": train_frames / frame_rate / 3600,
        "validation_clips": len(validation_clips) if validation_clips is not None else 0,
        "batch_clips": args.train_batch_size * args.gradient_accumulation_steps,
        "context_frames": context_frames,
        "frames_seen": frames_seen,
        "hours_seen": frames_seen / frame_rate / 3600,
        "wall_hours": (steps[-1]["wall_s"] if steps else 0.0) / 3600,
        "mean_frames_per_s": frames_seen / max(steps[-1]["wall_s"], 1e-9) if steps else 0.0,
        "hardware": hardware_name,
        "parameters": {"backbone": sum(p.numel() for p in model.backbone.parameters()),
                       "sampler": sum(p.numel() for p in model.sampler.parameters())},
        "final_train_loss": float(np.mean([record["loss"] for record in steps[-100:]])) if steps else float("nan"),
        "final_validation_loss": round(validation_losses[-1], 4) if validation_losses else "not measured",
    }


if __name__ == "__main__":
    main()
