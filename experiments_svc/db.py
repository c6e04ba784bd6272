"""The database engine: URL handling, pool settings, and which database
errors mean "unavailable"."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy import event, exc, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from experiments_svc.config import DEFAULT_POOL_SIZE, Settings
from experiments_svc.trial_sums import exact_add
from research_common.config import ConfigError
from research_common.errors import InvalidArgument, ServiceError, Unavailable

log = logging.getLogger("experiments.db")

# The service talks to the database through asyncio drivers. DATABASE_URL may
# name any driver of a supported database (the contract's production form is
# postgresql+psycopg2://); the driver part is replaced by the async one.
_ASYNC_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}


def async_url(database_url: str) -> URL:
    """DATABASE_URL with its driver swapped for the asyncio driver."""
    try:
        url = make_url(database_url)
    except exc.ArgumentError:
        raise ConfigError(f"DATABASE_URL is not a database URL: {database_url!r}") from None
    backend = url.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ConfigError(f"DATABASE_URL must be a postgresql:// or sqlite:// URL, got {backend!r}")
    return url.set(drivername=f"{backend}+{_ASYNC_DRIVERS[backend]}")


# orjson reads an integer beyond 64 bits as a float, where json.loads keeps
# it exact; any such float is at least 2**63 in size. Rare in stored
# documents (the API keeps integers within +-(2**53 - 1), CONTRACT §3).
_BIG = float(2**63)


def read_json(document: str) -> Any:
    """A stored JSON document (parameters, metrics, artifacts, a revision)
    as Python values, exactly as json.loads reads it, in a fifth of its time:
    it was the largest single cost of reading a page of rows (bench.profile,
    BENCHMARKS.md). orjson reads it; json.loads reads it again when orjson
    refuses it (a lone surrogate SQLite may hold, a number beyond a double's
    range, which json.loads reads as infinity) or when the result holds a
    float of 2**63 or more, which may have been an integer.

    The check is on the values, not the text: a search of the text for long
    digit runs cost four times orjson's own read, and the long fractions of
    PostgreSQL's numeric (1.23000000000000000000) sent every such document
    to json.loads, which orjson reads to the same double."""
    try:
        value = orjson.loads(document)
    except orjson.JSONDecodeError:
        return json.loads(document)
    return json.loads(document) if _holds_a_big_float(value) else value


def _holds_a_big_float(value: Any) -> bool:
    if type(value) is dict:
        items: Any = value.values()
    elif type(value) is list:
        items = value
    else:
        return type(value) is float and not -_BIG < value < _BIG
    for item in items:
        kind = type(item)
        if kind is float:
            if not -_BIG < item < _BIG:
                return True
        elif (kind is dict or kind is list) and _holds_a_big_float(item):
            return True
    return False


def engine_for(settings: Settings) -> AsyncEngine:
    """The engine the service's settings describe (DATABASE_URL, DB_TIMEOUT,
    DB_POOL_SIZE, DB_TRANSACTION_POOLING)."""
    return create_engine(
        settings.database_url,
        timeout=settings.db_timeout,
        pool_size=settings.db_pool_size,
        transaction_pooling=settings.db_transaction_pooling,
    )


def create_engine(
    database_url: str,
    *,
    timeout: float,
    pool_size: int = DEFAULT_POOL_SIZE,
    transaction_pooling: bool = False,
) -> AsyncEngine:
    """An engine for DATABASE_URL whose connects and statements give up
    after `timeout` seconds, so that an outage surfaces within a call's
    deadline. `transaction_pooling` (DB_TRANSACTION_POOLING; PostgreSQL
    only) is for a pooler such as PgBouncer in transaction mode between the
    service and PostgreSQL: see `TRANSACTION_POOLING`."""
    url = async_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, timeout)
    connect_args: dict[str, Any] = {"timeout": timeout, "command_timeout": timeout}
    if transaction_pooling:
        connect_args |= TRANSACTION_POOLING
    engine = create_async_engine(
        url,
        # A fixed pool, no overflow: an overflow connection is opened for one
        # call and closed after it, and under steady load that churn cost
        # more than the calls (scenario 10 saw 37-54 connections opened and
        # closed per 4 s round of compares at 10 + 10). Calls beyond the pool
        # wait for a connection, up to DB_TIMEOUT.
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout,
        connect_args=connect_args,
        json_deserializer=read_json,
    )
    event.listen(engine.sync_engine, "checkout", _closed_by_the_server)
    return engine


def _closed_by_the_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """SQLAlchemy's pool checkout hook: a connection the server closed while
    it sat in the pool (a restart, an idle timeout, pg_terminate_backend) is
    swapped for a new one before a call gets it. asyncpg notices the close
    as it happens, so asking costs no round trip. Without it each dead
    connection failed one call: SQLAlchemy's own statements then invalidate
    the whole pool, but the reads by key (experiments_svc.driver_reads)
    only the connection they ran on."""
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("the server closed this pooled connection")


def _unnamed_statement() -> str:
    # asyncpg takes a name of "" for PostgreSQL's unnamed statement.
    return ""


# A pooler in transaction mode lends a server connection for one transaction
# (or one message batch outside a transaction) at a time, so nothing may be
# left on a server connection for later: no named prepared statement, no SET,
# no session advisory lock, no LISTEN, no temporary table, no cursor held past
# its transaction. Of these the service has only the first (migrations take a
# transaction-scoped advisory lock: experiments_svc.migrate). asyncpg and
# SQLAlchemy prepare each statement under a name of their own and keep it for
# reuse; behind the pooler the reuse fails with 'prepared statement
# "__asyncpg_stmt_2a__" does not exist' when it lands on another server
# connection, or "... already exists" when two clients' counters meet on one.
# With these connect arguments every statement is PostgreSQL's unnamed one,
# which neither cache keeps (asyncpg's statement_cache_size, SQLAlchemy's
# prepared_statement_cache_size) and which asyncpg, its cache off, parses again
# in the batch that binds and runs it. So nothing prepared outlives its
# transaction, nothing is left on a server connection to be closed later (a
# unique name per statement, the other known remedy, leaves every statement
# behind unless the pooler runs DISCARD ALL after each transaction), and no
# two clients' names can collide. The store runs its reads in a transaction
# as well (experiments_svc.store). The cost: each statement is parsed and
# planned on every call.
TRANSACTION_POOLING: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": _unnamed_statement,
}


def _sqlite_engine(url: URL, timeout: float) -> AsyncEngine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # One connection: SQLite serialises writers anyway, and one connection
    # turns "database is locked" races into an orderly queue.
    engine = create_async_engine(
        url,
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=timeout,
        connect_args={"timeout": timeout},
        json_deserializer=read_json,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # The trial sums' exact decimals are text on SQLite, added by this
        # (experiments_svc.trial_sums).
        dbapi_connection.create_function("exact_add", 2, exact_add, deterministic=True)
        cursor.close()

    return engine


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database; raises when it is unreachable."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def translate_error(error: BaseException) -> ServiceError | None:
    """What a database exception means for the caller; None for a bug.

    Connection loss, refusal, timeouts and every other driver-level failure
    are UNAVAILABLE: the caller may retry, and it is never reported as a
    missing row or an internal error.
    """
    if isinstance(error, exc.DataError | asyncpg.DataError):
        # Validation should stop bad values before the database sees them;
        # if one slips through, it is still the caller's input.
        reason = error.orig if isinstance(error, exc.DataError) else error
        return InvalidArgument(f"the database rejected a value: {reason}")
    # OSError covers refused connections and (since 3.11) TimeoutError, which
    # asyncpg raises when a connect or statement outlives DB_TIMEOUT.
    # exc.TimeoutError is the pool's: every connection is busy. asyncpg's own
    # errors arrive unwrapped from the reads by key (experiments_svc.
    # driver_reads) and from a pool connect, which SQLAlchemy does not wrap.
    if isinstance(
        error,
        exc.DBAPIError
        | exc.DisconnectionError
        | exc.TimeoutError
        | OSError
        | asyncpg.PostgresError
        | asyncpg.InterfaceError,
    ):
        log.warning("database unavailable: %s: %s", type(error).__name__, error)
        return Unavailable("the database is unavailable; retry later")
    return None
