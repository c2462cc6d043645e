"""The Backbone's short clean context (CAMShortContext, CALM's): what it reads in training and at generation,
and that adding it to a trained model changes nothing until it has learned."""

import pytest
import torch
from transformers import DynamicCache

from cam_hf import CAMConfig, CAMForTraining, CAMModel, CAMSampler, mix_noise, sample_next_frame
from cam_hf.testing_utils import TINY_BACKBONE_CONFIG, random_pipeline

from .conftest import seeded, tiny_config

LATENT_DIM, FRAMES = 8, 5  # the tests' short context sees 5 clean frames (2 convolutions of kernel 3)
INSTRUMENTS = ["violin", "flute"]


def short_context_backbone(**overrides) -> CAMModel:
    torch.manual_seed(0)
    backbone = CAMModel(tiny_config(short_context_frames=FRAMES, **overrides)).eval()
    torch.nn.init.normal_(backbone.short_context.output_proj.weight, std=0.3)
    return backbone


@pytest.fixture
def pipe():
    config = dict(TINY_BACKBONE_CONFIG, short_context_frames=FRAMES, instrument_names=INSTRUMENTS)
    return random_pipeline(backbone_config=config, output_std=0.3)


def test_old_configs_have_no_short_context(tmp_path):
    CAMModel(tiny_config()).save_pretrained(tmp_path)
    backbone = CAMModel.from_pretrained(tmp_path)
    assert backbone.config.short_context_frames == 0 and backbone.short_context is None
    assert not [name for name in backbone.state_dict() if "short_context" in name]


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(short_context_frames=-1), "short_context_frames"),
        (dict(short_context_frames=6), "multiple of `short_context_num_layers`"),
        (dict(short_context_frames=5, short_context_num_layers=0), "multiple of `short_context_num_layers`"),
        (dict(short_context_frames=5, short_context_hidden_size=0), "short_context_hidden_size"),
    ],
)
def test_bad_short_context_configs_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**overrides)


def test_kernel_size_covers_the_frames():
    config = CAMConfig(short_context_frames=9, short_context_num_layers=2)
    assert config.short_context_kernel_size == 5 and config.short_context_hidden_size == config.hidden_size
    assert CAMConfig(short_context_frames=1).short_context_kernel_size == 1


def test_added_to_a_trained_backbone_it_changes_nothing_at_first(tmp_path):
    torch.manual_seed(0)
    trained = CAMModel(tiny_config()).eval()
    trained.save_pretrained(tmp_path)
    extended = CAMModel.from_pretrained(tmp_path, short_context_frames=FRAMES).eval()
    assert torch.count_nonzero(extended.short_context.output_proj.weight) == 0
    assert torch.count_nonzero(extended.short_context.input_proj.weight) > 0  # the rest is initialised
    latents = torch.randn(2, 7, LATENT_DIM)
    expected = trained(latents).last_hidden_state
    torch.testing.assert_close(
        extended(latents, clean_latents=torch.randn(2, 7, 8)).last_hidden_state, expected
    )
    # Saved with its short context, it loads back with it (and its output layer as trained).
    torch.nn.init.normal_(extended.short_context.output_proj.weight)
    extended.save_pretrained(tmp_path / "extended")
    reloaded = CAMModel.from_pretrained(tmp_path / "extended")
    torch.testing.assert_close(reloaded.state_dict(), extended.state_dict(), rtol=0, atol=0)


def test_frame_by_frame_with_the_cache_equals_one_pass():
    backbone = short_context_backbone()
    latents, clean = torch.randn(2, 12, LATENT_DIM), torch.randn(2, 12, LATENT_DIM)
    expected = backbone(latents, clean_latents=clean).last_hidden_state
    output = backbone(latents[:, :3], clean_latents=clean[:, :3], use_cache=True)
    steps, cache = [output.last_hidden_state], output.cache
    for t in range(3, 12):
        output = backbone(
            latents[:, t : t + 1], clean_latents=clean[:, t : t + 1], cache=cache, use_cache=True
        )
        steps.append(output.last_hidden_state)
    torch.testing.assert_close(torch.cat(steps, 1), expected, rtol=0, atol=1e-5)


