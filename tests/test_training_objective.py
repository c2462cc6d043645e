"""cam_hf/training/objective.py: CAMForTraining's noise augmentation, loss over real frames, label dropout and
input checks, and a toy run whose generations match a known distribution."""

import pytest
import torch
from scipy import stats

from cam_hf import CAMForTraining, CAMModel, CAMSampler, default_scheduler, mix_noise, sample_next_frame

from .conftest import TOY_MEAN, TOY_STAY, TOY_STD, tiny_config, toy_sequences


def make_trainer(latent_dim=64, **config_overrides) -> CAMForTraining:
    torch.manual_seed(0)
    backbone = CAMModel(tiny_config(latent_dim=latent_dim, **config_overrides))
    sampler = CAMSampler(latent_dim=latent_dim, condition_dim=32, width=32, num_blocks=1)
    return CAMForTraining(backbone, sampler, sampler_batch_mul=2)


def capture_backbone_inputs(trainer: CAMForTraining) -> list[torch.Tensor]:
    seen = []
    trainer.backbone.input_proj.register_forward_hook(
        lambda module, args, output: seen.append(args[0].detach())
    )
    return seen


def test_noise_levels_are_uniform_per_frame():
    trainer = make_trainer(max_training_noise=0.5)
    levels = trainer.draw_noise_levels(400, 50, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert levels.shape == (400, 50)
    assert stats.kstest(levels.flatten().numpy()[:5000], stats.uniform(0, 0.5).cdf).pvalue > 1e-3
    # Independent draws per frame: neighbouring frames are uncorrelated.
    assert abs(stats.pearsonr(levels[:, 0].numpy(), levels[:, 1].numpy()).statistic) < 0.2


def test_noise_levels_per_sequence_are_constant_within_a_sequence():
    trainer = make_trainer(max_training_noise=0.8, noise_sampling="per_sequence")
    levels = trainer.draw_noise_levels(2000, 10, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert torch.equal(levels, levels[:, :1].expand_as(levels))
    assert stats.kstest(levels[:, 0].numpy(), stats.uniform(0, 0.8).cdf).pvalue > 1e-3


@pytest.mark.parametrize(
    "mixing, expected_std", [("linear", lambda k: k), ("variance_preserving", lambda k: k.sqrt())]
)
def test_backbone_sees_inputs_mixed_with_the_drawn_noise(mixing, expected_std):
    # On zero latents the Backbone's input frame is k * eps (or sqrt(k) * eps): its spread over the 64
    # channels estimates the noise actually applied to that frame.
    trainer = make_trainer(max_training_noise=0.5, noise_mixing=mixing)
    seen = capture_backbone_inputs(trainer)
    output = trainer(torch.zeros(8, 20, 64), generator=torch.Generator().manual_seed(0))
    spread = seen[0].std(-1)
    expected = expected_std(output.noise_levels)
    assert spread.shape == expected.shape == (8, 19)
    relative_error = (spread - expected).abs() / expected.clamp(min=1e-2)
    assert relative_error[expected > 0.05].median() < 0.1
    assert stats.pearsonr(spread.flatten().numpy(), expected.flatten().numpy()).statistic > 0.95


def test_no_noise_when_maximum_is_zero():
    trainer = make_trainer(max_training_noise=0.0)
    seen = capture_backbone_inputs(trainer)
    latents = torch.randn(4, 10, 64)
    output = trainer(latents)
    assert torch.equal(output.noise_levels, torch.zeros(4, 9))
    assert torch.equal(seen[0], latents[:, :-1])


def test_loss_ignores_padding_and_targets_every_real_frame():
    trainer = make_trainer(latent_dim=8)
    latents = torch.randn(2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    generator = torch.Generator().manual_seed(0)
    output = trainer(latents, attention_mask=mask, generator=generator)
    assert output.frame_losses.shape == (9,)
    padded = latents.clone()
    padded[1, 3:] = 1e3  # garbage in the padding must change nothing
    again = trainer(padded, attention_mask=mask, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.loss, trainer(latents, mask, torch.Generator().manual_seed(0)).loss)


def test_epsilon_prediction_baseline_trains():
    torch.manual_seed(0)
    backbone = CAMModel(tiny_config(latent_dim=8))
    sampler = CAMSampler(latent_dim=8, condition_dim=32, width=32, num_blocks=1, prediction_type="epsilon")
    trainer = CAMForTraining(backbone, sampler)
    output = trainer(torch.randn(2, 5, 8))
    output.loss.backward()
    assert torch.isfinite(output.loss) and sampler.output_proj.weight.grad.abs().sum() > 0


def test_bad_inputs_raise():
    trainer = make_trainer(latent_dim=8)
    with pytest.raises(ValueError, match="attention_mask"):
        trainer(torch.randn(2, 6, 8), attention_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="latent_dim|shape"):
        trainer(torch.randn(2, 6, 9))
    with pytest.raises(ValueError, match="NaN"):
        trainer(torch.full((2, 6, 8), float("nan")))
    with pytest.raises(ValueError, match="condition_dim"):
        CAMForTraining(CAMModel(tiny_config()), CAMSampler(latent_dim=8, condition_dim=16))
    with pytest.raises(ValueError, match="latent_dim"):
        CAMForTraining(CAMModel(tiny_config()), CAMSampler(latent_dim=4, condition_dim=32))


@pytest.fixture(scope="module")
def toy_run():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    backbone = CAMModel(
        tiny_config(latent_dim=2, hidden_size=64, intermediate_size=128, num_key_value_heads=4)
    )
    sampler = CAMSampler(latent_dim=2, condition_dim=64, width=128, num_blocks=3)
    trainer = CAMForTraining(backbone, sampler)  # default noise augmentation: k_t ~ U(0, 0.5) per frame
    optimizer = torch.optim.AdamW(trainer.parameters(), lr=2e-3)
    losses = []
    for _ in range(300):
        loss = trainer(toy_sequences(48, 10, generator), generator=generator).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    trainer.eval()
    scheduler = default_scheduler(sampler)
    num, num_frames = 400, 12
    with torch.no_grad():
        output = backbone(torch.zeros(num, 0, 2), use_cache=True)
        condition, frames = output.last_hidden_state[:, -1], []
        for _ in range(num_frames):
            frame = sample_next_frame(sampler, scheduler, condition, 16, generator=generator)
            frames.append(frame)
            noise = torch.randn(frame.shape, generator=generator)
            fed_back = mix_noise(frame, noise, torch.tensor(backbone.config.inference_noise))
            condition = backbone(fed_back[:, None], cache=output.cache, use_cache=True).last_hidden_state[
                :, -1
            ]
    return losses, torch.stack(frames, 1)


def test_toy_loss_goes_down(toy_run):
    losses, _ = toy_run
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.8 * first, (first, last)


def test_toy_generations_match_the_distribution(toy_run):
    _, frames = toy_run
    position = frames @ TOY_MEAN / TOY_MEAN.dot(TOY_MEAN)  # +1 and -1 at the two modes
    mode = position.sign()
    assert (position.abs() < 0.5).float().mean() < 0.03  # hardly anything between the modes
    assert abs((mode[:, 0] > 0).float().mean() - 0.5) < 0.1  # the first frame's coin is fair
    stay = (mode[:, 1:] == mode[:, :-1]).float().mean()
    assert abs(stay - TOY_STAY) < 0.05, stay  # transitions in the right proportion
    for sign in (1.0, -1.0):
        members = frames[mode == sign]
        torch.testing.assert_close(members.mean(0), sign * TOY_MEAN, rtol=0, atol=0.15)
        assert ((members.std(0) - TOY_STD).abs() < 0.3 * TOY_STD).all(), members.std(0)


def test_instrument_label_dropout_rate_and_eval_mode():
    torch.manual_seed(0)
    backbone = CAMModel(tiny_config(latent_dim=8, instrument_names=["a", "b"]))
    sampler = CAMSampler(latent_dim=8, condition_dim=32, width=32, num_blocks=1)
    trainer = CAMForTraining(backbone, sampler, sampler_batch_mul=1, instrument_dropout=0.25)
    seen = []
    backbone.instrument_embedding.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    ids = torch.zeros(4000, dtype=torch.long)
    trainer(torch.randn(4000, 2, 8), instrument_ids=ids, generator=torch.Generator().manual_seed(0))
    dropped = (seen[-1] == backbone.config.no_instrument_id).float().mean().item()
    assert abs(dropped - 0.25) < 0.03
    assert set(seen[-1].tolist()) == {0, 2}
    trainer.eval()
    trainer(torch.randn(16, 2, 8), instrument_ids=ids[:16])
    assert seen[-1].tolist() == [0] * 16  # no label dropout outside training
    with pytest.raises(ValueError, match="instrument_dropout"):
        CAMForTraining(backbone, sampler, instrument_dropout=1.5)
