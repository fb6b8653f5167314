"""The checkout benchmark times every database only once its WAL rewrites in place, as a till's ledger does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("bench_checkout", Path(__file__).resolve().parents[2] / "bench" / "checkout.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_checkout"] = bench
_spec.loader.exec_module(bench)


def test_raw_commits_are_timed_with_a_wal_that_no_longer_grows(tmp_path):
    raw = bench.Raw(tmp_path)
    wal = tmp_path / "raw.db-wal"
    assert bench.wal_full(raw.conn, tmp_path / "raw.db")
    size = wal.stat().st_size
    times = raw.run(200)
    assert len(times) == 200 and all(t > 0 for t in times)
    assert wal.stat().st_size == size  # rewritten in place, not lengthened
    assert raw.conn.execute("SELECT count(*) FROM t").fetchone()[0] == raw.i


def test_a_fresh_database_is_not_yet_full(tmp_path):
    import sqlite3

    from ledger.store import tune

    conn = tune(sqlite3.connect(tmp_path / "x.db", isolation_level=None))
    conn.execute("CREATE TABLE t (v)")
    assert not bench.wal_full(conn, tmp_path / "x.db")
