"""Real audio to compare against: a folder of audio files, or a `datasets` dataset saved with `save_to_disk`."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus")


def _mono(audio: np.ndarray) -> np.ndarray:
    # soundfile and decode_audio give (samples,) or (samples, channels).
    return (audio.mean(axis=1) if audio.ndim == 2 else audio).astype(np.float32)


def is_saved_dataset(path: str) -> bool:
    """Whether `path` is a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return any(os.path.isfile(os.path.join(path, name)) for name in ("dataset_dict.json", "state.json"))


def load_reference_audio(
    path: str,
    split: str = "test",
    audio_column: str = "audio",
    max_clips: int | None = None,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[int], list[str]]:
    """
    Load real audio clips, mono float32 at their own sample rates.

    Args:
        path (`str`): a folder of audio files (searched recursively; wav, flac, ogg, mp3, aiff, opus), or a folder
            saved by `datasets`' `save_to_disk` (a `DatasetDict`, of which `split` is used, or a `Dataset`), e.g. the
            built-in dataset of `examples/make_dataset.py`.
        split (`str`, defaults to `"test"`): the split of a `DatasetDict`.
        audio_column (`str`, defaults to `"audio"`): the dataset's audio column (`Audio(decode=False)` or decoded).
        max_clips (`int`, *optional*): keep at most this many, chosen at random with `seed` (all when `None`).
        seed (`int`, defaults to 0): seed of that choice.

    Returns:
        `(clips, sample_rates, names)`: lists of 1-D float32 arrays, their rates in Hz, and their file names or
        dataset row names.

    Raises:
        `ValueError`: the path does not exist, holds no audio, a split or column is missing, or a file is unreadable.
    """
    if not os.path.isdir(path):
        raise ValueError(f"Reference {path!r} is not a folder: pass a folder of audio files or a saved dataset.")
    if is_saved_dataset(path):
        return _load_dataset_audio(path, split, audio_column, max_clips, seed)
    files = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(path)
        for name in names
        if name.lower().endswith(AUDIO_EXTENSIONS)
    )
    if not files:
        raise ValueError(f"Reference folder {path!r} holds no audio files ({', '.join(AUDIO_EXTENSIONS)}).")
    if max_clips is not None and max_clips < len(files):
        files = sorted(np.random.default_rng(seed).choice(files, size=max_clips, replace=False).tolist())
    clips, rates = [], []
    for file in files:
        try:
            audio, rate = sf.read(file, dtype="float32", always_2d=True)
        except Exception as error:  # soundfile raises several types for unreadable files
            raise ValueError(f"Could not read reference file {file!r} as audio: {error}") from error
        clips.append(_mono(audio))
        rates.append(int(rate))
    return clips, rates, [os.path.relpath(file, path) for file in files]


def _load_dataset_audio(path, split, audio_column, max_clips, seed):
    from datasets import DatasetDict, load_from_disk

    from ..data.clips import decode_audio

    dataset = load_from_disk(path)
    if isinstance(dataset, DatasetDict):
        if split not in dataset:
            raise ValueError(f"Dataset {path!r} has no split {split!r}; its splits are {sorted(dataset)}.")
        dataset = dataset[split]
    if audio_column not in dataset.column_names:
        raise ValueError(f"Dataset {path!r} has no column {audio_column!r}; its columns are {dataset.column_names}.")
    if len(dataset) == 0:
        raise ValueError(f"Dataset {path!r} (split {split!r}) is empty.")
    indices = range(len(dataset))
    if max_clips is not None and max_clips < len(dataset):
        indices = sorted(np.random.default_rng(seed).choice(len(dataset), size=max_clips, replace=False).tolist())
    clips, rates, names = [], [], []
    for index in indices:
        value = dataset[int(index)][audio_column]
        if isinstance(value, dict) and "array" in value:  # a decoded Audio column
            audio, rate = np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])
        else:
            audio, rate = decode_audio(value)
        clips.append(_mono(audio))
        rates.append(int(rate))
        names.append(f"{split}[{index}]")
    return clips, rates, names


__all__ = ["AUDIO_EXTENSIONS", "is_saved_dataset", "load_reference_audio"]
