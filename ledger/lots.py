"""Points lots: every credit opens a lot with its expiry; debits take from the
lots that expire first. `lot_moves` records which event took what, so a
refund can give points back to the very lots they came from.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta

from .errors import LoyaltyError
from .store import Tx


def open_lot(tx: Tx, *, lot_id: str, member_id: str, program_id: str, points: int, expire_after_days: int | None) -> None:
    day = date.fromisoformat(tx.day)
    expires = (day + timedelta(days=expire_after_days)).isoformat() if expire_after_days else None
    tx.later(
        "INSERT INTO lots (lot_id, member_id, program_id, earned_day, expires_on, points, remaining) VALUES (?,?,?,?,?,?,?)",
        (lot_id, member_id, program_id, tx.day, expires, points, points),
    )


def take(tx: Tx, *, event_id: str, member_id: str, program_id: str, points: int, prefer_lot: str | None = None) -> None:
    """Take `points` from the member's open lots, soonest expiry first."""
    left = points
    rows = tx.conn.execute(
        "SELECT lot_id, remaining FROM lots WHERE member_id=? AND program_id=? AND remaining > 0"
        " ORDER BY lot_id != ?, expires_on IS NULL, expires_on, earned_day, rowid",
        (member_id, program_id, prefer_lot or ""),
    ).fetchall()
    for row in rows:
        if left == 0:
            break
        part = min(left, int(row["remaining"]))
        _move(tx, event_id, row["lot_id"], part)
        left -= part
    if left:
        raise LoyaltyError("insufficient_balance", f"{program_id}: {points} points needed, {points - left} available")


def split_due(due: int, held: int, chain_balance: int, drawn: int) -> tuple[int, int]:
    """Of `due` points in this till's lots come due: (given to draws elsewhere, expired).

    Points the member spent at other tills beyond their own lots (`drawn`, not yet given
    by any lot: `Draws.free`) came from no lot here; they count as taken from the
    earliest lots, so the lots come due give them first and only the rest expires:
    expiring them again made a negative balance and an overdraft flag for a member
    who never overdrew. Nor does expiry take the member below the points of the lots
    still valid (`held - due`).
    """
    given = min(due, max(0, drawn))
    return given, max(0, min(due - given, chain_balance - (held - due)))


# the event that gives a lot's points to draws made elsewhere: no balance moves (the draw moved it)
GIVEN = "spent_elsewhere"


@dataclass(frozen=True, slots=True)
class Draws:
    """A member's points drawn on the chain beyond the drawing tills' own lots, and the lots' givings to them."""

    remote: int  # the other tills' draws less their lots' givings (from the last pull)
    remote_given: int  # of which the other tills' lots gave
    own: int  # this till's draws and its lots' givings, signed as verify counts them (a reversal's remote takes off)
    given: int  # what this till's lots gave

    @property
    def free(self) -> int:
        """Drawn by other tills and given by no lot yet, as this till knows it: what its lots come due give first."""
        return max(0, self.remote - self.given)

    @property
    def undrawn(self) -> int:
        """Draws no lot gave, over the whole chain; below zero, lots gave more than is drawn now (a draw they gave
        to was refunded since, or two tills gave to one draw)."""
        return self.remote + self.own


def draws(conn: sqlite3.Connection, member_id: str, program_id: str) -> Draws:
    row = conn.execute(
        "SELECT (SELECT COALESCE(SUM(points), 0) FROM remote_draws WHERE member_id=:m AND program_id=:p),"
        " (SELECT COALESCE(SUM(given), 0) FROM remote_draws WHERE member_id=:m AND program_id=:p),"
        " (SELECT COALESCE(SUM(CASE WHEN kind='reverse' THEN -json_extract(payload, '$.remote')"
        "                      ELSE json_extract(payload, '$.remote') END), 0) FROM events"
        "    WHERE member_id=:m AND program_id=:p AND account='points' AND payload LIKE '%\"remote\"%'),"
        " (SELECT COALESCE(-SUM(json_extract(payload, '$.remote')), 0) FROM events"
        "    WHERE member_id=:m AND program_id=:p AND kind=:given)",
        {"m": member_id, "p": program_id, "given": GIVEN},
    ).fetchone()
    return Draws(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def held(tx: Tx, member_id: str, program_id: str) -> int:
    """Points in this ledger's open lots (the rest of the chain's points have none here)."""
    row = tx.conn.execute(
        "SELECT COALESCE(SUM(remaining), 0) FROM lots WHERE member_id=? AND program_id=? AND remaining > 0", (member_id, program_id)
    ).fetchone()
    return int(row[0])


def give_back(tx: Tx, *, event_id: str, original_event_id: str) -> list[tuple[str, int, str | None]]:
    """Return to each lot what `original_event_id` took; lists (lot, points, expires_on)."""
    moves = tx.conn.execute(
        "SELECT m.lot_id, m.amount, l.expires_on FROM lot_moves m JOIN lots l USING (lot_id) WHERE m.event_id=?",
        (original_event_id,),
    ).fetchall()
    out = []
    for row in moves:
        _move(tx, event_id, row["lot_id"], -int(row["amount"]))
        out.append((str(row["lot_id"]), int(row["amount"]), row["expires_on"]))
    return out


def _move(tx: Tx, event_id: str, lot_id: str, amount: int) -> None:
    tx.conn.execute(
        "INSERT INTO lot_moves (event_id, lot_id, amount) VALUES (?,?,?)"
        " ON CONFLICT (event_id, lot_id) DO UPDATE SET amount = amount + excluded.amount",
        (event_id, lot_id, amount),
    )
    tx.conn.execute("UPDATE lots SET remaining = remaining - ? WHERE lot_id=?", (amount, lot_id))


def expired_from(tx: Tx, lot_id: str) -> int:
    row = tx.conn.execute(
        "SELECT COALESCE(SUM(m.amount), 0) FROM lot_moves m JOIN events e ON e.event_id = m.event_id"
        " WHERE m.lot_id=? AND e.kind='expire'",
        (lot_id,),
    ).fetchone()
    return int(row[0])


def due_lots(tx: Tx, member_id: str) -> list[tuple[str, str, int]]:
    """Open lots whose expiry day has come: (lot, program, remaining)."""
    rows = tx.conn.execute(
        "SELECT lot_id, program_id, remaining FROM lots WHERE member_id=? AND remaining > 0 AND expires_on <= ?"
        " ORDER BY expires_on, rowid",
        (member_id, tx.day),
    ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]
