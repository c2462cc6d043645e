"""Encoding an audio `DatasetDict` into a latent dataset (the layout `latents.py` describes and loads), once,
by a CAM autoencoder, resumably and in worker processes.

    audio DatasetDict (save_to_disk)
      --fit the autoencoder's statistics (the mel codec's PCA) on a sample of the TRAIN split-->
      OUT/autoencoder --decode and encode in batches, `shard_size` clips per task (worker processes)-->
      OUT/_shards/{split}/NNNNN.arrow --every shard done--> one DatasetDict saved in OUT (save_to_disk),
      encode_summary.json, README.md

Resumable at any point: every file is written under a temporary name and renamed into place, a shard counts as
done only once its record (`NNNNN.json`, written after its data) exists, and everything random is seeded. A
run killed anywhere and started again with the same options skips the finished shards and gives the same
dataset, byte for byte, as a run never interrupted. A clip that fails to decode or to encode is skipped,
listed in `encode_summary.json` with its reason and printed; the options are kept in `encode_options.json` so
that a second run with other options refuses the folder instead of mixing two encodings.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import shutil
import time
from collections.abc import Iterator

import numpy as np
import torch
from datasets import Array2D, Dataset, DatasetDict, Features, Value, concatenate_datasets, load_from_disk
from datasets.arrow_writer import ArrowWriter
from tqdm.auto import tqdm

from ..autoencoders import AudioAutoencoderMixin
from ..autoencoders.loading import load_autoencoder
from .build import map_in_workers
from .card import write_latent_card
from .clips import decode_audio
from .latents import AUTOENCODER_DIR, OPTIONS_FILE, SUMMARY_FILE, is_latent_dataset, load_latent_dataset
from .summary import render_encoding_summary, summarize_encoding

LATENT_DTYPES = ("float16", "float32")
LATENT_NORMALIZATIONS = ("per_channel", "global")
# Columns this module adds to the audio dataset's metadata.
ADDED_COLUMNS = ("latents", "num_frames", "source_index")

SHARDS_DIR = "_shards"


# ---- small helpers -----------------------------------------------------------------------------------------


def _write_json(path: str, data: dict) -> None:
    """Write JSON under a temporary name and rename it into place: a kill leaves the old file or the new one,
    whole, never part of one."""
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _as_channels_first(audio: np.ndarray) -> torch.Tensor:
    """soundfile's `[samples]` or `[samples, channels]` -> `[channels, samples]`."""
    return torch.from_numpy(np.ascontiguousarray(audio.T if audio.ndim == 2 else audio[None]))


def _load_audio_dataset(dataset_dir: str, audio_column: str) -> DatasetDict:
    saved = any(os.path.isfile(os.path.join(dataset_dir, f)) for f in ("dataset_dict.json", "state.json"))
    if not saved:
        raise ValueError(
            f"dataset_dir {dataset_dir!r} is not a dataset saved with `save_to_disk`: build one with `python "
            "examples/make_dataset.py --output_dir DIR` (the built-in dataset or --audio_dir for your own "
            "audio)."
        )
    dataset = load_from_disk(dataset_dir)
    if isinstance(dataset, Dataset):  # a single split: treated as the training data
        dataset = DatasetDict({"train": dataset})
    for name, split in dataset.items():
        if audio_column not in split.column_names:
            raise ValueError(
                f"Split {name!r} of {dataset_dir!r} has no column {audio_column!r} (columns: "
                f"{split.column_names}): pass audio_column= (--audio_column) naming the audio column."
            )
        clash = set(ADDED_COLUMNS) & set(split.column_names)
        if clash:
            raise ValueError(
                f"Split {name!r} of {dataset_dir!r} already has columns {sorted(clash)}, which encoding adds."
            )
    return dataset


# ---- the autoencoder ---------------------------------------------------------------------------------------


def _has_statistics(autoencoder: AudioAutoencoderMixin) -> bool:
    return autoencoder.config.latents_std is not None


def _copy(autoencoder: AudioAutoencoderMixin) -> AudioAutoencoderMixin:
    """A copy with the same config and weights (`copy.deepcopy` refuses modules with weight norm, such as
    Oobleck's)."""
    clone = type(autoencoder).from_config(autoencoder.config)
    clone.load_state_dict(autoencoder.state_dict())
    return clone.to(autoencoder.device).eval()


