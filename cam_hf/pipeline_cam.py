"""CAMPipeline: audio generation with a Continuous Autoregressive Model (Pasini et al., arXiv 2411.18447).

    audio prompt --autoencoder.encode--> prompt latents
    for each new frame:  z_t = Backbone.step(input_t)              (KV cache: the same cost at every position)
                         x_{t+1} = Sampler's flow, noise -> data   (a diffusers scheduler, num_inference_steps)
                         input_{t+1} = (1 - k_inf) x_{t+1} + k_inf eps
    latents --autoencoder.decode (in chunks)--> audio
"""

import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from huggingface_hub import ModelCard, create_repo, upload_folder

from .modeling_cam import CAMModel, mix_noise
from .sampler import CAMSampler, randn, sample_next_frame

# Longer requests are almost certainly a unit mistake (samples or milliseconds for seconds).
MAX_AUDIO_LENGTH_IN_S = 3600.0
# Flow steps per frame, chosen in docs/performance.md: 16 nearly halve 8 steps' Frechet distance, 32 gain little.
DEFAULT_NUM_INFERENCE_STEPS = 16

MODEL_CARD_TEMPLATE = """---
library_name: cam_hf
tags:
- audio-generation
- music
- continuous-autoregressive
- cam
pipeline_tag: text-to-audio
---

# {title}

A Continuous Autoregressive Model (CAM, [Pasini et al., 2024](https://arxiv.org/abs/2411.18447)) that generates
audio one latent frame at a time, without discrete tokens. A causal transformer (the Backbone) reads the latent
frames so far; a small rectified-flow MLP (the Sampler) draws the next frame; the autoencoder turns frames into
sound. The Backbone was trained on inputs corrupted with random noise so that, at generation, it tolerates its own
errors instead of drifting.

## Components

| component | class | size |
|---|---|---|
| Backbone | `{backbone_class}` | {backbone_params} parameters, {layers} layers x {hidden} wide, context {context} frames |
| Sampler | `{sampler_class}` | {sampler_params} parameters, {blocks} blocks x {width}, predicts `{prediction}` |
| scheduler | `{scheduler_class}` | {default_steps} steps per frame by default |
| autoencoder | `{autoencoder_class}` | {sample_rate} Hz, {channels} channel(s), {latent_dim}-dim latents at {frame_rate:.2f} frames/s |

Noise augmentation in training: k ~ U(0, {max_training_noise}) drawn {noise_sampling}, `{noise_mixing}` mixing.
Inference noise k_inf = {inference_noise}.

## Training

{training_details}

## Generate

```python
import soundfile as sf
import torch
from cam_hf import CAMPipeline

pipe = CAMPipeline.from_pretrained("{repo_id}")
audio = pipe(audio_length_in_s=10.0, generator=torch.Generator().manual_seed(0)).audios[0]
sf.write("sample.wav", audio.T, pipe.sample_rate)
```

Continue a recording with `pipe(audio=waveform, sample_rate=sr, audio_length_in_s=20)`; stream with
`for chunk in pipe.stream(...)`. See the cam_hf documentation (`docs/pipeline.md`).
"""


def crossfade(outgoing: torch.Tensor, incoming: torch.Tensor) -> torch.Tensor:
    """Fades from `outgoing` `[..., n]` to the first n samples of `incoming` `[..., m]` (linear; n <= m)."""
    length = min(outgoing.shape[-1], incoming.shape[-1])
    fade_in = torch.arange(1, length + 1, device=incoming.device, dtype=incoming.dtype) / (length + 1)
    blended = outgoing[..., :length] * (1 - fade_in) + incoming[..., :length] * fade_in
    return torch.cat([blended, incoming[..., length:]], dim=-1)


