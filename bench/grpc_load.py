"""The gRPC load generator: `concurrency` coroutines on one grpc.aio
channel, each calling as soon as its previous call returned, for a fixed
time. Requests and replies stay bytes (no protobuf work in the client), so
that the client spends as little as it can per call.

It is Python, so it has a ceiling of its own: the rate it reaches against
the bare echo of `bench.grpc_stub` is that ceiling (plus the echo's own
cost), and is reported beside every gRPC figure."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from grpc import aio

from bench.stats import percentile


@dataclass(frozen=True)
class GrpcResult:
    calls: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


async def run_grpc_load(
    address: str,
    method: str,
    requests: Sequence[bytes] | Iterator[bytes],
    *,
    seconds: float,
    concurrency: int,
    deadline: float = 5.0,
) -> GrpcResult:
    async with aio.insecure_channel(address) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        latencies: list[float] = []
        errors = 0
        # A sequence is sent round and round; an iterator (requests that must
        # each be new) is drawn from and never restarted.
        source = requests if isinstance(requests, Iterator) else itertools.cycle(requests)
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    await call(next(source), timeout=deadline)
                except aio.AioRpcError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return GrpcResult(
        calls=len(latencies) - errors,
        seconds=elapsed,
        errors=errors,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
    )
