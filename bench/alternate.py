"""Side-by-side measurement: two measurements taken in alternation, round
after round, the order swapped every round, so that neither side always
runs first (after the other has warmed a cache, or on a quieter moment)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
