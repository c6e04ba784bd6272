"""Reads and writes of the experiments table, one transaction per call;
every change also writes its revision (experiments_svc.revisions) in that
transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Select, Table, Uuid, any_, bindparam, exc, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from experiments_svc import revisions as revision_log
from experiments_svc import trial_sums
from experiments_svc.convert import Record, etag_of, every_set_field, first_revision
from experiments_svc.driver_reads import DriverReads
from experiments_svc.filtering import FilterCompiler
from experiments_svc.models import ExperimentRow
from experiments_svc.ordering import SortOrder
from experiments_svc.revisions import Change
from experiments_svc.selection import Trials
from research_common.errors import Aborted, AlreadyExists, FailedPrecondition, echo
from research_common.ordering import OrderKey

_table: Table = ExperimentRow.__table__  # type: ignore[assignment]
_TICK = timedelta(microseconds=1)
# The statements of the reads by key, built once: building a statement and
# its cache key costs more per call than running it on a warm connection.
_GET = select(_table).where(_table.c.id == bindparam("experiment_id"))
_BY_RUN_ID = select(_table).where(_table.c.mlflow_run_id == bindparam("mlflow_run_id"))
_BY_REQUEST_ID = select(_table).where(_table.c.request_id == bindparam("request_id"))
# The rows every read shows unless it asks for deleted ones too.
LIVE = _table.c.deleted_at.is_(None)
# Rows by a list of ids on PostgreSQL: one array parameter, so the statement
# is built once; `IN` renders a parameter per id on every call, which cost
# a compare more than running the query (bench.profile).
_MANY = select(_table).where(
    _table.c.id == any_(bindparam("experiment_ids", type_=ARRAY(Uuid()))), LIVE
)


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


class RequestRepeated(Exception):
    """A create carried the request_id of an earlier one; `first` is the row
    the earlier create made."""

    def __init__(self, first: Record) -> None:
        super().__init__("request_id seen before")
        self.first = first


class ExperimentStore:
    def __init__(self, engine: AsyncEngine, *, transaction_pooling: bool = False) -> None:
        self._engine = engine
        # Filters and orders compile to this database's SQL (its JSON
        # functions differ).
        self.filters = FilterCompiler(_table, engine.dialect.name)
        # Every read is one SELECT, which sees one snapshot on its own; run
        # outside a transaction it needs no BEGIN and no ROLLBACK, two round
        # trips of three. Same pool; writes keep their transactions.
        # Behind a pooler in transaction mode (DB_TRANSACTION_POOLING) reads
        # keep their transaction too: asyncpg describes a statement in one
        # message batch and runs it in another, and only a transaction holds
        # both on one server connection (experiments_svc.db).
        self._reads = (
            engine
            if transaction_pooling
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # Reads by key skip SQLAlchemy's execution on PostgreSQL (what it
        # cost: experiments_svc.driver_reads); not behind a transaction
        # pooler, where a read needs its transaction.
        self._driver = (
            DriverReads(engine)
            if engine.dialect.name == "postgresql" and not transaction_pooling
            else None
        )

    def order(self, keys: tuple[OrderKey, ...]) -> SortOrder:
        """The order of `keys` on this database; () is newest first."""
        return SortOrder(_table, self._engine.dialect.name, keys)

    async def insert(self, record: Mapping[str, Any], change: Change | None = None) -> Record:
        """Add a row (at revision 1) and its first revision. AlreadyExists
        when another row records the same MLflow run (a unique index
        enforces it, so racing imports cannot both win); RequestRepeated
        with the first row when another create carried the same request_id
        (racing retries insert once)."""
        row = first_revision(record)
        change = change or Change("create", record["created_at"])
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(_table).values(**row))
                sums = trial_sums.adding(
                    self._engine.dialect.name, row["strategy_id"], trial_sums.change(None, row)
                )
                await revision_log.write(connection, row, change, every_set_field(row), also=sums)
        except exc.IntegrityError:
            request_id = record.get("request_id")
            first = await self.find_by_request_id(request_id) if request_id else None
            if first is not None:
                raise RequestRepeated(first) from None
            raise _run_recorded(record.get("mlflow_run_id")) from None
        return row

    async def _by_key(self, statement: Select[Any], values: dict[str, Any]) -> Sequence[Record]:
        """The rows of one of the fixed reads above, with its parameters."""
        if self._driver is not None:
            return await self._driver.rows(statement, values)
        async with self._reads.connect() as connection:
            result = await connection.execute(statement, values)
            return list(result.mappings())

    async def find_by_request_id(self, request_id: uuid.UUID) -> Record | None:
        return _first(await self._by_key(_BY_REQUEST_ID, {"request_id": request_id}))

    async def find_by_run_id(self, mlflow_run_id: str) -> Record | None:
        return _first(await self._by_key(_BY_RUN_ID, {"mlflow_run_id": mlflow_run_id}))

    async def get(self, experiment_id: uuid.UUID) -> Record | None:
        return _first(await self._by_key(_GET, {"experiment_id": experiment_id}))

    async def get_many(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Record]:
        """The live rows among `ids`, in one query (a deleted one is not
        there, as for every read that does not ask for it)."""
        rows: Sequence[Record]
        if self._engine.dialect.name == "postgresql":
            rows = await self._by_key(_MANY, {"experiment_ids": list(ids)})
        else:  # no arrays: IN with a parameter per id, built per call
            async with self._reads.connect() as connection:
                result = await connection.execute(select(_table).where(_table.c.id.in_(ids), LIVE))
                rows = list(result.mappings())
        return {row["id"]: row for row in rows}

    async def trials(self, strategy_id: uuid.UUID) -> dict[str, Trials]:
        """The trial count and Sharpe variance of each Sharpe-named metric
        of a strategy, deleted experiments included (experiments_svc.
        trial_sums; a metric no experiment holds a number for is absent)."""
        rows = await self._by_key(trial_sums.OF_STRATEGY, {"strategy_id": strategy_id})
        return trial_sums.trials_of(rows)

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
        change: Change,
        etag: str = "",
        check: Callable[[Record], None] = lambda record: None,
    ) -> Record | None:
        """Apply `changes` to one live row, move `updated_at` and write the
        revision; None when there is no such live row. `etag`, when given,
        must be the row's (or "*"): else Aborted and nothing is written.
        `check` sees the row as it would be and may refuse it by raising.
        Values equal to the stored ones are no change: a PATCH that changes
        nothing writes nothing (no revision) and leaves `updated_at` where it
        was. The row is locked while it changes, so concurrent updates apply
        one after another, each checking the etag the one before it left,
        and `updated_at` strictly increases even when the clock does not."""
        async with self._engine.begin() as connection:
            current = await _locked(connection, experiment_id)
            if current is None or current["deleted_at"] is not None:
                return None
            _check_etag(current, etag)
            changes = {
                name: value
                for name, value in changes.items()
                if _canonical(value) != _canonical(current[name])
            }
            if not changes:
                return current
            check({**current, **changes})
            try:
                return await _change(connection, current, changes, change)
            except exc.IntegrityError:
                # The transaction rolls back as the error leaves the block.
                raise _run_recorded(changes.get("mlflow_run_id")) from None

    async def delete(self, experiment_id: uuid.UUID, change: Change, etag: str = "") -> bool:
        """Mark one live row deleted (it and its revisions stay); False when
        there is no such live row. `etag` as for `update`."""
        async with self._engine.begin() as connection:
            current = await _locked(connection, experiment_id)
            if current is None or current["deleted_at"] is not None:
                return False
            _check_etag(current, etag)
            await _change(connection, current, {"deleted_at": change.at}, change)
            return True

    async def undelete(self, experiment_id: uuid.UUID, change: Change) -> Record | None:
        """Bring a deleted row back; None when it never existed, and
        FailedPrecondition when it is not deleted."""
        async with self._engine.begin() as connection:
            current = await _locked(connection, experiment_id)
            if current is None:
                return None
            if current["deleted_at"] is None:
                raise FailedPrecondition.violation(
                    "NOT_DELETED", str(experiment_id), "the experiment is not deleted"
                )
            return await _change(connection, current, {"deleted_at": None}, change)

    async def revisions(
        self, experiment_id: uuid.UUID, limit: int, before: int | None
    ) -> Sequence[Record]:
        async with self._reads.connect() as connection:
            return await revision_log.page(connection, experiment_id, limit, before)

    async def revision(self, experiment_id: uuid.UUID, number: int) -> Record | None:
        async with self._reads.connect() as connection:
            found: Record | None = await revision_log.one(connection, experiment_id, number)
            return found


def _first(rows: Sequence[Record]) -> Record | None:
    return rows[0] if rows else None


async def _locked(connection: AsyncConnection, experiment_id: uuid.UUID) -> Record | None:
    result = await connection.execute(
        select(_table).where(_table.c.id == experiment_id).with_for_update()
    )
    return result.mappings().first()


def _check_etag(current: Record, etag: str) -> None:
    """AIP-154: `etag` (empty: no condition; "*": any live row) must be the
    current revision's, or nothing is written."""
    if not etag or etag == "*":
        return
    current_etag = etag_of(current["id"], current["revision"])
    if etag != current_etag:
        raise Aborted(
            f"etag {echo(etag)} is not the experiment's: it is at revision "
            f'{current["revision"]} (etag "{current_etag}"); nothing was written. '
            "Read it again, then retry with its etag"
        )


async def _change(
    connection: AsyncConnection, current: Record, values: Mapping[str, Any], change: Change
) -> Record:
    """Write `values` as the next revision of the locked row `current`."""
    updated_at = max(change.at, current["updated_at"] + _TICK)
    values = {**values, "updated_at": updated_at, "revision": current["revision"] + 1}
    record = {**current, **values}
    changed = [name for name in values if name not in ("updated_at", "revision")]
    statement = update(_table).where(_table.c.id == current["id"]).values(**values)
    sums: list[trial_sums.Adding] = []
    if "metrics" in values or "parameters" in values:
        sums = trial_sums.adding(
            connection.dialect.name, current["strategy_id"], trial_sums.change(current, record)
        )
    await revision_log.write(connection, record, change, changed, after=statement, also=sums)
    return record