def _config_fingerprint(autoencoder: AudioAutoencoderMixin) -> str:
    """The autoencoder's class and config, as text: which codec a folder was encoded with."""
    config = {k: v for k, v in autoencoder.config.items() if not k.startswith("_")}
    return f"{type(autoencoder).__name__} {json.dumps(config, sort_keys=True, default=str)}"


def _fit_sample(
    audio: Dataset,
    autoencoder: AudioAutoencoderMixin,
    audio_column: str,
    fit_seconds: float,
    seed: int,
    batch_size: int,
) -> Iterator[torch.Tensor]:
    """Batches of train clips in a seeded random order, at the codec's rate and channels, until `fit_seconds`.

    Clips of other lengths or rates than their batch neighbours start a new batch; clips that fail to decode
    are left out here (the encoding pass lists them).
    """
    order = np.random.default_rng(seed).permutation(len(audio))
    seconds, batch = 0.0, []
    for index in order:
        try:
            clip, rate = decode_audio(audio[int(index)][audio_column])
            clip = autoencoder.prepare_audio(_as_channels_first(clip)[None], rate)
        except Exception:  # listed, with its reason, by the encoding pass
            continue
        if batch and batch[0].shape != clip.shape:
            yield torch.cat(batch)
            batch = []
        batch.append(clip)
        seconds += clip.shape[-1] / autoencoder.sample_rate
        if len(batch) == batch_size or seconds >= fit_seconds:
            yield torch.cat(batch)
            batch = []
        if seconds >= fit_seconds:
            return
    if batch:
        yield torch.cat(batch)


def _check_normalization(autoencoder: AudioAutoencoderMixin, normalization: str) -> None:
    if normalization not in LATENT_NORMALIZATIONS:
        raise ValueError(
            f"latent_normalization must be one of {LATENT_NORMALIZATIONS}, got {normalization!r}."
        )
    if normalization != "per_channel" and not _takes_normalization(autoencoder):
        raise ValueError(
            f"latent_normalization={normalization!r} needs an autoencoder whose fit_latent_statistics takes "
            f"`normalization` (MelAutoencoder does); {type(autoencoder).__name__} fits per-channel "
            "statistics only: use latent_normalization='per_channel'."
        )


def _takes_normalization(autoencoder: AudioAutoencoderMixin) -> bool:
    return "normalization" in inspect.signature(autoencoder.fit_latent_statistics).parameters


def _fit_statistics(
    autoencoder,
    train: Dataset,
    audio_column: str,
    fit_seconds: float,
    seed: int,
    batch_size: int,
    normalization: str,
) -> None:
    kwargs = {"normalization": normalization} if _takes_normalization(autoencoder) else {}
    autoencoder.fit_latent_statistics(
        _fit_sample(train, autoencoder, audio_column, fit_seconds, seed, batch_size), **kwargs
    )


# ---- one shard: decode, encode, write ----------------------------------------------------------------------


def _encode_batch(autoencoder, clips: list[torch.Tensor], rate: int) -> list[torch.Tensor | str]:
    """Encode clips of one shape together; if that fails, one at a time, so a bad clip fails alone.

    Returns, per clip, its latents `[T, D]` or the reason it failed.
    """
    try:
        latents = autoencoder.encode(torch.stack(clips), sample_rate=rate)
        if torch.isfinite(latents).all():
            return list(latents.cpu())
    except Exception:  # retried clip by clip below, which names the culprit
        pass
    results = []
    for clip in clips:
        try:
            latents = autoencoder.encode(clip[None], sample_rate=rate)[0].cpu()
        except Exception as err:  # a clip the codec refuses is skipped and listed, never fatal
            results.append(f"encode error: {type(err).__name__}: {str(err).strip()[:200]}")
            continue
        results.append(latents if torch.isfinite(latents).all() else "encode error: non-finite latents")
    return results


