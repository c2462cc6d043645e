import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cam_hf import CAMConfig, CAMModel, CAMSampler  # noqa: E402


def tiny_config(**overrides) -> CAMConfig:
    values = dict(
        latent_dim=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    values.update(overrides)
    return CAMConfig(**values)


@pytest.fixture
def backbone() -> CAMModel:
    torch.manual_seed(0)
    return CAMModel(tiny_config()).eval()


@pytest.fixture
def sampler() -> CAMSampler:
    torch.manual_seed(0)
    return CAMSampler(latent_dim=8, condition_dim=32, width=48, num_blocks=2)
