"""The earlier design of this API, kept as a baseline only: one FastAPI
process with async SQLAlchemy (ORM sessions per request, Pydantic response
models), answering the two read routes the benchmarks compare from the same
PostgreSQL table the experiments service uses.

    DATABASE_URL=postgresql://... BASELINE_ADDR=127.0.0.1:8000 python -m bench.baseline

It is served the way that design was: uvicorn, one worker, its access log
on. The event loop and HTTP parser are the gateway's (asyncio, httptools),
so that the comparison is of the designs, not of the loops.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query
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

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    host, _, port = os.environ.get("BASELINE_ADDR", "127.0.0.1:8000").rpartition(":")
    app = create_app(os.environ["DATABASE_URL"])
    uvicorn.run(app, host=host, port=int(port), http="httptools", loop="asyncio")


if __name__ == "__main__":
    main()
