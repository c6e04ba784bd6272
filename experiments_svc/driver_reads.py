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

What stays SQLAlchemy's: the statements are written with it and compiled
once into the driver's SQL; the pool is the engine's (one DB_POOL_SIZE,
one DB_TIMEOUT to wait for a connection, the same connect arguments); and a
connection that failed under a read is invalidated, so the pool opens a new
one, as it does for its own statements.

Not used on SQLite, nor behind a pooler in transaction mode: there, reads
run in a transaction so that asyncpg's describe and execute reach one
server connection (experiments_svc.db), which this path does not open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection


@dataclass(frozen=True)
class _DriverStatement:
    """A statement in the driver's SQL, and the names of its parameters in
    the order the driver takes them ($1, $2, ...)."""

    sql: str
    parameters: tuple[str, ...]


class DriverReads:
    """Reads of fixed statements on `engine`'s pool (asyncpg only)."""

    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.driver != "asyncpg":
            raise ValueError(f"driver reads need asyncpg, not {engine.dialect.driver}")
        self._engine = engine
        # By the statement's identity: each is a module-level constant,
        # compiled at its first read.
        self._compiled: dict[int, tuple[Select[Any], _DriverStatement]] = {}

    def _driver_statement(self, statement: Select[Any]) -> _DriverStatement:
        known = self._compiled.get(id(statement))
        if known is not None:
            return known[1]
        compiled = statement.compile(dialect=self._engine.dialect)
        driver = _DriverStatement(str(compiled), tuple(compiled.positiontup or ()))
        self._compiled[id(statement)] = (statement, driver)  # holds it: the id stays its own
        return driver

    async def _checkout(self) -> PoolProxiedConnection:
        """A connection of the engine's pool. A connect that fails comes as
        the dialect's DB-API error, which SQLAlchemy wraps in its DBAPIError
        only for the connections its own statements open: wrapped here the
        same way, it is the same outage to experiments_svc.db."""
        dialect = self._engine.dialect
        dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        try:
            return await self._engine.raw_connection()
        except dbapi_error as error:
            wrapped = exc.DBAPIError.instance(None, None, error, dbapi_error, dialect=dialect)
            raise wrapped from error

    async def rows(self, statement: Select[Any], values: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows `statement` (a statement built once, with named bind
        parameters) reads with `values`, as dicts of column name to value."""
        driver = self._driver_statement(statement)
        arguments = [values[name] for name in driver.parameters]
        checkout = await self._checkout()
        # asyncpg's Connection (typed Optional: None once invalidated).
        connection: Any = checkout.driver_connection
        try:
            records: Sequence[Any] = await connection.fetch(driver.sql, *arguments)
        except BaseException:
            # Whatever broke the read (a lost server, a statement timeout, a
            # call cancelled mid-query) may have left the connection unfit
            # for the next one: the pool replaces it. Errors here come with
            # outages, when a new connection is the least of the costs.
            checkout.invalidate()
            raise
        checkout.close()  # back to the pool
        return [dict(record) for record in records]
