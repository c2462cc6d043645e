"""Error accumulation, measured: FAD of generated audio by position, against real audio cut the same way.

A long generation is cut into consecutive windows of `window_frames` latent frames (window w covers frames
`[w * window_frames, (w + 1) * window_frames)`; a last partial window is dropped). Window w of every generated
sample forms one set; its FAD against the reference says how good the audio is at that position. Real clips
are cut into windows of the same duration, so both sides are embedded alike (same edge effects, same frames
per window).

FAD_acc = FAD(last window) - FAD(first window): the degradation over the generation, in the embedding's units.
Also reported: their ratio, and the least-squares slope of FAD against position (per Backbone context), which
uses every window and is less noisy than two end points.

The floor: FAD of real windows that are not in the reference set (held out), drawn as a set of the same size
as the generated set, against the same reference. Small sets score far from 0 even when they are real (FAD is
biased upward at small N), so a generated FAD is read against its floor, never against 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .frechet import (
    GaussianStatistics,
    StatisticsAccumulator,
    embedding_statistics,
    frechet_distance,
    frechet_distance_inf,
)


def window_bounds(num_frames: int, window_frames: int) -> list[tuple[int, int]]:
    """
    Consecutive, non-overlapping windows by position.

    Args:
        num_frames (`int`): length of the sequence.
        window_frames (`int`): length of a window.

    Returns:
        `list[tuple[int, int]]`: `(start, end)` frame indices, `num_frames // window_frames` of them.
    """
    if window_frames < 1:
        raise ValueError(f"`window_frames` must be a positive integer, got {window_frames}.")
    if num_frames < window_frames:
        raise ValueError(
            f"`num_frames` ({num_frames}) is shorter than one window ({window_frames} frames): generate "
            "longer samples or use shorter windows."
        )
    return [
        (start, start + window_frames) for start in range(0, num_frames - window_frames + 1, window_frames)
    ]


@dataclass
class RealWindows:
    """
    Embeddings of real audio cut into windows: the reference set (kept as statistics) and the held-out windows
    (kept whole, for floors and FAD-infinity).

    Args:
        reference ([`GaussianStatistics`]): statistics of every embedding frame of the reference windows.
        held_out (`list[np.ndarray]`): one `(frames, dim)` array per held-out window.
        num_reference_windows (`int`): how many windows the reference statistics pool.
    """

    reference: GaussianStatistics
    held_out: list[np.ndarray] = field(default_factory=list)
    num_reference_windows: int = 0

    @classmethod
    def build(
        cls,
        clips: Sequence[np.ndarray],
        held_out: Sequence[bool],
        windows_of_clip: Callable[[int, np.ndarray], list[np.ndarray]],
    ) -> RealWindows:
        """
        Embed real clips window by window.

        Args:
            clips (`Sequence[np.ndarray]`): the clips.
            held_out (`Sequence[bool]`): for each clip, whether it is held out (floors) or in the reference
                set.
            windows_of_clip (`Callable`): `(clip_index, clip) -> [(frames, dim) per window]`, e.g. cut the
                audio then embed each window, or encode to latents then cut.
        """
        accumulator, pool, count = StatisticsAccumulator(), [], 0
        for index, (clip, is_held_out) in enumerate(zip(clips, held_out, strict=True)):
            windows = windows_of_clip(index, clip)
            if is_held_out:
                pool.extend(windows)
            else:
                for window in windows:
                    accumulator.update(window, "reference windows")
                count += len(windows)
        if count == 0:
            raise ValueError(
                "No reference window: every reference clip is shorter than one window or held out. Use "
                "longer clips, more clips, or shorter windows."
            )
        return cls(accumulator.statistics("reference windows"), pool, count)

    def floor(self, num_windows: int, num_sets: int = 2, seed: int = 0) -> dict:
        """
        FAD of held-out real windows against the reference, for sets of `num_windows` windows.

        Args:
            num_windows (`int`): windows in the generated set this floor stands beside.
            num_sets (`int`, defaults to 2): disjoint held-out sets to draw (fewer if the pool is too small);
                their spread shows how much a set of this size varies by chance.
            seed (`int`, defaults to 0): seed of the draws.

        Returns:
            `dict` with `fad` (the mean over sets), `values`, `num_windows` (per set; smaller than asked only
            when the held-out pool is smaller, then `same_size` is False and the floor is biased upward).
        """
        if not self.held_out:
            raise ValueError("No held-out real windows: hold out some reference clips to measure the floor.")
        per_set = min(num_windows, len(self.held_out))
        sets = max(1, min(num_sets, len(self.held_out) // per_set))
        order = np.random.default_rng(seed).permutation(len(self.held_out))
        values = []
        for index in range(sets):
            chosen = order[index * per_set : (index + 1) * per_set]
            statistics = embedding_statistics(
                np.concatenate([self.held_out[i] for i in chosen]), "held-out windows"
            )
            values.append(frechet_distance(statistics, self.reference))
        return {
            "fad": float(np.mean(values)),
            "values": values,
            "num_windows": per_set,
            "same_size": per_set == num_windows,
        }


def fad_of_sets(
    sets: Sequence[np.ndarray], reference: GaussianStatistics, fad_inf: bool = False, seed: int = 0
) -> dict:
    """
    FAD of each of several sets (e.g. one per seed set) against the reference, with their mean and spread.

    Args:
        sets (`Sequence[np.ndarray]`): each `(vectors, dim)`.
        reference ([`GaussianStatistics`]).
        fad_inf (`bool`, defaults to False): also FAD-infinity of each set (see `frechet_distance_inf`).
        seed (`int`, defaults to 0): seed of FAD-infinity's subsets.

    Returns:
        `dict` with `fad` (mean over sets), `values`, `spread` (max - min), `num_vectors` (per set), and with
        `fad_inf`: `fad_inf` (mean), `fad_inf_values`, `fad_inf_r2`.
    """
    values = [
        frechet_distance(embedding_statistics(vectors, "generated embeddings"), reference) for vectors in sets
    ]
    result = {
        "fad": float(np.mean(values)),
        "values": values,
        "spread": float(np.max(values) - np.min(values)),
        "num_vectors": [int(len(vectors)) for vectors in sets],
    }
    if fad_inf:
        fits = [frechet_distance_inf(vectors, reference, seed=seed) for vectors in sets]
        result.update(
            fad_inf=float(np.mean([fit.score for fit in fits])),
            fad_inf_values=[fit.score for fit in fits],
            fad_inf_r2=[fit.r2 for fit in fits],
        )
    return result


def accumulation_summary(window_fads: Sequence[float], window_positions: Sequence[float]) -> dict:
    """
    How FAD changes from the first window to the last.

    Args:
        window_fads (`Sequence[float]`): FAD of each window, in order.
        window_positions (`Sequence[float]`): each window's centre, in Backbone contexts.

    Returns:
        `dict`: `fad_acc` (last - first), `fad_ratio` (last / first), `fad_slope_per_context` (least squares;
        0 with a single window).
    """
    fads = np.asarray(window_fads, dtype=np.float64)
    slope = (
        float(np.polyfit(np.asarray(window_positions, dtype=np.float64), fads, 1)[0])
        if len(fads) > 1
        else 0.0
    )
    return {
        "fad_acc": float(fads[-1] - fads[0]),
        "fad_ratio": float(fads[-1] / fads[0]) if fads[0] > 0 else None,
        "fad_slope_per_context": slope,
    }


def latent_window_statistics(
    latents: np.ndarray,
    bounds: Sequence[tuple[int, int]],
    reference_mean: np.ndarray | None = None,
    reference_std: np.ndarray | None = None,
) -> list[dict]:
    """
    Mean and spread of generated latents per window: drift shows here before it shows in FAD.

    Args:
        latents (`np.ndarray` of shape `(num_samples, num_frames, latent_dim)`): generated (normalised)
            latents.
        bounds (`Sequence[tuple[int, int]]`): the windows, from `window_bounds`.
        reference_mean (`np.ndarray` of shape `(latent_dim,)`, *optional*): per-dimension mean of real
            latents.
        reference_std (`np.ndarray` of shape `(latent_dim,)`, *optional*): their per-dimension standard
            deviation.

    Returns:
        `list[dict]`, one per window: `mean` and `std` over every value in the window; with the reference,
        also `mean_shift` (RMS over dimensions of the per-dimension mean minus the real one, in latent units)
        and `std_ratio` (mean over dimensions of the per-dimension std over the real one; 1 is the real
        spread).
    """
    statistics = []
    for start, end in bounds:
        values = np.asarray(latents[:, start:end], dtype=np.float64).reshape(-1, latents.shape[-1])
        entry = {"mean": float(values.mean()), "std": float(values.std())}
        if reference_mean is not None and reference_std is not None:
            entry["mean_shift"] = float(np.sqrt(np.mean((values.mean(axis=0) - reference_mean) ** 2)))
            entry["std_ratio"] = float(np.mean(values.std(axis=0) / np.maximum(reference_std, 1e-8)))
        statistics.append(entry)
    return statistics


__all__ = [
    "RealWindows",
    "accumulation_summary",
    "fad_of_sets",
    "latent_window_statistics",
    "window_bounds",
]
