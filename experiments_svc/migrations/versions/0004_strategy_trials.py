"""The compare's trial sums (CONTRACT §11): `strategy_trials`, one row per
strategy and Sharpe-named metric, kept by every write from now on
(experiments_svc.trial_sums) and filled here from the experiments that
exist, deleted ones included, by the same rules.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from experiments_svc import trial_sums

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_EXACT = sa.Numeric(asdecimal=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    table = op.create_table(
        "strategy_trials",
        sa.Column("strategy_id", sa.Uuid(), nullable=False),
        sa.Column("metric_key", sa.Text(), nullable=False),
        sa.Column("trials", sa.BigInteger(), nullable=False),
        sa.Column("unusable", sa.BigInteger(), nullable=False),
        sa.Column("total", _EXACT, nullable=False),
        sa.Column("squares", _EXACT, nullable=False),
        sa.PrimaryKeyConstraint("strategy_id", "metric_key", name="pk_strategy_trials"),
    )
    # The service's own rules, in Python: they have one home.
    trial_sums.rebuild(op.get_bind(), table)


def downgrade() -> None:
    op.drop_table("strategy_trials")
