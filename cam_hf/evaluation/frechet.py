"""The Frechet distance between two sets of embeddings, computed so that it stays real and stable.

    FD = ||mu_a - mu_b||^2 + tr(C_a) + tr(C_b) - 2 tr( (C_a C_b)^{1/2} )

`(C_a C_b)^{1/2}` is where the usual implementations get into trouble: `C_a C_b` is not symmetric, so
`scipy.linalg.sqrtm` works in complex arithmetic and returns imaginary parts (fadtk and pytorch-fid then retry
with 1e-6 added to the diagonals and reject imaginary parts above 1e-3). Only the trace is needed, and
`C_a C_b` is similar to the symmetric positive semi-definite `C_a^{1/2} C_b C_a^{1/2}`, whose eigenvalues are
the same. So here: `C_a^{1/2}` from a symmetric eigendecomposition (eigenvalues clipped at 0), then the
eigenvalues of the symmetric product, clipped at 0, square-rooted and summed. Everything is real and in
float64; a rank-deficient covariance gives zero eigenvalues, not NaN.

Bias: the distance estimated from N samples is biased upward by roughly `c / N` (Chong & Forsyth, "Effectively
Unbiased FID and Inception Score and where to find them", CVPR 2020). `frechet_distance_inf` fits FD against
1/N over subsets and reports the intercept, FD-infinity, as fadtk's `score_inf` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class GaussianStatistics:
    """
    Mean and covariance of a set of embeddings: what the Frechet distance compares.

    Args:
        mean (`np.ndarray` of shape `(dim,)`): float64.
        covariance (`np.ndarray` of shape `(dim, dim)`): float64, the unbiased (N - 1) estimate.
        num_samples (`int`): the number of embedding vectors they were computed from.
    """

    mean: np.ndarray
    covariance: np.ndarray
    num_samples: int

    @property
    def dim(self) -> int:
        return self.mean.shape[0]


@dataclass
class FrechetInfResult:
    """
    FD-infinity: the intercept of a straight-line fit of FD against 1/N.

    Args:
        score (`float`): the intercept (the FD an infinitely large set would get).
        slope (`float`): the fitted slope, FD units times samples: the bias at N is about `slope / N`.
        r2 (`float`): coefficient of determination of the fit; far below 1 means the points do not lie on a
            line and the extrapolation should not be trusted.
        points (`list[tuple[int, float]]`): the `(N, FD)` pairs the line was fitted to.
    """

    score: float
    slope: float
    r2: float
    points: list[tuple[int, float]] = field(default_factory=list)


def check_embeddings(embeddings, name: str = "embeddings", min_samples: int | None = None) -> np.ndarray:
    """
    Validate a set of embedding vectors and return it as a float64 array.

    Args:
        embeddings (array-like of shape `(num_samples, dim)`): one embedding vector per row.
        name (`str`): how the caller's argument is called, for error messages.
        min_samples (`int`, *optional*): the fewest rows accepted; defaults to `dim + 1`, the fewest that give
            a full-rank covariance (with fewer, the covariance is singular and the distance is dominated by
            the missing directions).

    Returns:
        `np.ndarray` of shape `(num_samples, dim)`, float64.

    Raises:
        `ValueError`: not 2-D, empty, non-finite, or fewer rows than `min_samples`.
    """
    if hasattr(embeddings, "detach"):
        embeddings = embeddings.detach().cpu().numpy()
    array = np.asarray(embeddings, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array (num_samples, dim), one embedding vector per row; got shape "
            f"{array.shape}. Stack per-clip embeddings with np.concatenate(..., axis=0)."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"`{name}` is empty (shape {array.shape}): pass at least one embedding vector.")
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` contains NaN or infinite values: check the audio or the embedding model.")
    needed = array.shape[1] + 1 if min_samples is None else min_samples
    if array.shape[0] < needed:
        raise ValueError(
            f"`{name}` has {array.shape[0]} vectors of dimension {array.shape[1]}: at least {needed} are "
            "needed for a full-rank covariance. Use more (or longer) samples, a window with more frames, or "
            "a lower-dimensional embedding."
        )
    return array


def embedding_statistics(
    embeddings, name: str = "embeddings", min_samples: int | None = None
) -> GaussianStatistics:
    """
    Mean and (N - 1)-normalised covariance of a set of embeddings.

    Args:
        embeddings (array-like of shape `(num_samples, dim)`): checked by `check_embeddings`.
        name (`str`): the argument's name, for error messages.
        min_samples (`int`, *optional*): see `check_embeddings`.

    Returns:
        [`GaussianStatistics`].
    """
    array = check_embeddings(embeddings, name, min_samples)
    return GaussianStatistics(
        array.mean(axis=0), np.cov(array, rowvar=False).reshape(array.shape[1], -1), len(array)
    )


class StatisticsAccumulator:
    """
    Running mean and covariance of embeddings that arrive in batches, without keeping them: for reference sets
    too large to hold in memory. Sums are kept in float64 around a shift (the first batch's mean), so the
    covariance does not lose precision when the mean is large against the spread.
    """

    def __init__(self):
        self.count = 0
        self._shift = None
        self._sum = None
        self._outer = None

    def update(self, embeddings, name: str = "embeddings") -> None:
        """Add a batch of embedding vectors, array-like of shape `(n, dim)` (n may be 0)."""
        if hasattr(embeddings, "detach"):
            embeddings = embeddings.detach().cpu().numpy()
        array = np.asarray(embeddings, dtype=np.float64)
        if array.ndim != 2:
            raise ValueError(f"`{name}` must be a 2-D array (num_samples, dim), got shape {array.shape}.")
        if array.shape[0] == 0:
            return
        if not np.isfinite(array).all():
            raise ValueError(
                f"`{name}` contains NaN or infinite values: check the audio or the embedding model."
            )
        if self._shift is None:
            self._shift = array.mean(axis=0)
            self._sum = np.zeros_like(self._shift)
            self._outer = np.zeros((array.shape[1], array.shape[1]))
        elif array.shape[1] != self._shift.shape[0]:
            raise ValueError(
                f"`{name}` has dimension {array.shape[1]}, earlier batches {self._shift.shape[0]}: use one "
                "embedding model for the whole set."
            )
        centred = array - self._shift
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred
        self.count += array.shape[0]

    def statistics(self, name: str = "embeddings", min_samples: int | None = None) -> GaussianStatistics:
        """The [`GaussianStatistics`] of everything added; `min_samples` as in `check_embeddings`."""
        if self.count == 0:
            raise ValueError(f"`{name}` is empty: no embedding vectors were added.")
        dim = self._shift.shape[0]
        needed = dim + 1 if min_samples is None else min_samples
        if self.count < needed:
            raise ValueError(
                f"`{name}` has {self.count} vectors of dimension {dim}: at least {needed} are needed for a "
                "full-rank covariance. Use more (or longer) audio, or a lower-dimensional embedding."
            )
        mean_centred = self._sum / self.count
        covariance = (self._outer - self.count * np.outer(mean_centred, mean_centred)) / (self.count - 1)
        return GaussianStatistics(self._shift + mean_centred, (covariance + covariance.T) / 2, self.count)


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """
    The symmetric square root of a symmetric positive semi-definite matrix, from its eigendecomposition.

    Eigenvalues below zero (round-off on a singular or near-singular covariance) are clipped to zero, so the
    result is always real.

    Args:
        matrix (`np.ndarray` of shape `(dim, dim)`): symmetric PSD (symmetrised here against round-off).

    Returns:
        `np.ndarray` of shape `(dim, dim)`, float64, with `result @ result ~= matrix`.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def trace_sqrt_product(covariance_a: np.ndarray, covariance_b: np.ndarray) -> float:
    """
    `tr((C_a C_b)^{1/2})` through the similar symmetric matrix `C_a^{1/2} C_b C_a^{1/2}` (see the module
    docstring).

    Args:
        covariance_a (`np.ndarray` of shape `(dim, dim)`): symmetric PSD.
        covariance_b (`np.ndarray` of shape `(dim, dim)`): symmetric PSD.

    Returns:
        `float`, >= 0.
    """
    root_a = sqrtm_psd(covariance_a)
    product = root_a @ np.asarray(covariance_b, dtype=np.float64) @ root_a
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(statistics_a: GaussianStatistics, statistics_b: GaussianStatistics) -> float:
    """
    The Frechet distance between two Gaussians (the squared 2-Wasserstein distance).

    Args:
        statistics_a ([`GaussianStatistics`]): e.g. of the generated set.
        statistics_b ([`GaussianStatistics`]): e.g. of the reference set.

    Returns:
        `float`, >= 0 (a tiny negative value from round-off is returned as 0).

    Raises:
        `ValueError`: the two have different dimensions.
    """
    if statistics_a.dim != statistics_b.dim:
        raise ValueError(
            f"The two sets have embeddings of different dimensions ({statistics_a.dim} and "
            f"{statistics_b.dim}): compute both with the same embedding model."
        )
    difference = statistics_a.mean - statistics_b.mean
    distance = (
        difference @ difference
        + np.trace(statistics_a.covariance)
        + np.trace(statistics_b.covariance)
        - 2 * trace_sqrt_product(statistics_a.covariance, statistics_b.covariance)
    )
    return max(float(distance), 0.0)


def frechet_distance_from_embeddings(embeddings_a, embeddings_b) -> float:
    """
    The Frechet distance between the Gaussian fits of two sets of embeddings.

    Args:
        embeddings_a (array-like of shape `(num_a, dim)`): e.g. the generated set.
        embeddings_b (array-like of shape `(num_b, dim)`): e.g. the reference set.

    Returns:
        `float`.
    """
    statistics_a = embedding_statistics(embeddings_a, "embeddings_a")
    statistics_b = embedding_statistics(embeddings_b, "embeddings_b")
    return frechet_distance(statistics_a, statistics_b)


def frechet_distance_inf(
    embeddings,
    reference: GaussianStatistics,
    num_steps: int = 25,
    min_samples: int | None = None,
    seed: int = 0,
) -> FrechetInfResult:
    """
    FD-infinity (Chong & Forsyth, 2020): the Frechet distance extrapolated to an infinitely large set.

    FD is computed for `num_steps` subset sizes N evenly spaced from `min_samples` to all of `embeddings`
    (subsets drawn without replacement, so the largest is the whole set), and a line `FD = score + slope / N`
    is fitted by least squares. fadtk's `score_inf` does the same, drawing with replacement.

    Args:
        embeddings (array-like of shape `(num_samples, dim)`): the evaluated set.
        reference ([`GaussianStatistics`]): the reference set's statistics (kept fixed).
        num_steps (`int`, defaults to 25): subset sizes.
        min_samples (`int`, *optional*): smallest subset; defaults to `max(dim + 1, num_samples // 5)`.
        seed (`int`, defaults to 0): seed of the subset draws.

    Returns:
        [`FrechetInfResult`].
    """
    array = check_embeddings(embeddings, "embeddings")
    num_samples, dim = array.shape
    if reference.dim != dim:
        raise ValueError(
            f"`embeddings` have dimension {dim} but the reference statistics {reference.dim}: compute both "
            "with the same embedding model."
        )
    smallest = max(dim + 1, num_samples // 5) if min_samples is None else min_samples
    if num_steps < 2:
        raise ValueError(f"`num_steps` must be at least 2 to fit a line, got {num_steps}.")
    if not dim + 1 <= smallest < num_samples:
        raise ValueError(
            f"FD-infinity needs subsets from {dim + 1} vectors (the dimension + 1) up to the whole set; got "
            f"min_samples={smallest} with {num_samples} vectors. Use more samples or pass a smaller "
            "`min_samples`."
        )
    sizes = np.unique(np.linspace(smallest, num_samples, num_steps).astype(int))
    rng = np.random.default_rng(seed)
    points = []
    for size in sizes:
        subset = array[rng.choice(num_samples, size=size, replace=False)]
        points.append(
            (int(size), frechet_distance(embedding_statistics(subset, min_samples=dim + 1), reference))
        )
    inverse_n = 1.0 / np.array([n for n, _ in points], dtype=np.float64)
    distances = np.array([d for _, d in points])
    slope, intercept = np.polyfit(inverse_n, distances, 1)
    residual = distances - (slope * inverse_n + intercept)
    total = ((distances - distances.mean()) ** 2).sum()
    r2 = 1.0 - (residual**2).sum() / total if total > 0 else 1.0
    return FrechetInfResult(score=float(intercept), slope=float(slope), r2=float(r2), points=points)


__all__ = [
    "FrechetInfResult",
    "GaussianStatistics",
    "StatisticsAccumulator",
    "check_embeddings",
    "embedding_statistics",
    "frechet_distance",
    "frechet_distance_from_embeddings",
    "frechet_distance_inf",
    "sqrtm_psd",
    "trace_sqrt_product",
]
