"""Throwaway servers on loopback that both the tests and the benchmarks
start: a free port (`ports`), a real `mlflow server` (`mlflow_server`) and a
real PgBouncer in transaction mode (`pgbouncer`).

They live in neither tests/ nor bench/ so that bench/ imports nothing from
tests/ (it is not a test suite) and tests/ nothing from bench/ for them. Not
shipped: like tests/ and bench/, it is imported from a checkout only.
"""
