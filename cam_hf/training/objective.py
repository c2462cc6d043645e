"""The CAM training objective: noise-augmented Backbone inputs, a Sampler trained on the clean next frame.

    x~_t = (1 - k_t) x_t + k_t eps,   k_t ~ U(0, k_max)         noise augmentation of the Backbone's inputs
    z_0..z_{T-1} = Backbone(start, x~_1..x~_{T-1})              z_t conditions frame t + 1
    s ~ p(s);  x_s = (1 - s) x_{t+1} + s n;  v = n - x_{t+1}    rectified flow on the CLEAN next frame
    loss = || Sampler(x_s, s, z_t) - v ||^2

With `max_training_noise=0` this is the plain continuous autoregressive model the paper compares against; with
a Sampler of `prediction_type="epsilon"` the Sampler is a MAR-style DDPM noise predictor on a linear schedule.

A shortcut Sampler (`few_step_objective="shortcut"`, Frans et al., arXiv 2410.12557) learns to jump: most of
its rows train the flow velocity above with step size d = 0, and a share `shortcut_fraction` of them
trains self-consistency,

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

from ..modeling_cam import CAMModel, mix_noise
from ..sampler import EPSILON_BETA_SCHEDULE, CAMSampler


@dataclass
class CAMTrainingOutput(ModelOutput):
    r"""
    Args:
        loss (`torch.Tensor`, scalar): the Sampler's mean squared error over every real frame.
        frame_losses (`torch.Tensor` of shape `(num_real_frames,)`): that error per real frame (averaged over
            the `sampler_batch_mul` repeats), in the order of `latents[attention_mask.bool()]`.
        noise_levels (`torch.Tensor` of shape `(batch_size, num_frames - 1)`): the noise level k_t mixed
            into each input frame of the Backbone.
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
        sampler ([`CAMSampler`]): the per-frame denoiser; its config holds the prediction type and the
            distribution of flow times.
        sampler_batch_mul (`int`, defaults to 4): how many (noise, time) draws each (z_t, x_{t+1}) pair gets
            per step, as MAR's `diffusion_batch_mul`: the Sampler is cheap, so more draws per Backbone pass
            lower the gradient's variance for little cost.
        instrument_dropout (`float`, defaults to 0.1): for a Backbone with instrument conditioning, the
            probability that a sequence's instrument is replaced by "no instrument" (label dropout): one model
            then learns the conditional and unconditional distributions, which classifier-free guidance mixes.
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
        """k_t ~ U(0, k_max) of shape `(batch_size, num_frames)`: one per frame or one per sequence, as
        `noise_sampling` says."""
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
            latents (`torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`): the clean latents,
                normalised as the autoencoder stores them.
            attention_mask (`torch.Tensor` of shape `(batch_size, num_frames)`, *optional*): 1 for real
                frames, 0 for padding (right padding).
            generator (`torch.Generator`, *optional*): the source of the noise levels, noises, flow times
                and label dropout.
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

        # The start vector and frames 1..T-1 give z_0..z_{T-1}, which predict frames 1..T.
        inputs = clean_inputs = latents[:, :-1]
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
            # A short context reads the frames the noise augmentation corrupted, as they were.
            clean_latents=clean_inputs if config.short_context_frames else None,
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
            targets (`torch.Tensor` of shape `(rows, latent_dim)`): the clean next frames
                x_{t+1}, the flow's x_0.
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


__all__ = ["CAMForTraining", "CAMTrainingOutput"]
