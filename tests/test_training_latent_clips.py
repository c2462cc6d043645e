"""cam_hf/training/latent_clips.py: clips read exactly from a latent split's memory-mapped Arrow files, padded
together, and cropped to the context."""

import pickle

import pytest
import torch
from datasets import load_from_disk

from cam_hf.training import LatentClips, collate_clips, random_crops

from .conftest import write_toy_latent_dataset


def test_crops_fit_the_context_begin_anywhere_and_mask_padding():
    latents = torch.arange(3 * 20, dtype=torch.float16).view(3, 20, 1).expand(3, 20, 2).clone()
    lengths = torch.tensor([20, 7, 12])
    crops, mask = random_crops(latents, lengths, 10, 0.0, torch.Generator().manual_seed(0))
    assert crops.shape == (3, 10, 2) and mask.sum(1).tolist() == [10, 7, 10]
    assert crops[1, 7:].abs().sum() == 0 and torch.equal(crops[1, :7, 0], latents[1, :7, 0].float())
    for row in range(3):  # consecutive frames of the clip
        real = crops[row, : mask[row].sum(), 0]
        assert torch.equal(real.diff(), torch.ones(len(real) - 1))
    _, short_mask = random_crops(latents, lengths, 10, 1.0, torch.Generator().manual_seed(1))
    assert (short_mask.sum(1) <= torch.tensor([10, 7, 10])).all() and (short_mask.sum(1) >= 1).all()


def test_clips_are_read_exactly_from_the_memory_mapped_files(tmp_path):
    split = load_from_disk(str(write_toy_latent_dataset(tmp_path / "toy")))["train"]
    clips = LatentClips(split, "instrument_name", ["high", "low"])
    expected = split.with_format("numpy")
    assert len(clips) == len(split)
    batch = clips.__getitems__([5, 0, 17])  # a DataLoader's fetch: one gather
    for item, index in zip(batch, [5, 0, 17], strict=True):
        assert item["index"] == index and item["latents"].dtype == torch.float16
        assert torch.equal(item["latents"], torch.from_numpy(expected[index]["latents"]).half())
        assert item["instrument_id"] == ["high", "low"].index(expected[index]["instrument_name"])
    # A view (shuffled, selected) is read in its own order.
    view = split.shuffle(seed=0).select(range(5))
    for i, item in enumerate(LatentClips(view).__getitems__(list(range(5)))):
        assert torch.equal(item["latents"], torch.from_numpy(view.with_format("numpy")[i]["latents"]).half())
    assert clips.num_frames() == sum(split["num_frames"])
    # Nothing is held but a reference to the files: the object a DataLoader worker receives is small.
    big = write_toy_latent_dataset(tmp_path / "big", num_train=4096, length=64)
    big_clips = LatentClips(load_from_disk(str(big))["train"])
    assert len(pickle.dumps(big_clips)) < 20_000 < 4096 * 64 * 2 * 2
    batch = collate_clips(big_clips.__getitems__([1, 2]))
    assert batch["latents"].shape == (2, 64, 2) and batch["lengths"].tolist() == [64, 64]
    with pytest.raises(ValueError, match=r"\['low'\] are not among"):
        LatentClips(split, "instrument_name", ["high"])
