"""Property-based tests (hypothesis) over CAMPipeline's public arguments.

* Any bad value of any argument raises `ValueError` naming that argument, before the Backbone, the Sampler or
  the codec does any work, and `stream` raises it at the call (not at the first chunk).
* Any valid combination generates finite output of the promised shape, and streaming equals the one-shot call.
* Decoding does not depend on how the latents arrive (in one piece or in any split).
"""

import math
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cam_hf.pipeline_checks import (
    MAX_AUDIO_LENGTH_IN_S,
    MAX_BATCH_SIZE,
    MAX_NUM_INFERENCE_STEPS,
    OUTPUT_TYPES,
)
from cam_hf.testing_utils import random_pipeline
from cam_hf.utils.checks import MAX_AUDIO_AMPLITUDE

PROPERTY_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


class WorkCounter:
    """Counts the calls that are work: a Backbone or Sampler forward pass, a codec's encode or decode."""

    def __init__(self, pipe):
        self.calls = 0
        for module in (pipe.backbone, pipe.sampler):
            module.register_forward_pre_hook(self.count)
        codec = pipe.autoencoder
        for name in ("_encode", "_decode", "_decode_continuing"):
            setattr(codec, name, self.counted(getattr(codec, name)))

    def count(self, *args):
        self.calls += 1

    def counted(self, method):
        def call(*args, **kwargs):
            self.count()
            return method(*args, **kwargs)

        return call


@pytest.fixture(scope="module")
def pipe():
    return random_pipeline()


@pytest.fixture(scope="module")
def work(pipe):
    return WorkCounter(pipe)


def waveform(pipe, frames: int = 4) -> np.ndarray:
    return 0.3 * np.sin(np.arange(frames * pipe.autoencoder.hop_length) * 0.05).astype(np.float32)


# ---- bad values, argument by argument ----------------------------------------------------------------------

NOT_A_NUMBER = st.one_of(st.text(max_size=3), st.complex_numbers(), st.just([1]), st.just(torch.tensor(3)))
NOT_AN_INTEGER = st.one_of(NOT_A_NUMBER, st.floats(allow_nan=True, allow_infinity=True), st.booleans())


def bad_integers(low: int, high: int | None = None, none_is_valid: bool = False):
    """Integers outside [low, high], and values that are no integer at all (floats, bools, text, ...)."""
    out_of_range = st.integers(max_value=low - 1)
    if high is not None:
        out_of_range = out_of_range | st.integers(min_value=high + 1)
    return out_of_range | NOT_AN_INTEGER | (st.nothing() if none_is_valid else st.none())


def bad_reals(low: float, high: float, low_is_valid: bool, none_is_valid: bool):
    """Numbers outside [low, high] (or (low, high]), not finite, and values that are no real number (bools,
    text, complex, ...)."""
    valid = (lambda x: low <= x <= high) if low_is_valid else (lambda x: low < x <= high)
    outside = st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not valid(x))
    not_finite = st.sampled_from([math.nan, math.inf, -math.inf])
    return (
        outside | not_finite | NOT_A_NUMBER | st.booleans() | (st.nothing() if none_is_valid else st.none())
    )


def bad_audio():
    """Arrays that are no waveform in [-1, 1]: complex, integer PCM, too loud, not finite, empty,
    too many axes."""
    samples = 4 * 128
    return st.one_of(
        st.just(np.zeros(samples, dtype=np.complex64)),
        st.just((np.ones(samples) * 1000).astype(np.int16)),
        st.just(torch.ones(samples, dtype=torch.int32)),
        st.just(np.zeros(samples, dtype=bool)),
        st.floats(min_value=MAX_AUDIO_AMPLITUDE, exclude_min=True, max_value=1e300).map(
            lambda peak: np.full(samples, peak)
        ),
        st.sampled_from([math.nan, math.inf, -math.inf]).map(
            lambda value: np.full(samples, value, dtype=np.float32)
        ),
        st.just(np.zeros(0, dtype=np.float32)),
        st.just(np.zeros((1, 1, 1, samples), dtype=np.float32)),
        st.just(np.zeros((3, samples), dtype=np.float32)),  # 3 channels: only mono <-> stereo converts
        st.just(np.zeros(10, dtype=np.float32)),  # shorter than one latent frame
        st.just([np.zeros(samples, dtype=np.float32), np.zeros(samples - 1, dtype=np.float32)]),
        st.just([]),
        NOT_A_NUMBER,
        st.floats(),
    )


