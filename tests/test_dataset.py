"""The dataset builders of cam_hf.data, on a handful of pieces and files (seconds, not minutes)."""

import io
import os
import shutil
from unittest import mock

import numpy as np
import pytest

pytest.importorskip("music21")
pytest.importorskip("tinysoundfont")

import soundfile as sf  # noqa: E402
from datasets import Dataset, DatasetDict, load_dataset, load_from_disk  # noqa: E402
from huggingface_hub import DatasetCard  # noqa: E402

from cam_hf.data import (  # noqa: E402
    AudioBuildConfig,
    CorpusBuildConfig,
    build_audio_dataset,
    build_corpus_dataset,
    decode_audio,
    push_to_hub,
    read_summary,
    resolve_instruments,
)
from cam_hf.data.clips import PEAK_CEILING_DBFS, TARGET_RMS_DBFS, cut_clips  # noqa: E402
from cam_hf.data.corpus import _top_line, extract_melodies  # noqa: E402
from cam_hf.data.render import Note, TinySoundFontRenderer, make_renderer  # noqa: E402

SAMPLE_RATE = 22050
CLIP_SECONDS = 4.0
INSTRUMENTS = [
    "violin",
    "flute",
    "trumpet",
    "acoustic_grand_piano",
    "acoustic_guitar_nylon",
    "cello",
    "clarinet",
    "oboe",
]
# Split by a hash of the piece name: with these fractions and seed 0 every split gets pieces.
SOURCES = [
    "bach/bwv1.6.mxl",
    "bach/bwv10.7.mxl",
    "ryansMammoth/7thRegimentReel.abc",
    "ryansMammoth/AdmiralsHornpipe.abc",
    "ryansMammoth/AfterTheHareReel.abc",
]


def corpus_config(broken_score, **overrides):
    options = dict(
        clip_seconds=CLIP_SECONDS,
        sample_rate=SAMPLE_RATE,
        instruments=INSTRUMENTS,
        instruments_per_melody=2,
        max_clips_per_melody=2,
        renderer="tinysoundfont",
        sources=SOURCES + [str(broken_score)],
        validation_fraction=0.3,
        test_fraction=0.3,
        seed=0,
    )
    options.update(overrides)
    return CorpusBuildConfig(**options)


@pytest.fixture(scope="module")
def broken_score(tmp_path_factory):
    path = tmp_path_factory.mktemp("scores") / "broken_score.mxl"
    path.write_bytes(b"this is not a compressed MusicXML file")
    return path


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, broken_score):
    output_dir = str(tmp_path_factory.mktemp("corpus") / "dataset")
    build_corpus_dataset(output_dir, corpus_config(broken_score), num_workers=1, progress=False)
    return output_dir


