"""The compiled frame step (`cam_hf/frame_step.py`, `CAMPipeline.enable_compiled_frame_step`): the same frames
as the eager loop, and the eager loop wherever it cannot serve a call.

The static step is checked uncompiled (`compile=False`) against the eager loop on every kind of Backbone; one
slow test compiles it. Tolerances: the static step attends over the whole buffer with a mask where the eager
step attends over the filled positions, so sums run in another order (~1e-6 on these tiny models); compiled
code fuses and reorders more (1e-4).
"""

import logging

import pytest
import torch
from diffusers import FlowMatchHeunDiscreteScheduler

from cam_hf.testing_utils import TINY_BACKBONE_CONFIG, random_pipeline

SHORTCUT = dict(width=32, num_blocks=2, few_step_objective="shortcut", num_inference_steps=4)
INSTRUMENTS = dict(TINY_BACKBONE_CONFIG, instrument_names=["violin", "flute"])
BACKBONES = {
    "plain": TINY_BACKBONE_CONFIG,
    "instruments": INSTRUMENTS,
    "short context, noise level": dict(
        TINY_BACKBONE_CONFIG, short_context_frames=5, condition_on_noise_level=True
    ),
}
# Every case runs past the 31-frame context: the window is rebuilt twice.
CASES = {
    "plain, batch 1": ("plain", {}),
    "plain, batch 3, temperature": ("plain", dict(batch_size=3, temperature=0.7)),
    "guided, batch 2": (
        "instruments",
        dict(batch_size=2, instrument=["violin", "flute"], guidance_scale=2.5),
    ),
    "instrument, unguided": ("instruments", dict(instrument="flute")),
    "short context, noise level, batch 2": ("short context, noise level", dict(batch_size=2)),
}


def make_pipe(backbone: str, sampler_config: dict | None = None):
    return random_pipeline(backbone_config=BACKBONES[backbone], sampler_config=sampler_config or SHORTCUT)


def frames(pipe, num_frames: int = 70, **kwargs) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return pipe(num_frames=num_frames, output_type="latent", generator=generator, **kwargs).audios


@pytest.fixture
def frame_step_log(caplog):
    caplog.set_level(logging.INFO, logger="cam_hf.frame_step")
    return caplog


@pytest.mark.parametrize("case", list(CASES))
def test_the_static_step_gives_the_eager_loops_frames(case):
    backbone, kwargs = CASES[case]
    pipe = make_pipe(backbone)
    eager = frames(pipe, **kwargs)
    pipe.enable_compiled_frame_step(compile=False)
    static = frames(pipe, **kwargs)
    assert len(pipe._frame_steps) == 1  # the call ran the static step
    torch.testing.assert_close(static, eager, rtol=1e-5, atol=1e-5)


def test_a_flow_head_on_diffusers_euler_takes_the_static_step_too():
    pipe = make_pipe("plain", dict(width=32, num_blocks=2, num_inference_steps=3))
    eager = frames(pipe, num_frames=40)
    pipe.enable_compiled_frame_step(compile=False)
    torch.testing.assert_close(frames(pipe, num_frames=40), eager, rtol=1e-5, atol=1e-5)
    assert len(pipe._frame_steps) == 1


def test_steps_are_kept_per_batch_steps_and_guidance_and_across_the_switch():
    pipe = make_pipe("instruments")
    pipe.enable_compiled_frame_step(compile=False)
    frames(pipe, num_frames=3)
    frames(pipe, num_frames=5)
    frames(pipe, num_frames=3, batch_size=2)
    frames(pipe, num_frames=3, num_inference_steps=2)
    frames(pipe, num_frames=3, instrument="violin", guidance_scale=2.0)
    assert sorted(pipe._frame_steps) == [(1, 2, False), (1, 4, False), (1, 4, True), (2, 4, False)]
    steps = dict(pipe._frame_steps)
    pipe.disable_compiled_frame_step()
    frames(pipe, num_frames=3, batch_size=3)  # eager: no step made
    pipe.enable_compiled_frame_step(compile=False)
    assert pipe._frame_steps == steps
    pipe.enable_compiled_frame_step(compile=True)  # other settings: the steps are dropped
    assert pipe._frame_steps == {}


