"""The harness's readers (no timing): EXPLAIN ANALYZE text as the scale and
revisions scenarios report it, the index column list built from an order's
clauses, and the `Link` header the runs-paging scenario follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import plans
from bench.paging import next_link

EXPLAIN = Path(__file__).parent / "explain"


def _plan(name: str) -> str:
    return (EXPLAIN / f"{name}.txt").read_text()


# Trimmed from the scale scenario's plans at 1M rows (PostgreSQL 15): the
# metric order's deep page, one strategy by the metric order, and the same
# with the what-if index.
PARALLEL_DEEP = _plan("parallel_deep")
BITMAP = _plan("bitmap")
INDEX_WITH_FILTER = _plan("index_with_filter")


def test_parallel_scan_counts_every_loop_and_the_rows_its_filter_removed() -> None:
    # 333,000 passed and 333 removed per loop, over two workers and the
    # leader; the filter's own "->" (a JSON operator) does not end the node.
    read = plans.reading(PARALLEL_DEEP)
    assert read == plans.Reading("Parallel Seq Scan on experiments", (333_000 + 333) * 3)
    assert plans.sort_method(PARALLEL_DEEP) == "top-N heapsort"
    assert plans.execution_ms(PARALLEL_DEEP) == 2127.860
    assert plans.jit_ms(PARALLEL_DEEP) == 106.073


def test_bitmap_scan_is_named_by_its_index() -> None:
    # Heap and index scan read the same 10,000 rows; the inner one names the index.
    assert [r.node for r in plans.readings(BITMAP)] == [
        "Bitmap Heap Scan on experiments",
        "Bitmap Index Scan on ix_experiments_strategy_id_created_at_id",
    ]
    read = plans.reading(BITMAP)
    assert read == plans.Reading(
        "Bitmap Index Scan on ix_experiments_strategy_id_created_at_id", 10_000
    )
    assert plans.jit_ms(BITMAP) == 0.0


def test_index_scan_that_filters_reads_what_it_removed() -> None:
    read = plans.reading(INDEX_WITH_FILTER)
    assert read == plans.Reading("Index Scan using ix_what_if on experiments", 101 + 283_305)
    assert plans.sort_method(INDEX_WITH_FILTER) is None


def test_a_plan_without_a_scan_or_timing() -> None:
    assert plans.reading("Result  (cost=0.00..0.01 rows=1 width=4)") is None
    assert plans.execution_ms("Result") is None


# EXPLAIN (ANALYZE, BUFFERS, WAL) of an UPDATE on PostgreSQL 15: the outer
# node's counts include its children's.
UPDATE_PLAN = """\
Update on experiments  (cost=0.42..8.44 rows=0 width=0) (actual time=0.303..0.303 rows=0 loops=1)
  Buffers: shared hit=11 read=26 dirtied=12 written=1
  WAL: records=11 fpi=10 bytes=48442
  ->  Index Scan using pk_experiments on experiments  (actual time=0.033..0.034 rows=1 loops=1)
        Index Cond: (id = '00013afe-fbb1-438f-9b0f-30c09a6f7792'::uuid)
        WAL: records=1 bytes=59
Planning Time: 0.363 ms
Execution Time: 0.345 ms"""


def test_wal_of_the_outer_node() -> None:
    assert plans.wal(UPDATE_PLAN) == {"records": 11, "fpi": 10, "bytes": 48442}
    # No full-page image: PostgreSQL leaves fpi out.
    assert plans.wal("Insert on t\n  WAL: records=2 bytes=879") == {
        "records": 2,
        "fpi": 0,
        "bytes": 879,
    }
    assert plans.wal("Result  (actual time=0.001..0.001 rows=1 loops=1)") == {}


def test_index_columns_keep_each_direction() -> None:
    clauses = ["CASE WHEN (a IN ('x')) THEN 0 ELSE 2 END ASC", 'b COLLATE "C" DESC', "t.id DESC"]
    assert plans.index_columns(clauses) == (
        "(CASE WHEN (a IN ('x')) THEN 0 ELSE 2 END) ASC, (b COLLATE \"C\") DESC, (t.id) DESC"
    )
    with pytest.raises(ValueError, match="direction"):
        plans.index_columns(["created_at"])


@pytest.mark.parametrize(
    ("header", "target"),
    [
        # the gateway's form (gateway.transcoding.next_link)
        (
            '</api/v1/tracking/runs?page_size=100&page_token=abc>; rel="next"',
            "/api/v1/tracking/runs?page_size=100&page_token=abc",
        ),
        ("</a?x=1>; rel=next", "/a?x=1"),
        ('</prev>; rel="prev", </next?t=a%2Cb>; rel="next"', "/next?t=a%2Cb"),
        ('</both>; title="p"; REL="Next Last"', "/both"),
        ('</prev>; rel="prev"', None),
        ("", None),
        (None, None),
    ],
)
def test_next_link(header: str | None, target: str | None) -> None:
    assert next_link(header) == target
