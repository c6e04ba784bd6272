"""The benchmark harness's own logic (no timing): the summary and ratio
maths, and the alternation order of two measured sides (and the rotation
of more)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from bench.alternate import alternate, rotate
from bench.report import percent_text
from bench.stats import percentile, ratios, shares, summarize


def test_summary_is_median_with_p10_p90() -> None:
    summary = summarize([float(n) for n in range(1, 12)])  # 1..11
    assert summary == {"median": 6.0, "p10": 2.0, "p90": 10.0, "n": 11.0}


def test_summary_of_one_sample_has_no_spread() -> None:
    assert summarize([3.5]) == {"median": 3.5, "p10": 3.5, "p90": 3.5, "n": 1.0}


def test_summary_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        summarize([])


def test_ratios_pair_rounds() -> None:
    assert ratios([2.0, 9.0], [1.0, 3.0]) == [2.0, 3.0]
    with pytest.raises(ValueError, match="same number"):
        ratios([1.0], [1.0, 2.0])


def test_shares_are_what_after_adds_over_after() -> None:
    # (after - before) / after, round by round; negative when after is less.
    assert shares([10.0, 4.0], [8.0, 5.0]) == pytest.approx([0.2, -0.25])
    with pytest.raises(ValueError, match="same number"):
        shares([1.0], [1.0, 2.0])


def test_percent_text() -> None:
    summary = {"median": 0.123, "p10": -0.05, "p90": 0.5, "n": 10.0}
    assert percent_text(summary) == "12 % (p10 -5 %-p90 50 %, n=10)"


def test_percentile_interpolates() -> None:
    assert percentile([0.0, 10.0], 0.5) == 5.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.0) == 1.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 1.0) == 4.0


async def test_alternation_swaps_order_and_skips_warmup() -> None:
    calls: list[str] = []

    async def ours() -> float:
        calls.append("ours")
        return 2.0 * len(calls)

    async def theirs() -> float:
        calls.append("theirs")
        return 1.0 * len(calls)

    result = await alternate(ours, theirs, rounds=2, warmup=1)
    assert calls == ["ours", "theirs", "theirs", "ours", "ours", "theirs"]
    assert result.ours == [8.0, 10.0]  # rounds 2 and 3; round 1 was warm-up
    assert result.theirs == [3.0, 6.0]
    assert result.ratio(float)["median"] == pytest.approx((8 / 3 + 10 / 6) / 2)


async def test_rotation_moves_the_first_side_on_each_round() -> None:
    calls: list[str] = []

    def side(name: str) -> Callable[[], Awaitable[str]]:
        async def measure() -> str:
            calls.append(name)
            return f"{name}{len(calls)}"

        return measure

    result = await rotate([side("a"), side("b"), side("c")], rounds=2, warmup=1)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert result == [["a6", "a8"], ["b4", "b9"], ["c5", "c7"]]


async def test_rotation_of_two_sides_is_the_alternation() -> None:
    calls: list[str] = []

    async def ours() -> int:
        calls.append("ours")
        return 1

    async def theirs() -> int:
        calls.append("theirs")
        return 2

    await rotate([ours, theirs], rounds=2)
    rotated, calls[:] = list(calls), []
    await alternate(ours, theirs, rounds=2)
    assert rotated == calls
