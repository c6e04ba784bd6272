"""tests/experiments_svc/test_import.py through PgBouncer (see conftest.py):
ImportRun against a real tracking service, the experiments service's
database through the pooler."""

from __future__ import annotations

import dataclasses

import pytest

from experiments_svc.config import Settings
from research_common.server import GrpcServer
from tests.experiments_svc.test_import import *  # noqa: F403

pytestmark = pytest.mark.postgres


# In place of the module's own `settings`, which would reach the database
# directly.
@pytest.fixture  # type: ignore[no-redef]
def settings(settings: Settings, tracking: GrpcServer) -> Settings:
    """The folder's settings (the database through the pooler) with the
    module's tracking server."""
    return dataclasses.replace(
        settings, tracking_address=f"127.0.0.1:{tracking.port}", tracking_timeout=2.0
    )
