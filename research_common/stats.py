"""Research statistics for the compares (CONTRACT §11).

Pure functions over plain Python numbers, standard library only (the
normal distribution is `statistics.NormalDist`): experiments_svc imports
this and must stay small in memory. The one exception is PBO's twelve
thousand splits, vectorised with numpy imported inside the function, which
only tracking_svc calls (MLflow has loaded numpy there already). A figure
that the data cannot support raises StatisticUndefined, whose text the
service returns as the `reason`; a caller's mistake (unequal rows, a negative
count) is a plain ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from itertools import combinations
from statistics import NormalDist
from typing import Any

from research_common.diff import MAXIMIZE, MINIMIZE, Direction

# The Euler-Mascheroni constant gamma.
EULER_GAMMA = 0.5772156649015329

_STANDARD_NORMAL = NormalDist()
# CSCV needs two halves of at least two blocks each.
_MIN_BLOCKS = 4


class StatisticUndefined(ValueError):
    """A figure that cannot be computed from the data given; str(error) is the
    human-readable reason the service returns as `reason`. Bad data, never
    bad input."""


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _scaled_mean(terms: Sequence[float], n: int) -> tuple[float, int]:
    """fsum(terms) / n as (m, e), the mean being m * 2**e. Scaling by a power
    of two is exact (short of underflow, for terms some 2**1000 below the
    largest), and it keeps math.fsum from raising OverflowError on finite
    values near the float limit (1e308 + 1e308)."""
    _, exponent = math.frexp(max(map(abs, terms)))
    return math.fsum(math.ldexp(t, -exponent) for t in terms) / n, exponent


def _unscale(value: float, exponent: int) -> float:
    try:
        return math.ldexp(value, exponent)
    except OverflowError:  # a figure beyond the float range is infinite, not an error
        return math.copysign(math.inf, value)


@dataclass(frozen=True, slots=True)
class FoldSummary:
    """One run's metric over its folds (steps)."""

    folds: int  # finite values used
    mean: float
    std: float  # sample standard deviation (n - 1)
    min: float
    max: float
    worst: float  # min when maximising, max when minimising
    positive_share: float  # share of folds above 0
    skipped: int  # NaN or ±inf values left out


def fold_summary(values: Sequence[float], direction: Direction) -> FoldSummary | None:
    """Summary of one run's per-step values; None with fewer than 2 finite ones.

    mean = Σx / n, std = √(Σ(x - mean)² / (n - 1)) (the sample standard
    deviation, e.g. Rice, "Mathematical Statistics and Data Analysis", 3rd ed.,
    §7.3.1), positive_share = #{x > 0} / n, over the n finite values.
    """
    finite = [v for v in values if math.isfinite(v)]
    n = len(finite)
    if n < 2:
        return None
    mean, exponent = _scaled_mean(finite, n)
    # Deviations in the same scale: every |x| < 1 there, so squares cannot overflow.
    deviations = [math.ldexp(v, -exponent) - mean for v in finite]
    std = math.sqrt(math.fsum(d * d for d in deviations) / (n - 1))
    low, high = min(finite), max(finite)
    return FoldSummary(
        folds=n,
        mean=_unscale(mean, exponent),
        std=_unscale(std, exponent),
        min=low,
        max=high,
        worst=low if direction == MAXIMIZE else high,
        positive_share=sum(1 for v in finite if v > 0) / n,
        skipped=len(values) - n,
    )


@dataclass(frozen=True, slots=True)
class Paired:
    """One run against the baseline, step by step."""

    n: int  # steps both runs have, finite in both
    wins: int
    losses: int
    ties: int
    mean_diff: float | None  # mean(other - baseline), not direction-adjusted
    sign_test_p: float | None


