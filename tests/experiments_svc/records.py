"""Rows written straight into the store, for the tests that need what the
API does not make: equal creation times, values it would refuse, a store
read without a service in front."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from experiments_svc.models import OPTIONAL_TEXT_FIELDS


def stored_record(**fields: Any) -> dict[str, Any]:
    """A row as `ExperimentStore.insert` takes one: a new id and strategy,
    no lineage, empty maps, created and updated now; `fields` replace any of
    these."""
    now = datetime.now(UTC)
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "strategy_id": uuid.uuid4(),
        **dict.fromkeys(OPTIONAL_TEXT_FIELDS),
        "parameters": {},
        "metrics": {},
        "artifacts": {},
        "created_at": now,
        "updated_at": now,
    }
    return row | fields