def test_each_position_reads_the_last_k_clean_frames_only():
    backbone = short_context_backbone()
    latents, clean = torch.randn(1, 12, LATENT_DIM), torch.randn(1, 12, LATENT_DIM)
    expected = backbone(latents, clean_latents=clean).last_hidden_state
    changed = clean.clone()
    changed[:, 4] += 1.0  # frame x_5, read at position 5 (position 0 is the start vector)
    moved = (backbone(latents, clean_latents=changed).last_hidden_state - expected).abs().amax(-1)[0]
    assert moved.nonzero().flatten().tolist() == list(range(5, 5 + FRAMES))


def test_padding_reads_as_zero_frames():
    backbone = short_context_backbone()
    latents, clean = torch.randn(1, 6, LATENT_DIM), torch.randn(1, 6, LATENT_DIM)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    padded = backbone(latents, attention_mask=mask, clean_latents=clean).last_hidden_state
    zeroed = clean.clone()
    zeroed[:, 4:] = 0.0
    expected = backbone(latents, attention_mask=mask, clean_latents=zeroed).last_hidden_state
    torch.testing.assert_close(padded, expected)


def test_missing_or_unexpected_clean_latents_raise():
    backbone = short_context_backbone()
    latents = torch.randn(1, 4, LATENT_DIM)
    with pytest.raises(
        ValueError, match="pass `clean_latents` of the shape of `latents` \\(1, 4, 8\\), got None"
    ):
        backbone(latents)
    with pytest.raises(ValueError, match="got \\(1, 3, 8\\)"):
        backbone(latents, clean_latents=latents[:, :3])
    with pytest.raises(ValueError, match="has no short context"):
        CAMModel(tiny_config())(latents, clean_latents=latents)
    cache = DynamicCache()  # filled by a Backbone of the same shape without a short context
    CAMModel(tiny_config())(latents[:, :2], use_cache=True, cache=cache)
    with pytest.raises(ValueError, match="holds the last clean frames"):
        backbone(latents[:, 2:3], clean_latents=latents[:, 2:3], use_cache=True, cache=cache)


def test_training_feeds_it_the_clean_frames_and_the_backbone_the_noisy_ones():
    backbone = short_context_backbone(max_training_noise=1.0)
    sampler = CAMSampler(latent_dim=LATENT_DIM, condition_dim=32, width=32, num_blocks=1)
    for layer in (sampler.output_proj, sampler.final_adaln_modulation[-1]):  # zero at init: no gradient
        torch.nn.init.normal_(layer.weight, std=0.1)
    model = CAMForTraining(backbone, sampler)
    seen = {}
    backbone.short_context.register_forward_hook(lambda module, inputs, output: seen.update(clean=inputs[0]))
    backbone.input_proj.register_forward_hook(lambda module, inputs, output: seen.update(noisy=inputs[0]))
    latents = torch.randn(2, 9, LATENT_DIM)
    model(latents, generator=torch.Generator().manual_seed(0)).loss.backward()
    # Position 0 (start vector) and the K - 1 before it read zeros, then the clean inputs x_1..x_{T-1}.
    padding = torch.zeros(2, FRAMES, LATENT_DIM)
    torch.testing.assert_close(seen["clean"], torch.cat([padding, latents[:, :-1]], 1), rtol=0, atol=0)
    assert not torch.allclose(seen["noisy"], latents[:, :-1])
    assert backbone.short_context.output_proj.weight.grad.abs().sum() > 0


