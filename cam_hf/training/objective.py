"""The CAM training objective: noise-augmented Backbone inputs, a Sampler trained on the clean next frame.

    x~_t = (1 - k_t) x_t + k_t eps,   k_t ~ U(0, k_max)         noise augmentation of the Backbone's inputs
    z_0..z_{T-1} = Backbone(start, x~_1..x~_{T-1})              z_t conditions frame t + 1
    s ~ p(s);  x_s = (1 - s) x_{t+1} + s n;  v = n - x_{t+1}    rectified flow on the CLEAN next frame
    loss = || Sampler(x_s, s, z_t) - v ||^2

With `max_training_noise=0` this is the plain continuous autoregressive model the paper compares against; with
a Sampler of `prediction_type="epsilon"` the Sampler is a DDPM noise predictor on a linear schedule
(MAR-style).

A shortcut Sampler (`few_step_objective="shortcut"`, Frans et al., arXiv 2410.12557) learns to jump: most of
its rows train the flow velocity above with step size d = 0; a share `shortcut_fraction` trains
self-consistency,

    d in {1/2, 1/4, ..., 1/max_shortcut_steps},  s on the grid {2d, 4d, ..., 1}
    u(x_s, s, 2d)  <-  ( u(x_s, s, d) + u(x_s - d u(x_s, s, d), s - d, d) ) / 2     (target without gradient)

so that one step of 2d lands where two steps of d do, and a frame can be drawn in 1-4 steps.
"""

import math
from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler
from torch import nn
from transformers.utils import ModelOutput

from ..configuration_cam import CAMConfig
from ..modeling_cam import CAMModel, mix_noise
from ..sampler import DEFAULT_NUM_INFERENCE_STEPS, EPSILON_BETA_SCHEDULE, CAMSampler

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


@dataclass
class CAMTrainingOutput(ModelOutput):
    r"""
    Args:
        loss (`torch.Tensor`, scalar): the Sampler's mean squared error over every real frame.
        frame_losses (`torch.Tensor` of shape `(num_real_frames,)`): that error per real frame (averaged over
            the `sampler_batch_mul` repeats), in the order of `latents[attention_mask.bool()]`.
        noise_levels (`torch.Tensor` of shape `(batch_size, num_frames - 1)`): the k_t mixed into each
            Backbone input frame.
    """

    loss: torch.Tensor | None = None
    frame_losses: torch.Tensor | None = None
    noise_levels: torch.Tensor | None = None


