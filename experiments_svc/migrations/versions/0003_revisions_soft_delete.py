"""A record that can be trusted (CONTRACT §9): the append-only revisions
table, with one `create` revision back-filled for every existing experiment;
`revision` and `deleted_at` on experiments (soft delete); the create's
`request_id` (idempotent create) under a unique index.

On both databases a trigger refuses UPDATE and DELETE on the revisions
table, so that not even a bug in the service can rewrite history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from experiments_svc.convert import every_set_field, first_revision, snapshot

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_BATCH = 1000
_REFUSAL = "experiment revisions are append-only"

_POSTGRESQL_GUARD = (
    f"""
    CREATE FUNCTION experiment_revisions_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{_REFUSAL}: % refused', TG_OP;
    END
    $$
    """,
    """
    CREATE TRIGGER experiment_revisions_append_only
    BEFORE UPDATE OR DELETE ON experiment_revisions
    FOR EACH ROW EXECUTE FUNCTION experiment_revisions_append_only()
    """,
)
_SQLITE_GUARD = tuple(
    f"""
    CREATE TRIGGER experiment_revisions_no_{operation.lower()}
    BEFORE {operation} ON experiment_revisions
    BEGIN SELECT RAISE(ABORT, '{_REFUSAL}: {operation} refused'); END
    """
    for operation in ("UPDATE", "DELETE")
)


def upgrade() -> None:
    op.add_column(
        "experiments", sa.Column("revision", sa.BigInteger(), nullable=False, server_default="1")
    )
    op.add_column("experiments", sa.Column("deleted_at", sa.DateTime(timezone=True)))
    op.add_column("experiments", sa.Column("request_id", sa.Uuid()))
    op.add_column("experiments", sa.Column("request_digest", sa.String(64)))
    op.create_index("ux_experiments_request_id", "experiments", ["request_id"], unique=True)
    revisions = op.create_table(
        "experiment_revisions",
        sa.Column("experiment_id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("experiment", _JSON, nullable=False),
        sa.Column("changed_fields", _JSON, nullable=False),
        sa.Column("actor", sa.String(255)),
        sa.Column("request_id", sa.String(255)),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "revision", name="pk_experiment_revisions"),
    )
    _backfill(revisions)
    bind = op.get_bind()
    guard = _POSTGRESQL_GUARD if bind.dialect.name == "postgresql" else _SQLITE_GUARD
    for statement in guard:
        op.execute(statement)


def _backfill(revisions: sa.Table) -> None:
    """One `create` revision per experiment, as it stands now (recorded at
    its creation time, by no known actor), in batches by id."""
    bind = op.get_bind()
    experiments = sa.table(
        "experiments",
        *(
            sa.column(name, kind)
            for name, kind in (
                ("id", sa.Uuid()),
                ("strategy_id", sa.Uuid()),
                ("dataset_version", sa.String()),
                ("feature_version", sa.String()),
                ("model_version", sa.String()),
                ("git_commit_hash", sa.String()),
                ("mlflow_run_id", sa.String()),
                ("parameters", _JSON),
                ("metrics", _JSON),
                ("artifacts", _JSON),
                ("created_at", sa.DateTime(timezone=True)),
                ("updated_at", sa.DateTime(timezone=True)),
            )
        ),
    )
    after = None
    while True:
        query = sa.select(experiments).order_by(experiments.c.id).limit(_BATCH)
        if after is not None:
            query = query.where(experiments.c.id > after)
        rows = [dict(row) for row in bind.execute(query).mappings()]
        if not rows:
            return
        bind.execute(
            revisions.insert(),
            [
                {
                    "experiment_id": row["id"],
                    "revision": 1,
                    "action": "create",
                    "experiment": snapshot(first_revision(row)),
                    "changed_fields": every_set_field(row),
                    "actor": None,
                    "request_id": None,
                    "recorded_at": row["created_at"],
                }
                for row in rows
            ],
        )
        after = rows[-1]["id"]


def downgrade() -> None:
    # Dropping the table drops its triggers; the guard function goes after.
    op.drop_table("experiment_revisions")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION experiment_revisions_append_only()")
    op.drop_index("ux_experiments_request_id", table_name="experiments")
    with op.batch_alter_table("experiments") as batch:
        for column in ("request_digest", "request_id", "deleted_at", "revision"):
            batch.drop_column(column)
