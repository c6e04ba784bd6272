"""The revisions of experiments (CONTRACT §9): one immutable row per change,
written by the store in the transaction of the change itself, and read back
newest first. Nothing here updates or deletes a revision, and on both
databases a trigger (migration 0003) refuses it anyway."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Table, Update, bindparam, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from experiments_svc.convert import Record, snapshot
from experiments_svc.models import ExperimentRevisionRow

_table: Table = ExperimentRevisionRow.__table__  # type: ignore[assignment]
_ONE = select(_table).where(
    _table.c.experiment_id == bindparam("experiment_id"),
    _table.c.revision == bindparam("revision"),
)

ACTIONS = ("create", "import", "update", "delete", "undelete")


@dataclass(frozen=True, slots=True)
class Change:
    """Who made a change, when, in which call, and what kind it was."""

    action: str
    at: datetime
    actor: str | None = None
    request_id: str | None = None


async def write(
    connection: AsyncConnection,
    record: Record,
    change: Change,
    changed: Sequence[str],
    after: Update | None = None,
    also: Sequence[tuple[Insert, dict[str, Any]]] = (),
) -> None:
    """Append the revision that `change` made `record` (the experiment as it
    stands after the change, at its new revision number). With `after`,
    the UPDATE that made the change, both go in one statement on
    PostgreSQL (`WITH changed AS (UPDATE …) INSERT … SELECT … FROM changed`):
    one round trip instead of two while the row is locked, which was most
    of what a revision added to a PATCH (BENCHMARKS.md, scenario 9). `also`,
    other writes of the change with their bound values (the trial sums'),
    join that statement on PostgreSQL, each as a WITH of its own, which runs
    whether or not it is read; elsewhere they run after it."""
    values = {
        "experiment_id": record["id"],
        "revision": record["revision"],
        "action": change.action,
        "experiment": snapshot(record),
        "changed_fields": list(changed),
        "actor": change.actor,
        "request_id": change.request_id,
        "recorded_at": change.at,
    }
    if connection.dialect.name != "postgresql":  # no DML inside WITH
        if after is not None:
            await connection.execute(after)
        await connection.execute(insert(_table).values(**values))
        for write, values_of_write in also:
            await connection.execute(write, values_of_write)
        return
    if after is None:
        statement = insert(_table).values(**values)
    else:
        updated = after.returning(_table_of(after).c.id).cte("changed")
        source = select(
            *(literal(value, type_=_table.c[name].type) for name, value in values.items())
        ).select_from(updated)
        statement = insert(_table).from_select(list(values), source)
    bound: dict[str, Any] = {}
    for index, (write, values_of_write) in enumerate(also):
        statement = statement.add_cte(write.cte(f"also_{index}"))
        bound |= values_of_write
    await connection.execute(statement, bound)


def _table_of(statement: Update) -> Table:
    table: Table = statement.table  # type: ignore[assignment]
    return table


async def page(
    connection: AsyncConnection, experiment_id: uuid.UUID, limit: int, before: int | None
) -> list[Any]:
    """Up to `limit` revisions of one experiment, newest first, older than
    revision `before` when given (a keyset position)."""
    query = (
        select(_table)
        .where(_table.c.experiment_id == experiment_id)
        .order_by(_table.c.revision.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(_table.c.revision < before)
    result = await connection.execute(query)
    return list(result.mappings())


async def one(connection: AsyncConnection, experiment_id: uuid.UUID, revision: int) -> Any:
    """One revision, or None."""
    result = await connection.execute(_ONE, {"experiment_id": experiment_id, "revision": revision})
    return result.mappings().first()
