"""SIGKILL a till in the middle of sales, over and over: nothing reported is lost, nothing is half-written."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

from ledger_store import STORE

from ledger.verify import verify

KILLS = 110

CHILD = r"""
import sys, uuid
from ledger import clock
from ledger.config import load
from ledger.service import CheckoutRequest, Loyalty

cfg = load(sys.argv[1])
service = Loyalty.open(cfg)
now = clock.parse_now(sys.argv[2], cfg.store.tz)
cards = ["uid:04000001", "uid:04000002", "code:9"]
print("ready", flush=True)
n = 0
while True:
    n += 1
    sale_id = str(uuid.uuid4())
    redeem = ["coffee"] if n % 11 == 0 else (["points=100"] if n % 7 == 0 else [])
    req = CheckoutRequest.from_cli(cards[n % 3], ["ESP*2", "LAT", "BEANS"], redeem, sale_id)
    try:
        service.checkout(req, now)
    except Exception as exc:  # a redemption the card cannot afford yet: try the next sale
        if getattr(exc, "code", None) not in ("insufficient_balance",):
            raise
        continue
    print(sale_id, flush=True)
"""


def test_sigkill_during_sales_loses_nothing_and_leaves_nothing_partial(tmp_path):
    config = tmp_path / "store.toml"
    config.write_text(STORE, encoding="utf-8")
    db = tmp_path / "ledger.db"
    reported: set[str] = set()
    rng = random.Random(20261122)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    for kill in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(config), f"2026-11-{1 + kill % 28:02d}T10:00"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
            time.sleep(rng.uniform(0.0, 0.04))
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            reported.update(line.strip() for line in child.stdout if line.strip())
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            for stream in (child.stdout, child.stderr):
                if stream:
                    stream.close()
        assert child.returncode == -signal.SIGKILL

        conn = sqlite3.connect(db, isolation_level=None)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = {r[0] for r in conn.execute("SELECT id FROM sales")}
            assert reported <= stored, f"kill {kill}: committed sales lost: {sorted(reported - stored)[:3]}"
            # every stored sale is whole: its sale event, its lines and its print job
            partial = conn.execute(
                "SELECT s.id FROM sales s WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.sale_id = s.id AND e.kind = 'sale')"
                " OR NOT EXISTS (SELECT 1 FROM sale_lines l WHERE l.sale_id = s.id)"
                " OR NOT EXISTS (SELECT 1 FROM print_jobs p WHERE p.ref = s.id)"
            ).fetchall()
            assert not partial
            orphans = conn.execute(
                "SELECT COUNT(*) FROM events e WHERE e.sale_id IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM sales s WHERE s.id = e.sale_id)"
            ).fetchone()[0]
            assert orphans == 0
            if kill % 10 == 9 or kill == KILLS - 1:
                report = verify(conn)
                assert report.ok, report.problems
        finally:
            conn.close()
    assert len(reported) > KILLS  # the children did commit sales between kills
