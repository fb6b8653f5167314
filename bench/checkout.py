"""Durable checkouts per second against raw durable SQLite commits on the same disk.

Both sides use the ledger's settings (WAL, synchronous=FULL, its checkpoint
size) in the same directory, in the same run: the raw side commits one
single-row INSERT per transaction; the checkout side runs full sales (pricing,
events with hash chain, balances, lots, sale rows, print job) through the
Loyalty service. Goal: ratio >= 0.5.

Every database is timed only once its WAL file has reached its full size: a
commit that lengthens the file costs this disk about twice one that rewrites
it in place (the file's size must be flushed too), and a till's ledger is in
place nearly all its life. Timing the raw side while its WAL grew, and the
till's after, had made the ratio look about half again better than it is.

Beside it, `sql_only_ratio`: the same sales' statements replayed on a copy of
the ledger with no Python around them, against raw commits again; it bounds
what any speed-up of the rules, hashing and JSON could give. And
`pages_only_ratio`: commits that write as many pages as a sale does
(`wal_frames_per_sale`) and nothing else: what this disk allows a sale of
that size at all.

Prints progress, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger import clock
from ledger.config import load
from ledger.service import CheckoutRequest, Loyalty
from ledger.store import tune

ROOT = Path(__file__).resolve().parents[1]
CARTS = [["ESP*2", "CRO"], ["LAT"], ["SPN", "DAT"], ["BEANS", "ESP"], ["LAT*3", "CRO*2"]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wal_full(conn: sqlite3.Connection, db: Path) -> bool:
    """Whether the WAL file has reached the size at which it is checkpointed, so later commits rewrite it in place."""
    frames = int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    wal = db.with_name(db.name + "-wal")
    return wal.exists() and wal.stat().st_size >= 32 + frames * (page + 24)


class Raw:
    """Single-row durable commits: the floor a sale's commit cannot beat."""

    def __init__(self, directory: Path):
        self.conn = tune(sqlite3.connect(directory / "raw.db", isolation_level=None))
        self.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        self.i = 0
        while not wal_full(self.conn, directory / "raw.db"):
            self.run(500)

    def run(self, n: int) -> list[float]:
        times = []
        for _ in range(n):
            self.i += 1
            start = time.perf_counter()
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("INSERT INTO t (v) VALUES (?)", (f"row {self.i}",))
            self.conn.execute("COMMIT")
            times.append(time.perf_counter() - start)
        return times


class Till:
    """Full checkouts through the Loyalty service on the demo store."""

    def __init__(self, directory: Path):
        config = directory / "config.toml"
        text = (ROOT / "config.toml").read_text(encoding="utf-8").replace('path = "var/ledger.db"', 'path = "ledger.db"')
        config.write_text(text, encoding="utf-8")
        self.cfg = load(config)
        self.service = Loyalty.open(self.cfg)
        self.now = clock.parse_now("2026-11-22T08:00", self.cfg.store.tz)
        self.cards = [f"uid:04{i:012X}" for i in range(200)]
        for card in self.cards:  # enrol first: the timed loop is the steady state of a till
            self.service.checkout(CheckoutRequest.from_cli(card, ["ESP"], []), self.now)
        self.i = 0
        while not wal_full(self.service.ledger.conn, directory / "ledger.db"):
            self.run(50)

    def run(self, n: int) -> list[float]:
        times = []
        for _ in range(n):
            self.i += 1
            req = CheckoutRequest.from_cli(self.cards[self.i % len(self.cards)], CARTS[self.i % len(CARTS)], [])
            self.now += timedelta(seconds=1)
            start = time.perf_counter()
            self.service.checkout(req, self.now)
            times.append(time.perf_counter() - start)
        return times


