"""`CAMPipeline`'s argument checks: its components, the prompt, every argument of a generation call (once,
with keywords, before any work), the instrument and guidance, what a callback returns, and undecoded output.

Each raises `ValueError` naming the argument, its value and the fix. The generic checks they build on are in
`cam_hf/utils/checks.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback

from .sampler import DEFAULT_NUM_INFERENCE_STEPS, check_temperature
from .utils.checks import check_audio, check_decode_chunking, check_sample_rate, is_integer, is_real

# Longer requests are almost certainly a unit mistake (samples or milliseconds for seconds).
MAX_AUDIO_LENGTH_IN_S = 3600.0
# Without an autoencoder there is no frame rate to turn that hour into frames: this rate is above
# every shipped codec's.
MAX_FRAME_RATE = 100.0
# Waveforms generated in one call; more is a unit mistake or would exhaust memory: generate in several calls.
MAX_BATCH_SIZE = 1024
# Classifier-free guidance weights beyond this only amplify the Sampler's errors.
MAX_GUIDANCE_SCALE = 20.0
# Flow steps per frame; diffusers' schedulers are trained on 1000 timesteps.
MAX_NUM_INFERENCE_STEPS = 1000
OUTPUT_TYPES = ("np", "pt", "latent")


def _shape_or_type(value) -> tuple | str:
    return tuple(value.shape) if isinstance(value, torch.Tensor | np.ndarray) else type(value).__name__


def check_num_waveforms_per_prompt(num_waveforms_per_prompt) -> None:
    if not is_integer(num_waveforms_per_prompt) or not 1 <= num_waveforms_per_prompt <= MAX_BATCH_SIZE:
        raise ValueError(
            f"`num_waveforms_per_prompt` must be an integer in [1, {MAX_BATCH_SIZE}], got "
            f"{num_waveforms_per_prompt!r}."
        )


def check_components(*, backbone, sampler, autoencoder) -> None:
    """Checks that a pipeline's components (any may be `None`) were made for the same latents."""
    if backbone is not None and autoencoder is not None:
        if backbone.config.latent_dim != autoencoder.latent_dim:
            raise ValueError(
                f"The autoencoder's latent_dim ({autoencoder.latent_dim}) differs from the Backbone's "
                f"({backbone.config.latent_dim}): they must be trained on the same latents."
            )
    if backbone is not None and sampler is not None:
        sampler.check_backbone_config(backbone.config)


