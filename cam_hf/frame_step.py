"""One frame of generation as one call with static shapes, so that `torch.compile` can make it one graph.

A frame of the eager loop is ~200 small PyTorch calls (the Backbone's cached step through transformers'
cache and mask code, then the Sampler's steps), and at batch 1 on a CPU their per-call cost, not their
arithmetic, is the frame's cost. [`StaticFrameStep`] computes the same frame with every shape fixed for the
whole generation: the Backbone's keys and values live in buffers of the context's length ([`CAMStaticCache`]),
written in place at a position held as a tensor, and the Sampler's steps are unrolled. `CAMPipeline` compiles
it once per (batch size, steps, guidance) when asked to (`CAMPipeline.enable_compiled_frame_step`).

This module imports no compiler: `torch.compile` is only called by the pipeline, when the switch is on.
"""

import os
import shutil
import sys
from itertools import chain

import torch
from diffusers.utils import logging
from torch import nn

from .generation import FrameSampler, SlidingWindow, frame_modulations
from .modeling_cam import CAMCache, CAMModel, mix_noise
from .sampler import CAMSampler

logger = logging.get_logger(__name__)

# Inductor's options for the CPU step, measured best (docs/performance.md): the C++ wrapper calls the kernels
# without Python between them, and freezing folds the weights into the compiled code (prepacked for oneDNN).
# Freezing is why the compiled steps are dropped when a weight changes (see `_frame_loop`).
CPU_COMPILE_OPTIONS = {"cpp_wrapper": True, "freezing": True}


