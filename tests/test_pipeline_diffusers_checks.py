"""The behaviours diffusers' common pipeline checks (`PipelineTesterMixin`) ask of a pipeline, tested on
CAMPipeline.

diffusers' mixin itself runs as a development check (`test_pipeline_diffusers_mixin.py`, which needs a
diffusers checkout); these tests keep the same behaviours checked in CI, adapted where an autoregressive audio
pipeline differs (a callback per frame; the autoencoder as the prompt encoder).
"""

import inspect
import os

import numpy as np
import pytest
import torch

from cam_hf import CAMPipeline
from cam_hf.testing_utils import random_pipeline, tiny_mel_autoencoder

from .conftest import seeded

LATENT_DIM = 24  # below the tiny codec's 32 stacked values: a fitted PCA, which must stay float32


@pytest.fixture
def components() -> dict:
    autoencoder = tiny_mel_autoencoder(latent_dim=LATENT_DIM)
    autoencoder.fit_latent_statistics(
        0.1 * torch.randn(1, 1, 2 * 8000, generator=torch.Generator().manual_seed(0))
    )
    return dict(random_pipeline(autoencoder=autoencoder).components)


@pytest.fixture
def pipe(components) -> CAMPipeline:
    pipe = CAMPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prompt(pipe) -> np.ndarray:
    return 0.3 * np.sin(
        2 * np.pi * 440 * np.arange(6 * pipe.autoencoder.hop_length) / pipe.sample_rate
    ).astype(np.float32)


def test_call_signature_has_diffusers_arguments():
    parameters = inspect.signature(CAMPipeline.__call__).parameters
    for name in (
        "batch_size",
        "num_inference_steps",
        "num_waveforms_per_prompt",
        "generator",
        "output_type",
        "return_dict",
        "callback_on_step_end",
        "callback_on_step_end_tensor_inputs",
        "audio_length_in_s",
    ):
        assert parameters[name].default is not inspect.Parameter.empty, name
    assert set(CAMPipeline._callback_tensor_inputs) == {"latents"}


def test_components_may_be_none_and_missing_ones_are_named(components):
    empty = CAMPipeline(backbone=None, sampler=None, scheduler=None, autoencoder=None)
    assert set(empty.components) == {"backbone", "sampler", "scheduler", "autoencoder"}
    with pytest.raises(ValueError, match="no backbone"):
        empty(num_frames=2)
    latents_only = CAMPipeline(**{**components, "autoencoder": None})
    latents_only.set_progress_bar_config(disable=True)
    assert latents_only(num_frames=3, num_inference_steps=1, output_type="latent").audios.shape == (
        1,
        3,
        LATENT_DIM,
    )
    with pytest.raises(ValueError, match="no autoencoder"):
        latents_only(num_frames=3)


def test_batches_of_any_size(pipe):
    for batch_size in (2, 3):
        audio = pipe(
            batch_size=batch_size, num_frames=4, num_inference_steps=1, generator=seeded(batch_size)
        ).audios
        assert audio.shape[0] == batch_size
    single_generator = pipe(batch_size=2, num_frames=4, num_inference_steps=1, generator=seeded()).audios
    assert single_generator.shape[0] == 2 and not np.allclose(single_generator[0], single_generator[1])


def test_dtype_moves_reach_every_component(pipe):
    pipe.to(torch.float16)
    assert {name: c.dtype for name, c in pipe.components.items() if hasattr(c, "dtype")} == {
        "backbone": torch.float16,
        "sampler": torch.float16,
        "autoencoder": torch.float16,
    }
    assert (
        pipe.autoencoder.projection.dtype == torch.float32
    )  # the codec computes in float32 whatever it reports
    pipe.to(torch.bfloat16)
    audio = pipe(num_frames=3, num_inference_steps=2, generator=seeded()).audios
    assert audio.dtype == np.float32 and np.isfinite(audio).all()
    pipe.to(torch.float32)
    assert pipe.autoencoder.dtype == pipe.backbone.dtype == torch.float32


