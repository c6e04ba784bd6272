"""The parts of the revisions scenario (bench.scenarios.revisions) that
need no load: the CPU and log readers of the harness's processes, the gRPC
PATCHes each carrying a new value, and the revision INSERT it times being
the service's own."""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from pathlib import Path

from bench.processes import BenchProcess, cpu_seconds
from bench.scenarios.revisions import INSERT_REVISION, UPDATE_EXPERIMENT, _grpc_requests
from experiments_svc.models import ExperimentRevisionRow, ExperimentRow
from research.experiments.v1 import experiments_pb2


def test_cpu_seconds_of_this_process_grow() -> None:
    first = cpu_seconds(os.getpid())
    started = time.process_time()
    while time.process_time() - started < 0.05:  # five of /proc's 10 ms ticks
        sum(range(10_000))
    assert cpu_seconds(os.getpid()) > first > 0


def test_log_records_from_an_offset_skip_a_line_being_written(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_text('{"rpc": "A", "duration_ms": 1.5}\n')
    process = BenchProcess.__new__(BenchProcess)
    process.log = log
    offset = process.log_size()
    with log.open("a") as out:
        out.write('not json\n{"rpc": "B", "duration_ms": 2}\n{"rpc": "C", "dur')
    assert process.log_records(offset) == [{"rpc": "B", "duration_ms": 2}]
    assert [record["rpc"] for record in process.log_records()] == ["A", "B"]


def test_grpc_patches_rotate_and_never_repeat_a_value() -> None:
    ids = [f"00000000-0000-0000-0000-00000000000{n}" for n in range(3)]
    sent = [
        experiments_pb2.UpdateExperimentRequest.FromString(raw)
        for raw in itertools.islice(_grpc_requests(ids, run=7), 9)
    ]
    assert {request.experiment_id for request in sent} == set(ids)
    values = [json.dumps(dict(request.experiment.metrics), sort_keys=True) for request in sent]
    assert len(set(values)) == len(values)
    assert all(list(request.update_mask.paths) == ["metrics"] for request in sent)
    # A later run sends values no earlier run sent.
    later = experiments_pb2.UpdateExperimentRequest.FromString(next(_grpc_requests(ids, run=8)))
    first_of_later = later.experiment.metrics.fields["bench_seq"].number_value
    assert first_of_later > max(r.experiment.metrics.fields["bench_seq"].number_value for r in sent)


def _columns(statement: str) -> list[str]:
    found = re.search(r"\(([^)]*)\) VALUES", statement)
    assert found is not None
    return [name.strip() for name in found.group(1).split(",")]


def test_the_timed_statements_write_the_service_columns() -> None:
    # Every column of a revision, in the table's order, as the service writes them.
    assert _columns(INSERT_REVISION) == [
        column.name for column in ExperimentRevisionRow.__table__.c
    ]
    # A metrics PATCH sets metrics, updated_at and revision of the experiment.
    assigned = re.findall(r"(\w+)=\$", UPDATE_EXPERIMENT)
    assert assigned == ["metrics", "updated_at", "revision"]
    assert set(assigned) <= {column.name for column in ExperimentRow.__table__.c}