class Recorder:
    """Stands in for the ledger's connection and keeps every statement a sale runs, with its parameters."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.statements: list[tuple[str, str, Any]] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self.statements.append(("one", sql, params))
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        rows = list(rows)
        self.statements.append(("many", sql, rows))
        return self.conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def sql_only(till: Till, base: Raw, directory: Path, n: int) -> tuple[list[float], list[float]]:
    """The same sales' SQL replayed with no Python around it: what a sale would cost if the rules were free.

    The ledger is copied, `n` more sales run on the original with their statements
    recorded, then the copy replays them, one transaction per sale, interleaved
    with raw commits as in the main measurement.
    """
    conn = till.service.ledger.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(directory / "ledger.db", directory / "replay.db")
    recorder = Recorder(conn)
    till.service.ledger.conn = recorder  # type: ignore[assignment]
    try:
        till.run(n + 500)  # the first of them fill the copy's WAL, untimed
    finally:
        till.service.ledger.conn = conn
    sales: list[list[tuple[str, str, Any]]] = []
    for kind, sql, params in recorder.statements:
        if sql == "BEGIN IMMEDIATE":
            sales.append([])
        sales[-1].append((kind, sql, params))
    copy = tune(sqlite3.connect(directory / "replay.db", isolation_level=None))

    def replay_sale(sale: list[tuple[str, str, Any]]) -> None:
        for kind, sql, params in sale:
            if kind == "one":
                copy.execute(sql, params).fetchall()
            else:
                copy.executemany(sql, params)

    while not wal_full(copy, directory / "replay.db"):
        replay_sale(sales.pop(0))
    sales = sales[:n]
    raw: list[float] = []
    replay: list[float] = []
    for block in range(0, len(sales), 100):
        raw += base.run(100)
        for sale in sales[block:block + 100]:
            start = time.perf_counter()
            replay_sale(sale)
            replay.append(time.perf_counter() - start)
    copy.close()
    return raw, replay


def wal_frames_per_sale(till: Till, directory: Path, n: int = 200) -> float:
    """How many pages a sale writes: WAL frames over `n` sales, with no checkpoint in between."""
    conn = till.service.ledger.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    try:
        till.run(n)
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
        return (os.path.getsize(directory / "ledger.db-wal") - 32) / (page + 24) / n
    finally:
        conn.execute("PRAGMA wal_autocheckpoint=4000")


def pages_only(base: Raw, directory: Path, pages: int, n: int) -> tuple[list[float], list[float]]:
    """Durable commits that write as many pages as a sale and do nothing else, against raw commits again:
    the ratio a sale could reach if pricing, hashing and its statements cost nothing."""
    conn = tune(sqlite3.connect(directory / "pages.db", isolation_level=None))
    conn.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    blob = os.urandom(page - 200)  # one row fills one page

    def commit() -> float:
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO p (v) VALUES (?)", [(blob,)] * pages)
        conn.execute("COMMIT")
        return time.perf_counter() - start

    while not wal_full(conn, directory / "pages.db"):
        commit()
    raw: list[float] = []
    timed: list[float] = []
    for _ in range(max(1, n // 100)):
        raw += base.run(100)
        timed += [commit() for _ in range(100)]
    conn.close()
    return raw, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--dir", help="a directory on the disk to measure (default: a temp dir)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-checkout-", dir=args.dir))
    raw: list[float] = []
    sales: list[float] = []
    try:
        base, till = Raw(directory), Till(directory)
        # interleaved blocks, so both sides see the same disk and the same load
        for _ in range(max(1, args.n // 100)):
            raw += base.run(100)
            sales += till.run(100)
        ceiling_raw, ceiling = sql_only(till, base, directory, max(100, args.n // 3))
        frames = wal_frames_per_sale(till, directory)
        floor_raw, floor = pages_only(base, directory, round(frames), max(100, args.n // 3))
        till.service.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    raw_rate = len(raw) / sum(raw)
    sale_rate = len(sales) / sum(sales)
    result = {
        "bench": "checkout",
        "n": args.n,
        "checkouts_per_s": round(sale_rate, 1),
        "raw_commits_per_s": round(raw_rate, 1),
        "ratio": round(sale_rate / raw_rate, 3),
        "p50_ms": round(statistics.median(sales) * 1000, 3),
        "p99_ms": round(percentile(sales, 0.99) * 1000, 3),
        "raw_p50_ms": round(statistics.median(raw) * 1000, 3),
        "ratio_of_medians": round(statistics.median(raw) / statistics.median(sales), 3),
        # the same sales' SQL alone (no pricing, hashing or JSON): the ratio a free rules engine would reach
        "sql_only_per_s": round(len(ceiling) / sum(ceiling), 1),
        "sql_only_p50_ms": round(statistics.median(ceiling) * 1000, 3),
        "sql_only_raw_per_s": round(len(ceiling_raw) / sum(ceiling_raw), 1),
        "sql_only_ratio": round((len(ceiling) / sum(ceiling)) / (len(ceiling_raw) / sum(ceiling_raw)), 3),
        # a sale's pages written durably with nothing else: the bound of this disk, whatever the code
        "wal_frames_per_sale": round(frames, 1),
        "pages_only_p50_ms": round(statistics.median(floor) * 1000, 3),
        "pages_only_ratio": round((len(floor) / sum(floor)) / (len(floor_raw) / sum(floor_raw)), 3),
        "goal_ratio": 0.5,
        "cpus": os.cpu_count(),
    }
    print(f"checkout: {sale_rate:.0f}/s (p50 {result['p50_ms']} ms), raw durable commits: {raw_rate:.0f}/s", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
