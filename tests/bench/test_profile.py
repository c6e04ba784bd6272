"""bench.profile's reading of py-spy's collapsed stacks."""

from __future__ import annotations

from bench.profile import frame_name, tally


def test_a_frame_is_its_function_and_module() -> None:
    assert frame_name("unary (research_common/interceptor.py:142)") == "unary (interceptor.py)"
    assert frame_name("<module> (gateway/__main__.py:3)") == "<module> (__main__.py)"
    assert frame_name("process_idle") == "process_idle"


def test_inclusive_and_self_counts() -> None:
    lines = [
        "main (a.py:1);handle (b.py:5);encode (c.py:9) 6",
        "main (a.py:1);handle (b.py:7) 3",
        "main (a.py:1);log (d.py:2);encode (c.py:11) 1",
        "",
        "garbage",
    ]
    inclusive, own, total = tally(lines)
    assert total == 10
    assert inclusive == {
        "main (a.py)": 10,
        "handle (b.py)": 9,
        "encode (c.py)": 7,
        "log (d.py)": 1,
    }
    assert own == {"encode (c.py)": 7, "handle (b.py)": 3}


def test_a_recursive_function_counts_once_per_sample() -> None:
    inclusive, own, total = tally(["f (m.py:1);f (m.py:2);f (m.py:3) 4"])
    assert (inclusive["f (m.py)"], own["f (m.py)"], total) == (4, 4, 4)
