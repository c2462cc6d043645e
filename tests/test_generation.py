"""The generation loop's parts (`cam_hf/generation.py`): `sample_next_frame` and `FrameSampler`, which draw
the next frame from the Backbone's output with the Sampler and a diffusers scheduler, and `SlidingWindow`, the
Backbone's memory while generating.
"""

import inspect

import pytest
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    FlowMatchHeunDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.utils.torch_utils import randn_tensor

from cam_hf import CAMSampler, default_scheduler, sample_next_frame
from cam_hf.generation import FrameSampler, SlidingWindow
from cam_hf.sampler import timestep_embedding
from cam_hf.testing_utils import random_pipeline

from .conftest import seeded

# The multistep solvers integrate a flow when told so.
FLOW_PREDICTION = dict(prediction_type="flow_prediction", use_flow_sigmas=True)


def test_euler_loop_integrates_a_known_velocity(sampler):
    # With a constant predicted velocity v = noise - x0, Euler from sigma=1 to 0 lands exactly on
    # x0 = noise - v.
    velocity = torch.randn(3, 8)
    for p in sampler.output_proj.parameters():
        torch.nn.init.zeros_(p)
    sampler.output_proj.bias.data = velocity[0].clone()
    noise = torch.randn(3, 8)
    frames = sample_next_frame(sampler, FlowMatchEulerDiscreteScheduler(), torch.randn(3, 32), 7, noise=noise)
    torch.testing.assert_close(frames, noise - velocity[0], rtol=0, atol=1e-5)


def draw_as_diffusers_does(
    sampler: CAMSampler, scheduler, condition: torch.Tensor, num_inference_steps: int, generator=None
) -> torch.Tensor:
    """A frame drawn by diffusers' own denoising loop: the Sampler's forward pass and `scheduler.step` at each
    of the scheduler's timesteps, from noise drawn as `sample_next_frame` draws it. The reference for
    `sample_next_frame` and `FrameSampler`, which prepare the steps once per call."""
    noise = randn_tensor((condition.shape[0], sampler.config.latent_dim), generator=generator)
    scheduler.set_timesteps(num_inference_steps)
    sample = noise * getattr(scheduler, "init_noise_sigma", 1.0)  # flow-matching schedulers have none
    step_kwargs = (
        {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    )
    for timestep in scheduler.timesteps:
        model_input = (
            scheduler.scale_model_input(sample, timestep)
            if hasattr(scheduler, "scale_model_input")
            else sample
        )
        prediction = sampler(model_input, timestep.float(), condition)
        sample = scheduler.step(prediction, timestep, sample, **step_kwargs).prev_sample
    return sample


@pytest.mark.parametrize(
    "prediction_type, make_scheduler",
    [
        ("flow", lambda sampler: FlowMatchEulerDiscreteScheduler()),
        ("flow", lambda sampler: FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)),
        ("flow", lambda sampler: FlowMatchHeunDiscreteScheduler()),
        ("flow", lambda sampler: UniPCMultistepScheduler(**FLOW_PREDICTION)),
        ("flow", lambda sampler: DPMSolverMultistepScheduler(**FLOW_PREDICTION)),
        ("epsilon", default_scheduler),  # DDIM on the training betas
    ],
)
def test_any_scheduler_integrates_the_frame_as_diffusers_does(prediction_type, make_scheduler):
    # A scheduler that evaluates twice per step (Heun), those that keep state across steps (UniPC,
    # DPM-Solver), a stochastic one, DDIM for an "epsilon" Sampler: a frame is diffusers' loop over all the
    # scheduler's timesteps, and a second call starts afresh.
    torch.manual_seed(0)
    sampler = CAMSampler(
        latent_dim=8, condition_dim=32, width=32, num_blocks=2, prediction_type=prediction_type
    )
    torch.nn.init.normal_(sampler.output_proj.weight, std=0.1)  # a zero output would leave the noise as it is
    scheduler, condition = make_scheduler(sampler), torch.randn(4, 32)
    frames = sample_next_frame(sampler, scheduler, condition, 6, generator=seeded())
    expected = draw_as_diffusers_does(sampler, scheduler, condition, 6, generator=seeded())
    torch.testing.assert_close(frames, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        sample_next_frame(sampler, scheduler, condition, 6, generator=seeded()), frames
    )


def test_generator_list_makes_rows_independent_of_batch(sampler):
    torch.nn.init.normal_(sampler.output_proj.weight, std=0.02)
    condition = torch.randn(3, 32)
    batch = sample_next_frame(
        sampler,
        FlowMatchEulerDiscreteScheduler(),
        condition,
        4,
        generator=[torch.Generator().manual_seed(i) for i in range(3)],
    )
    single = sample_next_frame(
        sampler,
        FlowMatchEulerDiscreteScheduler(),
        condition[2:],
        4,
        generator=[torch.Generator().manual_seed(2)],
    )
    torch.testing.assert_close(batch[2:], single, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="generators"):
        sample_next_frame(
            sampler, FlowMatchEulerDiscreteScheduler(), condition, 4, generator=[torch.Generator()]
        )


def test_sample_next_frame_rejects_bad_arguments(sampler):
    with pytest.raises(ValueError, match="num_inference_steps"):
        sample_next_frame(sampler, FlowMatchEulerDiscreteScheduler(), torch.randn(2, 32), 0)
    with pytest.raises(ValueError, match="num_inference_steps"):
        sample_next_frame(sampler, FlowMatchEulerDiscreteScheduler(), torch.randn(2, 32), 2.0)
    with pytest.raises(ValueError, match="condition"):
        sample_next_frame(sampler, FlowMatchEulerDiscreteScheduler(), torch.randn(2, 31), 2)
    with pytest.raises(ValueError, match="noise"):
        sample_next_frame(
            sampler, FlowMatchEulerDiscreteScheduler(), torch.randn(2, 32), 2, noise=torch.randn(2, 7)
        )