@pytest.mark.parametrize(
    "dtype_argument, expected",
    [
        (
            {"dtype": torch.float16},
            dict(backbone=torch.float16, sampler=torch.float16, autoencoder=torch.float16),
        ),
        (
            {"torch_dtype": torch.float16},
            dict(backbone=torch.float16, sampler=torch.float16, autoencoder=torch.float16),
        ),
        (
            {"dtype": {"backbone": torch.bfloat16, "default": torch.float16}},
            dict(backbone=torch.bfloat16, sampler=torch.float16, autoencoder=torch.float16),
        ),
    ],
)
def test_from_pretrained_dtype_forms(pipe, tmp_path, dtype_argument, expected):
    pipe.save_pretrained(tmp_path)
    loaded = CAMPipeline.from_pretrained(tmp_path, **dtype_argument)
    assert {name: getattr(loaded, name).dtype for name in expected} == expected
    # The fitted PCA loads in float32, bit for bit: diffusers' `_keep_in_fp32_modules`.
    assert torch.equal(loaded.autoencoder.projection, pipe.autoencoder.projection)


def test_variants_save_and_load(pipe, tmp_path):
    pipe.save_pretrained(tmp_path, variant="fp16")
    for folder in ("backbone", "sampler", "autoencoder"):
        assert any(".fp16." in name for name in os.listdir(tmp_path / folder)), folder
    loaded = CAMPipeline.from_pretrained(tmp_path, variant="fp16")
    for name in ("backbone", "sampler", "autoencoder"):
        for key, value in getattr(pipe, name).state_dict().items():
            assert torch.equal(getattr(loaded, name).state_dict()[key], value), (name, key)
    pipe.save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="variant=fp16"):
        CAMPipeline.from_pretrained(tmp_path / "plain", variant="fp16")


def test_encode_prompt_works_in_isolation(pipe, components):
    # CAM's prompt encoder is its autoencoder: a pipeline of the autoencoder alone encodes, a pipeline without
    # it generates from the encoded prompt, and together they equal the whole pipeline.
    encoder_only = CAMPipeline(
        backbone=None, sampler=None, scheduler=None, autoencoder=components["autoencoder"]
    )
    prompt_latents = encoder_only.encode_prompt(prompt(pipe), sample_rate=pipe.sample_rate)
    assert prompt_latents.shape == (1, 6, LATENT_DIM)
    assert encoder_only.encode_prompt() is None
    generator_only = CAMPipeline(**{**components, "autoencoder": None})
    generator_only.set_progress_bar_config(disable=True)
    kwargs = dict(num_frames=4, num_inference_steps=2, output_type="latent", num_waveforms_per_prompt=2)
    split = generator_only(prompt_latents=prompt_latents, generator=seeded(2), **kwargs).audios
    whole = pipe(audio=prompt(pipe), sample_rate=pipe.sample_rate, generator=seeded(2), **kwargs).audios
    torch.testing.assert_close(split, whole, rtol=0, atol=0)


def test_callback_inputs_are_the_new_frame(pipe):
    seen = []

    def subset(pipeline, index, timestep, callback_kwargs):
        assert set(callback_kwargs) <= set(pipeline._callback_tensor_inputs)
        seen.append((index, pipeline.num_timesteps, tuple(callback_kwargs["latents"].shape)))
        return callback_kwargs

    pipe(
        num_frames=3,
        num_inference_steps=1,
        output_type="latent",
        callback_on_step_end=subset,
        callback_on_step_end_tensor_inputs=["latents"],
    )
    assert seen == [(i, 3, (1, 1, LATENT_DIM)) for i in range(3)]

    def zero_the_last_frame(pipeline, index, timestep, callback_kwargs):
        if index == pipeline.num_timesteps - 1:
            callback_kwargs["latents"] = torch.zeros_like(callback_kwargs["latents"])
        return callback_kwargs

    out = pipe(
        num_frames=3,
        num_inference_steps=1,
        output_type="latent",
        generator=seeded(),
        callback_on_step_end=zero_the_last_frame,
        callback_on_step_end_tensor_inputs=pipe._callback_tensor_inputs,
    )
    plain = pipe(num_frames=3, num_inference_steps=1, output_type="latent", generator=seeded()).audios
    assert out.audios[:, -1].abs().sum() == 0
    torch.testing.assert_close(out.audios[:, :-1], plain[:, :-1], rtol=0, atol=0)
