import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    FlowMatchHeunDiscreteScheduler,
    UniPCMultistepScheduler,
)

from cam_hf import CAMSampler, default_scheduler, sample_next_frame
from cam_hf.sampler import timestep_embedding


def test_starts_as_zero_and_has_zero_initialised_modulation(sampler):
    output = sampler(torch.randn(5, 8), torch.rand(5) * 1000, torch.randn(5, 32))
    assert output.shape == (5, 8)
    assert torch.equal(output, torch.zeros_like(output))
    for block in sampler.blocks:
        modulation = block.adaln_modulation[-1].weight
        assert torch.equal(modulation, torch.zeros_like(modulation))


def test_save_load_is_bit_exact(sampler, tmp_path):
    for p in sampler.parameters():
        torch.nn.init.normal_(p)  # non-trivial values everywhere
    sampler.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = CAMSampler.from_pretrained(tmp_path)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded.config) == public(sampler.config)
    for key, value in sampler.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize(
    "field, value",
    [
        ("prediction_type", "sample"),
        ("time_distribution", "beta"),
        ("width", 0),
        ("width", 2.5),
        ("num_blocks", True),
        ("logit_normal_std", 0.0),
        ("time_embedding_dim", 255),  # odd: the sinusoids would give 254 features to a 255-input layer
    ],
)
def test_rejects_invalid_config(field, value):
    with pytest.raises(ValueError, match=field):
        CAMSampler(**{field: value})


def test_euler_loop_integrates_a_known_velocity(sampler):
    # With a constant predicted velocity v = noise - x0, Euler from sigma=1 to 0 lands exactly on x0 = noise -
    # v.
    velocity = torch.randn(3, 8)
    for p in sampler.output_proj.parameters():
        torch.nn.init.zeros_(p)
    sampler.output_proj.bias.data = velocity[0].clone()
    noise = torch.randn(3, 8)
    frames = sample_next_frame(sampler, FlowMatchEulerDiscreteScheduler(), torch.randn(3, 32), 7, noise=noise)
    torch.testing.assert_close(frames, noise - velocity[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "scheduler",
    [
        FlowMatchEulerDiscreteScheduler(),
        FlowMatchHeunDiscreteScheduler(),
        UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True),
        DPMSolverMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True),
    ],
)
def test_flow_schedulers_are_swappable(sampler, scheduler):
    torch.nn.init.normal_(sampler.output_proj.weight, std=0.02)
    generator = torch.Generator().manual_seed(0)
    condition = torch.randn(4, 32)
    first = sample_next_frame(sampler, scheduler, condition, 6, generator=generator)
    again = sample_next_frame(sampler, scheduler, condition, 6, generator=torch.Generator().manual_seed(0))
    assert first.shape == (4, 8) and torch.isfinite(first).all()
    torch.testing.assert_close(first, again)  # set_timesteps per call resets the scheduler's state


def test_epsilon_sampler_uses_ddim():
    sampler = CAMSampler(latent_dim=8, condition_dim=32, width=32, num_blocks=1, prediction_type="epsilon")
    scheduler = default_scheduler(sampler)
    assert isinstance(scheduler, DDIMScheduler) and scheduler.config.prediction_type == "epsilon"
    assert isinstance(default_scheduler(CAMSampler()), FlowMatchEulerDiscreteScheduler)
    frames = sample_next_frame(
        sampler, scheduler, torch.randn(2, 32), 10, generator=torch.Generator().manual_seed(0)
    )
    assert frames.shape == (2, 8) and torch.isfinite(frames).all()


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


def test_bad_arguments_raise(sampler):
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
    # Flow times such as 933.4 (16 Euler steps) are not bfloat16 numbers: rounded, they would move by whole
    # units.
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
