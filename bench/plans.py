"""Reading PostgreSQL's `EXPLAIN (ANALYZE)` text for the report: which node
read the table and how many rows it read, how the rows were sorted, what
execution (and JIT) took; and the column list of an index on the sort
expressions of an order, from the ORDER BY clauses the service compiles;
and the WAL a write made."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_ACTUAL = re.compile(r"actual time=[\d.]+\.\.[\d.]+ rows=(\d+) loops=(\d+)")
_REMOVED = re.compile(r"Rows Removed by (?:Filter|Index Recheck): (\d+)")
_SORT_METHOD = re.compile(r"Sort Method: ([^:]+?)\s+(?:Memory|Disk):")
_EXECUTION = re.compile(r"Execution Time: ([\d.]+) ms")
_JIT_TOTAL = re.compile(r"Timing:.*Total ([\d.]+) ms")
_WAL = re.compile(r"WAL: (.*)")


@dataclass(frozen=True)
class Reading:
    node: str  # "Parallel Seq Scan on experiments", "Index Scan using ix on experiments"
    rows: int  # rows the node looked at: passed and removed by its filter, all loops


def _node_name(line: str) -> str:
    return line.strip().removeprefix("->").strip().split("  (")[0]


def readings(plan: str) -> list[Reading]:
    """Every scan node, outermost first. `rows` is what EXPLAIN ANALYZE
    reports per loop (rows out plus rows its filter removed) times the
    loops: for a parallel scan, the loops are the workers and the leader."""
    lines = plan.splitlines()
    found: list[Reading] = []
    for number, line in enumerate(lines):
        actual = _ACTUAL.search(line)
        if "Scan" not in line or actual is None:
            continue
        rows, loops = int(actual.group(1)), int(actual.group(2))
        removed = 0
        # The node's own detail lines come before the next node ("->").
        for detail in lines[number + 1 :]:
            if detail.lstrip().startswith("->"):  # (a filter may hold "->" too)
                break
            match = _REMOVED.search(detail)
            if match:
                removed += int(match.group(1))
        found.append(Reading(_node_name(line), (rows + removed) * loops))
    return found


def reading(plan: str) -> Reading | None:
    """The scan node that read the most rows; of equals the innermost (a
    bitmap heap scan reads what its bitmap index scan found, and the inner
    node names the index)."""
    best: Reading | None = None
    for candidate in readings(plan):
        if best is None or candidate.rows >= best.rows:
            best = candidate
    return best


def sort_method(plan: str) -> str | None:
    """ "top-N heapsort", "quicksort", "external merge"; None without a sort."""
    match = _SORT_METHOD.search(plan)
    return match.group(1).strip() if match else None


def execution_ms(plan: str) -> float | None:
    match = _EXECUTION.search(plan)
    return float(match.group(1)) if match else None


def jit_ms(plan: str) -> float:
    """Time spent compiling with JIT (0 when the plan did not use it): it
    starts once a plan's estimated cost passes jit_above_cost."""
    match = _JIT_TOTAL.search(plan)
    return float(match.group(1)) if match else 0.0


def wal(plan: str) -> dict[str, int]:
    """The WAL a statement wrote, from EXPLAIN (ANALYZE, WAL): `records`,
    `fpi` (full-page images) and `bytes` of the outermost node, whose counts
    include its children's; {} when it wrote none."""
    match = _WAL.search(plan)
    if match is None:
        return {}
    counts = dict(part.split("=", 1) for part in match.group(1).split())
    return {key: int(counts.get(key, "0")) for key in ("records", "fpi", "bytes")}


def index_columns(order_clauses: Sequence[str]) -> str:
    """`(a) ASC, (b) DESC` from compiled ORDER BY clauses `a ASC`, `b DESC`:
    the column list of an index whose entries are in exactly that order
    (each expression parenthesized, as CREATE INDEX wants)."""
    columns = []
    for clause in order_clauses:
        expression, _, direction = clause.rpartition(" ")
        if direction not in ("ASC", "DESC") or not expression:
            raise ValueError(f"not an ORDER BY clause with a direction: {clause!r}")
        columns.append(f"({expression}) {direction}")
    return ", ".join(columns)
