"""`stream()` starts with a short chunk and grows the next ones (`decode_first_chunk_frames`, doubling up to
`decode_chunk_frames`): the sizes, the equality with `__call__` and `decode_latents`, how early the first
chunk comes, and what the growth costs Griffin-Lim's audio against chunks of one size."""

import math
import threading
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from cam_hf.autoencoders import MelAutoencoder
from cam_hf.autoencoders.base import DEFAULT_DECODE_CONTEXT_FRAMES, decode_chunk_sizes
from cam_hf.testing_utils import random_pipeline

SHIPPED_CODEC = Path(__file__).resolve().parents[1] / "models" / "cam-music21-small" / "autoencoder"


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pipe():
    return random_pipeline()


@pytest.mark.parametrize(
    ("first", "largest", "expected"),
    [
        (4, 64, [4, 8, 16, 32, 64, 64, 64]),
        (5, 12, [5, 10, 12, 12, 12, 12, 12]),
        (100, 64, [64] * 7),  # a first chunk over the largest: chunks of one size
        (1, 1, [1] * 7),
    ],
)
def test_chunk_sizes_start_small_and_double_up_to_the_largest(first, largest, expected):
    assert list(islice(decode_chunk_sizes(first, largest), 7)) == expected


@pytest.mark.parametrize("output_type", ["np", "pt", "latent"])
def test_a_stream_grows_its_chunks_and_equals_the_call(pipe, output_type):
    kwargs = dict(num_frames=40, batch_size=2, num_inference_steps=1, decode_chunk_frames=16)
    whole = pipe(generator=seeded(), output_type=output_type, **kwargs).audios
    chunks = list(pipe.stream(generator=seeded(), output_type=output_type, **kwargs))
    if output_type == "latent":
        frames, streamed = [chunk.shape[1] for chunk in chunks], torch.cat(chunks, dim=1)
    else:
        hop = pipe.autoencoder.hop_length
        frames = [chunk.shape[-1] // hop for chunk in chunks]
        streamed = np.concatenate(chunks, -1) if output_type == "np" else torch.cat(chunks, -1)
    assert frames == [4, 8, 16, 12] and all(chunk.shape[0] == 2 for chunk in chunks)
    np.testing.assert_array_equal(np.asarray(streamed), np.asarray(whole))


def test_decode_latents_decodes_what_the_stream_did(pipe):
    # Default chunking, 70 frames: chunks of 4, 8, 16, 32 and the last 10 (capped at 64).
    latents = pipe(num_frames=70, num_inference_steps=1, generator=seeded(), output_type="latent").audios
    audio = pipe(num_frames=70, num_inference_steps=1, generator=seeded()).audios
    np.testing.assert_array_equal(pipe.decode_latents(latents).numpy(), audio)
    fixed = pipe.decode_latents(latents, decode_first_chunk_frames=64)
    assert fixed.shape == audio.shape and not np.array_equal(fixed.numpy(), audio)


def test_chunks_of_one_size_on_request(pipe):
    kwargs = dict(num_frames=40, num_inference_steps=1, decode_chunk_frames=16, output_type="latent")
    chunks = list(pipe.stream(generator=seeded(), decode_first_chunk_frames=16, **kwargs))
    assert [chunk.shape[1] for chunk in chunks] == [16, 16, 8]


def test_the_first_chunk_needs_only_its_frames_and_their_context(pipe):
    # At default settings the first chunk is decoded, beside the loop, once 4 + 4 frames exist: the 9th
    # frame's callback waits until that decoding has started (it never would if it needed more frames).
    first_frames = 4 + DEFAULT_DECODE_CONTEXT_FRAMES
    decoding_started, waited = threading.Event(), []
    codec = pipe.autoencoder
    decode = codec._decode_continuing
    codec._decode_continuing = lambda *args: decoding_started.set() or decode(*args)

    def wait_after_the_first_chunk(pipeline, index, timestep, callback_kwargs):
        if index == first_frames:
            waited.append(decoding_started.wait(timeout=120))
        return callback_kwargs

    try:
        stream = pipe.stream(
            num_frames=100,
            num_inference_steps=1,
            generator=seeded(),
            callback_on_step_end=wait_after_the_first_chunk,
        )
        first = next(stream)
        stream.close()
    finally:
        del codec._decode_continuing
    assert waited == [True] and first.shape[-1] == 4 * codec.hop_length


def spectral_distance(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """||estimate - reference|| / ||reference||."""
    return (torch.linalg.norm(estimate - reference) / torch.linalg.norm(reference)).item()


@pytest.mark.skipif(not SHIPPED_CODEC.is_dir(), reason="needs the shipped model")
def test_growing_chunks_decode_as_well_as_chunks_of_one_size():
    # Griffin-Lim's phase depends on where chunks start, so growing chunks do not give fixed chunks' samples;
    # they must give audio as good: as consistent with the magnitude decoded (within 2 %), and as near the
    # original (spectral convergence within 2 %). On 8 s of synthetic notes (86 frames) the two measured
    # 0.2677 / 0.2678 and 0.499 / 0.503; `benchmarks/bench_griffin_lim.py` measures test clips.
    codec = MelAutoencoder.from_pretrained(SHIPPED_CODEC)
    rate = codec.sample_rate
    time = torch.arange(8 * rate) / rate
    pitches = 220 * 2 ** (torch.randint(0, 24, (16,), generator=seeded()) / 12)
    phase = 2 * math.pi * torch.cumsum(pitches[(2 * time).long()], 0) / rate
    audio = 0.3 * torch.sin(phase) * (1 - (2 * time) % 1) + 0.05 * torch.sin(3 * phase)
    latents = codec.encode(audio[None, None])
    log_mel = codec.latents_to_log_mel(codec.denormalize_latents(latents))[0]
    magnitude = torch.matmul(codec.mel_inverse, log_mel.exp()).clamp(min=0)[0]

    def spectrum(signal: torch.Tensor) -> torch.Tensor:
        return codec._stft(signal[None])[0, :, : magnitude.shape[-1]].abs()

    growing = codec.decode_chunked(latents)[0, 0]
    fixed = codec.decode_chunked(latents, decode_first_chunk_frames=64)[0, 0]
    original = spectrum(audio[: fixed.shape[-1]])
    inconsistency = [spectral_distance(spectrum(x), magnitude) for x in (growing, fixed)]
    convergence = [spectral_distance(spectrum(x), original) for x in (growing, fixed)]
    assert inconsistency[0] <= 1.02 * inconsistency[1]
    assert convergence[0] <= 1.02 * convergence[1]