def test_changed_weights_drop_the_steps():
    # A compiled step with Inductor's freezing holds the weights it was compiled with.
    pipe = make_pipe("plain")
    pipe.enable_compiled_frame_step(compile=False)
    frames(pipe, num_frames=3)
    step = pipe._frame_steps[(1, 4, False)][0]
    frames(pipe, num_frames=3)
    assert pipe._frame_steps[(1, 4, False)][0] is step
    with torch.no_grad():
        pipe.sampler.output_proj.weight.mul_(2.0)
    eager = frames_eager(pipe, num_frames=40)
    torch.testing.assert_close(frames(pipe, num_frames=40), eager, rtol=1e-5, atol=1e-5)
    assert pipe._frame_steps[(1, 4, False)][0] is not step


@pytest.mark.parametrize(
    "reason, kwargs, match",
    [
        ("callback", dict(callback_on_step_end=lambda pipe, i, t, kwargs: kwargs), "callback"),
        ("scheduler", {}, "FlowMatchHeunDiscreteScheduler is stepped by diffusers"),
    ],
)
def test_what_it_cannot_serve_runs_eagerly_and_says_why_once(frame_step_log, reason, kwargs, match):
    pipe = make_pipe("plain", dict(width=32, num_blocks=2, num_inference_steps=3))
    if reason == "scheduler":
        pipe.scheduler = FlowMatchHeunDiscreteScheduler()
    eager = frames(pipe, num_frames=6, **kwargs)
    pipe.enable_compiled_frame_step(compile=False)
    for _ in range(2):
        torch.testing.assert_close(frames(pipe, num_frames=6, **kwargs), eager, rtol=0, atol=0)
    assert pipe._frame_steps == {}
    messages = [record.getMessage() for record in frame_step_log.records]
    assert len(messages) == 1 and match in messages[0] and frame_step_log.records[0].levelno == logging.INFO


def test_a_compiler_that_fails_leaves_the_eager_loop_and_a_message(frame_step_log, monkeypatch):
    def failing_compile(step, **kwargs):
        def compiled(*args):
            raise RuntimeError("no compiler here")

        return compiled

    monkeypatch.setattr(torch, "compile", failing_compile)
    pipe = make_pipe("instruments")
    kwargs = dict(batch_size=2, instrument="violin", guidance_scale=2.0)
    eager = frames(pipe, **kwargs)
    pipe.enable_compiled_frame_step()
    for _ in range(2):  # the failure is remembered: logged once, not compiled again
        torch.testing.assert_close(frames(pipe, **kwargs), eager, rtol=0, atol=0)
    messages = [record.getMessage() for record in frame_step_log.records]
    assert len(messages) == 1 and "RuntimeError: no compiler here" in messages[0]


def test_the_eager_loop_is_the_default():
    pipe = make_pipe("plain")
    frames(pipe, num_frames=3)
    assert getattr(pipe, "_frame_steps", {}) == {}


@pytest.mark.slow
def test_the_compiled_step_gives_the_eager_loops_frames():
    # One compilation (~1-2 min on 2 loaded cores): the Backbone with every input a step takes, guided.
    config = dict(BACKBONES["short context, noise level"], instrument_names=["violin", "flute"])
    pipe = random_pipeline(backbone_config=config, sampler_config=SHORTCUT)
    kwargs = dict(batch_size=2, instrument=["violin", "flute"], guidance_scale=2.5)
    eager = frames(pipe, **kwargs)
    pipe.enable_compiled_frame_step()
    compiled = frames(pipe, **kwargs)
    ((step, function),) = pipe._frame_steps.values()
    assert function is not None and function is not step  # compiled, not fallen back
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
    # Another call of the same shape reuses the compiled step, with this call's guidance and temperature.
    kwargs.update(guidance_scale=1.5, temperature=0.8)
    torch.testing.assert_close(frames(pipe, **kwargs), frames_eager(pipe, **kwargs), rtol=1e-4, atol=1e-4)
    assert len(pipe._frame_steps) == 1


def frames_eager(pipe, **kwargs) -> torch.Tensor:
    settings = pipe._frame_step_settings
    pipe.disable_compiled_frame_step()
    result = frames(pipe, **kwargs)
    pipe.enable_compiled_frame_step(settings["compile"], **settings["compile_kwargs"])
    return result
