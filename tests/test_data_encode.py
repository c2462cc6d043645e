"""Encoding latent datasets (`cam_hf.data.encode`, `examples/encode_dataset.py`) and loading them
(`cam_hf.data.latents`), on a tiny audio dataset built in the test: the encoding itself, statistics from the
train split only, resumption after a kill at any point, skipped clips, worker processes, the other
autoencoders on weights the tests create, and the mel codec's global normalisation."""

import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import Dataset, DatasetDict, load_from_disk

from cam_hf.autoencoders import MelAutoencoder, OobleckAutoencoder
from cam_hf.data import (
    AudioBuildConfig,
    build_audio_dataset,
    decode_audio,
    encode_audio_dataset,
    is_latent_dataset,
    load_latent_dataset,
)
from cam_hf.data import encode as encode_module
from tests.test_autoencoders import TINY_ENCODEC, TINY_MEL, TINY_OOBLECK, harmonic_notes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small shards and batches, so that a 24-clip dataset has several of each: what resumption works on.
OPTIONS = dict(shard_size=4, batch_size=3, fit_seconds=1000.0, progress=False)


def tiny_mel() -> MelAutoencoder:
    return MelAutoencoder(**TINY_MEL)  # 8 kHz, 24 latent dims from a 64-dim stacked mel: the PCA is fitted


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """An audio dataset made by the audio-folder builder from six synthetic WAVs: 24 clips of 2 s at 8 kHz,
    split 12 / 8 / 4 (train / validation / test) by the file names' hash."""
    root = tmp_path_factory.mktemp("audio")
    for index in range(6):
        sf.write(root / f"take_{index}.wav", harmonic_notes(8.0, 8000, seed=index), 8000)
    config = AudioBuildConfig(clip_seconds=2.0, sample_rate=8000, validation_fraction=0.2, test_fraction=0.2)
    build_audio_dataset(str(root), str(root / "dataset"), config, progress=False)
    return str(root / "dataset")


@pytest.fixture(scope="module")
def encoded_dir(audio_dir, tmp_path_factory):
    """The uninterrupted reference encoding (float32 so that it can be compared with the codec exactly)."""
    output_dir = str(tmp_path_factory.mktemp("latents") / "mel")
    encode_audio_dataset(audio_dir, output_dir, tiny_mel(), dtype="float32", **OPTIONS)
    return output_dir


def assert_same_dataset(a: DatasetDict, b: DatasetDict) -> None:
    assert set(a) == set(b)
    for name in a:
        assert a[name].data.table.equals(b[name].data.table), name


def test_latents_are_the_codecs_encoding_of_every_clip_with_its_metadata(audio_dir, encoded_dir):
    audio = load_from_disk(audio_dir)
    dataset, autoencoder = load_latent_dataset(encoded_dir)
    assert isinstance(autoencoder, MelAutoencoder) and autoencoder.config.pca_fitted
    assert set(dataset) == set(audio) == {"train", "validation", "test"}
    for name, split in dataset.items():
        assert len(split) == len(audio[name])
        assert split["piece"] == audio[name]["piece"] and split["clip_index"] == audio[name]["clip_index"]
        assert split["source_index"] == list(range(len(split)))
        rows = split.with_format("torch")
        for index in (0, len(split) - 1):
            clip, rate = decode_audio(audio[name][index]["audio"])
            expected = autoencoder.encode(torch.from_numpy(clip)[None, None], sample_rate=rate)[0]
            assert rows[index]["latents"].shape == (62, 24) == expected.shape
            assert rows[index]["num_frames"] == 62
            assert torch.allclose(rows[index]["latents"], expected, atol=1e-5)
    summary = json.load(open(os.path.join(encoded_dir, "encode_summary.json")))
    assert summary["clips"] == sum(len(s) for s in audio.values()) and summary["skipped"] == 0
    assert summary["frames"] == 62 * summary["clips"] and summary["splits"]["train"]["clips"] == 12
    assert os.path.isfile(os.path.join(encoded_dir, "README.md"))
    assert not os.path.exists(os.path.join(encoded_dir, "_shards"))


def test_statistics_are_fitted_on_the_train_split_only(audio_dir, encoded_dir, tmp_path):
    audio = load_from_disk(audio_dir)
    _, fitted = load_latent_dataset(encoded_dir)
    mine = tiny_mel()
    encode_audio_dataset(audio_dir, str(tmp_path / "again"), mine, **OPTIONS)
    assert mine.config.latents_std is None  # a copy was fitted, not the caller's codec

    def clips(names):
        return [
            torch.from_numpy(decode_audio(row["audio"])[0])[None] for name in names for row in audio[name]
        ]

    on_train, on_all = tiny_mel(), tiny_mel()
    on_train.fit_latent_statistics(clips(["train"]))  # fit_seconds covers the whole (tiny) train split
    on_all.fit_latent_statistics(clips(["train", "validation", "test"]))
    assert np.allclose(fitted.config.latents_std, on_train.config.latents_std, rtol=1e-4)
    assert not np.allclose(fitted.config.latents_std, on_all.config.latents_std, rtol=1e-2)


