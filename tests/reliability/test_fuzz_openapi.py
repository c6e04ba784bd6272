"""schemathesis, driven by the gateway's own /openapi.json, against the three
processes: every operation gets schema-valid and schema-violating requests
(over 1,000 in all). No answer is a 5xx, and every answer matches what the
document says: its status code, content type, headers and body schema."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from testbed.mlflow_server import MlflowServer
from tests.reliability.backbone import Backbone
from tests.reliability.conftest import Record

pytestmark = pytest.mark.postgres

# Cases per operation and generation mode: 14 operations x 75 = 1,050.
EXAMPLES = {GenerationMode.POSITIVE: 50, GenerationMode.NEGATIVE: 25}
MINIMUM_CASES = 1000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# The document's request schemas mark no field required (parsing.py is
# strict about types and names, and the service says which value is
# missing), so "schema-valid but refused" and "schema-invalid but accepted"
# are not failures here; the checks above are about the answers.


@pytest.fixture
async def backbone(
    migrated_postgres: str, mlflow_server: MlflowServer, tmp_path: Path
) -> AsyncIterator[Backbone]:
    name = f"reliability-fuzz-{uuid.uuid4().hex[:8]}"
    async with Backbone(tmp_path, migrated_postgres, mlflow_server.url, name) as stack:
        yield stack


def fuzz_operation(
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    base_url: str,
    statuses: Counter[int],
    failures: list[str],
) -> None:
    """EXAMPLES[mode] cases of one operation, each sent and checked."""

    @hypothesis.settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,  # the same cases on every run
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Case[Any]) -> None:
        # A deadline the caller makes shorter than a round trip is answered
        # 504, as the contract says; the header is fixed, the rest fuzzed.
        response = case.call(base_url=base_url, headers={"Grpc-Timeout": "30S"}, timeout=30)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as failure:  # schemathesis' FailureGroup
            failures.append(f"{operation.label} ({mode.value}): {failure}"[:2000])

    check()


def fuzz(base_url: str, document: dict[str, Any]) -> tuple[Counter[int], list[str]]:
    """Every operation's cases; the statuses seen and the failures."""
    schema = schemathesis.openapi.from_dict(document)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        for mode in EXAMPLES:
            fuzz_operation(result.ok(), mode, base_url, statuses, failures)
    return statuses, failures


async def test_schemathesis_finds_no_5xx_and_no_schema_mismatch(
    backbone: Backbone, figures: Record
) -> None:
    async with httpx.AsyncClient(base_url=backbone.base_url, timeout=10) as http:
        document = (await http.get("/openapi.json")).json()
    statuses, failures = await asyncio.to_thread(fuzz, backbone.base_url, document)
    total = sum(statuses.values())
    figures(
        cases=total,
        operations=len([p for ops in document["paths"].values() for p in ops]),
        statuses={str(k): v for k, v in sorted(statuses.items())},
        failures=len(failures),
    )
    assert not failures, "\n\n".join(failures[:5])
    assert total >= MINIMUM_CASES
    assert not [status for status in statuses if status >= 500]
    for module, process in backbone.processes.items():
        assert process.process.returncode is None, module
