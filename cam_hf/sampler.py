"""The CAM Sampler: a small MLP denoiser that draws the next latent frame given the Backbone's output z_t.

The network follows MAR's diffusion head (Li et al., 2024, `diffloss.py`): residual MLP blocks modulated by
AdaLN on the sum of a flow-time embedding and the projected condition. By default it is trained with rectified
flow and predicts the velocity v = noise - x0 in diffusers' FlowMatch convention (sigma = 1 is pure noise), so
that diffusers' flow-matching schedulers integrate it directly.
"""

import math
import numbers

import torch
from diffusers import ConfigMixin, DDIMScheduler, FlowMatchEulerDiscreteScheduler, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import nn

PREDICTION_TYPES = ("flow", "epsilon")
TIME_DISTRIBUTIONS = ("uniform", "logit_normal")
FEW_STEP_OBJECTIVES = (None, "shortcut")
# The DDPM noise schedule of the "epsilon" (MAR-style) baseline: linear betas, as in DDPM.
EPSILON_BETA_SCHEDULE = {"beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear"}
# Flow steps per frame of a plain flow Sampler, chosen in docs/performance.md: 16 nearly halve 8
# steps' Frechet distance, 32 gain little. A Sampler's config may set its own (`num_inference_steps`),
# e.g. a few-step head.
DEFAULT_NUM_INFERENCE_STEPS = 16


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of `timesteps` `(batch_size,)` -> `(batch_size, dim)`."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=timesteps.device, dtype=torch.float32) / half
    )
    args = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class CAMSamplerBlock(nn.Module):
    """LayerNorm -> AdaLN shift/scale -> Linear-SiLU-Linear -> gated residual."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.adaln_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.forward_modulated(x, *self.adaln_modulation(c).chunk(3, dim=-1))

    def forward_modulated(
        self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, gate: torch.Tensor
    ):
        """The block given its AdaLN modulation, which depends on the condition
        only (see `CAMSampler.modulations`)."""
        return x + gate * self.mlp(modulate(self.norm(x), shift, scale))


def check_temperature(temperature) -> None:
    """A temperature must be a positive real number."""
    valid = isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
    if not valid or not 0 < temperature < float("inf"):
        raise ValueError(
            f"`temperature` must be a positive number (1.0: the noise the Sampler was trained on), got "
            f"{temperature!r}."
        )


class CAMSampler(ModelMixin, ConfigMixin):
    r"""
    The Sampler of a Continuous Autoregressive Model: models p(x_{t+1} | z_t) one frame at a time.

    Args:
        latent_dim (`int`, defaults to 64): size D of a latent frame.
        condition_dim (`int`, defaults to 768): size of the Backbone's conditioning vector z_t (its
            `hidden_size`).
        width (`int`, defaults to 512): width W of the residual MLP. Chosen by measuring sample quality
            against cost (`benchmarks/bench_sampler_quality.py`, `docs/performance.md`): on a 64-dim
            multimodal toy with a known answer, widths 256, 512 and 1024 give the same quality after the same
            training, while at batch 1 a frame of 16 steps costs about 4x more at 1024 than at 512 (MAR's head
            uses 1024 for its image tokens).
        num_blocks (`int`, defaults to 3): number of residual AdaLN blocks.
        time_embedding_dim (`int`, defaults to 256): size of the sinusoidal flow-time embedding (even: cosines
            and sines in equal number).
        prediction_type (`str`, defaults to `"flow"`):
            `"flow"`: rectified flow, the network predicts v = noise - x0 (the paper's). `"epsilon"`: the
            network predicts the noise of a DDPM with a linear beta schedule (the MAR-style baseline).
        num_train_timesteps (`int`, defaults to 1000):
            Scale of the timestep input: flow time s in [0, 1] is passed as s * num_train_timesteps, as
            diffusers' flow-matching schedulers do.
        time_distribution (`str`, defaults to `"uniform"`):
            How training draws the flow time s: `"uniform"` on (0, 1) or `"logit_normal"` (sigmoid of a
            normal, as in Stable Diffusion 3), which spends more training on intermediate times.
        logit_normal_mean (`float`, defaults to 0.0): mean of the normal behind `"logit_normal"`.
        logit_normal_std (`float`, defaults to 1.0): standard deviation of the normal behind `"logit_normal"`.
        few_step_objective (`str`, *optional*):
            `None`: a plain flow head, integrated by a scheduler in many small steps. `"shortcut"`: a shortcut
            model (Frans et al., arXiv 2410.12557) that also takes the step size d it is asked to jump,
            u(x_s, s, d), and is trained so that one step of size 2d equals two steps of size d; it draws a
            frame in 1-4 uniform steps. d = 0 asks for the plain flow velocity, so a shortcut head whose
            step-size embedding is zero is exactly the flow head it was made from.
        max_shortcut_steps (`int`, defaults to 16): the finest uniform grid a shortcut head is trained for (a
            power of two). Steps of size 1 / `max_shortcut_steps` or smaller use d = 0, the flow velocity.
        num_inference_steps (`int`, defaults to 16): the steps per frame that generation uses unless told
            otherwise.
        temperature (`float`, defaults to 1.0): tau, the variance of the noise each frame starts from (its
            standard deviation is sqrt(tau)), which generation uses unless told otherwise. Below 1 the frames
            stay nearer the modes, above 1 they spread (as in Kyutai's CALM, arXiv 2509.06926); a trained
            model stores the value measured best for it.
    """

    @register_to_config
    def __init__(
        self,
        latent_dim: int = 64,
        condition_dim: int = 768,
        width: int = 512,
        num_blocks: int = 3,
        time_embedding_dim: int = 256,
        prediction_type: str = "flow",
        num_train_timesteps: int = 1000,
        time_distribution: str = "uniform",
        logit_normal_mean: float = 0.0,
        logit_normal_std: float = 1.0,
        few_step_objective: str | None = None,
        max_shortcut_steps: int = 16,
        num_inference_steps: int = DEFAULT_NUM_INFERENCE_STEPS,
        temperature: float = 1.0,
    ):
        super().__init__()
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"`prediction_type` must be one of {PREDICTION_TYPES}, got {prediction_type!r}.")
        if time_distribution not in TIME_DISTRIBUTIONS:
            raise ValueError(
                f"`time_distribution` must be one of {TIME_DISTRIBUTIONS}, got {time_distribution!r}."
            )
        if few_step_objective not in FEW_STEP_OBJECTIVES:
            raise ValueError(
                f"`few_step_objective` must be one of {FEW_STEP_OBJECTIVES}, got {few_step_objective!r}."
            )
        if few_step_objective is not None and prediction_type != "flow":
            raise ValueError(
                f"`few_step_objective={few_step_objective!r}` needs `prediction_type='flow'`, "
                f"got {prediction_type!r}."
            )
        check_temperature(temperature)
        if logit_normal_std <= 0:
            raise ValueError(f"`logit_normal_std` must be positive, got {logit_normal_std}.")
        for name, value in [
            ("latent_dim", latent_dim),
            ("condition_dim", condition_dim),
            ("width", width),
            ("num_blocks", num_blocks),
            ("time_embedding_dim", time_embedding_dim),
            ("num_train_timesteps", num_train_timesteps),
            ("max_shortcut_steps", max_shortcut_steps),
            ("num_inference_steps", num_inference_steps),
        ]:
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if time_embedding_dim % 2:
            raise ValueError(
                f"`time_embedding_dim` must be even (as many cosines as sines), got {time_embedding_dim}: "
                f"pass e.g. {time_embedding_dim + 1}."
            )
        if max_shortcut_steps & (max_shortcut_steps - 1):
            raise ValueError(f"`max_shortcut_steps` must be a power of two, got {max_shortcut_steps}.")
        self.input_proj = nn.Linear(latent_dim, width)
        self.time_embed = nn.Sequential(
            nn.Linear(time_embedding_dim, width), nn.SiLU(), nn.Linear(width, width)
        )
        self.condition_proj = nn.Linear(condition_dim, width)
        if few_step_objective == "shortcut":
            self.step_size_embed = nn.Sequential(
                nn.Linear(time_embedding_dim, width), nn.SiLU(), nn.Linear(width, width)
            )
        self.blocks = nn.ModuleList(CAMSamplerBlock(width) for _ in range(num_blocks))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_adaln_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.output_proj = nn.Linear(width, latent_dim)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier-uniform linear layers; zero AdaLN modulation and output, so every block starts
        as the identity."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for linear in self.time_embed:
            if isinstance(linear, nn.Linear):
                nn.init.normal_(linear.weight, std=0.02)
        if self.config.few_step_objective == "shortcut":
            nn.init.normal_(self.step_size_embed[0].weight, std=0.02)
            # Zero: until trained, every step size gives the flow velocity (the head it was
            # made from, unchanged).
            nn.init.zeros_(self.step_size_embed[-1].weight)
        for block in self.blocks:
            nn.init.zeros_(block.adaln_modulation[-1].weight)
            nn.init.zeros_(block.adaln_modulation[-1].bias)
        for layer in (self.final_adaln_modulation[-1], self.output_proj):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @classmethod
    def from_flow_head(cls, flow_head: "CAMSampler", **config_overrides) -> "CAMSampler":
        r"""
        A Sampler of another config initialised from a trained plain flow head, e.g. a shortcut head to
        fine-tune: `CAMSampler.from_flow_head(head, few_step_objective="shortcut", num_inference_steps=2)`.
        Every weight of `flow_head` is copied; weights it lacks (the step-size embedding) keep their
        initialisation, whose last layer is zero, so the new head computes exactly what `flow_head` did until
        it is trained.

        Args:
            flow_head ([`CAMSampler`]): a Sampler without a few-step objective.
            config_overrides: config fields to change; the network's sizes must stay those of `flow_head`.

        Returns:
            [`CAMSampler`]
        """
        if flow_head.config.few_step_objective is not None:
            raise ValueError(
                f"`flow_head` must be a plain flow head, got one with few_step_objective="
                f"{flow_head.config.few_step_objective!r}."
            )
        # Keyword overrides, not a merged dict: diffusers' `from_config` ignores dict fields it
        # lists as defaults.
        head = cls.from_config(flow_head.config, **config_overrides)
        shapes = {name: tuple(p.shape) for name, p in head.state_dict().items()}
        changed = [name for name, p in flow_head.state_dict().items() if shapes.get(name) != tuple(p.shape)]
        if changed:
            raise ValueError(
                f"{config_overrides} changes the network's shape ({changed[:3]}...): keep its sizes."
            )
        head.load_state_dict(flow_head.state_dict(), strict=False)
        return head

    def check_backbone_config(self, backbone_config) -> None:
        """Raises `ValueError` unless this Sampler fits a Backbone with `backbone_config` (a `CAMConfig`): the
        same latent size, and a condition size equal to the Backbone's `hidden_size`."""
        if self.config.latent_dim != backbone_config.latent_dim:
            raise ValueError(
                f"The Sampler's latent_dim ({self.config.latent_dim}) differs from the Backbone's "
                f"({backbone_config.latent_dim})."
            )
        if self.config.condition_dim != backbone_config.hidden_size:
            raise ValueError(
                f"The Sampler's condition_dim ({self.config.condition_dim}) must equal the Backbone's "
                f"hidden_size ({backbone_config.hidden_size})."
            )

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        condition: torch.Tensor,
        step_size: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""
        Args:
            sample (`torch.Tensor` of shape `(batch_size, latent_dim)`): the noisy frame x_s.
            timestep (`torch.Tensor` of shape `(batch_size,)` or a scalar): s * num_train_timesteps.
            condition (`torch.Tensor` of shape `(batch_size, condition_dim)`): the Backbone output z_t.
            step_size (`torch.Tensor` of shape `(batch_size,)` or a scalar, *optional*): for a shortcut head,
                the step d it is asked to jump, on the timestep's scale (d * num_train_timesteps); `None` or 0
                asks for the flow velocity. Ignored by a plain flow head.

        Returns:
            `torch.Tensor` of shape `(batch_size, latent_dim)`: the velocity v = noise - x0 (`"flow"`; for a
            shortcut head, the average velocity over the step) or the noise (`"epsilon"`).
        """
        if timestep.ndim == 0:
            timestep = timestep.expand(sample.shape[0])
        return self.forward_modulated(sample, self.modulations(timestep, condition, step_size))

    def modulations(
        self, timestep: torch.Tensor, condition: torch.Tensor, step_size: torch.Tensor | None = None
    ) -> list[tuple[torch.Tensor, ...]]:
        r"""
        The part of the forward pass that does not depend on the sample: the AdaLN modulation of every block
        and of the output layer, from the flow time, the condition (and a shortcut head's step size).

        It holds most of the Sampler's weights (the AdaLN layers alone are 3W^2 per block against the MLP's
        2W^2), so [`sample_next_frame`] computes it for all the steps of a frame in one batched pass, which
        reads those weights once per frame instead of once per step.

        Args:
            timestep (`torch.Tensor` of shape `(batch_size,)`): s * num_train_timesteps.
            condition (`torch.Tensor` of shape `(batch_size, condition_dim)`): the Backbone output z_t.
            step_size (`torch.Tensor` of shape `(batch_size,)` or a scalar, *optional*):
                d * num_train_timesteps.

        Returns:
            `list` of `(shift, scale, gate)` for each block, then `(shift, scale)` for the output layer, each
            of shape `(batch_size, width)`.
        """
        c = self.time_embedding(timestep, step_size) + self.condition_proj(condition)
        return self.modulations_from(c)

    def time_embedding(self, timestep: torch.Tensor, step_size: torch.Tensor | None = None) -> torch.Tensor:
        """The part of the AdaLN conditioning c that comes from the flow time (and a shortcut head's step
        size), of shape `(batch_size, width)`: c is this plus the projected condition. Generation computes it
        once per call ([`FrameSampler`]), as it does not depend on the Backbone."""
        dtype = self.time_embed[0].weight.dtype
        c = self.time_embed(timestep_embedding(timestep, self.config.time_embedding_dim).to(dtype))
        if self.config.few_step_objective == "shortcut":
            if step_size is None:
                step_size = torch.zeros_like(timestep)
            step_size = step_size.expand(timestep.shape[0]) if step_size.ndim == 0 else step_size
            c = c + self.step_size_embed(
                timestep_embedding(step_size, self.config.time_embedding_dim).to(dtype)
            )
        return c

    def modulations_from(self, c: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """`modulations` given the AdaLN conditioning c `(batch_size, width)` (time embedding
        plus projected condition)."""
        modulations = [tuple(block.adaln_modulation(c).chunk(3, dim=-1)) for block in self.blocks]
        modulations.append(tuple(self.final_adaln_modulation(c).chunk(2, dim=-1)))
        return modulations

    def shortcut_step_size(self, num_steps: int) -> float:
        """The step-size input d (in [0, 1]) of a uniform grid of `num_steps` steps: 1 / `num_steps`, or 0
        (the flow velocity) from the finest trained grid (`max_shortcut_steps`) on."""
        return 0.0 if num_steps >= self.config.max_shortcut_steps else 1.0 / num_steps

    def forward_modulated(
        self, sample: torch.Tensor, modulations: list[tuple[torch.Tensor, ...]]
    ) -> torch.Tensor:
        """The forward pass given `modulations(timestep, condition)`: the part that depends on the sample."""
        x = self.input_proj(sample)
        for block, (shift, scale, gate) in zip(self.blocks, modulations[:-1], strict=True):
            x = block.forward_modulated(x, shift, scale, gate)
        shift, scale = modulations[-1]
        return self.output_proj(modulate(self.final_norm(x), shift, scale))


def default_scheduler(sampler: CAMSampler) -> SchedulerMixin:
    """The scheduler a Sampler was trained for: flow-matching Euler for `"flow"`, DDIM on the training
    betas for `"epsilon"`."""
    if sampler.config.prediction_type == "flow":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=sampler.config.num_train_timesteps)
    return DDIMScheduler(
        num_train_timesteps=sampler.config.num_train_timesteps,
        prediction_type="epsilon",
        clip_sample=False,
        **EPSILON_BETA_SCHEDULE,
    )


__all__ = ["CAMSampler", "default_scheduler", "timestep_embedding"]
