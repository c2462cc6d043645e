"""The generation loop's parts: the Backbone's sliding window and the Sampler's per-frame draw.

`CAMPipeline.generate_frames` runs them frame by frame: [`SlidingWindow`] turns the frames fed back into the
Backbone's next conditioning vector z_t, and [`FrameSampler`] draws the next frame from z_t with the Sampler
and a diffusers scheduler. [`sample_next_frame`] is one such draw, for a single frame.
"""

import inspect
import math
import numbers

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .modeling_cam import CAMModel
from .sampler import CAMSampler, check_temperature

# `FrameSampler` computes the AdaLN modulations of all the steps of a frame at once up to this many rows
# (batch x steps): beyond it the batch alone reuses the weights well, and the precomputed tensors would cost
# memory for no speed.
MAX_PRECOMPUTED_ROWS = 1024


class SlidingWindow:
    r"""
    The Backbone's memory while generating frame by frame: the start vector, then the last frames as they
    were fed (inference noise included) at positions 1, 2, ..., with their KV cache. For a Backbone with a
    short context, the same frames clean (as the Sampler drew them, before the inference noise) beside them.

    Each new frame costs one cached Backbone step. When the next frame would not fit in the context, the
    window is rebuilt from the start vector and the last `context_frames - context_shift` frames, exactly as
    a training crop begins: one batched forward pass every `context_shift` frames, so the cost per frame
    stays flat however long the audio. The frames live in one buffer of `context_frames`: memory is bounded.

    Args:
        backbone ([`CAMModel`]): the Backbone.
        context_shift (`int`): frames dropped at each rebuild, in [1, context_frames - 1].
        noise_level (`torch.Tensor`, a scalar): k_inf, for a Backbone told its inputs' noise level.
        instrument_ids (`torch.LongTensor` of shape `(batch_size,)`, *optional*): each sequence's instrument,
            for a Backbone with instrument conditioning.
    """

    def __init__(
        self,
        backbone: CAMModel,
        context_shift: int,
        noise_level: torch.Tensor,
        instrument_ids: torch.LongTensor | None = None,
    ):
        self.backbone, self.context_shift, self.noise_level = backbone, context_shift, noise_level
        self.instrument_ids = instrument_ids
        self.context_frames = backbone.config.max_position_embeddings - 1
        self.reads_clean_frames = backbone.config.short_context_frames > 0
        self.frames, self.clean_frames, self.length, self.cache = None, None, 0, None

    def start(self, frames: torch.Tensor, clean_frames: torch.Tensor | None = None) -> torch.Tensor:
        """Fills the window behind the start vector with the last of `frames`
        `(batch_size, num_frames, latent_dim)` (a prompt as fed; `num_frames` may be 0) and returns the
        Backbone's output at the last position, z. `clean_frames` (same shape: the prompt before the inference
        noise) is required by a Backbone with a short context, and ignored by others."""
        batch_size, _, latent_dim = frames.shape
        kept = self.context_frames - self.context_shift
        self.frames = frames.new_empty(batch_size, self.context_frames, latent_dim)
        if self.reads_clean_frames:
            self._check_clean(frames, clean_frames)
            self.clean_frames = torch.empty_like(self.frames)
            clean_frames = clean_frames[:, -kept:]
        else:
            clean_frames = None
        return self._refill(frames[:, -kept:], clean_frames)

    def append(self, frame: torch.Tensor, clean_frame: torch.Tensor | None = None) -> torch.Tensor:
        """Feeds one frame `(batch_size, latent_dim)` (as fed: noise included) and returns the next z.
        `clean_frame` (same shape: the frame as drawn) is required by a Backbone with a short context; the
        Backbone checks it, so that a frame costs no check here."""
        if not self.reads_clean_frames:
            clean_frame = None
        if self.length == self.context_frames:
            start = self.length - (self.context_frames - self.context_shift - 1)
            frames = torch.cat([self.frames[:, start:], frame[:, None]], dim=1)
            if clean_frame is not None:
                clean_frame = torch.cat([self.clean_frames[:, start:], clean_frame[:, None]], dim=1)
            return self._refill(frames, clean_frame)
        self.frames[:, self.length] = frame
        if clean_frame is not None:
            self.clean_frames[:, self.length] = clean_frame
            clean_frame = clean_frame[:, None]
        self.length += 1
        return self._forward(frame[:, None], clean_frame, self.cache)

    def _refill(self, frames: torch.Tensor, clean_frames: torch.Tensor | None) -> torch.Tensor:
        self.frames[:, : frames.shape[1]] = frames
        if clean_frames is not None:
            self.clean_frames[:, : frames.shape[1]] = clean_frames
        self.length = frames.shape[1]
        return self._forward(frames, clean_frames, cache=None)

    def _forward(self, frames: torch.Tensor, clean_frames: torch.Tensor | None, cache) -> torch.Tensor:
        # The one place the Backbone runs while generating: conditioning inputs it may take go here.
        conditioned = self.backbone.config.condition_on_noise_level
        levels = self.noise_level.expand(frames.shape[:2]) if conditioned else None
        output = self.backbone(
            frames,
            cache=cache,
            use_cache=True,
            noise_level=levels,
            instrument_ids=self.instrument_ids,
            clean_latents=clean_frames,
        )
        self.cache = output.cache
        return output.last_hidden_state[:, -1]

    @staticmethod
    def _check_clean(frames: torch.Tensor, clean_frames: torch.Tensor | None) -> None:
        if clean_frames is None or clean_frames.shape != frames.shape:
            raise ValueError(
                "This Backbone has a short context: pass the clean frames (before the inference noise), of "
                f"the shape of the fed ones {tuple(frames.shape)}, got "
                f"{None if clean_frames is None else tuple(clean_frames.shape)}."
            )