class CAMStaticCache(nn.Module):
    r"""
    The Backbone's keys and values in buffers of `max_position_embeddings` positions, written in place at
    `position` (a tensor, so that a compiled step reads it without recompiling); with a short context, the
    last K - 1 clean frames beside them, shifted in place.

    transformers' `StaticCache` holds the same buffers, but it fits worse here: it keeps one length counter
    per layer (a step would bump four where one position serves all), it carries nothing for the short
    context's clean frames (a subclass would), and its set-up API has moved between the transformers versions
    cam_hf supports. The cache is filled by copying an eager [`CAMCache`] after each window rebuild (`load`),
    which this class does in a few lines.

    Args:
        config ([`CAMConfig`]): the Backbone's config.
        batch_size (`int`): rows of the Backbone (twice the waveforms with classifier-free guidance).
        dtype (`torch.dtype`), device (`torch.device`): the Backbone's.
    """

    def __init__(self, config, batch_size: int, dtype: torch.dtype, device: torch.device):
        super().__init__()
        shape = (
            config.num_hidden_layers,
            batch_size,
            config.num_key_value_heads,
            config.max_position_embeddings,
            config.head_dim,
        )
        # Zeros: positions beyond `position` are masked, but a stale NaN would still poison the attention.
        self.register_buffer("keys", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("values", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("position", torch.zeros((), dtype=torch.long, device=device), persistent=False)
        history = None
        if config.short_context_frames:
            history = torch.zeros(
                batch_size, config.short_context_frames - 1, config.latent_dim, dtype=dtype, device=device
            )
        self.register_buffer("short_context_history", history, persistent=False)

    def load(self, cache: CAMCache) -> None:
        """Copies an eager cache (a window just rebuilt) in; the next frame goes at the position after it."""
        length = cache.get_seq_length()
        for index, layer in enumerate(cache.layers):
            self.keys[index, :, :, :length] = layer.keys
            self.values[index, :, :, :length] = layer.values
        self.position.fill_(length)
        if self.short_context_history is not None:
            self.short_context_history.copy_(cache.short_context_history)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Writes one position's keys and values `(batch_size, num_key_value_heads, 1, head_dim)` and returns
        the layer's whole buffers, as a transformers cache's `update` does."""
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys.index_copy_(2, self.position[None], key_states)
        values.index_copy_(2, self.position[None], value_states)
        return keys, values

    def attention_mask(self) -> torch.Tensor:
        """`(1, 1, 1, max_position_embeddings)`: True up to `position`, the query's own position included."""
        positions = torch.arange(self.keys.shape[-2], device=self.position.device)
        return (positions <= self.position)[None, None, None]


class StaticFrameStep(nn.Module):
    r"""
    One frame of `CAMPipeline`'s loop with static shapes: feeds the last frame to the Backbone (mixed with the
    inference noise) and draws the next one with the Sampler, exactly as [`SlidingWindow.append`] and
    [`FrameSampler`] (its fixed-step path: a shortcut head, or diffusers' deterministic
    `FlowMatchEulerDiscreteScheduler`) compute them, with classifier-free guidance when `guided`.

    The window's rebuild every `context_shift` frames stays an eager batched pass ([`SlidingWindow`]); `load`
    then copies its cache in. What is the same for every frame of a call (the noise level, the instruments,
    the flow times' embedding, the step sizes, the guidance weight, the temperature) is an argument
    (`settings`), not a buffer: Inductor's `freezing` bakes unmutated buffers into the compiled code, and one
    compiled step serves every call of its shape.

    Args:
        backbone ([`CAMModel`]): the Backbone, in eval mode.
        sampler ([`CAMSampler`]): the Sampler, in eval mode.
        batch_size (`int`): waveforms per call.
        num_inference_steps (`int`): Sampler steps per frame.
        guided (`bool`): classifier-free guidance (the Backbone runs twice the rows: conditional, then
            unconditional).
    """

    def __init__(
        self, backbone: CAMModel, sampler: CAMSampler, batch_size: int, num_inference_steps: int, guided: bool
    ):
        super().__init__()
        self.backbone, self.sampler, self.guided = backbone, sampler, guided
        config, device, dtype = backbone.config, backbone.device, backbone.dtype
        self.rows, self.num_inference_steps = 2 * batch_size if guided else batch_size, num_inference_steps
        self.cache = CAMStaticCache(config, self.rows, dtype, device)

    def settings(
        self,
        draw: FrameSampler,
        noise_level: torch.Tensor,
        instrument_ids: torch.LongTensor | None,
        guidance_scale: float,
    ) -> dict[str, torch.Tensor]:
        """What is the same for every frame of a call, as `forward` takes it: `draw`'s flow times, step sizes
        and temperature, the inference noise level k_inf (a scalar tensor), the rows' instruments (`None`: "no
        instrument") and the guidance weight."""
        device = noise_level.device
        if instrument_ids is None:
            no_instrument = self.backbone.config.no_instrument_id
            instrument_ids = torch.full((self.rows,), no_instrument, dtype=torch.long, device=device)
        return {
            "noise_level": noise_level,
            "instrument_ids": instrument_ids,
            "time_embedding": draw.time_embedding,
            "step_sizes": torch.stack(draw.step_sizes),
            "guidance_scale": torch.tensor(guidance_scale, dtype=torch.float32, device=device),
            "noise_scale": torch.tensor(draw.noise_scale, dtype=torch.float32, device=device),
        }

    def load(self, window: SlidingWindow) -> None:
        """Takes over `window`'s state after it was (re)built by an eager pass."""
        self.cache.load(window.cache)

    def forward(
        self,
        frame: torch.Tensor,
        feed_noise: torch.Tensor,
        start_noise: torch.Tensor,
        settings: dict[str, torch.Tensor],
        frames: torch.Tensor,
        clean_frames: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""
        Args:
            frame (`torch.Tensor` of shape `(batch_size, latent_dim)`): the last frame drawn.
            feed_noise (`torch.Tensor` of the shape of `frame`): the noise mixed into it before it is fed.
            start_noise (`torch.Tensor` of the shape of `frame`): the noise the next frame's flow starts from
                (before the temperature's scaling).
            settings (`dict[str, torch.Tensor]`): the call's, from `settings`.
            frames (`torch.Tensor` of shape `(rows, context_frames, latent_dim)`): the window's frames as fed
                ([`SlidingWindow`]`.frames`); the fed frame is written at its index, for the next rebuild.
            clean_frames (`torch.Tensor`, *optional*): the same for the frames as drawn, for a Backbone with a
                short context.

        Returns:
            `torch.Tensor` of shape `(batch_size, latent_dim)`: the next frame.
        """
        condition = self._backbone_step(frame, feed_noise, settings, frames, clean_frames)
        return self._sample(condition, start_noise, settings)

    def _backbone_step(self, frame, feed_noise, settings, frames, clean_frames) -> torch.Tensor:
        """`SlidingWindow.append` on the static cache: z for the fed frame, `(rows, hidden_size)`."""
        backbone, cache, config = self.backbone, self.cache, self.backbone.config
        noise_level = settings["noise_level"]
        fed = mix_noise(frame, feed_noise, noise_level, config.noise_mixing)
        if self.guided:  # both halves of the window read the same frames
            fed, frame = torch.cat([fed, fed]), torch.cat([frame, frame])
        index = cache.position[None] - 1  # the start vector is position 0
        frames.index_copy_(1, index, fed[:, None])
        levels = noise_level.expand(fed.shape[0], 1) if config.condition_on_noise_level else None
        instrument_ids = settings["instrument_ids"]
        hidden_states = backbone.embed(fed[:, None], levels, instrument_ids, starts_sequence=False)
        position_embeddings = backbone.rotary_emb(hidden_states, cache.position[None, None])
        mask = cache.attention_mask()
        for layer in backbone.layers:
            hidden_states = layer(hidden_states, position_embeddings, mask, cache)
        hidden_states = backbone.norm(hidden_states)
        if backbone.short_context is not None:
            clean_frames.index_copy_(1, index, frame[:, None])
            history = cache.short_context_history
            window = torch.cat([history, frame[:, None].to(history.dtype)], dim=1)
            history.copy_(window[:, 1:])
            hidden_states = hidden_states + backbone.short_context(window)
        cache.position.add_(1)
        return hidden_states[:, -1]

    def _sample(self, condition: torch.Tensor, noise: torch.Tensor, settings) -> torch.Tensor:
        """`FrameSampler.__call__`'s fixed-step path, unrolled: the next frames `(batch_size, latent_dim)`."""
        sampler, sample = self.sampler, noise * settings["noise_scale"]
        steps = frame_modulations(sampler, settings["time_embedding"], condition)
        step_sizes, guidance_scale = settings["step_sizes"], settings["guidance_scale"]
        for index in range(self.num_inference_steps):
            model_input = torch.cat([sample, sample]) if self.guided else sample
            modulations = steps[index] if isinstance(steps, list) else steps(index)
            model_output = sampler.forward_modulated(model_input, modulations)
            if self.guided:
                conditional, unconditional = model_output.chunk(2)
                model_output = unconditional + guidance_scale * (conditional - unconditional)
            sample = (sample.float() + step_sizes[index] * model_output).to(model_output.dtype)
        return sample


class StaticFrameLoop:
    r"""
    A generation call's use of a (compiled) [`StaticFrameStep`]: the state it keeps in step with the call's
    [`SlidingWindow`], and the fallback to the eager loop when compiling fails.

    Args:
        step ([`StaticFrameStep`]): the step.
        function (`Callable`): `step` compiled (or `step` itself).
        settings (`dict[str, torch.Tensor]`): the call's (`StaticFrameStep.settings`).
        window ([`SlidingWindow`]): the call's window, just started.
        on_failure (`Callable[[Exception], None]`): called once if `function` raises at its first call.
    """

    def __init__(self, step: StaticFrameStep, function, settings: dict, window: SlidingWindow, on_failure):
        self.step, self.function, self.settings = step, function, settings
        self.window, self.on_failure, self.tried = window, on_failure, False
        self.guidance_scale = settings["guidance_scale"].item()
        step.load(window)

    def __call__(
        self, frame: torch.Tensor, feed_noise: torch.Tensor, start_noise: torch.Tensor, guidance_scale: float
    ) -> torch.Tensor | None:
        """The next frame, or `None` when this frame must run eagerly: the window is full (its rebuild is an
        eager pass: call `load` after it), or the step could not be compiled (then never again)."""
        window = self.window
        if self.function is None or window.length == window.context_frames:
            return None
        if guidance_scale != self.guidance_scale:  # `pipe._guidance_scale` changed between two frames
            self.settings["guidance_scale"].fill_(guidance_scale)
            self.guidance_scale = guidance_scale
        arguments = (frame, feed_noise, start_noise, self.settings, window.frames, window.clean_frames)
        if self.tried:
            frame = self.function(*arguments)
        else:
            # The first call compiles. Until a step has run, the eager window's cache is intact: on failure
            # the loop goes on eagerly from it.
            self.tried = True
            try:
                frame = self.function(*arguments)
            except Exception as error:  # noqa: BLE001 - whatever the compiler raises, generation goes on
                self.function = None
                self.on_failure(error)
                return None
        window.length += 1
        return frame

    def load(self, window: SlidingWindow) -> None:
        """After the window's eager rebuild."""
        if self.function is not None:
            self.step.load(window)


class CompiledFrameStepMixin:
    r"""
    The switch of `CAMPipeline`'s compiled frame step: `pipe.enable_compiled_frame_step()` makes each frame
    (the Backbone's cached step and the Sampler's steps) one call of a [`StaticFrameStep`] compiled with
    `torch.compile(fullgraph=True, dynamic=False)`, once per (batch size, steps per frame, guidance) and per
    pipeline; `pipe.disable_compiled_frame_step()` goes back to the eager loop (the default).

    Where the compiled step cannot serve a call, the call runs the eager loop and the reason is logged once
    (at info level): a callback (it may replace frames), a scheduler other than diffusers' deterministic
    `FlowMatchEulerDiscreteScheduler` with a Sampler that is not a shortcut head, a device other than CPU or
    CUDA, no C++ compiler on a CPU, a component in training mode or under offloading hooks, or compilation
    itself failing.
    """

    def enable_compiled_frame_step(self, compile: bool = True, **compile_kwargs) -> None:
        r"""
        Runs each frame of generation as one compiled call (see [`StaticFrameStep`]). The first call of each
        (batch size, steps per frame, guidance) compiles: 20 s to 2 min on a 2-core CPU (less when Inductor's
        on-disk cache already holds the graph); the frames after it cost about half of eager ones
        (docs/performance.md). Worth it for a process that generates much (a server, long renders); a single
        short request is faster eagerly, which is why this is off by default. A change to the weights (in
        place or by replacing a component) drops the compiled steps: the next call compiles again.

        Args:
            compile (`bool`, defaults to `True`): `False` runs the static step without compiling it (for
                tests and comparisons).
            compile_kwargs: passed to `torch.compile` after `fullgraph=True, dynamic=False`; on CPU, by
                default `options=CPU_COMPILE_OPTIONS` (Inductor's C++ wrapper and freezing).
        """
        settings = dict(compile=compile, compile_kwargs=compile_kwargs)
        # Steps compiled with other settings are dropped; those of the same are kept across a disable.
        if settings != getattr(self, "_frame_steps_compiled_with", None):
            self._frame_steps, self._frame_steps_compiled_with = {}, settings
        self._frame_step_settings = settings

    def disable_compiled_frame_step(self) -> None:
        """Back to the eager loop. The compiled steps are kept for `enable_compiled_frame_step` with the same
        arguments."""
        self._frame_step_settings = None

    def _frame_loop(
        self,
        inputs,
        draw: FrameSampler,
        window: SlidingWindow,
        noise_level: torch.Tensor,
        instrument_ids: torch.LongTensor | None,
        guided: bool,
    ) -> StaticFrameLoop | None:
        """The call's [`StaticFrameLoop`], or `None` for the eager loop (switched off, or a reason logged)."""
        settings = getattr(self, "_frame_step_settings", None)
        if settings is None:
            return None
        reason = self._why_not_static(inputs, draw)
        if reason is not None:
            self._log_once(f"The frames of this call run eagerly: {reason}.")
            return None
        key = (inputs.num_waveforms, inputs.num_inference_steps, guided)
        # Steps made for other components or weights (frozen into the compiled code), or on another device
        # or dtype, are dropped. A weight changed in place bumps its version.
        parameters = chain(self.backbone.parameters(), self.sampler.parameters())
        weights = tuple((id(parameter), parameter._version) for parameter in parameters)
        owner = (self.backbone, self.sampler, self.backbone.device, self.backbone.dtype, weights)
        if getattr(self, "_frame_steps_owner", None) != owner:
            self._frame_steps, self._frame_steps_owner = {}, owner
        if key not in self._frame_steps:
            step = StaticFrameStep(self.backbone, self.sampler, *key)
            function = step
            if settings["compile"]:
                compile_kwargs = dict(settings["compile_kwargs"])
                if self.backbone.device.type == "cpu":
                    compile_kwargs.setdefault("options", CPU_COMPILE_OPTIONS)
                function = torch.compile(step, fullgraph=True, dynamic=False, **compile_kwargs)
            self._frame_steps[key] = (step, function)
        step, function = self._frame_steps[key]
        if function is None:  # it failed to compile before
            return None
        settings = step.settings(draw, noise_level, instrument_ids, self.guidance_scale)

        def on_failure(error: Exception) -> None:
            self._frame_steps[key] = (step, None)
            self._log_once(f"Compiling the frame step failed ({type(error).__name__}: {error}); eager loop.")

        return StaticFrameLoop(step, function, settings, window, on_failure)

    def _why_not_static(self, inputs, draw: FrameSampler) -> str | None:
        device = self.backbone.device
        if inputs.callback_on_step_end is not None:
            return "a callback may replace frames or change the guidance between them"
        if draw.step_sizes is None:
            return (
                f"{type(self.scheduler).__name__} is stepped by diffusers (the compiled step takes fixed "
                "Euler steps: a shortcut head, or a deterministic FlowMatchEulerDiscreteScheduler)"
            )
        if device.type not in ("cpu", "cuda") or self.sampler.device != device:
            return f"the compiled step runs on CPU or CUDA, not {device} / {self.sampler.device}"
        if self._frame_step_settings["compile"] and device.type == "cpu" and not _has_cpp_compiler():
            return "no C++ compiler was found for torch.compile on CPU (set CXX)"
        for name in ("backbone", "sampler"):
            module = getattr(self, name)
            if module.training:
                return f"the {name} is in training mode (call `.eval()`)"
            if any(hasattr(m, "_hf_hook") for m in module.modules()):
                return f"the {name} has offloading hooks"
        return None

    def _log_once(self, message: str) -> None:
        logged = self.__dict__.setdefault("_frame_step_messages", set())
        if message not in logged:
            logged.add(message)
            logger.info(message)


def _has_cpp_compiler() -> bool:
    """Whether the C++ compiler Inductor uses on CPU (`CXX`, else its default) is on the path."""
    return shutil.which(os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")) is not None


__all__ = [
    "CPU_COMPILE_OPTIONS",
    "CAMStaticCache",
    "CompiledFrameStepMixin",
    "StaticFrameLoop",
    "StaticFrameStep",
]
