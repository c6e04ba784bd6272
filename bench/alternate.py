"""Side-by-side measurement: two measurements taken in alternation, round
after round, the order swapped every round, so that neither side always
runs first (after the other has warmed a cache, or on a quieter moment)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bench.stats import Summary, ratios, summarize

T = TypeVar("T")


@dataclass
class Alternation(Generic[T]):
    ours: list[T] = field(default_factory=list)
    theirs: list[T] = field(default_factory=list)

    def ratio(self, value: Callable[[T], float], *, inverse: bool = False) -> Summary:
        """Per-round value(ours) / value(theirs) (or theirs / ours)."""
        a = [value(x) for x in self.ours]
        b = [value(x) for x in self.theirs]
        return summarize(ratios(b, a) if inverse else ratios(a, b))

    def summaries(self, value: Callable[[T], float]) -> tuple[Summary, Summary]:
        return summarize([value(x) for x in self.ours]), summarize([value(x) for x in self.theirs])


async def alternate(
    ours: Callable[[], Awaitable[T]],
    theirs: Callable[[], Awaitable[T]],
    rounds: int,
    warmup: int = 1,
) -> Alternation[T]:
    """`warmup` unrecorded rounds of each, then `rounds` recorded ones."""
    result: Alternation[T] = Alternation()
    for number in range(warmup + rounds):
        if number % 2 == 0:
            a = await ours()
            b = await theirs()
        else:
            b = await theirs()
            a = await ours()
        if number >= warmup:
            result.ours.append(a)
            result.theirs.append(b)
    return result


async def rotate(
    sides: Sequence[Callable[[], Awaitable[T]]],
    rounds: int,
    warmup: int = 1,
) -> list[list[T]]:
    """`alternate` for any number of sides: every round measures each side
    once, and the side that goes first moves on by one each round (for two
    sides, the order `alternate` takes). `warmup` unrecorded rounds, then
    `rounds` recorded ones; returns each side's samples, in `sides`' order."""
    result: list[list[T]] = [[] for _ in sides]
    for number in range(warmup + rounds):
        for offset in range(len(sides)):
            index = (number + offset) % len(sides)
            sample = await sides[index]()
            if number >= warmup:
                result[index].append(sample)
    return result
