"""Share a built dataset on the Hugging Face Hub, in the Hub's own layout (Parquet shards + dataset card)."""

from __future__ import annotations

import math
import os
import tempfile

from datasets import DatasetDict, load_from_disk
from huggingface_hub import DatasetCard, HfApi


def export_for_hub(
    dataset: DatasetDict, card: DatasetCard, folder: str, max_shard_size: int = 500 * 2**20
) -> str:
    """Write the files a Hub dataset repository holds: `data/{split}-XXXXX-of-XXXXX.parquet` and `README.md`.

    The card's metadata gets a `configs` entry naming the shards of each split, which is how the Hub and
    `load_dataset(repo_id)` find the splits; the Parquet files carry the features (the `Audio` column
    included).

    Args:
        dataset (`datasets.DatasetDict`): the dataset to export.
        card (`huggingface_hub.DatasetCard`): its card (usually the `README.md` saved by the builder).
        folder (`str`): where to write the files.
        max_shard_size (`int`): approximate bytes per Parquet shard.

    Returns:
        `str`: `folder`.
    """
    os.makedirs(os.path.join(folder, "data"), exist_ok=True)
    data_files = []
    for split, ds in dataset.items():
        num_shards = max(1, math.ceil(ds.data.nbytes / max_shard_size))
        for index in range(num_shards):
            shard = ds.shard(num_shards, index, contiguous=True)
            shard.to_parquet(os.path.join(folder, "data", f"{split}-{index:05d}-of-{num_shards:05d}.parquet"))
        data_files.append({"split": split, "path": f"data/{split}-*"})
    card = DatasetCard(str(card))  # a copy: the caller's card keeps its metadata
    card.data["configs"] = [{"config_name": "default", "data_files": data_files}]
    card.save(os.path.join(folder, "README.md"))
    return folder


def push_to_hub(
    dataset_dir: str,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a dataset built by `cam_hf.data` (a `save_to_disk` folder with its `README.md`) to the Hub.

    Why not `DatasetDict.push_to_hub` alone: it writes its own card and would drop ours (the description,
    the counts and the licences). The files are the ones it would write; ours go up in a single commit.

    Args:
        dataset_dir (`str`): the folder the builder saved.
        repo_id (`str`): the dataset repository, e.g. `"user/cam-music21-instruments"`.
        private (`bool`): create the repository as private.
        token (`str`, *optional*): a Hub token; default: the logged-in user's.
        commit_message (`str`, *optional*): the commit message.

    Returns:
        `str`: the URL of the commit.
    """
    card_path = os.path.join(dataset_dir, "README.md")
    if not os.path.isfile(os.path.join(dataset_dir, "dataset_dict.json")) or not os.path.isfile(card_path):
        raise ValueError(
            f"{dataset_dir!r} is not a dataset built by cam_hf.data (needs dataset_dict.json and README.md): "
            "build it with `python examples/make_dataset.py --output_dir DIR` first."
        )
    dataset = load_from_disk(dataset_dir)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        export_for_hub(dataset, DatasetCard.load(card_path), folder)
        commit = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=folder,
            commit_message=commit_message or "Upload dataset built with cam_hf.data",
        )
    return str(commit)
