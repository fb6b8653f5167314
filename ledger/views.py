"""What a tap shows: a card's member, tier and every program's state, as the
JSON of DESIGN §5. One indexed read per table, so the member panel appears at
once even on a ledger of millions of events.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from . import lots, money
from .clock import from_iso, local_time
from .config import Config, DiscountProgram, MembershipProgram, PointsProgram, StampsProgram
from .pricing import MemberState

MEMBER = "member"  # the program id of member-wide accounts (spend)


def number(value: Fraction) -> int | float:
    """A percent or multiplier for JSON: 5 stays 5, 2.5 stays 2.5."""
    return value.numerator if value.denominator == 1 else float(value)


def member_state(
    conn: sqlite3.Connection,
    cfg: Config,
    member_id: str,
    day: date,
    *,
    window_spend: int | None = None,
    swept: bool = False,
    now: datetime | None = None,
) -> MemberState:
    """The member's balances as the rules see them on `day`.

    Balances are this ledger's own plus what the rest of the chain holds
    (`remote_balances`, from the last sync). The remote part may be spent only
    while the snapshot is younger than [offline] max_snapshot_age_hours at
    `now` (the offline escrow); it is always shown.

    `swept`: due points were just written off in this transaction, so no lot is
    due; `window_spend`: the tier spend, when the caller already knows it.
    Both save queries on the checkout path.
    """
    # one query for every table the state comes from: a tap and a sale pay for one round trip
    sql = [_STATE_SQL]
    params: dict[str, Any] = {"m": member_id, "day": day.isoformat()}
    if not swept:
        sql.append(_DUE_SQL)
    if window_spend is None and cfg.tiers.levels:
        sql.append(_WINDOW_SQL)
        params |= {"member": MEMBER, "since": _window_start(cfg, day)}
    bal: dict[tuple[str, str], int] = {}
    remote: dict[tuple[str, str], int] = {}
    due: dict[str, int] = {}
    held: dict[str, int] = {}
    until: dict[str, str] = {}
    stale_before = (now - timedelta(hours=cfg.offline.max_snapshot_age_hours)) if now is not None else None
    fresh = True
    for source, program_id, account, amount, text in conn.execute(" UNION ALL ".join(sql), params):
        if source == "b":
            bal[(program_id, account)] = int(amount)
        elif source == "r":
            remote[(program_id, account)] = int(amount)
            if stale_before is not None and from_iso(text) < stale_before:
                fresh = False
        elif source == "m":  # this till's and the rest of the chain's: the later last day holds
            until[program_id] = max(text, until.get(program_id, text))
        elif source == "d":
            due[program_id] = int(amount)
            held[program_id] = int(text)
        else:
            window_spend = int(amount)
    if window_spend is None:
        window_spend = 0
    active = frozenset(pid for pid, last in until.items() if last >= day.isoformat())
    def total(key: tuple[str, str]) -> int:
        return bal.get(key, 0) + remote.get(key, 0)

    def spendable(key: tuple[str, str]) -> int:
        return total(key) if fresh else min(total(key), bal.get(key, 0))

    stamps_programs, points_programs = cfg.programs_of(StampsProgram), cfg.programs_of(PointsProgram)
    for pid, points in due.items():  # what the next write will expire, as Loyalty._expire counts it
        drawn = lots.draws(conn, member_id, pid).free if points else 0
        due[pid] = lots.split_due(points, held[pid], total((pid, "points")), drawn)[1]
    return MemberState(
        stamps={p.id: total((p.id, "stamps")) for p in stamps_programs},
        rewards={p.id: total((p.id, "rewards")) for p in stamps_programs},
        points={p.id: total((p.id, "points")) - due.get(p.id, 0) for p in points_programs},
        spendable_rewards={p.id: spendable((p.id, "rewards")) for p in stamps_programs},
        spendable_points={p.id: spendable((p.id, "points")) - due.get(p.id, 0) for p in points_programs},
        spend=total((MEMBER, "spend")),
        window_spend=window_spend,
        memberships=active,
        membership_until=until,
    )


_STATE_SQL = (
    "SELECT 'b', program_id, account, amount, NULL FROM balances WHERE member_id=:m"
    # a row is as old as the last pull, not as the member's last change there: a pull that brought nothing new for
    # this member still says the chain holds what it did
    " UNION ALL SELECT 'r', program_id, account, amount,"
    " MAX(synced_at, COALESCE((SELECT value FROM sync_state WHERE key='last_pull_at'), synced_at))"
    " FROM remote_balances WHERE member_id=:m"
    " UNION ALL SELECT 'm', program_id, NULL, 0, valid_until FROM memberships WHERE member_id=:m"
    " UNION ALL SELECT 'm', program_id, NULL, 0, valid_until FROM remote_memberships WHERE member_id=:m AND valid_until IS NOT NULL"
)
_DUE_SQL = (  # points of lots come due, and all points this till's lots hold
    "SELECT 'd', program_id, NULL, SUM(CASE WHEN expires_on <= :day THEN remaining ELSE 0 END), SUM(remaining) FROM lots"
    " WHERE member_id=:m AND remaining > 0 GROUP BY program_id"
)
# A refund's reversal counts on the day of the sale it reverses: refunding a sale that has
# left the window takes nothing from the spend still in it (a reversal is never older than its sale).
# The window ends on its own day: a backdated sale or a look at an earlier day does not count what came after.
_WINDOW_SQL = (
    "SELECT 't', NULL, NULL, (SELECT COALESCE(SUM(e.amount), 0) FROM events e LEFT JOIN events o ON o.event_id = e.ref_event_id"
    " WHERE e.member_id=:m AND e.program_id=:member AND e.account='spend' AND e.business_day BETWEEN :since AND :day"
    " AND (e.ref_event_id IS NULL OR o.business_day >= :since))"
    # plus what the member paid at the rest of the chain's tills, from the last pull
    " + (SELECT COALESCE(SUM(amount), 0) FROM remote_spend WHERE member_id=:m AND day BETWEEN :since AND :day), NULL"
)


def _window_start(cfg: Config, day: date) -> str:
    return (day - timedelta(days=cfg.tiers.window_days - 1)).isoformat()


def advance(state: MemberState, moves: list[tuple[str, str, int]], window_spend: int) -> MemberState:
    """The state after this transaction's moves (program, account, amount) of the same member.

    Saves re-reading the balances a sale has just written; remote balances and
    memberships are unchanged by the moves.
    """
    stamps, rewards, points = dict(state.stamps), dict(state.rewards), dict(state.points)
    spend_rewards = dict(state.spendable_rewards) if state.spendable_rewards is not None else None
    spend_points = dict(state.spendable_points) if state.spendable_points is not None else None
    spend = state.spend
    for program_id, account, amount in moves:
        if account == "stamps" and program_id in stamps:
            stamps[program_id] += amount
        elif account == "rewards" and program_id in rewards:
            rewards[program_id] += amount
            if spend_rewards is not None:
                spend_rewards[program_id] += amount
        elif account == "points" and program_id in points:
            points[program_id] += amount
            if spend_points is not None:
                spend_points[program_id] += amount
        elif account == "spend" and program_id == MEMBER:
            spend += amount
    return replace(
        state, stamps=stamps, rewards=rewards, points=points, spendable_rewards=spend_rewards,
        spendable_points=spend_points, spend=spend, window_spend=window_spend,
    )


def tier_spend(conn: sqlite3.Connection, cfg: Config, member_id: str, day: date) -> int:
    """Money paid in the tier window ending on `day`."""
    if not cfg.tiers.levels:
        return 0
    params = {"m": member_id, "member": MEMBER, "since": _window_start(cfg, day), "day": day.isoformat()}
    row = conn.execute(_WINDOW_SQL, params).fetchone()
    return int(row[3])


def card_view(
    conn: sqlite3.Connection,
    cfg: Config,
    card: sqlite3.Row,
    day: date,
    *,
    state: MemberState | None = None,
    member: sqlite3.Row | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The card's JSON: status, member, tier and every program (`now`: what of the chain's share may be spent)."""
    member_id = str(card["member_id"])
    if state is None:
        state = member_state(conn, cfg, member_id, day, now=now)
    if member is None:
        member = conn.execute("SELECT * FROM members WHERE id=?", (member_id,)).fetchone()
    cur = cfg.currency
    tier = cfg.tiers.tier_for(state.window_spend)
    member_json: dict[str, Any] = {"id": member_id, "tier": tier.id if tier else None}
    for key in ("name", "phone", "birthday"):
        if member[key]:
            member_json[key] = member[key]
    member_json["since"] = _local_day(member["enrolled_at"], cfg)
    member_json["spend"] = money.fmt(state.spend, cur)
    # the same keys in every answer: null at the top tier, or in a store without tiers
    member_json["tier_spend"] = money.fmt(state.window_spend, cur) if cfg.tiers.levels else None
    nxt = cfg.tiers.next_tier(state.window_spend) if cfg.tiers.levels else None
    member_json["next_tier"] = {"id": nxt.id, "spend_needed": money.fmt(nxt.min_spend - state.window_spend, cur)} if nxt else None
    programs: dict[str, Any] = {}
    for program in cfg.programs.values():
        if isinstance(program, StampsProgram):
            stamps = state.stamps[program.id]
            programs[program.id] = {
                "kind": "stamps",
                "stamps": stamps,
                "stamps_per_reward": program.stamps_per_reward,
                "rewards": state.rewards[program.id],
                "to_next_reward": program.stamps_per_reward - stamps,
            }
        elif isinstance(program, PointsProgram):
            balance = state.points[program.id]
            # what the balance can pay for now: nothing until it reaches min_points, and not what other stores hold
            # while the snapshot of them is too old to spend (a receipt or the cashier must not promise more)
            usable = balance if state.spendable_points is None else min(balance, state.spendable_points[program.id])
            programs[program.id] = {
                "kind": "points",
                "balance": balance,
                "value": money.fmt(program.value_of(usable) if usable >= program.min_redeem_points else 0, cur),
                "expiring": expiring(conn, member_id, program, day, balance),
            }
        elif isinstance(program, DiscountProgram):
            entry: dict[str, Any] = {"kind": "discount", "percent": number(program.percent_for(state.spend))}
            step = program.next_step(state.spend)
            entry["next"] = {"percent": number(step.percent), "spend_needed": money.fmt(step.from_spend - state.spend, cur)} if step else None
            programs[program.id] = entry
        elif isinstance(program, MembershipProgram):
            active = program.id in state.memberships
            programs[program.id] = {
                "kind": "membership",
                "active": active,
                "until": state.membership_until.get(program.id),  # the last day, ended or not (None: never bought)
                "percent": number(program.discount_percent),
            }
    out: dict[str, Any] = {"card": card["id"], "status": card["status"]}
    if card["status"] == "blocked" and card["reason"]:
        out["reason"] = card["reason"]
    if card["replaced_by"]:
        out["replaced_by"] = card["replaced_by"]
    out["member"] = member_json
    out["programs"] = programs
    return out


