"""examples/train.py fine-tuning the shipped model on a folder of your own audio: make_dataset.py --audio_dir,
encode_dataset.py with the pipeline's autoencoder, train.py --pretrained_model_name_or_path; and the errors
that keep a user off a wrong path."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cam_hf import CAMPipeline
from cam_hf.autoencoders import MelAutoencoder, check_same_autoencoder

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "cam-music21-small"
sys.path.insert(0, str(ROOT / "examples"))

import encode_dataset  # noqa: E402
import make_dataset  # noqa: E402
import train  # noqa: E402


def write_melodies(folder: Path, num_files: int = 8, seconds: float = 12.0, rate: int = 22050) -> Path:
    """
    Plucked-string-like notes of a random melody per file: something musical for the mel codec to encode.
    """
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(num_files):
        t = np.arange(int(0.4 * rate)) / rate
        notes = []
        for midi in rng.integers(55, 80, size=int(seconds / 0.4)):
            f0 = 440.0 * 2 ** ((midi - 69) / 12)
            tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * np.exp(-4 * t)
            notes.append(tone)
        audio = 0.3 * np.concatenate(notes)
        stereo = np.stack([audio, 0.8 * audio], axis=1)  # any channel count: the dataset builder mixes down
        sf.write(folder / f"take-{index}.wav", stereo.astype(np.float32), rate)
    return folder


@pytest.fixture(scope="module")
def my_music(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("finetune")
    audio_dir = write_melodies(root / "my-audio")
    dataset_dir = root / "my-music"
    make_dataset.main(
        [
            "--output_dir",
            str(dataset_dir),
            "--audio_dir",
            str(audio_dir),
            "--validation_fraction",
            "0.2",
            "--test_fraction",
            "0.0",
            "--max_silence",
            "0.9",
        ]
    )
    # The shipped codec saved with other decoding settings (Griffin-Lim iterations): the latents are the
    # same, and the fine-tuned pipeline keeps the shipped decoding.
    codec = MelAutoencoder.from_pretrained(SHIPPED / "autoencoder")
    codec.register_to_config(griffin_lim_iters=2 * codec.config.griffin_lim_iters)
    codec.save_pretrained(root / "codec-other-decoding")
    latents_dir = root / "my-music-latents"
    encode_dataset.main(
        [
            "--dataset_dir",
            str(dataset_dir),
            "--output_dir",
            str(latents_dir),
            "--autoencoder_path",
            str(root / "codec-other-decoding"),
        ]
    )
    return {"root": root, "audio": dataset_dir, "latents": latents_dir}


def finetune_args(dataset: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        "--pretrained_model_name_or_path",
        str(SHIPPED),
        "--dataset_dir",
        str(dataset),
        "--output_dir",
        str(output_dir),
        "--train_batch_size",
        "2",
        "--max_train_steps",
        "3",
        "--lr_warmup_steps",
        "1",
        "--learning_rate",
        "1e-4",
        "--num_validation_prompts",
        "0",
        "--num_validation_samples",
        "0",
        "--context_frames",
        "32",
        *extra,
    ]


def test_fine_tuning_the_shipped_model_on_a_folder_of_audio(my_music):
    shipped = CAMPipeline.from_pretrained(SHIPPED)
    output_dir = my_music["root"] / "run"
    summary = train.main(finetune_args(my_music["latents"], output_dir))
    assert summary["steps"] == 3
    tuned = CAMPipeline.from_pretrained(output_dir)
    # It started from the shipped weights and moved a little (3 small steps), keeping its labels and codec.
    for name, weight in shipped.backbone.state_dict().items():
        change = (tuned.backbone.state_dict()[name] - weight).abs().max()
        assert change < 0.05, name
    assert any(
        not torch.equal(tuned.backbone.state_dict()[n], w) for n, w in shipped.backbone.state_dict().items()
    )
    assert tuned.backbone.config.instrument_names == shipped.backbone.config.instrument_names
    assert tuned.backbone.config.max_training_noise == shipped.backbone.config.max_training_noise
    for name, value in shipped.autoencoder.state_dict().items():
        assert torch.equal(tuned.autoencoder.state_dict()[name], value)
    assert tuned.autoencoder.config.latents_std == shipped.autoencoder.config.latents_std
    assert tuned.autoencoder.config.griffin_lim_iters == shipped.autoencoder.config.griffin_lim_iters
    # The user's audio has no instrument labels, so it trained as "no instrument": the model still generates.
    audio = tuned(
        audio_length_in_s=1.0, num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    ).audios
    assert audio.shape[:2] == (1, 1) and np.isfinite(audio).all()
    logged = json.loads((output_dir / "train_args.json").read_text())
    assert logged["precision"] in ("no", "bf16")


def test_an_audio_folder_dataset_is_encoded_with_the_pipelines_autoencoder(my_music):
    output_dir = my_music["root"] / "from-audio"
    train.main(
        finetune_args(
            my_music["audio"],
            output_dir,
            "--max_train_steps",
            "1",
            "--latent_cache_dir",
            str(my_music["root"] / "cache"),
        )
    )
    cached = CAMPipeline.from_pretrained(output_dir).autoencoder
    assert cached.config.latents_std == CAMPipeline.from_pretrained(SHIPPED).autoencoder.config.latents_std


def test_a_dataset_encoded_with_another_codec_is_refused(my_music):
    refitted = my_music["root"] / "refitted-latents"
    encode_dataset.main(
        ["--dataset_dir", str(my_music["audio"]), "--output_dir", str(refitted)]
    )  # fits its own
    with pytest.raises(ValueError, match="encoded with another autoencoder.*--autoencoder_path"):
        train.main(finetune_args(refitted, my_music["root"] / "refused"))
    assert not (my_music["root"] / "refused" / "checkpoint-1").exists()


def test_decoder_settings_do_not_make_another_codec():
    # Decoding settings (Griffin-Lim iterations) leave the latents as they are, so a dataset encoded by the
    # codec with other ones trains; a changed encoder setting makes another codec.
    shipped = CAMPipeline.from_pretrained(SHIPPED).autoencoder
    iters = shipped.config.griffin_lim_iters
    other_decoder = MelAutoencoder.from_config({**shipped.config, "griffin_lim_iters": iters * 2})
    other_decoder.load_state_dict(shipped.state_dict())
    check_same_autoencoder(other_decoder, shipped, "latents", SHIPPED)
    other_encoder = MelAutoencoder.from_config({**shipped.config, "n_mels": shipped.config.n_mels // 2})
    with pytest.raises(ValueError, match=r"differ in \['n_mels'\]"):
        check_same_autoencoder(other_encoder, shipped, "latents", SHIPPED)


def test_a_shortcut_sampler_fitted_to_a_frozen_backbone(my_music):
    shipped = CAMPipeline.from_pretrained(SHIPPED)
    output_dir = my_music["root"] / "shortcut"
    train.main(
        finetune_args(
            my_music["latents"],
            output_dir,
            "--freeze_backbone",
            "--few_step_objective",
            "shortcut",
            "--default_inference_steps",
            "2",
            "--max_train_steps",
            "2",
        )
    )
    tuned = CAMPipeline.from_pretrained(output_dir)
    for name, weight in shipped.backbone.state_dict().items():
        assert torch.equal(tuned.backbone.state_dict()[name], weight), name
    config = tuned.sampler.config
    assert (config.few_step_objective, config.num_inference_steps) == ("shortcut", 2)
    # It began as the shipped flow head: the weights they share moved by at most a few small steps.
    for name, weight in shipped.sampler.state_dict().items():
        assert (tuned.sampler.state_dict()[name] - weight).abs().max() < 0.05, name


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sampler_width", "64"], "change.*shape"),
        (["--backbone_config", "{config}"], "change.*shape"),
    ],
)
def test_options_that_change_the_network_are_refused(tmp_path, extra, message):
    config = tmp_path / "backbone.json"
    config.write_text("{}")
    extra = [value.format(config=config) for value in extra]
    with pytest.raises(ValueError, match=message):
        train.parse_args(finetune_args(tmp_path, tmp_path / "out", *extra))


def test_freeze_backbone_needs_a_pretrained_model(tmp_path):
    with pytest.raises(ValueError, match="--pretrained_model_name_or_path"):
        train.parse_args(
            ["--dataset_dir", str(tmp_path), "--output_dir", str(tmp_path / "o"), "--freeze_backbone"]
        )


def test_a_missing_pretrained_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a saved CAMPipeline"):
        train.main(
            [
                "--pretrained_model_name_or_path",
                str(tmp_path / "nothing"),
                "--dataset_dir",
                str(tmp_path),
                "--output_dir",
                str(tmp_path / "o"),
            ]
        )
