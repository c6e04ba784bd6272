"""The README's HTTP walkthrough, run as written: `make demo`'s job in a fresh
folder, then every command of the README's "Talking to it over HTTP" block
in bash with the real curl, each answer's status recorded in order."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.scripts.test_run_all import (
    READY_MARKER,
    _addresses,
    _read_until,
    start_job,
    stop_job,
)

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Talking to it over HTTP"

# In the README's order, including the lookups inside $(...).
EXPECTED_STATUSES = [
    200,  # runs: walk_forward of the strategy
    200,  # RUN=
    200,  # run detail
    200,  # metrics
    200,  # params
    200,  # metric history
    200,  # MLflow experiments
    200,  # RUNS=
    200,  # compare runs
    200,  # WF=
    200,  # compare walk-forward runs against a baseline
    200,  # experiments of the strategy
    200,  # by dataset version
    201,  # create
    200,  # ID=
    200,  # OTHER=
    200,  # ETAG= (get)
    304,  # If-None-Match
    200,  # patch with If-Match
    409,  # patch with the stale If-Match
    200,  # revisions
    200,  # compare experiments against a baseline
    200,  # import again
    204,  # delete
    200,  # show_deleted
    200,  # undelete
    400,  # injected filter
    404,  # unknown experiment
    200,  # readyz
]


def readme_http_block() -> str:
    text = README.read_text()
    section = text[text.index(SECTION) :]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no sh block in the HTTP section"
    return match.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
async def test_the_readme_http_walkthrough_returns_demo_data(tmp_path: Path) -> None:
    addresses = _addresses()
    job = await start_job(tmp_path, addresses, "--demo")
    assert job.stderr is not None
    seen: list[str] = []
    try:
        await asyncio.wait_for(_read_until(job.stderr, READY_MARKER, seen), 150)
        drain = asyncio.ensure_future(_read_until(job.stderr, "\0never\0", seen))

        block = readme_http_block()
        assert "GW=http://127.0.0.1:8080\n" in block
        block = block.replace(
            "GW=http://127.0.0.1:8080\n", f"GW=http://{addresses['GATEWAY_ADDR']}\n"
        )
        statuses = tmp_path / "statuses"
        # Each curl also writes its status to a file and ends its body with a
        # newline; stdout is otherwise what the README shows.
        script = (
            "set -euo pipefail\n"
            "curl() { command curl -w '%{stderr}%{http_code}\\n' \"$@\" 2>> "
            f"{statuses}; echo; }}\n" + block
        )
        shell = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            script,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(shell.communicate(), 120)
        output = out.decode()
        assert shell.returncode == 0, err.decode() + output
        recorded = [int(line) for line in statuses.read_text().split()]
        assert recorded == EXPECTED_STATUSES, output

        # The compare example of the tracking API document, from demo data:
        # its params, and the daily annualisation every demo run carries,
        # the same on all three.
        compare = next(
            json.loads(line)
            for line in output.splitlines()
            if line.startswith('{"runs"') and '"metric_diff"' in line
        )
        by_sharpe = {r["metrics"]["oos_sharpe"]: r["run_id"] for r in compare["runs"]}
        assert sorted(by_sharpe) == [1.18, 1.35, 1.42]
        assert compare["metric_diff"]["oos_sharpe"]["best_run_id"] == by_sharpe[1.42]
        assert compare["metric_diff"]["max_drawdown"]["best_run_id"] == by_sharpe[1.42]
        assert {key: diff["varies"] for key, diff in compare["param_diff"].items()} == {
            "learning_rate": True,
            "max_depth": True,
            "n_estimators": True,
            "periods_per_year": False,
        }

        # The walk-forward runs against the older one: folds 0.62, 1.14,
        # 0.88, 1.03 (strategy B, newer) and 1.20, 1.78, 1.02, 1.64, 1.46
        # (strategy A, older, the baseline).
        # Compare answers only: a ListRuns answer starts with {"runs" too.
        compares = [
            json.loads(line)
            for line in output.splitlines()
            if line.startswith('{"runs"') and '"metric_diff"' in line
        ]
        folds = next(answer for answer in compares if answer["paired"])
        newer, older = (row["run_id"] for row in folds["runs"])
        sharpe = folds["metric_diff"]["oos_sharpe"]
        assert sharpe["baseline"] == 1.46
        assert sharpe["verdict"] == {newer: "worse", older: "baseline"}
        stats = folds["fold_stats"]["oos_sharpe"]
        assert list(stats) == [newer, older]
        assert (stats[newer]["folds"], stats[newer]["worst"]) == (4, 0.62)
        assert (stats[older]["folds"], stats[older]["worst"]) == (5, 1.02)
        paired = folds["paired"]["oos_sharpe"][newer]
        assert (paired["n"], paired["wins"], paired["losses"]) == (4, 0, 4)
        assert paired["sign_test_p"] == 0.125
        overfitting = folds["overfitting"]["oos_sharpe"]
        assert (overfitting["runs"], overfitting["steps"], overfitting["blocks"]) == (2, 4, 4)
        assert overfitting["combinations"] == 6
        assert overfitting["pbo"] == 0.0

        job.terminate()
        assert await asyncio.wait_for(job.wait(), 30) == 0
        await asyncio.gather(drain, return_exceptions=True)
    finally:
        await stop_job(job)