def reference_frames(pipe, num_frames, steps, prompt=None, instrument=None, guidance_scale=1.0):
    """Each frame from a Backbone pass over the whole visible window (`context_shift=1`: the start vector and
    the last frames), with the fed frames and the clean frames beside them: the cached loop must match it."""
    window, k_inf = pipe.context_frames, torch.tensor(pipe.backbone.config.inference_noise)
    latent_dim = pipe.backbone.config.latent_dim
    generator = seeded()
    fed, clean = torch.zeros(1, 0, latent_dim), torch.zeros(1, 0, latent_dim)
    if prompt is not None:
        fed = mix_noise(prompt, torch.randn(prompt.shape, generator=generator), k_inf)
        clean = prompt

    def backbone(instrument_id):
        ids = None if instrument_id is None else torch.tensor([instrument_id])
        output = pipe.backbone(fed, clean_latents=clean, instrument_ids=ids)
        return output.last_hidden_state[:, -1]

    frames = []
    for _ in range(num_frames):
        if fed.shape[1] > window:  # the window is rebuilt from its last frames, as a training crop begins
            fed, clean = fed[:, -(window - 1) :], clean[:, -(window - 1) :]
        if instrument is None:
            frame = sample_next_frame(pipe.sampler, pipe.scheduler, backbone(None), steps, generator)
        else:
            condition = backbone(pipe.backbone.config.instrument_id(instrument))
            unconditional = backbone(pipe.backbone.config.no_instrument_id)
            frame = sample_next_frame(
                pipe.sampler, pipe.scheduler, condition, steps, generator, None, unconditional, guidance_scale
            )
        frames.append(frame)
        noise = torch.randn(1, 1, pipe.backbone.config.latent_dim, generator=generator)
        fed = torch.cat([fed, mix_noise(frame[:, None], noise, k_inf)], 1)
        clean = torch.cat([clean, frame[:, None]], 1)
    return torch.stack(frames, 1)


@pytest.mark.parametrize(
    "prompt_frames, instrument, guidance_scale", [(0, None, 1.0), (4, None, 1.0), (3, "violin", 2.5)]
)
def test_generation_feeds_it_the_drawn_frames_through_the_sliding_window(
    pipe, prompt_frames, instrument, guidance_scale
):
    num_frames, steps = pipe.context_frames + 8, 2  # the window slides past the context
    prompt = torch.randn(1, prompt_frames, pipe.backbone.config.latent_dim) if prompt_frames else None
    kwargs = dict(num_frames=num_frames, num_inference_steps=steps, output_type="latent", context_shift=1)
    generated = pipe(
        prompt_latents=prompt,
        instrument=instrument,
        guidance_scale=guidance_scale,
        generator=seeded(),
        **kwargs,
    ).audios
    expected = reference_frames(pipe, num_frames, steps, prompt, instrument, guidance_scale)
    torch.testing.assert_close(generated, expected, rtol=0, atol=1e-4)


def test_one_shot_streamed_and_batched_generation_agree(pipe):
    kwargs = dict(num_frames=2 * pipe.context_frames + 3, num_inference_steps=2, output_type="latent")
    prompts = torch.randn(2, 6, pipe.backbone.config.latent_dim)
    batch = pipe(
        prompt_latents=prompts, instrument="flute", guidance_scale=2.0, generator=seeded(2), **kwargs
    )
    for i in range(2):
        single = dict(prompt_latents=prompts[i : i + 1], instrument="flute", guidance_scale=2.0, **kwargs)
        one_shot = pipe(generator=[torch.Generator().manual_seed(i)], **single).audios
        streamed = torch.cat(
            list(pipe.stream(generator=[torch.Generator().manual_seed(i)], decode_chunk_frames=7, **single)),
            1,
        )
        torch.testing.assert_close(batch.audios[i : i + 1], one_shot, rtol=0, atol=1e-4)
        torch.testing.assert_close(streamed, one_shot, rtol=0, atol=0)
    # The short context matters: without it the same seeds give other frames.
    pipe.backbone.short_context.output_proj.weight.data.zero_()
    assert not torch.allclose(
        pipe(prompt_latents=prompts, generator=seeded(2), **kwargs).audios, batch.audios
    )
