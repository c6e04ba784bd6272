"""A bounded load through the gateway: a few workers, each issuing requests
one after another until told to stop or until it has made its quota, every
request with a client timeout. Each request's kind, status and timing is
kept, so that a test can say what happened before, during and after a fault."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

# A transport failure (refused, reset, timed out) instead of an HTTP status.
NO_ANSWER = 0
# Every request gives up after this long: a hang fails the test, it never stalls it.
CLIENT_TIMEOUT = 8.0
# Pause between one worker's requests: a steady load, not a saturating one,
# on a small shared machine.
PAUSE = 0.01


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    status: int
    started: float  # time.monotonic()
    took: float

    @property
    def ended(self) -> float:
        return self.started + self.took


@dataclass
class Recorder:
    outcomes: list[Outcome] = field(default_factory=list)

    async def request(
        self, http: httpx.AsyncClient, kind: str, method: str, url: str, **options: Any
    ) -> httpx.Response | None:
        """One request, recorded; None when no HTTP answer came."""
        began = time.monotonic()
        response: httpx.Response | None
        try:
            response = await http.request(method, url, timeout=CLIENT_TIMEOUT, **options)
        except httpx.TransportError:
            response = None
        status = NO_ANSWER if response is None else response.status_code
        self.outcomes.append(Outcome(kind, status, began, time.monotonic() - began))
        return response

    def of(self, *kinds: str) -> list[Outcome]:
        return [o for o in self.outcomes if not kinds or o.kind in kinds]

    def statuses(self, *kinds: str) -> dict[int, int]:
        return dict(sorted(Counter(o.status for o in self.of(*kinds)).items()))

    def within(self, start: float, end: float, *kinds: str) -> list[Outcome]:
        """Requests that began at or after `start` and ended by `end`."""
        return [o for o in self.of(*kinds) if o.started >= start and o.ended <= end]

    def first_success_after(self, moment: float, *kinds: str) -> float | None:
        """Seconds from `moment` to the end of the first 2xx begun after it."""
        ends = [o.ended for o in self.of(*kinds) if o.started >= moment and 200 <= o.status < 300]
        return min(ends) - moment if ends else None

    def slowest(self, *kinds: str) -> float:
        return max((o.took for o in self.of(*kinds)), default=0.0)


def status_names(counts: dict[int, int]) -> dict[str, int]:
    """JSON-friendly keys for the figures."""
    return {str(status): count for status, count in counts.items()}


async def run_workers(
    step: Callable[[int, int], Awaitable[None]],
    workers: int,
    stop: asyncio.Event,
    quota: int,
) -> None:
    """`step(worker, n)` for n = 0, 1, ... in each worker until `stop` is set
    or the worker has made `quota` steps."""

    async def worker(index: int) -> None:
        for n in range(quota):
            if stop.is_set():
                return
            await step(index, n)
            await asyncio.sleep(PAUSE)

    await asyncio.gather(*(worker(index) for index in range(workers)))


async def wait_for(predicate: Callable[[], bool], within: float) -> float:
    """Seconds until `predicate()` holds; TimeoutError after `within`."""
    began = time.monotonic()
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the load runs in other tasks
            await asyncio.sleep(0.02)
    return time.monotonic() - began


def only(statuses: Iterable[int], allowed: set[int]) -> set[int]:
    """The statuses outside `allowed` (empty when all are allowed)."""
    return set(statuses) - allowed
