"""The database schema, as SQLAlchemy models. Alembic migrations own the
schema; a test checks that the migrated database and these models agree."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JsonDocument = JSON().with_variant(JSONB(), "postgresql")

# An exact decimal of any size: PostgreSQL's unconstrained numeric; SQLite
# has none (its NUMERIC is a double), so there it is the decimal's text.
ExactDecimal = Numeric(asdecimal=True).with_variant(Text(), "sqlite")

# Lineage written when the experiment is recorded and never changed after.
VERSION_FIELDS = ("dataset_version", "feature_version", "model_version", "git_commit_hash")
WRITE_ONCE_FIELDS = ("strategy_id", *VERSION_FIELDS)
# Nullable string columns, at most 255 characters each; a list can filter on
# each by exact match.
OPTIONAL_TEXT_FIELDS = (*VERSION_FIELDS, "mlflow_run_id")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. PostgreSQL stores timestamptz; SQLite
    has no time zones, so it stores naive UTC and gets UTC attached on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ExperimentRow(Base):
    """One recorded research run (`research.experiments.v1.Experiment`)."""

    __tablename__ = "experiments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    strategy_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    dataset_version: Mapped[str | None] = mapped_column(String(255))
    feature_version: Mapped[str | None] = mapped_column(String(255))
    model_version: Mapped[str | None] = mapped_column(String(255))
    git_commit_hash: Mapped[str | None] = mapped_column(String(255))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(255))
    parameters: Mapped[dict[str, Any]] = mapped_column(JsonDocument, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonDocument, nullable=False)
    artifacts: Mapped[dict[str, str]] = mapped_column(JsonDocument, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # Number of the latest revision (experiment_revisions), 1 at creation.
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="1")
    # Set while the experiment is deleted (soft delete, AIP-164).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The client's request_id of the create (AIP-155) and a digest of that
    # request, so that a repeat returns this row and a different request
    # with the same id is refused.
    request_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    request_digest: Mapped[str | None] = mapped_column(String(64))

    # Every list is ordered newest first by (created_at, id); each filter gets
    # an index whose trailing columns serve that order, so a filtered page is
    # an index range scan with no sort. B-trees scan backwards for DESC.
    __table_args__ = (
        Index("ix_experiments_created_at_id", "created_at", "id"),
        Index("ix_experiments_strategy_id_created_at_id", "strategy_id", "created_at", "id"),
        *(
            Index(f"ix_experiments_{name}_created_at_id", name, "created_at", "id")
            for name in VERSION_FIELDS
        ),
        # One experiment per MLflow run: ImportRun's idempotency rests on it,
        # and it also serves the mlflow_run_id filter (at most one row).
        Index("ux_experiments_mlflow_run_id", "mlflow_run_id", unique=True),
        # One experiment per create request_id: racing retries insert once.
        Index("ux_experiments_request_id", "request_id", unique=True),
    )


class ExperimentRevisionRow(Base):
    """One revision of an experiment (`research.experiments.v1.ExperimentRevision`):
    written in the transaction of the change, never updated or deleted (on
    PostgreSQL and SQLite a trigger refuses both)."""

    __tablename__ = "experiment_revisions"

    experiment_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    # The experiment after the change, as convert.snapshot writes it.
    experiment: Mapped[dict[str, Any]] = mapped_column(JsonDocument, nullable=False)
    changed_fields: Mapped[list[str]] = mapped_column(JsonDocument, nullable=False)
    actor: Mapped[str | None] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    # Read newest first by experiment: the primary key's index serves it.
    __table_args__ = (
        PrimaryKeyConstraint("experiment_id", "revision", name="pk_experiment_revisions"),
    )


class TrialSumRow(Base):
    """The trials of one Sharpe-named metric of one strategy, deleted
    experiments included, kept by every write (experiments_svc.trial_sums):
    how many experiments hold a usable value of it, how many hold a value
    whose periods_per_year is unusable, and the exact sum and sum of squares
    of the usable values per observation."""

    __tablename__ = "strategy_trials"

    strategy_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    metric_key: Mapped[str] = mapped_column(Text, nullable=False)
    trials: Mapped[int] = mapped_column(BigInteger, nullable=False)
    unusable: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total: Mapped[Any] = mapped_column(ExactDecimal, nullable=False)
    squares: Mapped[Any] = mapped_column(ExactDecimal, nullable=False)

    # A compare reads a strategy's rows by the primary key's prefix.
    __table_args__ = (PrimaryKeyConstraint("strategy_id", "metric_key", name="pk_strategy_trials"),)
