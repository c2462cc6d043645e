"""The models a training run starts from: a new Backbone and Sampler of a named size (`MODEL_PRESETS`), or a
trained pair set up for fine-tuning (its network kept, its training and generation settings changed); and the
pipeline around the model being trained.
"""

from ..configuration_cam import CAMConfig
from ..modeling_cam import CAMModel
from ..pipeline_cam import CAMPipeline
from ..sampler import DEFAULT_NUM_INFERENCE_STEPS, CAMSampler, default_scheduler
from .objective import CAMForTraining

# Named model sizes for `examples/train.py --preset` (and `benchmarks/bench_train.py`). `context_frames` is
# the training crop length; the Backbone's `max_position_embeddings` is one more (the start vector). "small"
# fits the built-in dataset's 10 s clips (107 mel-codec frames) and trains on a 2-core CPU; "base" wants
# longer clips and a GPU.
MODEL_PRESETS = {
    "tiny": {
        "backbone": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
        },
        "sampler": {"width": 64, "num_blocks": 2},
        "context_frames": 64,
    },
    "small": {
        "backbone": {
            "hidden_size": 192,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 512,
        },
        "sampler": {"width": 256, "num_blocks": 3},
        "context_frames": 96,
    },
    "base": {
        "backbone": {
            "hidden_size": 384,
            "num_hidden_layers": 8,
            "num_attention_heads": 6,
            "intermediate_size": 1024,
        },
        "sampler": {"width": 512, "num_blocks": 3},
        "context_frames": 256,
    },
}

# The noise and Sampler settings of a run from scratch (a fine-tuning run starts from `trained_settings`).
DEFAULT_TRAINING_SETTINGS = {
    "max_training_noise": 1.0,
    "noise_mixing": "linear",
    "noise_sampling": "per_frame",
    "inference_noise": 0.02,
    "prediction_type": "flow",
    "time_distribution": "logit_normal",
    "few_step_objective": "none",
}
# Settings of training and generation, not of the network's shape: a fine-tuning run may change them.
FINE_TUNING_BACKBONE_FIELDS = ("max_training_noise", "noise_mixing", "noise_sampling", "inference_noise")
FINE_TUNING_SAMPLER_FIELDS = (
    "few_step_objective",
    "num_inference_steps",
    "max_shortcut_steps",
    "time_distribution",
    "temperature",
)
FEW_STEP_FIELDS = ("few_step_objective", "num_inference_steps", "max_shortcut_steps")
# The short context's network (`CAMShortContext`): set from scratch, or added to a trained Backbone.
SHORT_CONTEXT_FIELDS = ("short_context_frames", "short_context_num_layers", "short_context_hidden_size")


def trained_settings(backbone: CAMModel, sampler: CAMSampler) -> dict:
    """A trained model's own values of the `DEFAULT_TRAINING_SETTINGS`, and whether its Backbone is told the
    noise level (`condition_on_noise_level`, a part of its network)."""
    settings = {name: getattr(backbone.config, name) for name in FINE_TUNING_BACKBONE_FIELDS}
    settings.update(
        prediction_type=sampler.config.prediction_type,
        time_distribution=sampler.config.time_distribution,
        few_step_objective=sampler.config.few_step_objective or "none",
        condition_on_noise_level=backbone.config.condition_on_noise_level,
    )
    return settings


def few_step_fields(
    few_step_objective: str | None,
    num_inference_steps: int | None = None,
    max_shortcut_steps: int = 16,
    default_steps: int | None = None,
) -> dict:
    r"""
    The Sampler config fields of a few-step objective.

    Args:
        few_step_objective (`str`, *optional*): `"shortcut"`, or `None` (or `"none"`) for a plain Sampler.
        num_inference_steps (`int`, *optional*): the Sampler steps per frame stored for generation. Default:
            `default_steps`, else 4 for a few-step Sampler and `DEFAULT_NUM_INFERENCE_STEPS` for a plain one.
        max_shortcut_steps (`int`, defaults to 16): the number of steps of a shortcut Sampler's finest
            uniform grid (a power of two).
        default_steps (`int`, *optional*): the steps to keep when `num_inference_steps` is not given, such
            as those of a trained Sampler.

    Returns:
        `dict`: `CAMSampler` config fields.
    """
    objective = None if few_step_objective == "none" else few_step_objective
    steps = num_inference_steps or default_steps or (4 if objective else DEFAULT_NUM_INFERENCE_STEPS)
    fields = {"few_step_objective": objective, "num_inference_steps": steps}
    if objective:
        fields["max_shortcut_steps"] = max_shortcut_steps
    return fields


def new_backbone_and_sampler(
    latent_dim: int,
    preset: str = "small",
    context_frames: int | None = None,
    backbone_fields: dict | None = None,
    sampler_fields: dict | None = None,
) -> tuple[CAMModel, CAMSampler]:
    r"""
    A Backbone and a Sampler to train from scratch, of a named size.

    Args:
        latent_dim (`int`): the autoencoder's latent size.
        preset (`str`, defaults to `"small"`): a key of `MODEL_PRESETS`.
        context_frames (`int`, *optional*): the longest training crop (default: the preset's); the Backbone's
            `max_position_embeddings` is one more (the start vector).
        backbone_fields (`dict`, *optional*): `CAMConfig` fields over the preset's: noise settings,
            instrument labels, sizes.
        sampler_fields (`dict`, *optional*): `CAMSampler` arguments over the preset's.

    Returns:
        `tuple` of the [`CAMModel`] and the [`CAMSampler`], freshly initialised (from torch's global RNG).
    """
    if preset not in MODEL_PRESETS:
        raise ValueError(f"preset must be one of {sorted(MODEL_PRESETS)}, got {preset!r}.")
    sizes = MODEL_PRESETS[preset]
    context_frames = context_frames or sizes["context_frames"]
    fields = {**sizes["backbone"], **(backbone_fields or {})}
    config = CAMConfig(**{**fields, "latent_dim": latent_dim, "max_position_embeddings": context_frames + 1})
    backbone = CAMModel(config)
    sampler = CAMSampler(
        latent_dim=latent_dim,
        condition_dim=config.hidden_size,
        **{**sizes["sampler"], **(sampler_fields or {})},
    )
    return backbone, sampler


