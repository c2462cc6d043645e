"""Instrument conditioning and classifier-free guidance in CAMPipeline."""

import numpy as np
import pytest
import torch

from cam_hf import CAMForTraining, CAMModel, CAMPipeline, CAMSampler, default_scheduler
from cam_hf.testing_utils import TINY_BACKBONE_CONFIG, random_pipeline, tiny_mel_autoencoder

INSTRUMENTS = ["violin", "flute", "cello"]


@pytest.fixture(scope="module")
def pipe() -> CAMPipeline:
    return random_pipeline(backbone_config=dict(TINY_BACKBONE_CONFIG, instrument_names=INSTRUMENTS))


def latents(pipe, seed=0, **kwargs) -> torch.Tensor:
    kwargs.setdefault("num_frames", 6)
    return pipe(output_type="latent", generator=torch.Generator().manual_seed(seed), **kwargs).audios


def test_each_instrument_changes_the_output_and_names_equal_ids(pipe):
    violin, flute = latents(pipe, instrument="violin"), latents(pipe, instrument="flute")
    assert not torch.allclose(violin, flute)
    torch.testing.assert_close(latents(pipe, instrument=0), violin)
    # One instrument per waveform in a batch equals each waveform alone (one generator per waveform).
    both = pipe(
        num_frames=6,
        output_type="latent",
        batch_size=2,
        instrument=["violin", "flute"],
        generator=[torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)],
    ).audios
    torch.testing.assert_close(both, torch.cat([violin, flute]), rtol=1e-4, atol=1e-5)


def test_guidance_scale_one_is_conditional_and_zero_is_unconditional(pipe):
    conditional = latents(pipe, instrument="cello")
    torch.testing.assert_close(latents(pipe, instrument="cello", guidance_scale=1.0), conditional)
    unconditional = latents(pipe)
    # w = 0 keeps only the unconditional prediction, whose half of the window reads the same frames.
    torch.testing.assert_close(
        latents(pipe, instrument="cello", guidance_scale=0.0), unconditional, rtol=1e-4, atol=1e-5
    )
    guided = latents(pipe, instrument="cello", guidance_scale=3.0)
    assert not torch.allclose(guided, conditional) and not torch.allclose(guided, unconditional)


def test_a_callback_can_change_the_guidance_between_frames(pipe):
    """As in diffusers' pipelines (their `test_callback_cfg`): `pipe._guidance_scale` is read
    at every frame."""
    seen = []

    def raise_guidance(pipe, index, timestep, callback_kwargs):
        seen.append(pipe.guidance_scale)
        pipe._guidance_scale += 1.0
        return callback_kwargs

    ramped = latents(pipe, instrument="cello", guidance_scale=2.0, callback_on_step_end=raise_guidance)
    assert seen == [2.0 + i for i in range(6)] and pipe.guidance_scale == 2.0 + pipe.num_timesteps
    constant = latents(pipe, instrument="cello", guidance_scale=2.0)
    torch.testing.assert_close(ramped[:, :1], constant[:, :1])  # the first frame is drawn before any change
    assert not torch.allclose(ramped[:, 1:], constant[:, 1:])


def test_stream_sets_the_guidance_when_called(pipe):
    # Before its first chunk is pulled, a stream already reports its own call's guidance, not the last call's.
    latents(pipe, instrument="cello", guidance_scale=2.0)
    stream = pipe.stream(num_frames=3, num_inference_steps=1, instrument="cello", guidance_scale=5.0)
    assert pipe.guidance_scale == 5.0
    assert len(list(stream)) == 1