class CAMForTraining(nn.Module):
    r"""
    Backbone and Sampler together, returning the training loss. Training scripts optimise this module and save
    its two parts with their own `save_pretrained`.

    Args:
        backbone ([`CAMModel`]): the causal transformer; its config holds the noise-augmentation settings.
        sampler ([`CAMSampler`]): the per-frame denoiser; its config holds the prediction type and time
            distribution.
        sampler_batch_mul (`int`, defaults to 4): how many (noise, time) draws each (z_t, x_{t+1}) pair gets
            per step, as MAR's `diffusion_batch_mul`: the Sampler is cheap, so more draws per Backbone pass
            lower the gradient's variance for little cost.
        instrument_dropout (`float`, defaults to 0.1): for a Backbone with instrument conditioning, the
            probability that a sequence's instrument is replaced by "no instrument" (label dropout), so that
            one model learns both the conditional and the unconditional distribution that classifier-free
            guidance combines.
        shortcut_fraction (`float`, defaults to 0.25): for a shortcut Sampler, the share of the Sampler's rows
            trained for self-consistency rather than flow matching (the rest). Ignored by other Samplers.
    """

    def __init__(
        self,
        backbone: CAMModel,
        sampler: CAMSampler,
        sampler_batch_mul: int = 4,
        instrument_dropout: float = 0.1,
        shortcut_fraction: float = 0.25,
    ):
        super().__init__()
        sampler.check_backbone_config(backbone.config)
        if sampler_batch_mul < 1:
            raise ValueError(f"`sampler_batch_mul` must be at least 1, got {sampler_batch_mul}.")
        if not 0.0 <= instrument_dropout <= 1.0:
            raise ValueError(f"`instrument_dropout` must be in [0, 1], got {instrument_dropout}.")
        if not 0.0 <= shortcut_fraction < 1.0:
            raise ValueError(f"`shortcut_fraction` must be in [0, 1), got {shortcut_fraction}.")
        self.backbone = backbone
        self.sampler = sampler
        self.sampler_batch_mul = sampler_batch_mul
        self.instrument_dropout = instrument_dropout
        self.shortcut_fraction = shortcut_fraction
        if sampler.config.prediction_type == "epsilon":
            self.noise_scheduler = DDPMScheduler(
                num_train_timesteps=sampler.config.num_train_timesteps, **EPSILON_BETA_SCHEDULE
            )

    def draw_noise_levels(
        self, batch_size: int, num_frames: int, device: torch.device, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """k_t ~ U(0, k_max) of shape `(batch_size, num_frames)`, one per frame or one per sequence
        (`noise_sampling`)."""
        config = self.backbone.config
        columns = num_frames if config.noise_sampling == "per_frame" else 1
        levels = (
            torch.rand(batch_size, columns, generator=generator, device=device) * config.max_training_noise
        )
        return levels.expand(batch_size, num_frames)

    def draw_flow_times(
        self, num: int, device: torch.device, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Flow times s in (0, 1) of shape `(num,)` from the Sampler's `time_distribution`."""
        config = self.sampler.config
        if config.time_distribution == "uniform":
            return torch.rand(num, generator=generator, device=device)
        normal = torch.randn(num, generator=generator, device=device)
        return torch.sigmoid(config.logit_normal_mean + config.logit_normal_std * normal)

    def forward(
        self,
        latents: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        instrument_ids: torch.LongTensor | None = None,
    ) -> CAMTrainingOutput:
        r"""
        Args:
            latents (`torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`): clean, normalised
                latents.
            attention_mask (`torch.Tensor` of shape `(batch_size, num_frames)`, *optional*): 1 for real
                frames, 0 for padding (right padding).
            generator (`torch.Generator`, *optional*): for the noise levels, noises, flow times and label
                dropout.
            instrument_ids (`torch.LongTensor` of shape `(batch_size,)`, *optional*): each sequence's
                instrument, for a Backbone with instrument conditioning; dropped to "no instrument" with
                probability `instrument_dropout` (in training mode only).

        Returns:
            [`CAMTrainingOutput`]
        """
        batch_size, num_frames, _ = latents.shape
        if num_frames < 1:
            raise ValueError(f"`latents` must hold at least one frame, got shape {tuple(latents.shape)}.")
        if attention_mask is not None and tuple(attention_mask.shape) != (batch_size, num_frames):
            raise ValueError(
                f"`attention_mask` must have shape {(batch_size, num_frames)} like `latents`' first two "
                f"dims, got {tuple(attention_mask.shape)}."
            )
        device = latents.device
        config = self.backbone.config

        # Inputs are frames 1..T-1; their outputs z_0..z_{T-1} (z_0 from the start vector) predict frames
        # 1..T.
        inputs = latents[:, :-1]
        noise_levels = self.draw_noise_levels(batch_size, num_frames - 1, device, generator)
        if config.max_training_noise > 0:
            noise = torch.randn(inputs.shape, generator=generator, device=device, dtype=inputs.dtype)
            inputs = mix_noise(
                inputs, noise, noise_levels.unsqueeze(-1).to(inputs.dtype), config.noise_mixing
            )
        if instrument_ids is not None and self.training and self.instrument_dropout > 0:
            dropped = torch.rand(batch_size, generator=generator, device=device) < self.instrument_dropout
            instrument_ids = instrument_ids.masked_fill(dropped, config.no_instrument_id)
        input_mask = attention_mask[:, :-1] if attention_mask is not None else None
        conditions = self.backbone(
            inputs,
            attention_mask=input_mask,
            use_cache=False,
            noise_level=noise_levels if config.condition_on_noise_level else None,
            instrument_ids=instrument_ids,
        ).last_hidden_state

        if attention_mask is not None:
            real = attention_mask.bool()
            conditions, targets = conditions[real], latents[real]
        else:
            conditions, targets = conditions.flatten(0, 1), latents.flatten(0, 1)
        frame_losses = self.sampler_loss(conditions, targets, generator)
        return CAMTrainingOutput(
            loss=frame_losses.mean(), frame_losses=frame_losses, noise_levels=noise_levels
        )

    def sampler_loss(
        self, conditions: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""
        The Sampler's denoising loss for pairs (z_t, x_{t+1}).

        Args:
            conditions (`torch.Tensor` of shape `(num_pairs, hidden_size)`): Backbone outputs z_t.
            targets (`torch.Tensor` of shape `(num_pairs, latent_dim)`): the clean next frames x_{t+1}.
            generator (`torch.Generator`, *optional*): for the noises and times.

        Returns:
            `torch.Tensor` of shape `(num_pairs,)`: the mean squared error of each pair over its repeats.
        """
        num_pairs, repeats = targets.shape[0], self.sampler_batch_mul
        conditions = conditions.repeat(repeats, 1)
        targets = targets.repeat(repeats, 1)
        noise = torch.randn(targets.shape, generator=generator, device=targets.device, dtype=targets.dtype)
        num_train_timesteps = self.sampler.config.num_train_timesteps
        if self.sampler.config.few_step_objective == "shortcut":
            prediction, target = self.shortcut_rows(conditions, targets, noise, generator)
        elif self.sampler.config.prediction_type == "flow":
            times = self.draw_flow_times(targets.shape[0], targets.device, generator).to(targets.dtype)
            noisy = (1 - times[:, None]) * targets + times[:, None] * noise
            prediction = self.sampler(noisy, times * num_train_timesteps, conditions)
            target = noise - targets
        else:
            timesteps = torch.randint(
                0, num_train_timesteps, (targets.shape[0],), generator=generator, device=targets.device
            )
            noisy = self.noise_scheduler.add_noise(targets, noise, timesteps)
            prediction = self.sampler(noisy, timesteps, conditions)
            target = noise
        per_row = (prediction.float() - target.float()).pow(2).mean(-1)
        return per_row.view(repeats, num_pairs).mean(0)

    def shortcut_rows(
        self,
        conditions: torch.Tensor,
        targets: torch.Tensor,
        noise: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""
        A shortcut Sampler's predictions and targets: flow matching (d = 0) on the first rows,
        self-consistency on the last `shortcut_fraction` of them (with `sampler_batch_mul` 4 and 0.25, the
        last repeat of every pair).

        Args:
            conditions (`torch.Tensor` of shape `(rows, hidden_size)`): Backbone outputs z_t.
            targets (`torch.Tensor` of shape `(rows, latent_dim)`): the clean next frames x_{t+1} (x_0 of the
                flow).
            noise (`torch.Tensor` of shape `(rows, latent_dim)`): the flow's noise n (x_1).
            generator (`torch.Generator`, *optional*): for the flow times and step sizes.

        Returns:
            `tuple` of the predictions and their targets, both `(rows, latent_dim)`.
        """
        rows, device, dtype = targets.shape[0], targets.device, targets.dtype
        sampler, scale = self.sampler, self.sampler.config.num_train_timesteps
        num_consistency = int(rows * self.shortcut_fraction)
        times = self.draw_flow_times(rows, device, generator)
        step_inputs = torch.zeros(rows, device=device)  # d fed to the head, in [0, 1]

        # Self-consistency rows: d = 2^-k, k = 1..log2(max_shortcut_steps); s = 2d * j on the 2d grid.
        max_doublings = int(math.log2(sampler.config.max_shortcut_steps))
        doublings = torch.randint(
            1, max_doublings + 1, (num_consistency,), generator=generator, device=device
        )
        half_step = 0.5 ** doublings.float()
        grid_points = torch.floor(
            torch.rand(num_consistency, generator=generator, device=device) / (2 * half_step)
        )
        consistency_times = 2 * half_step * (grid_points + 1)
        times[rows - num_consistency :] = consistency_times
        step_inputs[rows - num_consistency :] = 2 * half_step
        times = times.to(dtype)

        noisy = (1 - times[:, None]) * targets + times[:, None] * noise
        # The finest grid's steps ask for the flow velocity (d = 0), exactly as sampling does.
        finest = 1.0 / sampler.config.max_shortcut_steps
        half_input = torch.where(half_step <= finest, torch.zeros_like(half_step), half_step)
        with torch.no_grad():
            first = noisy[rows - num_consistency :]
            s, d = consistency_times.to(dtype), half_step.to(dtype)
            z = conditions[rows - num_consistency :]
            u_first = sampler(first, s * scale, z, half_input * scale)
            u_second = sampler(first - d[:, None] * u_first, (s - d) * scale, z, half_input * scale)
            consistency_target = (u_first + u_second) / 2
        prediction = sampler(noisy, times * scale, conditions, step_inputs * scale)
        target = torch.cat([(noise - targets)[: rows - num_consistency], consistency_target])
        return prediction, target


# The noise and Sampler settings of a run from scratch; a fine-tuning run starts from its model's own
# (`trained_settings`).
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
)
FEW_STEP_FIELDS = ("few_step_objective", "num_inference_steps", "max_shortcut_steps")


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
        max_shortcut_steps (`int`, defaults to 16): the finest uniform grid of a shortcut Sampler (a power of
            two).
        default_steps (`int`, *optional*): the steps to keep when `num_inference_steps` is not given (a
            trained Sampler's).

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
        backbone_fields (`dict`, *optional*): `CAMConfig` fields over the preset's (noise settings, instrument
            labels, sizes).
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


def fine_tuning_backbone_and_sampler(
    backbone: CAMModel,
    sampler: CAMSampler,
    context_frames: int | None = None,
    backbone_fields: dict | None = None,
    sampler_fields: dict | None = None,
) -> tuple[CAMModel, CAMSampler]:
    r"""
    A trained Backbone and Sampler set up to train further. Their networks keep their shape; settings of
    training and generation may change. A plain flow head asked for a few-step objective becomes a few-step
    head that starts as
    exactly itself (`CAMSampler.from_flow_head`).

    Args:
        backbone ([`CAMModel`]): the trained Backbone (its config is changed in place).
        sampler ([`CAMSampler`]): the trained Sampler.
        context_frames (`int`, *optional*): the longest training crop (default: the Backbone's).
        backbone_fields (`dict`, *optional*): new values of `FINE_TUNING_BACKBONE_FIELDS` (noise settings).
        sampler_fields (`dict`, *optional*): new values of `FINE_TUNING_SAMPLER_FIELDS` (few-step objective
            and steps, time distribution).

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


__all__ = [
    "DEFAULT_TRAINING_SETTINGS",
    "MODEL_PRESETS",
    "CAMForTraining",
    "CAMTrainingOutput",
    "few_step_fields",
    "fine_tuning_backbone_and_sampler",
    "new_backbone_and_sampler",
    "trained_settings",
]