def with_short_context(backbone: CAMModel, fields: dict) -> CAMModel:
    r"""
    `backbone` with the short context `fields` describe (`SHORT_CONTEXT_FIELDS`): the Backbone itself when it
    has that one, a copy with a new one when it has none. The new one's output layer starts at zero, so the
    copy computes exactly what `backbone` does until it learns.

    Args:
        backbone ([`CAMModel`]): a trained Backbone.
        fields (`dict`): `short_context_frames` (> 0) and optionally its layers and width.

    Returns:
        [`CAMModel`]: the Backbone with the short context, on `backbone`'s device and dtype.
    """
    config = CAMConfig(**{**backbone.config.to_dict(), **fields})
    if backbone.short_context is not None:
        differ = {name: value for name, value in fields.items() if getattr(backbone.config, name) != value}
        if differ:
            raise ValueError(
                f"This Backbone has a short context already, and {differ} would change its network: "
                "fine-tune it as it is (leave the short-context options out), or train from scratch."
            )
        return backbone
    extended = CAMModel(config).to(device=backbone.device, dtype=backbone.dtype)
    missing, unexpected = extended.load_state_dict(backbone.state_dict(), strict=False)
    if unexpected or not all(name.startswith("short_context.") for name in missing):
        raise RuntimeError(f"Adding a short context changed more than it: {missing=}, {unexpected=}.")
    return extended.train(backbone.training)


def fine_tuning_backbone_and_sampler(
    backbone: CAMModel,
    sampler: CAMSampler,
    context_frames: int | None = None,
    backbone_fields: dict | None = None,
    sampler_fields: dict | None = None,
    short_context: dict | None = None,
) -> tuple[CAMModel, CAMSampler]:
    r"""
    A trained Backbone and Sampler set up to train further. Their networks keep their shape; settings of
    training and generation may change. A plain flow head asked for a few-step objective becomes a few-step
    head that starts as exactly itself (`CAMSampler.from_flow_head`).

    Args:
        backbone ([`CAMModel`]): the trained Backbone (its config is changed in place).
        sampler ([`CAMSampler`]): the trained Sampler.
        context_frames (`int`, *optional*): the longest training crop (default: the Backbone's).
        backbone_fields (`dict`, *optional*): new values of `FINE_TUNING_BACKBONE_FIELDS` (noise settings).
        sampler_fields (`dict`, *optional*): new values of `FINE_TUNING_SAMPLER_FIELDS` (few-step objective
            and steps, time distribution, temperature).
        short_context (`dict`, *optional*): `SHORT_CONTEXT_FIELDS` of a short context to add to a Backbone
            without one ([`with_short_context`]: the model starts as exactly the trained one); a Backbone that
            has one keeps it.

    Returns:
        `tuple` of the Backbone and the Sampler to train.
    """
    backbone_fields, sampler_fields = backbone_fields or {}, dict(sampler_fields or {})
    for fields, allowed in (
        (backbone_fields, FINE_TUNING_BACKBONE_FIELDS),
        (sampler_fields, FINE_TUNING_SAMPLER_FIELDS),
    ):
        shaping = sorted(set(fields) - set(allowed))
        if shaping:
            raise ValueError(
                f"{shaping} cannot change when fine-tuning (only {list(allowed)} can): a fine-tuned model "
                "keeps its network. Train from scratch to change it."
            )
    if short_context and short_context.get("short_context_frames"):
        backbone = with_short_context(backbone, short_context)
    context_frames = context_frames or backbone.config.max_position_embeddings - 1
    for name, value in {**backbone_fields, "max_position_embeddings": context_frames + 1}.items():
        setattr(backbone.config, name, value)
    few_step = {name: sampler_fields.pop(name) for name in FEW_STEP_FIELDS if name in sampler_fields}
    current = sampler.config.few_step_objective
    wanted = few_step.get("few_step_objective", current)
    if current is None and wanted is not None:
        sampler = CAMSampler.from_flow_head(sampler, **few_step)
    elif current != wanted:
        raise ValueError(
            f"few_step_objective={wanted!r} cannot turn a Sampler trained with "
            f"few_step_objective={current!r} into another: train one from scratch."
        )
    else:
        sampler.register_to_config(**few_step)
    sampler.register_to_config(**sampler_fields)
    return backbone, sampler


def training_pipeline(model: CAMForTraining, autoencoder) -> CAMPipeline:
    """The pipeline of the model being trained (its modules, not copies)."""
    return CAMPipeline(
        backbone=model.backbone,
        sampler=model.sampler,
        scheduler=default_scheduler(model.sampler),
        autoencoder=autoencoder,
    )


__all__ = [
    "DEFAULT_TRAINING_SETTINGS",
    "FINE_TUNING_BACKBONE_FIELDS",
    "FINE_TUNING_SAMPLER_FIELDS",
    "MODEL_PRESETS",
    "SHORT_CONTEXT_FIELDS",
    "few_step_fields",
    "fine_tuning_backbone_and_sampler",
    "new_backbone_and_sampler",
    "trained_settings",
    "training_pipeline",
    "with_short_context",
]
