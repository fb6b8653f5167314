"""Cashier app: tap -> member panel on a big ledger, and cold start of `loyalty run`.

    .venv/bin/python bench/ui.py [--members 100000] [--events 1000000] [--taps 300] [--dir DIR]

The ledger is built with direct SQL inserts, not through the service (the
service writes ~10k events/s with synchronous=FULL; 1M events would take
minutes). The rows are consistent: every event is hash-chained with the
ledger's own `event_hash`, balances are the sum of their events, each points
credit opens its lot, the welcome bonus has its award row. Each member gets
the same shape of history (enrol, welcome bonus, visits with stamps, points
and spend) spread over the last 300 days, so no lot is due and no stamp card
is full. There are no sale rows: the tap path does not read them.

Tap latency is measured in the real app (headless `run_test`, 100x30): from
handing the card id to the sim reader until the compositor produced the frame
that holds the new member panel; the ledger read alone is reported beside it.
Cold start runs `loyalty run` on that ledger in tmux and polls the pane until
the first frame is there (the item field's placeholder); RSS is read from
/proc then.

Last stdout line: {"p99_ms", "p50_ms", "start_s", "rss_mb", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEXTUAL_FPS", "240")  # as `loyalty run` and `loyalty demo` set it

from ledger import config as config_mod  # noqa: E402
from ledger.service import Loyalty  # noqa: E402
from ledger.store import GENESIS, HASHED, INSERT_EVENT, canonical, event_hash  # noqa: E402
from terminal.demo import prepare_dir  # noqa: E402

NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


def card_of(i: int) -> str:
    return f"uid:04{i:012X}"


def build(workdir: Path, members: int, events: int) -> Path:
    path = prepare_dir(workdir)
    cfg = config_mod.load(path)
    db = cfg.ledger.path
    if db.exists():
        conn = sqlite3.connect(str(db))
        have = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        conn.close()
        if have >= events:
            return path
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    Loyalty.open(cfg).close()  # schema and identity rows, as the app makes them
    per = max(4, events // members)
    visits = min(2, (per - 2) // 3)
    stamps_only = per - 2 - 3 * visits
    rng = random.Random(1)
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    seq, prev = 0, GENESIS
    ev_rows: list[tuple[Any, ...]] = []
    started = time.perf_counter()
    base = {"terminal_id": cfg.store.terminal, "store_id": cfg.store.id, "rules_version": cfg.rules_version,
            "sale_id": None, "ref_event_id": None}
    day0 = NOW.date() - timedelta(days=300)

    def event(kind: str, member: str, card: str, day: date, minute: int, program: str | None = None,
              account: str | None = None, amount: int = 0, payload: dict[str, Any] | None = None) -> str:
        nonlocal seq, prev
        seq += 1
        fields = dict(base)
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        fields.update(seq=seq, event_id=event_id, ts=f"{day.isoformat()}T{6 + minute // 60:02d}:{minute % 60:02d}:00.000000Z",
                      business_day=day.isoformat(), member_id=member, card_id=card, program_id=program, account=account,
                      kind=kind, amount=amount, payload=canonical(payload or {}), prev_hash=prev)
        digest = event_hash(fields)
        ev_rows.append((*[fields[k] for k in HASHED], digest))
        prev = digest
        return event_id

    for i in range(members):
        member = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        card = card_of(i)
        day = day0 + timedelta(days=i * 300 // members)
        ts = f"{day.isoformat()}T06:00:00.000000Z"
        conn.execute("INSERT INTO members (id, enrolled_store, enrolled_at) VALUES (?,?,?)", (member, cfg.store.id, ts))
        conn.execute("INSERT INTO cards (id, member_id, status, created_at) VALUES (?,?,?,?)", (card, member, "active", ts))
        event("enrol", member, card, day, 0)
        lot = event("bonus", member, card, day, 0, "points", "points", 50, {"bonus": "welcome"})
        conn.execute("INSERT INTO awards (member_id, award, event_id, sale_id) VALUES (?,?,?,NULL)", (member, "welcome", lot))
        lots = [(lot, day, 50)]
        stamps = points = spend = 0
        for v in range(visits + stamps_only):
            vday = min(NOW.date() - timedelta(days=1), day + timedelta(days=1 + v * 7))
            n = 1 + (i + v) % 2  # at most 8 stamps in all: no card fills up, so no reward events are due
            event("stamp", member, card, vday, 1 + v, "coffee", "stamps", n)
            stamps += n
            if v < visits:
                paid = 1250 * (1 + (i + v) % 3)
                earned = paid // 100
                lot_id = event("earn", member, card, vday, 1 + v, "points", "points", earned)
                lots.append((lot_id, vday, earned))
                points += earned
                event("spend", member, card, vday, 1 + v, "member", "spend", paid)
                spend += paid
        conn.executemany(
            "INSERT INTO lots (lot_id, member_id, program_id, earned_day, expires_on, points, remaining) VALUES (?,?,?,?,?,?,?)",
            [(lid, member, "points", d.isoformat(), (d + timedelta(days=365)).isoformat(), p, p) for lid, d, p in lots],
        )
        conn.executemany(
            "INSERT INTO balances (member_id, program_id, account, amount) VALUES (?,?,?,?)",
            [(member, "coffee", "stamps", stamps), (member, "points", "points", points + 50), (member, "member", "spend", spend)],
        )
        if len(ev_rows) >= 20000:
            conn.executemany(INSERT_EVENT, ev_rows)
            ev_rows.clear()
    conn.executemany(INSERT_EVENT, ev_rows)
    conn.execute("UPDATE meta SET value=? WHERE key='head_seq'", (str(seq),))
    conn.execute("UPDATE meta SET value=? WHERE key='head_hash'", (prev,))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"built {members} members, {seq} events in {time.perf_counter() - started:.1f} s ({db})", file=sys.stderr)
    return path


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def taps(path: Path, members: int, count: int) -> dict[str, Any]:
    from terminal.app import build_app, build_services

    cfg = config_mod.load(path)
    services = build_services(cfg, clock=lambda: NOW, reader_url="sim://", printer_url="preview://")
    services.status_interval_s = 3600
    app = build_app(services)
    rng = random.Random(2)
    panel_ms: list[float] = []
    read_ms: list[float] = []
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.3)
            frames: list[float] = []
            display = app._display
            shown = asyncio.Event()
            before: float | None = None

            def frame(screen: Any, update: Any) -> None:
                # the compositor hands each finished frame to the driver here; the first frame
                # composed after the panel changed is the one the cashier sees
                if update is not None:
                    frames.append(time.perf_counter())
                    at = app.checkout.panel_shown_at
                    if at is not None and at != before and frames[-1] >= at:
                        shown.set()
                display(screen, update)

            app._display = frame  # type: ignore[method-assign]
            for n in range(count + 20):
                card = card_of(rng.randrange(members))
                t0 = time.perf_counter()
                services.gate.card(card)
                read = time.perf_counter() - t0
                before = app.checkout.panel_shown_at
                shown.clear()
                t0 = time.perf_counter()
                app.checkout.services_tap(card)
                # wait on the frame itself: polling here would take the app's own thread from it
                try:
                    await asyncio.wait_for(shown.wait(), 10)
                except TimeoutError:
                    raise SystemExit(f"no member panel on screen 10 s after tapping {card}") from None
                took = frames[-1] - t0
                assert card in str(app.checkout.query_one("#member").render())
                if n >= 20:  # warm-up: first imports, caches
                    panel_ms.append(took * 1000)
                    read_ms.append(read * 1000)
                await asyncio.sleep(0.02)  # a cashier's taps are seconds apart: let the frame settle
    finally:
        services.close()
    return {
        "p50_ms": round(statistics.median(panel_ms), 2),
        "p99_ms": round(pct(panel_ms, 0.99), 2),
        "max_ms": round(max(panel_ms), 2),
        "read_p50_ms": round(statistics.median(read_ms), 3),
        "read_p99_ms": round(pct(read_ms, 0.99), 3),
    }


def cold_start(path: Path, n: int) -> dict[str, Any]:
    """`loyalty run` in tmux (a real terminal emulator, which answers the app's terminal queries)."""
    loyalty = Path(sys.executable).parent / "loyalty"
    name = f"bench-ui-{os.getpid()}-{n}"

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", name, *args], capture_output=True, text=True, timeout=30).stdout

    t0 = time.perf_counter()
    tmux("new-session", "-d", "-x", "100", "-y", "30", f"{loyalty} --config {path} --now 2026-11-22T10:00 run")
    start_s = rss_mb = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "item or card" in tmux("capture-pane", "-p"):
                start_s = time.perf_counter() - t0
                pid = int(tmux("list-panes", "-F", "#{pane_pid}").split()[0])
                rss_mb = _rss_mb(pid)
                break
            time.sleep(0.005)
    finally:
        tmux("kill-server")
    if start_s is None:
        raise SystemExit("loyalty run never drew its first frame")
    return {"start_s": round(start_s, 3), "rss_mb": rss_mb}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--taps", type=int, default=300)
    ap.add_argument("--starts", type=int, default=3, help="cold starts (the median is reported)")
    ap.add_argument("--dir", default="/tmp/loyalty-bench-ui")
    args = ap.parse_args()
    path = build(Path(args.dir), args.members, args.events)
    result: dict[str, Any] = {"members": args.members, "events": args.events, "taps": args.taps}
    result |= asyncio.run(taps(path, args.members, args.taps))
    starts = [cold_start(path, n) for n in range(args.starts)]
    result["start_s"] = statistics.median(s["start_s"] for s in starts)
    result["rss_mb"] = max(s["rss_mb"] for s in starts)
    result["starts_s"] = [s["start_s"] for s in starts]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
