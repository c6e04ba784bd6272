"""Registers the shared fixtures (tests/fixtures/) once for the whole tree:
pytest reads `pytest_plugins` only in the root conftest, and from here every
test module can ask for any of them without importing it."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.pgbouncer",
    "tests.fixtures.mlflow",
    "tests.fixtures.stack",
    "tests.fixtures.grpc",
    "tests.fixtures.browser",
]
