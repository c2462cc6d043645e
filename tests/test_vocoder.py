"""The mel codec's learned decoder (`MelVocoder`): shapes and receptive field, saving with the codec (and
codecs saved without one), chunked against whole decoding, the losses, and examples/train_vocoder.py (a real
run on a tiny dataset, and an exact resume). Tiny random vocoders: every test runs in seconds on one core."""

import io
import json
import os
import sys
from copy import deepcopy
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import Audio, Dataset, DatasetDict

from cam_hf import CAMPipeline
from cam_hf.autoencoders import MelAutoencoder, MelVocoder, check_same_autoencoder
from cam_hf.autoencoders.vocoder_losses import mel_loss, multi_resolution_stft_loss
from cam_hf.testing_utils import random_pipeline, tiny_mel_autoencoder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import train_vocoder  # noqa: E402  (the script, for its `main`)

SHIPPED_CODEC = ROOT / "models" / "cam-music21-small" / "autoencoder"
TINY_VOCODER = dict(dim=16, intermediate_dim=32, num_blocks=2)


def tones(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Quarter-second notes of a 5-harmonic tone at random pitches, with a little noise."""
    rng = np.random.default_rng(seed)
    note = int(0.25 * sample_rate)
    t = np.arange(note) / sample_rate
    notes = [
        sum(np.sin(2 * np.pi * 220 * 2 ** (rng.integers(0, 12) / 12) * h * t) / h for h in range(1, 6))
        * np.exp(-4 * t)
        for _ in range(int(seconds / 0.25))
    ]
    audio = np.concatenate(notes) * 0.2 + 0.002 * rng.standard_normal(len(notes) * note)
    return audio.astype(np.float32)


@pytest.fixture(scope="module")
def codec() -> MelAutoencoder:
    """The tiny 8 kHz codec with a PCA fitted to 24 of its 32 stacked values."""
    codec = tiny_mel_autoencoder(latent_dim=24)
    codec.fit_latent_statistics(torch.from_numpy(tones(4.0, 8000, seed=0))[None, None])
    return codec


def with_vocoder(codec: MelAutoencoder, seed: int = 0, **sizes) -> MelAutoencoder:
    """A copy of `codec` with a random vocoder attached."""
    # Not `from_config`: diffusers drops the fields a codec was built without (`_use_default_values`) even
    # after `fit_latent_statistics` has set them.
    copy = deepcopy(codec)
    torch.manual_seed(seed)
    copy.set_vocoder(MelVocoder.for_codec(codec, **(sizes or TINY_VOCODER)))
    return copy


def test_vocoder_shapes_receptive_field_and_size():
    vocoder = MelVocoder(**TINY_VOCODER, n_mels=16, n_fft=256, hop_length=64, sample_rate=8000)
    audio = vocoder(torch.randn(3, 16, 10) - 4)
    assert audio.shape == (3, 10 * 64) and audio.dtype == torch.float32
    # 2 blocks of kernel 7 and an input kernel of 7: 2 * 6 + 7 mel frames; 9 on a side + 2 of iSTFT overlap.
    assert vocoder.receptive_field == 19 and vocoder.context_frames == 11
    default = MelVocoder()
    assert (default.receptive_field, default.context_frames) == (55, 29)
    size_mb = 4 * sum(p.numel() for p in default.parameters()) / 1e6
    assert 10 < size_mb < 20, size_mb  # the budget is 20 MB
    # Without the prior and with a constant input, the output is still audio of the right length.
    assert MelVocoder(**TINY_VOCODER, magnitude_prior=False)(torch.zeros(1, 80, 3)).shape == (1, 768)
    with pytest.raises(ValueError, match=r"shape \[batch, 16, frames >= 1\], got \(3, 15, 10\)"):
        vocoder(torch.randn(3, 15, 10))
    with pytest.raises(ValueError, match="kernel_size must be a positive odd number"):
        MelVocoder(kernel_size=4)


def test_codec_saves_and_loads_its_vocoder_and_codecs_without_one_are_unchanged(codec, tmp_path):
    voiced = with_vocoder(codec)
    latents = codec.encode(torch.from_numpy(tones(1.0, 8000, seed=1))[None, None])
    decoded = voiced.decode(latents)
    assert decoded.shape == (1, 1, latents.shape[1] * codec.hop_length)
    griffin_lim = codec.decode(latents)
    assert not torch.allclose(decoded, griffin_lim, atol=1e-3)

    voiced.save_pretrained(tmp_path / "voiced")
    assert sorted(os.listdir(tmp_path / "voiced" / "vocoder")) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
    ]
    # The codec's own files are what a codec without a vocoder writes: config and weights unchanged.
    codec.save_pretrained(tmp_path / "plain")
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        assert (tmp_path / "voiced" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
    loaded = MelAutoencoder.from_pretrained(tmp_path / "voiced")
    public = [{k: v for k, v in c.vocoder.config.items() if not k.startswith("_")} for c in (loaded, voiced)]
    assert public[0] == public[1]
    torch.testing.assert_close(loaded.decode(latents), decoded, rtol=0, atol=0)

    plain = MelAutoencoder.from_pretrained(tmp_path / "plain")
    assert plain.vocoder is None and plain.exact_decode_context_frames is None
    torch.testing.assert_close(plain.decode(latents), griffin_lim, rtol=0, atol=0)
    # Saving again without the vocoder over a folder that had one leaves no stale vocoder behind.
    loaded.set_vocoder(None)
    loaded.save_pretrained(tmp_path / "voiced")
    assert not (tmp_path / "voiced" / "vocoder").exists()
    assert MelAutoencoder.from_pretrained(tmp_path / "voiced").vocoder is None

    # A pipeline saves and loads its codec's vocoder, and streams with it.
    pipe = random_pipeline(with_vocoder(tiny_mel_autoencoder()))
    pipe.save_pretrained(tmp_path / "pipe")
    again = CAMPipeline.from_pretrained(tmp_path / "pipe")
    assert again.autoencoder.vocoder is not None
    frames = torch.randn(1, 12, 32)
    torch.testing.assert_close(again.autoencoder.decode(frames), pipe.autoencoder.decode(frames))
    audio = again(num_frames=3, generator=torch.Generator().manual_seed(0), output_type="pt").audios
    assert audio.shape[-1] == 3 * again.autoencoder.hop_length and torch.isfinite(audio).all()


def test_the_shipped_codec_decodes_with_its_trained_vocoder_and_griffin_lim_without_it():
    shipped = MelAutoencoder.from_pretrained(SHIPPED_CODEC)
    # The vocoder is saved beside the codec: the codec's own weights (and so its latents) are the PCA's alone.
    assert isinstance(shipped.vocoder, MelVocoder)
    assert set(shipped.state_dict()) == {"projection", "projection_mean"}
    latents = torch.randn(1, 3, shipped.latent_dim, generator=torch.Generator().manual_seed(0))
    log_mel = shipped.latents_to_log_mel(shipped.denormalize_latents(latents))[:, 0]
    with torch.no_grad():
        expected = shipped.vocoder(log_mel)
    decoded = shipped.decode(latents)[:, 0]
    torch.testing.assert_close(decoded, expected[..., : decoded.shape[-1]], rtol=0, atol=1e-6)
    # Detached, the same codec decodes with Griffin-Lim, as every codec without a vocoder does.
    shipped.set_vocoder(None)
    magnitude = torch.matmul(shipped.mel_inverse, log_mel.exp()).clamp(min=0)
    griffin_lim, _ = shipped.griffin_lim(magnitude, 3 * shipped.hop_length)
    torch.testing.assert_close(shipped.decode(latents)[:, 0], griffin_lim, rtol=0, atol=0)


@pytest.mark.parametrize(("chunk", "context"), [(1, 0), (3, 1), (5, 6), (7, 9)])
def test_chunked_and_streamed_decoding_equal_whole_decoding(codec, chunk, context):
    voiced = with_vocoder(codec)
    # The receptive field (11 mel frames a side) in latent frames of 2 mel frames, whatever was asked for.
    assert voiced.exact_decode_context_frames == 6
    latents = torch.randn(2, 23, 24, generator=torch.Generator().manual_seed(chunk))
    whole = voiced.decode(latents)
    torch.testing.assert_close(voiced.decode_chunked(latents, chunk, context), whole, rtol=0, atol=1e-5)
    pieces = torch.split(latents, [1, 4, 2, 9, 7], dim=1)
    streamed = torch.cat(list(voiced.decode_stream_beside(pieces, chunk, context)), dim=-1)
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-5)


def test_the_default_architecture_streams_exactly_with_the_default_context():
    # The default codec's STFT and stacking with the default depth: 29 mel frames a side fit in 4 latent
    # frames, the pipelines' default context. 640 latent dims: no PCA to fit.
    codec = MelAutoencoder(latent_dim=640)
    torch.manual_seed(0)
    codec.set_vocoder(MelVocoder.for_codec(codec, dim=16, intermediate_dim=32))
    assert codec.exact_decode_context_frames == 4
    latents = torch.randn(1, 9, 640, generator=torch.Generator().manual_seed(0)) - 3
    whole = codec.decode(latents)
    torch.testing.assert_close(codec.decode_chunked(latents, 2, 4), whole, rtol=0, atol=1e-5)
    # The codec keeps its vocoder in float32 on its device when a pipeline casts it.
    codec.to(torch.bfloat16)
    assert codec.vocoder.dtype == torch.float32 and codec.dtype == torch.bfloat16


def test_a_vocoder_changes_nothing_the_latents_depend_on(codec):
    voiced = with_vocoder(codec)
    check_same_autoencoder(codec, voiced, "dataset", "pipeline")
    check_same_autoencoder(voiced, codec, "dataset", "pipeline")
    audio = torch.from_numpy(tones(1.0, 8000, seed=2))[None, None]
    torch.testing.assert_close(voiced.encode(audio), codec.encode(audio), rtol=0, atol=0)
    refitted = with_vocoder(codec)
    refitted.fit_latent_statistics(torch.from_numpy(tones(4.0, 8000, seed=3))[None, None])
    with pytest.raises(ValueError, match="encoded with another autoencoder"):
        check_same_autoencoder(codec, refitted, "dataset", "pipeline")


def test_set_vocoder_rejects_a_vocoder_for_other_settings(codec):
    with pytest.raises(ValueError, match=r"n_fft 1024 \(codec: 256\), hop_length 256 \(codec: 64\)"):
        codec.set_vocoder(MelVocoder(**TINY_VOCODER, sample_rate=8000, n_mels=16))
    with pytest.raises(ValueError, match="takes a MelVocoder or None, got Linear"):
        codec.set_vocoder(torch.nn.Linear(2, 2))
    assert codec.vocoder is None


def test_losses_are_zero_for_identical_audio_and_grow_with_the_difference(codec):
    audio = torch.from_numpy(tones(1.0, 8000, seed=4))[None].repeat(2, 1)
    silence = torch.zeros_like(audio)
    assert multi_resolution_stft_loss(audio, audio).item() == 0.0
    assert mel_loss(codec, audio, audio).item() == 0.0
    assert multi_resolution_stft_loss(silence, silence).item() == 0.0
    noisy = audio + 0.01 * torch.randn(audio.shape, generator=torch.Generator().manual_seed(0))
    noisier = audio + 0.1 * torch.randn(audio.shape, generator=torch.Generator().manual_seed(0))
    for loss in (multi_resolution_stft_loss, lambda a, b: mel_loss(codec, a, b)):
        assert 0 < loss(noisy, audio).item() < loss(noisier, audio).item()
        assert torch.isfinite(loss(silence, audio)) and loss(silence, audio).item() > 0
    with pytest.raises(ValueError, match=r"same shape \[batch, samples\], got \(2, 8000\) and \(2, 7999\)"):
        multi_resolution_stft_loss(audio, audio[:, 1:])


# ---- examples/train_vocoder.py ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio_dataset(tmp_path_factory, codec) -> tuple[Path, Path]:
    """A tiny audio DatasetDict as examples/make_dataset.py writes one (FLAC bytes at 16 kHz, twice the
    codec's rate), and the fitted codec's folder."""
    folder = tmp_path_factory.mktemp("vocoder-data")
    splits = {}
    for name, count, seed in (("train", 6, 10), ("validation", 2, 20)):
        rows = []
        for index in range(count):
            buffer = io.BytesIO()
            sf.write(buffer, tones(1.0, 16000, seed + index), 16000, format="FLAC", subtype="PCM_16")
            rows.append({"audio": {"bytes": buffer.getvalue(), "path": f"{name}-{index}.flac"}})
        splits[name] = Dataset.from_list(rows).cast_column("audio", Audio(sampling_rate=16000, decode=False))
    DatasetDict(splits).save_to_disk(str(folder / "audio"))
    codec.save_pretrained(folder / "codec")
    return folder / "audio", folder / "codec"


def train_args(audio_dataset, output_dir: Path, *extra: str) -> list[str]:
    dataset, codec_dir = audio_dataset
    return [
        "--dataset_dir", str(dataset), "--autoencoder_path", str(codec_dir), "--output_dir", str(output_dir),
        "--dim", "16", "--intermediate_dim", "32", "--num_blocks", "2", "--train_batch_size", "2",
        "--segment_seconds", "0.3", "--max_train_steps", "4", "--checkpointing_steps", "2",
        "--num_validation_clips", "2", "--latent_noise_std", "0.1", "--seed", "5", *extra,
    ]  # fmt: skip


def step_losses(output_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (output_dir / "train_log.jsonl").read_text().splitlines()]
    return {record["step"]: record["loss"] for record in records if "loss" in record}


def test_train_vocoder_runs_saves_a_codec_that_decodes_and_resumes_exactly(audio_dataset, tmp_path):
    whole = tmp_path / "whole"
    summary = train_vocoder.main(train_args(audio_dataset, whole, "--dataloader_num_workers", "1"))
    losses = step_losses(whole)
    assert sorted(losses) == [1, 2, 3, 4] and all(np.isfinite(list(losses.values())))
    assert summary["steps"] == 4 and summary["final_train_loss"] == losses[4]
    validation = summary["validation"]
    assert set(validation) == {"vocoder", "griffin_lim"} and set(validation["vocoder"]) == {
        "sc",
        "lsd",
        "mel_l1",
    }
    assert sorted(os.listdir(whole)) == [
        "autoencoder", "checkpoint-2", "checkpoint-4", "summary.json", "train_args.json", "train_log.jsonl",
    ]  # fmt: skip

    trained = MelAutoencoder.from_pretrained(whole / "autoencoder")
    assert trained.vocoder is not None and trained.vocoder.config.dim == 16
    codec = MelAutoencoder.from_pretrained(audio_dataset[1])
    check_same_autoencoder(codec, trained, "dataset", "run")
    latents = codec.encode(torch.from_numpy(tones(1.0, 8000, seed=7))[None, None])
    decoded = trained.decode(latents)
    assert decoded.shape == (1, 1, latents.shape[1] * codec.hop_length) and torch.isfinite(decoded).all()

    # Killed after step 2 (here: stopped there), then resumed: the same losses and the same weights.
    parted = tmp_path / "parted"
    train_vocoder.main(
        train_args(audio_dataset, parted, "--stop_after_steps", "2", "--dataloader_num_workers", "0")
    )
    assert sorted(step_losses(parted)) == [1, 2]
    train_vocoder.main(
        train_args(
            audio_dataset, parted, "--resume_from_checkpoint", "latest", "--dataloader_num_workers", "0"
        )
    )
    assert step_losses(parted) == losses
    resumed = MelAutoencoder.from_pretrained(parted / "autoencoder").vocoder.state_dict()
    for name, weight in trained.vocoder.state_dict().items():
        torch.testing.assert_close(resumed[name], weight, rtol=0, atol=0)


def test_train_vocoder_fine_tunes_the_codecs_vocoder_unless_asked_for_a_new_one(audio_dataset, tmp_path):
    with_vocoder = MelAutoencoder.from_pretrained(audio_dataset[1])
    torch.manual_seed(3)
    with_vocoder.set_vocoder(MelVocoder.for_codec(with_vocoder, dim=16, intermediate_dim=32, num_blocks=2))
    with_vocoder.save_pretrained(tmp_path / "codec")
    started = with_vocoder.vocoder.state_dict()

    def train_from_it(output_dir: Path, *extra: str) -> MelAutoencoder:
        args = train_args(audio_dataset, output_dir, "--max_train_steps", "1")
        args[args.index("--autoencoder_path") + 1] = str(tmp_path / "codec")
        train_vocoder.main([*args, *extra])
        return MelAutoencoder.from_pretrained(output_dir / "autoencoder")

    # A learning rate too small to move a weight: what comes out is what went in, so it started from it.
    tuned = train_from_it(tmp_path / "tuned", "--learning_rate", "1e-12", "--dim", "8")
    assert tuned.vocoder.config.dim == 16  # the sizes are the codec's vocoder's, not the arguments'
    for name, weight in tuned.vocoder.state_dict().items():
        torch.testing.assert_close(weight, started[name], rtol=0, atol=1e-6)

    fresh = train_from_it(tmp_path / "fresh", "--new_vocoder", "--dim", "8", "--intermediate_dim", "24")
    assert (fresh.vocoder.config.dim, fresh.vocoder.config.intermediate_dim) == (8, 24)

    # --keep_blocks: a shallower copy of the codec's vocoder, its kept block's weights those it started from.
    shallower = train_from_it(tmp_path / "shallower", "--learning_rate", "1e-12", "--keep_blocks", "1")
    assert shallower.vocoder.config.num_blocks == 1
    for name, weight in shallower.vocoder.blocks[0].state_dict().items():
        torch.testing.assert_close(weight, started[f"blocks.1.{name}"], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="cannot go with --new_vocoder"):
        train_from_it(tmp_path / "both", "--keep_blocks", "1", "--new_vocoder")


def test_train_vocoder_rejects_bad_arguments_clearly(audio_dataset, tmp_path):
    with pytest.raises(ValueError, match="--latent_noise_std must be >= 0 and needs --vocoder_input latents"):
        train_vocoder.main(train_args(audio_dataset, tmp_path / "a", "--vocoder_input", "log_mel"))
    with pytest.raises(ValueError, match="holds a OobleckAutoencoder, not a MelAutoencoder"):
        (tmp_path / "oobleck").mkdir()
        (tmp_path / "oobleck" / "config.json").write_text('{"_class_name": "OobleckAutoencoder"}')
        args = train_args(audio_dataset, tmp_path / "b")
        args[args.index("--autoencoder_path") + 1] = str(tmp_path / "oobleck")
        train_vocoder.main(args)
    with pytest.raises(ValueError, match="too short for the STFT loss"):
        train_vocoder.main(train_args(audio_dataset, tmp_path / "c", "--segment_seconds", "0.1"))


def test_a_training_segment_is_the_same_span_of_the_whole_clip_resampled(audio_dataset, codec):
    split = train_vocoder.load_splits(train_vocoder.parse_args(train_args(audio_dataset, Path("unused"))))[0]
    whole = train_vocoder.read_clip(codec, split, "audio", 1)  # 1 s at 16 kHz -> 8000 samples at 8 kHz
    for fraction, start in ((0.0, 0), (0.5, 3000), (0.99, 5940)):
        # The segment starts `fraction` of the way into the 16000 - 4000 source samples it may start at.
        segment = train_vocoder.read_segment(codec, split[1]["audio"], fraction, 2000)
        torch.testing.assert_close(segment, whole[:, start : start + 2000], rtol=0, atol=1e-6)
    longer = train_vocoder.read_segment(codec, split[1]["audio"], 0.0, 9000)
    torch.testing.assert_close(longer[:, :8000], whole, rtol=0, atol=1e-6)
    # Past the end: silence, after the few samples of the resampling filter's tail.
    assert longer[:, 8100:].abs().max() == 0


def test_keep_blocks_makes_a_shallower_copy_with_the_kept_weights(codec):
    torch.manual_seed(0)
    vocoder = MelVocoder.for_codec(codec, dim=16, intermediate_dim=32, num_blocks=4).eval()
    log_mel = torch.randn(2, codec.config.n_mels, 20) - 4
    everything = vocoder.keep_blocks([0, 1, 2, 3])
    with torch.no_grad():
        torch.testing.assert_close(everything(log_mel), vocoder(log_mel), rtol=0, atol=0)

    kept = vocoder.keep_blocks([0, 3])
    assert kept.config.num_blocks == 2 and kept.receptive_field < vocoder.receptive_field
    for name, weight in kept.blocks[1].state_dict().items():
        torch.testing.assert_close(weight, vocoder.blocks[3].state_dict()[name], rtol=0, atol=0)
    torch.testing.assert_close(kept.head.weight, vocoder.head.weight, rtol=0, atol=0)
    # Without blocks 1 and 2, the same computation: the input layers, blocks 0 and 3, the head.
    with torch.no_grad():
        frames = log_mel.shape[-1]
        hidden = torch.cat([log_mel, log_mel[..., -1:]], dim=-1)
        hidden = vocoder.input_norm(vocoder.input_conv(hidden).mT)
        expected = vocoder.blocks[3](vocoder.blocks[0](hidden))
        assert kept(log_mel).shape == (2, frames * codec.config.stft_hop_length)
        torch.testing.assert_close(kept.blocks[1](kept.blocks[0](hidden)), expected, rtol=0, atol=0)

    for bad in ([], [0, 4], [2, 1], [1, 1], [-1]):
        with pytest.raises(ValueError, match=r"increasing block indices in \[0, 4\)"):
            vocoder.keep_blocks(bad)
