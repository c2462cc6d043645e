import os
import sys

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cam_hf import CAMConfig, CAMModel, CAMSampler  # noqa: E402
from cam_hf.testing_utils import TINY_BACKBONE_CONFIG  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Each test starts without Accelerate's process-wide state: a test that made an `Accelerator` at one
    precision would otherwise make the next one that asks for another fail ("AcceleratorState has already been
    initialized"), on CPUs where `--mixed_precision auto` picks bf16."""
    yield
    if "accelerate.state" in sys.modules:
        sys.modules["accelerate.state"].AcceleratorState._reset_state(reset_partial_state=True)


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


# A toy sequence distribution with a known answer: each frame is one of two
# Gaussian modes at +-TOY_MEAN with std TOY_STD; the first mode is a fair coin,
# then each frame stays in its predecessor's mode with probability TOY_STAY.
TOY_MEAN, TOY_STD, TOY_STAY = torch.tensor([2.0, -1.0]), 0.3, 0.7


def toy_sequences(num: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
    """`num` sequences of `num_frames` 2-D frames of the toy distribution, `(num, num_frames, 2)`."""
    mode = torch.where(torch.rand(num, generator=generator) < 0.5, 1.0, -1.0)
    frames = []
    for t in range(num_frames):
        if t > 0:
            mode = torch.where(torch.rand(num, generator=generator) < TOY_STAY, mode, -mode)
        frames.append(mode[:, None] * TOY_MEAN + TOY_STD * torch.randn(num, 2, generator=generator))
    return torch.stack(frames, 1)


def write_toy_latent_dataset(path, num_train: int = 256, length: int = 24, lengths_vary: bool = False):
    """A latent dataset as `encode_audio_dataset` writes one (DatasetDict, autoencoder, summary) of toy
    sequences, with an `instrument_name` column (`"high"`/`"low"` alternating); clip i has `length - i % 5`
    frames with `lengths_vary`. Returns `path`."""
    import numpy as np
    from datasets import Array2D, Dataset, DatasetDict, Features, Value

    from cam_hf import MelAutoencoder

    generator = torch.Generator().manual_seed(0)
    features = Features(
        {
            "latents": Array2D(shape=(None, 2), dtype="float16"),
            "num_frames": Value("int32"),
            "instrument_name": Value("string"),
        }
    )
    splits = {}
    for name, count in (("train", num_train), ("validation", 8)):
        sequences = toy_sequences(count, length, generator)
        sizes = [length - (i % 5 if lengths_vary else 0) for i in range(count)]
        rows = {
            "latents": [s[:n].numpy().astype(np.float16) for s, n in zip(sequences, sizes, strict=True)],
            "num_frames": sizes,
            "instrument_name": ["low" if i % 2 else "high" for i in range(count)],
        }
        splits[name] = Dataset.from_dict(rows, features=features)
    DatasetDict(splits).save_to_disk(str(path))
    # A mel codec whose latent is its 2 mel bands: no PCA to fit, so the toy latents decode to (odd) audio.
    MelAutoencoder(
        sample_rate=8000, n_fft=64, stft_hop_length=16, n_mels=2, frames_per_latent=1, latent_dim=2
    ).save_pretrained(str(path / "autoencoder"))
    (path / "encode_summary.json").write_text("{}")
    return path
