"""The summary maths every scenario reports: median and spread of a set of
samples, and of the per-round ratio of two sides measured in alternation."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

Summary = dict[str, float]


def summarize(samples: Sequence[float]) -> Summary:
    """Median with p10 and p90 as the spread. With fewer than two samples the
    spread collapses onto the one value (quantiles need two)."""
    if not samples:
        raise ValueError("no samples to summarize")
    if len(samples) == 1:
        only = float(samples[0])
        return {"median": only, "p10": only, "p90": only, "n": 1.0}
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    return {
        "median": float(statistics.median(samples)),
        "p10": deciles[0],
        "p90": deciles[-1],
        "n": float(len(samples)),
    }


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Round-by-round ratios: sample i of one side over sample i of the other,
    both taken in the same round, so that a slow moment of the machine
    weighs on both sides of a ratio rather than on one side of the medians."""
    if len(numerators) != len(denominators):
        raise ValueError("both sides need the same number of rounds")
    return [n / d if d else float("inf") for n, d in zip(numerators, denominators, strict=True)]


def shares(after: Sequence[float], before: Sequence[float]) -> list[float]:
    """Round-by-round (after - before) / after: the part of a figure that
    the `after` side adds to the `before` side's (negative when it takes
    away), from samples of both taken in the same round."""
    return [1 - ratio for ratio in ratios(before, after)]


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0..1) by linear interpolation between ranks."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
