import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cam_hf import CAMConfig, CAMModel, CAMSampler  # noqa: E402
from cam_hf.testing_utils import TINY_BACKBONE_CONFIG  # noqa: E402


def tiny_config(**overrides) -> CAMConfig:
    return CAMConfig(**{"latent_dim": 8, **TINY_BACKBONE_CONFIG, **overrides})


@pytest.fixture
def backbone() -> CAMModel:
    torch.manual_seed(0)
    return CAMModel(tiny_config()).eval()


@pytest.fixture
def sampler() -> CAMSampler:
    torch.manual_seed(0)
    return CAMSampler(latent_dim=8, condition_dim=32, width=48, num_blocks=2)


def seeded(count: int | None = None) -> torch.Generator | list[torch.Generator]:
    """A generator seeded with 0, or a list of `count` generators seeded 0, 1, ..."""
    if count is None:
        return torch.Generator().manual_seed(0)
    return [torch.Generator().manual_seed(i) for i in range(count)]
