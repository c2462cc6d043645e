"""The few-step (shortcut) Sampler: made from a flow head it is that head, and trained it draws a frame in 1-2
steps.
"""

import json

import pytest
import torch
from safetensors.torch import save_file

from cam_hf import CAMForTraining, CAMModel, CAMSampler, default_scheduler, sample_next_frame

from .conftest import tiny_config

MEAN, STD = torch.tensor([2.0, -1.0]), 0.3
# A Sampler's config fields before the few-step (shortcut) head, as the first shipped model's has them
# (models/cam-music21-small/sampler/config.json at commit 754f635).
OLD_SAMPLER_FIELDS = (
    "condition_dim",
    "latent_dim",
    "logit_normal_mean",
    "logit_normal_std",
    "num_blocks",
    "num_train_timesteps",
    "prediction_type",
    "time_distribution",
    "time_embedding_dim",
    "width",
)


def two_modes(num: int, generator: torch.Generator) -> torch.Tensor:
    """Frames at +-MEAN with spread STD, a fair coin between the two: one Euler step of a flow lands on the
    mean (0).
    """
    sign = torch.where(torch.rand(num, generator=generator) < 0.5, 1.0, -1.0)
    return sign[:, None] * MEAN + STD * torch.randn(num, 2, generator=generator)


def test_a_shortcut_head_made_from_a_flow_head_is_that_head():
    torch.manual_seed(0)
    flow_head = CAMSampler(latent_dim=8, condition_dim=16, width=32, num_blocks=2)
    for parameter in flow_head.parameters():  # a trained-looking head: nothing zero
        torch.nn.init.normal_(parameter, std=0.2)
    head = CAMSampler.from_flow_head(flow_head, few_step_objective="shortcut")
    assert head.config.few_step_objective == "shortcut" and hasattr(head, "step_size_embed")
    for name, parameter in flow_head.state_dict().items():
        assert torch.equal(head.state_dict()[name], parameter)
    sample, timestep, condition = torch.randn(5, 8), torch.rand(5) * 1000, torch.randn(5, 16)
    for step_size in (None, torch.zeros(5), torch.full((5,), 500.0)):
        torch.testing.assert_close(
            head(sample, timestep, condition, step_size), flow_head(sample, timestep, condition)
        )
    # At max_shortcut_steps it takes plain Euler steps of the flow on a uniform grid.
    noise = torch.randn(5, 8)
    steps = head.config.max_shortcut_steps
    expected = noise.clone()
    for index in range(steps):
        s = 1 - index / steps
        expected = expected - flow_head(expected, torch.full((5,), s * 1000), condition) / steps
    torch.testing.assert_close(
        sample_next_frame(head, default_scheduler(head), condition, steps, noise=noise), expected
    )


def test_from_flow_head_refuses_another_shape_or_a_shortcut_head():
    flow_head = CAMSampler(latent_dim=8, condition_dim=16, width=32)
    with pytest.raises(ValueError, match="shape"):
        CAMSampler.from_flow_head(flow_head, few_step_objective="shortcut", width=64)
    head = CAMSampler.from_flow_head(flow_head, few_step_objective="shortcut")
    with pytest.raises(ValueError, match="plain flow head"):
        CAMSampler.from_flow_head(head)


def test_config_fields_round_trip(tmp_path):
    head = CAMSampler(
        latent_dim=8,
        condition_dim=16,
        width=32,
        few_step_objective="shortcut",
        max_shortcut_steps=8,
        num_inference_steps=2,
    )
    head.save_pretrained(tmp_path / "head")
    loaded = CAMSampler.from_pretrained(tmp_path / "head")
    assert (
        loaded.config.few_step_objective,
        loaded.config.max_shortcut_steps,
        loaded.config.num_inference_steps,
    ) == ("shortcut", 8, 2)
    for name, parameter in head.state_dict().items():
        assert torch.equal(parameter, loaded.state_dict()[name])