def _encode_shard(task: dict, audio: DatasetDict, autoencoder: AudioAutoencoderMixin) -> dict:
    """Encode rows `[start, stop)` of one split of `audio` into `_shards/{split}/{index}.arrow` and record it
    in `{index}.json`.

    Returns:
        `dict`: the shard's record (counts, seconds, skips), as saved.
    """
    split = audio[task["split"]]
    features = task["features"]
    np_dtype = np.dtype(task["dtype"])
    started = time.perf_counter()
    record = {
        "rows": task["stop"] - task["start"],
        "clips": 0,
        "frames": 0,
        "audio_seconds": 0.0,
        "skips": [],
    }
    writer = ArrowWriter(features=features, path=task["path"] + ".tmp")
    for batch_start in range(task["start"], task["stop"], task["batch_size"]):
        rows = split[batch_start : min(batch_start + task["batch_size"], task["stop"])]
        metadata = [name for name in rows if name != task["audio_column"]]
        # Group the batch's clips by shape and rate, keeping their order: a built dataset has one shape and
        # rate, users' datasets may not.
        groups: dict[tuple, list[tuple[int, torch.Tensor]]] = {}
        for offset, value in enumerate(rows[task["audio_column"]]):
            index = batch_start + offset
            try:
                clip, rate = decode_audio(value or {})
                clip = _as_channels_first(clip)
            except Exception as err:  # an undecodable clip is skipped and listed, never fatal
                where = (value or {}).get("path") or ""
                record["skips"].append(
                    {"index": index, "where": where, "reason": f"decode error: {type(err).__name__}: {err}"}
                )
                continue
            groups.setdefault((rate, *clip.shape), []).append((offset, clip))
        encoded = {}
        for (rate, *_), members in groups.items():
            results = _encode_batch(autoencoder, [clip for _, clip in members], rate)
            for (offset, clip), result in zip(members, results, strict=True):
                encoded[offset] = (result, clip.shape[-1] / rate)
        for offset in sorted(encoded):
            result, seconds = encoded[offset]
            index = batch_start + offset
            if isinstance(result, str):
                where = (rows[task["audio_column"]][offset] or {}).get("path") or ""
                record["skips"].append({"index": index, "where": where, "reason": result})
                continue
            row = {name: rows[name][offset] for name in metadata}
            row.update(
                latents=result.numpy().astype(np_dtype), num_frames=result.shape[0], source_index=index
            )
            writer.write(features.encode_example(row))
            record["clips"] += 1
            record["frames"] += result.shape[0]
            record["audio_seconds"] += seconds
    writer.finalize()
    os.replace(task["path"] + ".tmp", task["path"])
    record["skips"].sort(key=lambda skip: skip["index"])
    record["encode_seconds"] = round(time.perf_counter() - started, 3)
    _write_json(task["path"][: -len(".arrow")] + ".json", record)  # last: the shard is done
    return record


# ---- worker processes --------------------------------------------------------------------------------------

# A worker process's audio dataset and fitted codec, loaded once by `_start_worker` (or the error it raised).
_WORKER: tuple[DatasetDict, AudioAutoencoderMixin] | Exception | None = None


def _start_worker(
    dataset_dir: str, audio_column: str, codec_dir: str, autoencoder_class: type, threads: int
) -> None:
    """The worker pool's initializer: load the audio dataset and the fitted codec (saved in `codec_dir`)."""
    global _WORKER
    torch.set_num_threads(threads)
    try:
        autoencoder = autoencoder_class.from_pretrained(codec_dir).eval()
        _WORKER = (_load_audio_dataset(dataset_dir, audio_column), autoencoder)
    except Exception as err:  # raised with the first task: a pool restarts a failing initializer forever
        _WORKER = err


def _encode_shard_in_worker(task: dict) -> dict:
    """`_encode_shard` with the dataset and codec this worker loaded."""
    if isinstance(_WORKER, Exception):
        raise _WORKER
    return _encode_shard(task, *_WORKER)


# ---- the whole encoding ------------------------------------------------------------------------------------


