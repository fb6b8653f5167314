"""A large, consistent ledger for lookup benchmarks, built with bulk inserts.

Going through the service would take minutes for a million events; this
writes the same rows directly (hash chain, balances, lots, sales), so
`ledger verify` passes on the result. Each member gets an enrol event and
sales of four events each (sale, stamp, earn, spend): `visits` on average.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from pathlib import Path

from ledger.config import Config
from ledger.store import GENESIS, HASHED, INSERT_EVENT, Ledger, canonical, event_hash


def card_of(i: int) -> str:
    return f"uid:04{i:012X}"


def build(cfg: Config, members: int, visits: float, *, today: date, seed: int = 7) -> Path:
    """Fill cfg's ledger file; returns its path."""
    rng = random.Random(seed)
    ledger = Ledger(cfg.ledger.path, terminal_id=cfg.store.terminal, store_id=cfg.store.id, rules_version=cfg.rules_version)
    conn = ledger.conn
    conn.execute("PRAGMA synchronous=OFF")  # a benchmark fixture, rebuilt at will
    conn.execute("BEGIN")
    seq, prev = 0, GENESIS
    events: list[tuple[object, ...]] = []
    balances: list[tuple[str, str, str, int]] = []
    lots: list[tuple[object, ...]] = []
    sales: list[tuple[object, ...]] = []
    lines: list[tuple[object, ...]] = []
    cards: list[tuple[object, ...]] = []
    people: list[tuple[object, ...]] = []

    def add(member: str, card: str, day: str, kind: str, program: str | None, account: str | None, amount: int,
            sale: str | None, payload: dict[str, object]) -> str:
        nonlocal seq, prev
        seq += 1
        fields = {
            "seq": seq, "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "terminal_id": cfg.store.terminal,
            "store_id": cfg.store.id, "ts": f"{day}T08:00:00.000000Z", "business_day": day, "member_id": member,
            "card_id": card, "program_id": program, "account": account, "kind": kind, "amount": amount, "sale_id": sale,
            "ref_event_id": None, "rules_version": cfg.rules_version, "payload": payload, "prev_hash": prev,
        }
        digest = event_hash(fields)
        fields["payload"] = canonical(payload)
        events.append((*[fields[k] for k in HASHED], digest))
        prev = digest
        return str(fields["event_id"])

    for i in range(members):
        member = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        card = card_of(i)
        start = today - timedelta(days=rng.randint(30, 700))
        people.append((member, cfg.store.id, f"{start}T08:00:00.000000Z"))
        cards.append((card, member, "active", f"{start}T08:00:00.000000Z"))
        add(member, card, start.isoformat(), "enrol", None, None, 0, None, {})
        stamps = points = spend = 0
        count = visits + (1 if rng.random() < visits - int(visits) else 0)
        for v in range(int(count) if count >= 1 else 1):
            day = (start + timedelta(days=v * rng.randint(1, 20))).isoformat()
            total = rng.choice((750, 1250, 1850, 2600))
            sale = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            add(member, card, day, "sale", None, None, 0, sale, {"subtotal": total, "discount": 0, "total": total, "request": "bench"})
            add(member, card, day, "stamp", "coffee", "stamps", 1, sale, {})
            earned = total // 100
            lot = add(member, card, day, "earn", "points", "points", earned, sale, {})
            add(member, card, day, "spend", "member", "spend", total, sale, {})
            expires = (date.fromisoformat(day) + timedelta(days=365)).isoformat()
            lots.append((lot, member, "points", day, expires, earned, earned))
            sales.append((sale, cfg.store.terminal, cfg.store.id, f"{day}T08:00:00.000000Z", day, card, member, cfg.currency.code,
                          total, 0, total, "bench", "{}"))
            lines.append((sale, 1, "LAT", "Latte", "coffee", 1, total, total, 0, 0, 0, total))
            stamps += 1
            points += earned
            spend += total
        # a few visits each: stamps stay below a full card, so no reward events are needed
        balances += [(member, "coffee", "stamps", stamps), (member, "points", "points", points), (member, "member", "spend", spend)]
        if len(events) > 200_000:
            _flush(conn, events, balances, lots, sales, lines, cards, people)
    _flush(conn, events, balances, lots, sales, lines, cards, people)
    conn.execute("UPDATE meta SET value=? WHERE key='head_seq'", (str(seq),))
    conn.execute("UPDATE meta SET value=? WHERE key='head_hash'", (prev,))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    ledger.close()
    return cfg.ledger.path


def _flush(conn, events, balances, lots, sales, lines, cards, people) -> None:  # type: ignore[no-untyped-def]
    conn.executemany("INSERT INTO members (id, enrolled_store, enrolled_at) VALUES (?,?,?)", people)
    conn.executemany("INSERT INTO cards (id, member_id, status, created_at) VALUES (?,?,?,?)", cards)
    conn.executemany(INSERT_EVENT, events)
    conn.executemany("INSERT INTO balances (member_id, program_id, account, amount) VALUES (?,?,?,?)", balances)
    conn.executemany("INSERT INTO lots (lot_id, member_id, program_id, earned_day, expires_on, points, remaining) VALUES (?,?,?,?,?,?,?)", lots)
    conn.executemany(
        "INSERT INTO sales (id, terminal_id, store_id, ts, business_day, card_id, member_id, currency, subtotal, discount, total,"
        " request_hash, result) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        sales,
    )
    conn.executemany(
        "INSERT INTO sale_lines (sale_id, line_no, sku, name, category, qty, unit_price, gross, reward, discount, redeemed, net)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        lines,
    )
    for batch in (events, balances, lots, sales, lines, cards, people):
        batch.clear()
