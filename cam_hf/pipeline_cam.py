"""CAMPipeline: audio generation with a Continuous Autoregressive Model (Pasini et al., arXiv 2411.18447).

    audio prompt --autoencoder.encode--> prompt latents
    for each new frame:  z_t = Backbone.step(input_t)              (KV cache: the same cost at every position)
                         x_{t+1} = Sampler's flow, noise -> data   (a diffusers scheduler, num_inference_steps)
                         input_{t+1} = (1 - k_inf) x_{t+1} + k_inf eps
    latents --autoencoder.decode_stream (in chunks, as they come)--> audio
"""

import math
import numbers
import os
import tempfile
from collections.abc import Callable, Iterator

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from huggingface_hub import ModelCard

from . import hub_utils
from .autoencoders.base import (
    DEFAULT_DECODE_CHUNK_FRAMES,
    DEFAULT_DECODE_CONTEXT_FRAMES,
    AudioAutoencoderMixin,
    check_audio,
    check_decode_chunking,
    check_sample_rate,
    is_integer,
)
from .modeling_cam import CAMModel, mix_noise
from .sampler import DEFAULT_NUM_INFERENCE_STEPS, CAMSampler, sample_next_frame

# Longer requests are almost certainly a unit mistake (samples or milliseconds for seconds).
MAX_AUDIO_LENGTH_IN_S = 3600.0
# Without an autoencoder there is no frame rate to turn that hour into frames: this rate is above every shipped codec's.
MAX_FRAME_RATE = 100.0
# Waveforms generated in one call; more is a unit mistake or would exhaust memory: generate in several calls.
MAX_BATCH_SIZE = 1024
# Classifier-free guidance weights beyond this only amplify the Sampler's errors.
MAX_GUIDANCE_SCALE = 20.0
# Flow steps per frame; diffusers' schedulers are trained on 1000 timesteps.
MAX_NUM_INFERENCE_STEPS = 1000
OUTPUT_TYPES = ("np", "pt", "latent")
# Keyword arguments of `save_pretrained(push_to_hub=True)` that are about the upload, as diffusers takes them.
HUB_KWARGS = ("repo_id", "commit_message", "private", "token", "create_pr")


class SlidingWindow:
    r"""
    What the Backbone sees while generating: the start vector, then the last frames as they were fed (inference noise
    included) at positions 1, 2, ..., with their KV cache.

    Each new frame costs one cached Backbone step. When the next frame would not fit in the context, the window is
    rebuilt from the start vector and the last `context_frames - context_shift` frames at positions 1, 2, ...: exactly
    what a training crop looks like (a crop always begins with the start vector). That rebuild is one batched forward
    pass every `context_shift` frames, so the cost per frame stays flat however long the audio; the frames live in one
    buffer of `context_frames` allocated at the start, so memory stays bounded too.

    Args:
        backbone ([`CAMModel`]): the Backbone.
        context_shift (`int`): frames dropped from the window at each rebuild, in [1, context_frames - 1].
        noise_level (`torch.Tensor`, a scalar): k_inf, passed to a Backbone that is told its inputs' noise level.
        instrument_ids (`torch.LongTensor` of shape `(batch_size,)`, *optional*): each sequence's instrument, for a
            Backbone with instrument conditioning (its embedding is part of every position, the start vector's too).
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
        self.frames, self.length, self.cache = None, 0, None

    def start(self, frames: torch.Tensor) -> torch.Tensor:
        """Fills the window behind the start vector with the last of `frames` `(batch_size, num_frames, latent_dim)`
        (a prompt as fed; `num_frames` may be 0) and returns the Backbone's output at the last position, z."""
        batch_size, _, latent_dim = frames.shape
        self.frames = frames.new_empty(batch_size, self.context_frames, latent_dim)
        return self._refill(frames[:, -(self.context_frames - self.context_shift) :])

    def append(self, frame: torch.Tensor) -> torch.Tensor:
        """Feeds one frame `(batch_size, latent_dim)` (as fed: noise included) and returns the next z."""
        if self.length == self.context_frames:
            kept = self.frames[:, self.length - (self.context_frames - self.context_shift - 1) : self.length]
            return self._refill(torch.cat([kept, frame[:, None]], dim=1))
        self.frames[:, self.length] = frame
        self.length += 1
        return self._forward(frame[:, None], self.cache)

    def _refill(self, frames: torch.Tensor) -> torch.Tensor:
        self.frames[:, : frames.shape[1]] = frames
        self.length = frames.shape[1]
        return self._forward(frames, cache=None)

    def _forward(self, frames: torch.Tensor, cache) -> torch.Tensor:
        # The one place the Backbone runs while generating: conditioning inputs it may take go here.
        levels = self.noise_level.expand(frames.shape[:2]) if self.backbone.config.condition_on_noise_level else None
        output = self.backbone(
            frames, cache=cache, use_cache=True, noise_level=levels, instrument_ids=self.instrument_ids
        )
        self.cache = output.cache
        return output.last_hidden_state[:, -1]


