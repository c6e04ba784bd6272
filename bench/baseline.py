"""The earlier design of this API, kept as a baseline only: one FastAPI
process with async SQLAlchemy (ORM sessions per request, Pydantic response
models), answering the read routes the benchmarks compare (get by id, list,
and the seed's compare of 2 to 10 experiments) from the same PostgreSQL
table the experiments service uses.

    DATABASE_URL=postgresql://... BASELINE_ADDR=127.0.0.1:8000 python -m bench.baseline

It is served the way that design was: uvicorn, one worker, its access log
on; BASELINE_WORKERS=2 runs uvicorn's --workers 2 instead (a supervisor
process and two worker processes sharing the listening socket), each worker
with its own pool. The event loop and HTTP parser are the gateway's
(asyncio, httptools), so that the comparison is of the designs, not of the
loops.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import uvicorn
from fastapi import Body, Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import DateTime, String, Uuid, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from experiments_svc.db import async_url


class Base(DeclarativeBase):
    pass


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    strategy_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    dataset_version: Mapped[str | None] = mapped_column(String(255))
    feature_version: Mapped[str | None] = mapped_column(String(255))
    model_version: Mapped[str | None] = mapped_column(String(255))
    git_commit_hash: Mapped[str | None] = mapped_column(String(255))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(255))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB)
    artifacts: Mapped[dict[str, str]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExperimentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    strategy_id: uuid.UUID
    dataset_version: str | None
    feature_version: str | None
    model_version: str | None
    git_commit_hash: str | None
    mlflow_run_id: str | None
    parameters: dict[str, Any]
    metrics: dict[str, Any]
    artifacts: dict[str, str]
    created_at: datetime
    updated_at: datetime


class MetricDiff(BaseModel):
    values: dict[str, Any]  # experiment id -> its value of the metric, None if it lacks it
    best_id: uuid.UUID | None  # the lowest number; None when no value is a number


class CompareRead(BaseModel):
    experiments: list[ExperimentRead]
    metric_diff: dict[str, MetricDiff]


MAX_COMPARED = 10


def metric_diff(experiments: list[Experiment]) -> dict[str, dict[str, Any]]:
    """The seed's metric_diff: for every metric key of any experiment (in
    the order first met), each experiment's value and the id of the lowest
    number, whatever the metric (the seed's rule: `best_id` points at the
    minimum, for error and Sharpe metrics alike); ties go to the earliest."""
    keys = list(dict.fromkeys(key for row in experiments for key in row.metrics))
    diff = {}
    for key in keys:
        values = {str(row.id): row.metrics.get(key) for row in experiments}
        numbers = [
            (value, row.id)
            for row in experiments
            if isinstance(value := row.metrics.get(key), int | float)
            and not isinstance(value, bool)
        ]
        best = min(numbers, key=lambda pair: pair[0])[1] if numbers else None
        diff[key] = {"values": values, "best_id": best}
    return diff


class _Sessions:
    """The app's session factory; set by create_app."""

    factory: async_sessionmaker[AsyncSession] | None = None


async def session() -> AsyncIterator[AsyncSession]:
    assert _Sessions.factory is not None
    async with _Sessions.factory() as opened:
        yield opened


# Module level: FastAPI resolves the (postponed) annotations of an endpoint
# in its module's globals.
Session = Annotated[AsyncSession, Depends(session)]


def create_app(database_url: str) -> FastAPI:
    # The same pool size as experiments_svc (experiments_svc.db).
    engine = create_async_engine(async_url(database_url), pool_size=10, max_overflow=10)
    _Sessions.factory = async_sessionmaker(engine, expire_on_commit=False)
    app = FastAPI(title="experiments (baseline)")

    @app.get("/api/v1/experiments", response_model=list[ExperimentRead])
    async def list_experiments(
        db: Session,
        strategy_id: uuid.UUID | None = None,
        skip: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[Experiment]:
        query = (
            select(Experiment)
            .order_by(Experiment.created_at.desc(), Experiment.id.desc())
            .offset(skip)
            .limit(limit)
        )
        if strategy_id is not None:
            query = query.where(Experiment.strategy_id == strategy_id)
        return list((await db.scalars(query)).all())

    @app.get("/api/v1/experiments/{experiment_id}", response_model=ExperimentRead)
    async def get_experiment(experiment_id: uuid.UUID, db: Session) -> Experiment:
        row = await db.get(Experiment, experiment_id)
        if row is None:
            raise HTTPException(status_code=404, detail="Experiment not found")
        return row

    @app.post("/api/v1/experiments/compare", response_model=CompareRead)
    async def compare_experiments(
        db: Session, experiment_ids: Annotated[list[uuid.UUID], Body(min_length=2)]
    ) -> dict[str, Any]:
        if len(experiment_ids) > MAX_COMPARED:
            raise HTTPException(
                status_code=400, detail=f"at most {MAX_COMPARED} experiments can be compared"
            )
        query = select(Experiment).where(Experiment.id.in_(experiment_ids))
        found = {row.id: row for row in (await db.scalars(query)).all()}
        missing = [str(i) for i in experiment_ids if i not in found]
        if missing:
            raise HTTPException(status_code=404, detail={"missing": missing})
        rows = [found[i] for i in experiment_ids]
        return {"experiments": rows, "metric_diff": metric_diff(rows)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def app_from_env() -> FastAPI:
    """The app factory each of uvicorn's worker processes calls."""
    return create_app(os.environ["DATABASE_URL"])


def main() -> None:
    host, _, port = os.environ.get("BASELINE_ADDR", "127.0.0.1:8000").rpartition(":")
    workers = int(os.environ.get("BASELINE_WORKERS", "1"))
    if workers == 1:
        uvicorn.run(app_from_env(), host=host, port=int(port), http="httptools", loop="asyncio")
    else:
        # Worker processes need the app by name, to build it in each.
        uvicorn.run(
            "bench.baseline:app_from_env",
            factory=True,
            workers=workers,
            host=host,
            port=int(port),
            http="httptools",
            loop="asyncio",
        )


if __name__ == "__main__":
    main()