def bad_prompt_latents():
    return st.one_of(
        st.just(torch.zeros(1, 3, 7)),
        st.just(torch.zeros(3, 32)),
        st.just(torch.zeros(1, 0, 32)),
        st.just(torch.full((1, 2, 32), math.nan)),
        st.just(torch.zeros(1, 2, 32, dtype=torch.int64)),
        st.just(np.zeros((1, 2, 32), dtype=np.float32)),
        NOT_A_NUMBER,
    )


def bad_generators():
    return st.one_of(
        st.integers(),
        st.text(max_size=3),
        st.integers(min_value=0, max_value=4).filter(lambda n: n != 1).map(lambda n: [torch.Generator()] * n),
        st.just([0]),
    )


BAD_VALUES = {
    "audio": bad_audio(),
    "sample_rate": bad_integers(1000, 768_000),
    "prompt_latents": bad_prompt_latents(),
    "audio_length_in_s": bad_reals(0.0, MAX_AUDIO_LENGTH_IN_S, low_is_valid=False, none_is_valid=False),
    "num_frames": bad_integers(1, math.ceil(MAX_AUDIO_LENGTH_IN_S * 62.5)),
    "num_inference_steps": bad_integers(1, MAX_NUM_INFERENCE_STEPS, none_is_valid=True),
    "inference_noise": bad_reals(0.0, 1.0, low_is_valid=True, none_is_valid=True),
    "batch_size": bad_integers(1, MAX_BATCH_SIZE, none_is_valid=True),
    "num_waveforms_per_prompt": bad_integers(1, MAX_BATCH_SIZE),
    "generator": bad_generators(),
    "output_type": st.text(max_size=6).filter(lambda text: text not in OUTPUT_TYPES)
    | st.integers()
    | st.none(),
    "return_dict": st.integers() | st.text(max_size=3) | st.none(),
    "callback_on_step_end": st.integers() | st.text(max_size=3),
    "callback_on_step_end_tensor_inputs": st.one_of(
        st.lists(st.text(max_size=6).filter(lambda text: text != "latents"), min_size=1),
        st.just("latents"),
        st.integers(),
    ),
    "context_shift": bad_integers(1, 30, none_is_valid=True),  # the tiny Backbone's context is 31 frames
    "decode_chunk_frames": bad_integers(1),
    "decode_context_frames": bad_integers(0),
    "decode_first_chunk_frames": bad_integers(1),
    "temperature": bad_reals(0.0, sys.float_info.max, low_is_valid=False, none_is_valid=True),
}


def call_with(pipe, name: str, value) -> dict:
    """Valid, cheap arguments (latents only) with `name` set to `value`."""
    kwargs = dict(num_frames=2, num_inference_steps=1, output_type="latent")
    if name == "audio_length_in_s":
        kwargs.pop("num_frames")
    if name == "audio":
        kwargs["sample_rate"] = pipe.sample_rate
    if name == "sample_rate":
        kwargs["audio"] = waveform(pipe)
    return {**kwargs, name: value}


@settings(max_examples=300, **PROPERTY_SETTINGS)
@given(data=st.data())
def test_a_bad_argument_raises_a_value_error_naming_it_before_any_work(pipe, work, data):
    name = data.draw(st.sampled_from(sorted(BAD_VALUES)), label="argument")
    kwargs = call_with(pipe, name, data.draw(BAD_VALUES[name], label=name))
    work.calls = 0
    with pytest.raises(ValueError, match=name):
        pipe(**kwargs)
    if name != "return_dict":  # `stream` returns chunks, not a dict: it takes no `return_dict`
        with pytest.raises(ValueError, match=name):
            pipe.stream(**kwargs)  # at the call: not a generator that would raise at the first chunk
    assert work.calls == 0


@settings(max_examples=60, **PROPERTY_SETTINGS)
@given(data=st.data())
def test_encode_prompt_and_decode_latents_check_their_arguments(pipe, work, data):
    work.calls = 0
    with pytest.raises(ValueError, match="audio"):
        pipe.encode_prompt(audio=data.draw(bad_audio(), label="audio"), sample_rate=pipe.sample_rate)
    with pytest.raises(ValueError, match="sample_rate"):
        pipe.encode_prompt(
            audio=waveform(pipe), sample_rate=data.draw(BAD_VALUES["sample_rate"], label="rate")
        )
    with pytest.raises(ValueError, match="num_waveforms_per_prompt"):
        pipe.encode_prompt(
            waveform(pipe), pipe.sample_rate, num_waveforms_per_prompt=data.draw(bad_integers(1, 1024))
        )
    chunking = ["decode_chunk_frames", "decode_context_frames", "decode_first_chunk_frames"]
    name = data.draw(st.sampled_from(chunking), label="argument")
    with pytest.raises(ValueError, match=name):
        pipe.decode_latents(torch.zeros(1, 3, 32), **{name: data.draw(BAD_VALUES[name], label=name)})
    assert work.calls == 0


