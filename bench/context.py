"""What every scenario is given: the run's options, the report it adds to,
and a scratch folder (logs of the processes it starts, request files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.report import Report


@dataclass(frozen=True)
class Options:
    rounds: int  # alternating rounds per comparison
    seconds: float  # length of one throughput round
    connections: int  # HTTP connections (and gRPC calls in flight) per round
    load_seconds: float  # the mixed-load scenario
    load_connections: int
    scale_rows: tuple[int, ...]  # table sizes the scale scenario measures at

    @classmethod
    def full(cls) -> Options:
        return cls(
            rounds=5,
            seconds=4.0,
            connections=32,
            load_seconds=30.0,
            load_connections=64,
            scale_rows=(10_000, 100_000, 1_000_000),
        )

    @classmethod
    def quick(cls) -> Options:
        return cls(
            rounds=3,
            seconds=2.0,
            connections=32,
            load_seconds=8.0,
            load_connections=64,
            scale_rows=(10_000, 100_000),
        )


@dataclass(frozen=True)
class Context:
    options: Options
    report: Report
    work: Path
