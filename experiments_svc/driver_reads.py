"""Reads by key on PostgreSQL, run straight on the asyncpg connection of a
pool checkout.

SQLAlchemy's road from the pool to a row (an AsyncConnection, a greenlet
per step, the execution context, the result's row processors) cost about
0.3 ms of CPU per GET by id, a quarter of experiments_svc's CPU for it
(bench.profile; BENCHMARKS.md, issue 18's fifth round). A read by key
needs none of it: its statement never changes, and asyncpg already gives
the values SQLAlchemy would: UUIDs (asyncpg's subclass of uuid.UUID), aware
UTC datetimes, Decimals, and JSON documents read by the engine's own
deserializer (the dialect sets that codec on every connection it opens).
Rows come back as dicts.

What stays SQLAlchemy's: the statements are written with it and compiled
once into the driver's SQL, and their parameters go through the types'
bind processors; the pool is the engine's (one DB_POOL_SIZE, one
DB_TIMEOUT to wait for a connection, the same connect arguments), and a
connection that a read found lost is invalidated, so the pool opens a new
one, as it does for its own statements.

The connection goes back to the pool outside SQLAlchemy's greenlet, which
is safe because nothing on the way awaits: the pool never closes a
connection on check-in (experiments_svc.db builds it with max_overflow=0)
and no transaction is open on it to roll back.

Not used on SQLite, nor behind a pooler in transaction mode: there, reads
run in a transaction so that asyncpg's describe and execute reach one
server connection (experiments_svc.db), which this path does not open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection


@dataclass(frozen=True)
class _DriverStatement:
    """A statement in the driver's SQL; the names of its parameters in the
    order the driver takes them ($1, $2, ...), and each one's bind
    processor (None: the value as it is)."""

    sql: str
    parameters: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    def arguments(self, values: dict[str, Any]) -> list[Any]:
        return [
            values[name] if process is None else process(values[name])
            for name, process in zip(self.parameters, self.processors, strict=True)
        ]


class DriverReads:
    """Reads of fixed statements on `engine`'s pool (asyncpg only)."""

    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.driver != "asyncpg":
            raise ValueError(f"driver reads need asyncpg, not {engine.dialect.driver}")
        self._engine = engine
        # What the dialect's DB-API raises (PEP 249's Error), for _checkout.
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        # By the statement's identity: each is a module-level constant,
        # compiled at its first read.
        self._compiled: dict[int, tuple[Select[Any], _DriverStatement]] = {}

    def _driver_statement(self, statement: Select[Any]) -> _DriverStatement:
        known = self._compiled.get(id(statement))
        if known is not None:
            return known[1]
        dialect = self._engine.dialect
        compiled = statement.compile(dialect=dialect)
        parameters = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in parameters]
        # Only parameters the caller gives: a value fixed in the statement
        # (a literal, a limit) would not be among `values`.
        fixed = [bind.key for bind in binds if not bind.required]
        if fixed:
            raise ValueError(f"driver reads take named parameters only, not {fixed}")
        # As SQLAlchemy would send each value (the dialect's own type's).
        types = [bind.type.dialect_impl(dialect) for bind in binds]
        processors = tuple(bind_type.bind_processor(dialect) for bind_type in types)
        driver = _DriverStatement(str(compiled), parameters, processors)
        self._compiled[id(statement)] = (statement, driver)  # holds it: the id stays its own
        return driver

    async def _checkout(self) -> PoolProxiedConnection:
        """A connection of the engine's pool. A connect that fails comes as
        the dialect's DB-API error, which SQLAlchemy wraps in its DBAPIError
        only for the connections its own statements open: wrapped here the
        same way, it is the same outage to experiments_svc.db."""
        try:
            return await self._engine.raw_connection()
        except self._dbapi_error as error:
            wrapped = exc.DBAPIError.instance(
                None, None, error, self._dbapi_error, dialect=self._engine.dialect
            )
            raise wrapped from error

    async def rows(self, statement: Select[Any], values: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows `statement` (built once, with named bind parameters
        only) reads with `values`, as dicts of column name to value."""
        driver = self._driver_statement(statement)
        arguments = driver.arguments(values)
        checkout = await self._checkout()
        # asyncpg's Connection (typed Optional: None once invalidated).
        connection: Any = checkout.driver_connection
        try:
            records: Sequence[Any] = await connection.fetch(driver.sql, *arguments)
        except BaseException as error:
            if connection.is_closed():  # lost: the pool opens another
                checkout.invalidate(error if isinstance(error, Exception) else None)
            else:
                # A statement timeout, a cancelled call, an error the server
                # answered: asyncpg cancels the statement on the server and
                # waits for that before the connection's next statement, so
                # the connection is fit to reuse: back to the pool.
                # Invalidating it would close it at once, dropping the
                # cancel and leaving the statement running (or waiting on a
                # lock) on the server.
                checkout.close()
            raise
        checkout.close()  # back to the pool
        return [dict(record) for record in records]