class CAMPipeline(DiffusionPipeline):
    r"""
    Generates audio with a Continuous Autoregressive Model: unconditionally, or as a continuation of an audio prompt;
    with a Backbone trained with instrument conditioning, for a chosen instrument, with classifier-free guidance.

    Args:
        backbone ([`CAMModel`]): the causal transformer producing one conditioning vector z_t per frame.
        sampler ([`CAMSampler`]): the per-frame flow (or noise-prediction) MLP.
        scheduler ([`~diffusers.SchedulerMixin`]): integrates the Sampler for each frame, e.g.
            `FlowMatchEulerDiscreteScheduler` (default), `FlowMatchHeunDiscreteScheduler`, or `UniPCMultistepScheduler`
            with `prediction_type="flow_prediction", use_flow_sigmas=True`.
        autoencoder: a cam_hf autoencoder (`encode` audio `[B, C, N]` -> latents `[B, T, D]`, `decode` back).

    Any component may be `None` (as diffusers' pipelines allow): `encode_prompt` needs only the autoencoder, and
    generating latents (`output_type="latent"`, `num_frames`) needs no autoencoder.
    """

    model_cpu_offload_seq = "backbone->sampler->autoencoder"
    # What a callback may read and replace after each frame: the new frame (see `__call__`).
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        backbone: CAMModel | None,
        sampler: CAMSampler | None,
        scheduler: SchedulerMixin | None,
        autoencoder: AudioAutoencoderMixin | None,
    ):
        super().__init__()
        if backbone is not None and autoencoder is not None and backbone.config.latent_dim != autoencoder.latent_dim:
            raise ValueError(
                f"The autoencoder's latent_dim ({autoencoder.latent_dim}) differs from the Backbone's "
                f"({backbone.config.latent_dim}): they must be trained on the same latents."
            )
        if backbone is not None and sampler is not None:
            sampler.check_backbone_config(backbone.config)
        self.register_modules(backbone=backbone, sampler=sampler, scheduler=scheduler, autoencoder=autoencoder)

    @property
    def sample_rate(self) -> int:
        """Sample rate of the generated audio, in Hz."""
        return self.autoencoder.sample_rate

    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.autoencoder.frame_rate

    @property
    def context_frames(self) -> int:
        """The most latent frames the Backbone attends over (its positions minus the start vector)."""
        return self.backbone.config.max_position_embeddings - 1

    @property
    def max_num_frames(self) -> int:
        """The most frames one call generates: `MAX_AUDIO_LENGTH_IN_S` of audio."""
        frame_rate = self.frame_rate if self.autoencoder is not None else MAX_FRAME_RATE
        return math.ceil(MAX_AUDIO_LENGTH_IN_S * frame_rate)

    @property
    def num_timesteps(self) -> int:
        """Steps of the last call's loop, one per generated frame (the callback is called once per frame)."""
        return self._num_timesteps

    @property
    def guidance_scale(self) -> float:
        """The classifier-free guidance weight of the current (or last) call; a callback may change
        `pipe._guidance_scale` between frames of a call that started guided (`guidance_scale` != 1)."""
        return getattr(self, "_guidance_scale", 1.0)

    @property
    def interrupt(self) -> bool:
        return getattr(self, "_interrupt", False)

    # ---- inputs ----------------------------------------------------------------------------------------------

    def encode_prompt(
        self,
        audio: torch.Tensor | np.ndarray | list | None = None,
        sample_rate: int | None = None,
        prompt_latents: torch.Tensor | None = None,
        num_waveforms_per_prompt: int = 1,
        device: torch.device | None = None,
    ) -> torch.Tensor | None:
        r"""
        Encodes the audio prompt with the autoencoder (or takes already encoded `prompt_latents`) and repeats each
        prompt `num_waveforms_per_prompt` times, in the order the Backbone reads them. Needs only the autoencoder.

        Args:
            audio (`torch.Tensor` or `np.ndarray` of shape `(samples,)`, `(channels, samples)` or
                `(batch_size, channels, samples)`, or a list of `(samples,)` / `(channels, samples)` waveforms of one
                shape, *optional*): the prompt in [-1, 1].
            sample_rate (`int`, *optional*): its sample rate; resampled by the autoencoder when it differs from
                `self.sample_rate`.
            prompt_latents (`torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`, *optional*): an already
                encoded prompt, instead of `audio`.
            num_waveforms_per_prompt (`int`, defaults to 1): copies of each prompt.
            device (`torch.device`, *optional*): where to put the latents; the execution device by default.

        Returns:
            `torch.Tensor` of shape `(batch_size * num_waveforms_per_prompt, num_frames, latent_dim)`, or `None`
            without a prompt.
        """
        self._check_prompt(audio, sample_rate, prompt_latents)
        _check_num_waveforms_per_prompt(num_waveforms_per_prompt)
        if audio is not None:
            # To (batch_size, channels, samples): a list is a batch of waveforms; a lone waveform is a batch of one.
            if isinstance(audio, list | tuple):
                audio = torch.stack([_with_channel_axis(torch.as_tensor(waveform)) for waveform in audio])
            audio = torch.as_tensor(audio).float()
            audio = audio[None] if audio.ndim == 2 else _with_channel_axis(audio)[None] if audio.ndim == 1 else audio
            prompt_latents = self.autoencoder.encode(audio, sample_rate=sample_rate)
        if prompt_latents is None:
            return None
        device = device or self._execution_device
        return prompt_latents.to(device).repeat_interleave(num_waveforms_per_prompt, dim=0)

    def check_inputs(
        self,
        audio,
        sample_rate,
        prompt_latents,
        audio_length_in_s,
        num_frames,
        num_inference_steps,
        inference_noise,
        batch_size,
        num_waveforms_per_prompt,
        generator,
        output_type,
        return_dict,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs,
        context_shift,
        decode_chunk_frames,
        decode_context_frames,
        instrument=None,
        guidance_scale=1.0,
    ) -> None:
        """Checks every argument of `__call__` (type and range) before any work: a `ValueError` names the argument,
        its value and the fix."""
        for name in ("backbone", "sampler", "scheduler"):
            if getattr(self, name, None) is None:
                raise ValueError(f"This pipeline has no {name}: build it with one to generate.")
        needs_autoencoder = audio is not None or audio_length_in_s is not None or output_type != "latent"
        if needs_autoencoder and self.autoencoder is None:
            raise ValueError(
                "This pipeline has no autoencoder: generate latents (`output_type='latent'`, `num_frames=...`, "
                "`prompt_latents` as the prompt), or build it with an autoencoder."
            )
        prompt_batch = self._check_prompt(audio, sample_rate, prompt_latents)
        self._check_length(audio_length_in_s, num_frames)
        if not is_integer(num_inference_steps) or not 1 <= num_inference_steps <= MAX_NUM_INFERENCE_STEPS:
            raise ValueError(
                f"`num_inference_steps` must be an integer in [1, {MAX_NUM_INFERENCE_STEPS}] (Sampler steps per "
                f"frame), got {num_inference_steps!r}: pass e.g. {DEFAULT_NUM_INFERENCE_STEPS}."
            )
        if inference_noise is not None and not (_is_real(inference_noise) and 0.0 <= inference_noise <= 1.0):
            raise ValueError(
                f"`inference_noise` (k_inf) must be a number in [0, 1], got {inference_noise!r}: pass e.g. 0.02, or "
                "None for the Backbone config's."
            )
        self._check_batch(batch_size, num_waveforms_per_prompt, prompt_batch, generator)
        if not isinstance(output_type, str) or output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if not isinstance(return_dict, bool):
            raise ValueError(f"`return_dict` must be True or False, got {return_dict!r}.")
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise ValueError(
                f"`callback_on_step_end` must be callable as `(pipe, frame_index, frame_index, callback_kwargs)`, got "
                f"{type(callback_on_step_end).__name__}."
            )
        if not isinstance(callback_on_step_end_tensor_inputs, list | tuple) or not all(
            isinstance(name, str) and name in self._callback_tensor_inputs for name in callback_on_step_end_tensor_inputs
        ):
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` must be a list among {self._callback_tensor_inputs}, got "
                f"{callback_on_step_end_tensor_inputs!r}."
            )
        if context_shift is not None and not (is_integer(context_shift) and 1 <= context_shift < self.context_frames):
            raise ValueError(
                f"`context_shift` must be an integer in [1, {self.context_frames - 1}] (frames dropped from the "
                f"Backbone's {self.context_frames}-frame window when it is full), got {context_shift!r}: pass e.g. "
                f"{max(1, self.context_frames // 2)}, or None for half the context."
            )
        check_decode_chunking(decode_chunk_frames, decode_context_frames)
        total = (prompt_batch or batch_size or 1) * num_waveforms_per_prompt
        self._check_instrument(instrument, guidance_scale, total)

    def _check_instrument(self, instrument, guidance_scale, total: int) -> None:
        if not _is_real(guidance_scale) or not 0.0 <= guidance_scale <= MAX_GUIDANCE_SCALE:
            raise ValueError(
                f"`guidance_scale` must be a number in [0, {MAX_GUIDANCE_SCALE:.0f}], got {guidance_scale!r}: pass 1.0 for "
                "no guidance, or e.g. 3.0."
            )
        if instrument is None:
            if guidance_scale != 1.0:
                raise ValueError(
                    f"`guidance_scale={guidance_scale}` guides towards an instrument: pass `instrument` too, or leave "
                    "`guidance_scale` at 1.0."
                )
            return
        instruments = list(instrument) if isinstance(instrument, list | tuple) else [instrument]
        if isinstance(instrument, list | tuple) and len(instruments) != total:
            raise ValueError(
                f"Got a list of {len(instruments)} instruments for {total} waveforms: pass one per waveform, or a "
                "single instrument for all."
            )
        for name in instruments:
            if not isinstance(name, str) and not is_integer(name):
                raise ValueError(f"`instrument` must be a name or an id (or a list of them), got {name!r}.")
            self.backbone.config.instrument_id(name if isinstance(name, str) else int(name))

    def prepare_instrument_ids(
        self, instrument: str | int | list[str | int] | None, batch_size: int
    ) -> torch.LongTensor | None:
        """The instrument id of every waveform `(batch_size,)` on the execution device, or `None` without one."""
        if instrument is None:
            return None
        instruments = list(instrument) if isinstance(instrument, list | tuple) else [instrument] * batch_size
        config = self.backbone.config
        ids = [config.instrument_id(name if isinstance(name, str) else int(name)) for name in instruments]
        return torch.tensor(ids, dtype=torch.long, device=self._execution_device)

    def _check_prompt(self, audio, sample_rate, prompt_latents) -> int | None:
        """Checks the prompt; returns its batch size (`None` without a prompt)."""
        if audio is not None and prompt_latents is not None:
            raise ValueError("Pass either `audio` or `prompt_latents` as the prompt, not both.")
        if audio is None and sample_rate is not None:
            raise ValueError(f"`sample_rate` ({sample_rate!r}) is the rate of `audio`: pass it only with `audio`.")
        if audio is not None and self.autoencoder is None:
            raise ValueError("This pipeline has no autoencoder to encode `audio` with: pass `prompt_latents` instead.")
        if prompt_latents is not None:
            latent_dim = self.backbone.config.latent_dim if self.backbone is not None else self.autoencoder.latent_dim
            if not isinstance(prompt_latents, torch.Tensor) or prompt_latents.ndim != 3 or (
                prompt_latents.shape[-1] != latent_dim
            ):
                shape = tuple(prompt_latents.shape) if hasattr(prompt_latents, "shape") else type(prompt_latents).__name__
                raise ValueError(
                    f"`prompt_latents` must be a tensor of shape (batch_size, num_frames, {latent_dim}), got {shape}: "
                    "encode audio with this pipeline's autoencoder (`encode_prompt`)."
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
            return prompt_latents.shape[0]
        if audio is None:
            return None
        is_list = isinstance(audio, list | tuple)
        waveforms = list(audio) if is_list else [audio]
        if not waveforms:
            raise ValueError("`audio` is an empty list: pass at least one waveform, or no prompt.")
        for waveform in waveforms:
            check_audio(waveform, name="audio")
            if not 1 <= waveform.ndim <= (2 if is_list else 3):
                raise ValueError(
                    f"`audio` must have shape (samples,), (channels, samples) or (batch_size, channels, samples) (or "
                    f"be a list of (samples,) / (channels, samples) waveforms), got {tuple(waveform.shape)}."
                )
            if tuple(waveform.shape) != tuple(waveforms[0].shape):
                raise ValueError(
                    f"The waveforms of `audio` have different shapes ({tuple(waveforms[0].shape)} and "
                    f"{tuple(waveform.shape)}): crop them to one length, or generate for each separately."
                )
        if sample_rate is None:
            raise ValueError(
                f"Pass the prompt's `sample_rate` with `audio` (this pipeline generates at {self.sample_rate} Hz)."
            )
        check_sample_rate(sample_rate, name="`sample_rate`")
        shape = waveforms[0].shape
        self.autoencoder.check_audio_channels(shape[-2] if len(shape) >= 2 else 1)
        seconds = shape[-1] / sample_rate
        if seconds > MAX_AUDIO_LENGTH_IN_S:
            raise ValueError(
                f"`audio` lasts {seconds:.0f} s at sample_rate={sample_rate}, more than {MAX_AUDIO_LENGTH_IN_S:.0f} s: "
                "pass its last seconds (the Backbone reads at most its context), or check `sample_rate`."
            )
        if math.ceil(shape[-1] * self.sample_rate / sample_rate) < self.autoencoder.min_audio_length:
            raise ValueError(
                f"`audio` has {shape[-1]} samples at {sample_rate} Hz, fewer than one latent frame "
                f"({self.autoencoder.min_audio_length} samples at {self.sample_rate} Hz): pass longer audio."
            )
        return len(waveforms) if is_list else (shape[0] if len(shape) == 3 else 1)

    def _check_length(self, audio_length_in_s, num_frames) -> None:
        if (audio_length_in_s is None) == (num_frames is None):
            raise ValueError(
                f"Pass exactly one of `audio_length_in_s` and `num_frames`, got {audio_length_in_s!r} and "
                f"{num_frames!r}."
            )
        if audio_length_in_s is not None and not (
            _is_real(audio_length_in_s) and 0 < audio_length_in_s <= MAX_AUDIO_LENGTH_IN_S
        ):
            raise ValueError(
                f"`audio_length_in_s` must be a number of seconds in (0, {MAX_AUDIO_LENGTH_IN_S:.0f}], got "
                f"{audio_length_in_s!r}: pass seconds (not samples or milliseconds), e.g. 10.0."
            )
        if num_frames is not None and not (is_integer(num_frames) and 1 <= num_frames <= self.max_num_frames):
            raise ValueError(
                f"`num_frames` must be an integer in [1, {self.max_num_frames}] ({MAX_AUDIO_LENGTH_IN_S:.0f} s), got "
                f"{num_frames!r}."
            )

    def _check_batch(self, batch_size, num_waveforms_per_prompt, prompt_batch, generator) -> None:
        if batch_size is not None and not (is_integer(batch_size) and 1 <= batch_size <= MAX_BATCH_SIZE):
            raise ValueError(
                f"`batch_size` must be an integer in [1, {MAX_BATCH_SIZE}] (waveforms without a prompt), got "
                f"{batch_size!r}."
            )
        if batch_size is not None and prompt_batch is not None and batch_size != prompt_batch:
            raise ValueError(
                f"`batch_size` ({batch_size}) differs from the prompt's batch ({prompt_batch}): leave it out with a "
                "prompt, and use `num_waveforms_per_prompt` for several waveforms per prompt."
            )
        _check_num_waveforms_per_prompt(num_waveforms_per_prompt)
        total = (prompt_batch or batch_size or 1) * num_waveforms_per_prompt
        if total > MAX_BATCH_SIZE:
            raise ValueError(
                f"{total} waveforms in one call ({prompt_batch or batch_size or 1} x {num_waveforms_per_prompt} per "
                f"prompt) exceed {MAX_BATCH_SIZE}: generate them in several calls."
            )
        if isinstance(generator, list):
            if len(generator) != total or not all(isinstance(g, torch.Generator) for g in generator):
                raise ValueError(
                    f"Got a list of {len(generator)} generators for {total} waveforms ({prompt_batch or batch_size or 1}"
                    f" x {num_waveforms_per_prompt} per prompt): pass one torch.Generator per waveform, or a single one."
                )
        elif generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(
                f"`generator` must be a torch.Generator or a list of them, got {type(generator).__name__}: pass e.g. "
                "`torch.Generator().manual_seed(0)`."
            )

    # ---- generation ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def generate_frames(
        self,
        prompt_latents: torch.Tensor | None,
        batch_size: int,
        num_frames: int,
        num_inference_steps: int,
        inference_noise: float,
        generator: torch.Generator | list[torch.Generator] | None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        context_shift: int | None = None,
        instrument_ids: torch.LongTensor | None = None,
        guidance_scale: float = 1.0,
    ) -> Iterator[torch.Tensor]:
        r"""
        The autoregressive loop. Yields each new frame as soon as it is drawn; holds only the Backbone's window.

        With classifier-free guidance (`guidance_scale` != 1), the window holds each sequence twice, with its instrument
        and with "no instrument": both read the same frames, and the Sampler combines their two predictions.

        Args:
            prompt_latents (`torch.Tensor` of shape `(batch_size, num_prompt_frames, latent_dim)`, *optional*).
            batch_size (`int`): number of sequences.
            num_frames (`int`): number of frames to generate.
            num_inference_steps (`int`): Sampler steps per frame.
            inference_noise (`float`): k_inf.
            generator (`torch.Generator` or list of `batch_size` of them, *optional*).
            callback_on_step_end (`Callable`, *optional*): see `__call__`.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): see `__call__`.
            context_shift (`int`, *optional*): frames dropped from the window at each rebuild (see [`SlidingWindow`]);
                half the context by default.
            instrument_ids (`torch.LongTensor` of shape `(batch_size,)`, *optional*): each sequence's instrument.
            guidance_scale (`float`, defaults to 1.0): the classifier-free guidance weight w (1: none).

        Yields:
            `torch.Tensor` of shape `(batch_size, latent_dim)`: the next frame.
        """
        device, dtype = self._execution_device, self.backbone.dtype
        k_inf, mixing = torch.tensor(inference_noise, device=device, dtype=dtype), self.backbone.config.noise_mixing
        self._guidance_scale = guidance_scale
        # Whether the window holds the unconditional half is fixed for the call; the weight is read at every frame.
        guided = instrument_ids is not None and guidance_scale != 1.0
        if guided:
            unconditional_ids = torch.full_like(instrument_ids, self.backbone.config.no_instrument_id)
            instrument_ids = torch.cat([instrument_ids, unconditional_ids])

        def both(frames: torch.Tensor) -> torch.Tensor:
            # With guidance the conditional and the unconditional halves of the window see the same frames.
            return torch.cat([frames, frames]) if guided else frames

        window = SlidingWindow(self.backbone, context_shift or max(1, self.context_frames // 2), k_inf, instrument_ids)
        if prompt_latents is None:
            prompt_latents = torch.zeros(batch_size, 0, self.backbone.config.latent_dim)
        prompt = prompt_latents.to(device=device, dtype=dtype)
        # The Backbone reads the start vector, then the prompt mixed with k_inf like every frame it is fed: z_0.
        condition = window.start(
            both(mix_noise(prompt, randn_tensor(prompt.shape, generator, device, dtype), k_inf, mixing))
        )
        with self.progress_bar(total=num_frames) as progress_bar:
            for index in range(num_frames):
                if self.interrupt:
                    break
                # Draw frame t+1 from the Sampler's flow, conditioned on z_t (guided by the unconditional z_t).
                frame = sample_next_frame(
                    self.sampler, self.scheduler, condition[:batch_size], num_inference_steps, generator,
                    unconditional_condition=condition[batch_size:] if guided else None,
                    guidance_scale=self._guidance_scale if guided else 1.0,
                )
                # The callback may replace the new frame (only it: the earlier ones were fed back and yielded).
                if callback_on_step_end is not None:
                    frame = self._callback_frame(callback_on_step_end, index, frame, callback_on_step_end_tensor_inputs)
                yield frame
                progress_bar.update()
                if index == num_frames - 1:
                    break
                # Feed it back mixed with k_inf; the window slides once the context is full: z_{t+1}.
                noise = randn_tensor(frame.shape, generator, device, dtype)
                condition = window.append(both(mix_noise(frame, noise, k_inf, mixing)))

    def _callback_frame(self, callback: Callable, index: int, frame: torch.Tensor, tensor_inputs) -> torch.Tensor:
        """Runs the callback on the new frame and returns the frame it leaves (replaced or not), checked."""
        latents = frame[:, None]
        outputs = callback(self, index, index, {name: {"latents": latents}[name] for name in tensor_inputs})
        if not isinstance(outputs, dict):
            raise ValueError(
                f"`callback_on_step_end` must return a dict (e.g. the `callback_kwargs` it was given), got "
                f"{type(outputs).__name__}."
            )
        replaced = outputs.pop("latents", latents)
        if not isinstance(replaced, torch.Tensor) or replaced.shape != latents.shape:
            shape = tuple(replaced.shape) if isinstance(replaced, torch.Tensor) else type(replaced).__name__
            raise ValueError(
                f"`callback_on_step_end` returned `latents` of shape {shape}; it may replace only the new frame, "
                f"shape {tuple(latents.shape)} (the earlier frames were already fed back and yielded)."
            )
        if not torch.isfinite(replaced).all():
            raise ValueError(f"`callback_on_step_end` returned `latents` with NaN or inf values at frame {index}.")
        return replaced[:, 0].to(frame)

    @torch.no_grad()
    def _output_chunks(
        self, frames: Iterator[torch.Tensor], output_type: str, decode_chunk_frames: int, decode_context_frames: int
    ) -> Iterator[np.ndarray | torch.Tensor]:
        """The frames in chunks of `decode_chunk_frames`, decoded (as they come) unless `output_type` is "latent"."""
        if output_type == "latent":
            chunks = _stack_in_chunks(frames, decode_chunk_frames)
        else:
            pieces = (frame[:, None] for frame in frames)
            chunks = self.autoencoder.decode_stream(pieces, decode_chunk_frames, decode_context_frames)
        for chunk in chunks:
            yield chunk.cpu().numpy() if output_type == "np" else chunk
        self.maybe_free_model_hooks()

    def decode_latents(
        self,
        latents: torch.Tensor,
        decode_chunk_frames: int = DEFAULT_DECODE_CHUNK_FRAMES,
        decode_context_frames: int = DEFAULT_DECODE_CONTEXT_FRAMES,
    ) -> torch.Tensor:
        r"""
        Decodes latents in chunks exactly as `__call__` and `stream` do (the autoencoder's `decode_chunked`).

        Args:
            latents (`torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`).
            decode_chunk_frames (`int`, defaults to 64): frames per chunk.
            decode_context_frames (`int`, defaults to 4): context frames on each side of a chunk, and the crossfade
                length.

        Returns:
            `torch.Tensor` of shape `(batch_size, channels, num_frames * hop_length)`.
        """
        if self.autoencoder is None:
            raise ValueError("This pipeline has no autoencoder to decode with: build it with one.")
        return self.autoencoder.decode_chunked(latents, decode_chunk_frames, decode_context_frames)

    @torch.no_grad()
    def __call__(
        self,
        audio: torch.Tensor | np.ndarray | list | None = None,
        sample_rate: int | None = None,
        prompt_latents: torch.Tensor | None = None,
        audio_length_in_s: float | None = None,
        num_frames: int | None = None,
        num_inference_steps: int = DEFAULT_NUM_INFERENCE_STEPS,
        inference_noise: float | None = None,
        batch_size: int | None = None,
        num_waveforms_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        context_shift: int | None = None,
        decode_chunk_frames: int = DEFAULT_DECODE_CHUNK_FRAMES,
        decode_context_frames: int = DEFAULT_DECODE_CONTEXT_FRAMES,
        instrument: str | int | list[str | int] | None = None,
        guidance_scale: float = 1.0,
        _stream: bool = False,
    ) -> AudioPipelineOutput | tuple:
        r"""
        Generates audio: unconditionally, or continuing an audio prompt.

        Args:
            audio (`torch.Tensor` or `np.ndarray` of shape `(samples,)`, `(channels, samples)` or
                `(batch_size, channels, samples)`, or a list of `(samples,)` / `(channels, samples)` waveforms of one
                shape, *optional*): an audio prompt to continue, real floats in [-1, 1].
            sample_rate (`int`, *optional*): the prompt's sample rate in Hz (required with `audio`).
            prompt_latents (`torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`, *optional*): an already
                encoded prompt, instead of `audio`.
            audio_length_in_s (`float`, *optional*): length of the NEW audio in seconds, at most an hour (the prompt
                is not repeated in the output). Exactly one of this and `num_frames`.
            num_frames (`int`, *optional*): length of the new audio in latent frames.
            num_inference_steps (`int`, defaults to 16): Sampler flow steps per frame.
            inference_noise (`float`, *optional*): k_inf, the noise mixed into each frame before it is fed back;
                defaults to the Backbone config's `inference_noise`.
            batch_size (`int`, *optional*): waveforms to generate without a prompt (1 by default); with a prompt it is
                the prompt's batch.
            num_waveforms_per_prompt (`int`, defaults to 1): waveforms per prompt (per unit of `batch_size` without a
                prompt).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): one generator, or one per waveform
                (then each waveform is reproducible on its own, whatever batch it is in).
            output_type (`str`, defaults to `"np"`): `"np"`, `"pt"`, or `"latent"` (the frames, not decoded).
            return_dict (`bool`, defaults to `True`): return an `AudioPipelineOutput` instead of a tuple.
            callback_on_step_end (`Callable`, *optional*): called after each FRAME as
                `callback(pipe, frame_index, frame_index, callback_kwargs)`, where `callback_kwargs["latents"]` is the
                new frame, shape `(batch_size, 1, latent_dim)`. It returns a dict; a `"latents"` entry of that shape
                replaces the frame (what is fed back and output). Earlier frames cannot be changed: they were already
                fed back and yielded. `pipe._interrupt = True` stops after the current frame; `pipe.num_timesteps` is
                the number of frames of the call.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): among `_callback_tensor_inputs`.
            context_shift (`int`, *optional*): frames dropped from the sliding window once the Backbone's context is
                full (default: half the context).
            decode_chunk_frames (`int`, defaults to 64): frames decoded at a time (also the streaming chunk).
            decode_context_frames (`int`, defaults to 4): frames of context decoded on each side of a chunk, and the
                length of the crossfade between chunks (see the autoencoder's `decode_stream`).
            instrument (`str`, `int` or a list of them, *optional*): for a Backbone trained with instrument
                conditioning (`backbone.config.instrument_names`), the instrument to generate, by name or id: one for
                every waveform, or a list with one per waveform. `None` generates without an instrument.
            guidance_scale (`float`, defaults to 1.0): classifier-free guidance weight w with `instrument`: each
                Sampler step predicts u + w (c - u) from the conditional (c) and the unconditional (u) prediction.
                1 is no guidance (no extra cost); larger values follow the instrument more closely; guidance runs the
                Backbone and the Sampler on twice the batch.

        Returns:
            [`~diffusers.pipelines.AudioPipelineOutput`] with `audios` of shape `(batch_size, channels, samples)`
            (or latents `(batch_size, num_frames, latent_dim)` for `output_type="latent"`), or a tuple.
        """
        if isinstance(callback_on_step_end, PipelineCallback | MultiPipelineCallbacks):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = ["latents"]

        # 1. Check every argument, before any work.
        self.check_inputs(
            audio, sample_rate, prompt_latents, audio_length_in_s, num_frames, num_inference_steps, inference_noise,
            batch_size, num_waveforms_per_prompt, generator, output_type, return_dict, callback_on_step_end,
            callback_on_step_end_tensor_inputs, context_shift, decode_chunk_frames, decode_context_frames,
            instrument, guidance_scale,
        )

        # 2. Encode the prompt (if any), one copy per waveform.
        prompt_latents = self.encode_prompt(audio, sample_rate, prompt_latents, num_waveforms_per_prompt)

        # 3. Prepare: how many waveforms, how many frames, and the noise level fed back with each frame.
        if prompt_latents is not None:
            batch_size = prompt_latents.shape[0]
        else:
            batch_size = (batch_size or 1) * num_waveforms_per_prompt
        if num_frames is None:
            num_frames = max(1, math.ceil(audio_length_in_s * self.frame_rate))
        if inference_noise is None:
            inference_noise = self.backbone.config.inference_noise
        instrument_ids = self.prepare_instrument_ids(instrument, batch_size)
        self._num_timesteps, self._interrupt = num_frames, False

        # 4. The autoregressive loop, decoded chunk by chunk as soon as each chunk's frames exist.
        frames = self.generate_frames(
            prompt_latents, batch_size, num_frames, num_inference_steps, inference_noise, generator,
            callback_on_step_end, callback_on_step_end_tensor_inputs, context_shift, instrument_ids, guidance_scale,
        )
        chunks = self._output_chunks(frames, output_type, decode_chunk_frames, decode_context_frames)
        if _stream:
            return chunks

        # 5. Join the chunks.
        chunks, axis = list(chunks), 1 if output_type == "latent" else -1
        output = np.concatenate(chunks, axis=axis) if output_type == "np" else torch.cat(chunks, dim=axis)
        if not return_dict:
            return (output,)
        return AudioPipelineOutput(audios=output)

    def stream(self, *args, **kwargs) -> Iterator[np.ndarray | torch.Tensor]:
        r"""
        Generates audio as `__call__` does, with the same arguments (`return_dict` aside), yielding it in chunks of
        `decode_chunk_frames` frames as soon as each is decoded: for real-time playback or interactive use. Memory
        stays bounded however long the audio. Concatenated along the last axis, the chunks equal `__call__`'s output
        for the same arguments and seed.

        The arguments are checked, and an audio prompt encoded, when `stream` is called: bad input raises here, not
        at the first chunk.

        Returns:
            An iterator of `np.ndarray` or `torch.Tensor` of shape `(batch_size, channels, chunk_samples)`, or latents
            `(batch_size, chunk_frames, latent_dim)` for `output_type="latent"`.
        """
        return self(*args, _stream=True, **kwargs)

    # ---- sharing ---------------------------------------------------------------------------------------------

    def model_card(self, repo_id: str = "path/to/this/folder", training_details: str | None = None) -> ModelCard:
        """A model card describing this pipeline's components, how to generate, and `training_details` (see
        `cam_hf.hub_utils.model_card`)."""
        return hub_utils.model_card(self, repo_id, training_details)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        training_details: str | None = None,
        **kwargs,
    ):
        """
        `DiffusionPipeline.save_pretrained` (safetensors, one folder per component), plus this pipeline's model card
        (`README.md`) unless the folder already has one. With `push_to_hub=True` the folder, card included, is
        uploaded to `repo_id` (default: the folder's name; `kwargs`: `repo_id`, `commit_message`, `private`, `token`,
        `create_pr`), as `push_to_hub` does.
        """
        if not push_to_hub:
            super().save_pretrained(save_directory, safe_serialization, variant, max_shard_size, **kwargs)
            hub_utils.write_model_card(self, save_directory, str(save_directory), training_details)
            return None
        hub_kwargs = {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}
        repo_id = hub_kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
        repo_id = hub_utils.create_model_repo(repo_id, hub_kwargs.pop("private", None), hub_kwargs.get("token"))
        super().save_pretrained(save_directory, safe_serialization, variant, max_shard_size, **kwargs)
        hub_utils.write_model_card(self, save_directory, repo_id, training_details)
        return hub_utils.upload_pipeline_folder(save_directory, repo_id, **hub_kwargs)

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        variant: str | None = None,
        training_details: str | None = None,
    ) -> str:
        """Saves the pipeline with its model card to a temporary folder and uploads it to `repo_id` on the Hub."""
        repo_id = hub_utils.create_model_repo(repo_id, private, token)
        with tempfile.TemporaryDirectory() as folder:
            super().save_pretrained(folder, safe_serialization=safe_serialization, variant=variant)
            hub_utils.write_model_card(self, folder, repo_id, training_details)
            return hub_utils.upload_pipeline_folder(folder, repo_id, commit_message, token, create_pr)


def _check_num_waveforms_per_prompt(num_waveforms_per_prompt) -> None:
    if not is_integer(num_waveforms_per_prompt) or not 1 <= num_waveforms_per_prompt <= MAX_BATCH_SIZE:
        raise ValueError(
            f"`num_waveforms_per_prompt` must be an integer in [1, {MAX_BATCH_SIZE}], got {num_waveforms_per_prompt!r}."
        )


def _is_real(value) -> bool:
    """A finite real number (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _with_channel_axis(waveform: torch.Tensor) -> torch.Tensor:
    """`(samples,)` -> `(1, samples)`; `(channels, samples)` unchanged."""
    return waveform[None] if waveform.ndim == 1 else waveform


def _stack_in_chunks(frames: Iterator[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    """Frames `(batch_size, latent_dim)` stacked `size` at a time: `(batch_size, size, latent_dim)` (the last shorter)."""
    chunk = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield torch.stack(chunk, dim=1)
            chunk = []
    if chunk:
        yield torch.stack(chunk, dim=1)


__all__ = ["CAMPipeline", "SlidingWindow"]