def paired(
    baseline: Mapping[int, float], other: Mapping[int, float], direction: Direction
) -> Paired:
    """Wins, losses and ties of `other` against `baseline` over the steps both
    have with finite values; mean_diff = Σ(o - b) / n and the sign test of
    wins against losses (ties left out, see sign_test_p). Both None when n = 0.
    """
    steps = sorted(baseline.keys() & other.keys())
    pairs = [(other[s], baseline[s]) for s in steps]
    pairs = [(o, b) for o, b in pairs if math.isfinite(o) and math.isfinite(b)]
    wins = sum(1 for o, b in pairs if (o < b if direction == MINIMIZE else o > b))
    losses = sum(1 for o, b in pairs if (o > b if direction == MINIMIZE else o < b))
    n = len(pairs)
    if n == 0:
        return Paired(0, 0, 0, 0, None, None)
    # Σo - Σb summed exactly: a difference of two finite values may itself overflow.
    mean, exponent = _scaled_mean([t for o, b in pairs for t in (o, -b)], n)
    return Paired(
        n, wins, losses, n - wins - losses, _unscale(mean, exponent), sign_test_p(wins, losses)
    )


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test (binomial, p = 1/2, ties already left out):

    p = min(1, 2 · Σ_{k=0}^{min(w, l)} C(w + l, k) / 2^(w + l)); 1.0 when w + l = 0.

    Conover, "Practical Nonparametric Statistics", 3rd ed. (1999), §3.4. The
    sum is taken in integers and divided once, so it stays exact for
    thousands of steps (a float sum of tiny terms would underflow or drift).
    """
    if wins < 0 or losses < 0:
        raise ValueError(f"wins and losses must be counts, got {wins} and {losses}")
    n = wins + losses
    # term = C(n, k), each from the last by an exact integer division: the
    # same numbers as math.comb(n, k), without recomputing each from scratch.
    tail, term = 0, 1
    for k in range(min(wins, losses) + 1):
        tail += term
        term = term * (n - k) // (k + 1)
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


def blocks(values: Sequence[float], max_blocks: int = 16) -> list[float]:
    """Contiguous blocks of near-equal size, a block's value the mean of its steps.

    With len(values) <= max_blocks every value is its own block; otherwise
    there are max_blocks groups, the first len % max_blocks of them one step
    longer (numpy.array_split's convention).
    """
    if max_blocks < 1:
        raise ValueError(f"max_blocks must be at least 1, got {max_blocks}")
    if len(values) <= max_blocks:
        return [float(v) for v in values]
    size, longer = divmod(len(values), max_blocks)
    result: list[float] = []
    start = 0
    for index in range(max_blocks):
        end = start + size + (1 if index < longer else 0)
        mean, exponent = _scaled_mean(values[start:end], end - start)
        result.append(_unscale(mean, exponent))
        start = end
    return result


@dataclass(frozen=True, slots=True)
class Overfit:
    """The probability of backtest overfitting and what it rests on."""

    blocks: int  # S, after merging and dropping
    combinations: int  # C(S, S/2)
    pbo: float


def pbo(matrix: Sequence[Sequence[float]], direction: Direction, max_blocks: int = 16) -> Overfit:
    """Probability of backtest overfitting by combinatorially symmetric
    cross-validation (Bailey, Borwein, López de Prado and Zhu 2017, "The
    probability of backtest overfitting", J. Computational Finance 20(4)).

    matrix: one row per run (at least 2), one column per shared step, finite
    values. Each row becomes blocks(row, max_blocks); an odd count drops the
    earliest block; S = the blocks left, at least 4. For each of the C(S, S/2)
    sets J of S/2 blocks, the run n* best in sample (mean over J, ties to the
    earliest row) has out-of-sample (mean over the other blocks) rank r among
    the N runs, 1 = worst, ties at their average rank; ω = r / (N + 1),
    λ = ln(ω / (1 - ω)), and PBO = #{λ ≤ 0} / C(S, S/2).

    Means are compared on a grid of 2^-58 of the largest |block mean|
    (_count_overfitted): means closer than that rank as ties.
    """
    if len(matrix) < 2:
        raise StatisticUndefined(f"fewer than 2 runs: {_plural(len(matrix), 'run')}")
    steps = len(matrix[0])
    if any(len(row) != steps for row in matrix):
        raise ValueError("every run must have a value for the same steps")
    if not all(math.isfinite(v) for row in matrix for v in row):
        raise ValueError("every value must be finite")
    rows = [blocks(row, max_blocks) for row in matrix]
    if len(rows[0]) % 2:
        rows = [row[1:] for row in rows]
    count = len(rows[0])
    if count < _MIN_BLOCKS:
        raise StatisticUndefined(
            f"fewer than {_MIN_BLOCKS} blocks: {_plural(steps, 'step')} shared by all "
            f"{len(matrix)} runs"
        )
    overfitted = _count_overfitted(rows, -1.0 if direction == MINIMIZE else 1.0)
    total = math.comb(count, count // 2)
    return Overfit(blocks=count, combinations=total, pbo=overfitted / total)


@cache
def _halves(count: int) -> Any:
    """The C(count, count/2) / 2 in-sample halves that hold block 0, as a
    0/1 matrix (one row per half); each one's complement is the other half
    of its split."""
    import numpy as np

    chosen = [(0, *rest) for rest in combinations(range(1, count), count // 2 - 1)]
    mask = np.zeros((len(chosen), count), dtype=np.int64)
    for row, columns in enumerate(chosen):
        mask[row, list(columns)] = 1
    mask.flags.writeable = False
    return mask


def _count_overfitted(rows: Sequence[Sequence[float]], sign: float) -> int:
    """The splits whose in-sample best run ranks at or below the median out
    of sample, over every split of the blocks into halves.

    Vectorised with numpy (loaded lazily: only tracking_svc, where MLflow has
    loaded it anyway, computes PBO): 10 runs x 16 blocks take about 2 ms,
    against 23-31 ms for the same splits in Python. The block values are put on
    one integer grid, 2^-58 of the largest |value| (exact for every value
    within a factor 64 of it), so that sums are exact integers: equal means
    tie whatever the order of addition, and as both halves have S/2 blocks,
    sums rank as means do.
    """
    import numpy as np

    values = np.asarray(rows, dtype=np.float64) * sign
    largest = float(np.max(np.abs(values)))
    grid = math.ldexp(1.0, 58 - math.frexp(largest)[1]) if largest > 0 else 1.0
    scaled = np.rint(values * grid).astype(np.int64)  # |scaled| <= 2^58
    halves = _halves(scaled.shape[1])
    # Runs x halves: each comparison below runs along contiguous memory.
    inside = scaled @ halves.T
    outside = scaled.sum(axis=1)[:, None] - inside
    runs = scaled.shape[0]
    columns = np.arange(halves.shape[0])

    def overfitted(in_sample: Any, out_of_sample: Any) -> int:
        best = in_sample.argmax(axis=0)  # the first maximum: the earliest run
        chosen = out_of_sample[best, columns]
        below = np.count_nonzero(out_of_sample < chosen, axis=0)
        equal = np.count_nonzero(out_of_sample == chosen, axis=0)
        # below + (below + equal) = 2r - 1 (r the average rank, 1 = worst),
        # and λ ≤ 0 iff ω = r / (N + 1) ≤ 1/2 iff 2r ≤ N + 1.
        return int(np.count_nonzero(2 * below + equal <= runs))

    return overfitted(inside, outside) + overfitted(outside, inside)


def expected_max_sharpe(trials: int, variance: float) -> float:
    """The expected maximum Sharpe ratio of N unskilled trials:

    SR0 = √V · ((1 - gamma) Φ⁻¹(1 - 1/N) + gamma Φ⁻¹(1 - 1/(N e)))

    (Bailey and López de Prado 2014, "The deflated Sharpe ratio", J. Portfolio
    Management 40(5), the SR0 of its DSR equation, from the expected maximum
    of N standard normals); V is the variance of the trials' Sharpe ratios,
    gamma the Euler-Mascheroni constant.
    """
    if trials < 2:
        raise StatisticUndefined(f"fewer than 2 trials: {_plural(trials, 'trial')}")
    if not math.isfinite(variance) or variance < 0:
        raise StatisticUndefined(f"the Sharpe ratios' variance is {variance}")
    quantile = _STANDARD_NORMAL.inv_cdf
    expected = (1 - EULER_GAMMA) * quantile(1 - 1 / trials) + EULER_GAMMA * quantile(
        1 - 1 / (trials * math.e)
    )
    return math.sqrt(variance) * expected


def deflated_sharpe(
    sharpe: float,
    expected_max: float,
    observations: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """The deflated Sharpe ratio, the probability that the true Sharpe ratio
    exceeds SR0 (Bailey and López de Prado 2014, as above):

    DSR = Φ((SR - SR0) √(T - 1) / √(1 - skew·SR + (kurtosis - 1)/4 · SR²))

    with SR and SR0 per observation, T the number of observations, and the
    returns' skewness and kurtosis (not excess kurtosis: 3 for normal returns).
    """
    inputs = {"sharpe": sharpe, "expected_max": expected_max, "skew": skew, "kurtosis": kurtosis}
    for name, value in inputs.items():
        if not math.isfinite(value):
            raise StatisticUndefined(f"{name} is {value}")
    if not (math.isfinite(observations) and observations > 1):
        raise StatisticUndefined(f"observations must be more than 1, got {observations}")
    # sharpe * sharpe, not sharpe**2: a float power raises OverflowError.
    radicand = 1 - skew * sharpe + (kurtosis - 1) / 4 * (sharpe * sharpe)
    if not radicand > 0:  # also NaN, from ∞ - ∞ with extreme inputs
        raise StatisticUndefined(
            f"1 - skew·SR + (kurtosis - 1)/4·SR² is {radicand:.6g}, not positive"
        )
    z = (sharpe - expected_max) * math.sqrt(observations - 1) / math.sqrt(radicand)
    if math.isnan(z):  # ∞ / ∞ with extreme inputs
        raise StatisticUndefined("the deflated Sharpe ratio's z-score overflows")
    return _STANDARD_NORMAL.cdf(z)
