"""Sampler quality against cost: which width and how many flow steps per frame are worth paying for.

The Sampler's cost per frame is (flow steps) x (one MLP pass), and the MLP pass is bound by reading its
weights, so cost grows with steps x width^2. This script measures what quality each setting buys, on a
sequence distribution with a known answer, so that the defaults can be chosen by measurement instead of by
habit.

Data (the known answer): 64-dim frames (Music2Latent's size) from a Markov chain over 8 Gaussian modes. Mode
means are random N(0, 1.5^2) per dimension; each mode has its own diagonal standard deviations in [0.2, 0.6].
The first mode is uniform; then a frame stays in its predecessor's mode with probability 0.5, moves to mode
m+1 with 0.3 and to m+3 with 0.2 (mod 8). So p(x_{t+1} | past) is a 3-component, anisotropic mixture: the
multimodal, sharp kind of conditional an MLP flow head must resolve, and where too few steps blur modes into
each other.

Protocol: for each Sampler width, train a small Backbone (2 layers x 128) + Sampler (3 blocks) with
`CAMForTraining` (default noise augmentation) for the same number of optimiser steps, seed 0. Then generate
sequences free-running, with the pipeline itself (KV cache, k_inf fed back), with flow-matching Euler at each
step count, and compare the generated frames with held-out frames of the true distribution:

  * FD: Frechet distance between Gaussian fits of generated and held-out frames (64 dims).
  * W1: mean over dimensions of the 1-D Wasserstein distance between generated and held-out values.
  * off-mode %: generated frames whose Mahalanobis distance to every mode exceeds the 99.9 % chi^2(64)
    quantile (the true data has 0.1 % of them): blurred frames between modes.
  * transition TV: total-variation distance between the generated and the true mode-transition matrix.

The same metrics between two independent held-out sets give the floor (the sampling noise of the metrics).
Cost: milliseconds per frame of the Sampler alone at batch 1 at musicgen-small's condition size (1024), median
of 20; `--cost_only` measures just that (no training), for a quiet machine.

Run:  .venv/bin/python benchmarks/bench_sampler_quality.py  [--train_steps 1500] [--widths 256 512 1024] \\
          [--cost_only]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import stats

from cam_hf import (
    CAMConfig,
    CAMForTraining,
    CAMModel,
    CAMPipeline,
    CAMSampler,
    default_scheduler,
    sample_next_frame,
)

LATENT_DIM, NUM_MODES = 64, 8
TRANSITIONS = {0: 0.5, 1: 0.3, 3: 0.2}  # mode offset -> probability


class ToyChain:
    """The Markov chain of Gaussian modes described in the module docstring."""

    def __init__(self, seed: int = 1234):
        generator = torch.Generator().manual_seed(seed)
        self.means = 1.5 * torch.randn(NUM_MODES, LATENT_DIM, generator=generator)
        self.stds = 0.2 + 0.4 * torch.rand(NUM_MODES, LATENT_DIM, generator=generator)
        self.transition = torch.zeros(NUM_MODES, NUM_MODES)
        for mode in range(NUM_MODES):
            for offset, probability in TRANSITIONS.items():
                self.transition[mode, (mode + offset) % NUM_MODES] += probability

    def sample(self, num: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
        mode = torch.randint(0, NUM_MODES, (num,), generator=generator)
        frames = []
        for t in range(num_frames):
            if t > 0:
                mode = torch.multinomial(self.transition[mode], 1, generator=generator).squeeze(1)
            frames.append(
                self.means[mode] + self.stds[mode] * torch.randn(num, LATENT_DIM, generator=generator)
            )
        return torch.stack(frames, 1)

    def mahalanobis(self, frames: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance of each frame `[N, D]` to each mode: `[N, NUM_MODES]`."""
        return (((frames[:, None] - self.means[None]) / self.stds[None]) ** 2).sum(-1)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def metrics(chain: ToyChain, generated: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    gen, ref = generated.flatten(0, 1), reference.flatten(0, 1)
    distances = chain.mahalanobis(gen)
    off_mode = (distances.min(-1).values > stats.chi2.ppf(0.999, LATENT_DIM)).float().mean().item()
    modes = distances.argmin(-1).view(generated.shape[:2])
    counts = torch.zeros(NUM_MODES, NUM_MODES)
    counts.index_put_(
        (modes[:, :-1].flatten(), modes[:, 1:].flatten()), torch.ones(modes[:, 1:].numel()), accumulate=True
    )
    estimated = counts / counts.sum(-1, keepdim=True).clamp(min=1)
    transition_tv = 0.5 * (estimated - chain.transition).abs().sum(-1).mean().item()
    w1 = np.mean(
        [stats.wasserstein_distance(gen[:, d].numpy(), ref[:, d].numpy()) for d in range(LATENT_DIM)]
    )
    return {
        "FD": frechet_distance(gen.numpy(), ref.numpy()),
        "W1": float(w1),
        "off-mode %": 100 * off_mode,
        "transition TV": transition_tv,
    }


def train(chain: ToyChain, width: int, steps: int, batch_size: int, seed: int = 0) -> CAMForTraining:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    config = CAMConfig(
        latent_dim=LATENT_DIM,
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        max_position_embeddings=32,
    )
    sampler = CAMSampler(latent_dim=LATENT_DIM, condition_dim=128, width=width, num_blocks=3)
    trainer = CAMForTraining(CAMModel(config), sampler, sampler_batch_mul=2)
    optimizer = torch.optim.AdamW(trainer.parameters(), lr=1e-3, weight_decay=0.0)
    # Linear warm-up then cosine decay: the same schedule for every width.
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(i, steps) / steps))
    )
    start, losses = time.perf_counter(), []
    for _ in range(steps):
        loss = trainer(chain.sample(batch_size, 9, generator), generator=generator).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    print(
        f"  width {width}: trained {steps} steps in {time.perf_counter() - start:.0f} s, "
        f"loss {np.mean(losses[:50]):.3f} -> {np.mean(losses[-50:]):.3f}",
        flush=True,
    )
    return trainer.eval()