def test_a_sampler_saved_before_the_few_step_fields_loads_as_the_flow_head_it_was(tmp_path):
    # Its config.json has the fields of the time, none of `few_step_objective`,
    # `max_shortcut_steps` or `num_inference_steps`.
    torch.manual_seed(0)
    flow = CAMSampler(latent_dim=8, condition_dim=16, width=32, num_blocks=2)
    for parameter in flow.parameters():  # a trained-looking head: nothing zero
        torch.nn.init.normal_(parameter, std=0.2)
    config = {"_class_name": "CAMSampler", "_diffusers_version": "0.42.1"}
    config.update({name: flow.config[name] for name in OLD_SAMPLER_FIELDS})
    (tmp_path / "config.json").write_text(json.dumps(config, indent=2))
    save_file(flow.state_dict(), tmp_path / "diffusion_pytorch_model.safetensors")
    loaded = CAMSampler.from_pretrained(tmp_path)
    assert (
        loaded.config.few_step_objective,
        loaded.config.max_shortcut_steps,
        loaded.config.num_inference_steps,
    ) == (None, 16, 16)
    assert not hasattr(loaded, "step_size_embed")
    for name, parameter in flow.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], parameter)
    # It samples as a flow head: diffusers' Euler steps on the scheduler's grid (sigmas 1, 0.001, 0 for 2
    # steps), not a shortcut head's uniform grid (1, 0.5, 0).
    condition, noise = torch.randn(5, 16), torch.randn(5, 8)
    frames = sample_next_frame(loaded, default_scheduler(loaded), condition, 2, noise=noise)
    scheduler, expected = default_scheduler(loaded), noise
    scheduler.set_timesteps(2)
    for timestep in scheduler.timesteps:
        expected = scheduler.step(flow(expected, timestep, condition), timestep, expected).prev_sample
    torch.testing.assert_close(frames, expected)
    uniform = noise - flow(noise, torch.tensor(1000.0), condition) / 2
    uniform = uniform - flow(uniform, torch.tensor(500.0), condition) / 2
    assert not torch.allclose(frames, uniform, atol=1e-3)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"few_step_objective": "lsd"}, "few_step_objective"),
        ({"few_step_objective": "shortcut", "prediction_type": "epsilon"}, "prediction_type='flow'"),
        ({"max_shortcut_steps": 12}, "power of two"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
    ],
)
def test_bad_config_raises(fields, message):
    with pytest.raises(ValueError, match=message):
        CAMSampler(latent_dim=8, condition_dim=16, width=32, **fields)


def test_shortcut_rows_mix_flow_matching_and_self_consistency():
    torch.manual_seed(0)
    backbone = CAMModel(tiny_config(latent_dim=2, hidden_size=32))
    head = CAMSampler(latent_dim=2, condition_dim=32, width=32, num_blocks=1, few_step_objective="shortcut")
    trainer = CAMForTraining(backbone, head, sampler_batch_mul=4, shortcut_fraction=0.25)
    seen = []
    head.register_forward_pre_hook(lambda module, args: seen.append([a.detach().clone() for a in args]))
    conditions, targets = torch.randn(64, 32), two_modes(64, torch.Generator().manual_seed(0))
    trainer.sampler_loss(conditions, targets, torch.Generator().manual_seed(1))
    # Two passes without gradient make the consistency target, then one pass over every row.
    first, second, rows = seen
    assert first[0].shape[0] == second[0].shape[0] == 64 and rows[0].shape[0] == 256
    timesteps, step_sizes = rows[1] / 1000, rows[3] / 1000
    assert torch.equal(step_sizes[:192], torch.zeros(192))  # flow matching
    doubled = step_sizes[192:]
    assert set(doubled.tolist()) <= {1.0, 0.5, 0.25, 0.125}
    # s lies on the grid of its jump, and a jump never passes data (s - 2d >= 0).
    grid = timesteps[192:] / doubled
    torch.testing.assert_close(grid, grid.round(), rtol=0, atol=1e-4)
    assert (timesteps[192:] - doubled >= -1e-6).all()
    # The inner steps are half the jump, and the finest (1/16) asks for the flow velocity (d = 0).
    inner = first[3] / 1000
    torch.testing.assert_close(torch.where(doubled / 2 <= 1 / 16, 0.0, doubled / 2), inner)
    torch.testing.assert_close(second[1] / 1000, timesteps[192:] - doubled / 2)


def test_a_trained_shortcut_head_draws_both_modes_in_one_step():
    torch.manual_seed(0)
    backbone = CAMModel(tiny_config(latent_dim=2, hidden_size=32))
    head = CAMSampler(latent_dim=2, condition_dim=32, width=64, num_blocks=2, few_step_objective="shortcut")
    trainer = CAMForTraining(backbone, head, sampler_batch_mul=4)
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3)
    generator, condition = torch.Generator().manual_seed(0), torch.zeros(128, 32)
    for _ in range(250):
        loss = trainer.sampler_loss(condition, two_modes(128, generator), generator).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for steps in (1, 2):
            frames = sample_next_frame(
                head,
                default_scheduler(head),
                torch.zeros(2000, 32),
                steps,
                generator=torch.Generator().manual_seed(1),
            )
            position = frames @ MEAN / MEAN.dot(MEAN)  # +1 and -1 at the modes; one flow step would give ~0
            assert (position.abs() < 0.5).float().mean() < 0.1, steps
            assert abs((position > 0).float().mean() - 0.5) < 0.1
            for sign in (1.0, -1.0):
                torch.testing.assert_close(
                    frames[position.sign() == sign].mean(0), sign * MEAN, rtol=0, atol=0.25
                )