class CAMPipeline(DiffusionPipeline):
    r"""
    Generates audio with a Continuous Autoregressive Model: unconditionally, or as a continuation of an audio prompt.

    Args:
        backbone ([`CAMModel`]): the causal transformer producing one conditioning vector z_t per frame.
        sampler ([`CAMSampler`]): the per-frame flow (or noise-prediction) MLP.
        scheduler ([`~diffusers.SchedulerMixin`]): integrates the Sampler for each frame, e.g.
            `FlowMatchEulerDiscreteScheduler` (default), `FlowMatchHeunDiscreteScheduler`, or `UniPCMultistepScheduler`
            with `prediction_type="flow_prediction", use_flow_sigmas=True`.
        autoencoder: a cam_hf autoencoder (`encode` audio `[B, C, N]` -> latents `[B, T, D]`, `decode` back).
    """

    model_cpu_offload_seq = "backbone->sampler->autoencoder"
    _callback_tensor_inputs = ["latents"]

    def __init__(self, backbone: CAMModel, sampler: CAMSampler, scheduler: SchedulerMixin, autoencoder):
        super().__init__()
        if backbone.config.latent_dim != autoencoder.latent_dim:
            raise ValueError(
                f"The autoencoder's latent_dim ({autoencoder.latent_dim}) differs from the Backbone's "
                f"({backbone.config.latent_dim}): they must be trained on the same latents."
            )
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
    def interrupt(self) -> bool:
        return getattr(self, "_interrupt", False)

    # ---- inputs ----------------------------------------------------------------------------------------------

    def encode_prompt(self, audio: torch.Tensor | np.ndarray, sample_rate: int | None) -> torch.Tensor:
        r"""
        Encodes an audio prompt.

        Args:
            audio (`torch.Tensor` or `np.ndarray` of shape `(samples,)`, `(channels, samples)` or
                `(batch_size, channels, samples)`): the waveform in [-1, 1].
            sample_rate (`int`): its sample rate; resampled by the autoencoder when it differs from `self.sample_rate`.

        Returns:
            `torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`.
        """
        audio = torch.as_tensor(audio)
        if audio.ndim == 1:
            audio = audio[None, None]
        elif audio.ndim == 2:
            audio = audio[None]
        if audio.ndim != 3:
            raise ValueError(
                f"`audio` must have shape (samples,), (channels, samples) or (batch, channels, samples), got "
                f"{tuple(audio.shape)}."
            )
        if audio.shape[-1] == 0:
            raise ValueError("`audio` is empty (zero samples): pass a prompt of at least one latent frame.")
        if sample_rate is None:
            raise ValueError(
                f"Pass the prompt's `sample_rate` with `audio` (this pipeline generates at {self.sample_rate} Hz)."
            )
        return self.autoencoder.encode(audio.float(), sample_rate=sample_rate)

    def check_inputs(
        self,
        audio,
        prompt_latents,
        audio_length_in_s,
        num_frames,
        num_inference_steps,
        inference_noise,
        num_waveforms_per_prompt,
        output_type,
        callback_on_step_end_tensor_inputs,
        decode_chunk_frames,
        decode_context_frames,
    ) -> None:
        if audio is not None and prompt_latents is not None:
            raise ValueError("Pass either `audio` or `prompt_latents` as the prompt, not both.")
        if prompt_latents is not None:
            if prompt_latents.ndim != 3 or prompt_latents.shape[-1] != self.backbone.config.latent_dim:
                raise ValueError(
                    f"`prompt_latents` must have shape (batch_size, num_frames, {self.backbone.config.latent_dim}), "
                    f"got {tuple(prompt_latents.shape)}."
                )
            if prompt_latents.shape[1] == 0:
                raise ValueError("`prompt_latents` holds zero frames: pass at least one frame, or no prompt.")
            if not torch.isfinite(prompt_latents).all():
                raise ValueError("`prompt_latents` contain NaN or inf values.")
        if (audio_length_in_s is None) == (num_frames is None):
            raise ValueError("Pass exactly one of `audio_length_in_s` and `num_frames`.")
        if audio_length_in_s is not None and not 0 < audio_length_in_s <= MAX_AUDIO_LENGTH_IN_S:
            raise ValueError(
                f"`audio_length_in_s` must be in (0, {MAX_AUDIO_LENGTH_IN_S:.0f}] seconds, got {audio_length_in_s}."
            )
        if num_frames is not None and not 0 < num_frames <= MAX_AUDIO_LENGTH_IN_S * self.frame_rate:
            raise ValueError(
                f"`num_frames` must be in [1, {int(MAX_AUDIO_LENGTH_IN_S * self.frame_rate)}] "
                f"({MAX_AUDIO_LENGTH_IN_S:.0f} s), got {num_frames}."
            )
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps}.")
        if inference_noise is not None and not 0.0 <= inference_noise <= 1.0:
            raise ValueError(f"`inference_noise` (k_inf) must be in [0, 1], got {inference_noise}.")
        if not isinstance(num_waveforms_per_prompt, int) or num_waveforms_per_prompt < 1:
            raise ValueError(f"`num_waveforms_per_prompt` must be a positive integer, got {num_waveforms_per_prompt}.")
        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"`output_type` must be 'np', 'pt' or 'latent', got {output_type!r}.")
        if callback_on_step_end_tensor_inputs is not None and not all(
            k in self._callback_tensor_inputs for k in callback_on_step_end_tensor_inputs
        ):
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` must be among {self._callback_tensor_inputs}, got "
                f"{callback_on_step_end_tensor_inputs}."
            )
        if decode_chunk_frames < 1:
            raise ValueError(f"`decode_chunk_frames` must be a positive integer, got {decode_chunk_frames}.")
        if decode_context_frames < 0:
            raise ValueError(f"`decode_context_frames` must be 0 or more, got {decode_context_frames}.")

    # ---- generation ------------------------------------------------------------------------------------------

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
    ) -> Iterator[torch.Tensor]:
        r"""
        The autoregressive loop. Yields each new frame as soon as it is drawn.

        The Backbone sees the start vector, then the prompt frames, then its own frames, each mixed with the
        inference noise k_inf before it is fed back. When the next frame would not fit in the context, the cache is
        rebuilt from the start vector and the last `context_frames - context_shift` frames, at positions 1, 2, ...:
        exactly what a training crop looks like (a crop always begins with the start vector). That rebuild is one
        batched forward pass every `context_shift` frames, so the cost per frame stays flat however long the audio.

        Args:
            prompt_latents (`torch.Tensor` of shape `(batch_size, num_prompt_frames, latent_dim)`, *optional*).
            batch_size (`int`): number of sequences.
            num_frames (`int`): number of frames to generate.
            num_inference_steps (`int`): Sampler steps per frame.
            inference_noise (`float`): k_inf.
            generator (`torch.Generator` or list of `batch_size` of them, *optional*).
            callback_on_step_end (`Callable`, *optional*): called after each frame as
                `callback(pipe, frame_index, frame_index, {"latents": frames so far})`; may return modified latents.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): tensors passed to the callback.
            context_shift (`int`, *optional*): frames dropped from the window at each rebuild; defaults to half the
                context.

        Yields:
            `torch.Tensor` of shape `(batch_size, latent_dim)`: the next frame.
        """
        device, dtype = self._execution_device, self.backbone.dtype
        latent_dim = self.backbone.config.latent_dim
        window = self.context_frames
        context_shift = context_shift or max(1, window // 2)
        if not 1 <= context_shift < window:
            raise ValueError(f"`context_shift` must be in [1, {window - 1}], got {context_shift}.")
        k_inf = torch.tensor(inference_noise, device=device, dtype=dtype)
        mixing = self.backbone.config.noise_mixing

        def feed(frames: torch.Tensor, cache=None):
            levels = k_inf.expand(frames.shape[:2]) if self.backbone.config.condition_on_noise_level else None
            output = self.backbone(frames, cache=cache, use_cache=True, noise_level=levels)
            return output.last_hidden_state[:, -1], output.cache

        # `history` holds the Backbone's inputs (noisy as fed), so a rebuilt window sees the same frames as before.
        if prompt_latents is not None:
            prompt = prompt_latents.to(device=device, dtype=dtype)
            noise = randn(prompt.shape, generator, device, dtype)
            history = mix_noise(prompt, noise, k_inf, mixing)[:, -(window - context_shift) :]
        else:
            history = torch.zeros(batch_size, 0, latent_dim, device=device, dtype=dtype)
        condition, cache = feed(history)

        generated = torch.zeros(batch_size, 0, latent_dim, device=device, dtype=dtype)
        for index in range(num_frames):
            if self.interrupt:
                break
            frame = sample_next_frame(self.sampler, self.scheduler, condition, num_inference_steps, generator)
            generated = torch.cat([generated, frame[:, None]], dim=1)
            if callback_on_step_end is not None:
                available = {"latents": generated}
                callback_kwargs = {name: available[name] for name in callback_on_step_end_tensor_inputs}
                outputs = callback_on_step_end(self, index, index, callback_kwargs)
                generated = outputs.pop("latents", generated)
                frame = generated[:, -1]
            yield frame
            if index == num_frames - 1:
                break
            fed = mix_noise(frame[:, None], randn((batch_size, 1, latent_dim), generator, device, dtype), k_inf, mixing)
            history = torch.cat([history, fed], dim=1)
            if history.shape[1] > window:
                history = history[:, -(window - context_shift) :]
                condition, cache = feed(history)
            else:
                condition, cache = feed(fed, cache)

    def decode_latents(
        self, latents: torch.Tensor, decode_chunk_frames: int = 64, decode_context_frames: int = 4
    ) -> torch.Tensor:
        r"""
        Decodes latents in chunks, exactly as `__call__` and `stream` do (see `decode_chunks`).

        Args:
            latents (`torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`).
            decode_chunk_frames (`int`): frames per chunk.
            decode_context_frames (`int`): context frames on each side of a chunk, and the crossfade length.

        Returns:
            `torch.Tensor` of shape `(batch_size, channels, num_frames * hop_length)`.
        """
        return torch.cat(list(self.decode_chunks(latents.unbind(1), decode_chunk_frames, decode_context_frames)), -1)

    def decode_chunks(
        self, frames: Iterable[torch.Tensor], decode_chunk_frames: int, decode_context_frames: int
    ) -> Iterator[torch.Tensor]:
        r"""
        Decodes a stream of frames chunk by chunk, with bounded memory and a latency of one chunk plus context.

        Each chunk of `decode_chunk_frames` frames is decoded together with `decode_context_frames` frames on each
        side (where they exist), so the autoencoder sees the signal continue across the chunk's edges. The audio of
        the first `decode_context_frames` frames of a chunk is crossfaded with the previous chunk's decode of the same
        frames, which hides the seam a per-chunk decoder (Griffin-Lim's phase, a VAE's receptive field) would leave.
        One-shot and streamed decoding run through here, so they give identical audio.

        Args:
            frames (iterable of `torch.Tensor` of shape `(batch_size, latent_dim)`): the frames, in order.
            decode_chunk_frames (`int`): frames per chunk.
            decode_context_frames (`int`): context frames on each side, and the crossfade length.

        Yields:
            `torch.Tensor` of shape `(batch_size, channels, chunk_frames * hop_length)`, float32.
        """
        context, buffered, offset = decode_context_frames, [], 0  # `buffered[0]` is frame number `offset`
        start, previous_tail = 0, None

        def decode(end: int, total: int | None):
            nonlocal start, offset, buffered, previous_tail
            last = end + context if total is None else min(end + context, total)
            first = max(0, start - context)
            window = torch.stack(buffered[first - offset : last - offset], dim=1)
            # Autoencoders take float32 latents and cast to their own weights' dtype themselves.
            audio = self.autoencoder.decode(window.float()).float()
            hop = audio.shape[-1] // (last - first)
            body = audio[..., (start - first) * hop : (end - first) * hop]
            if previous_tail is not None and previous_tail.shape[-1] > 0:
                body = crossfade(previous_tail, body)
            previous_tail = audio[..., (end - first) * hop :]
            # Keep only what the next chunk's left context needs.
            keep_from = max(0, end - context)
            buffered, offset, start = buffered[keep_from - offset :], keep_from, end
            return body

        for frame in frames:
            buffered.append(frame)
            if offset + len(buffered) >= start + decode_chunk_frames + context:
                yield decode(start + decode_chunk_frames, None)
        total = offset + len(buffered)
        while start < total:
            yield decode(min(start + decode_chunk_frames, total), total)

    def _prepare(self, audio, sample_rate, prompt_latents, audio_length_in_s, num_frames, num_waveforms_per_prompt,
                 generator):
        if audio is not None:
            prompt_latents = self.encode_prompt(audio, sample_rate)
        if num_frames is None:
            num_frames = max(1, math.ceil(audio_length_in_s * self.frame_rate))
        prompt_batch = prompt_latents.shape[0] if prompt_latents is not None else 1
        if prompt_latents is not None:
            prompt_latents = prompt_latents.repeat_interleave(num_waveforms_per_prompt, dim=0)
        batch_size = prompt_batch * num_waveforms_per_prompt
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(
                f"Got {len(generator)} generators for {batch_size} waveforms ({prompt_batch} prompt(s) x "
                f"{num_waveforms_per_prompt} per prompt): pass one generator per waveform, or a single one."
            )
        return prompt_latents, batch_size, num_frames

    @torch.no_grad()
    def __call__(
        self,
        audio: torch.Tensor | np.ndarray | None = None,
        sample_rate: int | None = None,
        prompt_latents: torch.Tensor | None = None,
        audio_length_in_s: float | None = None,
        num_frames: int | None = None,
        num_inference_steps: int = DEFAULT_NUM_INFERENCE_STEPS,
        inference_noise: float | None = None,
        num_waveforms_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        context_shift: int | None = None,
        decode_chunk_frames: int = 64,
        decode_context_frames: int = 4,
    ) -> AudioPipelineOutput | tuple:
        r"""
        Generates audio.

        Args:
            audio (`torch.Tensor` or `np.ndarray` of shape `(samples,)`, `(channels, samples)` or
                `(batch_size, channels, samples)`, *optional*): an audio prompt to continue.
            sample_rate (`int`, *optional*): the prompt's sample rate (required with `audio`).
            prompt_latents (`torch.Tensor` of shape `(batch_size, num_frames, latent_dim)`, *optional*): an already
                encoded prompt, instead of `audio`.
            audio_length_in_s (`float`, *optional*): length of the NEW audio in seconds (the prompt is not repeated
                in the output). Exactly one of this and `num_frames`.
            num_frames (`int`, *optional*): length of the new audio in latent frames.
            num_inference_steps (`int`, defaults to 16): Sampler flow steps per frame.
            inference_noise (`float`, *optional*): k_inf, the noise mixed into each frame before it is fed back;
                defaults to the Backbone config's `inference_noise`.
            num_waveforms_per_prompt (`int`, defaults to 1): waveforms per prompt (or in total, without a prompt).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): one generator, or one per waveform
                (then each waveform is reproducible on its own, whatever batch it is in).
            output_type (`str`, defaults to `"np"`): `"np"`, `"pt"`, or `"latent"` (the frames, not decoded).
            return_dict (`bool`, defaults to `True`): return an `AudioPipelineOutput` instead of a tuple.
            callback_on_step_end (`Callable`, *optional*): called after each FRAME with
                `(pipe, frame_index, frame_index, callback_kwargs)`; returns a dict that may replace `"latents"`.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): among `_callback_tensor_inputs`.
            context_shift (`int`, *optional*): frames dropped from the sliding window once the Backbone's context is
                full (default: half the context).
            decode_chunk_frames (`int`, defaults to 64): frames decoded at a time (also the streaming chunk).
            decode_context_frames (`int`, defaults to 4): frames of context decoded on each side of a chunk, and
                the length of the crossfade between chunks (see `decode_chunks`).

        Returns:
            [`~diffusers.pipelines.AudioPipelineOutput`] with `audios` of shape `(batch_size, channels, samples)`
            (or latents `(batch_size, num_frames, latent_dim)` for `output_type="latent"`), or a tuple.
        """
        chunks = list(
            self.stream(
                audio=audio,
                sample_rate=sample_rate,
                prompt_latents=prompt_latents,
                audio_length_in_s=audio_length_in_s,
                num_frames=num_frames,
                num_inference_steps=num_inference_steps,
                inference_noise=inference_noise,
                num_waveforms_per_prompt=num_waveforms_per_prompt,
                generator=generator,
                output_type=output_type,
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
                context_shift=context_shift,
                decode_chunk_frames=decode_chunk_frames,
                decode_context_frames=decode_context_frames,
                _progress=True,
            )
        )
        axis = 1 if output_type == "latent" else -1
        output = np.concatenate(chunks, axis=axis) if output_type == "np" else torch.cat(chunks, dim=axis)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (output,)
        return AudioPipelineOutput(audios=output)

    @torch.no_grad()
    def stream(
        self,
        audio: torch.Tensor | np.ndarray | None = None,
        sample_rate: int | None = None,
        prompt_latents: torch.Tensor | None = None,
        audio_length_in_s: float | None = None,
        num_frames: int | None = None,
        num_inference_steps: int = DEFAULT_NUM_INFERENCE_STEPS,
        inference_noise: float | None = None,
        num_waveforms_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "np",
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        context_shift: int | None = None,
        decode_chunk_frames: int = 64,
        decode_context_frames: int = 4,
        _progress: bool = False,
    ) -> Iterator[np.ndarray | torch.Tensor]:
        r"""
        Generates audio like `__call__`, yielding it in chunks of `decode_chunk_frames` frames as soon as each is
        decoded: for real-time playback or interactive use. Concatenated along the last axis, the chunks equal
        `__call__`'s output for the same arguments and seed.

        Yields:
            `np.ndarray` or `torch.Tensor` of shape `(batch_size, channels, chunk_samples)`, or latents
            `(batch_size, chunk_frames, latent_dim)` for `output_type="latent"`.
        """
        if isinstance(callback_on_step_end, PipelineCallback | MultiPipelineCallbacks):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        self.check_inputs(
            audio, prompt_latents, audio_length_in_s, num_frames, num_inference_steps, inference_noise,
            num_waveforms_per_prompt, output_type, callback_on_step_end_tensor_inputs, decode_chunk_frames,
            decode_context_frames,
        )
        if inference_noise is None:
            inference_noise = self.backbone.config.inference_noise
        prompt_latents, batch_size, num_frames = self._prepare(
            audio, sample_rate, prompt_latents, audio_length_in_s, num_frames, num_waveforms_per_prompt, generator
        )
        self._interrupt = False
        frames = self.generate_frames(
            prompt_latents, batch_size, num_frames, num_inference_steps, inference_noise, generator,
            callback_on_step_end, callback_on_step_end_tensor_inputs, context_shift,
        )
        progress = self.progress_bar(total=num_frames) if _progress else None

        def counted(frames):
            for frame in frames:
                if progress is not None:
                    progress.update()
                yield frame
            if progress is not None:
                progress.close()

        frames = counted(frames)
        if output_type == "latent":
            chunk = []
            for frame in frames:
                chunk.append(frame)
                if len(chunk) == decode_chunk_frames:
                    yield torch.stack(chunk, dim=1)
                    chunk = []
            if chunk:
                yield torch.stack(chunk, dim=1)
            return
        for audio in self.decode_chunks(frames, decode_chunk_frames, decode_context_frames):
            yield audio.cpu().numpy() if output_type == "np" else audio

    # ---- sharing ---------------------------------------------------------------------------------------------

    def model_card(self, repo_id: str = "path/to/this/folder", training_details: str | None = None) -> ModelCard:
        """A model card describing this pipeline's components, how to generate, and `training_details`."""
        backbone, sampler = self.backbone.config, self.sampler.config
        text = MODEL_CARD_TEMPLATE.format(
            title=repo_id.split("/")[-1],
            repo_id=repo_id,
            backbone_class=type(self.backbone).__name__,
            backbone_params=f"{sum(p.numel() for p in self.backbone.parameters()):,}",
            layers=backbone.num_hidden_layers,
            hidden=backbone.hidden_size,
            context=self.context_frames,
            sampler_class=type(self.sampler).__name__,
            sampler_params=f"{sum(p.numel() for p in self.sampler.parameters()):,}",
            blocks=sampler.num_blocks,
            width=sampler.width,
            prediction=sampler.prediction_type,
            scheduler_class=type(self.scheduler).__name__,
            default_steps=DEFAULT_NUM_INFERENCE_STEPS,
            autoencoder_class=type(self.autoencoder).__name__,
            sample_rate=self.sample_rate,
            channels=self.autoencoder.audio_channels,
            latent_dim=self.autoencoder.latent_dim,
            frame_rate=self.frame_rate,
            max_training_noise=backbone.max_training_noise,
            noise_sampling="per frame" if backbone.noise_sampling == "per_frame" else "per sequence",
            noise_mixing=backbone.noise_mixing,
            inference_noise=backbone.inference_noise,
            training_details=training_details or "Not recorded: pass `training_details` to `save_pretrained`.",
        )
        return ModelCard(text)

    def save_pretrained(self, save_directory: str | os.PathLike, training_details: str | None = None, **kwargs):
        """`DiffusionPipeline.save_pretrained` (safetensors, one folder per component), plus a model card
        (`README.md`) unless the folder already has one."""
        super().save_pretrained(save_directory, **kwargs)
        card_path = os.path.join(save_directory, "README.md")
        if not os.path.exists(card_path):
            self.model_card(str(save_directory), training_details).save(card_path)

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str = "Upload CAMPipeline",
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        training_details: str | None = None,
    ):
        """Saves the pipeline with its model card to a temporary folder and uploads it to `repo_id` on the Hub."""
        repo_id = create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder)
            self.model_card(repo_id, training_details).save(os.path.join(folder, "README.md"))
            return upload_folder(
                repo_id=repo_id, folder_path=folder, commit_message=commit_message, token=token, create_pr=create_pr
            )


__all__ = ["CAMPipeline"]
