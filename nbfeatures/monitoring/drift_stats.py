"""The numbers behind a drift verdict: per feature, counts that both engines compute alike.

A drift verdict needs few numbers: null counts, the counts of values per bin (numbers) or per
category, and, for Wasserstein, a grid of quantiles. The in-process engine (numpy over Arrow)
and the Spark engine (``drift_spark``) each compute these same ``NumericStats`` and
``CategoricalStats``, and the methods below turn them into one score per feature, so both
engines give the same verdict on the same rows.

Choices, written down because they change the numbers:

- Bins for numbers are the reference's deciles (``BINS`` quantile bins, repeated edges
  merged), fixed from the reference: a shifted current then piles up in the edge bins.
- Quantiles are the "inverted CDF" kind (the smallest value whose cumulative share reaches p),
  which is what Spark's ``percentile_approx`` returns when exact, so the engines agree.
- An empty bin or category counts as ``EPSILON`` of the rows in PSI, Jensen-Shannon and
  Hellinger, as Evidently does, so one empty bin does not make a score infinite.
- Wasserstein is the mean distance between the two quantile functions on a grid of
  ``GRID`` points, divided by the reference's standard deviation (by 1 when that is 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BINS = 10
GRID = 1001
EPSILON = 1e-4


@dataclass(frozen=True)
class Counts:
    """How many rows a data set had for a feature, and how many of them were null."""

    rows: int
    nulls: int

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def values(self) -> int:
        return self.rows - self.nulls


@dataclass(frozen=True)
class NumericStats:
    """A number feature in the reference and the current data: bins fixed by the reference."""

    reference: Counts
    current: Counts
    edges: tuple[float, ...]  # inner edges: bin i holds edges[i-1] <= v < edges[i]
    reference_bins: tuple[int, ...]
    current_bins: tuple[int, ...]
    reference_quantiles: tuple[float, ...] = ()  # on the GRID, only for wasserstein
    current_quantiles: tuple[float, ...] = ()
    reference_std: float = 0.0


@dataclass(frozen=True)
class CategoricalStats:
    """A category feature: the count of each category (the union of both sides)."""

    reference: Counts
    current: Counts
    categories: tuple[str, ...]
    reference_counts: tuple[int, ...]
    current_counts: tuple[int, ...]


FeatureStats = NumericStats | CategoricalStats


def decile_points() -> list[float]:
    return [i / BINS for i in range(1, BINS)]


def grid_points() -> list[float]:
    return [i / (GRID - 1) for i in range(GRID)]


def quantiles(values: np.ndarray, points: Sequence[float]) -> list[float]:
    """Inverted-CDF quantiles of non-null ``values`` (empty: none)."""
    if len(values) == 0:
        return []
    return [float(q) for q in np.quantile(values, list(points), method="inverted_cdf")]


def inner_edges(reference_deciles: Sequence[float]) -> tuple[float, ...]:
    return tuple(sorted(set(reference_deciles)))


def bin_counts(values: np.ndarray, edges: Sequence[float]) -> tuple[int, ...]:
    """Count per bin: a value's bin is how many inner edges are <= it."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
    return tuple(int(c) for c in np.bincount(index, minlength=len(edges) + 1))


def numeric_stats(
    reference: np.ndarray, current: np.ndarray, *, with_quantiles: bool
) -> NumericStats:
    """Stats of two float arrays (NaN for null)."""
    ref_values = reference[~np.isnan(reference)]
    cur_values = current[~np.isnan(current)]
    edges = inner_edges(quantiles(ref_values, decile_points()))
    return NumericStats(
        reference=Counts(len(reference), len(reference) - len(ref_values)),
        current=Counts(len(current), len(current) - len(cur_values)),
        edges=edges,
        reference_bins=bin_counts(ref_values, edges),
        current_bins=bin_counts(cur_values, edges),
        reference_quantiles=tuple(quantiles(ref_values, grid_points())) if with_quantiles else (),
        current_quantiles=tuple(quantiles(cur_values, grid_points())) if with_quantiles else (),
        reference_std=float(np.std(ref_values)) if len(ref_values) else 0.0,
    )


def categorical_stats(reference: Sequence[Any], current: Sequence[Any]) -> CategoricalStats:
    """Stats of two sequences of category texts (None for null)."""
    ref = _category_counts(reference)
    cur = _category_counts(current)
    categories = tuple(sorted(set(ref) | set(cur)))
    return CategoricalStats(
        reference=Counts(len(reference), len(reference) - sum(ref.values())),
        current=Counts(len(current), len(current) - sum(cur.values())),
        categories=categories,
        reference_counts=tuple(ref.get(c, 0) for c in categories),
        current_counts=tuple(cur.get(c, 0) for c in categories),
    )


def _category_counts(values: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


def _shares(counts: Sequence[int]) -> np.ndarray:
    array = np.asarray(counts, dtype=np.float64)
    total = array.sum()
    shares = array / total if total else np.zeros_like(array)
    return np.where(shares == 0, EPSILON, shares)


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    return float(np.sum((current - reference) * np.log(current / reference)))


def _jensenshannon(reference: np.ndarray, current: np.ndarray) -> float:
    # The distance (square root of the divergence), natural log, as scipy and Evidently.
    p, q = reference / reference.sum(), current / current.sum()
    m = (p + q) / 2
    divergence = (np.sum(p * np.log(p / m)) + np.sum(q * np.log(q / m))) / 2
    return float(math.sqrt(max(divergence, 0.0)))


def _hellinger(reference: np.ndarray, current: np.ndarray) -> float:
    p, q = reference / reference.sum(), current / current.sum()
    return float(math.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)) / math.sqrt(2))


_BINNED = {"psi": _psi, "jensenshannon": _jensenshannon, "hellinger": _hellinger}


def drift_score(stats: FeatureStats, method: str) -> float | None:
    """The method's score, higher is more drift; ``None`` when a side has no values."""
    if stats.reference.values == 0 or stats.current.values == 0:
        return None
    if isinstance(stats, CategoricalStats):
        ref, cur = _shares(stats.reference_counts), _shares(stats.current_counts)
        return _BINNED[method](ref, cur)
    if method == "wasserstein":
        distance = float(
            np.mean(np.abs(np.subtract(stats.reference_quantiles, stats.current_quantiles)))
        )
        return distance / (stats.reference_std or 1.0)
    return _BINNED[method](_shares(stats.reference_bins), _shares(stats.current_bins))
