"""CAMPipeline: audio generation with a Continuous Autoregressive Model (Pasini et al., arXiv 2411.18447).

audio prompt --autoencoder.encode--> prompt latents
for each new frame:  z_t = Backbone.step(input_t)              (KV cache: the same cost at every position)
                     x_{t+1} = Sampler's flow, noise -> data   (num_inference_steps)
                     input_{t+1} = (1 - k_inf) x_{t+1} + k_inf eps
latents --autoencoder.decode_stream, on a second thread, chunk by chunk as the frames come--> audio
"""

import math
from collections.abc import Callable, Iterator
from itertools import islice

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .autoencoders.base import (
    DEFAULT_DECODE_CHUNK_FRAMES,
    DEFAULT_DECODE_CONTEXT_FRAMES,
    DEFAULT_DECODE_FIRST_CHUNK_FRAMES,
    AudioAutoencoderMixin,
    decode_chunk_sizes,
)
from .frame_step import CompiledFrameStepMixin
from .generation import FrameSampler, SlidingWindow
from .hub_utils import PipelineSharingMixin
from .modeling_cam import CAMModel, mix_noise
from .pipeline_checks import (
    MAX_AUDIO_LENGTH_IN_S,
    MAX_FRAME_RATE,
    MAX_GUIDANCE_SCALE,
    OUTPUT_TYPES,
    GenerationInputs,
    check_callback_outputs,
    check_components,
    check_generated_latents,
    check_generation_inputs,
    check_num_waveforms_per_prompt,
    check_prompt,
)
from .sampler import CAMSampler
from .utils.audio import as_audio_batch