def sample_next_frame(
    sampler: CAMSampler,
    scheduler: SchedulerMixin,
    condition: torch.Tensor,
    num_inference_steps: int,
    generator: torch.Generator | list[torch.Generator] | None = None,
    noise: torch.Tensor | None = None,
    unconditional_condition: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    temperature: float | None = None,
) -> torch.Tensor:
    r"""
    Draws one latent frame per conditioning vector by integrating the Sampler from noise to data with a
    diffusers scheduler: `FlowMatchEulerDiscreteScheduler` (or any flow-matching scheduler) for a `"flow"`
    Sampler, a DDPM/DDIM-family scheduler with `prediction_type="epsilon"` for an `"epsilon"` Sampler.

    A shortcut Sampler (`few_step_objective="shortcut"`) is integrated on the uniform grid it was trained on,
    N steps of size d = 1/N from s = 1 to 0, x <- x - d u(x, s, d), whatever `scheduler` is: its steps are
    jumps it learned, not samples of a continuous flow that another solver could take. (diffusers' N-step flow
    grid ends with a step of width 1/1000, so on it 2 steps would integrate like 1.)

    With `unconditional_condition`, each step applies classifier-free guidance: the Sampler runs on both
    conditions in one batch and its prediction becomes u + w (c - u) (w = `guidance_scale`; 1 gives the
    conditional prediction, 0 the unconditional one).

    This checks its arguments and prepares the steps at every call; a loop over frames builds one
    [`FrameSampler`] and calls it, as the pipeline does.

    Args:
        sampler ([`CAMSampler`]): the denoiser.
        scheduler ([`~diffusers.SchedulerMixin`]): the solver.
        condition (`torch.Tensor` of shape `(batch_size, condition_dim)`): the Backbone outputs z_t.
        num_inference_steps (`int`): number of solver steps.
        generator (`torch.Generator` or a list of `batch_size` of them, *optional*): for the starting noise
            and the noise of a stochastic scheduler's steps (a list draws each row from its own generator, so
            a row does not depend on the batch it is in).
        noise (`torch.Tensor` of shape `(batch_size, latent_dim)`, *optional*): the starting noise, instead of
            drawing it.
        unconditional_condition (`torch.Tensor` of shape `(batch_size, condition_dim)`, *optional*): the
            Backbone's outputs for the same frames without the condition ("no instrument"), for
            classifier-free guidance.
        guidance_scale (`float`, defaults to 1.0): the guidance weight w, used with `unconditional_condition`.
        temperature (`float`, *optional*): tau: the starting noise (drawn or given) is scaled by sqrt(tau).
            By default the Sampler's own (`sampler.config.temperature`).

    Returns:
        `torch.Tensor` of shape `(batch_size, latent_dim)`: the sampled frames x_{t+1}.
    """
    _check_sample_next_frame_inputs(sampler, condition, num_inference_steps, generator, noise)
    if unconditional_condition is not None and unconditional_condition.shape != condition.shape:
        raise ValueError(
            f"`unconditional_condition` must have the shape of `condition` {tuple(condition.shape)}, got "
            f"{tuple(unconditional_condition.shape)}."
        )
    draw = FrameSampler(
        sampler, scheduler, num_inference_steps, device=condition.device, temperature=temperature
    )
    return draw(condition, generator, noise, unconditional_condition, guidance_scale)