def generate(trainer: CAMForTraining, num: int, num_frames: int, steps: int, seed: int) -> torch.Tensor:
    """Free-running generation with the pipeline's own loop (KV cache, k_inf fed back); latents, no codec."""
    pipe = CAMPipeline(
        trainer.backbone, trainer.sampler, default_scheduler(trainer.sampler), autoencoder=None
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        batch_size=num,
        num_frames=num_frames,
        num_inference_steps=steps,
        output_type="latent",
        generator=torch.Generator().manual_seed(seed),
    ).audios


@torch.no_grad()
def sampler_ms_per_frame(width: int, steps: int, condition_dim: int = 1024, repeats: int = 20) -> float:
    """Sampler-only wall time per frame at batch 1 (random weights: cost does not depend on them)."""
    sampler = CAMSampler(latent_dim=LATENT_DIM, condition_dim=condition_dim, width=width, num_blocks=3).eval()
    scheduler = default_scheduler(sampler)
    condition = torch.randn(1, condition_dim)
    for _ in range(3):
        sample_next_frame(sampler, scheduler, condition, steps)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sample_next_frame(sampler, scheduler, condition, steps)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--widths", type=int, nargs="+", default=[256, 512, 1024], help="Sampler widths to compare."
    )
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="Flow steps per frame."
    )
    parser.add_argument(
        "--train_steps", type=int, default=1500, help="Optimiser steps per width (the same for all)."
    )
    parser.add_argument("--batch_size", type=int, default=16, help="Sequences of 9 frames per training step.")
    parser.add_argument("--num_eval", type=int, default=256, help="Generated sequences per setting.")
    parser.add_argument("--eval_frames", type=int, default=6, help="Frames per generated sequence.")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 leaves a core to other work)."
    )
    parser.add_argument(
        "--cost_only",
        action="store_true",
        help="Only time the Sampler per frame for each width and step count (no training): run it on "
        "a quiet machine, as the timings taken while training runs are not representative.",
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.cost_only:
        print(
            f"Sampler ms per frame at batch 1, condition 1024, {torch.get_num_threads()} thread(s), "
            "median of 20"
        )
        print("| width | " + " | ".join(f"{steps} steps" for steps in args.steps) + " |")
        print("|---" * (len(args.steps) + 1) + "|")
        for width in args.widths:
            costs = [sampler_ms_per_frame(width, steps) for steps in args.steps]
            print(f"| {width} | " + " | ".join(f"{ms:.2f}" for ms in costs) + " |", flush=True)
        return
    chain = ToyChain()
    held_out = chain.sample(args.num_eval, args.eval_frames, torch.Generator().manual_seed(100))
    second = chain.sample(args.num_eval, args.eval_frames, torch.Generator().manual_seed(101))
    floor = metrics(chain, second, held_out)
    print("floor (two held-out sets of true data): " + ", ".join(f"{k} {v:.3f}" for k, v in floor.items()))
    header = (
        "| width | steps | Sampler ms/frame (batch 1, cond 1024) | FD | W1 | off-mode % | transition TV |"
    )
    rows = []
    for width in args.widths:
        trainer = train(chain, width, args.train_steps, args.batch_size)
        for steps in args.steps:
            generated = generate(trainer, args.num_eval, args.eval_frames, steps, seed=7)
            result = metrics(chain, generated, held_out)
            cost = sampler_ms_per_frame(width, steps)
            rows.append(
                f"| {width} | {steps} | {cost:.2f} | {result['FD']:.3f} | {result['W1']:.3f} | "
                f"{result['off-mode %']:.1f} | {result['transition TV']:.3f} |"
            )
            print(rows[-1], flush=True)
    print()
    print(header)
    print("|---|---|---|---|---|---|---|")
    print(
        "| (true data) | - | - | "
        + " | ".join(f"{floor[k]:.3f}" if k != "off-mode %" else f"{floor[k]:.1f}" for k in floor)
        + " |"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
