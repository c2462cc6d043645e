"""What a training run reads: whole clips of a latent split, drawn from its memory-mapped Arrow files batch by
batch, padded together, then cropped to the Backbone's context.

    latent split (Arrow files, memory-mapped) --LatentClips, a batch of rows--> clips [T_i, D]
      --collate_clips--> [B, max T_i, D] + lengths --random_crops--> crops [B, <= context, D] + attention mask

Only the batch being read is copied into memory: resident memory does not grow with the corpus, so a corpus
larger than RAM trains (docs/training.md measures it).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch
from datasets import Dataset


def _clips_of(column: pa.ChunkedArray) -> list[torch.Tensor]:
    """The `[T, D]` latents of each row of an Arrow `latents` column, straight from its buffers: no Python
    list per value (row by row, a 10,000-clip split takes minutes)."""
    if isinstance(column.type, pa.ExtensionType):
        # One cast to list<list<value>>: reaching each chunk's storage separately would rebuild the extension
        # type per chunk (a JSON round trip in `datasets`), the bulk of a batch's cost.
        column = column.cast(column.type.storage_type)
    frames, lengths = [], []
    for storage in column.chunks:
        rows = storage.flatten()
        frames.append(rows.flatten().to_numpy(zero_copy_only=False).reshape(len(rows), -1))
        lengths += np.diff(storage.offsets.to_numpy()).tolist()
    if not frames:
        return []
    # One copy, out of the memory-mapped file: the batch is all the loop holds on to.
    return list(torch.from_numpy(np.concatenate(frames)).split(lengths))


class LatentClips(torch.utils.data.Dataset):
    r"""
    Whole clips of a latent split (the `latents` column of `encode_audio_dataset`'s output, `[T, D]` per row),
    read on demand from the split's memory-mapped Arrow files. A `DataLoader` fetches each batch with one
    gather (`__getitems__`); a view made by `select` or `shuffle` is read through its own row order.

    Args:
        split (`datasets.Dataset`): a latent split.
        instrument_column (`str`, *optional*): the column of each clip's instrument name, for a model
            conditioned on instruments.
        instrument_names (`list[str]`, *optional*): the model's instrument labels (their positions are the
            ids); needed with `instrument_column`.
    """

    def __init__(
        self, split: Dataset, instrument_column: str | None = None, instrument_names: list[str] | None = None
    ):
        if "latents" not in split.column_names:
            raise ValueError(
                f"The split has no `latents` column (columns: {split.column_names}): pass a split of a "
                "latent dataset (`encode_audio_dataset`, examples/encode_dataset.py)."
            )
        self.instrument_column = instrument_column
        self.instrument_ids = None
        if instrument_column is not None:
            if instrument_names is None:
                raise ValueError(
                    "`instrument_column` needs `instrument_names`, the model's labels in id order."
                )
            self.instrument_ids = {name: i for i, name in enumerate(instrument_names)}
            unknown = sorted(set(split.unique(instrument_column)) - set(self.instrument_ids))
            if unknown:
                raise ValueError(f"Instruments {unknown} are not among the model's {instrument_names}.")
        columns = ["latents"] + ([instrument_column] if instrument_column else [])
        self.rows = split.select_columns(columns).with_format("arrow")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """The clips at `indices`, read in one gather, each as `{"index", "latents"}` (and
        `"instrument_id"`)."""
        if not len(indices):
            return []
        table = self.rows[[int(i) for i in indices]]
        items = [
            {"index": int(i), "latents": clip}
            for i, clip in zip(indices, _clips_of(table["latents"]), strict=True)
        ]
        if self.instrument_ids is not None:
            for item, name in zip(items, table[self.instrument_column].to_pylist(), strict=True):
                item["instrument_id"] = self.instrument_ids[name]
        return items

    def num_frames(self, batch_size: int = 65_536) -> int:
        """The frames of all clips, from the column's offsets alone (no latent value is read)."""
        total = 0
        for batch in self.rows.iter(batch_size=batch_size):
            for chunk in batch["latents"].chunks:
                storage = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
                total += int(storage.offsets[-1].as_py() - storage.offsets[0].as_py())
        return total


def collate_clips(items: list[dict]) -> dict:
    r"""
    Whole clips right-padded to the longest, with their lengths (cropping happens in the training loop, with
    the step's own generator).

    Args:
        items (`list[dict]`): clips as `LatentClips` returns them.

    Returns:
        `dict`: `index` `(batch_size,)`, `latents` `(batch_size, max_length, latent_dim)` (the stored dtype),
        `lengths` `(batch_size,)`, and `instrument_ids` `(batch_size,)` when the clips have them.
    """
    lengths = torch.tensor([item["latents"].shape[0] for item in items])
    first = items[0]["latents"]
    latents = torch.zeros(len(items), int(lengths.max()), first.shape[1], dtype=first.dtype)
    for row, item in enumerate(items):
        latents[row, : lengths[row]] = item["latents"]
    batch = {"index": torch.tensor([item["index"] for item in items]), "latents": latents, "lengths": lengths}
    if "instrument_id" in items[0]:
        batch["instrument_ids"] = torch.tensor([item["instrument_id"] for item in items])
    return batch


def random_crops(
    latents: torch.Tensor,
    lengths: torch.Tensor,
    context_frames: int,
    short_crop_fraction: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""
    One random crop of each clip, of `context_frames` frames (or the whole clip when shorter; a share
    `short_crop_fraction` of crops gets a uniform length in [1, that]), right-padded and masked.

    Args:
        latents (`torch.Tensor` of shape `(batch_size, max_length, latent_dim)`): whole clips, right-padded.
        lengths (`torch.Tensor` of shape `(batch_size,)`): each clip's real length.
        context_frames (`int`): the longest crop.
        short_crop_fraction (`float`): share of crops drawn shorter.
        generator (`torch.Generator`): all randomness of the crops.

    Returns:
        `tuple`: crops `(batch_size, crop_length, latent_dim)` float32 and their attention mask `(batch_size,
        crop_length)` (1 for real frames).
    """
    crop_lengths = lengths.clamp(max=context_frames)
    short = torch.rand(len(lengths), generator=generator) < short_crop_fraction
    drawn = (torch.rand(len(lengths), generator=generator) * crop_lengths).long() + 1
    crop_lengths = torch.where(short, drawn.clamp(max=crop_lengths), crop_lengths)
    starts = (torch.rand(len(lengths), generator=generator) * (lengths - crop_lengths + 1)).long()
    width = int(crop_lengths.max())
    crops = latents.new_zeros(latents.shape[0], width, latents.shape[2], dtype=torch.float32)
    mask = torch.zeros(latents.shape[0], width, dtype=torch.long)
    for row, (start, length) in enumerate(zip(starts.tolist(), crop_lengths.tolist(), strict=True)):
        crops[row, :length] = latents[row, start : start + length].float()
        mask[row, :length] = 1
    return crops, mask


__all__ = ["LatentClips", "collate_clips", "random_crops"]
