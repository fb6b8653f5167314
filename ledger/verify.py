"""`loyalty ledger verify`: is the ledger what its events say it is?

Checks, each reported separately:

* SQLite's own `PRAGMA integrity_check`;
* the hash chain: seq runs 1..N with no gap, every prev_hash is the previous
  hash, every hash recomputes, and the head recorded in `meta` is the last
  event (an edited, deleted, reordered or truncated event row fails here);
* balances == replay: every materialized balance equals the sum of its events;
* points lots: each lot's remaining = points - moves, and the lots of a
  program add up to its balance;
* sales: each sale row matches the totals its `sale` event recorded.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from .store import GENESIS, HASHED, event_hash


@dataclass
class Report:
    events: int = 0
    problems: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "checks": self.checks, "problems": self.problems}


def verify(conn: sqlite3.Connection, *, limit: int = 50) -> Report:
    report = Report()
    conn.execute("BEGIN")
    try:
        for name, run in (("integrity", _integrity), ("chain", _chain), ("balances", _balances), ("lots", _lots), ("sales", _sales)):
            try:
                run(conn, report)
            except sqlite3.DatabaseError as exc:  # a damaged page: that check failed, the others still say what they can
                check(report, name, [f"{name}: cannot read the ledger: {exc}"])
    finally:
        with contextlib.suppress(sqlite3.DatabaseError):  # a read transaction on a damaged file may not end cleanly
            conn.execute("COMMIT")
    if len(report.problems) > limit:
        more = len(report.problems) - limit
        report.problems = [*report.problems[:limit], f"... and {more} more"]
    return report


def check(report: Report, name: str, problems: list[str]) -> None:
    """Record one check's outcome."""
    report.checks[name] = not problems
    report.problems.extend(problems)


def _integrity(conn: sqlite3.Connection, report: Report) -> None:
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    check(report, "integrity", [] if rows == ["ok"] else [f"integrity_check: {r}" for r in rows])


def _chain(conn: sqlite3.Connection, report: Report) -> None:
    problems: list[str] = []
    expected_seq, prev = 1, GENESIS
    cols = ", ".join((*HASHED, "hash"))
    for row in conn.execute(f"SELECT {cols} FROM events ORDER BY seq"):
        fields = dict(zip((*HASHED, "hash"), row, strict=True))
        seq = fields["seq"]
        if seq != expected_seq:
            problems.append(f"event seq {seq}: expected seq {expected_seq} (an event is missing)")
        if fields["prev_hash"] != prev:
            problems.append(f"event seq {seq}: prev_hash does not match the event before it (deleted or reordered)")
        try:
            json.loads(fields["payload"])
            digest = event_hash(fields)
        except (ValueError, TypeError):
            digest = ""
        if digest != fields["hash"]:
            problems.append(f"event seq {seq}: hash does not match its content (edited)")
        prev, expected_seq = fields["hash"], seq + 1
        report.events += 1
    head = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('head_seq', 'head_hash')").fetchall())
    if head and (int(head.get("head_seq", 0)) != expected_seq - 1 or head.get("head_hash") != prev):
        problems.append(f"chain head is seq {head.get('head_seq')}, but the last event is seq {expected_seq - 1} (events removed or added)")
    check(report, "chain", problems)


def _balances(conn: sqlite3.Connection, report: Report) -> None:
    replay = {
        (r[0], r[1], r[2]): int(r[3])
        for r in conn.execute(
            "SELECT member_id, COALESCE(program_id, ''), account, SUM(amount) FROM events"
            " WHERE account IS NOT NULL AND member_id IS NOT NULL GROUP BY 1, 2, 3"
        )
    }
    stored = {(r[0], r[1], r[2]): int(r[3]) for r in conn.execute("SELECT member_id, program_id, account, amount FROM balances")}
    problems = []
    for key in sorted(set(replay) | set(stored)):
        if replay.get(key, 0) != stored.get(key, 0):
            problems.append(f"balance {key[1]}/{key[2]} of member {key[0]}: stored {stored.get(key, 0)}, events say {replay.get(key, 0)}")
    check(report, "balances", problems)


def _lots(conn: sqlite3.Connection, report: Report) -> None:
    problems = []
    for lot_id, points, remaining, moved in conn.execute(
        "SELECT l.lot_id, l.points, l.remaining, COALESCE(SUM(m.amount), 0) FROM lots l LEFT JOIN lot_moves m USING (lot_id) GROUP BY l.lot_id"
    ):
        if points - moved != remaining:
            problems.append(f"points lot {lot_id}: remaining {remaining}, moves say {points - moved}")
    # points drawn on the rest of the chain (synced balances) came from no local lot
    drawn: dict[tuple[str, str], int] = {}
    for member_id, program_id, kind, payload in conn.execute(
        "SELECT member_id, program_id, kind, payload FROM events WHERE account = 'points' AND payload LIKE '%\"remote\"%'"
    ):
        remote = json.loads(payload).get("remote") or 0
        key = (member_id, program_id)
        drawn[key] = drawn.get(key, 0) + (-remote if kind == "reverse" else remote)
    held = {
        (r[0], r[1]): int(r[2]) for r in conn.execute("SELECT member_id, program_id, SUM(remaining) FROM lots GROUP BY member_id, program_id")
    }
    balances = {
        (r[0], r[1]): int(r[2]) for r in conn.execute("SELECT member_id, program_id, amount FROM balances WHERE account = 'points'")
    }
    for key in sorted(set(held) | set(balances)):
        expected = balances.get(key, 0) + drawn.get(key, 0)
        if held.get(key, 0) != expected:
            problems.append(f"points lots of member {key[0]} in {key[1]} hold {held.get(key, 0)}, balance and draws say {expected}")
    check(report, "lots", problems)


def _sales(conn: sqlite3.Connection, report: Report) -> None:
    problems = []
    # one pass over the sale events (events have no index by sale)
    recorded_by_sale = {r[0]: r[1] for r in conn.execute("SELECT sale_id, payload FROM events WHERE kind = 'sale'")}
    for sale_id, subtotal, discount, total, lines_gross, lines_net in conn.execute(
        "SELECT s.id, s.subtotal, s.discount, s.total,"
        " (SELECT SUM(gross) FROM sale_lines WHERE sale_id = s.id), (SELECT SUM(net) FROM sale_lines WHERE sale_id = s.id)"
        " FROM sales s"
    ):
        payload = recorded_by_sale.get(sale_id)
        if payload is None:
            problems.append(f"sale {sale_id} has no sale event in the chain")
            continue
        recorded = json.loads(payload)
        if (recorded.get("subtotal"), recorded.get("discount"), recorded.get("total")) != (subtotal, discount, total):
            problems.append(f"sale {sale_id}: totals differ from its sale event")
        if (lines_gross, lines_net) != (subtotal, total):
            problems.append(f"sale {sale_id}: lines do not add up to its totals")
    check(report, "sales", problems)