def test_corpus_clips_have_fixed_length_rate_and_loudness(corpus_dir):
    dataset = load_from_disk(corpus_dir)
    assert set(dataset) == {"train", "validation", "test"}
    rows = [row for split in dataset.values() for row in split]
    # Every melody (chorale voice or tune) is rendered by 2 instruments, at most 2 clips each.
    melodies = read_summary(corpus_dir)["counts"]["melodies rendered"]
    assert melodies >= 11 and 20 <= len(rows) <= melodies * 2 * 2
    for row in rows:
        audio, rate = decode_audio(row["audio"])
        assert rate == SAMPLE_RATE and audio.ndim == 1
        assert len(audio) == int(CLIP_SECONDS * SAMPLE_RATE)
        assert row["duration"] == pytest.approx(CLIP_SECONDS)
        rms_db = 20 * np.log10(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
        peak_db = 20 * np.log10(np.max(np.abs(audio)))
        assert peak_db <= PEAK_CEILING_DBFS + 0.01
        # At the RMS target, unless the peak ceiling forced the clip quieter.
        assert rms_db == pytest.approx(TARGET_RMS_DBFS, abs=0.05) or peak_db == pytest.approx(
            PEAK_CEILING_DBFS, abs=0.05
        )
    assert all(row["renderer"] == "tinysoundfont" and row["soundfont"] == "TimGM6mb.sf2" for row in rows)


def test_corpus_metadata_instruments_and_splits(corpus_dir):
    dataset = load_from_disk(corpus_dir)
    allowed = {inst.program for inst in resolve_instruments(INSTRUMENTS)}
    programs = {p for split in dataset.values() for p in split["instrument_program"]}
    assert programs <= allowed and len(programs) >= 5
    pieces = {name: set(split["piece"]) for name, split in dataset.items()}
    assert all(pieces.values()), pieces  # every split has pieces...
    assert not (
        pieces["train"] & pieces["validation"]
        or pieces["train"] & pieces["test"]
        or pieces["validation"] & pieces["test"]
    )
    assert set().union(*pieces.values()) == set(SOURCES)
    for name, split in dataset.items():
        assert set(split["split"]) == {name}
    chorale = dataset["train"].filter(lambda r: r["piece"] == "bach/bwv1.6.mxl")
    assert {"Soprano", "Alto", "Tenor", "Bass"} <= set(chorale["part"])
    assert all(60 <= t <= 140 for split in dataset.values() for t in split["tempo_bpm"])
    assert all(t % 12 == 0 for split in dataset.values() for t in split["transpose"])


def test_corpus_skip_summary_names_the_broken_score(corpus_dir, broken_score):
    summary = read_summary(corpus_dir)
    skipped = {s["where"]: s["reason"] for s in summary["skips"]}
    assert skipped[str(broken_score)].startswith("parse error")
    assert summary["skips_per_cause"]["parse error"] == 1
    assert summary["counts"]["pieces listed"] == len(SOURCES) + 1
    assert summary["counts"]["pieces with clips"] == len(SOURCES)
    dataset = load_from_disk(corpus_dir)
    assert summary["clips_per_split"] == {name: len(split) for name, split in dataset.items()}


def test_corpus_build_is_deterministic_across_worker_counts(corpus_dir, broken_score, tmp_path):
    again = build_corpus_dataset(
        str(tmp_path / "again"), corpus_config(broken_score), num_workers=2, progress=False
    )
    first = load_from_disk(corpus_dir)
    for name in first:
        assert first[name].data.table.equals(again[name].data.table), name  # audio bytes and metadata


def test_save_load_round_trip_and_card(corpus_dir):
    dataset = load_from_disk(corpus_dir)
    assert isinstance(dataset, DatasetDict)
    card = DatasetCard.load(os.path.join(corpus_dir, "README.md"))
    assert card.data.license == "other" and "music21" in card.data.tags
    assert f"| train | {len(dataset['train'])} |" in card.text
    assert "TimGM6mb" in card.text and "license.txt" in card.text
    assert "| 40 violin |" in card.text


def test_push_to_hub_uploads_the_hub_layout(corpus_dir):
    dataset = load_from_disk(corpus_dir)
    uploaded = {}

    def fake_upload_folder(self, *, repo_id, repo_type, folder_path, commit_message):
        # What would go up: load it exactly as `load_dataset(repo_id)` would read the repository.
        uploaded["repo"] = (repo_id, repo_type)
        uploaded["files"] = sorted(
            os.path.relpath(os.path.join(r, f), folder_path) for r, _, fs in os.walk(folder_path) for f in fs
        )
        uploaded["dataset"] = load_dataset(folder_path).with_format(None)
        uploaded["card"] = DatasetCard.load(os.path.join(folder_path, "README.md"))
        return "https://huggingface.co/datasets/user/cam-test/commit/0"

    with (
        mock.patch("huggingface_hub.HfApi.create_repo") as create_repo,
        mock.patch("huggingface_hub.HfApi.upload_folder", fake_upload_folder),
    ):
        push_to_hub(corpus_dir, "user/cam-test", token="hf_fake")
    create_repo.assert_called_once()
    assert uploaded["repo"] == ("user/cam-test", "dataset")
    assert "README.md" in uploaded["files"] and "data/train-00000-of-00001.parquet" in uploaded["files"]
    assert uploaded["card"].data.configs[0]["data_files"][0] == {"split": "train", "path": "data/train-*"}
    pushed = uploaded["dataset"]
    assert set(pushed) == set(dataset)
    for name in dataset:
        assert pushed[name].features == dataset[name].features
        assert pushed[name]["piece"] == dataset[name]["piece"]
        assert pushed[name][0]["audio"]["bytes"] == dataset[name][0]["audio"]["bytes"]


def test_output_dir_must_be_empty(corpus_dir, broken_score):
    with pytest.raises(ValueError, match="not empty"):
        build_corpus_dataset(corpus_dir, corpus_config(broken_score), progress=False)


def test_polyphonic_part_is_reduced_or_skipped(tmp_path):
    from music21 import chord, note, stream

    part = stream.Part()
    for i in range(10):
        part.append(chord.Chord([60 + i, 64 + i]) if i % 3 == 0 else note.Note(72 + i))
    score = stream.Score([part])
    path = str(tmp_path / "chords.musicxml")
    score.write("musicxml", fp=path)
    melodies, _, counts = extract_melodies(path, [None], polyphony="reduce")
    assert counts["parts reduced to top line"] == 1 and melodies[0].reduced
    assert [n[2] for n in melodies[0].notes][:2] == [64, 73]  # the top note of the chord
    melodies, skips, counts = extract_melodies(path, [None], polyphony="skip")
    assert melodies == [] and counts["parts skipped: not monophonic"] == 1 and "not monophonic" in skips[0][1]


def test_top_line_of_overlapping_notes():
    events = [
        (0.0, 2.0, 60, 90),
        (1.0, 1.0, 67, 90),
        (1.0, 0.5, 55, 90),
        (2.5, 1.0, 62, 90),
        (3.0, 1.0, 59, 90),
    ]
    line, reduced = _top_line(events)
    assert reduced
    # 60 is cut when 67 enters; 55 is under 67 and dropped; 59 starts when 62 ends.
    assert line == [(0.0, 1.0, 60, 90), (1.0, 1.0, 67, 90), (2.5, 1.0, 62, 90), (3.5, 0.5, 59, 90)]
    for (o1, d1, _, _), (o2, _, _, _) in zip(line, line[1:], strict=False):
        assert o1 + d1 <= o2 + 1e-9


def test_renderer_plays_the_asked_pitch():
    renderer = TinySoundFontRenderer(SAMPLE_RATE)
    audio = renderer.render([Note(0.0, 1.0, 69, 100)], program=73)  # A4 on the flute
    assert len(audio) == pytest.approx(2.0 * SAMPLE_RATE, abs=2)  # the note plus a 1 s release
    spectrum = np.abs(np.fft.rfft(audio[: SAMPLE_RATE // 2] * np.hanning(SAMPLE_RATE // 2)))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / (SAMPLE_RATE // 2)
    assert peak_hz == pytest.approx(440.0, abs=4.0)
    # A reused synthesizer does not leak the previous melody into the next.
    again = renderer.render([Note(0.0, 1.0, 69, 100)], program=73)
    np.testing.assert_array_equal(audio, again)


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is an optional system package")
def test_fluidsynth_renderer_when_installed():
    try:
        renderer = make_renderer("fluidsynth", SAMPLE_RATE)
    except ValueError as err:  # the command without a General MIDI SoundFont
        pytest.skip(str(err))
    audio = renderer.render([Note(0.0, 0.5, 60, 100), Note(0.5, 0.5, 64, 100)], program=0)
    assert audio.ndim == 1 and np.max(np.abs(audio)) > 0.01


def test_bad_options_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="'kazoo'"):
        resolve_instruments(["violin", "kazoo"])
    with pytest.raises(ValueError, match="no/such/\\*"):
        build_corpus_dataset(str(tmp_path / "x"), CorpusBuildConfig(sources=["no/such/*"]), progress=False)
    with pytest.raises(ValueError, match="min_tempo"):
        CorpusBuildConfig(min_tempo=150, max_tempo=100).validate()
    with pytest.raises(ValueError, match="does not exist"):
        build_audio_dataset(str(tmp_path / "missing"), str(tmp_path / "y"), progress=False)


def test_mostly_silent_clips_are_dropped():
    rate = 8000
    tone = 0.5 * np.sin(2 * np.pi * 220 * np.arange(3 * rate) / rate).astype(np.float32)
    gap = np.zeros(int(2.5 * rate), dtype=np.float32)
    # 3 s tone, 2.5 s silence, 0.5 s tone, 2.5 s silence, 3 s tone: the middle 2 s windows are mostly silent.
    audio = np.concatenate([tone, gap, tone[: rate // 2], gap, tone])
    clips, dropped = cut_clips(audio, rate, clip_seconds=2.0)
    assert dropped >= 1 and len(clips) + dropped == len(audio) // (2 * rate)
    assert clips[0][0] == 0.0


# ---------------------------------------------------------------- users' own audio


def _tone(seconds, rate, channels=1, freq=330.0):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.2 * np.sin(2 * np.pi * 0.5 * t))
    return np.stack([wave * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("my_music")
    (folder / "album").mkdir()
    sf.write(folder / "song_stereo.wav", _tone(9.0, 44100, channels=2), 44100)
    sf.write(folder / "album" / "tune.flac", _tone(5.0, 16000), 16000)
    sf.write(folder / "album" / "take.ogg", _tone(6.5, 22050, channels=2, freq=440.0), 22050, format="OGG")
    sf.write(folder / "short.wav", _tone(1.0, 8000), 8000)  # shorter than one clip
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(200))
    (folder / "empty.flac").write_bytes(b"")
    sf.write(folder / "zero_length.wav", np.zeros((0, 1), dtype=np.float32), 16000)
    sf.write(folder / "silence.wav", np.zeros((5 * 16000, 1), dtype=np.float32), 16000)
    (folder / "notes.txt").write_text("not audio")
    (folder / "fake.ogg").write_text("text pretending to be audio")
    return folder


GOOD_FILES = {"song_stereo.wav", "album/tune.flac", "album/take.ogg"}


@pytest.mark.parametrize("mono", [True, False])
def test_audio_folder_keeps_good_files_and_lists_bad_ones(audio_dir, tmp_path, mono):
    config = AudioBuildConfig(
        clip_seconds=2.0, sample_rate=16000, mono=mono, validation_fraction=0.3, test_fraction=0.3
    )
    # The stereo case also runs the worker pool.
    dataset = build_audio_dataset(
        str(audio_dir), str(tmp_path / "out"), config, num_workers=1 if mono else 2, progress=False
    )
    rows = [row for split in dataset.values() for row in split]
    assert {row["piece"] for row in rows} == GOOD_FILES
    for row in rows:
        audio, rate = decode_audio(row["audio"])
        assert rate == 16000 and audio.shape[0] == 2 * 16000
        expected_channels = 1 if mono else row["source_channels"]
        assert (audio.ndim == 1) if expected_channels == 1 else (audio.shape[1] == expected_channels)
    # 9 s -> 4 clips, 5 s -> 2, 6.5 s -> 3 (the tones have no silence to trim).
    per_file = {piece: sum(row["piece"] == piece for row in rows) for piece in GOOD_FILES}
    assert per_file == {"song_stereo.wav": 4, "album/tune.flac": 2, "album/take.ogg": 3}
    skips = {s["where"]: s["reason"] for s in read_summary(str(tmp_path / "out"))["skips"]}
    assert skips["corrupt.wav"].startswith("unreadable")
    assert skips["fake.ogg"].startswith("unreadable")
    assert skips["empty.flac"].startswith("empty file")
    assert skips["zero_length.wav"].startswith("zero-length")
    assert skips["notes.txt"].startswith("not an audio file")
    assert skips["short.wav"].startswith("shorter than one")
    assert skips["silence.wav"].startswith("silent")
    for name, split in dataset.items():  # one file never spans two splits
        others = {p for other, s in dataset.items() if other != name for p in s["piece"]}
        assert not set(split["piece"]) & others


def test_audio_from_a_datasets_dataset(tmp_path):
    def flac(audio, rate):
        buffer = io.BytesIO()
        sf.write(buffer, audio, rate, format="FLAC")
        return buffer.getvalue()

    source = Dataset.from_dict(
        {
            "sound": [
                {"bytes": flac(_tone(4.5, 24000), 24000), "path": "a.flac"},
                {"bytes": b"garbage", "path": "b.flac"},
            ]
        }
    )
    source.save_to_disk(str(tmp_path / "saved"))
    config = AudioBuildConfig(clip_seconds=2.0, sample_rate=16000, audio_column="sound")
    dataset = build_audio_dataset(str(tmp_path / "saved"), str(tmp_path / "out"), config, progress=False)
    rows = [row for split in dataset.values() for row in split]
    assert len(rows) == 2 and {row["piece"] for row in rows} == {"data/0/a.flac"}
    assert read_summary(str(tmp_path / "out"))["skips"][0]["where"] == "data/1/b.flac"
    with pytest.raises(ValueError, match="'audio' not in the dataset"):
        build_audio_dataset(source, str(tmp_path / "out2"), AudioBuildConfig(), progress=False)


def test_make_dataset_script_on_an_audio_folder(audio_dir, tmp_path):
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
    try:
        import make_dataset
    finally:
        sys.path.pop(0)
    out = str(tmp_path / "cli")
    make_dataset.main(
        ["--output_dir", out, "--audio_dir", str(audio_dir), "--clip_seconds", "2", "--sample_rate", "16000"]
    )
    dataset = load_from_disk(out)
    assert sum(len(s) for s in dataset.values()) == 9
    assert os.path.isfile(os.path.join(out, "README.md")) and os.path.isfile(
        os.path.join(out, "build_summary.json")
    )


@pytest.mark.slow
def test_quick_subset_of_the_whole_corpus(tmp_path):
    """`--max_pieces 200`: a stratified sample of the corpus, all default instruments, every split (~1
    min)."""
    dataset = build_corpus_dataset(
        str(tmp_path / "subset"),
        CorpusBuildConfig(max_pieces=200, renderer="tinysoundfont"),
        num_workers=2,
        progress=False,
    )
    summary = read_summary(str(tmp_path / "subset"))
    assert summary["counts"]["pieces listed"] == 200 and summary["counts"]["pieces with clips"] >= 190
    assert set(dataset) == {"train", "validation", "test"}
    assert sum(len(s) for s in dataset.values()) >= 600
    assert len({p for s in dataset.values() for p in s["instrument_program"]}) == 12
    collections = {piece.split("/")[0] for s in dataset.values() for piece in s["piece"]}
    assert {"essenFolksong", "oneills1850", "palestrina", "bach"} <= collections


def test_render_melody_and_split_pieces_reproduce_the_build(corpus_dir, broken_score):
    """What examples/demo.py relies on: a piece's split and its rendering can be recomputed without the
    dataset."""
    from cam_hf.data.build_from_corpus import render_melody, split_pieces

    config = corpus_config(broken_score)
    config.validate()
    dataset = load_from_disk(corpus_dir)
    for split in ("train", "validation", "test"):
        names = {ref.name for ref in split_pieces(config, split)}
        assert set(dataset[split]["piece"]) <= names
    with pytest.raises(ValueError, match="split must be"):
        split_pieces(config, "dev")

    row = dataset["test"][0]
    ref = next(ref for ref in split_pieces(config, "test") if ref.name == row["piece"])
    melodies, _, _ = extract_melodies(ref.path, [ref.number], config.polyphony, config.min_notes)
    melody = next(m for m in melodies if m.part_index == row["part_index"])
    renderings = render_melody(melody, config)
    clips = dataset["test"].filter(
        lambda r: r["piece"] == row["piece"] and r["part_index"] == row["part_index"]
    )
    assert {r.instrument.name for r in renderings} == set(clips["instrument_name"])
    rendering = next(r for r in renderings if r.instrument.name == row["instrument_name"])
    assert rendering.tempo_bpm == pytest.approx(row["tempo_bpm"]) and rendering.transpose == row["transpose"]
    assert rendering.sample_rate == SAMPLE_RATE and len(rendering.audio) >= CLIP_SECONDS * SAMPLE_RATE
    longer = render_melody(melody, config, max_seconds=60.0)[0]
    assert len(longer.audio) >= len(renderings[0].audio)  # more notes when asked for more seconds
    again = render_melody(melody, config)[0]
    np.testing.assert_array_equal(again.audio, renderings[0].audio)  # seeded: the same every time