def _local_day(ts: str, cfg: Config) -> str:
    """The store's calendar day of a UTC timestamp of the ledger ("...Z")."""
    return local_time(ts, cfg.store.tz).date().isoformat()


def expiring(conn: sqlite3.Connection, member_id: str, program: PointsProgram, day: date, balance: int | None = None) -> list[dict[str, Any]]:
    """Lots that expire within the program's notice window, by expiry day.

    With `balance` (the member's points, the chain's included): points this till's lots
    hold beyond it were spent at other tills, and are counted from the earliest lots,
    as Loyalty._expire counts them, so the list never promises more than will expire.
    """
    if program.expire_after_days is None:
        return []
    until = (day + timedelta(days=program.expiring_notice_days)).isoformat()
    rows = conn.execute(
        "SELECT expires_on, SUM(remaining) FROM lots WHERE member_id=? AND program_id=? AND remaining > 0"
        " AND (expires_on IS NULL OR expires_on > ?) GROUP BY expires_on ORDER BY expires_on IS NULL, expires_on",
        (member_id, program.id, day.isoformat()),
    ).fetchall()
    spent = max(0, sum(int(r[1]) for r in rows) - balance) if balance is not None else 0
    if balance is not None and any(on is not None and on <= until for on, _points in rows):
        # points other tills drew on the chain that no lot gave yet: the earliest lots here give them, not expire them
        spent = max(spent, lots.draws(conn, member_id, program.id).free)
    out = []
    for on, points in rows:
        gone = min(spent, int(points))
        spent -= gone
        if on is not None and on <= until and int(points) > gone:
            out.append({"points": int(points) - gone, "on": on})
    return out
