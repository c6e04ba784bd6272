"""tests/experiments_svc/test_filter.py through PgBouncer (see conftest.py)."""

from __future__ import annotations

import pytest

from tests.experiments_svc.test_filter import *  # noqa: F403

pytestmark = pytest.mark.postgres