def test_flow_times_stay_float32_in_a_bfloat16_sampler(sampler):
    # Flow times such as 933.4 (16 Euler steps) are not bfloat16 numbers: rounded, they would move
    # by whole units.
    sampler.to(torch.bfloat16)
    seen = []
    sampler.time_embed.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    scheduler = FlowMatchEulerDiscreteScheduler()
    sample_next_frame(sampler, scheduler, torch.randn(1, 32, dtype=torch.bfloat16), 16)
    exact = timestep_embedding(scheduler.timesteps.float(), sampler.config.time_embedding_dim)
    exact = exact.to(torch.bfloat16)
    assert (scheduler.timesteps.to(torch.bfloat16).float() - scheduler.timesteps).abs().max() >= 1
    assert torch.equal(seen[0], exact)


def test_stochastic_scheduler_draws_each_row_from_its_generator(sampler):
    torch.nn.init.normal_(sampler.output_proj.weight, std=0.02)
    condition = torch.randn(2, 32)
    scheduler = FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)
    generators = [torch.Generator().manual_seed(i) for i in (0, 1)]
    batch = sample_next_frame(sampler, scheduler, condition, 4, generator=generators)
    single = sample_next_frame(
        sampler, scheduler, condition[1:], 4, generator=[torch.Generator().manual_seed(1)]
    )
    torch.testing.assert_close(batch[1:], single, rtol=0, atol=1e-6)


def test_guidance_extrapolates_the_two_predictions():
    torch.manual_seed(0)
    sampler = CAMSampler(latent_dim=4, condition_dim=8, width=16, num_blocks=1).eval()
    torch.nn.init.normal_(sampler.output_proj.weight, std=0.3)
    condition, unconditional = torch.randn(3, 8), torch.randn(3, 8)
    noise = torch.randn(3, 4)
    scheduler = default_scheduler(sampler)
    # One Euler step from noise: the step is linear in the prediction, so w extrapolates the two frames.
    frames = {
        w: sample_next_frame(
            sampler,
            scheduler,
            condition,
            1,
            noise=noise,
            unconditional_condition=unconditional,
            guidance_scale=w,
        )
        for w in (0.0, 1.0, 2.5)
    }
    torch.testing.assert_close(frames[1.0], sample_next_frame(sampler, scheduler, condition, 1, noise=noise))
    torch.testing.assert_close(
        frames[0.0], sample_next_frame(sampler, scheduler, unconditional, 1, noise=noise)
    )
    torch.testing.assert_close(
        frames[2.5], frames[0.0] + 2.5 * (frames[1.0] - frames[0.0]), rtol=1e-5, atol=1e-5
    )


def test_the_fixed_step_path_takes_diffusers_euler_steps():
    # The loop takes FlowMatchEulerDiscreteScheduler's steps itself, with step sizes fixed for the call;
    # through the scheduler's own `step` (a subclass is stepped by it, as any other scheduler) the frames
    # are the same.
    class SteppedEuler(FlowMatchEulerDiscreteScheduler):
        pass

    pipe = random_pipeline()
    stepped = FrameSampler(pipe.sampler, SteppedEuler.from_config(pipe.scheduler.config), 5)
    fixed = FrameSampler(pipe.sampler, pipe.scheduler, 5)
    assert stepped.step_sizes is None and len(fixed.step_sizes) == 5
    condition, unconditional = torch.randn(3, 32), torch.randn(3, 32)
    noise = torch.randn(3, pipe.sampler.config.latent_dim)
    torch.testing.assert_close(fixed(condition, noise=noise), stepped(condition, noise=noise), rtol=0, atol=0)
    guided = fixed(condition, noise=noise, unconditional_condition=unconditional, guidance_scale=3.0)
    expected = stepped(condition, noise=noise, unconditional_condition=unconditional, guidance_scale=3.0)
    torch.testing.assert_close(guided, expected, rtol=0, atol=0)


@pytest.mark.parametrize("prompt_frames", [0, 40])
@pytest.mark.parametrize("context_shift", [1, 10, 30])
def test_the_window_is_a_fresh_pass_over_the_frames_it_keeps(backbone, context_shift, prompt_frames):
    # Every z equals the Backbone run afresh on the start vector and the frames the window holds: every frame
    # fed until the context is full, then, rebuilt, the last `context_frames - context_shift` (of a prompt
    # longer than the context too). Its buffer never grows.
    context = backbone.config.max_position_embeddings - 1
    kept = context - context_shift
    frames = torch.randn(1, prompt_frames + 2 * context, 8, generator=seeded())
    window = SlidingWindow(backbone, context_shift, torch.tensor(0.0))
    held = frames[:, :prompt_frames][:, -kept:]
    conditions = [window.start(frames[:, :prompt_frames])]
    expected = [backbone(held).last_hidden_state[:, -1]]
    for index in range(prompt_frames, frames.shape[1]):
        conditions.append(window.append(frames[:, index]))
        held = torch.cat([held, frames[:, index : index + 1]], dim=1)
        held = held[:, -kept:] if held.shape[1] > context else held
        expected.append(backbone(held).last_hidden_state[:, -1])
    torch.testing.assert_close(torch.stack(conditions), torch.stack(expected), rtol=0, atol=1e-5)
    assert window.frames.shape[1] == context
