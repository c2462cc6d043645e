"""The skeleton every clip-dataset build shares, whatever its source (the music21 corpus, users' audio):

    check the output folder -> run tasks in a worker pool -> stream rows to the writer, counting them in the
    summary -> save the DatasetDict, `build_summary.json` and the card -> print the summary

Each source (`build_from_corpus.py`, `build_from_audio.py`) supplies only its options, its columns, its tasks
and what a task's result adds to the dataset.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator

from datasets import DatasetDict, Features

from .card import write_card
from .summary import BuildSummary
from .writer import ClipWriter


def check_output_dir(output_dir: str) -> None:
    """Refuse a non-empty `output_dir` (a build never mixes its files with others'); create it if absent."""
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        raise ValueError(
            f"Output directory {output_dir!r} is not empty: choose a new directory or empty it first."
        )
    os.makedirs(output_dir, exist_ok=True)


def map_in_workers(
    function: Callable,
    tasks: Iterable,
    num_workers: int,
    initializer: Callable | None = None,
    initargs: tuple = (),
) -> Iterator:
    """`map(function, tasks)`, in `num_workers` worker processes when more than 1, results in task order.

    Workers are spawned, not forked: the parent holds pyarrow (and torch) threads, which fork does not copy
    safely. Each worker runs `initializer(*initargs)` once, before its first task; with one worker, nothing
    runs it. The pool is closed when the results are exhausted, or when the caller stops early or fails.
    """
    if num_workers <= 1:
        yield from map(function, tasks)
        return
    pool = multiprocessing.get_context("spawn").Pool(num_workers, initializer, initargs)
    try:
        yield from pool.imap(function, tasks, chunksize=1)
    except BaseException:  # an error, or the caller stopped early (GeneratorExit): stop the workers now
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()


class ClipDatasetBuild:
    """One build in progress: its writer, its summary and its clock.

    Args:
        output_dir (`str`): destination; must be empty or absent.
        features (`datasets.Features`): the columns of every row.
        summary (`BuildSummary`): the summary to fill (a source may have counted skips in it already).
    """

    def __init__(self, output_dir: str, features: Features, summary: BuildSummary):
        self.started = time.perf_counter()
        check_output_dir(output_dir)
        self.output_dir = output_dir
        self.summary = summary
        self.writer = ClipWriter(output_dir, features)

    def write(self, row: dict) -> None:
        """Write one clip row (audio as `{"path", "bytes"}`) and count it."""
        self.writer.write(row)
        self.summary.add_clip(row)

    def finish(self, options: dict, progress: bool) -> DatasetDict:
        """Save the dataset, `build_summary.json` (with `options`) and the card; print the summary if
        `progress`.

        Returns:
            `datasets.DatasetDict`: the saved dataset, memory-mapped from `output_dir`.
        """
        dataset = self.writer.finish()
        self.summary.counts["build wall seconds"] = round(time.perf_counter() - self.started, 1)
        self.summary.options = options
        self.summary.save(self.output_dir)
        write_card(self.output_dir, dataset, self.summary)
        if progress:
            print(self.summary.render())
        return dataset
