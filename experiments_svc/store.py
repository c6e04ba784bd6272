"""Reads and writes of the experiments table, one transaction per call."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, delete, exc, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from experiments_svc.convert import Record
from experiments_svc.filtering import FilterCompiler
from experiments_svc.models import ExperimentRow
from experiments_svc.ordering import SortOrder
from research_common.errors import AlreadyExists
from research_common.ordering import OrderKey

_table: Table = ExperimentRow.__table__  # type: ignore[assignment]
_TICK = timedelta(microseconds=1)
# The statements of the reads by key, built once: building a statement and
# its cache key costs more per call than running it on a warm connection.
_GET = select(_table).where(_table.c.id == bindparam("experiment_id"))
_BY_RUN_ID = select(_table).where(_table.c.mlflow_run_id == bindparam("mlflow_run_id"))


def _run_recorded(mlflow_run_id: object) -> AlreadyExists:
    # The only constraint a write can break besides the random primary key.
    return AlreadyExists(
        f"an experiment already records MLflow run {mlflow_run_id}; "
        "each run is recorded once (find it with ?mlflow_run_id=)"
    )


def _canonical(value: Any) -> bytes:
    """A value as canonical JSON: equal only when the same JSON, kinds
    included (Python's `==` takes 1, 1.0 and True for one value)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class ExperimentStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Filters and orders compile to this database's SQL (its JSON
        # functions differ).
        self.filters = FilterCompiler(_table, engine.dialect.name)
        # Every read is one SELECT, which sees one snapshot on its own; run
        # outside a transaction it needs no BEGIN and no ROLLBACK, two round
        # trips of three. Same pool; writes keep their transactions.
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")

    def order(self, keys: tuple[OrderKey, ...]) -> SortOrder:
        """The order of `keys` on this database; () is newest first."""
        return SortOrder(_table, self._engine.dialect.name, keys)

    async def insert(self, record: Mapping[str, Any]) -> None:
        """Add a row; AlreadyExists when another row records the same MLflow
        run (a unique index enforces it, so racing imports cannot both win)."""
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(_table).values(**record))
        except exc.IntegrityError:
            raise _run_recorded(record.get("mlflow_run_id")) from None

    async def find_by_run_id(self, mlflow_run_id: str) -> Record | None:
        async with self._reads.connect() as connection:
            result = await connection.execute(_BY_RUN_ID, {"mlflow_run_id": mlflow_run_id})
            return result.mappings().first()

    async def get(self, experiment_id: uuid.UUID) -> Record | None:
        async with self._reads.connect() as connection:
            result = await connection.execute(_GET, {"experiment_id": experiment_id})
            return result.mappings().first()

    async def get_many(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Record]:
        """The rows that exist among `ids`, in one query."""
        async with self._reads.connect() as connection:
            result = await connection.execute(select(_table).where(_table.c.id.in_(ids)))
            return {row["id"]: row for row in result.mappings()}

    async def list(
        self,
        filters: Mapping[str, Any],
        skip: int,
        limit: int,
        order: SortOrder,
        conditions: Sequence[ColumnElement[bool]] = (),
    ) -> list[Record]:
        """A page of rows matching every filter (column name to exact value)
        and every condition (a compiled filter, a keyset position), in
        `order`; each row also holds the order's computed parts."""
        query = (
            select(_table, *order.columns()).order_by(*order.clauses()).offset(skip).limit(limit)
        )
        for column, value in filters.items():
            query = query.where(_table.c[column] == value)
        for condition in conditions:
            query = query.where(condition)
        async with self._reads.connect() as connection:
            result = await connection.execute(query)
            return list(result.mappings())

    async def update(
        self,
        experiment_id: uuid.UUID,
        changes: Mapping[str, Any],
        now: datetime,
        check: Callable[[Record], None] = lambda record: None,
    ) -> Record | None:
        """Apply `changes` to one row and move `updated_at`; None when the row
        does not exist. `check` sees the row as it would be and may refuse it
        by raising (nothing is written). Values equal to the stored ones are
        no change: a PATCH that changes nothing writes nothing and leaves
        `updated_at` where it was. The row is locked while it changes, so
        concurrent updates apply one after another and `updated_at` strictly
        increases even when the clock does not."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                select(_table).where(_table.c.id == experiment_id).with_for_update()
            )
            current = result.mappings().first()
            if current is None:
                return None
            changes = {
                name: value
                for name, value in changes.items()
                if _canonical(value) != _canonical(current[name])
            }
            if not changes:
                return current
            check({**current, **changes})
            updated_at = max(now, current["updated_at"] + _TICK)
            values = {**changes, "updated_at": updated_at}
            try:
                await connection.execute(
                    update(_table).where(_table.c.id == experiment_id).values(**values)
                )
            except exc.IntegrityError:
                # The transaction rolls back as the error leaves the block.
                raise _run_recorded(changes.get("mlflow_run_id")) from None
            return {**current, **values}

    async def delete(self, experiment_id: uuid.UUID) -> bool:
        async with self._engine.begin() as connection:
            result = await connection.execute(delete(_table).where(_table.c.id == experiment_id))
            return bool(result.rowcount)