def encode_audio_dataset(
    dataset_dir: str,
    output_dir: str,
    autoencoder: str | AudioAutoencoderMixin = "mel",
    autoencoder_path: str | None = None,
    batch_size: int = 4,
    fit_seconds: float = 3600.0,
    latent_normalization: str = "per_channel",
    refit_statistics: bool = False,
    dtype: str = "float16",
    seed: int = 0,
    num_workers: int = 1,
    shard_size: int = 256,
    audio_column: str = "audio",
    progress: bool = True,
) -> DatasetDict:
    """
    Encode an audio dataset into a latent dataset of the same splits, saved at `output_dir` with the fitted
    autoencoder beside it (`output_dir/autoencoder`, `save_pretrained`). Resumes an interrupted run; returns
    at once when `output_dir` already holds this encoding.

    Args:
        dataset_dir (`str`): an audio `DatasetDict` saved with `save_to_disk` (the built-in dataset, or one
            made from your audio by `examples/make_dataset.py`); a single saved `Dataset` counts as the
            train split.
        output_dir (`str`): where the latent dataset goes; absent, empty, or holding an unfinished run of the
            same options (then resumed).
        autoencoder (`str` or `AudioAutoencoderMixin`): `"mel"` (default, weight-free), `"music2latent"`,
            `"oobleck"`, `"encodec"` (see `load_autoencoder`), or an autoencoder object (a `ModelMixin` whose
            class `from_pretrained` can load in worker processes). An object is fitted as a copy: yours is
            left as it was; `load_latent_dataset` returns the fitted one.
        autoencoder_path (`str`, *optional*): weights for a named autoencoder (see `load_autoencoder`).
        batch_size (`int`): clips encoded together. On CPU, 4: larger batches compute no faster there, and
            their buffers (tens of MB) are mapped fresh from the system at every batch (measured with the mel
            codec on 10 s clips: 16 costs ~35% more CPU time per clip, all of it in page faults). Raise it
            for a GPU.
        fit_seconds (`float`): seconds of train audio, drawn at random with `seed`, to fit the statistics on.
        latent_normalization (`str`): `"per_channel"` (each latent component to unit variance) or `"global"`
            (one scale for all components; the mel codec only): see `MelAutoencoder.fit_latent_statistics`.
        refit_statistics (`bool`): fit the statistics even when the autoencoder has them already (one
            loaded from a `save_pretrained` folder keeps its own by default, so that fine-tuning data use the
            model's codec).
        dtype (`str`): `"float16"` (default: measured to cost nothing in reconstruction, `docs/training.md`)
            or `"float32"`: how latents are stored.
        seed (`int`): seeds the sample the statistics are fitted on.
        num_workers (`int`): worker processes that decode and encode shards (on CPU); 1 encodes in this
            process, on the autoencoder's device.
        shard_size (`int`): clips per shard, the unit of work and of resumption.
        audio_column (`str`): the audio column: an `Audio(decode=False)` column, or one whose values are
            `{"bytes", "path"}` dicts.
        progress (`bool`): show a progress bar and print the summary.

    Returns:
        `datasets.DatasetDict`: per split, one row per encoded clip: `latents` (`[T, D]`;
        `with_format("torch")` gives float32 tensors), `num_frames` (`T`), `source_index` (the clip's row in
        the audio split) and every metadata column of the audio dataset (`piece`, `instrument_name`, ...).
    """
    started = time.perf_counter()
    if dtype not in LATENT_DTYPES:
        raise ValueError(f"dtype must be one of {LATENT_DTYPES}, got {dtype!r}.")
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size), ("num_workers", num_workers)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")
    if fit_seconds <= 0:
        raise ValueError(f"fit_seconds must be > 0, got {fit_seconds}.")
    audio = _load_audio_dataset(dataset_dir, audio_column)
    if isinstance(autoencoder, str):
        autoencoder_name = autoencoder
        autoencoder = load_autoencoder(autoencoder, autoencoder_path)
    else:
        if not isinstance(autoencoder, AudioAutoencoderMixin):
            raise ValueError(
                f"autoencoder must be a name or an AudioAutoencoderMixin, got {type(autoencoder).__name__}."
            )
        autoencoder_name = type(autoencoder).__name__
    fit = refit_statistics or not _has_statistics(autoencoder)
    if fit:
        _check_normalization(autoencoder, latent_normalization)
        if "train" not in audio:
            raise ValueError(
                f"{dataset_dir!r} has no train split (splits: {list(audio)}) to fit the autoencoder's "
                "statistics on: pass an autoencoder with fitted statistics (autoencoder_path) or a dataset "
                "with a train split."
            )
    options = {
        "source": {
            name: {"num_rows": len(split), "fingerprint": split._fingerprint} for name, split in audio.items()
        },
        "autoencoder": autoencoder_name,
        "autoencoder_path": autoencoder_path,
        "autoencoder_config": _config_fingerprint(autoencoder),
        "statistics": f"fitted on {fit_seconds:g} s of train audio, seed {seed}"
        if fit
        else "kept from the autoencoder",
        "latent_normalization": latent_normalization if fit else None,
        "dtype": dtype,
        "batch_size": batch_size,
        "shard_size": shard_size,
        "audio_column": audio_column,
    }
    resumed = _prepare_output_dir(output_dir, options)
    if is_latent_dataset(output_dir):
        shutil.rmtree(os.path.join(output_dir, SHARDS_DIR), ignore_errors=True)  # if a kill came just before
        if progress:
            print(f"{output_dir} already holds this encoding of {dataset_dir}: nothing to do.")
        return DatasetDict.load_from_disk(output_dir)
    _write_json(os.path.join(output_dir, OPTIONS_FILE), {**options, "dataset_dir": dataset_dir})

    # 1. The codec: fitted on TRAIN audio only, and saved before any latent is written, since worker processes
    # load it from its folder.
    codec_dir = os.path.join(output_dir, AUTOENCODER_DIR)
    fit_wall = 0.0
    if os.path.isdir(codec_dir):
        autoencoder = type(autoencoder).from_pretrained(codec_dir).to(autoencoder.device).eval()
    else:
        if fit:
            fit_start = time.perf_counter()
            autoencoder = _copy(autoencoder)  # fitted here, not in the caller's hands
            _fit_statistics(
                autoencoder, audio["train"], audio_column, fit_seconds, seed, batch_size, latent_normalization
            )
            fit_wall = time.perf_counter() - fit_start
        shutil.rmtree(codec_dir + ".tmp", ignore_errors=True)
        autoencoder.save_pretrained(codec_dir + ".tmp")
        os.replace(codec_dir + ".tmp", codec_dir)

    # 2. The shards: every one not recorded as done is (re-)encoded.
    shared = {"dtype": dtype, "batch_size": batch_size, "audio_column": audio_column}
    tasks, records = _shard_tasks(audio, output_dir, autoencoder.latent_dim, shard_size, shared)
    reused = len(records)
    if progress and (resumed or reused):
        print(f"Resuming the encoding in {output_dir}: {reused} shards done, {len(tasks)} to go.")
    if num_workers == 1:  # this process encodes with the codec it holds (and on its device)
        encoded = map(functools.partial(_encode_shard, audio=audio, autoencoder=autoencoder), tasks)
    else:  # each worker loads the dataset and the codec just saved, once
        threads = max(1, (os.cpu_count() or 1) // num_workers)
        worker = (dataset_dir, audio_column, codec_dir, type(autoencoder), threads)
        encoded = map_in_workers(_encode_shard_in_worker, tasks, num_workers, _start_worker, worker)
    total_clips = sum(len(split) for split in audio.values())
    done_clips = sum(record["rows"] for record in records.values())
    with tqdm(
        total=total_clips, initial=done_clips, unit="clip", desc="encoding", disable=not progress
    ) as bar:
        for task, record in zip(tasks, encoded, strict=True):
            records[(task["split"], task["index"])] = record
            bar.update(task["stop"] - task["start"])

    # 3. One DatasetDict from the shards, then the summary (its presence marks the folder as finished).
    _assemble(output_dir, audio, records)
    summary = summarize_encoding(
        audio, records, options, reused, time.perf_counter() - started, fit_wall, autoencoder
    )
    write_latent_card(output_dir, summary, dataset_dir)
    _write_json(os.path.join(output_dir, SUMMARY_FILE), summary)
    shutil.rmtree(os.path.join(output_dir, SHARDS_DIR), ignore_errors=True)
    if progress:
        print(render_encoding_summary(summary))
    return DatasetDict.load_from_disk(output_dir)


def _shard_tasks(
    audio: DatasetDict, output_dir: str, latent_dim: int, shard_size: int, shared: dict
) -> tuple[list[dict], dict]:
    """The shards still to encode (as tasks for `_encode_shard`), and the records of those already done."""
    tasks, records = [], {}
    for name, split in audio.items():
        features = Features(
            {
                **{
                    column: feature
                    for column, feature in split.features.items()
                    if column != shared["audio_column"]
                },
                "latents": Array2D(shape=(None, latent_dim), dtype=shared["dtype"]),
                "num_frames": Value("int32"),
                "source_index": Value("int64"),
            }
        )
        os.makedirs(os.path.join(output_dir, SHARDS_DIR, name), exist_ok=True)
        for index in range(math.ceil(len(split) / shard_size)):
            path = os.path.join(output_dir, SHARDS_DIR, name, f"{index:05d}.arrow")
            if os.path.isfile(path[: -len(".arrow")] + ".json") and os.path.isfile(path):
                records[(name, index)] = _read_json(path[: -len(".arrow")] + ".json")
                continue
            start, stop = index * shard_size, min((index + 1) * shard_size, len(split))
            tasks.append(
                {
                    **shared,
                    "split": name,
                    "index": index,
                    "start": start,
                    "stop": stop,
                    "path": path,
                    "features": features,
                }
            )
    return tasks, records


def _prepare_output_dir(output_dir: str, options: dict) -> bool:
    """Create `output_dir`, or check that it holds a run of the same `options`.

    Returns:
        `bool`: whether `output_dir` holds such a run already.
    """
    options_path = os.path.join(output_dir, OPTIONS_FILE)
    if os.path.isfile(options_path):
        previous = {k: v for k, v in _read_json(options_path).items() if k != "dataset_dir"}
        if previous != options:
            changed = sorted(k for k in set(previous) | set(options) if previous.get(k) != options.get(k))
            raise ValueError(
                f"{output_dir!r} holds an encoding with other options or of another dataset (differing: "
                f"{changed}): pass a new output_dir, or the same options to resume it."
            )
        return True
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        raise ValueError(
            f"Output directory {output_dir!r} is not empty and holds no encoding: choose a new directory."
        )
    os.makedirs(output_dir, exist_ok=True)
    return False


def _assemble(output_dir: str, audio: DatasetDict, records: dict) -> None:
    """Concatenate each split's shards in order and save the result as one `DatasetDict` in `output_dir`."""
    for name in audio:  # what a run killed while saving may have left
        shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)
    dataset = DatasetDict()
    for name in audio:
        shards = [
            Dataset.from_file(os.path.join(output_dir, SHARDS_DIR, name, f"{index:05d}.arrow"))
            for split, index in sorted(records)
            if split == name
        ]
        split = concatenate_datasets(shards) if shards else None
        if split is None or len(split) == 0:
            # datasets saves an empty split that `load_from_disk` cannot read back: leave it out.
            print(f"Split {name!r}: no clip could be encoded, it is left out (see the skipped clips).")
            continue
        dataset[name] = split
    if not dataset:
        raise ValueError(
            f"No clip of {list(audio)} could be encoded: see the skipped clips in {output_dir}/_shards."
        )
    dataset.save_to_disk(output_dir)


