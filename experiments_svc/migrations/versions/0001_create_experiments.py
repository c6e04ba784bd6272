"""Create the experiments table and the indexes behind its list filters.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
# Columns a list filters on; each index ends in the newest-first order.
_FILTERED = (
    "strategy_id",
    "dataset_version",
    "feature_version",
    "model_version",
    "git_commit_hash",
    "mlflow_run_id",
)


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("strategy_id", sa.Uuid(), nullable=False),
        sa.Column("dataset_version", sa.String(255), nullable=True),
        sa.Column("feature_version", sa.String(255), nullable=True),
        sa.Column("model_version", sa.String(255), nullable=True),
        sa.Column("git_commit_hash", sa.String(255), nullable=True),
        sa.Column("mlflow_run_id", sa.String(255), nullable=True),
        sa.Column("parameters", _JSON, nullable=False),
        sa.Column("metrics", _JSON, nullable=False),
        sa.Column("artifacts", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
    )
    op.create_index("ix_experiments_created_at_id", "experiments", ["created_at", "id"])
    for column in _FILTERED:
        op.create_index(
            f"ix_experiments_{column}_created_at_id", "experiments", [column, "created_at", "id"]
        )


def downgrade() -> None:
    op.drop_table("experiments")
