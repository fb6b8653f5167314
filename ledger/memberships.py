"""A paid membership's last day, worked out from every purchase of it at every till of the chain.

Purchases form runs: one bought while the membership is running is stacked on
it (its `from` is after the day it was bought) and joins that run; one bought
after it ended starts a new run on its own day. A run lasts from its first day
for the days of its purchases not refunded, so refunding a purchase takes its
period off the end of its own run (days are not tied to the purchase that
paid them), and a run whose purchases were all refunded counts for nothing:
refunding an old, lapsed period leaves the one running now alone.

Counting purchases rather than keeping each till's last day is what lets a
refund at one till shorten a period another till stacked on it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True, slots=True)
class Purchase:
    ts: str  # when it was written (UTC ISO)
    event_id: str
    day: date  # the business day it was bought on
    first: date  # the first day it paid for (after the day bought when stacked)
    last: date
    refunded: bool

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def last_day(purchases: Iterable[Purchase]) -> date | None:
    """The membership's last paid day (running or ended), or None when nothing bought is left."""
    best: date | None = None
    start: date | None = None
    paid = 0
    # by first paid day: a stacked purchase comes after what it stacked on even when another till's clock was behind
    for p in sorted(purchases, key=lambda p: (p.first, p.ts, p.event_id)):
        if start is None or p.first <= p.day:  # bought with nothing running: a new run
            start, paid = p.day, 0
        paid += 0 if p.refunded else p.days
        if paid:
            end = start + timedelta(days=paid - 1)
            best = end if best is None or end > best else best
    return best


_LOCAL = (
    "SELECT e.ts, e.event_id, e.business_day, e.payload, s.refund_id IS NOT NULL OR s.id = :refunding"
    " FROM events e JOIN sales s ON s.id = e.sale_id WHERE e.member_id = :m AND e.program_id = :p AND e.kind = 'membership'"
)
_REMOTE = (
    "SELECT ts, event_id, day, from_day, until, refunded FROM remote_membership_buys WHERE member_id = :m AND program_id = :p"
)


def purchases(conn: sqlite3.Connection, member_id: str, program_id: str, *, refunding: str | None = None) -> list[Purchase]:
    """This till's purchases (the sale being refunded counted as refunded) and the rest of the chain's, as last pulled."""
    args = {"m": member_id, "p": program_id, "refunding": refunding}
    out = []
    for ts, event_id, day, payload, refunded in conn.execute(_LOCAL, args):
        bought = json.loads(payload)
        out.append(Purchase(ts, event_id, date.fromisoformat(day), date.fromisoformat(bought["from"]),
                            date.fromisoformat(bought["until"]), bool(refunded)))
    for ts, event_id, day, first, last, refunded in conn.execute(_REMOTE, args):
        out.append(Purchase(ts, event_id, date.fromisoformat(day), date.fromisoformat(first), date.fromisoformat(last), bool(refunded)))
    return out


def settle(conn: sqlite3.Connection, member_id: str, program_id: str, *, refunding: str | None = None) -> str | None:
    """Write the member's last day of the program (memberships) from every purchase known; returns it."""
    last = last_day(purchases(conn, member_id, program_id, refunding=refunding))
    return write(conn, member_id, program_id, last.isoformat() if last else None)


def write(conn: sqlite3.Connection, member_id: str, program_id: str, until: str | None) -> str | None:
    """The member's last day of the program, as `memberships` keeps it (None: no row); returns it."""
    if until is None:
        conn.execute("DELETE FROM memberships WHERE member_id=? AND program_id=?", (member_id, program_id))
    else:
        conn.execute(
            "INSERT INTO memberships (member_id, program_id, valid_until) VALUES (?,?,?)"
            " ON CONFLICT (member_id, program_id) DO UPDATE SET valid_until=excluded.valid_until",
            (member_id, program_id, until),
        )
    return until
