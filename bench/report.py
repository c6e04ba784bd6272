"""What a run produces: one table row per measured figure (with its target
and whether it was met), and every number behind it as JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import Summary


@dataclass(frozen=True)
class Row:
    scenario: str
    measure: str
    figure: str
    target: str = ""
    met: bool | None = None  # None: no target


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.measure}: {row.figure}" + (f"  [{verdict(row)}]" if row.target else ""))

    def table(self) -> str:
        header = ("scenario", "measure", "figure", "target", "")
        lines = [
            header,
            *((r.scenario, r.measure, r.figure, r.target, verdict(r)) for r in self.rows),
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = []
        for number, line in enumerate(lines):
            out.append(
                "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            )
            if number == 0:
                out.append("  ".join("-" * width for width in widths))
        return "\n".join(out)

    def write_json(self, path: Path) -> None:
        document = {
            "machine": machine(),
            "rows": [asdict(row) for row in self.rows],
            "figures": self.figures,
        }
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def verdict(row: Row) -> str:
    if row.met is None:
        return ""
    return "met" if row.met else "MISSED"


def ratio_text(summary: Summary, unit: str = "x") -> str:
    """`1.23x (p10 1.10-p90 1.31, n=5)`"""
    return (
        f"{summary['median']:.2f}{unit} (p10 {summary['p10']:.2f}-p90 {summary['p90']:.2f}, "
        f"n={int(summary['n'])})"
    )


def percent_text(summary: Summary) -> str:
    """`12 % (p10 8 %-p90 15 %, n=5)` of a summary of fractions."""
    return (
        f"{summary['median']:.0%} (p10 {summary['p10']:.0%}-p90 {summary['p90']:.0%}, "
        f"n={int(summary['n'])})"
    ).replace("%", " %")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        postgres = subprocess.run(
            ["psql", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        postgres = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "postgres_client": postgres,
    }
