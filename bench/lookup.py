"""Card lookup (everything the member panel shows) on a ledger of 100k members and 1M events.

Builds the ledger with bench/dataset.py (bulk inserts, a consistent chain),
then times `Loyalty.card()` for random cards: p50/p99. Goal: p99 <= 2 ms.
Prints progress, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset import build, card_of

from ledger import clock
from ledger.config import load
from ledger.service import Loyalty

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--visits", type=float, default=2.25, help="sales per member on average (4 events each, + enrol)")
    parser.add_argument("--lookups", type=int, default=20_000)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    try:
        config = directory / "config.toml"
        config.write_text((ROOT / "config.toml").read_text(encoding="utf-8").replace('path = "var/ledger.db"', 'path = "ledger.db"'), encoding="utf-8")
        cfg = load(config)
        now = clock.parse_now("2026-11-22T10:00", cfg.store.tz)
        started = time.perf_counter()
        build(cfg, args.members, args.visits, today=clock.business_day(now, cfg.store.tz))
        build_s = time.perf_counter() - started
        service = Loyalty.open(cfg)
        events = service.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        print(f"built {args.members} members, {events} events in {build_s:.1f} s", file=sys.stderr)
        rng = random.Random(1)
        for _ in range(500):  # warm the page cache as a till that has been open a while
            service.card(card_of(rng.randrange(args.members)), now)
        times = []
        for _ in range(args.lookups):
            card = card_of(rng.randrange(args.members))
            start = time.perf_counter()
            view = service.card(card, now)
            times.append(time.perf_counter() - start)
            assert view["card"] == card
        service.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    ordered = sorted(times)
    result = {
        "bench": "lookup",
        "members": args.members,
        "events": events,
        "lookups": args.lookups,
        "p50_ms": round(statistics.median(times) * 1000, 3),
        "p99_ms": round(ordered[int(0.99 * len(ordered))] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "build_s": round(build_s, 1),
        "goal_p99_ms": 2.0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
