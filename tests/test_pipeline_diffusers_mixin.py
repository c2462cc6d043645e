"""diffusers' own common pipeline checks (`PipelineTesterMixin`) run against CAMPipeline: a development check.

The mixin lives in diffusers' repository (`tests/pipelines/test_pipelines_common.py`), not in the installed
package, so this module runs only when `DIFFUSERS_REPO` names a checkout of it (and is skipped otherwise):

    git clone --depth 1 https://github.com/huggingface/diffusers /tmp/diffusers
    pip install parameterized requests-mock          # what diffusers' test modules import
    DIFFUSERS_REPO=/tmp/diffusers HF_HUB_OFFLINE=1 \
        .venv/bin/pytest -q tests/test_pipeline_diffusers_mixin.py -rA

The same behaviours are tested without diffusers' repository in `test_pipeline_diffusers_checks.py`, so CI
checks them. The checks that do not apply to an autoregressive audio pipeline are skipped below with the
reason (also listed in `docs/pipeline.md`); those that need an accelerator skip themselves on CPU.
"""

import importlib.util
import os
import sys
import unittest

import numpy as np
import pytest
import torch

from cam_hf import CAMPipeline
from cam_hf.testing_utils import TINY_BACKBONE_CONFIG, random_pipeline, tiny_mel_autoencoder

DIFFUSERS_REPO = os.environ.get("DIFFUSERS_REPO")
if not DIFFUSERS_REPO:
    pytest.skip(
        "diffusers' PipelineTesterMixin is a development check: set DIFFUSERS_REPO to a diffusers checkout "
        "to run it",
        allow_module_level=True,
    )


def import_diffusers_tests(repo: str):
    """diffusers' `tests` package, imported under another name: ours is called `tests` too."""
    tests_dir = os.path.join(repo, "tests")
    if not os.path.isfile(os.path.join(tests_dir, "pipelines", "test_pipelines_common.py")):
        raise ValueError(
            f"DIFFUSERS_REPO={repo!r} is not a diffusers checkout (no "
            "tests/pipelines/test_pipelines_common.py)."
        )
    name = "diffusers_repository_tests"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(tests_dir, "__init__.py"), submodule_search_locations=[tests_dir]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    common = importlib.import_module(f"{name}.pipelines.test_pipelines_common")
    params = importlib.import_module(f"{name}.pipelines.pipeline_params")
    return common.PipelineTesterMixin, params


PipelineTesterMixin, pipeline_params = import_diffusers_tests(DIFFUSERS_REPO)

# Fitted PCA (latent_dim 24 < the 32 stacked values): the dtype checks then also cover a buffer that
# must stay float32.
LATENT_DIM = 24


def dummy_components(instrument_names: list[str] | None = None) -> dict:
    autoencoder = tiny_mel_autoencoder(latent_dim=LATENT_DIM)
    rng = np.random.default_rng(0)
    autoencoder.fit_latent_statistics(0.1 * rng.standard_normal((1, 1, 2 * 8000), dtype=np.float32))
    backbone_config = (
        dict(TINY_BACKBONE_CONFIG, instrument_names=instrument_names) if instrument_names else None
    )
    return dict(random_pipeline(autoencoder=autoencoder, backbone_config=backbone_config).components)


class CAMPipelineCommonChecks(PipelineTesterMixin):
    pipeline_class = CAMPipeline
    params = pipeline_params.UNCONDITIONAL_AUDIO_GENERATION_PARAMS | {
        "audio",
        "sample_rate",
        "audio_length_in_s",
    }
    # `num_images_per_prompt` is `num_waveforms_per_prompt`, as in diffusers' audio pipelines; there is no
    # `latents` (initial noise) argument: each frame's noise is drawn from `generator` when the
    # frame is generated.
    required_optional_params = PipelineTesterMixin.required_optional_params - {
        "num_images_per_prompt",
        "latents",
    }
    # The Backbone is a transformers model: diffusers' attention processors (slicing, xformers) do
    # not reach it.
    test_attention_slicing = False
    test_xformers_attention = False

    instrument_names = None

    def get_dummy_components(self):
        return dummy_components(self.instrument_names)

    def test_cfg(self):
        if not self.instrument_names:
            self.skipTest("Guidance is towards an instrument: run by TestInstrumentGuidance.")
        super().test_cfg()

    def test_callback_cfg(self):
        if not self.instrument_names:
            self.skipTest("Guidance is towards an instrument: run by TestInstrumentGuidance.")
        super().test_callback_cfg()

    def test_callback_inputs(self):
        self.skipTest(
            "Not applicable: the check zeroes `latents` at the last step and expects the whole output to be "
            "zero. CAMPipeline calls the callback once per frame with the NEW frame as `latents` (the "
            "earlier frames were already fed back and yielded), so the last step can change only the last "
            "frame. Covered by test_pipeline_diffusers_checks.py::test_callback_inputs_are_the_new_frame."
        )

    def test_encode_prompt_works_in_isolation(self):
        self.skipTest(
            "Not applicable as written: the check keeps the components whose names contain 'text' or "
            "'tokenizer' and looks the pipeline class up in `diffusers.pipelines`. CAMPipeline's prompt "
            "encoder is its autoencoder, and the class lives in cam_hf. Covered by "
            "test_pipeline_diffusers_checks.py::test_encode_prompt_works_in_isolation."
        )


class TestUnconditional(CAMPipelineCommonChecks, unittest.TestCase):
    batch_params = pipeline_params.UNCONDITIONAL_AUDIO_GENERATION_BATCH_PARAMS

    def get_dummy_inputs(self, device, seed=0):
        return dict(
            batch_size=1, num_frames=6, num_inference_steps=2, generator=torch.Generator().manual_seed(seed)
        )


class TestContinuation(CAMPipelineCommonChecks, unittest.TestCase):
    # A batch of prompts is a list of waveforms, as a batch of text prompts is a list of strings.
    batch_params = frozenset({"audio"})

    def get_dummy_inputs(self, device, seed=0):
        prompt = 0.3 * np.sin(2 * np.pi * 440 * np.arange(6 * 128) / 8000).astype(np.float32)
        return dict(
            audio=prompt,
            sample_rate=8000,
            num_frames=4,
            num_inference_steps=2,
            generator=torch.Generator().manual_seed(seed),
        )


class TestInstrumentGuidance(CAMPipelineCommonChecks, unittest.TestCase):
    """An instrument-conditioned Backbone, asked for an instrument: `test_cfg` and
    `test_callback_cfg` apply here."""

    instrument_names = ["cello", "flute"]
    params = CAMPipelineCommonChecks.params | {"instrument", "guidance_scale"}
    batch_params = frozenset({"instrument"})

    def get_dummy_inputs(self, device, seed=0):
        return dict(
            batch_size=1,
            instrument="cello",
            num_frames=6,
            num_inference_steps=2,
            generator=torch.Generator().manual_seed(seed),
        )

    def test_guidance_changes_the_output(self):
        """diffusers' `test_cfg` checks only that the shapes agree; guidance must also change
        what is generated."""
        pipe = self.pipeline_class(**self.get_dummy_components())
        pipe.set_progress_bar_config(disable=True)
        plain = pipe(**self.get_dummy_inputs("cpu"), guidance_scale=1.0).audios
        guided = pipe(**self.get_dummy_inputs("cpu"), guidance_scale=7.5).audios
        assert guided.shape == plain.shape and np.isfinite(guided).all()
        assert not np.allclose(guided, plain)
