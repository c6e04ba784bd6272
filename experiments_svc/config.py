"""Settings of the experiments service, read once from the environment (see
research_common.settings for how a field names its variable)."""

from __future__ import annotations

from dataclasses import dataclass, field

from research_common.config import boolean, number, parse_address, whole_number
from research_common.constants import EXPERIMENTS_ADDRESS, TRACKING_ADDRESS
from research_common.settings import ServiceSettings, variable
from research_common.targets import parse_target

# The embedded default: a SQLite file under .data/ in the working directory.
DEFAULT_DATABASE_URL = "sqlite:///.data/experiments.db"
# Connections the service keeps open to PostgreSQL (experiments_svc.db).
DEFAULT_POOL_SIZE = 20


@dataclass(frozen=True, slots=True)
class Settings(ServiceSettings):
    """Everything the experiments service reads from its environment."""

    address: str = field(
        default=EXPERIMENTS_ADDRESS, metadata=variable("EXPERIMENTS_ADDR", parse_address)
    )
    database_url: str = field(default=DEFAULT_DATABASE_URL, metadata=variable("DATABASE_URL"))
    # Apply Alembic migrations at start-up (off where a separate job runs them).
    auto_migrate: bool = field(default=True, metadata=variable("AUTO_MIGRATE", boolean))
    # Seconds allowed to connect to the database, and for one statement.
    db_timeout: float = field(default=5.0, metadata=variable("DB_TIMEOUT", number(minimum=0.1)))
    # PostgreSQL connections kept open, and the most calls using the database
    # at once (more wait for one, up to DB_TIMEOUT). SQLite uses one.
    db_pool_size: int = field(
        default=DEFAULT_POOL_SIZE, metadata=variable("DB_POOL_SIZE", whole_number(minimum=1))
    )
    # PostgreSQL is reached through a pooler in transaction mode (PgBouncer's
    # pool_mode = transaction): no prepared statement outlives its call
    # (experiments_svc.db.TRANSACTION_POOLING).
    db_transaction_pooling: bool = field(
        default=False, metadata=variable("DB_TRANSACTION_POOLING", boolean)
    )
    # Where ImportRun finds the tracking service: a gRPC target, as the
    # gateway reads it (research_common.targets).
    tracking_address: str = field(
        default=TRACKING_ADDRESS, metadata=variable("TRACKING_ADDR", parse_target)
    )
    # Seconds ImportRun waits for the tracking service (less when the
    # caller's own deadline is nearer). Under the gateway's 5 s deadline, so
    # that a tracking outage is a 503 rather than a 504.
    tracking_timeout: float = field(
        default=4.5, metadata=variable("TRACKING_TIMEOUT", number(minimum=0.1))
    )