class FrameSampler:
    r"""
    [`sample_next_frame`] for every frame of a generation, on checked arguments: what is the same at every
    frame (the flow times and their embedding, the scheduler's set-up, what its `step` takes) is prepared
    once, here.

    A frame then costs the batched AdaLN modulations of its steps (one pass, see [`CAMSampler.modulations`])
    and the steps. For a shortcut head (its uniform grid) and for diffusers' deterministic
    `FlowMatchEulerDiscreteScheduler`, a step is the Euler step x <- x + (sigma_{i+1} - sigma_i) v, computed
    as that scheduler computes it, with the step sizes fixed for the call: the scheduler is not called per
    frame or per step. Any other scheduler is set up and stepped as diffusers does, at every frame (multistep
    solvers keep state across the steps of a frame).

    Args:
        sampler ([`CAMSampler`]): the denoiser.
        scheduler ([`~diffusers.SchedulerMixin`]): the solver (see [`sample_next_frame`]).
        num_inference_steps (`int`): steps per frame.
        device (`torch.device`, *optional*): where the frames are drawn; the Sampler's device by default.
        temperature (`float`, *optional*): tau, the starting noise's variance; the Sampler's own by default.
    """

    def __init__(
        self,
        sampler: CAMSampler,
        scheduler: SchedulerMixin,
        num_inference_steps: int,
        device: torch.device | None = None,
        temperature: float | None = None,
    ):
        self.sampler, self.scheduler, self.num_inference_steps = sampler, scheduler, num_inference_steps
        temperature = sampler.config.temperature if temperature is None else temperature
        check_temperature(temperature)
        self.noise_scale = math.sqrt(temperature)
        device = device if device is not None else sampler.device
        config, step_size, sigmas = sampler.config, None, None
        if config.few_step_objective == "shortcut":
            sigmas = torch.linspace(1.0, 0.0, num_inference_steps + 1, device=device, dtype=torch.float32)
            timesteps = sigmas[:-1] * config.num_train_timesteps
            step_size = torch.full_like(
                timesteps, sampler.shortcut_step_size(num_inference_steps) * config.num_train_timesteps
            )
        else:
            scheduler.set_timesteps(num_inference_steps, device=device)
            # The flow times stay float32 whatever the Sampler's dtype: in bfloat16, t = 937.5 would be 936.
            timesteps = scheduler.timesteps.to(device=device, dtype=torch.float32)
            plain_euler = type(scheduler) is FlowMatchEulerDiscreteScheduler
            if plain_euler and not scheduler.config.stochastic_sampling:
                sigmas = scheduler.sigmas.to(device=device, dtype=torch.float32)
        # The Euler steps' sizes sigma_{i+1} - sigma_i (float32, as diffusers computes them); None:
        # the scheduler steps.
        self.step_sizes = None if sigmas is None else list((sigmas[1:] - sigmas[:-1]).unbind())
        # The Sampler runs at every one of the scheduler's timesteps: Heun has two per step but the last.
        self.num_evaluations = timesteps.shape[0]
        with torch.no_grad():
            self.time_embedding = sampler.time_embedding(timesteps, step_size)
        # Flow-matching schedulers have no input scaling and start from unit noise; DDPM-family ones may.
        self.scale_input = getattr(scheduler, "scale_model_input", None)
        self.init_noise_sigma = getattr(scheduler, "init_noise_sigma", 1.0)
        # A stochastic scheduler draws its step noise with `randn_tensor`, which takes a list of generators
        # row by row.
        self.step_takes_generator = "generator" in inspect.signature(scheduler.step).parameters

    @torch.no_grad()
    def __call__(
        self,
        condition: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        noise: torch.Tensor | None = None,
        unconditional_condition: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
    ) -> torch.Tensor:
        """Draws the next frames `(batch_size, latent_dim)` given the Backbone outputs `condition`; the
        arguments are [`sample_next_frame`]'s."""
        sampler, guided = self.sampler, unconditional_condition is not None
        if noise is None:
            shape = (condition.shape[0], sampler.config.latent_dim)
            noise = randn_tensor(shape, generator=generator, device=condition.device, dtype=condition.dtype)
        if self.noise_scale != 1.0:
            noise = noise * self.noise_scale
        # Guidance runs both conditions as one batch of 2 x batch_size rows: the weights are read
        # once for both.
        conditions = torch.cat([condition, unconditional_condition]) if guided else condition
        steps = self._modulations(conditions)
        if self.step_sizes is None:
            self.scheduler.set_timesteps(self.num_inference_steps, device=condition.device)
            step_kwargs = {"generator": generator} if self.step_takes_generator else {}
            sample = noise * self.init_noise_sigma
        else:
            sample = noise
        for index in range(self.num_evaluations):
            model_input = sample
            if self.step_sizes is None and self.scale_input is not None:
                model_input = self.scale_input(sample, self.scheduler.timesteps[index])
            if guided:
                model_input = torch.cat([model_input, model_input])
            modulations = steps[index] if isinstance(steps, list) else steps(index)
            model_output = sampler.forward_modulated(model_input, modulations)
            if guided:
                conditional, unconditional = model_output.chunk(2)
                model_output = unconditional + guidance_scale * (conditional - unconditional)
            if self.step_sizes is None:
                timestep = self.scheduler.timesteps[index]
                sample = self.scheduler.step(model_output, timestep, sample, **step_kwargs).prev_sample
            else:
                # diffusers' Euler step without its bookkeeping: in float32, then back to the model's dtype.
                sample = (sample.float() + self.step_sizes[index] * model_output).to(model_output.dtype)
        return sample

    def _modulations(self, conditions: torch.Tensor):
        return frame_modulations(self.sampler, self.time_embedding, conditions)


