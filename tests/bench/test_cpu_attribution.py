"""How the CPU-per-request scenario (bench.scenarios.cpu_cost) attributes
CPU time: the tally over readings of processes that come and go, the
process tree, the client ports of a process's TCP connections, a process's
CPU counting its threads; and the seed's compare the baseline answers."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

import pytest

from bench.baseline import Experiment, metric_diff
from bench.cpu import Tally, client_ports, descendants, per_request_ms, tcp_connections
from bench.processes import cpu_seconds, single_thread_cpu_seconds
from bench.scenarios.cpu_cost import COMPARED, compare_requests


def test_tally_counts_from_the_first_reading() -> None:
    tally = Tally()
    tally.read({1: 10.0, 2: 5.0})
    tally.read({1: 10.5, 2: 5.25})
    assert tally.seconds == pytest.approx(0.75)
    assert (tally.seen, tally.ended) == (2, 0)


def test_tally_counts_a_process_started_inside_the_window_from_zero() -> None:
    tally = Tally()
    tally.read({1: 10.0})
    tally.read({1: 10.0, 7: 0.25})  # a backend opened for the load
    tally.read({1: 10.5, 7: 0.5})
    assert tally.seconds == pytest.approx(1.0)


def test_tally_keeps_an_ended_process_up_to_its_last_reading() -> None:
    tally = Tally()
    tally.read({1: 1.0, 2: 2.0})
    tally.read({1: 1.5, 2: 2.25})
    tally.read({1: 2.0})  # 2 ended: what it spent after 2.25 is lost
    assert tally.seconds == pytest.approx(1.25)
    assert (tally.seen, tally.ended) == (2, 1)


def test_tally_takes_a_counter_going_down_for_a_reused_pid() -> None:
    tally = Tally()
    tally.read({3: 4.0})
    tally.read({3: 4.5})
    tally.read({3: 0.25})  # another process under pid 3, 0.25 s old
    assert tally.seconds == pytest.approx(0.75)


def test_an_empty_first_reading_still_opens_the_window() -> None:
    tally = Tally()
    tally.read({})
    tally.read({9: 0.125})
    assert tally.seconds == pytest.approx(0.125)


def test_per_request_ms() -> None:
    assert per_request_ms(1.5, 1000) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="no request"):
        per_request_ms(1.0, 0)


def test_descendants_are_the_whole_tree_below_the_root() -> None:
    # uvicorn's supervisor 10 with workers 11 and 12 and a resource tracker
    # 13 below 11; 20 is another process of the same parent 1.
    parents = {10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
    assert descendants(10, parents) == {10, 11, 12, 13}
    assert descendants(12, parents) == {12}


TCP_TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 1001 1
   1: 0100007F:C350 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 2002 1
   2: 0100007F:1538 0100007F:C350 01 00000000:00000000 00:00000000 00000000   106        0 3003 1
"""


def test_tcp_table_rows_are_ports_and_inodes() -> None:
    # 0x1538 = 5432, 0xC350 = 50000: a listener, a client's end, the server's end.
    assert tcp_connections(TCP_TABLE) == [(5432, 0, 1001), (50000, 5432, 2002), (5432, 50000, 3003)]


def test_client_ports_are_this_process_connections_to_the_server_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            with accepted:
                found = client_ports([os.getpid()], port)
                # The client's end only: the accepted end's remote port is the client's.
                assert found == {client.getsockname()[1]}
        assert client_ports([os.getpid()], port) == set()


def test_cpu_seconds_count_every_thread() -> None:
    before = cpu_seconds(os.getpid()), single_thread_cpu_seconds(os.getpid())

    def spin() -> None:
        started = time.thread_time()
        while time.thread_time() - started < 0.3:
            sum(range(10_000))

    worker = threading.Thread(target=spin)
    worker.start()
    worker.join()
    whole = cpu_seconds(os.getpid()) - before[0]
    main_thread = single_thread_cpu_seconds(os.getpid()) - before[1]
    assert whole >= 0.25
    assert main_thread < 0.1  # schedstat is the main thread's alone


def _experiment(metrics: dict[str, object]) -> Experiment:
    return Experiment(id=uuid.uuid4(), metrics=metrics)


def test_seed_metric_diff_points_at_the_lowest_number() -> None:
    a = _experiment({"mse": 0.2, "sharpe": 1.5, "note": "x"})
    b = _experiment({"mse": 0.1, "sharpe": True})
    c = _experiment({"mse": 0.1, "sharpe": 0.5})
    diff = metric_diff([a, b, c])
    assert list(diff) == ["mse", "sharpe", "note"]
    assert diff["mse"] == {
        "values": {str(a.id): 0.2, str(b.id): 0.1, str(c.id): 0.1},
        "best_id": b.id,  # a tie goes to the earliest
    }
    assert diff["sharpe"]["best_id"] == c.id  # the minimum even for a Sharpe; a bool is no number
    assert diff["note"] == {
        "values": {str(a.id): "x", str(b.id): None, str(c.id): None},
        "best_id": None,
    }


def test_compare_requests_send_consecutive_groups_of_ten() -> None:
    ids = [str(uuid.UUID(int=n)) for n in range(25)]
    requests = compare_requests(ids)
    assert [json.loads(r.body) for r in requests] == [ids[0:10], ids[10:20]]
    assert {(r.method, r.path) for r in requests} == {("POST", "/api/v1/experiments/compare")}
    assert COMPARED == 10
