"""Seeds that make a resumed training run exact.

The data order of each epoch is Accelerate's seedable sampler (a permutation seeded by `data_seed(seed) +
epoch`), and everything random in a step (crops, noise levels, noises, flow times, label dropout) comes from
generators seeded by (seed, micro-step, process) (`step_generator`): a run killed anywhere and resumed from a
checkpoint draws the same numbers as a run never stopped.
"""

import torch

# Seeds of the epochs' orders and of the per-step generators are mixed from the run's seed with these primes.
SEED_MIX = (1_000_003, 7_919)


def data_seed(seed: int) -> int:
    """The `data_seed` of Accelerate's seedable sampler, which permutes epoch e with `torch.randperm` seeded
    by `data_seed + e`. It stays `seed * 1_000_003` so that existing checkpoints resume on their order."""
    return seed * SEED_MIX[0]


def step_generator(
    seed: int, micro_step: int, process_index: int, stream: int, device="cpu"
) -> torch.Generator:
    """A generator of one micro-step (stream 0: crops, 1: the model's noise): a pure function of its
    arguments, so a resumed run draws the same numbers."""
    mixed = ((seed * SEED_MIX[0] + micro_step) * SEED_MIX[1] + process_index) * 2 + stream
    return torch.Generator(device=device).manual_seed(mixed % 2**63)


__all__ = ["data_seed", "step_generator"]
