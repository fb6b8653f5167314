"""End of day: close the business day, expire due points, push, pull, and the Z report.

Every step is safe to repeat: closing a closed day keeps its first closing
time, expiry writes nothing when nothing is due, push and pull resume from
`sync_state`. Interrupt it anywhere and run it again.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from typing import Any

from ledger import money
from ledger.clock import iso, local_time
from ledger.config import Config
from ledger.service import Loyalty
from ledger.store import GENESIS

from .client import Offline, PullSummary, PushSummary, SyncClient, skew_warning

POINT_CREDITS = ("earn", "bonus")
REWARDS_BACK = "reward back"  # not an event kind: vouchers a refund turned back into stamps
EOD_OFFLINE = "end_of_day_offline:"  # sync_state key prefix, per business day: when its end of day could not sync


def close_day(conn: sqlite3.Connection, day: date, now: datetime) -> str:
    """Refuse further sales on `day`; returns when it was (first) closed."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT OR IGNORE INTO business_days (day, closed_at) VALUES (?, ?)", (day.isoformat(), iso(now)))
        closed = str(conn.execute("SELECT closed_at FROM business_days WHERE day=?", (day.isoformat(),)).fetchone()[0])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return closed


def end_of_day(loyalty: Loyalty, client: SyncClient | Offline, now: datetime, day: date | None = None, *,
               tolerate_offline: bool = False) -> dict[str, Any]:
    """Close, expire, push, pull, Z. Unreachable server: `Offline` is raised after the day is closed,
    or with `tolerate_offline` the Z report is still made, marked not synced (`offline` says why).
    A till with no server to sync with passes the `Offline` that says so instead of a client."""
    day = day or loyalty.day_to_close(now)
    closed_at = close_day(loyalty.conn, day, now)
    expired = loyalty.expire_all(now, day)
    pushed, pulled, offline = PushSummary(), PullSummary(), None
    try:
        if isinstance(client, Offline):
            raise client
        pushed, pulled = client.exchange()
    except Offline as exc:
        if not tolerate_offline:
            raise
        offline = exc.message
        if loyalty.cfg.sync.server:  # the Z says not synced until a sync gets through (a stand-alone till has none to make)
            loyalty.conn.execute("INSERT OR REPLACE INTO sync_state (key, value) VALUES (?, ?)", (f"{EOD_OFFLINE}{day.isoformat()}", iso(now)))
    z = z_report(loyalty.conn, loyalty.cfg, day)
    if offline is not None:  # nothing was sent: the push says where the server's ack and the head stand
        chain = z["chain"]
        pushed = PushSummary(acked_seq=int(chain["server_acked_seq"] or 0), acked_hash=chain.get("server_acked_hash") or GENESIS,
                             head_seq=int(chain["head_seq"] or 0))
    result: dict[str, Any] = {
        "day": day.isoformat(),
        "closed_at": closed_at,
        "expired_points": expired,
        "push": pushed.as_json(),
        "pull": pulled.as_json(),
        "z": z,
    }
    if offline is not None:
        result["offline"] = offline
    warning = skew_warning(pulled.clock_skew_s)
    if warning:
        result["warning"] = warning
    return result