def test_a_finished_encoding_is_reused_and_other_options_are_refused(audio_dir, encoded_dir, capsys):
    summary = os.path.join(encoded_dir, "encode_summary.json")
    before = os.path.getmtime(summary)
    again = encode_audio_dataset(
        audio_dir, encoded_dir, tiny_mel(), dtype="float32", **{**OPTIONS, "progress": True}
    )
    assert "nothing to do" in capsys.readouterr().out and os.path.getmtime(summary) == before
    assert_same_dataset(again, load_from_disk(encoded_dir))
    with pytest.raises(ValueError, match=r"other options .*'dtype'"):
        encode_audio_dataset(audio_dir, encoded_dir, tiny_mel(), dtype="float16", **OPTIONS)


class Interrupted(Exception):
    """Stands for a kill: raised out of the encoding, leaving its files as they are."""


def _interrupt_after(calls: int, function):
    count = {"calls": 0}

    def wrapped(*args, **kwargs):
        count["calls"] += 1
        if count["calls"] > calls:
            raise Interrupted
        return function(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("where", ["after 3 shards", "while fitting", "while saving the splits"])
def test_an_interrupted_encoding_resumes_to_the_same_dataset(
    audio_dir, encoded_dir, tmp_path, monkeypatch, where
):
    output_dir = str(tmp_path / "resumed")
    with monkeypatch.context() as patch:
        if where == "after 3 shards":
            patch.setattr(encode_module, "_encode_shard", _interrupt_after(3, encode_module._encode_shard))
        elif where == "while fitting":
            patch.setattr(
                MelAutoencoder, "_stacked_features", _interrupt_after(2, MelAutoencoder._stacked_features)
            )
        else:
            patch.setattr(Dataset, "save_to_disk", _interrupt_after(1, Dataset.save_to_disk))
        with pytest.raises(Interrupted):
            encode_audio_dataset(audio_dir, output_dir, tiny_mel(), dtype="float32", **OPTIONS)
    assert not is_latent_dataset(output_dir)
    with pytest.raises(ValueError, match="interrupted"):
        load_latent_dataset(output_dir)
    resumed = encode_audio_dataset(audio_dir, output_dir, tiny_mel(), dtype="float32", **OPTIONS)
    assert_same_dataset(resumed, load_from_disk(encoded_dir))
    summary = json.load(open(os.path.join(output_dir, "encode_summary.json")))
    reused = {"after 3 shards": 3, "while fitting": 0, "while saving the splits": summary["shards"]}[where]
    assert summary["shards_reused_from_an_earlier_run"] == reused  # finished work is not redone
    assert (
        summary["autoencoder"]
        == json.load(open(os.path.join(encoded_dir, "encode_summary.json")))["autoencoder"]
    )
    _, fitted = load_latent_dataset(output_dir)
    assert fitted.config.latents_std == load_latent_dataset(encoded_dir)[1].config.latents_std


KILL_INSIDE_THE_THIRD_SHARD = """
import os, signal, sys
from datasets.arrow_writer import ArrowWriter
from cam_hf.data import encode_audio_dataset
from tests.test_autoencoders import TINY_MEL
from cam_hf.autoencoders import MelAutoencoder

write, rows = ArrowWriter.write, []
def write_then_die(self, example, *args, **kwargs):
    rows.append(1)
    if len(rows) == 2 * 4 + 2:  # two shards of 4 done, 2 rows into the third: no cleanup of any kind runs
        os.kill(os.getpid(), signal.SIGKILL)
    return write(self, example, *args, **kwargs)
ArrowWriter.write = write_then_die
encode_audio_dataset(sys.argv[1], sys.argv[2], MelAutoencoder(**TINY_MEL), dtype="float32", shard_size=4,
batch_size=3,
                     fit_seconds=1000.0, progress=False)
"""


def test_resume_after_sigkill_in_the_middle_of_a_shard(audio_dir, encoded_dir, tmp_path):
    output_dir = str(tmp_path / "killed")
    result = subprocess.run(
        [sys.executable, "-c", KILL_INSIDE_THE_THIRD_SHARD, audio_dir, output_dir],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    shard_dir = os.path.join(output_dir, "_shards", "train")  # the first split, encoded first
    assert sorted(os.listdir(shard_dir))[:4] == ["00000.arrow", "00000.json", "00001.arrow", "00001.json"]
    assert "00002.arrow.tmp" in os.listdir(shard_dir) and "00002.json" not in os.listdir(shard_dir)
    resumed = encode_audio_dataset(audio_dir, output_dir, tiny_mel(), dtype="float32", **OPTIONS)
    assert_same_dataset(resumed, load_from_disk(encoded_dir))
    assert (
        json.load(open(os.path.join(output_dir, "encode_summary.json")))["shards_reused_from_an_earlier_run"]
        == 2
    )


def _flac(audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="FLAC")
    return buffer.getvalue()


def test_clips_that_fail_are_skipped_listed_and_counted(audio_dir, tmp_path, capsys):
    audio = load_from_disk(audio_dir)
    train = audio["train"].to_dict()
    train["audio"][1] = {"bytes": b"not a flac file", "path": "garbage.flac"}
    train["audio"][2] = {"bytes": _flac(np.zeros(100, dtype=np.float32), 8000), "path": "too_short.flac"}
    # A plain {"bytes", "path"} column (writing an `Audio` column would need torchcodec): read the same way.
    broken = DatasetDict({"train": Dataset.from_dict(train), "test": audio["test"]})
    broken.save_to_disk(str(tmp_path / "broken"))

    dataset = encode_audio_dataset(
        str(tmp_path / "broken"), str(tmp_path / "latents"), tiny_mel(), **{**OPTIONS, "progress": True}
    )
    printed = capsys.readouterr().out
    assert len(dataset["train"]) == len(train["audio"]) - 2
    assert 1 not in dataset["train"]["source_index"] and 2 not in dataset["train"]["source_index"]
    summary = json.load(open(tmp_path / "latents" / "encode_summary.json"))
    skips = {skip["where"]: skip for skip in summary["skips"]}
    assert skips["garbage.flac"]["reason"].startswith("decode error") and skips["garbage.flac"]["index"] == 1
    assert (
        skips["too_short.flac"]["reason"].startswith("encode error: ValueError")
        and "fewer than" in skips["too_short.flac"]["reason"]
    )
    assert summary["skipped"] == 2 and summary["splits"]["train"]["skipped"] == 2
    assert "Skipped 2 clips" in printed and "garbage.flac: decode error" in printed


def test_global_normalization_keeps_the_components_relative_scale(audio_dir, tmp_path):
    per_channel = encode_audio_dataset(
        audio_dir, str(tmp_path / "per_channel"), tiny_mel(), dtype="float32", **OPTIONS
    )
    scaled = encode_audio_dataset(
        audio_dir,
        str(tmp_path / "global"),
        tiny_mel(),
        dtype="float32",
        latent_normalization="global",
        **OPTIONS,
    )
    _, codec = load_latent_dataset(str(tmp_path / "global"))
    _, whitening = load_latent_dataset(str(tmp_path / "per_channel"))
    per_channel_std = np.array(whitening.config.latents_std)
    assert np.allclose(codec.config.latents_std, np.sqrt(np.mean(per_channel_std**2)), rtol=1e-6)
    assert np.ptp(codec.config.latents_std) == 0 and np.ptp(per_channel_std) > 0
    # Same codec up to the scale: global latents are the
    # whitened ones times each component's std / the RMS std.
    a = np.concatenate(per_channel["train"].with_format("numpy")["latents"])
    b = np.concatenate(scaled["train"].with_format("numpy")["latents"])
    assert np.allclose(b, a * per_channel_std / codec.config.latents_std[0], atol=1e-4)
    # On the train data (where it was fitted): total variance
    # = latent_dim, components keep their relative scale.
    assert np.sum(b.var(axis=0)) == pytest.approx(codec.latent_dim, rel=1e-3)
    assert b.var(axis=0)[0] > 5 * b.var(axis=0)[-1]
    # The same through the codec's own method, without PCA (the generic statistics, then one scale).
    codec = MelAutoencoder(**{**TINY_MEL, "latent_dim": 64})
    codec.fit_latent_statistics(
        torch.from_numpy(harmonic_notes(2.0, 8000))[None, None], normalization="global"
    )
    assert len(set(codec.config.latents_std)) == 1
    with pytest.raises(ValueError, match="'per_channel' or 'global'"):
        codec.fit_latent_statistics(torch.zeros(1, 1, 8000), normalization="whiten")


def test_other_autoencoders_through_their_loaders(audio_dir, tmp_path):
    """Oobleck and EnCodec from tiny random weights in their own libraries' formats (16 kHz: the clips are
    resampled)."""
    from diffusers import AutoencoderOobleck
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    AutoencoderOobleck(**{**TINY_OOBLECK, "audio_channels": 1}).save_pretrained(
        tmp_path / "stable-audio" / "vae"
    )
    EncodecModel(EncodecConfig(**TINY_ENCODEC)).save_pretrained(tmp_path / "encodec")
    for name, path, dims in [("oobleck", tmp_path / "stable-audio", 4), ("encodec", tmp_path / "encodec", 8)]:
        output_dir = str(tmp_path / f"latents-{name}")
        dataset = encode_audio_dataset(
            audio_dir, output_dir, name, autoencoder_path=str(path), **{**OPTIONS, "fit_seconds": 2.0}
        )
        _, codec = load_latent_dataset(output_dir)
        assert type(codec).__name__.lower().startswith(name) and codec.config.latents_std is not None
        assert dataset["train"].with_format("numpy")[0]["latents"].shape == (32000 // codec.hop_length, dims)
        # The fitted codec saved by encoding is a cam_hf folder: passing it keeps its statistics (no refit).
        again = encode_audio_dataset(
            audio_dir,
            str(tmp_path / f"again-{name}"),
            name,
            autoencoder_path=os.path.join(output_dir, "autoencoder"),
            **OPTIONS,
        )
        assert_same_dataset(again, dataset)
    with pytest.raises(ValueError, match="mel codec's folder"):
        encode_audio_dataset(
            audio_dir, str(tmp_path / "bad"), "mel", autoencoder_path=str(tmp_path / "encodec"), **OPTIONS
        )
    with pytest.raises(ValueError, match="normalization"):
        encode_audio_dataset(
            audio_dir,
            str(tmp_path / "bad2"),
            OobleckAutoencoder(vae_config=TINY_OOBLECK),
            latent_normalization="global",
            **OPTIONS,
        )


def test_music2latent_through_its_checkpoint_format(tmp_path):
    pytest.importorskip("music2latent")
    from music2latent.models import UNet

    torch.manual_seed(0)
    torch.save({"gen_state_dict": UNet().state_dict()}, tmp_path / "music2latent.pt")
    clips = [_flac(harmonic_notes(0.25, 44100, seed=i), 44100) for i in range(3)]
    Dataset.from_dict(
        {"audio": [{"bytes": c, "path": f"{i}.flac"} for i, c in enumerate(clips)]}
    ).save_to_disk(str(tmp_path / "audio"))
    dataset = encode_audio_dataset(
        str(tmp_path / "audio"),
        str(tmp_path / "latents"),
        "music2latent",
        autoencoder_path=str(tmp_path / "music2latent.pt"),
        **OPTIONS,
    )
    assert dataset["train"].with_format("numpy")[0]["latents"].shape == (
        2,
        64,
    )  # 11025 samples: 2 latents of 4096


def test_encode_dataset_script(audio_dir, tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import encode_dataset
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit):
        encode_dataset.parse_args(["--help"])
    help_text = capsys.readouterr().out
    for option in (
        "--autoencoder_path",
        "--latent_normalization",
        "--fit_seconds",
        "--num_workers",
        "resumes",
    ):
        assert option in help_text
    encode_dataset.main(["--dataset_dir", audio_dir, "--output_dir", str(tmp_path / "cli")])
    dataset, codec = load_latent_dataset(str(tmp_path / "cli"))
    assert isinstance(codec, MelAutoencoder) and codec.latent_dim == 128  # the default codec (22.05 kHz)
    assert dataset["train"].features["latents"].dtype == "float16"
    assert dataset["train"].with_format("numpy")[0]["latents"].shape == (
        21,
        128,
    )  # 2 s at 2048 samples per frame


@pytest.mark.slow
def test_worker_processes_give_the_same_dataset(audio_dir, tmp_path):
    """Spawned workers, each loading the audio dataset and the codec saved in the output folder once: ~30
    CPU-seconds of imports alone."""
    one = encode_audio_dataset(audio_dir, str(tmp_path / "one"), tiny_mel(), num_workers=1, **OPTIONS)
    two = encode_audio_dataset(audio_dir, str(tmp_path / "two"), tiny_mel(), num_workers=2, **OPTIONS)
    assert_same_dataset(one, two)


def test_bad_arguments_raise_clear_errors(audio_dir, tmp_path):
    with pytest.raises(ValueError, match="not a dataset saved with `save_to_disk`"):
        encode_audio_dataset(str(tmp_path), str(tmp_path / "out"), tiny_mel())
    with pytest.raises(ValueError, match="no column 'sound'"):
        encode_audio_dataset(audio_dir, str(tmp_path / "out"), tiny_mel(), audio_column="sound")
    with pytest.raises(ValueError, match="autoencoder must be one of"):
        encode_audio_dataset(audio_dir, str(tmp_path / "out"), "dac")
    with pytest.raises(ValueError, match="dtype must be one of"):
        encode_audio_dataset(audio_dir, str(tmp_path / "out"), tiny_mel(), dtype="bfloat16")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    with pytest.raises(ValueError, match="not empty and holds no encoding"):
        encode_audio_dataset(audio_dir, str(tmp_path / "full"), tiny_mel())
    with pytest.raises(ValueError, match="make one with"):
        load_latent_dataset(str(tmp_path / "full"))