def check_prompt(*, audio, sample_rate, prompt_latents, latent_dim: int, autoencoder) -> int | None:
    """
    Checks an audio prompt (`audio` at `sample_rate`) or an encoded one (`prompt_latents`), as `CAMPipeline`
    takes them.

    Args:
        latent_dim (`int`): the size of a latent frame (the Backbone's, or the autoencoder's without one).
        autoencoder: the pipeline's autoencoder (it encodes `audio`), or `None`.

    Returns:
        The prompt's batch size, or `None` without a prompt.
    """
    if audio is not None and prompt_latents is not None:
        raise ValueError("Pass either `audio` or `prompt_latents` as the prompt, not both.")
    if audio is None and sample_rate is not None:
        raise ValueError(
            f"`sample_rate` ({sample_rate!r}) is the rate of `audio`: pass it only with `audio`."
        )
    if prompt_latents is not None:
        _check_prompt_latents(prompt_latents, latent_dim)
        return prompt_latents.shape[0]
    if audio is None:
        return None
    if autoencoder is None:
        raise ValueError(
            "This pipeline has no autoencoder to encode `audio` with: pass `prompt_latents` instead."
        )
    is_list = isinstance(audio, list | tuple)
    waveforms = list(audio) if is_list else [audio]
    if not waveforms:
        raise ValueError("`audio` is an empty list: pass at least one waveform, or no prompt.")
    for waveform in waveforms:
        check_audio(waveform, name="audio")
        if not 1 <= waveform.ndim <= (2 if is_list else 3):
            raise ValueError(
                "`audio` must have shape (samples,), (channels, samples) or (batch_size, channels, samples) "
                f"(or be a list of (samples,) / (channels, samples) waveforms), got {tuple(waveform.shape)}."
            )
        if tuple(waveform.shape) != tuple(waveforms[0].shape):
            raise ValueError(
                f"The waveforms of `audio` have different shapes ({tuple(waveforms[0].shape)} and "
                f"{tuple(waveform.shape)}): crop them to one length, or generate for each separately."
            )
    if sample_rate is None:
        raise ValueError(
            "Pass the prompt's `sample_rate` with `audio` (this pipeline generates at "
            f"{autoencoder.sample_rate} Hz)."
        )
    check_sample_rate(sample_rate, name="`sample_rate`")
    shape = waveforms[0].shape
    autoencoder.check_audio_channels(shape[-2] if len(shape) >= 2 else 1)
    seconds = shape[-1] / sample_rate
    if seconds > MAX_AUDIO_LENGTH_IN_S:
        raise ValueError(
            f"`audio` lasts {seconds:.0f} s at sample_rate={sample_rate}, more than "
            f"{MAX_AUDIO_LENGTH_IN_S:.0f} s: pass its last seconds (the Backbone reads at most its context), "
            "or check `sample_rate`."
        )
    if math.ceil(shape[-1] * autoencoder.sample_rate / sample_rate) < autoencoder.min_audio_length:
        raise ValueError(
            f"`audio` has {shape[-1]} samples at {sample_rate} Hz, fewer than one latent frame "
            f"({autoencoder.min_audio_length} samples at {autoencoder.sample_rate} Hz): pass longer audio."
        )
    return len(waveforms) if is_list else (shape[0] if len(shape) == 3 else 1)


def _check_prompt_latents(prompt_latents, latent_dim: int) -> None:
    is_latents = isinstance(prompt_latents, torch.Tensor) and prompt_latents.ndim == 3
    if not is_latents or prompt_latents.shape[-1] != latent_dim:
        raise ValueError(
            f"`prompt_latents` must be a tensor of shape (batch_size, num_frames, {latent_dim}), got "
            f"{_shape_or_type(prompt_latents)}: encode audio with this pipeline's autoencoder "
            "(`encode_prompt`)."
        )
    if not prompt_latents.is_floating_point():
        raise ValueError(f"`prompt_latents` must be floating point, got {prompt_latents.dtype}.")
    if prompt_latents.shape[0] == 0 or prompt_latents.shape[1] == 0:
        raise ValueError(
            f"`prompt_latents` of shape {tuple(prompt_latents.shape)} holds zero frames: pass at least one "
            "frame, or no prompt."
        )
    if not torch.isfinite(prompt_latents).all():
        raise ValueError("`prompt_latents` contain NaN or inf values.")


@dataclass(frozen=True)
class GenerationInputs:
    r"""
    The arguments of one generation call, as [`check_generation_inputs`] returns them: checked once, with the
    defaults that come from the pipeline's components filled in. What `CAMPipeline.stream` does after its
    checks reads them from here. The fields are `stream`'s arguments (see `CAMPipeline.__call__`; a test keeps
    the two lists equal), then `num_waveforms`. Filled in:

    Args:
        num_frames (`int`): from `audio_length_in_s` (rounded up to whole frames) when it was not given.
        num_inference_steps (`int`): the Sampler's own (`sampler.config.num_inference_steps`) by default.
        inference_noise (`float`): the Backbone config's `inference_noise` by default.
        callback_on_step_end_tensor_inputs (`list[str]`): a `PipelineCallback`'s own, else `["latents"]` by
            default.
        context_shift (`int`): half the Backbone's context by default.
        temperature (`float`): the Sampler's own (`sampler.config.temperature`) by default.
        num_waveforms (`int`): the waveforms the call generates: prompts (or `batch_size`, 1 by default) times
            `num_waveforms_per_prompt`.
    """

    audio: torch.Tensor | np.ndarray | list | None
    sample_rate: int | None
    prompt_latents: torch.Tensor | None
    audio_length_in_s: float | None
    num_frames: int
    num_inference_steps: int
    inference_noise: float
    batch_size: int | None
    num_waveforms_per_prompt: int
    generator: torch.Generator | list[torch.Generator] | None
    output_type: str
    callback_on_step_end: Callable | None
    callback_on_step_end_tensor_inputs: list[str]
    context_shift: int
    decode_chunk_frames: int
    decode_context_frames: int
    decode_first_chunk_frames: int
    instrument: str | int | list[str | int] | None
    guidance_scale: float
    temperature: float
    num_waveforms: int | None = None


