import pytest
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

from cam_hf import CAMSampler, default_scheduler


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


def test_default_scheduler_is_the_one_the_sampler_was_trained_for():
    epsilon = CAMSampler(latent_dim=8, condition_dim=32, width=32, num_blocks=1, prediction_type="epsilon")
    scheduler = default_scheduler(epsilon)
    assert isinstance(scheduler, DDIMScheduler) and scheduler.config.prediction_type == "epsilon"
    assert isinstance(default_scheduler(CAMSampler()), FlowMatchEulerDiscreteScheduler)
