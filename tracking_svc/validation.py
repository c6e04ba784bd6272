"""Checks on what callers send, before any of it reaches MLflow. Each failure
is INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import re
from collections.abc import Sequence

from research_common import diff
from research_common.errors import InvalidArgument, echo
from research_common.page_tokens import requested_size

# CONTRACT §6: filter values are plain tokens, so they can be quoted into an
# MLflow filter string without any escaping question arising.
FILTER_VALUE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# MLflow's own rule for run ids (mlflow.utils.validation): it also keeps
# path tricks such as "../" out of every URL and filter built from an id.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,255}")
# MLflow's rule for metric names, and its length limit.
METRIC_KEY = re.compile(r"[\w./\- :]{1,250}")

DEFAULT_LIMIT, MAX_LIMIT = 50, 100


def filter_value(field: str, value: str) -> str:
    if not FILTER_VALUE.fullmatch(value):
        raise InvalidArgument.field(
            field,
            f"must be 1 to 128 letters, digits or '_.:-' characters, got {echo(value)}",
        )
    return value


def run_id(value: str, field: str = "run_id") -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    if not RUN_ID.fullmatch(value):
        raise InvalidArgument.field(
            field,
            "must be an MLflow run id (letters, digits, '_' and '-', at most 256 characters), "
            f"got {echo(value)}",
        )
    return value


def metric_key(value: str) -> str:
    if not value:
        raise InvalidArgument.field("metric_key", "is required")
    if not METRIC_KEY.fullmatch(value):
        raise InvalidArgument.field(
            "metric_key",
            "must be an MLflow metric name (letters, digits, spaces and '_./-:', at most 250 "
            f"characters), got {echo(value)}",
        )
    return value


def page_size(limit_value: int | None, size: int | None) -> int:
    """`limit` or `page_size` (the same thing), by the limit's rule."""
    name, value = requested_size(limit_value, size)
    return limit(value, name)


def limit(value: int | None, field: str = "limit") -> int:
    """The contract's run-search limit: default 50, over 100 clamped."""
    if value is None:
        return DEFAULT_LIMIT
    if value < 1:
        raise InvalidArgument.field(field, f"must be a positive number, got {value}")
    return min(value, MAX_LIMIT)


def compare_ids(values: Sequence[str]) -> list[str]:
    diff.check_compare_count("run_ids", len(values))
    ids = [run_id(value, f"run_ids[{i}]") for i, value in enumerate(values)]
    diff.check_distinct("run_ids", ids)
    return ids
