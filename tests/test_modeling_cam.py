import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoConfig, AutoModel, DynamicCache

from cam_hf import CAMConfig, CAMModel

from .conftest import tiny_config


def test_config_round_trip(tmp_path):
    config = tiny_config(
        max_training_noise=0.8, noise_sampling="per_sequence", noise_mixing="variance_preserving"
    )
    config.save_pretrained(tmp_path)
    loaded = CAMConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert isinstance(AutoConfig.from_pretrained(tmp_path), CAMConfig)


def test_config_defaults_match_the_paper():
    config = CAMConfig()
    assert config.latent_dim == 64
    assert config.max_training_noise == 0.5
    assert config.inference_noise == 0.02
    assert config.noise_sampling == "per_frame" and config.noise_mixing == "linear"
    assert not config.condition_on_noise_level
    # 20 s at 44100 / 4096 frames per second, plus the start vector, fits.
    assert config.max_position_embeddings >= 20 * 44100 / 4096 + 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_training_noise", 1.5),
        ("inference_noise", -0.1),
        ("noise_sampling", "per_batch"),
        ("noise_mixing", "cosine"),
        ("num_attention_heads", 5),
        ("num_key_value_heads", 3),
        ("max_position_embeddings", 1),
        ("latent_dim", 0),
    ],
)
def test_config_rejects_invalid_values(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


def test_output_shapes(backbone):
    latents = torch.randn(3, 7, 8)
    z = backbone(latents).last_hidden_state
    assert z.shape == (3, 8, 32)  # z_0 from the start vector, then one per frame
    z_start = backbone(latents[:, :0]).last_hidden_state
    torch.testing.assert_close(z_start, z[:, :1], rtol=0, atol=1e-6)


def test_cache_matches_full_sequence(backbone):
    latents = torch.randn(2, 12, 8)
    full = backbone(latents).last_hidden_state
    output = backbone(latents[:, :0], use_cache=True)
    assert isinstance(output.cache, DynamicCache)
    steps = [output.last_hidden_state]
    for t in range(latents.shape[1]):
        steps.append(backbone(latents[:, t : t + 1], cache=output.cache, use_cache=True).last_hidden_state)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=1e-5)
    assert output.cache.get_seq_length() == 13


def test_cache_prefill_then_steps(backbone):
    latents = torch.randn(2, 10, 8)
    full = backbone(latents).last_hidden_state
    output = backbone(latents[:, :6], use_cache=True)
    rest = backbone(latents[:, 6:], cache=output.cache, use_cache=True).last_hidden_state
    torch.testing.assert_close(torch.cat([output.last_hidden_state, rest], 1), full, rtol=0, atol=1e-5)


def test_padded_batch_equals_sequences_alone(backbone):
    lengths = [9, 5, 2]
    sequences = [torch.randn(1, n, 8) for n in lengths]
    batch = torch.zeros(3, 9, 8)
    mask = torch.zeros(3, 9)
    for i, seq in enumerate(sequences):
        batch[i, : seq.shape[1]] = seq[0]
        mask[i, : seq.shape[1]] = 1
    z = backbone(batch, attention_mask=mask).last_hidden_state
    for i, seq in enumerate(sequences):
        alone = backbone(seq).last_hidden_state
        torch.testing.assert_close(z[i, : seq.shape[1] + 1], alone[0], rtol=0, atol=1e-5)


def test_left_padded_batch_keeps_positions(backbone):
    seq = torch.randn(1, 5, 8)
    batch = torch.cat([torch.zeros(1, 3, 8), seq], 1)
    mask = torch.cat([torch.zeros(1, 3), torch.ones(1, 5)], 1)
    z = backbone(batch, attention_mask=mask).last_hidden_state
    alone = backbone(seq).last_hidden_state
    torch.testing.assert_close(z[0, 4:], alone[0, 1:], rtol=0, atol=1e-5)


def test_rotary_frequencies_survive_a_dtype_round_trip(backbone):
    latents = torch.randn(1, 6, 8)
    reference = backbone(latents).last_hidden_state
    backbone.to(torch.bfloat16).to(torch.float32)  # weights round, positions must not
    rounded = CAMModel(backbone.config).eval()
    rounded.load_state_dict(backbone.state_dict())
    torch.testing.assert_close(backbone(latents).last_hidden_state, rounded(latents).last_hidden_state)
    assert not torch.equal(backbone(latents).last_hidden_state, reference)  # the weights did round


def test_eager_and_sdpa_agree():
    torch.manual_seed(0)
    sdpa = CAMModel(tiny_config()).eval()
    eager = CAMModel(tiny_config(attn_implementation="eager")).eval()
    eager.load_state_dict(sdpa.state_dict())
    latents = torch.randn(2, 6, 8)
    torch.testing.assert_close(
        eager(latents).last_hidden_state, sdpa(latents).last_hidden_state, rtol=0, atol=1e-5
    )


def test_noise_level_conditioning_requires_levels():
    model = CAMModel(tiny_config(condition_on_noise_level=True))
    latents = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match="noise_level"):
        model(latents)
    z_clean = model(latents, noise_level=torch.zeros(2, 4)).last_hidden_state
    z_noisy = model(latents, noise_level=torch.full((2, 4), 0.5)).last_hidden_state
    assert not torch.allclose(z_clean[:, 1:], z_noisy[:, 1:])


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = CAMModel(tiny_config()).train()
    latents = torch.randn(2, 6, 8)
    model(latents).last_hidden_state.square().mean().backward()
    reference = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.activation_checkpointing_enable()
    model(latents).last_hidden_state.square().mean().backward()
    for ref, p in zip(reference, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, ref, rtol=1e-5, atol=1e-6)