# ---- valid values ------------------------------------------------------------------------------------------
# The tiny mel codec cannot decode a single latent frame (128 samples, shorter than its STFT's reflect padding
# of n_fft / 2 = 128): with at least 2 frames and 1 frame of decoding context, every window it decodes has 2
# frames or more. (The default codec decodes single frames: 2048 samples per frame against a padding of 512.)


def chunk_frames(num_frames: int, first: int, largest: int) -> list[int]:
    """The frames of each chunk of a stream: `first`, then doubling up to `largest`; the last holds what is
    left."""
    frames, size = [], min(first, largest)
    while (left := num_frames - sum(frames)) > 0:
        frames.append(min(size, left))
        size = min(2 * size, largest)
    return frames


@settings(max_examples=10, **PROPERTY_SETTINGS)
@given(
    num_frames=st.integers(2, 40),
    num_inference_steps=st.integers(1, 2),
    batch_size=st.integers(1, 2),
    num_waveforms_per_prompt=st.integers(1, 2),
    decode_chunk_frames=st.integers(1, 12),
    decode_context_frames=st.integers(1, 3),
    decode_first_chunk_frames=st.integers(1, 12),
    context_shift=st.none() | st.integers(1, 30),
    inference_noise=st.none() | st.floats(0.0, 1.0),
    temperature=st.none() | st.floats(0.1, 3.0),
    output_type=st.sampled_from(OUTPUT_TYPES),
    seed=st.integers(0, 2**32 - 1),
)
def test_valid_arguments_generate_and_stream_alike(pipe, seed, **kwargs):
    batch = kwargs["batch_size"] * kwargs["num_waveforms_per_prompt"]
    output = pipe(generator=torch.Generator().manual_seed(seed), **kwargs).audios
    chunks = list(pipe.stream(generator=torch.Generator().manual_seed(seed), **kwargs))
    if kwargs["output_type"] == "latent":
        assert tuple(output.shape) == (batch, kwargs["num_frames"], 32)
        streamed, frames = torch.cat(chunks, dim=1), [chunk.shape[1] for chunk in chunks]
    else:
        hop = pipe.autoencoder.hop_length
        assert tuple(output.shape) == (batch, 1, kwargs["num_frames"] * hop)
        streamed = (
            np.concatenate(chunks, axis=-1) if kwargs["output_type"] == "np" else torch.cat(chunks, dim=-1)
        )
        frames = [chunk.shape[-1] // hop for chunk in chunks]
    assert np.isfinite(np.asarray(output)).all()
    growth = (kwargs["decode_first_chunk_frames"], kwargs["decode_chunk_frames"])
    assert frames == chunk_frames(kwargs["num_frames"], *growth)
    np.testing.assert_array_equal(np.asarray(streamed), np.asarray(output))


@settings(max_examples=15, **PROPERTY_SETTINGS)
@given(
    num_frames=st.integers(2, 30),
    cuts=st.lists(st.integers(1, 29), max_size=6),
    decode_chunk_frames=st.integers(1, 10),
    decode_context_frames=st.integers(1, 4),
)
def test_decoding_does_not_depend_on_how_the_latents_arrive(
    pipe, num_frames, cuts, decode_chunk_frames, decode_context_frames
):
    codec = pipe.autoencoder
    latents = torch.randn(2, num_frames, 32, generator=torch.Generator().manual_seed(num_frames))
    whole = codec.decode_chunked(latents, decode_chunk_frames, decode_context_frames)
    bounds = [0, *sorted({cut for cut in cuts if cut < num_frames}), num_frames]
    pieces = [latents[:, start:end] for start, end in zip(bounds, bounds[1:], strict=False)]
    streamed = torch.cat(
        list(codec.decode_stream(pieces, decode_chunk_frames, decode_context_frames)), dim=-1
    )
    assert whole.shape == (2, 1, num_frames * codec.hop_length)
    assert torch.equal(streamed, whole)