def check_generation_inputs(pipeline, **arguments) -> GenerationInputs:
    """
    Checks every argument of `CAMPipeline.__call__` and `stream` (type and range) against `pipeline`'s
    components, before any work, and fills in the defaults that come from them.

    Args:
        pipeline ([`CAMPipeline`]): the pipeline that generates.
        arguments: `stream`'s arguments, by name (see `CAMPipeline.__call__`).

    Returns:
        [`GenerationInputs`]: the arguments, checked, with their defaults filled in.

    Raises:
        `ValueError`: naming the first bad argument, its value, and the fix.
    """
    inputs = GenerationInputs(**arguments)
    for name in ("backbone", "sampler", "scheduler"):
        if getattr(pipeline, name, None) is None:
            raise ValueError(f"This pipeline has no {name}: build it with one to generate.")
    autoencoder, config = pipeline.autoencoder, pipeline.backbone.config
    seconds, num_frames = inputs.audio_length_in_s, inputs.num_frames
    needs_autoencoder = inputs.audio is not None or seconds is not None or inputs.output_type != "latent"
    if autoencoder is None and needs_autoencoder:
        raise ValueError(
            "This pipeline has no autoencoder: generate latents (`output_type='latent'`, `num_frames=...`, "
            "`prompt_latents` as the prompt), or build it with an autoencoder."
        )
    prompt_batch = check_prompt(
        audio=inputs.audio,
        sample_rate=inputs.sample_rate,
        prompt_latents=inputs.prompt_latents,
        latent_dim=config.latent_dim,
        autoencoder=autoencoder,
    )
    if (seconds is None) == (num_frames is None):
        raise ValueError(
            f"Pass exactly one of `audio_length_in_s` and `num_frames`, got {seconds!r} and {num_frames!r}."
        )
    if seconds is not None and not (is_real(seconds) and 0 < seconds <= MAX_AUDIO_LENGTH_IN_S):
        raise ValueError(
            f"`audio_length_in_s` must be a number of seconds in (0, {MAX_AUDIO_LENGTH_IN_S:.0f}], got "
            f"{seconds!r}: pass seconds (not samples or milliseconds), e.g. 10.0."
        )
    max_num_frames = pipeline.max_num_frames
    if num_frames is not None and not (is_integer(num_frames) and 1 <= num_frames <= max_num_frames):
        raise ValueError(
            f"`num_frames` must be an integer in [1, {max_num_frames}] ({MAX_AUDIO_LENGTH_IN_S:.0f} s), got "
            f"{num_frames!r}."
        )
    steps = inputs.num_inference_steps
    if steps is None:
        steps = pipeline.sampler.config.get("num_inference_steps", DEFAULT_NUM_INFERENCE_STEPS)
    if not is_integer(steps) or not 1 <= steps <= MAX_NUM_INFERENCE_STEPS:
        raise ValueError(
            f"`num_inference_steps` must be an integer in [1, {MAX_NUM_INFERENCE_STEPS}] (Sampler steps per "
            f"frame), got {steps!r}: pass e.g. 16, or None for the Sampler's default."
        )
    noise = inputs.inference_noise
    if noise is not None and not (is_real(noise) and 0.0 <= noise <= 1.0):
        raise ValueError(
            f"`inference_noise` (k_inf) must be a number in [0, 1], got {noise!r}: pass e.g. 0.02, or None "
            "for the Backbone config's."
        )
    num_waveforms = _check_batch(
        inputs.batch_size, inputs.num_waveforms_per_prompt, prompt_batch, inputs.generator
    )
    if not isinstance(inputs.output_type, str) or inputs.output_type not in OUTPUT_TYPES:
        raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {inputs.output_type!r}.")
    callback, tensor_inputs = inputs.callback_on_step_end, inputs.callback_on_step_end_tensor_inputs
    if callback is not None and not callable(callback):
        raise ValueError(
            "`callback_on_step_end` must be callable as `(pipe, frame_index, frame_index, "
            f"callback_kwargs)`, got {type(callback).__name__}."
        )
    if isinstance(callback, PipelineCallback | MultiPipelineCallbacks):
        tensor_inputs = callback.tensor_inputs
    if tensor_inputs is None:
        tensor_inputs = ["latents"]
    allowed = pipeline._callback_tensor_inputs
    if not isinstance(tensor_inputs, list | tuple) or not all(
        isinstance(name, str) and name in allowed for name in tensor_inputs
    ):
        raise ValueError(
            f"`callback_on_step_end_tensor_inputs` must be a list among {allowed}, got {tensor_inputs!r}."
        )
    context_frames, context_shift = pipeline.context_frames, inputs.context_shift
    if context_shift is not None and not (is_integer(context_shift) and 1 <= context_shift < context_frames):
        raise ValueError(
            f"`context_shift` must be an integer in [1, {context_frames - 1}] (frames dropped from the "
            f"Backbone's {context_frames}-frame window when it is full), got {context_shift!r}: pass e.g. "
            f"{max(1, context_frames // 2)}, or None for half the context."
        )
    check_decode_chunking(
        inputs.decode_chunk_frames, inputs.decode_context_frames, inputs.decode_first_chunk_frames
    )
    check_instrument(
        instrument=inputs.instrument,
        guidance_scale=inputs.guidance_scale,
        num_waveforms=num_waveforms,
        backbone_config=config,
    )
    temperature = inputs.temperature
    if temperature is None:
        temperature = pipeline.sampler.config.get("temperature", 1.0)
    check_temperature(temperature)
    return replace(
        inputs,
        temperature=temperature,
        num_frames=num_frames if num_frames is not None else max(1, math.ceil(seconds * pipeline.frame_rate)),
        num_inference_steps=steps,
        inference_noise=noise if noise is not None else config.inference_noise,
        callback_on_step_end_tensor_inputs=tensor_inputs,
        context_shift=context_shift if context_shift is not None else max(1, context_frames // 2),
        num_waveforms=num_waveforms,
    )


def _check_batch(batch_size, num_waveforms_per_prompt, prompt_batch: int | None, generator) -> int:
    """Checks the batch arguments; returns the number of waveforms of the call."""
    if batch_size is not None and not (is_integer(batch_size) and 1 <= batch_size <= MAX_BATCH_SIZE):
        raise ValueError(
            f"`batch_size` must be an integer in [1, {MAX_BATCH_SIZE}] (waveforms without a prompt), got "
            f"{batch_size!r}."
        )
    if batch_size is not None and prompt_batch is not None and batch_size != prompt_batch:
        raise ValueError(
            f"`batch_size` ({batch_size}) differs from the prompt's batch ({prompt_batch}): leave it out "
            "with a prompt, and use `num_waveforms_per_prompt` for several waveforms per prompt."
        )
    check_num_waveforms_per_prompt(num_waveforms_per_prompt)
    prompts = prompt_batch or batch_size or 1
    total = prompts * num_waveforms_per_prompt
    if total > MAX_BATCH_SIZE:
        raise ValueError(
            f"{total} waveforms in one call ({prompts} x {num_waveforms_per_prompt} per prompt) exceed "
            f"{MAX_BATCH_SIZE}: generate them in several calls."
        )
    if isinstance(generator, list):
        if len(generator) != total or not all(isinstance(g, torch.Generator) for g in generator):
            raise ValueError(
                f"Got a list of {len(generator)} generators for {total} waveforms ({prompts} x "
                f"{num_waveforms_per_prompt} per prompt): pass one torch.Generator per waveform, or a single "
                "one."
            )
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(
            f"`generator` must be a torch.Generator or a list of them, got {type(generator).__name__}: pass "
            "e.g. `torch.Generator().manual_seed(0)`."
        )
    return total


def check_instrument(*, instrument, guidance_scale, num_waveforms: int, backbone_config) -> None:
    """Checks the instrument (a name or id, or one per waveform) and the guidance weight that goes with it."""
    if not is_real(guidance_scale) or not 0.0 <= guidance_scale <= MAX_GUIDANCE_SCALE:
        raise ValueError(
            f"`guidance_scale` must be a number in [0, {MAX_GUIDANCE_SCALE:.0f}], got {guidance_scale!r}: "
            "pass 1.0 for no guidance, or e.g. 3.0."
        )
    if instrument is None:
        if guidance_scale != 1.0:
            raise ValueError(
                f"`guidance_scale={guidance_scale}` guides towards an instrument: pass `instrument` too, or "
                "leave `guidance_scale` at 1.0."
            )
        return
    instruments = list(instrument) if isinstance(instrument, list | tuple) else [instrument]
    if isinstance(instrument, list | tuple) and len(instruments) != num_waveforms:
        raise ValueError(
            f"Got a list of {len(instruments)} instruments for {num_waveforms} waveforms: pass one per "
            "waveform, or a single instrument for all."
        )
    for name in instruments:
        if not isinstance(name, str) and not is_integer(name):
            raise ValueError(f"`instrument` must be a name or an id (or a list of them), got {name!r}.")
        backbone_config.instrument_id(name if isinstance(name, str) else int(name))


def check_callback_outputs(outputs, latents: torch.Tensor, index: int) -> torch.Tensor:
    """
    Checks what `callback_on_step_end` returned after frame `index`, where it was given the new frame
    `latents` `(batch_size, 1, latent_dim)`; returns the frame it leaves: `latents` itself, or its
    replacement.
    """
    if not isinstance(outputs, dict):
        raise ValueError(
            f"`callback_on_step_end` must return a dict (e.g. the `callback_kwargs` it was given), got "
            f"{type(outputs).__name__}."
        )
    replaced = outputs.pop("latents", latents)
    if replaced is latents:
        return latents
    if not isinstance(replaced, torch.Tensor) or replaced.shape != latents.shape:
        raise ValueError(
            f"`callback_on_step_end` returned `latents` of shape {_shape_or_type(replaced)}; it may replace "
            f"only the new frame, shape {tuple(latents.shape)} (the earlier frames were already fed back and "
            "yielded)."
        )
    if not torch.isfinite(replaced).all():
        raise ValueError(
            f"`callback_on_step_end` returned `latents` with NaN or inf values at frame {index}."
        )
    return replaced


def check_generated_latents(latents: torch.Tensor) -> torch.Tensor:
    """Returns generated `latents` unchanged, or raises `ValueError` if they hold NaN or inf values."""
    if not torch.isfinite(latents).all():
        raise ValueError(
            "The generated latents hold NaN or inf values: the Sampler diverged (in low precision, generate "
            "in float32)."
        )
    return latents


__all__ = [
    "GenerationInputs",
    "MAX_AUDIO_LENGTH_IN_S",
    "MAX_BATCH_SIZE",
    "MAX_FRAME_RATE",
    "MAX_GUIDANCE_SCALE",
    "MAX_NUM_INFERENCE_STEPS",
    "OUTPUT_TYPES",
    "check_callback_outputs",
    "check_components",
    "check_generated_latents",
    "check_generation_inputs",
    "check_instrument",
    "check_num_waveforms_per_prompt",
    "check_prompt",
]