def test_save_load_is_bit_exact(backbone, tmp_path):
    backbone.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    for loaded in (CAMModel.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert isinstance(loaded, CAMModel)
        assert loaded.state_dict().keys() == backbone.state_dict().keys()
        for key, value in backbone.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
        latents = torch.randn(1, 4, 8)
        assert torch.equal(loaded.eval()(latents).last_hidden_state, backbone(latents).last_hidden_state)


@pytest.mark.parametrize("short_context_frames", [0, 5])
def test_remote_code_loads_without_cam_hf(short_context_frames, tmp_path):
    torch.manual_seed(0)
    backbone = CAMModel(tiny_config(short_context_frames=short_context_frames)).eval()
    inputs = {"latents": torch.randn(1, 4, 8)}
    if short_context_frames:
        torch.nn.init.normal_(backbone.short_context.output_proj.weight)  # it starts silent
        inputs["clean_latents"] = torch.randn(1, 4, 8)
    backbone.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_cam.CAMModel"
    assert (tmp_path / "modeling_cam.py").exists() and (tmp_path / "configuration_cam.py").exists()
    torch.save({"inputs": inputs, "z": backbone(**inputs).last_hidden_state}, tmp_path / "reference.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path)!r}, trust_remote_code=True).eval()
        assert "cam_hf" not in sys.modules, "cam_hf was imported"
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        reference = torch.load({str(tmp_path / "reference.pt")!r}, weights_only=True)
        assert torch.equal(model(**reference["inputs"]).last_hidden_state, reference["z"])
        print("ok")
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    # Run from tmp_path so the repository's cam_hf is not importable by accident.
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


@pytest.mark.parametrize(
    "latents, match",
    [
        (torch.randn(2, 4, 7), "latent_dim|shape"),
        (torch.randn(4, 8), "shape"),
        (torch.full((1, 3, 8), float("nan")), "NaN"),
        (torch.tensor([[[float("inf")] * 8]]), "NaN or inf"),
        (torch.randn(1, 40, 8), "max_position_embeddings"),
    ],
)
def test_bad_latents_raise(backbone, latents, match):
    with pytest.raises(ValueError, match=match):
        backbone(latents)


def test_bad_mask_raises(backbone):
    with pytest.raises(ValueError, match="attention_mask"):
        backbone(torch.randn(2, 5, 8), attention_mask=torch.ones(2, 6))


def test_cache_overflow_raises(backbone):
    output = backbone(torch.randn(1, 30, 8), use_cache=True)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        backbone(torch.randn(1, 2, 8), cache=output.cache, use_cache=True)


# ---- instrument conditioning -------------------------------------------------------------------------------

INSTRUMENTS = ["violin", "flute", "cello"]


@pytest.mark.parametrize("names", [[], ["violin", "violin"], "violin", ["violin", ""]])
def test_config_rejects_bad_instrument_names(names):
    with pytest.raises(ValueError, match="instrument_names"):
        tiny_config(instrument_names=names)


def test_instrument_ids_by_name_or_id_and_clear_errors():
    config = tiny_config(instrument_names=INSTRUMENTS)
    assert config.num_instruments == 3 and config.no_instrument_id == 3
    assert config.instrument_id("flute") == 1 and config.instrument_id(2) == 2
    with pytest.raises(ValueError, match="'violin', 1: 'flute', 2: 'cello'"):
        config.instrument_id("tuba")
    with pytest.raises(ValueError, match="Unknown instrument 3"):
        config.instrument_id(3)  # the "no instrument" id is not an instrument
    with pytest.raises(ValueError, match="no instrument conditioning"):
        tiny_config().instrument_id("violin")


def test_instrument_conditioning_changes_every_output_and_survives_the_cache():
    torch.manual_seed(0)
    model = CAMModel(tiny_config(instrument_names=INSTRUMENTS)).eval()
    latents = torch.randn(2, 6, 8)
    ids = torch.tensor([0, 2])
    z = model(latents, instrument_ids=ids).last_hidden_state
    z_other = model(latents, instrument_ids=torch.tensor([1, 1])).last_hidden_state
    assert (z - z_other).abs().amax(-1).min() > 1e-4  # every position, the start vector's z_0 included
    # Omitting the ids is the "no instrument" class.
    torch.testing.assert_close(
        model(latents).last_hidden_state,
        model(latents, instrument_ids=torch.tensor([3, 3])).last_hidden_state,
    )
    # Frame by frame with the cache gives the same z as the whole sequence.
    output = model(latents[:, :0], instrument_ids=ids)
    steps = [output.last_hidden_state]
    for t in range(latents.shape[1]):
        output = model(latents[:, t : t + 1], cache=output.cache, instrument_ids=ids)
        steps.append(output.last_hidden_state)
    torch.testing.assert_close(torch.cat(steps, dim=1), z, rtol=1e-5, atol=1e-5)


def test_instrument_ids_are_checked(backbone):
    with pytest.raises(ValueError, match="no instrument conditioning"):
        backbone(torch.randn(1, 3, 8), instrument_ids=torch.tensor([0]))
    model = CAMModel(tiny_config(instrument_names=INSTRUMENTS))
    with pytest.raises(ValueError, match=r"must be in \[0, 3\]"):
        model(torch.randn(2, 3, 8), instrument_ids=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        model(torch.randn(2, 3, 8), instrument_ids=torch.tensor([0]))


def test_instrument_names_survive_save_and_load(tmp_path):
    model = CAMModel(tiny_config(instrument_names=INSTRUMENTS))
    model.save_pretrained(tmp_path)
    loaded = CAMModel.from_pretrained(tmp_path)
    assert loaded.config.instrument_names == INSTRUMENTS
    torch.testing.assert_close(loaded.instrument_embedding.weight, model.instrument_embedding.weight)
