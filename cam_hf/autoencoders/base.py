"""The interface every CAM audio autoencoder shares.

An autoencoder maps audio `[B, C, N]` to continuous latents `[B, T, D]` and back. The CAM Backbone and Sampler
only ever see latents, so everything they rely on lives here: the sample rate and channel count the codec
wants, the latent size `D`, the frame rate, and per-channel latent statistics that bring latents to ~unit
scale (the Sampler's noise and the noise augmentation both assume it).

Subclasses are `ModelMixin` + `ConfigMixin` (so a pipeline saves and loads them) and implement five things:
the `sample_rate`, `audio_channels`, `latent_dim` and `hop_length` properties, plus `_encode` / `_decode` on
audio already in the codec's format and on latents without normalisation. Input checking, channel conversion,
resampling, normalisation and chunked (streaming) decoding are done once, here.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from ..utils.audio import resample_audio
from ..utils.checks import check_audio, check_decode_chunking, check_sample_rate

# A latent channel whose standard deviation is below this
# is treated as constant: dividing by ~0 would blow up.
_MIN_STD = 1e-5
# Chunked decoding: frames decoded at a time (~6 s at 10.77 frames/s), and frames of context on each side.
DEFAULT_DECODE_CHUNK_FRAMES = 64
DEFAULT_DECODE_CONTEXT_FRAMES = 4
# The first chunk's frames; the chunks after it double up to `decode_chunk_frames` (4, 8, 16, 32, 64, 64,
# ...), so that a stream's first audio needs 4 + 4 frames rather than 64 + 4 (`docs/performance.md`).
DEFAULT_DECODE_FIRST_CHUNK_FRAMES = 4
# What `decode_stream_beside` passes between its threads to say that no more pieces or chunks follow.
_END_OF_STREAM = object()


class _StreamClosed(Exception):
    """The consumer of `decode_stream_beside` stopped: its decoding thread ends without decoding the rest."""


def decode_chunk_sizes(first_chunk_frames: int, chunk_frames: int) -> Iterator[int]:
    """The frames of each chunk of a chunked decode, in order and without end: `first_chunk_frames`, then
    doubling up to `chunk_frames` and staying there (4, 8, 16, 32, 64, 64, ... for 4 and 64). A first chunk of
    `chunk_frames` or more gives chunks of `chunk_frames` throughout."""
    size = min(first_chunk_frames, chunk_frames)
    while True:
        yield size
        size = min(2 * size, chunk_frames)


def crossfade(outgoing: torch.Tensor, incoming: torch.Tensor) -> torch.Tensor:
    """Fades from `outgoing` `[..., n]` to the first n samples of `incoming` `[..., m]` (linear; n <= m)."""
    length = min(outgoing.shape[-1], incoming.shape[-1])
    fade_in = torch.arange(1, length + 1, device=incoming.device, dtype=incoming.dtype) / (length + 1)
    blended = outgoing[..., :length] * (1 - fade_in) + incoming[..., :length] * fade_in
    return torch.cat([blended, incoming[..., length:]], dim=-1)


class AudioAutoencoderMixin:
    """
    Shared behaviour of the CAM autoencoders: checked `encode` / `decode`, channel conversion, resampling, and
    latent normalisation with statistics stored in the config (`latents_mean`, `latents_std`, lists of
    `latent_dim` floats, or `None` before `fit_latent_statistics` has been called, in which case latents are
    returned unnormalised).

    Channel policy: mono audio given to a stereo autoencoder is duplicated to both channels; stereo audio
    given to a mono autoencoder is averaged to mono; any other mismatch raises `ValueError`.

    Sample-rate policy: when `sample_rate` is passed to `encode` and differs from the autoencoder's, the audio
    is resampled with `resample_audio`. When it is not passed, the audio is assumed to be at the autoencoder's
    rate.
    """

    # Config fields that change only how latents are decoded, not the latents themselves (Griffin-Lim's
    # iterations, say): a latent dataset encoded before such a change still suits the model.
    decode_only_config: tuple[str, ...] = ()

    # ---- implemented by each autoencoder -------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        raise NotImplementedError

    @property
    def audio_channels(self) -> int:
        raise NotImplementedError

    @property
    def latent_dim(self) -> int:
        raise NotImplementedError

    @property
    def hop_length(self) -> int:
        """Audio samples per latent frame."""
        raise NotImplementedError

    def _encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Checked audio `[B, audio_channels, N]` at `sample_rate`, float32 -> raw latents
        `[B, T, latent_dim]`."""
        raise NotImplementedError

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) latents `[B, T, latent_dim]` -> audio `[B, audio_channels, N]`."""
        raise NotImplementedError

    def _decode_continuing(self, latents: torch.Tensor, state, keep_from: int) -> tuple[torch.Tensor, object]:
        """`_decode` of one chunk of a stream (`decode_stream`). `state` is what decoding the previous chunk
        returned for the frames the two share (`None` for the first chunk); returns the audio and the state
        for the next chunk, which starts at frame `keep_from` of this one. A codec that carries nothing across
        chunks (the default) decodes each on its own; the mel codec carries its Griffin-Lim phase."""
        return self._decode(latents), None

    @property
    def exact_decode_context_frames(self) -> int | None:
        """Frames of context on each side with which a chunk decodes, away from its edges, exactly as within
        the whole latents (a decoder with a finite receptive field, such as the mel codec's vocoder), or
        `None` when no context makes chunks exact (Griffin-Lim's phase, a sampling decoder: the default).
        With a number, `decode_stream` uses at least that much context and no crossfade: the previous chunk's
        decode of the frames at its edge is the one inexact piece a crossfade would mix in."""
        return None

    # ---- shared --------------------------------------------------------------------------------------------

    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def min_audio_length(self) -> int:
        """The fewest samples (at `sample_rate`) that give one latent frame."""
        return self.hop_length

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """
        Encode audio to normalised latents.

        Args:
            audio (`torch.Tensor` of shape `[B, C, N]`): float audio in [-1, 1]. `C` may differ from
                `audio_channels` by mono <-> stereo (converted, see the class docstring).
            sample_rate (`int`, *optional*): the rate of `audio`; resampled to `self.sample_rate` when it
                differs.

        Returns:
            `torch.Tensor` of shape `[B, T, latent_dim]`, with `T = N // hop_length` (N counted at
            `sample_rate`; trailing samples short of a whole frame are dropped), normalised with the stored
            statistics.
        """
        audio = self.prepare_audio(audio, sample_rate)
        return self.normalize_latents(self._encode(audio))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """
        Decode normalised latents to audio.

        Args:
            latents (`torch.Tensor` of shape `[B, T, latent_dim]`): latents as returned by `encode` (or
                generated).

        Returns:
            `torch.Tensor` of shape `[B, audio_channels, T * hop_length]` at `sample_rate`.
        """
        self._check_latents(latents)
        return self._decode(self.denormalize_latents(latents.float()))

    def decode_chunked(
        self,
        latents: torch.Tensor,
        decode_chunk_frames: int = DEFAULT_DECODE_CHUNK_FRAMES,
        decode_context_frames: int = DEFAULT_DECODE_CONTEXT_FRAMES,
        decode_first_chunk_frames: int = DEFAULT_DECODE_FIRST_CHUNK_FRAMES,
    ) -> torch.Tensor:
        """
        `decode` in chunks (see `decode_stream`): the memory of decoding stays bounded however long the
        latents, and the audio equals what a pipeline streams for the same latents and chunking arguments,
        sample for sample.

        Args:
            latents (`torch.Tensor` of shape `[B, T, latent_dim]`): normalised latents.
            decode_chunk_frames (`int`, defaults to 64): frames decoded at a time, once the chunks have grown.
            decode_context_frames (`int`, defaults to 4): frames of context on each side of a chunk, and the
                length of the crossfade between chunks.
            decode_first_chunk_frames (`int`, defaults to 4): frames of the first chunk; the chunks after it
                double up to `decode_chunk_frames` (`decode_chunk_sizes`).

        Returns:
            `torch.Tensor` of shape `[B, audio_channels, T * hop_length]`, float32.
        """
        self._check_latents(latents)
        chunks = self.decode_stream(
            [latents], decode_chunk_frames, decode_context_frames, decode_first_chunk_frames
        )
        return torch.cat(list(chunks), dim=-1)

    def decode_stream(
        self,
        latents: Iterable[torch.Tensor],
        decode_chunk_frames: int = DEFAULT_DECODE_CHUNK_FRAMES,
        decode_context_frames: int = DEFAULT_DECODE_CONTEXT_FRAMES,
        decode_first_chunk_frames: int = DEFAULT_DECODE_FIRST_CHUNK_FRAMES,
    ) -> Iterator[torch.Tensor]:
        """
        Decodes latents that arrive piece by piece (from a generator, say) into audio, chunk by chunk, as soon
        as each chunk can be decoded: the way diffusers' VAEs decode in tiles, along time.

        The chunks grow: the first has `decode_first_chunk_frames` frames and each next one twice as many, up
        to `decode_chunk_frames` (4, 8, 16, 32, 64, 64, ... by default), so that the first audio of a stream
        needs few frames while the long run decodes in large chunks (less context decoded twice, fewer calls).
        Each chunk is decoded together with `decode_context_frames` frames on
        each side (where they exist), so the codec sees the signal continue across the chunk's edges; the
        audio of the first `decode_context_frames` frames of a chunk is crossfaded with the previous chunk's
        decode of the same frames, which hides the seam a per-chunk decoder (Griffin-Lim's phase, a VAE's
        receptive field) would leave. A codec whose chunks decode exactly given enough context
        (`exact_decode_context_frames`: the mel codec with a vocoder) gets at least that much context and no
        crossfade, and its chunks equal the whole decode. A chunk is yielded once the context frames past its
        end exist: latency is one chunk plus the context (the first chunk's: 4 + 4 frames by default), and
        memory holds at most a chunk and its context, however long the stream.

        Arguments are checked when this is called, not when the first chunk is asked for.

        Args:
            latents (iterable of `torch.Tensor` of shape `[B, t, latent_dim]`): consecutive pieces of the
                latents, any number of frames `t >= 1` each (one frame at a time from a generator, or one
                whole tensor).
            decode_chunk_frames (`int`, defaults to 64): frames per chunk, once the chunks have grown.
            decode_context_frames (`int`, defaults to 4): frames of context on each side, and the crossfade
                length.
            decode_first_chunk_frames (`int`, defaults to 4): frames of the first chunk (at most
                `decode_chunk_frames` are used: pass `decode_chunk_frames` for chunks of one size).

        Yields:
            `torch.Tensor` of shape `[B, audio_channels, chunk_frames * hop_length]`, float32, `chunk_frames`
            following `decode_chunk_sizes`: the last chunk may be shorter. Concatenated along the last axis
            they are the whole audio.
        """
        check_decode_chunking(decode_chunk_frames, decode_context_frames, decode_first_chunk_frames)
        sizes = decode_chunk_sizes(decode_first_chunk_frames, decode_chunk_frames)
        return self._decode_stream(iter(latents), sizes, decode_context_frames)

    def _decode_stream(self, pieces: Iterator[torch.Tensor], sizes: Iterator[int], context: int):
        hop = self.hop_length
        exact_context = self.exact_decode_context_frames
        if exact_context is not None:
            context = max(context, exact_context)
        # `pending`: the pieces some chunk still needs, starting at frame number `offset`.
        pending, offset = [], 0
        available = 0  # frames received so far
        # The first frame of the next chunk, the audio it fades in from, and what the codec carries into it.
        start, previous_tail, carried = 0, None, None

        def decode_chunk(end: int, last: int) -> torch.Tensor:
            """Decodes frames [start, end) with context, frames [first, last) in all; drops what is no longer
            needed."""
            nonlocal pending, offset, start, previous_tail, carried
            # The next chunk starts with its left context, `context` frames before this one ends.
            first, next_first = max(0, start - context), max(0, end - context)
            frames = pending[0] if len(pending) == 1 else torch.cat(pending, dim=1)
            latents = frames[:, first - offset : last - offset]
            self._check_latents(latents)
            with torch.no_grad():
                raw = self.denormalize_latents(latents.float())
                audio, carried = self._decode_continuing(raw, carried, next_first - first)
            body = audio[..., (start - first) * hop : (end - first) * hop]
            if exact_context is None and previous_tail is not None and previous_tail.shape[-1] > 0:
                body = crossfade(previous_tail, body)
            previous_tail = audio[..., (end - first) * hop :]
            # Keep only the frames the next chunk's left context needs.
            pending, offset, start = [frames[:, next_first - offset :]], next_first, end
            return body

        chunk = next(sizes)
        for piece in pieces:
            pending.append(piece)
            available += piece.shape[1]
            while available >= start + chunk + context:
                yield decode_chunk(start + chunk, start + chunk + context)
                chunk = next(sizes)
        while start < available:
            end = min(start + chunk, available)
            yield decode_chunk(end, min(end + context, available))
            chunk = next(sizes)

    def decode_stream_beside(
        self,
        latents: Iterable[torch.Tensor],
        decode_chunk_frames: int = DEFAULT_DECODE_CHUNK_FRAMES,
        decode_context_frames: int = DEFAULT_DECODE_CONTEXT_FRAMES,
        decode_first_chunk_frames: int = DEFAULT_DECODE_FIRST_CHUNK_FRAMES,
    ) -> Iterator[torch.Tensor]:
        """
        `decode_stream` on a second thread, beside whatever makes `latents`: while the caller's iterator
        computes the next pieces (a generation loop, say), the chunks already complete are decoded, so the
        wall time is about the slower of the two stages rather than their sum. The chunks are
        `decode_stream`'s, each yielded as soon as it is decoded and the caller's iterator hands over its next
        piece (or ends).

        The decoding thread runs torch with the caller's `torch.get_num_threads()`; an error in it is raised
        here. Stopping early (closing the iterator) stops the thread without decoding the rest.

        Args:
            latents (iterable of `torch.Tensor` of shape `[B, t, latent_dim]`): consecutive pieces, as
                `decode_stream`.
            decode_chunk_frames (`int`, defaults to 64): frames per chunk, once the chunks have grown.
            decode_context_frames (`int`, defaults to 4): frames of context on each side, and the crossfade
                length.
            decode_first_chunk_frames (`int`, defaults to 4): frames of the first chunk, as `decode_stream`.

        Yields:
            `torch.Tensor` of shape `[B, audio_channels, chunk_frames * hop_length]`, float32, as
            `decode_stream`.
        """
        check_decode_chunking(decode_chunk_frames, decode_context_frames, decode_first_chunk_frames)
        sizes = decode_chunk_sizes(decode_first_chunk_frames, decode_chunk_frames)
        return self._decode_stream_beside(iter(latents), sizes, decode_context_frames)

    def _decode_stream_beside(self, pieces: Iterator[torch.Tensor], sizes: Iterator[int], context: int):
        inbox, outbox, stopped = queue.SimpleQueue(), queue.SimpleQueue(), threading.Event()

        def received() -> Iterator[torch.Tensor]:
            while (piece := inbox.get()) is not _END_OF_STREAM:
                yield piece
            if stopped.is_set():
                raise _StreamClosed  # leave `_decode_stream` without decoding the frames still held

        def decode() -> None:
            try:
                for audio in self._decode_stream(received(), sizes, context):
                    outbox.put(audio)
                outbox.put(_END_OF_STREAM)
            except _StreamClosed:
                pass
            except BaseException as error:  # raised in the caller's thread, by `take`
                outbox.put(error)

        def take(audio):
            if isinstance(audio, BaseException):
                raise audio
            return audio

        thread = threading.Thread(target=decode, name="cam_hf-decode", daemon=True)
        thread.start()
        try:
            for piece in pieces:
                inbox.put(piece)
                while not outbox.empty():
                    yield take(outbox.get())
            inbox.put(_END_OF_STREAM)
            while (audio := outbox.get()) is not _END_OF_STREAM:
                yield take(audio)
        finally:
            stopped.set()
            inbox.put(_END_OF_STREAM)
            # Wait for the thread (at most the chunk it is decoding): a stream dropped just before the
            # interpreter exits would otherwise leave it inside torch at shutdown, which aborts the process.
            thread.join()

    def prepare_audio(self, audio: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """
        Check audio and bring it to this autoencoder's channel count and sample rate, as float32 on its
        device.

        Raises:
            `ValueError`: not a real floating-point waveform (see `check_audio`), wrong number of dimensions,
            unsupported channel count, a sample rate out of range, or too short.
        """
        check_audio(audio)
        audio = torch.as_tensor(audio)
        if audio.ndim != 3:
            raise ValueError(
                f"audio must have shape [batch, channels, samples], got {tuple(audio.shape)}. "
                "Add the missing axes, e.g. `audio[None, None]` for a 1-D signal or `audio[None]` for [C, N]."
            )

        self.check_audio_channels(audio.shape[1])
        if audio.shape[1] == 1 and self.audio_channels == 2:
            audio = audio.expand(-1, 2, -1)
        elif audio.shape[1] == 2 and self.audio_channels == 1:
            audio = audio.mean(dim=1, keepdim=True)

        if sample_rate is not None:
            check_sample_rate(sample_rate)
            audio = resample_audio(audio, int(sample_rate), self.sample_rate)

        if audio.shape[-1] < self.min_audio_length:
            raise ValueError(
                f"audio has {audio.shape[-1]} samples at {self.sample_rate} Hz, fewer than the "
                f"{self.min_audio_length} needed for one latent frame: pass longer audio."
            )
        return audio.to(device=self.device, dtype=torch.float32).contiguous()

    def check_audio_channels(self, channels: int) -> None:
        """Raises `ValueError` unless audio with `channels` channels can be encoded: this autoencoder's count,
        or mono <-> stereo (converted, see the class docstring)."""
        if channels != self.audio_channels and {channels, self.audio_channels} != {1, 2}:
            raise ValueError(
                f"audio has {channels} channels but this autoencoder takes {self.audio_channels}; only "
                "mono <-> stereo is converted automatically. Mix or select channels before encoding."
            )

    def _check_latents(self, latents: torch.Tensor) -> None:
        if not isinstance(latents, torch.Tensor) or latents.ndim != 3:
            shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise ValueError(f"latents must be a tensor of shape [batch, frames, latent_dim], got {shape}.")
        if latents.shape[-1] != self.latent_dim:
            raise ValueError(
                f"latents have {latents.shape[-1]} channels but this autoencoder's latent_dim is "
                f"{self.latent_dim}: they were made by another autoencoder or a Backbone of another size."
            )
        if latents.shape[1] == 0:
            raise ValueError("latents have zero frames: nothing to decode.")
        if not torch.isfinite(latents).all():
            raise ValueError("latents contain NaN or infinite values: the generator diverged upstream.")

    # ---- latent statistics ---------------------------------------------------------------------------------

    def _latent_statistics(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        mean, std = self.config.latents_mean, self.config.latents_std
        if mean is None or std is None:
            return None
        mean = torch.tensor(mean, dtype=latents.dtype, device=latents.device)
        std = torch.tensor(std, dtype=latents.dtype, device=latents.device)
        return mean, std

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw latents `[..., D]` -> `(latents - latents_mean) / latents_std` (identity when not fitted)."""
        statistics = self._latent_statistics(latents)
        return latents if statistics is None else (latents - statistics[0]) / statistics[1]

    def denormalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Inverse of `normalize_latents`."""
        statistics = self._latent_statistics(latents)
        return latents if statistics is None else latents * statistics[1] + statistics[0]

    def _iterate_audio(self, audio: torch.Tensor | Iterable[torch.Tensor], sample_rate: int | None):
        """Yield checked audio batches from one tensor `[B, C, N]` or an iterable of `[B, C, N]` /
        `[C, N]`."""
        batches = [audio] if isinstance(audio, torch.Tensor | np.ndarray) else audio
        for batch in batches:
            batch = torch.as_tensor(batch)
            yield self.prepare_audio(batch[None] if batch.ndim == 2 else batch, sample_rate)

    @torch.no_grad()
    def fit_latent_statistics(
        self, audio: torch.Tensor | Iterable[torch.Tensor], sample_rate: int | None = None
    ) -> None:
        """
        Compute the per-channel mean and standard deviation of the raw latents of `audio` and store them in
        the config (`latents_mean`, `latents_std`), so that `encode` returns ~unit-scale latents from now on
        and `save_pretrained` keeps the statistics.

        Args:
            audio (`torch.Tensor` of shape `[B, C, N]`, or an iterable of such tensors or of `[C, N]`
                tensors): representative audio; a few minutes is plenty. Statistics are pooled over every
                frame of every item.
            sample_rate (`int`, *optional*): the rate of `audio` when it is not `self.sample_rate`.
        """
        count, total, total_sq = 0, 0.0, 0.0
        for batch in self._iterate_audio(audio, sample_rate):
            latents = self._encode(batch).reshape(-1, self.latent_dim).double()
            count += latents.shape[0]
            total = total + latents.sum(0)
            total_sq = total_sq + (latents**2).sum(0)
        if count == 0:
            raise ValueError("fit_latent_statistics got no audio: pass a tensor or a non-empty iterable.")
        mean = total / count
        std = (total_sq / count - mean**2).clamp(min=0).sqrt().clamp(min=_MIN_STD)
        self.register_to_config(latents_mean=mean.float().tolist(), latents_std=std.float().tolist())