def load_or_encode_latent_dataset(
    dataset_dir: str,
    cache_dir: str | None = None,
    autoencoder: str | AudioAutoencoderMixin = "mel",
    autoencoder_path: str | None = None,
) -> tuple[DatasetDict, AudioAutoencoderMixin, str]:
    r"""
    A latent dataset to train on: `dataset_dir` itself when it is one, else the audio dataset `dataset_dir`
    encoded into `cache_dir` (once: a finished encoding is reused, an interrupted one resumed).

    Args:
        dataset_dir (`str`): a latent dataset, or an audio `DatasetDict` saved with `save_to_disk`.
        cache_dir (`str`, *optional*): where an audio dataset is encoded to; needed for one.
        autoencoder (`str` or `AudioAutoencoderMixin`, defaults to `"mel"`): the codec that encodes an audio
            dataset (a name for `load_autoencoder`, or a codec, e.g. a pipeline's).
        autoencoder_path (`str`, *optional*): the weights of a codec given by name.

    Returns:
        `tuple`: the latent `DatasetDict`, its autoencoder, and the folder they were loaded from.
    """
    if not os.path.isdir(dataset_dir):
        raise ValueError(
            f"dataset_dir {dataset_dir!r} is not a folder: pass a dataset saved by examples/make_dataset.py "
            "or examples/encode_dataset.py."
        )
    path = dataset_dir
    if not is_latent_dataset(dataset_dir):
        if cache_dir is None:
            raise ValueError(f"{dataset_dir!r} is an audio dataset: pass a cache_dir to encode it into.")
        encode_audio_dataset(
            dataset_dir, cache_dir, autoencoder=autoencoder, autoencoder_path=autoencoder_path
        )
        path = cache_dir
    dataset, codec = load_latent_dataset(path)
    return dataset, codec, path