def test_streaming_continuation_and_long_form_keep_the_instrument(pipe):
    context = pipe.context_frames
    kwargs = dict(num_frames=2 * context + 5, instrument="flute", guidance_scale=2.0)
    whole = latents(pipe, **kwargs)  # past the context: the window slides and is rebuilt with the instrument
    assert whole.shape[1] == 2 * context + 5 and torch.isfinite(whole).all()
    streamed = torch.cat(
        list(
            pipe.stream(
                output_type="latent",
                generator=torch.Generator().manual_seed(0),
                decode_chunk_frames=7,
                **kwargs,
            )
        ),
        dim=1,
    )
    torch.testing.assert_close(streamed, whole)
    prompt = whole[:, :5]
    continued = latents(pipe, prompt_latents=prompt, num_frames=4, instrument="flute", guidance_scale=2.0)
    assert continued.shape == (1, 4, pipe.backbone.config.latent_dim)
    audio = pipe(
        num_frames=4, instrument="violin", guidance_scale=2.0, generator=torch.Generator().manual_seed(0)
    ).audios
    assert audio.shape[0] == 1 and np.isfinite(audio).all()


def test_save_and_load_keep_the_instruments(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    loaded = CAMPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.backbone.config.instrument_names == INSTRUMENTS
    card = (tmp_path / "README.md").read_text()  # the card lists the labels and shows how to ask for one
    assert "`violin`, `flute`, `cello`" in card and 'instrument="violin"' in card
    torch.testing.assert_close(
        latents(loaded, instrument="cello", guidance_scale=2.0),
        latents(pipe, instrument="cello", guidance_scale=2.0),
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"instrument": "tuba"}, "Unknown instrument 'tuba'.*0: 'violin', 1: 'flute', 2: 'cello'"),
        ({"instrument": 3}, "Unknown instrument 3"),
        ({"instrument": ["violin", "flute"]}, "2 instruments for 1 waveforms"),
        ({"instrument": 1.5}, "name or an id"),
        ({"guidance_scale": 3.0}, "pass `instrument` too"),
        ({"instrument": "violin", "guidance_scale": -1.0}, "guidance_scale"),
        ({"instrument": "violin", "guidance_scale": float("nan")}, "guidance_scale"),
        ({"instrument": "violin", "guidance_scale": "3"}, "guidance_scale"),
    ],
)
def test_bad_instruments_and_guidance_are_rejected_clearly(pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        latents(pipe, **kwargs)
    with pytest.raises(ValueError, match=match):
        pipe.stream(num_frames=2, output_type="latent", **kwargs)  # at the call, not at the first chunk


def test_an_unconditional_model_says_it_has_no_instruments():
    pipe = random_pipeline()
    with pytest.raises(ValueError, match="no instrument conditioning"):
        latents(pipe, instrument="violin")


def test_a_trained_conditional_model_follows_its_instrument():
    # Instrument 0 plays frames near +m, instrument 1 near -m: after training, asking for one gives its mode,
    # and guidance sharpens it.
    torch.manual_seed(0)
    autoencoder = tiny_mel_autoencoder()
    dim = autoencoder.latent_dim
    mode = torch.zeros(dim)
    mode[:4] = 2.0
    backbone = CAMModel(
        CAMModel.config_class(
            latent_dim=dim,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=9,
            instrument_names=["up", "down"],
        )
    )
    sampler = CAMSampler(latent_dim=dim, condition_dim=32, width=64, num_blocks=2)
    trainer = CAMForTraining(backbone, sampler, sampler_batch_mul=2, instrument_dropout=0.2)
    optimizer = torch.optim.AdamW(trainer.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(250):
        ids = torch.randint(0, 2, (32,), generator=generator)
        sign = 1.0 - 2.0 * ids.float()
        frames = sign[:, None, None] * mode + 0.2 * torch.randn(32, 8, dim, generator=generator)
        loss = trainer(frames, generator=generator, instrument_ids=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    pipe = CAMPipeline(backbone.eval(), sampler.eval(), default_scheduler(sampler), autoencoder)
    pipe.set_progress_bar_config(disable=True)
    for name, sign in (("up", 1.0), ("down", -1.0)):
        frames = latents(pipe, num_frames=4, batch_size=32, instrument=name, guidance_scale=2.0)
        projection = (frames * mode).sum(-1) / (mode * mode).sum()  # +1 at +m, -1 at -m
        assert (projection * sign > 0.5).float().mean() > 0.9, f"{name}: {projection.mean():.2f}"