def z_report(conn: sqlite3.Connection, cfg: Config, day: date) -> dict[str, Any]:
    """The day's totals from this terminal's ledger, with the server's ack of the chain head. A plain dict."""
    d = day.isoformat()
    cur = cfg.currency

    def fmt(value: int | None) -> str:
        return money.fmt(int(value or 0), cur)

    conn.execute("BEGIN")
    try:
        sales = conn.execute(
            "SELECT COUNT(*), SUM(subtotal), SUM(discount), SUM(total) FROM sales WHERE business_day=?", (d,)
        ).fetchone()
        discounts: dict[str, int] = {}
        for (result,) in conn.execute("SELECT result FROM sales WHERE business_day=?", (d,)):
            for pid, amount in json.loads(result).get("discounts", {}).items():
                discounts[pid] = discounts.get(pid, 0) + money.parse(amount, cur, allow_negative=True)
        refunds = conn.execute(
            "SELECT COUNT(*), SUM(s.total) FROM refunds r JOIN sales s ON s.id = r.sale_id WHERE r.business_day=?", (d,)
        ).fetchone()
        moves: dict[str, dict[str, int]] = {}
        for pid, account, kind, amount, back in conn.execute(
            "SELECT program_id, account, kind, SUM(amount), SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END) FROM events"
            " WHERE business_day=? AND account IS NOT NULL GROUP BY program_id, account, kind", (d,)
        ):
            by_kind = moves.setdefault(f"{pid}/{account}", {})
            by_kind[kind] = int(amount)
            if account == "rewards" and kind == "reward" and back:
                # vouchers a refund turned back into stamps are not fewer vouchers issued: they may have been issued
                # on another day or at another till, and the day's issued count would go below zero
                by_kind[kind] += int(back)
                by_kind[REWARDS_BACK] = int(back)
        kinds = dict(conn.execute("SELECT kind, COUNT(*) FROM events WHERE business_day=? GROUP BY kind", (d,)).fetchall())
        span = conn.execute("SELECT MIN(seq), MAX(seq), COUNT(*) FROM events WHERE business_day=?", (d,)).fetchone()
        head = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('head_seq', 'head_hash')").fetchall())
        state = dict(conn.execute("SELECT key, value FROM sync_state").fetchall())
        unreached = state.get(f"{EOD_OFFLINE}{d}")  # when this day's end of day found no server
        closed = conn.execute("SELECT closed_at FROM business_days WHERE day=?", (d,)).fetchone()
        if closed:
            # a closed day's report shows the chain as the day left it, printed again later or not
            last = conn.execute("SELECT seq, hash FROM events WHERE business_day <= ? ORDER BY seq DESC LIMIT 1", (d,)).fetchone()
            head = {"head_seq": last[0], "head_hash": last[1]} if last else {}
    finally:
        conn.execute("COMMIT")

    programs: dict[str, dict[str, int]] = {}
    for key, by_kind in sorted(moves.items()):
        pid, account = key.split("/", 1)
        if account == "points":
            p = programs.setdefault(pid, {})
            p["points_earned"] = sum(v for k, v in by_kind.items() if k in POINT_CREDITS)
            p["points_redeemed"] = -by_kind.get("redeem", 0)
            p["points_expired"] = -by_kind.get("expire", 0)
            p["points_adjusted"] = by_kind.get("adjust", 0)
            p["points_reversed"] = by_kind.get("reverse", 0)
        elif account == "stamps":
            p = programs.setdefault(pid, {})
            p["stamps_given"] = by_kind.get("stamp", 0)
            p["stamps_adjusted"] = by_kind.get("adjust", 0)
            p["stamps_reversed"] = by_kind.get("reverse", 0)
        elif account == "rewards":
            p = programs.setdefault(pid, {})
            p["rewards_issued"] = by_kind.get("reward", 0)
            p["rewards_redeemed"] = -by_kind.get("redeem", 0)
            p["rewards_reversed"] = by_kind.get("reverse", 0)
            p["rewards_back_to_stamps"] = by_kind.get(REWARDS_BACK, 0)
    head_seq, head_hash = int(head.get("head_seq", 0)), str(head.get("head_hash", GENESIS))
    acked_seq, acked_hash = int(state.get("acked_seq", 0)), str(state.get("acked_hash", GENESIS))
    total, refunded = int(sales[3] or 0), int(refunds[1] or 0)
    return {
        "report": "z",
        "store": cfg.store.id,
        "store_name": cfg.store.name,
        "terminal": cfg.store.terminal,
        "day": d,
        "closed_at": closed[0] if closed else None,
        # for people: the store's clock, and programs by the names the receipts use
        "closed_local": _local_time(closed[0], cfg) if closed else None,
        "names": {pid: p.name for pid, p in cfg.programs.items()} | {f"tier:{t.id}": f"{t.name} tier" for t in cfg.tiers.levels},
        "currency": cur.code,
        "sales": {"count": int(sales[0]), "subtotal": fmt(sales[1]), "discount": fmt(sales[2]), "total": fmt(total)},
        "discounts": {pid: fmt(v) for pid, v in sorted(discounts.items())},
        "refunds": {"count": int(refunds[0]), "total": fmt(refunded)},
        "net_total": fmt(total - refunded),
        "enrolments": int(kinds.get("enrol", 0)),
        "programs": programs,
        "events": {"first_seq": span[0], "last_seq": span[1], "count": int(span[2])},
        "chain": {
            "head_seq": head_seq,
            "head_hash": head_hash,
            "server_acked_seq": acked_seq,
            "server_acked_hash": acked_hash,
            # the server holds the head, or (a closed day printed again) events past it; and the end of day reached the
            # server, or a sync did since (the day's Z must not say in sync when its end of day could not sync)
            "in_sync": ((acked_seq, acked_hash) == (head_seq, head_hash) or (closed is not None and acked_seq > head_seq))
            and not (unreached and str(state.get("last_pull_at") or "") < unreached),
            "last_push_at": state.get("last_push_at"),
            "standalone": not cfg.sync.server,  # no server in the config: nothing to sync with
        },
    }


def _local_time(ts: str, cfg: Config) -> str:
    when = local_time(ts, cfg.store.tz)
    return when.strftime("%Y-%m-%d %H:%M ") + (when.tzname() or "")
