"""Stream clips to disk split by split, then save them as one `datasets.DatasetDict`.

Rows are appended to one Arrow file per split as they arrive (a few MB in memory at a time), so building
20,000 clips never holds the dataset in RAM. `finish` turns those files into a `DatasetDict` saved with
`save_to_disk` (which shards and writes `dataset_dict.json`) and removes the temporary files.
"""

from __future__ import annotations

import os
import shutil

from datasets import Dataset, DatasetDict, Features
from datasets.arrow_writer import ArrowWriter
from datasets.utils import logging

logger = logging.get_logger(__name__)

SPLITS = ("train", "validation", "test")


class ClipWriter:
    """Append clip rows per split; save the result as a `DatasetDict`.

    Args:
        output_dir (`str`): where the dataset will be saved; temporary files go to `output_dir/_build`.
        features (`datasets.Features`): the columns of every row.
        writer_batch_size (`int`): rows buffered before a write; a row holds one clip's FLAC bytes.
    """

    def __init__(self, output_dir: str, features: Features, writer_batch_size: int = 64):
        self.output_dir = output_dir
        self.features = features
        self.tmp_dir = os.path.join(output_dir, "_build")
        os.makedirs(self.tmp_dir, exist_ok=True)
        self._writers = {
            split: ArrowWriter(
                features=features,
                path=os.path.join(self.tmp_dir, f"{split}.arrow"),
                writer_batch_size=writer_batch_size,
            )
            for split in SPLITS
        }

    def write(self, row: dict) -> None:
        """Append one row to the split named in its `split` column."""
        # Rows are already in storage form (audio as {"bytes", "path"}): `Features.encode_example` would
        # import torchcodec for the Audio column, which this path must not need.
        self._writers[row["split"]].write(row)

    def finish(self, max_shard_size: str = "500MB") -> DatasetDict:
        """Close the split files, save the `DatasetDict` to `output_dir` and return it (memory-mapped).

        Empty splits are left out (a build from a few files may give no validation or test clip).
        """
        staged = DatasetDict()
        for split, writer in self._writers.items():
            num_rows, _ = writer.finalize()
            if num_rows:
                staged[split] = Dataset.from_file(os.path.join(self.tmp_dir, f"{split}.arrow"))
            else:
                # datasets 5.2 saves an empty split that `load_from_disk` cannot read back: leave it out.
                logger.warning(
                    f"Split {split!r} is empty (too few pieces for its fraction): it is not saved."
                )
        if not staged:
            raise ValueError(
                f"No clip was made: nothing to save in {self.output_dir!r} (see the skipped items)."
            )
        staged.save_to_disk(self.output_dir, max_shard_size=max_shard_size)
        del staged
        shutil.rmtree(self.tmp_dir)
        return DatasetDict.load_from_disk(self.output_dir)
