"""End-of-day sync of 20,000 events over loopback to a SQLite server, against one event per request.

Both runs go to a real `loyalty server` process on 127.0.0.1 (its own SQLite
file each), from a till ledger whose events are written through the ledger's
own append path. The timed end of day is the whole of it: close the day,
expiry, push, pull, Z report.

    .venv/bin/python bench/sync.py [--events 20000] [--baseline-events 20000]

Last line: JSON with `seconds` (end of day) and `ratio` (baseline seconds per
event / batched seconds per event).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger.config import load  # noqa: E402
from ledger.service import Loyalty  # noqa: E402
from ledger.store import HASHED  # noqa: E402
from sync.client import SyncClient  # noqa: E402
from sync.endofday import end_of_day  # noqa: E402
from sync.store import ServerStore  # noqa: E402

NOW = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "terminal.cli", "server", "--db", db, "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/v1/health").status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start")


def make_till(root: Path, terminal: str, events: int) -> Loyalty:
    text = (ROOT / "config.toml").read_text(encoding="utf-8").replace('terminal = "till-1"', f'terminal = "{terminal}"')
    path = root / f"{terminal}.toml"
    path.write_text(text.replace('path = "var/ledger.db"', f'path = "{terminal}.db"'), encoding="utf-8")
    loyalty = Loyalty.open(load(path))
    members = 500
    with loyalty.ledger.transaction(NOW, loyalty.day(NOW)) as tx:
        for i in range(events):
            m = i % members
            kind, program, account, amount = [("stamp", "coffee", "stamps", 1), ("earn", "points", "points", 12),
                                              ("spend", "member", "spend", 1250), ("sale", None, None, 0)][i % 4]
            tx.append(kind, event_id=f"bench-{terminal}-{i}", member_id=f"member-{m}", card_id=f"code:B{m}",
                      program_id=program, account=account, amount=amount, sale_id=f"sale-{i // 4}")
    return loyalty


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--baseline-events", type=int, default=20_000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-sync-"))

    db = f"sqlite:///{root / 'server.db'}"
    _, token = ServerStore(db).add_terminal("kw-salmiya-01", "till-1")
    base_db = f"sqlite:///{root / 'baseline.db'}"
    _, base_token = ServerStore(base_db).add_terminal("kw-salmiya-01", "till-2")
    till = make_till(root, "till-1", args.events)
    other = make_till(root, "till-2", args.baseline_events)

    server, url = start_server(db)
    try:
        client = SyncClient(till.conn, server=url, token=token, store_id="kw-salmiya-01", terminal_id="till-1", timeout_s=60)
        t0 = time.perf_counter()
        result = end_of_day(till, client, NOW)
        seconds = time.perf_counter() - t0
        assert result["z"]["chain"]["in_sync"], result["z"]["chain"]
        client.close()
    finally:
        server.terminate()
        server.wait()

    server, url = start_server(base_db)
    try:
        cols = ", ".join((*HASHED, "hash"))
        rows = [dict(zip((*HASHED, "hash"), r, strict=True)) for r in other.conn.execute(f"SELECT {cols} FROM events ORDER BY seq")]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {base_token}"}, timeout=60) as http:
            t0 = time.perf_counter()
            for row in rows:
                resp = http.post("/v1/terminals/kw-salmiya-01:till-2/events", json={"from_seq": row["seq"], "events": [row]})
                resp.raise_for_status()
            baseline = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait()

    per_event = seconds / args.events
    base_per_event = baseline / args.baseline_events
    out: dict[str, Any] = {
        "events": args.events,
        "seconds": round(seconds, 3),
        "events_per_s": round(args.events / seconds),
        "push_requests": result["push"]["requests"],
        "baseline_events": args.baseline_events,
        "baseline_seconds": round(baseline, 3),
        "ratio": round(base_per_event / per_event, 1),
    }
    print(f"end of day: {args.events} events in {seconds:.2f} s; one per request: {args.baseline_events} in {baseline:.2f} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
