"""Users' own audio through the same door: a folder of audio files, or a `datasets` dataset with an audio
column, becomes the same kind of `DatasetDict` as the built-in one (resampled, mono or stereo, fixed-length
clips, split by source file).

Bad files never stop a build: each is skipped with its reason, listed in `build_summary.json`.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
from datasets import Audio, DatasetDict, Features, Value

from ..utils.audio import resample_audio
from .build import ClipDatasetBuild, map_in_workers
from .clips import assign_split, cut_clips, encode_flac
from .summary import BuildSummary

# "user/name" or "name": what a Hub dataset id looks like (a path that does not exist is reported as missing).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")


@dataclass
class AudioBuildConfig:
    """Options for building a dataset from users' audio.

    Args:
        clip_seconds (`float`): length of every clip.
        sample_rate (`int`): the audio is resampled to this rate (Hz).
        mono (`bool`): average the channels to mono; `False` keeps stereo (and any channel count).
        seed (`int`): seeds the split of each source file.
        max_clips_per_file (`int`, *optional*): keep at most this many clips per source file.
        validation_fraction (`float`), test_fraction (`float`): share of source files in those splits.
        max_silence (`float`): clips with a larger fraction of silent 50 ms frames are dropped.
        normalize (`bool`): scale each clip to the loudness target of `cam_hf.data.clips`.
        audio_column (`str`): the audio column, when the source is a `datasets` dataset.
    """

    clip_seconds: float = 10.0
    sample_rate: int = 44100
    mono: bool = True
    seed: int = 0
    max_clips_per_file: int | None = None
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    max_silence: float = 0.5
    normalize: bool = True
    audio_column: str = "audio"

    def validate(self) -> None:
        """Raise a `ValueError` naming the first bad option."""
        if self.clip_seconds <= 0:
            raise ValueError(f"clip_seconds must be > 0, got {self.clip_seconds}.")
        if self.sample_rate < 8000:
            raise ValueError(f"sample_rate must be at least 8000 Hz, got {self.sample_rate}.")
        if not (
            0 <= self.validation_fraction
            and 0 <= self.test_fraction
            and self.validation_fraction + self.test_fraction < 1
        ):
            raise ValueError(
                f"validation_fraction + test_fraction must be in [0, 1), got {self.validation_fraction} + "
                f"{self.test_fraction}."
            )


def audio_features(sample_rate: int) -> Features:
    """Columns of a dataset built from users' audio."""
    return Features(
        {
            "audio": Audio(sampling_rate=sample_rate, decode=False),
            "piece": Value("string"),
            "clip_index": Value("int32"),
            "start_seconds": Value("float32"),
            "duration": Value("float32"),
            "source_sample_rate": Value("int32"),
            "source_channels": Value("int32"),
            "split": Value("string"),
        }
    )


def _read(source) -> tuple[np.ndarray, int]:
    """Decode a file path or bytes with soundfile; raise `ValueError` with a readable reason."""
    import soundfile as sf

    if isinstance(source, str) and not os.path.isfile(source):
        raise ValueError(f"file not found: {source}")
    if isinstance(source, str) and os.path.getsize(source) == 0:
        raise ValueError("empty file (0 bytes)")
    if isinstance(source, bytes | bytearray) and len(source) == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        audio, rate = sf.read(
            io.BytesIO(source) if isinstance(source, bytes | bytearray) else source,
            dtype="float32",
            always_2d=True,
        )
    except Exception as err:  # libsndfile's errors (corrupt, truncated, not audio) have various types
        raise ValueError(f"unreadable: {type(err).__name__}: {str(err).strip()[:200]}") from None
    if audio.shape[0] == 0:
        raise ValueError("zero-length audio (no samples)")
    if not np.all(np.isfinite(audio)):
        raise ValueError("non-finite samples (NaN or inf)")
    return audio, rate


def _clips_of(task: tuple) -> tuple[str, list[dict] | None, str | None, int]:
    """Worker: decode one source, resample, cut; returns (piece, rows or None, skip reason, dropped clips)."""
    piece, source, config = task
    try:
        audio, rate = _read(source)
    except ValueError as err:
        return piece, None, str(err), 0
    channels = audio.shape[1]
    if not np.any(audio):
        return piece, None, "silent (every sample is zero)", 0
    try:
        audio = audio.mean(axis=1) if config.mono or channels == 1 else audio
        audio = resample_audio(audio, rate, config.sample_rate, axis=0)
        clips, dropped = cut_clips(
            audio,
            config.sample_rate,
            config.clip_seconds,
            config.max_silence,
            config.max_clips_per_file,
            config.normalize,
        )
    except Exception as err:  # one odd file must not stop the build
        return piece, None, f"processing error: {type(err).__name__}: {err}", 0
    if not clips:
        reason = "mostly silent" if dropped else f"shorter than one {config.clip_seconds:g} s clip"
        return piece, None, reason, dropped
    split = assign_split(piece, config.seed, config.validation_fraction, config.test_fraction)
    rows = []
    for index, (start, clip) in enumerate(clips):
        stem = os.path.splitext(piece)[0].replace(os.sep, "__")
        rows.append(
            {
                "audio": {"path": f"{stem}__{index}.flac", "bytes": encode_flac(clip, config.sample_rate)},
                "piece": piece,
                "clip_index": index,
                "start_seconds": round(start, 3),
                "duration": len(clip) / config.sample_rate,
                "source_sample_rate": rate,
                "source_channels": channels,
                "split": split,
            }
        )
    return piece, rows, None, dropped


