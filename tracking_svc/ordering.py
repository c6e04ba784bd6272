"""The order of ListRuns (CONTRACT §10), as MLflow's `order_by`: every
name is one the caller picked from the list below and every key is
checked (research_common.filters) and put in backticks; nothing is pasted.

MLflow's SQL stores sort a metric's NaN after its numbers and a missing
metric, parameter or time after everything, in both directions, and end
every order on the start time (newest first, unless ordered by it) and
then the run id: the contract's "missing values last, id as the final
tie-break". One difference is MLflow's own: its SQL stores keep ±inf as
±1.797e308, so a run whose metric is infinite sorts as the largest or
smallest number, not last.
"""

from __future__ import annotations

from research_common.filters import Field, Fields
from research_common.ordering import OrderKey

FIELDS = Fields(columns=("start_time", "end_time"), maps=("metrics", "params"))
BEST_OF = "metrics"
# Newest first: the order of the keyset pages (tracking_svc.service).
DEFAULT = (OrderKey(Field("start_time"), descending=True),)


def mlflow_order_by(keys: tuple[OrderKey, ...]) -> list[str]:
    """MLflow's order_by clauses for `keys`."""
    return [_clause(key) for key in keys]


def _clause(key: OrderKey) -> str:
    direction = "DESC" if key.descending else "ASC"
    if key.field.key is None:  # start_time, end_time
        return f"attributes.{key.field.name} {direction}"
    return f"{key.field.name}.`{key.field.key}` {direction}"