class CAMPipeline(CompiledFrameStepMixin, PipelineSharingMixin, DiffusionPipeline):
    r"""
    Generates audio with a Continuous Autoregressive Model: unconditionally, or as a continuation of an audio
    prompt; with a Backbone trained with instrument conditioning, for a chosen instrument, with
    classifier-free guidance.

    Args:
        backbone ([`CAMModel`]): the causal transformer producing one conditioning vector z_t per frame.
        sampler ([`CAMSampler`]): the per-frame flow (or noise-prediction) MLP.
        scheduler ([`~diffusers.SchedulerMixin`]): integrates the Sampler for each frame, e.g.
            `FlowMatchEulerDiscreteScheduler` (default), `FlowMatchHeunDiscreteScheduler`, or
            `UniPCMultistepScheduler` with `prediction_type="flow_prediction", use_flow_sigmas=True`.
        autoencoder: a cam_hf autoencoder (`encode` audio `[B, C, N]` -> latents `[B, T, D]`, `decode` back).

    Any component may be `None` (as diffusers' pipelines allow): `encode_prompt` needs only the autoencoder,
    and generating latents (`output_type="latent"`, `num_frames`) needs no autoencoder.

    `pipe.enable_compiled_frame_step()` runs each frame as one compiled call, for processes that generate much
    (compiling takes ~35 s per batch size, steps and guidance; see [`CompiledFrameStepMixin`]).
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
        check_components(backbone=backbone, sampler=sampler, autoencoder=autoencoder)
        self.register_modules(
            backbone=backbone, sampler=sampler, scheduler=scheduler, autoencoder=autoencoder
        )

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
        """The classifier-free guidance weight of the current (or last) call, set when the call starts
        (for `stream`, before the first chunk); a callback may change `pipe._guidance_scale` between
        frames of a guided call."""
        return getattr(self, "_guidance_scale", 1.0)

    @property
    def interrupt(self) -> bool:
        return getattr(self, "_interrupt", False)

    # ---- inputs --------------------------------------------------------------------------------------------

    def encode_prompt(
        self,
        audio: torch.Tensor | np.ndarray | list | None = None,
        sample_rate: int | None = None,
        prompt_latents: torch.Tensor | None = None,
        num_waveforms_per_prompt: int = 1,
        device: torch.device | None = None,
    ) -> torch.Tensor | None:
        r"""
        Encodes the audio prompt with the autoencoder (or takes already encoded `prompt_latents`) and repeats
        each prompt `num_waveforms_per_prompt` times, in the order the Backbone reads them. Needs only the
        autoencoder.

        Args:
            audio, sample_rate, prompt_latents, num_waveforms_per_prompt: as [`~CAMPipeline.__call__`] takes
                them (`sample_rate` is resampled from when it differs from `self.sample_rate`).
            device (`torch.device`, *optional*): where to put the latents; the execution device by default.

        Returns:
            `torch.Tensor` of shape `(batch_size * num_waveforms_per_prompt, num_frames, latent_dim)`, or
            `None` without a prompt.
        """
        owner = self.backbone.config if self.backbone is not None else self.autoencoder
        check_prompt(
            audio=audio,
            sample_rate=sample_rate,
            prompt_latents=prompt_latents,
            latent_dim=owner.latent_dim,
            autoencoder=self.autoencoder,
        )
        check_num_waveforms_per_prompt(num_waveforms_per_prompt)
        copies = num_waveforms_per_prompt
        return self._encode_checked_prompt(audio, sample_rate, prompt_latents, copies, device)

    def _encode_checked_prompt(self, audio, sample_rate, prompt_latents, copies: int, device=None):
        if audio is not None:
            audio = as_audio_batch(audio)
            prompt_latents = self.autoencoder.encode(audio, sample_rate=sample_rate)
        if prompt_latents is None:
            return None
        device = device or self._execution_device
        return prompt_latents.to(device).repeat_interleave(copies, dim=0)

    def prepare_instrument_ids(
        self, instrument: str | int | list[str | int] | None, batch_size: int
    ) -> torch.LongTensor | None:
        """The instrument id of every waveform `(batch_size,)` on the execution device, or
        `None` without one."""
        if instrument is None:
            return None
        instruments = list(instrument) if isinstance(instrument, list | tuple) else [instrument] * batch_size
        config = self.backbone.config
        ids = [config.instrument_id(name if isinstance(name, str) else int(name)) for name in instruments]
        return torch.tensor(ids, dtype=torch.long, device=self._execution_device)

    # ---- generation ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def generate_frames(
        self,
        inputs: GenerationInputs,
        prompt_latents: torch.Tensor | None = None,
        instrument_ids: torch.LongTensor | None = None,
    ) -> Iterator[torch.Tensor]:
        r"""
        The autoregressive loop, on a call's checked arguments: yields each new frame as soon as it is drawn,
        and holds only the Backbone's window. A frame costs one Backbone step and the Sampler's steps: nothing
        is checked, allocated or synchronised per frame beyond them. With `enable_compiled_frame_step`, both
        are one compiled call ([`~cam_hf.frame_step.StaticFrameStep`]) wherever the call allows it.

        With classifier-free guidance (`pipe.guidance_scale` != 1 with `instrument_ids`), the window holds
        each sequence twice, with its instrument and with "no instrument": both read the same frames, and the
        Sampler combines their two predictions with the weight `pipe.guidance_scale` has at that frame.

        Args:
            inputs ([`~cam_hf.pipeline_checks.GenerationInputs`]): the call's arguments, checked and with
                their defaults filled in (`check_generation_inputs`, which `stream` calls).
            prompt_latents (`torch.Tensor` of shape `(num_waveforms, prompt_frames, latent_dim)`, *optional*):
                the encoded prompt, one copy per waveform (`encode_prompt`).
            instrument_ids (`torch.LongTensor` of shape `(num_waveforms,)`, *optional*): each waveform's
                instrument (`prepare_instrument_ids`).

        Returns:
            An iterator of `torch.Tensor` of shape `(num_waveforms, latent_dim)`: the new frames, in order.
        """
        batch_size, num_frames, generator = inputs.num_waveforms, inputs.num_frames, inputs.generator
        device, dtype = self._execution_device, self.backbone.dtype
        k_inf = torch.tensor(inputs.inference_noise, device=device, dtype=dtype)
        mixing = self.backbone.config.noise_mixing
        # The window holds the unconditional half for the whole call; the weight is read at every frame.
        guided = instrument_ids is not None and self.guidance_scale != 1.0
        if guided:
            unconditional_ids = torch.full_like(instrument_ids, self.backbone.config.no_instrument_id)
            instrument_ids = torch.cat([instrument_ids, unconditional_ids])
        window = SlidingWindow(self.backbone, inputs.context_shift, k_inf, instrument_ids)
        if prompt_latents is None:
            prompt_latents = torch.zeros(batch_size, 0, self.backbone.config.latent_dim)
        prompt = prompt_latents.to(device=device, dtype=dtype)
        # z_0: the Backbone reads the start vector, then the prompt mixed with k_inf like every fed frame (a
        # short context reads the prompt as it is).
        fed = mix_noise(prompt, randn_tensor(prompt.shape, generator, device, dtype), k_inf, mixing)
        condition = window.start(*[torch.cat([x, x]) if guided else x for x in (fed, prompt)])
        draw = FrameSampler(
            self.sampler,
            self.scheduler,
            inputs.num_inference_steps,
            device=device,
            temperature=inputs.temperature,
        )
        # The compiled step (None: the eager loop), which takes over the window's state.
        static = self._frame_loop(inputs, draw, window, k_inf, instrument_ids, guided)
        # What is fed back, allocated once; with guidance both halves of the window read the same frame. A
        # short context also reads each frame as drawn.
        fed = torch.empty(condition.shape[0], prompt.shape[-1], device=device, dtype=dtype)
        drawn = torch.empty_like(fed) if window.reads_clean_frames else None
        frame = None
        with self.progress_bar(total=num_frames) as progress_bar:
            for index in range(num_frames):
                if self.interrupt:
                    break
                # The noises of this frame, in the order the eager loop has always drawn them: the noise
                # mixed into the last frame as it is fed back, then the noise the new frame starts from.
                last, frame = frame, None
                feed_noise = None if last is None else randn_tensor(last.shape, generator, device, dtype)
                start_noise = randn_tensor(fed[:batch_size].shape, generator, device, dtype)
                if last is not None and static is not None:
                    # Feed the last frame back and draw the next in one call (None: this frame runs eagerly).
                    frame = static(last, feed_noise, start_noise, self.guidance_scale)
                if frame is None:
                    if last is not None:
                        # Feed it back mixed with k_inf; the window slides once the context is full: z_{t+1}.
                        fed[:batch_size] = mix_noise(last, feed_noise, k_inf, mixing)
                        if guided:
                            fed[batch_size:] = fed[:batch_size]
                        if drawn is not None:
                            drawn[:batch_size] = last
                            if guided:
                                drawn[batch_size:] = last
                        condition = window.append(fed, drawn)
                        if static is not None:
                            static.load(window)
                    # Draw frame t+1 from the Sampler's flow, given z_t (guided by the unconditional z_t).
                    if guided:
                        unconditional, scale = condition[batch_size:], self.guidance_scale
                        frame = draw(condition[:batch_size], generator, start_noise, unconditional, scale)
                    else:
                        frame = draw(condition, generator, start_noise)
                # The callback may replace the new frame only: the earlier ones were fed back and yielded.
                if inputs.callback_on_step_end is not None:
                    frame = self._callback_frame(inputs, index, frame)
                yield frame
                progress_bar.update()

    def _callback_frame(self, inputs: GenerationInputs, index: int, frame: torch.Tensor) -> torch.Tensor:
        """Runs the callback on the new frame and returns the frame it leaves (replaced or not), checked."""
        latents = frame[:, None]
        tensors = {name: {"latents": latents}[name] for name in inputs.callback_on_step_end_tensor_inputs}
        outputs = inputs.callback_on_step_end(self, index, index, tensors)
        replaced = check_callback_outputs(outputs, latents, index)
        return frame if replaced is latents else replaced[:, 0].to(frame)

    def decode_latents(
        self,
        latents: torch.Tensor,
        decode_chunk_frames: int = DEFAULT_DECODE_CHUNK_FRAMES,
        decode_context_frames: int = DEFAULT_DECODE_CONTEXT_FRAMES,
        decode_first_chunk_frames: int = DEFAULT_DECODE_FIRST_CHUNK_FRAMES,
    ) -> torch.Tensor:
        """Decodes latents `(batch_size, num_frames, latent_dim)` to audio `(batch_size, channels, samples)`
        in chunks exactly as `__call__` and `stream` do with the same chunking arguments (the autoencoder's
        `decode_chunked`)."""
        if self.autoencoder is None:
            raise ValueError("This pipeline has no autoencoder to decode with: build it with one.")
        return self.autoencoder.decode_chunked(
            latents, decode_chunk_frames, decode_context_frames, decode_first_chunk_frames
        )

    @torch.no_grad()
    def __call__(
        self,
        audio: torch.Tensor | np.ndarray | list | None = None,
        sample_rate: int | None = None,
        prompt_latents: torch.Tensor | None = None,
        audio_length_in_s: float | None = None,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
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
        decode_first_chunk_frames: int = DEFAULT_DECODE_FIRST_CHUNK_FRAMES,
        instrument: str | int | list[str | int] | None = None,
        guidance_scale: float = 1.0,
        temperature: float | None = None,
    ) -> AudioPipelineOutput | tuple:
        r"""
        Generates audio: unconditionally, or continuing an audio prompt. The frames are decoded on a second
        thread, chunk by chunk, while the next ones are generated.

        Args:
            audio (`torch.Tensor` or `np.ndarray` of shape `(samples,)`, `(channels, samples)` or
                `(batch_size, channels, samples)`, or a list of waveforms of one shape, *optional*): an audio
                prompt to continue, real floats in [-1, 1].
            sample_rate (`int`, *optional*): the prompt's sample rate in Hz (required with `audio`).
            prompt_latents (`torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`, *optional*): an
                already encoded prompt, instead of `audio`.
            audio_length_in_s (`float`, *optional*): length of the NEW audio in seconds (the prompt is not
                repeated in the output), at most an hour. Exactly one of this and `num_frames`.
            num_frames (`int`, *optional*): length of the new audio in latent frames.
            num_inference_steps (`int`, *optional*): Sampler steps per frame; by default the Sampler's own
                (`sampler.config.num_inference_steps`).
            inference_noise (`float`, *optional*): k_inf, the noise mixed into each frame before it is fed
                back; by default the Backbone config's `inference_noise`.
            batch_size (`int`, *optional*): waveforms to generate without a prompt (1 by default).
            num_waveforms_per_prompt (`int`, defaults to 1): waveforms per prompt (per unit of `batch_size`
                without a prompt).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): one generator, or one per
                waveform (then each waveform is reproducible on its own, whatever batch it is in).
            output_type (`str`, defaults to `"np"`): `"np"`, `"pt"`, or `"latent"` (the frames, not decoded).
            return_dict (`bool`, defaults to `True`): return an `AudioPipelineOutput` instead of a tuple.
            callback_on_step_end (`Callable`, *optional*): called after each FRAME as
                `callback(pipe, frame_index, frame_index, callback_kwargs)`, with the new frame
                `(batch_size, 1, latent_dim)` in `callback_kwargs["latents"]`; a `"latents"` entry in the dict
                it returns replaces the frame (earlier frames were already fed back). `pipe._interrupt = True`
                stops after the current frame.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): among `_callback_tensor_inputs`.
            context_shift (`int`, *optional*): frames dropped from the sliding window once the Backbone's
                context is full (default: half the context).
            decode_chunk_frames (`int`, defaults to 64): frames decoded at a time (also the streaming chunk),
                once the chunks have grown from `decode_first_chunk_frames`.
            decode_context_frames (`int`, defaults to 4): frames of context decoded on each side of a chunk,
                and the length of the crossfade between chunks.
            decode_first_chunk_frames (`int`, defaults to 4): frames of the first chunk; each next chunk has
                twice as many, up to `decode_chunk_frames` (4, 8, 16, 32, 64, 64, ...), so that `stream`'s
                first audio comes after 4 + `decode_context_frames` frames. Pass `decode_chunk_frames` for
                chunks of one size. The chunking shapes the audio slightly (each chunk's Griffin-Lim phase),
                never its length; `decode_latents` with the same arguments decodes the same audio.
            instrument (`str`, `int` or a list of them, *optional*): with an instrument-conditioned Backbone
                (`backbone.config.instrument_names`), the instrument by name or id, for every waveform or one
                per waveform. `None` generates without one.
            guidance_scale (`float`, defaults to 1.0): classifier-free guidance weight w with `instrument`:
                each Sampler step predicts u + w (c - u) from the conditional (c) and unconditional (u)
                predictions, on twice the batch. 1 is no guidance and no extra cost.
            temperature (`float`, *optional*): tau, the variance of the noise each frame's flow starts from
                (standard deviation sqrt(tau)): below 1 the frames keep nearer the modes, above 1 they spread.
                By default the Sampler's own (`sampler.config.temperature`, the value measured best for it).

        Returns:
            [`~diffusers.pipelines.AudioPipelineOutput`] with `audios` of shape
            `(batch_size, channels, samples)` (latents `(batch_size, num_frames, latent_dim)` for
            `output_type="latent"`), or a tuple.
        """
        # `stream` takes this call's arguments but `return_dict`: read before any other local exists.
        arguments = {name: value for name, value in locals().items() if name not in ("self", "return_dict")}
        if not isinstance(return_dict, bool):
            raise ValueError(f"`return_dict` must be True or False, got {return_dict!r}.")
        chunks, axis = list(self.stream(**arguments)), 1 if output_type == "latent" else -1
        output = np.concatenate(chunks, axis=axis) if output_type == "np" else torch.cat(chunks, dim=axis)
        return AudioPipelineOutput(audios=output) if return_dict else (output,)

    def stream(
        self,
        audio: torch.Tensor | np.ndarray | list | None = None,
        sample_rate: int | None = None,
        prompt_latents: torch.Tensor | None = None,
        audio_length_in_s: float | None = None,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
        inference_noise: float | None = None,
        batch_size: int | None = None,
        num_waveforms_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        context_shift: int | None = None,
        decode_chunk_frames: int = DEFAULT_DECODE_CHUNK_FRAMES,
        decode_context_frames: int = DEFAULT_DECODE_CONTEXT_FRAMES,
        decode_first_chunk_frames: int = DEFAULT_DECODE_FIRST_CHUNK_FRAMES,
        instrument: str | int | list[str | int] | None = None,
        guidance_scale: float = 1.0,
        temperature: float | None = None,
    ) -> Iterator[np.ndarray | torch.Tensor]:
        r"""
        Generates audio as [`~CAMPipeline.__call__`] does, with the same arguments (`return_dict` aside),
        yielding it in chunks as soon as each is decoded: for real-time playback or interactive use. The
        chunks grow: `decode_first_chunk_frames` frames first (4), then twice as many each time up to
        `decode_chunk_frames` (64), so the first audio comes after a few frames and the rest in large chunks
        (see `decode_chunk_sizes`). A chunk is decoded on a second thread while the next frames are generated.
        Memory stays bounded however long the audio. Concatenated along the last axis, the chunks equal
        `__call__`'s output for the same arguments and seed.

        The arguments are checked, an audio prompt encoded and `pipe.guidance_scale` set when `stream` is
        called: bad input raises here, not at the first chunk.

        Returns:
            An iterator of `np.ndarray` or `torch.Tensor` of shape `(batch_size, channels, chunk_samples)`, or
            latents `(batch_size, chunk_frames, latent_dim)` for `output_type="latent"`.
        """
        # 1. Check every argument, before any work: one object, defaults filled in, that the rest reads.
        arguments = {name: value for name, value in locals().items() if name != "self"}
        inputs = check_generation_inputs(self, **arguments)

        # 2. Encode the prompt (if any), one copy per waveform.
        prompt_latents = self._encode_checked_prompt(
            inputs.audio, inputs.sample_rate, inputs.prompt_latents, inputs.num_waveforms_per_prompt
        )

        # 3. Prepare the instruments; set what a callback reads (the frame count, the guidance).
        instrument_ids = self.prepare_instrument_ids(inputs.instrument, inputs.num_waveforms)
        self._num_timesteps, self._guidance_scale = inputs.num_frames, inputs.guidance_scale
        self._interrupt = False

        # 4. The autoregressive loop; a second thread decodes each chunk as soon as its frames exist.
        return self._output_chunks(self.generate_frames(inputs, prompt_latents, instrument_ids), inputs)

    def _output_chunks(
        self, frames: Iterator[torch.Tensor], inputs: GenerationInputs
    ) -> Iterator[np.ndarray | torch.Tensor]:
        """The frames in growing chunks (`decode_chunk_sizes`), decoded (beside the loop) unless
        `output_type` is "latent"."""
        output_type = inputs.output_type
        chunk, context = inputs.decode_chunk_frames, inputs.decode_context_frames
        first = inputs.decode_first_chunk_frames
        if output_type == "latent":
            # Decoding would catch a diverged Sampler's NaN; undecoded frames are checked once per chunk.
            sizes = decode_chunk_sizes(first, chunk)
            chunks = map(check_generated_latents, _stack_in_chunks(frames, sizes))
        else:
            pieces = (frame[:, None] for frame in frames)
            chunks = self.autoencoder.decode_stream_beside(pieces, chunk, context, first)
        for chunk in chunks:
            yield chunk.cpu().numpy() if output_type == "np" else chunk
        self.maybe_free_model_hooks()


def _stack_in_chunks(frames: Iterator[torch.Tensor], sizes: Iterator[int]) -> Iterator[torch.Tensor]:
    """Frames `(batch_size, latent_dim)`, stacked `size` at a time for each size of `sizes`:
    `(batch_size, size, latent_dim)` (the last shorter)."""
    while chunk := list(islice(frames, next(sizes))):
        yield torch.stack(chunk, dim=1)


__all__ = ["MAX_AUDIO_LENGTH_IN_S", "MAX_GUIDANCE_SCALE", "OUTPUT_TYPES", "CAMPipeline"]