def _folder_tasks(audio_dir: str, config: AudioBuildConfig, summary) -> list[tuple]:
    if not os.path.isdir(audio_dir):
        raise ValueError(f"Audio folder {audio_dir!r} does not exist or is not a directory.")
    tasks = []
    for root, dirs, files in os.walk(audio_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, audio_dir)
            if not name.lower().endswith(AUDIO_EXTENSIONS):
                summary.skips.append(
                    (rel, f"not an audio file: extension {os.path.splitext(name)[1] or '(none)'!r}")
                )
                continue
            tasks.append((rel, path, config))
    return tasks


def _dataset_tasks(source, config: AudioBuildConfig) -> tuple[int, Iterator[tuple]]:
    """Rows of a `datasets` dataset (object, saved folder or Hub id) as tasks holding encoded audio.

    Returns the number of rows and a generator, so that a large dataset is read row by row, not all at once.
    """
    from datasets import load_dataset, load_from_disk

    if isinstance(source, str):
        saved = os.path.isdir(source) and any(
            os.path.isfile(os.path.join(source, f)) for f in ("dataset_dict.json", "state.json")
        )
        source = load_from_disk(source) if saved else load_dataset(source)  # a Hub id (needs network)
    splits = list(source.items()) if isinstance(source, DatasetDict) else [("data", source)]
    for _, split in splits:
        if config.audio_column not in split.column_names:
            raise ValueError(
                f"Column {config.audio_column!r} not in the dataset (columns: {split.column_names}): pass "
                "audio_column=."
            )

    def tasks():
        for split_name, split in splits:
            audio = split.cast_column(config.audio_column, Audio(decode=False)).select_columns(
                [config.audio_column]
            )
            for index, row in enumerate(audio):
                value = row[config.audio_column] or {}
                name = value.get("path") or f"{index}"
                payload = value.get("bytes") or value.get("path")
                yield f"{split_name}/{index}/{os.path.basename(name)}", payload or b"", config

    return sum(len(split) for _, split in splits), tasks()


def build_audio_dataset(
    source,
    output_dir: str,
    config: AudioBuildConfig | None = None,
    num_workers: int = 1,
    progress: bool = True,
) -> DatasetDict:
    """Build a clip dataset from users' audio and save it to `output_dir` (with `README.md` and
    `build_summary.json`).

    Args:
        source (`str`, `datasets.Dataset` or `datasets.DatasetDict`): a folder of audio files (wav, flac, ogg,
            mp3, aiff; any sample rate and channel count; searched recursively), a dataset saved with
            `save_to_disk`, a Hub dataset id (needs network), or a dataset object, with an audio column.
        output_dir (`str`): destination; must be empty or absent.
        config (`AudioBuildConfig`, *optional*): the options.
        num_workers (`int`): worker processes decoding and cutting files.
        progress (`bool`): show a progress bar and print the summary.

    Returns:
        `datasets.DatasetDict`: splits `train`, `validation`, `test`; one source file never spans two splits.
    """
    from tqdm.auto import tqdm

    config = config or AudioBuildConfig()
    config.validate()
    if isinstance(source, str) and not os.path.exists(source) and not _HUB_ID.match(source):
        raise ValueError(
            f"Audio folder {source!r} does not exist: pass a folder of audio files, a saved dataset or a Hub "
            "id."
        )
    from_folder = isinstance(source, str) and os.path.isdir(source)
    is_saved = from_folder and any(
        os.path.isfile(os.path.join(source, f)) for f in ("dataset_dict.json", "state.json")
    )
    summary = BuildSummary(kind="an audio folder" if from_folder and not is_saved else "a datasets dataset")
    if from_folder and not is_saved:
        folder_tasks = _folder_tasks(source, config, summary)
        num_tasks, tasks = len(folder_tasks), iter(folder_tasks)
    else:
        num_tasks, tasks = _dataset_tasks(source, config)
    build = ClipDatasetBuild(output_dir, audio_features(config.sample_rate), summary)

    for piece, rows, reason, dropped in tqdm(
        map_in_workers(_clips_of, tasks, num_workers), total=num_tasks, disable=not progress, desc="files"
    ):
        summary.counts["clips dropped: mostly silent"] += dropped
        if rows is None:
            summary.skips.append((piece, reason))
            continue
        summary.counts["files with clips"] += 1
        for row in rows:
            build.write(row)
    summary.counts["files listed"] = num_tasks + sum(
        r.startswith("not an audio file") for _, r in summary.skips
    )
    return build.finish(asdict(config) | {"num_workers": num_workers}, progress)
