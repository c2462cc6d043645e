"""The options of a training run (`examples/train.py --help` lists them with their defaults): the parser, its
checks, and the defaults a run fills in for the options that follow the model being fine-tuned.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import TYPE_CHECKING

from .models import DEFAULT_TRAINING_SETTINGS as DEFAULTS
from .models import MODEL_PRESETS, trained_settings

if TYPE_CHECKING:
    from ..pipeline_cam import CAMPipeline


def parse_training_args(argv: list[str] | None = None, description: str | None = None) -> argparse.Namespace:
    r"""
    Parse and check the options of `examples/train.py`.

    Args:
        argv (`list[str]`, *optional*): the command line's arguments (default: `sys.argv[1:]`).
        description (`str`, *optional*): the text `--help` prints above the options.

    Returns:
        `argparse.Namespace`: the options; those that follow a fine-tuned model are `None` until
        `resolve_training_defaults` fills them in.
    """
    formatters = (argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter)
    formatter = type("Formatter", formatters, {})
    parser = argparse.ArgumentParser(description=description, formatter_class=formatter)
    data = parser.add_argument_group("data").add_argument
    data(
        "--dataset_dir",
        required=True,
        help="A latent dataset (examples/encode_dataset.py) or an audio DatasetDict "
        "(make_dataset.py), which is encoded once into --latent_cache_dir and reused.",
    )
    data(
        "--latent_cache_dir",
        default=None,
        help="Where an audio --dataset_dir is encoded to (default: DATASET_DIR-latents-AUTOENCODER).",
    )
    data(
        "--autoencoder",
        default="mel",
        choices=["mel", "music2latent", "oobleck", "encodec"],
        help="Autoencoder that encodes an audio --dataset_dir (a latent dataset carries its own).",
    )
    data("--autoencoder_path", default=None, help="Weights of --autoencoder (folder or Hub id).")
    data("--train_split", default="train")
    data("--validation_split", default="validation")
    data("--dataloader_num_workers", type=int, default=0)

    model = parser.add_argument_group("model size").add_argument
    model(
        "--pretrained_model_name_or_path",
        default=None,
        help="Fine-tune a saved CAMPipeline (folder or Hub id): its Backbone, Sampler, instrument "
        "labels and autoencoder, which must have encoded the dataset (docs/training.md). Size "
        "options do not apply; noise and Sampler options default to the pipeline's.",
    )
    model(
        "--freeze_backbone",
        action="store_true",
        help="Train the Sampler only (on the Backbone's outputs under the training noise).",
    )
    model(
        "--preset",
        default="small",
        choices=sorted(MODEL_PRESETS),
        help="Named sizes: "
        + "; ".join(
            f"{name}: Backbone {p['backbone']['num_hidden_layers']} x {p['backbone']['hidden_size']}, "
            f"Sampler {p['sampler']['num_blocks']} x {p['sampler']['width']}, context {p['context_frames']}"
            for name, p in MODEL_PRESETS.items()
        ),
    )
    model(
        "--short_context_frames",
        type=int,
        default=None,
        help="K: a short context over the last K clean frames beside the Backbone (CALM's; docs/model.md); "
        "0: none. Default: none from scratch, the pretrained model's when fine-tuning, which may add one "
        "(it starts silent, so the model starts as the pretrained one).",
    )
    model(
        "--short_context_num_layers",
        type=int,
        default=2,
        help="Convolutions of the short context (K - 1 must be a multiple of it).",
    )
    model(
        "--short_context_hidden_size",
        type=int,
        default=None,
        help="Channels of the short context (default: the Backbone's hidden size).",
    )
    model("--backbone_config", default=None, help="A JSON file of CAMConfig fields over the preset.")
    model("--sampler_config", default=None, help="A JSON file of CAMSampler arguments over the preset.")
    model(
        "--context_frames",
        type=int,
        default=None,
        help="Longest training crop, in latent frames (default: the preset's); the Backbone's "
        "max_position_embeddings is one more. Generation beyond it slides a window this long.",
    )
    model(
        "--short_crop_fraction",
        type=float,
        default=0.0,
        help="Share of crops drawn shorter than the context, to weight the first positions more.",
    )
    model(
        "--conditioning",
        default="none",
        choices=["none", "instrument"],
        help="instrument: condition on --instrument_column, with label dropout for guidance.",
    )
    model("--instrument_column", default="instrument_name")
    model(
        "--instrument_dropout",
        type=float,
        default=0.1,
        help="Probability of training a sequence as 'no instrument' (classifier-free guidance).",
    )
    model("--gradient_checkpointing", action="store_true", help="Recompute the Backbone's activations.")

    noise = parser.add_argument_group("noise augmentation (CAMConfig)").add_argument
    # `resolve_training_defaults` fills in the defaults of None: the pipeline's when fine-tuning, else these.
    noise(
        "--max_training_noise",
        type=float,
        default=None,
        help=f"k_max: k ~ U(0, k_max); 0 = plain AR (default {DEFAULTS['max_training_noise']}).",
    )
    noise(
        "--noise_mixing",
        default=None,
        choices=["linear", "variance_preserving"],
        help=f"Default {DEFAULTS['noise_mixing']}.",
    )
    noise(
        "--noise_sampling",
        default=None,
        choices=["per_frame", "per_sequence"],
        help=f"Default {DEFAULTS['noise_sampling']}.",
    )
    noise("--condition_on_noise_level", action="store_true", help="Tell the Backbone each frame's k.")
    noise(
        "--inference_noise",
        type=float,
        default=None,
        help=f"k_inf stored for generation (default {DEFAULTS['inference_noise']}).",
    )

    sampler = parser.add_argument_group("Sampler").add_argument
    sampler(
        "--prediction_type",
        default=None,
        choices=["flow", "epsilon"],
        help=f"Default {DEFAULTS['prediction_type']}: rectified flow (the paper's); epsilon: DDPM "
        "noise prediction (MAR-style).",
    )
    sampler(
        "--time_distribution",
        default=None,
        choices=["uniform", "logit_normal"],
        help=f"Default {DEFAULTS['time_distribution']}.",
    )
    sampler(
        "--few_step_objective",
        default=None,
        choices=["none", "shortcut"],
        help=f"Default {DEFAULTS['few_step_objective']}; shortcut: a Sampler that also learns to "
        "jump (arXiv 2410.12557), 1-4 steps a frame; from a flow head, it starts as that head.",
    )
    sampler(
        "--shortcut_fraction",
        type=float,
        default=0.25,
        help="Share of a shortcut Sampler's rows trained for self-consistency (the rest: flow).",
    )
    sampler(
        "--max_shortcut_steps",
        type=int,
        default=16,
        help="Finest uniform grid of a shortcut Sampler (a power of two).",
    )
    sampler(
        "--default_inference_steps",
        type=int,
        default=None,
        help="Sampler steps per frame stored for generation (default: the pipeline's, else 16 "
        "for a flow Sampler and 4 for a shortcut one).",
    )
    sampler(
        "--default_temperature",
        type=float,
        default=None,
        help="The Sampler's temperature stored for generation (the variance of each frame's starting noise; "
        "default: the pipeline's, else 1.0): measure it with examples/evaluate.py --temperature.",
    )
    sampler("--sampler_width", type=int, default=None, help="Default: the preset's.")
    sampler("--sampler_blocks", type=int, default=None, help="Default: the preset's.")
    sampler("--sampler_batch_mul", type=int, default=4, help="(noise, time) draws per Backbone output.")

    optim = parser.add_argument_group("optimisation").add_argument
    optim("--train_batch_size", type=int, default=16, help="Clips per process per micro-step.")
    optim("--gradient_accumulation_steps", type=int, default=1)
    optim(
        "--max_train_steps",
        type=int,
        default=1000,
        help="Optimiser steps: the length of the run and of its LR schedule.",
    )
    optim(
        "--stop_after_steps",
        type=int,
        default=None,
        help="End the run after this step (checkpoint, pipeline and card) on the LR schedule of "
        "--max_train_steps: the same command without it later resumes and continues.",
    )
    optim("--learning_rate", type=float, default=3e-4)
    optim(
        "--short_context_learning_rate",
        type=float,
        default=None,
        help="Peak learning rate of the short context (default: --learning_rate); one added to a trained "
        "model learns from scratch beside weights that only adjust, so it may take more.",
    )
    optim(
        "--lr_scheduler",
        default="cosine",
        choices=["cosine", "linear", "constant", "constant_with_warmup", "warmup_stable_decay"],
        help="warmup_stable_decay: warm-up, a constant rate, then a cosine decay to 0 over the last "
        "--lr_decay_steps: a run can be extended (a larger --max_train_steps, resumed before its decay "
        "began) and still end decayed.",
    )
    optim(
        "--lr_decay_steps",
        type=int,
        default=None,
        help="The decay of warmup_stable_decay, in steps (default: a fifth of --max_train_steps).",
    )
    optim("--lr_warmup_steps", type=int, default=500)
    optim("--adam_beta1", type=float, default=0.9)
    optim("--adam_beta2", type=float, default=0.99)
    optim("--adam_weight_decay", type=float, default=0.01)
    optim("--max_grad_norm", type=float, default=1.0)
    optim(
        "--mixed_precision",
        default="auto",
        choices=["auto", "no", "fp16", "bf16"],
        help="auto: bf16 where the hardware computes it natively (a GPU with bf16, a CPU with "
        "AVX-512 bf16 or AMX), else fp32 (on an AVX2-only CPU bf16 is ~11x slower).",
    )
    optim("--use_ema", action="store_true", help="Keep an EMA of the weights (saved and validated).")
    optim("--ema_decay", type=float, default=0.999)
    optim("--seed", type=int, default=0)

    run = parser.add_argument_group("logging, validation, checkpoints, sharing").add_argument
    run("--output_dir", required=True)
    run("--report_to", default="none", choices=["none", "tensorboard", "wandb", "all"])
    run("--logging_dir", default="logs", help="TensorBoard folder, inside --output_dir.")
    run("--validation_steps", type=int, default=1000, help="Validate every N steps (and at the end).")
    run("--num_validation_prompts", type=int, default=2, help="Clips continued from their first half.")
    run("--num_validation_samples", type=int, default=2, help="Samples (one per instrument in turn).")
    run("--validation_seconds", type=float, default=8.0, help="Length of each validation sample.")
    run("--validation_inference_steps", type=int, default=16, help="Sampler steps per frame there.")
    run("--checkpointing_steps", type=int, default=500)
    run("--checkpoints_total_limit", type=int, default=None, help="Keep only the newest N checkpoints.")
    run(
        "--resume_from_checkpoint",
        default=None,
        help="`latest` (the newest whole checkpoint in --output_dir) or a checkpoint-STEP folder.",
    )
    run("--push_to_hub", action="store_true")
    run("--hub_model_id", default=None)
    run("--hub_token", default=None)
    args = parser.parse_args(argv)
    check_training_args(args)
    return args


def check_training_args(args: argparse.Namespace) -> None:
    """Raises `ValueError` naming the first option out of its range or at odds with another."""
    for name in (
        "train_batch_size",
        "gradient_accumulation_steps",
        "max_train_steps",
        "checkpointing_steps",
        "validation_steps",
        "sampler_batch_mul",
        "stop_after_steps",
        "context_frames",
        "default_inference_steps",
        "checkpoints_total_limit",
        "short_context_num_layers",
        "short_context_hidden_size",
        "lr_decay_steps",
    ):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}.")
    if not 0.0 <= args.short_crop_fraction <= 1.0:
        raise ValueError(f"--short_crop_fraction must be in [0, 1], got {args.short_crop_fraction}.")
    if not 0.0 <= args.shortcut_fraction < 1.0:
        raise ValueError(f"--shortcut_fraction must be in [0, 1), got {args.shortcut_fraction}.")
    for name in ("learning_rate", "short_context_learning_rate", "default_temperature"):
        value = getattr(args, name)
        if value is not None and (value <= 0 or not math.isfinite(value)):
            raise ValueError(f"--{name} must be a positive number, got {value}.")
    if args.short_context_frames is not None and args.short_context_frames < 0:
        raise ValueError(f"--short_context_frames must be 0 (none) or more, got {args.short_context_frames}.")
    if args.lr_decay_steps is not None and args.lr_decay_steps > args.max_train_steps:
        raise ValueError(
            f"--lr_decay_steps ({args.lr_decay_steps}) must be at most --max_train_steps "
            f"({args.max_train_steps})."
        )
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/cam-music).")
    for name in ("backbone_config", "sampler_config"):
        path = getattr(args, name)
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"--{name} {path!r} is not a file: pass a JSON file of configuration fields.")
    if args.pretrained_model_name_or_path is not None:
        names = ("backbone_config", "sampler_config", "sampler_width", "sampler_blocks", "prediction_type")
        shaping = [f"--{name}" for name in names if getattr(args, name) is not None]
        shaping += ["--condition_on_noise_level"] if args.condition_on_noise_level else []
        if shaping:
            raise ValueError(
                f"{', '.join(shaping)} change(s) the network of "
                "--pretrained_model_name_or_path: a fine-tuned model keeps its shape. Train "
                "from scratch to change it."
            )
    elif args.freeze_backbone:
        raise ValueError(
            "--freeze_backbone trains the Sampler of a trained Backbone: pass "
            "--pretrained_model_name_or_path."
        )


def resolve_training_defaults(args: argparse.Namespace, pretrained: CAMPipeline | None = None) -> None:
    """Fill the options left unset (`None`): from the pipeline being fine-tuned, else
    `DEFAULT_TRAINING_SETTINGS`."""
    settings = DEFAULTS
    if pretrained is not None:
        settings = trained_settings(pretrained.backbone, pretrained.sampler)
        args.condition_on_noise_level = settings.pop("condition_on_noise_level")
    for name, value in settings.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.few_step_objective != "none" and args.prediction_type != "flow":
        raise ValueError(
            f"--few_step_objective {args.few_step_objective} needs a flow Sampler, got "
            f"--prediction_type {args.prediction_type}."
        )


__all__ = ["check_training_args", "parse_training_args", "resolve_training_defaults"]
