"""Randomly initialised pipelines for tests, benchmarks and demos: one builder instead of one per caller.

A random CAMPipeline exercises the whole path from Backbone to audio without a trained model. Speed does not
depend on the weights, so benchmarks time random pipelines of the sizes they study; tests use the tiny
defaults here.
"""

from __future__ import annotations

import torch

from .autoencoders import AudioAutoencoderMixin, MelAutoencoder
from .configuration_cam import CAMConfig
from .modeling_cam import CAMModel
from .pipeline_cam import CAMPipeline
from .sampler import CAMSampler, default_scheduler

# A Backbone of a few thousand weights: 2 layers x 32, grouped-query attention, a 31-frame context.
TINY_BACKBONE_CONFIG = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=64,
    max_position_embeddings=32,
)
TINY_SAMPLER_CONFIG = dict(width=32, num_blocks=2)


def tiny_mel_autoencoder(latent_dim: int = 32) -> MelAutoencoder:
    """An 8 kHz mel codec: 2 mel frames of 16 bands per latent (32 dims: no PCA to fit), 128 samples per
    latent (62.5 frames/s), 2 Griffin-Lim iterations. `latent_dim` below 32 needs `fit_latent_statistics`
    before encoding."""
    return MelAutoencoder(
        sample_rate=8000,
        n_fft=256,
        stft_hop_length=64,
        n_mels=16,
        frames_per_latent=2,
        latent_dim=latent_dim,
        griffin_lim_iters=2,
    )


def random_pipeline(
    autoencoder: AudioAutoencoderMixin | None = None,
    backbone_config: dict | None = None,
    sampler_config: dict | None = None,
    output_std: float = 0.1,
    seed: int = 0,
) -> CAMPipeline:
    """
    A CAMPipeline with random weights (tiny by default) and the Sampler's default scheduler, progress bar off.

    Args:
        autoencoder (*optional*): the codec; `tiny_mel_autoencoder()` by default. The Backbone and Sampler
            take its `latent_dim`.
        backbone_config (`dict`, *optional*): `CAMConfig` arguments (its defaults fill the rest);
            `TINY_BACKBONE_CONFIG` when `None`. `latent_dim` is the autoencoder's.
        sampler_config (`dict`, *optional*): `CAMSampler` arguments (its defaults fill the rest);
            `TINY_SAMPLER_CONFIG` when `None`. `latent_dim` is the autoencoder's and `condition_dim` the
            Backbone's `hidden_size`.
        output_std (`float`, defaults to 0.1): standard deviation of the weights given to the Sampler's output
            layers (the output projection and the last AdaLN modulation) and to the output layer of the
            Backbone's short context, if it has one. They start at zero, which would make every frame the
            starting noise itself and the short context silent; a trained model's are not zero.
        seed (`int`, defaults to 0): the weights' seed (the global RNG is left as it was).

    Returns:
        [`CAMPipeline`] in eval mode.
    """
    autoencoder = autoencoder if autoencoder is not None else tiny_mel_autoencoder()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone_config = TINY_BACKBONE_CONFIG if backbone_config is None else backbone_config
        config = CAMConfig(latent_dim=autoencoder.latent_dim, **backbone_config)
        backbone = CAMModel(config).eval()
        sampler_config = TINY_SAMPLER_CONFIG if sampler_config is None else sampler_config
        sampler = CAMSampler(
            latent_dim=autoencoder.latent_dim, condition_dim=config.hidden_size, **sampler_config
        )
        sampler.eval()
        output_layers = [sampler.output_proj, sampler.final_adaln_modulation[-1]]
        if backbone.short_context is not None:
            output_layers.append(backbone.short_context.output_proj)
        for layer in output_layers:
            torch.nn.init.normal_(layer.weight, std=output_std)
    pipe = CAMPipeline(backbone, sampler, default_scheduler(sampler), autoencoder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def griffin_lim_on_torch_stft(
    codec: MelAutoencoder, magnitude: torch.Tensor, length: int, initial_phase: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`MelAutoencoder.griffin_lim` as it was written before it moved to `torch.fft` (the same algorithm on
    `torch.stft` / `torch.istft`, at twice the cost): the reference its tests and
    `benchmarks/bench_griffin_lim.py` compare it with. Same arguments and returns."""
    magnitude = torch.cat([magnitude, magnitude[..., -1:]], dim=-1)
    config = codec.config
    istft = {"n_fft": config.n_fft, "hop_length": config.stft_hop_length, "window": codec.window}
    phase = torch.rand(magnitude.shape[1:], generator=torch.Generator().manual_seed(0)) * (2 * torch.pi)
    angles = torch.polar(torch.ones_like(magnitude), phase.expand_as(magnitude))
    if initial_phase is not None:
        shared = min(initial_phase.shape[-1], angles.shape[-1])
        angles[..., :shared] = initial_phase[..., :shared]
    momentum = config.griffin_lim_momentum / (1 + config.griffin_lim_momentum)
    previous = torch.zeros_like(angles)
    for _ in range(config.griffin_lim_iters):
        rebuilt = codec._stft(torch.istft(magnitude * angles, length=length, **istft))
        angles = rebuilt - momentum * previous
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return torch.istft(magnitude * angles, length=length, **istft), angles


__all__ = [
    "TINY_BACKBONE_CONFIG",
    "TINY_SAMPLER_CONFIG",
    "griffin_lim_on_torch_stft",
    "random_pipeline",
    "tiny_mel_autoencoder",
]