def frame_modulations(sampler: CAMSampler, time_embedding: torch.Tensor, conditions: torch.Tensor):
    """Every step's AdaLN modulations for a frame, given the steps' `time_embedding` `(num_steps, width)` and
    the Backbone outputs `conditions` `(rows, condition_dim)`: a list with one entry per step, computed in one
    batched pass (rows step-major), so that their weights are read once per frame, not once per step; or, when
    that batch would be larger than `MAX_PRECOMPUTED_ROWS` (a large batch reuses the weights anyway), a
    function of the step."""
    projected = sampler.condition_proj(conditions)
    num_steps, rows = time_embedding.shape[0], conditions.shape[0]
    if num_steps * rows > MAX_PRECOMPUTED_ROWS:
        return lambda index: sampler.modulations_from(time_embedding[index] + projected)
    c = (time_embedding[:, None] + projected[None]).flatten(0, 1)
    batched = sampler.modulations_from(c)
    layers = [[m.view(num_steps, rows, -1).unbind() for m in layer] for layer in batched]
    return [[tuple(m[index] for m in layer) for layer in layers] for index in range(num_steps)]


def _check_sample_next_frame_inputs(sampler, condition, num_inference_steps, generator, noise) -> None:
    if not isinstance(num_inference_steps, numbers.Integral) or isinstance(num_inference_steps, bool):
        raise ValueError(f"`num_inference_steps` must be an integer, got {num_inference_steps!r}.")
    if num_inference_steps < 1:
        raise ValueError(f"`num_inference_steps` must be at least 1, got {num_inference_steps}.")
    if (
        not isinstance(condition, torch.Tensor)
        or condition.ndim != 2
        or condition.shape[1] != sampler.config.condition_dim
    ):
        shape = tuple(condition.shape) if isinstance(condition, torch.Tensor) else type(condition).__name__
        raise ValueError(
            f"`condition` must be a tensor of shape (batch_size, {sampler.config.condition_dim}) "
            f"(the Backbone's outputs z_t), got {shape}."
        )
    if isinstance(generator, list) and len(generator) != condition.shape[0]:
        raise ValueError(
            f"Got {len(generator)} generators for a batch of {condition.shape[0]}: "
            "pass one per row, or a single one."
        )
    shape = (condition.shape[0], sampler.config.latent_dim)
    if noise is not None and tuple(noise.shape) != shape:
        raise ValueError(f"`noise` must have shape {shape}, got {tuple(noise.shape)}.")


__all__ = ["FrameSampler", "SlidingWindow", "frame_modulations", "sample_next_frame"]
