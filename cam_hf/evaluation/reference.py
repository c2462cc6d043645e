"""Real audio to compare against: a folder of audio files, or a `datasets` dataset saved with `save_to_disk`,
split into the reference set and held-out clips, with the embeddings of their windows (`ReferenceAudio`)."""

from __future__ import annotations

import math
import os

import numpy as np
import soundfile as sf
import torch

from .accumulation import RealWindows, window_bounds
from .embeddings import AudioEmbedding, CrepeEmbedding, LatentEmbedding
from .pitch import window_pitch_figures

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
        path (`str`): a folder of audio files (searched recursively; wav, flac, ogg, mp3, aiff, opus), or a
            folder saved by `datasets`' `save_to_disk` (a `DatasetDict`, of which `split` is used, or a
            `Dataset`), e.g. the built-in dataset of `examples/make_dataset.py`.
        split (`str`, defaults to `"test"`): the split of a `DatasetDict`.
        audio_column (`str`, defaults to `"audio"`): the dataset's audio column (`Audio(decode=False)` or
            decoded).
        max_clips (`int`, *optional*): keep at most this many, chosen at random with `seed` (all when `None`).
        seed (`int`, defaults to 0): seed of that choice.

    Returns:
        `(clips, sample_rates, names)`: lists of 1-D float32 arrays, their rates in Hz, and their file names
        or dataset row names.

    Raises:
        `ValueError`: the path does not exist, holds no audio, a split or column is missing, or a file is
        unreadable.
    """
    clips, rates, names, _ = _load_labelled_audio(
        path, split, audio_column, max_clips, seed, label_column=None
    )
    return clips, rates, names


def _load_labelled_audio(path, split, audio_column, max_clips, seed, label_column):
    """`load_reference_audio`, and each clip's label: the dataset's `label_column`, or for a folder of files
    the sub-folder a file lies in (`None` for files at the top; all `None` when `label_column` is `None`)."""
    if not os.path.isdir(path):
        raise ValueError(
            f"Reference {path!r} is not a folder: pass a folder of audio files or a saved dataset."
        )
    if is_saved_dataset(path):
        return _load_dataset_audio(path, split, audio_column, max_clips, seed, label_column)
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
    names = [os.path.relpath(file, path) for file in files]
    folders = [os.path.dirname(name).split(os.sep)[0] or None for name in names]
    labels = folders if label_column is not None else [None] * len(names)
    return clips, rates, names, labels


def _load_dataset_audio(path, split, audio_column, max_clips, seed, label_column):
    from datasets import DatasetDict, load_from_disk

    from ..data.clips import decode_audio

    dataset = load_from_disk(path)
    if isinstance(dataset, DatasetDict):
        if split not in dataset:
            raise ValueError(f"Dataset {path!r} has no split {split!r}; its splits are {sorted(dataset)}.")
        dataset = dataset[split]
    for column in (audio_column, label_column):
        if column is not None and column not in dataset.column_names:
            raise ValueError(
                f"Dataset {path!r} has no column {column!r}; its columns are {dataset.column_names}."
            )
    if len(dataset) == 0:
        raise ValueError(f"Dataset {path!r} (split {split!r}) is empty.")
    indices = range(len(dataset))
    if max_clips is not None and max_clips < len(dataset):
        indices = sorted(
            np.random.default_rng(seed).choice(len(dataset), size=max_clips, replace=False).tolist()
        )
    clips, rates, names, labels = [], [], [], []
    for index in indices:
        row = dataset[int(index)]
        value = row[audio_column]
        if isinstance(value, dict) and "array" in value:  # a decoded Audio column
            audio, rate = np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])
        else:
            audio, rate = decode_audio(value)
        clips.append(_mono(audio))
        rates.append(int(rate))
        names.append(f"{split}[{index}]")
        labels.append(None if label_column is None else str(row[label_column]))
    return clips, rates, names, labels


def audio_windows(clip: np.ndarray, sample_rate: int, window_seconds: float) -> list[np.ndarray]:
    """Consecutive windows of `window_seconds` of a clip (a last partial window is dropped)."""
    length = round(window_seconds * sample_rate)
    return [clip[start : start + length] for start in range(0, len(clip) - length + 1, length)]


class ReferenceAudio:
    """
    Real clips to measure generated audio against, split into the *reference set* (kept as the statistics of
    its windows' embeddings) and *held-out* clips (the floors, the real pitch figures and the prompts of
    continuations), with those window embeddings cached: each is computed once per embedding and window
    length.

    Build one with [`~ReferenceAudio.load`]; [`~ReferenceAudio.subset`] gives the clips of one label
    (instrument).

    Args:
        clips (`list[np.ndarray]`): mono float32 clips.
        sample_rates (`list[int]`): their rates in Hz.
        names (`list[str]`): their file or row names.
        held_out (`np.ndarray` of `bool`, shape `(len(clips),)`): which clips are held out of the reference
            set.
        labels (`list[str | None]`, *optional*): each clip's label, e.g. its instrument.
        description (`dict`, *optional*): where the clips come from, for reports (`source`, `split`).
    """

    def __init__(
        self,
        clips: list[np.ndarray],
        sample_rates: list[int],
        names: list[str],
        held_out: np.ndarray,
        labels: list[str | None] | None = None,
        description: dict | None = None,
    ):
        held_out = np.asarray(held_out, dtype=bool)
        if not len(clips) == len(sample_rates) == len(names) == len(held_out):
            raise ValueError(
                f"Got {len(clips)} clips, {len(sample_rates)} rates, {len(names)} names and {len(held_out)} "
                "held-out flags: pass one of each per clip."
            )
        if held_out.all() or not held_out.any():
            raise ValueError(
                f"{int(held_out.sum())} of {len(clips)} clips are held out: the reference set and the "
                "held-out clips each need at least one."
            )
        self.clips, self.sample_rates, self.names, self.held_out = clips, sample_rates, names, held_out
        self.labels = list(labels) if labels is not None else [None] * len(clips)
        self.description = {
            **(description or {}),
            "num_clips": len(clips),
            "reference_clips": int((~held_out).sum()),
            "held_out_clips": int(held_out.sum()),
            "seconds": float(sum(len(c) / r for c, r in zip(clips, sample_rates, strict=True))),
        }
        self._cache: dict = {}
        self._subsets: dict[str, ReferenceAudio] = {}

    @classmethod
    def load(
        cls,
        path: str,
        split: str = "test",
        audio_column: str = "audio",
        max_clips: int | None = None,
        held_out_fraction: float = 0.5,
        seed: int = 0,
        label_column: str | None = None,
    ) -> ReferenceAudio:
        """
        Load real clips (see `load_reference_audio`) and hold out a random `held_out_fraction` of them.

        Args:
            path, split, audio_column, max_clips: as `load_reference_audio`.
            held_out_fraction (`float`, defaults to 0.5): the share of clips held out (at least one clip on
                each side).
            seed (`int`, defaults to 0): seed of the clip choice and of the split.
            label_column (`str`, *optional*): read each clip's label (its instrument): this column of a saved
                dataset, or for a folder of files the sub-folder each file lies in (`violin/take1.wav` is a
                violin).

        Returns:
            [`ReferenceAudio`]; its description holds the path relative to the working directory.
        """
        if not 0 < held_out_fraction < 1:
            raise ValueError(f"`held_out_fraction` must be in (0, 1), got {held_out_fraction}.")
        clips, rates, names, labels = _load_labelled_audio(
            path, split, audio_column, max_clips, seed, label_column
        )
        if len(clips) < 2:
            raise ValueError(
                f"The reference has {len(clips)} clip(s): at least 2 are needed (reference + held out)."
            )
        order = np.random.default_rng(seed).permutation(len(clips))
        held_out = np.zeros(len(clips), dtype=bool)
        held_out[order[: min(len(clips) - 1, max(1, round(held_out_fraction * len(clips))))]] = True
        return cls(clips, rates, names, held_out, labels, {"source": os.path.relpath(path), "split": split})

    def subset(self, label: str) -> ReferenceAudio:
        """The clips labelled `label`, each on the side of the split it has here (cached)."""
        if label not in self._subsets:
            indices = [i for i, clip_label in enumerate(self.labels) if clip_label == label]
            known = sorted({clip_label for clip_label in self.labels if clip_label is not None})
            if not indices:
                raise ValueError(f"The reference holds no clip labelled {label!r}; its labels are {known}.")
            held_out = self.held_out[indices]
            if held_out.all() or not held_out.any():
                raise ValueError(
                    f"The reference's {len(indices)} clip(s) labelled {label!r} fall on one side of the "
                    f"split ({int(held_out.sum())} held out): use a larger reference or another "
                    "--held_out_fraction."
                )
            self._subsets[label] = ReferenceAudio(
                [self.clips[i] for i in indices],
                [self.sample_rates[i] for i in indices],
                [self.names[i] for i in indices],
                held_out,
                [label] * len(indices),
                {**self.description, "label": label},
            )
        return self._subsets[label]

    def _windows(self, key, windows_of_clip) -> RealWindows:
        if key not in self._cache:
            self._cache[key] = RealWindows.build(self.clips, self.held_out, windows_of_clip)
        return self._cache[key]

    def _held_out_windows(self, window_seconds: float, needed: int):
        """`(window, sample_rate)` from the held-out clips in order, until `needed` (or all there are)."""
        count = 0
        for index in np.flatnonzero(self.held_out):
            for window in audio_windows(self.clips[index], self.sample_rates[index], window_seconds):
                if count >= needed:
                    return
                count += 1
                yield window, self.sample_rates[index]

    def audio_windows(self, embedding: AudioEmbedding, window_seconds: float) -> RealWindows:
        """Every clip cut into windows of `window_seconds`, each window embedded."""

        def windows_of_clip(index, clip):
            pieces = audio_windows(clip, self.sample_rates[index], window_seconds)
            return embedding.embed(pieces, self.sample_rates[index]) if pieces else []

        return self._windows((embedding.name, round(window_seconds, 6)), windows_of_clip)

    def codec_windows(
        self, autoencoder, autoencoder_key: str, embedding: AudioEmbedding, window_seconds: float, needed: int
    ) -> RealWindows:
        """
        Held-out windows after a round trip through `autoencoder` (encode + decode), beside the plain
        reference statistics: only as many held-out clips as give `needed` windows are decoded (decoding is
        the expensive part). `autoencoder_key` names the autoencoder in the cache (e.g. its model's path).
        """
        plain = self.audio_windows(embedding, window_seconds)
        key = ("codec", autoencoder_key, embedding.name, round(window_seconds, 6), needed)
        if key not in self._cache:
            pool = []
            for index in np.flatnonzero(self.held_out):
                if len(pool) >= needed:
                    break
                clip = torch.from_numpy(self.clips[index])[None, None]
                decoded = autoencoder.decode(autoencoder.encode(clip, sample_rate=self.sample_rates[index]))
                decoded = decoded.float().mean(dim=1)[0].cpu().numpy()
                pieces = audio_windows(decoded, autoencoder.sample_rate, window_seconds)
                pool.extend(embedding.embed(pieces, autoencoder.sample_rate) if pieces else [])
            self._cache[key] = RealWindows(plain.reference, pool, plain.num_reference_windows)
        return self._cache[key]

    def latent_windows(
        self, embedding: LatentEmbedding, autoencoder_key: str, window_frames: int
    ) -> RealWindows:
        """Each clip encoded whole by the embedding's autoencoder, its latents cut into windows of
        `window_frames`, each window embedded as generated latents are."""
        autoencoder = embedding.autoencoder

        def windows_of_clip(index, clip):
            rate = self.sample_rates[index]
            if len(clip) * autoencoder.sample_rate / rate < autoencoder.hop_length * window_frames:
                return []
            latents = autoencoder.encode(torch.from_numpy(clip)[None, None], sample_rate=rate)[0]
            latents = latents.float().cpu().numpy()
            return [
                embedding.embed_latents(latents[start:end])
                for start, end in window_bounds(len(latents), window_frames)
            ]

        return self._windows((embedding.name, autoencoder_key, window_frames), windows_of_clip)

    def pitch_figures(
        self, crepe: CrepeEmbedding, window_seconds: float, set_size: int, num_sets: int = 2, seed: int = 0
    ) -> dict:
        """
        The pitch figures (`window_pitch_figures`) of held-out real windows, as the generated windows get
            them: their
        mean, and the range of the means of sets of `set_size` windows (a generated window set's size), so
        that a generated figure can be read against how much real sets of that size vary.

        Args:
            crepe ([`CrepeEmbedding`]): gives the pitch track.
            window_seconds (`float`): the windows' duration.
            set_size (`int`): windows per set (the generated samples per seed set).
            num_sets (`int`, defaults to 2): disjoint sets to draw (fewer when the held-out clips give too
                few).
            seed (`int`, defaults to 0): seed of the draws.

        Returns:
            `dict`: `pitch_confidence` and `pitch_changes_per_s`, each with `mean` (over every window used),
            `values` (per set), `min` and `max` (over sets); `num_windows` (per set) and `same_size` (False
            when the held-out clips gave fewer windows than `set_size`).
        """
        key = ("pitch", crepe.name, round(window_seconds, 6), set_size, num_sets, seed)
        if key not in self._cache:
            windows = list(self._held_out_windows(window_seconds, set_size * num_sets))
            if not windows:
                raise ValueError(
                    f"No held-out clip is {window_seconds:.2f} s long, one window: use shorter windows or "
                    "longer clips."
                )
            figures = np.concatenate(
                [window_pitch_figures(crepe.pitch_track([window], rate)) for window, rate in windows]
            )
            per_set = min(set_size, len(figures))
            sets = max(1, min(num_sets, len(figures) // per_set))
            order = np.random.default_rng(seed).permutation(len(figures))
            means = np.stack(
                [figures[order[i * per_set : (i + 1) * per_set]].mean(axis=0) for i in range(sets)]
            )
            self._cache[key] = {
                name: {
                    "mean": float(figures[:, column].mean()),
                    "values": means[:, column].tolist(),
                    "min": float(means[:, column].min()),
                    "max": float(means[:, column].max()),
                }
                for column, name in enumerate(("pitch_confidence", "pitch_changes_per_s"))
            }
            self._cache[key].update(num_windows=per_set, same_size=per_set == set_size)
        return self._cache[key]

    def prompts(self, autoencoder, prompt_frames: int) -> torch.Tensor:
        """Encoded openings of the held-out clips long enough to give `prompt_frames` frames: `[P, frames,
        D]`."""
        prompts = []
        for index in np.flatnonzero(self.held_out):
            rate = self.sample_rates[index]
            needed = math.ceil(prompt_frames * autoencoder.hop_length * rate / autoencoder.sample_rate)
            if len(self.clips[index]) >= needed:
                opening = torch.from_numpy(self.clips[index][:needed])[None, None]
                prompts.append(autoencoder.encode(opening, sample_rate=rate)[0, :prompt_frames])
        if not prompts or any(p.shape[0] < prompt_frames for p in prompts):
            raise ValueError(
                f"No held-out clip is long enough for a {prompt_frames}-frame prompt: lower --prompt_frames."
            )
        return torch.stack(prompts)


__all__ = ["AUDIO_EXTENSIONS", "ReferenceAudio", "audio_windows", "is_saved_dataset", "load_reference_audio"]
