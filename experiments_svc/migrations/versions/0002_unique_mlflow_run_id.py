"""One experiment per MLflow run: a unique index on mlflow_run_id replaces
the plain one. ImportRun's idempotency rests on it (racing imports of one run
cannot both insert), and a unique lookup needs no sort for the list filter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Fails, and changes nothing, if two experiments already share a run id:
    # those rows need a person's decision before the upgrade.
    op.create_index("ux_experiments_mlflow_run_id", "experiments", ["mlflow_run_id"], unique=True)
    op.drop_index("ix_experiments_mlflow_run_id_created_at_id", table_name="experiments")


def downgrade() -> None:
    op.create_index(
        "ix_experiments_mlflow_run_id_created_at_id",
        "experiments",
        ["mlflow_run_id", "created_at", "id"],
    )
    op.drop_index("ux_experiments_mlflow_run_id", table_name="experiments")
