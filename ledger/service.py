"""The domain services: checkout, refund, enrol, block, replace, adjust.

Every write is one `BEGIN IMMEDIATE` transaction: it either commits whole
(sale, lines, events, balances, print job) or leaves nothing behind. Event
ids are derived from the operation id (the sale id), so a retried sale
writes the same ids, and a sale id seen before answers with the stored
result instead of charging twice.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from . import cards, freetext, lots, memberships, money
from .clock import business_day, from_iso, local_time
from .config import Config, MembershipProgram, PointsProgram, StampsProgram
from .errors import LoyaltyError
from .ids import derived_id, receipt_number
from .ids import new_id as new_op_id
from .pricing import MemberState, Plan, parse_item, price_cart
from .settings import MAX_ADJUST, MAX_MEMBERSHIP_DAYS, MAX_NAME, MAX_REASON
from .store import Ledger, Tx, canonical
from .views import MEMBER, advance, card_view, member_state, tier_spend

_CARD_AND_MEMBER = (
    "SELECT c.id, c.member_id, c.status, c.replaced_by, c.reason, c.created_at,"
    " m.name, m.phone, m.birthday, m.enrolled_at, m.referrer_id, m.first_sale_id"
    " FROM cards c JOIN members m ON m.id = c.member_id WHERE c.id=?"
)
# paid for joining, not for buying: a refund of the sale that enrolled the card keeps them
ENROLMENT_BONUSES = ("welcome", "profile")
# a sale's stored answer is read back whole, never hashed: no need to sort its keys
_ANSWER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{4,19}$")
# a cashier in Kuwait or Tehran may type Arabic-Indic or Persian digits: kept as ASCII digits
_ASCII_DIGITS = str.maketrans({c: str(i) for digits in ("٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹") for i, c in enumerate(digits)})
_BIRTHDAY = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass
class CheckoutRequest:
    card: str
    items: list[tuple[str, int]]
    redeem: dict[str, int | None] = field(default_factory=dict)
    sale_id: str | None = None
    # name, phone, birthday given at the till with the sale (the cashier's quick profile): saved in the
    # sale's transaction, before its bonuses, so a completed profile and a birthday are paid on this receipt
    profile: dict[str, str] | None = None

    @classmethod
    def from_cli(cls, card: str, items: list[str], redeem: list[str], sale_id: str | None = None) -> CheckoutRequest:
        wanted: dict[str, int | None] = {}
        for spec in redeem:
            pid, sep, amount = spec.partition("=")
            pid = pid.strip()
            if not pid:
                raise LoyaltyError("bad_amount", f"--redeem {spec!r}: expected PROGRAM or PROGRAM=AMOUNT")
            if pid in wanted:
                raise LoyaltyError("bad_amount", f"--redeem {pid} given twice")
            if sep:
                try:
                    wanted[pid] = int(amount)
                except ValueError:
                    raise LoyaltyError("bad_amount", f"--redeem {spec!r}: the amount must be a whole number of points or rewards") from None
            else:
                wanted[pid] = None
        return cls(card=card, items=[parse_item(spec) for spec in items], redeem=wanted, sale_id=sale_id)

    def fingerprint(self, card_id: str, cfg: Config) -> str:
        """What makes a retry the same sale: the card, each item's quantity by SKU (typed as SKU in any case or
        as barcode, in any order, on one line or several), the redemptions."""
        qty: dict[str, int] = {}
        for code, n in self.items:
            item = cfg.item(code)
            sku = item.sku if item is not None else code
            qty[sku] = qty.get(sku, 0) + n
        body = {"card": card_id, "items": sorted(qty.items()), "redeem": sorted(self.redeem.items())}
        return hashlib.sha256(canonical(body).encode()).hexdigest()


def _net(moved: dict[str, dict[str, int]], memberships: dict[str, str | None]) -> dict[str, dict[str, Any]]:
    """A refund's net change per program: accounts that came back to where they were are left out."""
    out: dict[str, dict[str, Any]] = {}
    for pid, accounts in moved.items():
        changed = {account: amount for account, amount in accounts.items() if amount}
        if changed:
            out[pid] = changed
    for pid, until in memberships.items():
        out.setdefault(pid, {})["until"] = until
    return out


class _Ids:
    """Deterministic event ids for one operation."""

    def __init__(self, op_id: str):
        self.op_id = op_id
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return derived_id(self.op_id, str(self.n))


class Loyalty:
    """The loyalty ledger of one terminal, with the store's rules."""

    def __init__(self, cfg: Config, ledger: Ledger):
        self.cfg = cfg
        self.ledger = ledger

    @classmethod
    def open(cls, cfg: Config) -> Loyalty:
        ledger = Ledger(cfg.ledger.path, terminal_id=cfg.store.terminal, store_id=cfg.store.id, rules_version=cfg.rules_version,
                        currency=cfg.currency.code)
        return cls(cfg, ledger)

    def close(self) -> None:
        self.ledger.close()

    @property
    def conn(self) -> sqlite3.Connection:
        return self.ledger.conn

    def day(self, now: datetime) -> date:
        return business_day(now, self.cfg.store.tz)

    def day_to_close(self, now: datetime) -> date:
        """The business day end of day closes when none is named: today, unless today has no event at this till yet
        and the day of the till's last event is still open. Run after midnight, end of day closes the day that just
        ended: closing the one just begun would refuse every sale of it, with nothing to reopen it."""
        today = self.day(now)
        last = self.conn.execute("SELECT business_day FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        if last is None or last[0] >= today.isoformat():
            return today
        if self.conn.execute("SELECT 1 FROM business_days WHERE day IN (?, ?)", (today.isoformat(), last[0])).fetchone():
            return today  # that day was closed (or today already was, by name): today's is the one left
        return date.fromisoformat(last[0])

    # ------------------------------------------------------------ reads

    def card(self, raw_card: str, now: datetime) -> dict[str, Any]:
        """Everything the member panel shows for a card (any status)."""
        card_id = _normalize(raw_card)
        with self.ledger.reading() as conn:
            row = conn.execute("SELECT * FROM cards WHERE id=?", (card_id,)).fetchone()
            if row is None:
                raise LoyaltyError("unknown_card", f"card {card_id} is not enrolled")
            return card_view(conn, self.cfg, row, self.day(now), now=now)

    def find_sale(self, ref: str) -> str:
        """A sale's id from its id, the receipt number printed on it (till-1-000042), or that number's digits (42)."""
        ref = ref.strip()
        # a receipt number is the terminal and the seq of the sale's last event
        _, _, digits = ref.rpartition("-")
        seq = int(digits) if digits.isdecimal() and len(digits) < 19 else -1
        number = receipt_number(self.cfg.store.terminal, seq) if ref == digits and seq >= 0 else ref
        rows = self.conn.execute(
            "SELECT id, receipt_no FROM sales WHERE id=?"
            " UNION SELECT s.id, s.receipt_no FROM events e JOIN sales s ON s.id = e.sale_id WHERE e.seq=? AND s.receipt_no=?",
            (ref, seq, number),
        ).fetchall()
        if not rows:
            till, _, _ = ref.rpartition("-")
            if till and till != self.cfg.store.terminal and len(digits) >= 6 and digits.isdecimal():  # another till's receipt
                raise LoyaltyError("unknown_sale", f"receipt {ref} is from till {till}, not from this till ({self.cfg.store.terminal}):"
                                                   " its sale is in that till's ledger; refund or reprint it there")
            raise LoyaltyError("unknown_sale", f"no sale with id or receipt number {ref!r} in this ledger")
        if len(rows) > 1:  # a caller's own sale id (a POS transaction number) can read as another sale's receipt number
            named = " and ".join(f"receipt {r['receipt_no']}" for r in rows)
            raise LoyaltyError("ambiguous_sale", f"{ref!r} names two sales ({named}): give the full receipt number")
        return str(rows[0][0])

    def _check_sale_id(self, sale_id: str) -> None:
        if not sale_id.strip() or sale_id != sale_id.strip():
            raise LoyaltyError("bad_sale_id", f"sale id {sale_id!r} is empty or has spaces around it")
        if len(sale_id) > 128:
            raise LoyaltyError("bad_sale_id", "a sale id is at most 128 characters")
        if any(ord(c) < 32 or ord(c) == 127 for c in sale_id):  # it is printed in lines of text and on receipts
            raise LoyaltyError("bad_sale_id", f"sale id {sale_id!r} holds control characters")
        prefix, _, digits = sale_id.rpartition("-")
        if prefix == self.cfg.store.terminal and digits.isdecimal():
            raise LoyaltyError("bad_sale_id", f"sale id {sale_id!r} reads as one of this till's receipt numbers; choose another")

    def sale(self, ref: str) -> dict[str, Any]:
        """A committed sale's result, by sale id or receipt number."""
        sale_id = self.find_sale(ref)
        row = self.conn.execute("SELECT result, refund_id FROM sales WHERE id=?", (sale_id,)).fetchone()
        result: dict[str, Any] = json.loads(row["result"])
        if row["refund_id"]:
            result["refunded"] = row["refund_id"]
        return result

    def refund_of(self, ref: str) -> dict[str, Any]:
        """The refund of a sale (by sale id or receipt number), as its slip shows it."""
        sale_id = self.find_sale(ref)
        row = self.conn.execute(
            "SELECT s.receipt_no, r.result FROM sales s LEFT JOIN refunds r ON r.id = s.refund_id WHERE s.id=?", (sale_id,)
        ).fetchone()
        if row["result"] is None:
            raise LoyaltyError("not_refunded", f"sale {row['receipt_no'] or sale_id} was not refunded")
        return dict(json.loads(row["result"]))

    def last_event_at(self) -> datetime | None:
        """When the ledger's last event was written: a clock that reads earlier dates sales in the past."""
        row = self.conn.execute("SELECT ts FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return from_iso(str(row[0])) if row else None

    def history(self, raw_card: str, limit: int = 50) -> list[dict[str, Any]]:
        card_id = _normalize(raw_card)
        row = self.conn.execute("SELECT member_id FROM cards WHERE id=?", (card_id,)).fetchone()
        if row is None:
            raise LoyaltyError("unknown_card", f"card {card_id} is not enrolled")
        # each event of a sale carries the sale's receipt number: what a manager types to find it
        rows = self.conn.execute(
            "SELECT e.seq, e.ts, e.business_day, e.kind, e.program_id, e.account, e.amount, e.sale_id, s.receipt_no AS receipt,"
            " e.card_id, e.payload FROM events e LEFT JOIN sales s ON s.id = e.sale_id"
            " WHERE e.member_id=? ORDER BY e.seq DESC LIMIT ?",
            (row["member_id"], limit),
        ).fetchall()
        return [dict(r) | {"payload": json.loads(r["payload"])} for r in rows]

    # ------------------------------------------------------------ checkout

    def quote(self, req: CheckoutRequest, now: datetime) -> dict[str, Any]:
        """What the sale would cost and earn, without writing anything."""
        card_id = _normalize(req.card)
        day = self.day(now)
        with self.ledger.reading() as conn:
            row = self._card_for_sale(conn, card_id, allow_unknown=True)
            state = member_state(conn, self.cfg, row["member_id"], day, now=now) if row else MemberState()
            plan = price_cart(self.cfg, req.items, state, req.redeem, day)
            if row and (plan.rewards_used or plan.points_redeemed):  # said when the redemption is asked, not at payment
                self._check_redeem_cap(conn, str(row["member_id"]), day)
        return self._totals_json(plan) | {"earned": _earned(plan), "redeemed": _redeemed(plan)}

    def checkout(self, req: CheckoutRequest, now: datetime) -> dict[str, Any]:
        """Commit a sale: lines, rewards, discounts, earnings, print job. Idempotent by sale id."""
        card_id = _normalize(req.card)
        if req.sale_id is not None:
            self._check_sale_id(req.sale_id)
        sale_id = req.sale_id or new_op_id()
        fingerprint = req.fingerprint(card_id, self.cfg)
        day = self.day(now)
        ids = _Ids(sale_id)
        with self.ledger.transaction(now, day) as tx:
            done = tx.conn.execute(
                "SELECT s.request_hash, s.result, (SELECT 1 FROM business_days WHERE day=?) AS closed,"
                " (SELECT value FROM meta WHERE key='head_seq') AS head_seq, (SELECT value FROM meta WHERE key='head_hash') AS head_hash"
                " FROM (SELECT 1) LEFT JOIN sales s ON s.id=?",
                (day.isoformat(), sale_id),
            ).fetchone()
            tx.prime_head(int(done["head_seq"]), done["head_hash"])
            if done["result"] is not None:
                committed = dict(json.loads(done["result"]))
                if done["request_hash"] != fingerprint:
                    other = (f"for card {committed['card']}, not {card_id}" if committed.get("card") not in (None, card_id)
                             else "with other items or redemptions")
                    raise LoyaltyError("conflict", f"sale {sale_id} was already committed {other}: a new sale needs a new --sale-id")
                return committed | {"replayed": True}
            if done["closed"]:
                raise _day_closed(day)
            row = self._card_for_sale(tx.conn, card_id, allow_unknown=self.cfg.ledger.auto_enrol)
            enrolled = False
            welcome = 0
            if row is None:
                if not self.cfg.ledger.auto_enrol:
                    raise LoyaltyError("unknown_card", f"card {card_id} is not enrolled (auto-enrolment is off)")
                _new, welcome = self._enrol_new(tx, ids, card_id, sale_id=sale_id)
                row = tx.conn.execute(_CARD_AND_MEMBER, (card_id,)).fetchone()
                enrolled = True
            member_id = str(row["member_id"])
            profile_bonus = 0
            if req.profile:
                given = check_profile(req.profile.get("name"), req.profile.get("phone"), req.profile.get("birthday"))
                profile_bonus = self._update_profile(tx, ids, member_id, card_id, given)
                row = tx.conn.execute(_CARD_AND_MEMBER, (card_id,)).fetchone()
            member = row  # the card's row carries its member's columns
            expired = self._expire(tx, ids, member_id)
            state = member_state(tx.conn, self.cfg, member_id, day, swept=True, now=now)
            seen = len(tx.appended)  # the expiry above is already in `state`
            plan = price_cart(self.cfg, req.items, state, req.redeem, day)
            if plan.rewards_used or plan.points_redeemed:
                self._check_redeem_cap(tx.conn, member_id, day)

            tx.append(
                "sale",
                event_id=ids.next(),
                member_id=member_id,
                card_id=card_id,
                sale_id=sale_id,
                payload={"subtotal": plan.subtotal, "discount": plan.discount, "total": plan.total, "request": fingerprint},
            )
            common: dict[str, Any] = {"member_id": member_id, "card_id": card_id, "sale_id": sale_id}
            for pid, n in plan.rewards_used.items():
                tx.append("redeem", event_id=ids.next(), program_id=pid, account="rewards", amount=-n, payload={"value": plan.reward_value[pid]}, **common)
            for pid, points in plan.points_redeemed.items():
                # points held by the rest of the chain have no lot here: what the local lots lack is drawn on them
                local = lots.held(tx, member_id, pid)
                payload: dict[str, Any] = {"value": plan.points_redeemed_value[pid]}
                if points > local:
                    payload["remote"] = points - local
                ev = tx.append("redeem", event_id=ids.next(), program_id=pid, account="points", amount=-points, payload=payload, **common)
                lots.take(tx, event_id=ev.event_id, member_id=member_id, program_id=pid, points=min(points, local))
            rewards_issued: dict[str, int] = {}
            for pid, n in plan.stamps_earned.items():
                tx.append("stamp", event_id=ids.next(), program_id=pid, account="stamps", amount=n, **common)
                issued = self._issue_rewards(tx, ids, member_id, card_id, sale_id, pid, stamps=state.stamps[pid] + n)
                if issued:
                    rewards_issued[pid] = issued
            for pid, points in plan.points_earned.items():
                self._credit_points(tx, ids, "earn", member_id, pid, points, card_id=card_id, sale_id=sale_id)
            if plan.total:
                tx.append("spend", event_id=ids.next(), program_id=MEMBER, account="spend", amount=plan.total, **common)
            for pid, periods in plan.memberships_bought.items():
                self._extend_membership(tx, ids, member_id, card_id, sale_id, pid, periods, day)
            bonuses = self._enrolment_bonuses(welcome, profile_bonus) + self._sale_bonuses(tx, ids, member, card_id, sale_id, day)
            spend_after = state.window_spend + plan.total
            tier_change = self._tier_event(tx, ids, member_id, card_id, sale_id, plan.tier.id if plan.tier else None, day, spend_after)
            if member["first_sale_id"] is None:
                tx.conn.execute("UPDATE members SET first_sale_id=? WHERE id=?", (sale_id, member_id))

            if plan.memberships_bought:
                after = member_state(tx.conn, self.cfg, member_id, day, swept=True, window_spend=spend_after, now=now)
            else:
                moves = [(ev.program_id or "", ev.account, ev.amount) for ev in tx.appended[seen:] if ev.member_id == member_id and ev.account]
                after = advance(state, moves, spend_after)
            view = card_view(tx.conn, self.cfg, row, day, state=after, member=member)
            last = tx.appended[-1]
            result: dict[str, Any] = {
                "sale": sale_id,
                **self._totals_json(plan),
                "earned": _earned(plan),
                "redeemed": _redeemed(plan),
                "expired": expired,  # points of lots come due, written off by this sale
                "rewards_issued": rewards_issued,
                "bonuses": bonuses,
                "tier_change": tier_change,
                "enrolled": enrolled,
                **view,
                "receipt": {
                    "number": receipt_number(self.cfg.store.terminal, last.seq),
                    "seq": last.seq,
                    "hash": last.hash[:12],
                    "ts": tx.ts,
                    "business_day": tx.day,
                    "store": self.cfg.store.id,
                    "terminal": self.cfg.store.terminal,
                },
            }
            tx.conn.execute(
                "INSERT INTO sales (id, terminal_id, store_id, ts, business_day, card_id, member_id, currency, subtotal, discount, total,"
                " request_hash, result, receipt_no) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (sale_id, self.cfg.store.terminal, self.cfg.store.id, tx.ts, tx.day, card_id, member_id, self.cfg.currency.code,
                 plan.subtotal, plan.discount, plan.total, fingerprint, _ANSWER.encode(result), result["receipt"]["number"]),
            )
            tx.conn.executemany(
                "INSERT INTO sale_lines (sale_id, line_no, sku, name, category, qty, unit_price, gross, reward, discount, redeemed, net)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (sale_id, i, ln.item.sku, ln.item.name, ln.item.category, ln.qty, ln.item.price, ln.gross, ln.reward, ln.discount, ln.redeemed, ln.net)
                    for i, ln in enumerate(plan.lines, start=1)
                ],
            )
            _queue_print(tx, "sale", sale_id)
        return result

    def _totals_json(self, plan: Plan) -> dict[str, Any]:
        cur = self.cfg.currency
        return {
            "currency": cur.code,
            "subtotal": money.fmt(plan.subtotal, cur),
            "discount": money.fmt(plan.discount, cur),
            "total": money.fmt(plan.total, cur),
            "discounts": {k: money.fmt(v, cur) for k, v in plan.discounts.items()},
            "lines": [
                {
                    "sku": ln.item.sku,
                    "name": ln.item.name,
                    "qty": ln.qty,
                    "unit_price": money.fmt(ln.item.price, cur),
                    "amount": money.fmt(ln.gross, cur),
                    "reward": money.fmt(ln.reward, cur),
                    "discount": money.fmt(ln.discount, cur),
                    "redeemed": money.fmt(ln.redeemed, cur),
                    "total": money.fmt(ln.net, cur),
                }
                for ln in plan.lines
            ],
        }

    # ------------------------------------------------------------ refund

    def refund(self, ref: str, now: datetime) -> dict[str, Any]:
        """Reverse exactly what a sale (by id or receipt number) did to the member's balances, once."""
        sale_id = self.find_sale(ref)
        day = self.day(now)
        refund_id = derived_id(sale_id, "refund")
        ids = _Ids(refund_id)
        with self.ledger.transaction(now, day) as tx:
            sale = tx.conn.execute("SELECT * FROM sales WHERE id=?", (sale_id,)).fetchone()
            if sale is None:
                raise LoyaltyError("unknown_sale", f"no sale {sale_id!r} in this ledger")
            receipt = sale["receipt_no"] or sale_id  # what the customer's paper says
            if sale["refund_id"]:
                # a retry after a crash lands here too: say when, and how its slip comes out again
                done = tx.conn.execute("SELECT ts FROM refunds WHERE id=?", (sale["refund_id"],)).fetchone()
                when = f" at {local_time(done['ts'], self.cfg.store.tz):%Y-%m-%d %H:%M}" if done else ""
                raise LoyaltyError("already_refunded", f"sale {receipt} was already refunded{when} (refund {sale['refund_id']});"
                                                       f" loyalty print-queue reprint --kind refund --ref {sale['refund_id']}"
                                                       " prints its slip again",
                                   data={"receipt": receipt, "refund": str(sale["refund_id"]), "when": when})
            self._check_open_day(tx, day)
            member_id = str(sale["member_id"])
            card_id = str(sale["card_id"])
            expired = self._expire(tx, ids, member_id)  # due before the refund: not the refund's doing, but said
            tier_before = self.cfg.tiers.tier_for(member_state(tx.conn, self.cfg, member_id, day).window_spend)
            events = tx.conn.execute(
                "SELECT * FROM events WHERE member_id=? AND sale_id=? ORDER BY seq DESC", (member_id, sale_id)
            ).fetchall()
            last_seq = int(events[0]["seq"]) if events else 0
            # points the sale redeemed go back before the points it earned are taken: what it
            # gives back counts toward what it takes (the sort keeps the rest newest first)
            events.sort(key=lambda ev: not (ev["account"] == "points" and int(ev["amount"]) < 0))
            common: dict[str, Any] = {"member_id": member_id, "card_id": card_id, "sale_id": sale_id}
            reversed_: dict[str, dict[str, int]] = {}
            taken_back: dict[str, str | None] = {}  # memberships: the last day left
            # bonuses for joining stay: the card stays enrolled, whichever sale enrolled it
            events = [ev for ev in events if not (ev["kind"] == "bonus" and json.loads(ev["payload"] or "{}").get("bonus") in ENROLMENT_BONUSES)]
            taken: dict[str, int] = {}  # points taken back so far, per program (the message adds them to the balance left)
            for ev in events:
                kind, pid, account, amount = ev["kind"], ev["program_id"], ev["account"], int(ev["amount"])
                if kind in ("sale", "enrol", "tier", "profile", "referrer"):
                    continue
                if kind == "membership":
                    # the days it paid for go (memberships.py says how); the last day left is what the slip shows
                    before = tx.conn.execute("SELECT valid_until FROM memberships WHERE member_id=? AND program_id=?",
                                             (member_id, pid)).fetchone()
                    until = memberships.settle(tx.conn, member_id, pid, refunding=sale_id)
                    tx.append("reverse", event_id=ids.next(), program_id=pid, ref_event_id=ev["event_id"],
                              payload={"until": until}, **common)
                    if until != (before[0] if before else None):  # a period long lapsed takes nothing from the running one
                        taken_back[pid] = until
                    continue
                if account is None or amount == 0:
                    continue
                delta = -amount
                if account == "points" and amount > 0:
                    # take back what this lot still holds beyond what expired from it
                    delta = -(amount - lots.expired_from(tx, ev["event_id"]))
                    if delta == 0:
                        continue
                    have = self._effective(tx, member_id, pid, "points")
                    if have < -delta:
                        raise LoyaltyError(
                            "insufficient_balance",
                            f"cannot refund sale {receipt}: {pid}: it takes back the {_points_back(tx, events, pid)} points it earned, and the card "
                            f"holds {have + taken.get(pid, 0)}; {self._refund_first(tx, member_id, pid, 'points', last_seq)}",
                        )
                    taken[pid] = taken.get(pid, 0) - delta
                drawn = json.loads(ev["payload"]).get("remote") if kind == "redeem" else None
                payload: dict[str, Any] | None = {"remote": drawn} if drawn else None
                local = lots.held(tx, member_id, pid) if account == "points" and amount > 0 else 0
                if account == "points" and amount > 0 and -delta > local:
                    # more than this till's lots hold (its lot gave to a draw elsewhere, or was spent here): the rest is
                    # taken from the points the rest of the chain holds, a draw on it (a reversal's remote counts negative)
                    payload = {"remote": -(-delta - local)}
                rev = tx.append("reverse", event_id=ids.next(), program_id=pid, account=account, amount=delta,
                                ref_event_id=ev["event_id"], payload=payload, **common)
                if account == "points":
                    if amount > 0:
                        lots.take(tx, event_id=rev.event_id, member_id=member_id, program_id=pid, points=min(-delta, local), prefer_lot=ev["event_id"])
                    else:
                        returned = lots.give_back(tx, event_id=rev.event_id, original_event_id=ev["event_id"])
                        # the net change: points given back into a lot past its day are gone again
                        delta -= self._expire_returned(tx, ids, member_id, card_id, pid, returned)
                        if drawn:  # drawn on the chain, whose lots may have given them when they came due: gone again too
                            delta -= self._settle_given(tx, ids, member_id, pid, cap=int(drawn), card_id=card_id)
                if account in ("points", "stamps", "rewards") and pid != MEMBER:
                    entry = reversed_.setdefault(pid, {})
                    entry[account] = entry.get(account, 0) + delta
            for program in self.cfg.programs_of(StampsProgram):
                if program.id in reversed_:
                    self._settle_stamps(tx, ids, program, member_id, card_id, sale_id, receipt, last_seq, reversed_)
            for program_id, account, amount in tx.conn.execute(
                "SELECT b.program_id, b.account, b.amount + COALESCE(r.amount, 0) FROM balances b"
                " LEFT JOIN remote_balances r USING (member_id, program_id, account)"
                " WHERE b.member_id=? AND b.account IN ('stamps', 'rewards', 'points') AND b.amount + COALESCE(r.amount, 0) < 0",
                (member_id,),
            ).fetchall():
                what = "reward(s) it earned were" if account in ("rewards", "stamps") else "points it earned were"
                raise LoyaltyError(
                    "insufficient_balance",
                    f"cannot refund sale {receipt}: {program_id}: the {what} already used ({account} would be {amount}); refund the later sale first",
                )
            tier_change = self._tier_event(tx, ids, member_id, card_id, sale_id, tier_before.id if tier_before else None, day)
            view = card_view(tx.conn, self.cfg, tx.conn.execute("SELECT * FROM cards WHERE id=?", (card_id,)).fetchone(), day, now=now)
            cur = self.cfg.currency
            result = {"refund": refund_id, "sale": sale_id, "receipt": sale["receipt_no"], "ts": tx.ts, "currency": cur.code,
                      "total": money.fmt(int(sale["total"]), cur), "reversed": _net(reversed_, taken_back), "expired": expired,
                      "tier_change": tier_change, **view}
            tx.conn.execute(
                "INSERT INTO refunds (id, sale_id, ts, business_day, result) VALUES (?,?,?,?,?)",
                (refund_id, sale_id, tx.ts, tx.day, canonical(result)),
            )
            tx.conn.execute("UPDATE sales SET refund_id=? WHERE id=?", (refund_id, sale_id))
            _queue_print(tx, "refund", refund_id)
        return result

    # ------------------------------------------------------------ cards and members

    def enrol(
        self,
        raw_card: str,
        now: datetime,
        *,
        name: str | None = None,
        phone: str | None = None,
        birthday: str | None = None,
        referrer: str | None = None,
    ) -> dict[str, Any]:
        """Enrol a new card, or complete the profile of an enrolled one."""
        card_id = _normalize(raw_card)
        profile = check_profile(name, phone, birthday)
        day = self.day(now)
        ids = _Ids(new_op_id())
        with self.ledger.transaction(now, day) as tx:
            self._check_open_day(tx, day)  # its bonuses would change a Z report already printed
            row = tx.conn.execute("SELECT * FROM cards WHERE id=?", (card_id,)).fetchone()
            welcome = profile_bonus = 0
            if row is None:
                member_id, welcome = self._enrol_new(tx, ids, card_id)
            else:
                if row["status"] != "active":
                    raise _card_refused(row)
                member_id = str(row["member_id"])
            if referrer is not None:
                self._set_referrer(tx, ids, member_id, card_id, _normalize(referrer))
            if profile:
                profile_bonus = self._update_profile(tx, ids, member_id, card_id, profile)
            card = tx.conn.execute("SELECT * FROM cards WHERE id=?", (card_id,)).fetchone()
            view = card_view(tx.conn, self.cfg, card, day, now=now)
            # what the cashier tells the customer: the points this enrolment paid
            view["bonuses"] = self._enrolment_bonuses(welcome, profile_bonus)
            return view

    def block(self, raw_card: str, now: datetime, reason: str = "") -> dict[str, Any]:
        """Refuse the card from now on (lost, stolen, abuse); its member keeps everything."""
        return self._set_blocked(raw_card, now, True, reason)

    def unblock(self, raw_card: str, now: datetime) -> dict[str, Any]:
        return self._set_blocked(raw_card, now, False, "")

    def _set_blocked(self, raw_card: str, now: datetime, blocked: bool, reason: str) -> dict[str, Any]:
        card_id = _normalize(raw_card)
        reason = freetext.clean(reason, "the reason", "bad_reason", MAX_REASON, required=False)
        day = self.day(now)
        with self.ledger.transaction(now, day) as tx:
            self._book_after_close(tx, day)
            row = self._existing_card(tx.conn, card_id)
            if row["status"] == "replaced":
                raise _card_refused(row)
            # blocking a blocked card again with another reason says the new reason (here and, synced, at every till)
            if (row["status"] == "blocked") != blocked or (blocked and reason and reason != row["reason"]):
                tx.conn.execute("UPDATE cards SET status=?, reason=? WHERE id=?", ("blocked" if blocked else "active", reason or None, card_id))
                tx.append("block" if blocked else "unblock", event_id=new_op_id(), member_id=row["member_id"], card_id=card_id,
                          payload={"reason": reason} if blocked else None)
            return card_view(tx.conn, self.cfg, self._existing_card(tx.conn, card_id), day, now=now)

    def replace(self, raw_old: str, raw_new: str, now: datetime) -> dict[str, Any]:
        """Move a member from a lost or broken card to a new one; the old card is refused from now on."""
        old_id, new_id = _normalize(raw_old), _normalize(raw_new)
        if old_id == new_id:
            raise LoyaltyError("bad_card", "the new card must differ from the old one")
        day = self.day(now)
        with self.ledger.transaction(now, day) as tx:
            self._book_after_close(tx, day)
            old = self._existing_card(tx.conn, old_id)
            if old["status"] == "replaced":
                raise _card_refused(old)
            if tx.conn.execute("SELECT 1 FROM cards WHERE id=?", (new_id,)).fetchone():
                raise LoyaltyError("card_in_use", f"card {new_id} is already enrolled; replace onto a new, unused card")
            tx.conn.execute(
                "INSERT INTO cards (id, member_id, status, created_at) VALUES (?,?,?,?)", (new_id, old["member_id"], "active", tx.ts)
            )
            tx.conn.execute("UPDATE cards SET status='replaced', replaced_by=? WHERE id=?", (new_id, old_id))
            # cards the old one had replaced point at the card in use now, not along the chain
            tx.conn.execute("UPDATE cards SET replaced_by=? WHERE replaced_by=? AND status='replaced'", (new_id, old_id))
            tx.append("replace", event_id=new_op_id(), member_id=old["member_id"], card_id=old_id, payload={"new_card": new_id})
            return card_view(tx.conn, self.cfg, self._existing_card(tx.conn, new_id), day, now=now)

    def adjust(self, raw_card: str, program_id: str, amount: int, reason: str, now: datetime) -> dict[str, Any]:
        """A manager's correction of a points or stamps balance, with a reason."""
        card_id = _normalize(raw_card)
        reason = freetext.clean(reason, "an adjustment's reason", "bad_reason", MAX_REASON)
        if amount == 0:
            raise LoyaltyError("bad_amount", "an adjustment of zero changes nothing")
        if abs(amount) > MAX_ADJUST:
            raise LoyaltyError("bad_amount", f"an adjustment of {amount} is more than one adjustment may move ({MAX_ADJUST:,})")
        program = self.cfg.programs.get(program_id)
        if not isinstance(program, (PointsProgram, StampsProgram)):
            ids_ = [p.id for p in self.cfg.programs.values() if isinstance(p, (PointsProgram, StampsProgram))]
            hint = difflib.get_close_matches(program_id, ids_, n=1)
            raise LoyaltyError("unknown_program", f"{program_id!r} is not a points or stamps program"
                                                  + (f" (did you mean {hint[0]!r}?)" if hint else f"; these are: {', '.join(ids_)}"))
        day = self.day(now)
        ids = _Ids(new_op_id())
        with self.ledger.transaction(now, day) as tx:
            self._check_open_day(tx, day)
            row = self._existing_card(tx.conn, card_id)
            if row["status"] == "replaced":  # as every other command: the member's events go on the card they use
                raise _card_refused(row)
            member_id = str(row["member_id"])
            self._expire(tx, ids, member_id)
            if isinstance(program, PointsProgram):
                if amount > 0:
                    self._credit_points(tx, ids, "adjust", member_id, program_id, amount, card_id=card_id, payload={"reason": reason})
                else:
                    have = self._effective(tx, member_id, program_id, "points")
                    if have < -amount:
                        raise LoyaltyError("insufficient_balance", f"{program_id}: cannot take {-amount} points, balance {have}")
                    local = lots.held(tx, member_id, program_id)
                    payload = {"reason": reason} | ({"remote": -amount - local} if -amount > local else {})
                    ev = tx.append("adjust", event_id=ids.next(), member_id=member_id, card_id=card_id, program_id=program_id,
                                   account="points", amount=amount, payload=payload)
                    lots.take(tx, event_id=ev.event_id, member_id=member_id, program_id=program_id, points=min(-amount, local))
            else:
                have = self._effective(tx, member_id, program_id, "stamps")
                if have + amount < 0:
                    raise LoyaltyError("insufficient_balance", f"{program_id}: cannot take {-amount} stamps, card has {have}")
                tx.append("adjust", event_id=ids.next(), member_id=member_id, card_id=card_id, program_id=program_id,
                          account="stamps", amount=amount, payload={"reason": reason})
                self._issue_rewards(tx, ids, member_id, card_id, None, program_id)
            return card_view(tx.conn, self.cfg, row, day, now=now)

    def expire_all(self, now: datetime, day: date | None = None) -> int:
        """Write the expiry of every points lot due by `day` (default: today), booked on that day: end of day
        run after midnight for the day before puts its expiry on that day's Z. Returns the points expired."""
        day = day or self.day(now)
        ids = _Ids(new_op_id())
        with self.ledger.transaction(now, day) as tx:
            members = [r[0] for r in tx.conn.execute(
                "SELECT member_id FROM lots WHERE remaining > 0 AND expires_on <= ?"
                # and members whose lots gave to draws elsewhere: a refund there may have undone one
                " UNION SELECT member_id FROM events WHERE kind=?", (tx.day, lots.GIVEN))]
            before = len(tx.appended)
            for member_id in members:
                self._expire(tx, ids, member_id, settle=True)
            return -sum(ev.amount for ev in tx.appended[before:])

    # ------------------------------------------------------------ internals

    def _effective(self, tx: Tx, member_id: str, program_id: str, account: str) -> int:
        """This ledger's balance plus the chain's, as last synced."""
        row = tx.conn.execute(
            "SELECT amount FROM remote_balances WHERE member_id=? AND program_id=? AND account=?", (member_id, program_id, account)
        ).fetchone()
        return tx.balance(member_id, program_id, account) + (int(row[0]) if row else 0)

    def _card_for_sale(self, conn: sqlite3.Connection, card_id: str, *, allow_unknown: bool) -> sqlite3.Row | None:
        """The card with its member's columns (card_view reads both from it), or None for an unknown card."""
        row: sqlite3.Row | None = conn.execute(_CARD_AND_MEMBER, (card_id,)).fetchone()
        if row is None:
            if allow_unknown:
                return None
            raise LoyaltyError("unknown_card", f"card {card_id} is not enrolled, and this store enrols a card only when asked "
                                               f"([ledger] auto_enrol = false): enrol it first (loyalty card enrol)")
        if row["status"] != "active":
            raise _card_refused(row)
        return row

    def _existing_card(self, conn: sqlite3.Connection, card_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute("SELECT * FROM cards WHERE id=?", (card_id,)).fetchone()
        if row is None:
            raise LoyaltyError("unknown_card", f"card {card_id} is not enrolled")
        return row

    def _book_after_close(self, tx: Tx, day: date) -> None:
        """A card is blocked or replaced at any hour; after end of day its event counts on the next
        business day, so the Z report already printed for this one stays true."""
        while tx.conn.execute("SELECT 1 FROM business_days WHERE day=?", (tx.day,)).fetchone():
            day += timedelta(days=1)
            tx.day = day.isoformat()

    def _check_open_day(self, tx: Tx, day: date) -> None:
        if tx.conn.execute("SELECT 1 FROM business_days WHERE day=?", (day.isoformat(),)).fetchone():
            raise _day_closed(day)

    def _check_redeem_cap(self, conn: sqlite3.Connection, member_id: str, day: date) -> None:
        cap = self.cfg.offline.max_redeem_per_card_per_day
        if not cap:
            return
        here, elsewhere = conn.execute(
            "SELECT (SELECT COUNT(DISTINCT e.sale_id) FROM events e JOIN sales s ON s.id = e.sale_id"
            " WHERE e.member_id=:m AND e.business_day=:d AND e.kind='redeem' AND s.refund_id IS NULL),"
            # at the rest of the chain's tills, as of the last pull
            " (SELECT COALESCE(SUM(sales), 0) FROM remote_redeem_days WHERE member_id=:m AND day=:d)",
            {"m": member_id, "d": day.isoformat()},
        ).fetchone()
        if here + elsewhere >= cap:
            where = f" ({elsewhere} at other tills)" if elsewhere else ""
            raise LoyaltyError("redeem_cap", f"this card (with any card it replaced) already redeemed {here + elsewhere} time(s)"
                                             f" today{where}; the limit is {cap} per day")

    def _enrol_new(self, tx: Tx, ids: _Ids, card_id: str, sale_id: str | None = None) -> tuple[str, int]:
        """A new member for the card; returns the member's id and the welcome points paid."""
        member_id = derived_id(ids.op_id, "member")
        tx.conn.execute(
            "INSERT INTO members (id, enrolled_store, enrolled_at) VALUES (?,?,?)", (member_id, self.cfg.store.id, tx.ts)
        )
        tx.conn.execute("INSERT INTO cards (id, member_id, status, created_at) VALUES (?,?,?,?)", (card_id, member_id, "active", tx.ts))
        tx.append("enrol", event_id=ids.next(), member_id=member_id, card_id=card_id, sale_id=sale_id)
        return member_id, self._bonus(tx, ids, member_id, card_id, sale_id, "welcome", self.cfg.bonuses.welcome)

    def _set_referrer(self, tx: Tx, ids: _Ids, member_id: str, card_id: str, referrer_card: str) -> None:
        ref = tx.conn.execute("SELECT member_id, status FROM cards WHERE id=?", (referrer_card,)).fetchone()
        if ref is None:
            raise LoyaltyError("unknown_card", f"referrer card {referrer_card} is not enrolled")
        if ref["member_id"] == member_id:
            raise LoyaltyError("bad_referrer", "a member cannot refer themselves")
        if ref["status"] != "active":  # a blocked card (stolen?) or one replaced by another
            raise LoyaltyError("bad_referrer", f"referrer card {referrer_card} is {ref['status']}; give the card the member uses now")
        member = tx.conn.execute("SELECT referrer_id, first_sale_id FROM members WHERE id=?", (member_id,)).fetchone()
        if member["referrer_id"] == ref["member_id"]:
            return
        if member["referrer_id"] is not None:
            raise LoyaltyError("bad_referrer", "this member already has a referrer")
        # no loops: two members referring each other would each be paid the referral twice
        seen, up = {member_id}, ref["member_id"]
        while up is not None:
            if up in seen:
                through = "" if len(seen) == 2 else " (through others)"
                raise LoyaltyError("bad_referrer", f"card {referrer_card}'s member was referred by this member{through}:"
                                                   " a referral goes one way")
            seen.add(up)
            row = tx.conn.execute("SELECT referrer_id FROM members WHERE id=?", (up,)).fetchone()
            up = row["referrer_id"] if row else None
        if member["first_sale_id"] is not None:
            raise LoyaltyError("bad_referrer", "a referrer can only be set before the member's first purchase")
        tx.conn.execute("UPDATE members SET referrer_id=? WHERE id=?", (ref["member_id"], member_id))
        # an event, so the chain learns it: the referee's first sale may be at another till
        tx.append("referrer", event_id=ids.next(), member_id=member_id, card_id=card_id, payload={"referrer": ref["member_id"]})

    def _update_profile(self, tx: Tx, ids: _Ids, member_id: str, card_id: str, profile: dict[str, str]) -> int:
        """Save profile fields; returns the profile bonus paid (when the profile became complete).

        Given with a sale, it is still not the sale's: a refund of the sale keeps the profile and its bonus."""
        if not profile:
            return 0
        sets = ", ".join(f"{k}=?" for k in profile)
        tx.conn.execute(f"UPDATE members SET {sets} WHERE id=?", (*profile.values(), member_id))
        # personal data stays out of the append-only chain: only which fields changed
        tx.append("profile", event_id=ids.next(), member_id=member_id, card_id=card_id, payload={"fields": sorted(profile)})
        member = tx.conn.execute("SELECT name, phone, birthday FROM members WHERE id=?", (member_id,)).fetchone()
        if all(member[k] for k in ("name", "phone", "birthday")):
            return self._bonus(tx, ids, member_id, card_id, None, "profile", self.cfg.bonuses.profile_completed)
        return 0

    def _bonus(self, tx: Tx, ids: _Ids, member_id: str, card_id: str | None, sale_id: str | None, award: str, points: int) -> int:
        """Pay a bonus once per (member, award key); returns the points paid."""
        program_id = self.cfg.bonuses.program
        if points <= 0 or program_id is None:
            return 0
        if tx.conn.execute(
            # paid here, or at another till of the chain (from the last pull)
            "SELECT 1 FROM awards WHERE member_id=:m AND award=:a UNION ALL SELECT 1 FROM remote_awards WHERE member_id=:m AND award=:a",
            {"m": member_id, "a": award},
        ).fetchone():
            return 0
        ev_id = self._credit_points(tx, ids, "bonus", member_id, program_id, points, card_id=card_id, sale_id=sale_id, payload={"bonus": award})
        tx.conn.execute("INSERT INTO awards (member_id, award, event_id, sale_id) VALUES (?,?,?,?)", (member_id, award, ev_id, sale_id))
        return points

    def _enrolment_bonuses(self, welcome: int, profile: int) -> list[dict[str, Any]]:
        """The welcome and profile bonuses paid, as a sale's and an enrolment's answers list them."""
        return [{"bonus": name, "program": self.cfg.bonuses.program, "points": points}
                for name, points in (("welcome", welcome), ("profile", profile)) if points]

    def _sale_bonuses(self, tx: Tx, ids: _Ids, member: sqlite3.Row, card_id: str, sale_id: str, day: date) -> list[dict[str, Any]]:
        paid: list[dict[str, Any]] = []
        b = self.cfg.bonuses
        member_id = str(member["member_id"])
        if member["birthday"] and b.birthday:
            year = _birthday_year(member["birthday"], day, b.birthday_window_days)
            if year is not None and self._bonus(tx, ids, member_id, card_id, sale_id, f"birthday:{year}", b.birthday):
                paid.append({"bonus": "birthday", "program": b.program, "points": b.birthday})
        if member["referrer_id"] and member["first_sale_id"] is None:
            if self._bonus(tx, ids, member_id, card_id, sale_id, "referral:referee", b.referral_referee):
                paid.append({"bonus": "referral", "program": b.program, "points": b.referral_referee})
            referrer_card = tx.conn.execute(
                "SELECT id FROM cards WHERE member_id=? AND status='active' ORDER BY created_at LIMIT 1", (member["referrer_id"],)
            ).fetchone()
            self._bonus(tx, ids, member["referrer_id"], referrer_card[0] if referrer_card else None, sale_id, f"referral:{member_id}", b.referral_referrer)
        return paid

    def _credit_points(
        self,
        tx: Tx,
        ids: _Ids,
        kind: str,
        member_id: str,
        program_id: str,
        points: int,
        *,
        card_id: str | None = None,
        sale_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> str:
        program = self.cfg.programs[program_id]
        assert isinstance(program, PointsProgram)
        ev = tx.append(kind, event_id=ids.next(), member_id=member_id, card_id=card_id, program_id=program_id,
                       account="points", amount=points, sale_id=sale_id, payload=payload)
        lots.open_lot(tx, lot_id=ev.event_id, member_id=member_id, program_id=program_id, points=points,
                      expire_after_days=program.expire_after_days)
        return ev.event_id

    def _issue_rewards(
        self, tx: Tx, ids: _Ids, member_id: str, card_id: str | None, sale_id: str | None, program_id: str, *, stamps: int | None = None
    ) -> int:
        """Turn every full card of stamps into a reward voucher; extra stamps carry over."""
        program = self.cfg.programs[program_id]
        assert isinstance(program, StampsProgram)
        if stamps is None:
            stamps = tx.balance(member_id, program_id, "stamps")
        vouchers = stamps // program.stamps_per_reward
        if vouchers <= 0:
            return 0
        self._convert_cards(tx, ids, program, member_id, card_id, sale_id, vouchers)
        return vouchers

    def _convert_cards(self, tx: Tx, ids: _Ids, program: StampsProgram, member_id: str, card_id: str | None, sale_id: str | None,
                       vouchers: int) -> None:
        """Full stamp cards into vouchers (a negative count: vouchers back into stamps)."""
        common: dict[str, Any] = {"member_id": member_id, "card_id": card_id, "sale_id": sale_id, "program_id": program.id}
        payload = {"stamps_per_reward": program.stamps_per_reward}
        tx.append("reward", event_id=ids.next(), account="stamps", amount=-vouchers * program.stamps_per_reward, payload=payload, **common)
        tx.append("reward", event_id=ids.next(), account="rewards", amount=vouchers, payload=payload, **common)

    def _refund_first(self, tx: Tx, member_id: str, program_id: str, account: str, after_seq: int) -> str:
        """Which sale to refund first: the latest one not refunded that redeemed from this account after `after_seq`,
        here or, as the last pull said, at another till."""
        later = tx.conn.execute(
            "SELECT s.receipt_no, s.id FROM events e JOIN sales s ON s.id = e.sale_id WHERE e.member_id=? AND e.program_id=?"
            " AND e.kind='redeem' AND e.account=? AND e.seq > ? AND s.refund_id IS NULL ORDER BY e.seq DESC LIMIT 1",
            (member_id, program_id, account, after_seq),
        ).fetchone()
        if later:
            return f"refund sale {later[0] or later[1]} first"
        elsewhere = tx.conn.execute(
            "SELECT r.receipt, r.terminal_id, r.store_id, r.day FROM remote_last_redeems r, events e"
            " WHERE r.member_id=? AND r.program_id=? AND r.account=? AND e.seq=? AND r.ts > e.ts",
            (member_id, program_id, account, after_seq),
        ).fetchone()
        if elsewhere:
            receipt, terminal, store, day = elsewhere
            where = f"till {terminal}" + ("" if store == self.cfg.store.id else f" of store {store}")
            return (f"sale {receipt} at {where} spent them on {day} (as of the last sync): refund it there first,"
                    " sync both tills, then refund this one")
        # nothing later here took them: another till of the chain did, or an adjustment
        return ("no later sale at this till spent them (they went at another till or in an adjustment):"
                " the card must hold them again before this refund")

    def _settle_stamps(self, tx: Tx, ids: _Ids, program: StampsProgram, member_id: str, card_id: str, sale_id: str, receipt: str,
                       last_seq: int, reversed_: dict[str, dict[str, int]]) -> None:
        """After a refund's reversals: the stamps and vouchers the member would hold had the sale never happened.

        Counted in stamps (a voucher is a full card), what is left is cut into full
        cards and carry-over again: a refunded stamp that had gone into a voucher
        still unused turns that voucher back into stamps, and stamps set free by a
        reversed voucher fill a new one. Less than nothing left means a voucher
        the refund needs was used by a later sale, which must be refunded first.
        """
        per = program.stamps_per_reward
        stamps = self._effective(tx, member_id, program.id, "stamps")
        rewards = self._effective(tx, member_id, program.id, "rewards")
        total = stamps + per * rewards
        if total < 0:
            raise LoyaltyError(
                "insufficient_balance",
                f"cannot refund sale {receipt}: {program.id}: the reward its stamps went into was already used; "
                + self._refund_first(tx, member_id, program.id, "rewards", last_seq),
            )
        change = total // per - rewards
        if not change:
            return
        self._convert_cards(tx, ids, program, member_id, card_id, sale_id, change)
        entry = reversed_.setdefault(program.id, {})
        entry["stamps"] = entry.get("stamps", 0) - change * per
        entry["rewards"] = entry.get("rewards", 0) + change

    def _expire(self, tx: Tx, ids: _Ids, member_id: str, *, settle: bool = False) -> dict[str, int]:
        """Write off the member's lots come due; returns the points expired per program. `settle` (end of day): also
        points this till's lots gave to draws elsewhere that were refunded since (a sale need not look each time)."""
        due = lots.due_lots(tx, member_id)
        give: dict[str, int] = {}
        room: dict[str, int] = {}
        expired: dict[str, int] = {}
        for program_id in dict.fromkeys(p for _, p, _ in due):
            # not the whole lots: what other tills spent of them is gone already; those points are given, not expired
            give[program_id], room[program_id] = lots.split_due(
                sum(r for _, p, r in due if p == program_id), lots.held(tx, member_id, program_id),
                self._effective(tx, member_id, program_id, "points"), lots.draws(tx.conn, member_id, program_id).free)
        for lot_id, program_id, remaining in due:
            given = min(remaining, give[program_id])
            if given > 0:  # the lot's points a draw elsewhere spent: no balance moves, the lot gives them
                give[program_id] -= given
                ev = tx.append(lots.GIVEN, event_id=ids.next(), member_id=member_id, program_id=program_id, account="points",
                               amount=0, payload={"lot": lot_id, "remote": -given})
                lots.take(tx, event_id=ev.event_id, member_id=member_id, program_id=program_id, points=given, prefer_lot=lot_id)
            points = min(remaining - given, room[program_id])
            if points <= 0:
                continue
            room[program_id] -= points
            ev = tx.append("expire", event_id=ids.next(), member_id=member_id, program_id=program_id, account="points",
                           amount=-points, payload={"lot": lot_id})
            lots.take(tx, event_id=ev.event_id, member_id=member_id, program_id=program_id, points=points, prefer_lot=lot_id)
            expired[program_id] = expired.get(program_id, 0) + points
        for program_id in self._gave(tx, member_id) if settle else ():  # lots gave to draws since refunded: those expire
            gone = self._settle_given(tx, ids, member_id, program_id, cap=None)
            if gone:
                expired[program_id] = expired.get(program_id, 0) + gone
        return expired

    def _gave(self, tx: Tx, member_id: str) -> list[str]:
        return [str(r[0]) for r in tx.conn.execute(
            "SELECT DISTINCT program_id FROM events WHERE member_id=? AND kind=?", (member_id, lots.GIVEN))]

    def _settle_given(self, tx: Tx, ids: _Ids, member_id: str, program_id: str, *, cap: int | None, card_id: str | None = None) -> int:
        """Points lots gave to a draw on the chain (lots.GIVEN: they were due) that a refund has since undone:
        back on the balance with no lot to expire them, they expire now. Written as a draw on the chain
        (payload `remote`), which evens the chain's count of draws and givings; returns the points.

        `cap`: the points a refund just gave back to the chain (the refunding till settles at most those); None:
        this till settles what its own lots gave.
        """
        d = lots.draws(tx.conn, member_id, program_id)
        if d.undrawn >= 0 or (cap is None and d.remote_given):  # with two givers, neither knows it is the one to settle
            return 0
        points = min(-d.undrawn, d.given if cap is None else cap, max(0, self._effective(tx, member_id, program_id, "points")))
        if points <= 0:
            return 0
        tx.append("expire", event_id=ids.next(), member_id=member_id, card_id=card_id, program_id=program_id, account="points",
                  amount=-points, payload={"remote": points, "given_back": True})
        return points

    def _expire_returned(self, tx: Tx, ids: _Ids, member_id: str, card_id: str, program_id: str,
                         returned: list[tuple[str, int, str | None]]) -> int:
        """Points given back to a lot whose day has passed expire at once, as they would have; returns how many."""
        expired = 0
        for lot_id, points, expires_on in returned:
            if expires_on is not None and expires_on <= tx.day and points > 0:
                ev = tx.append("expire", event_id=ids.next(), member_id=member_id, card_id=card_id, program_id=program_id,
                               account="points", amount=-points, payload={"lot": lot_id})
                lots.take(tx, event_id=ev.event_id, member_id=member_id, program_id=program_id, points=points, prefer_lot=lot_id)
                expired += points
        return expired

    def _extend_membership(self, tx: Tx, ids: _Ids, member_id: str, card_id: str, sale_id: str, program_id: str, periods: int, day: date) -> None:
        program = self.cfg.programs[program_id]
        assert isinstance(program, MembershipProgram)
        row = tx.conn.execute(
            # bought here or at another till of the chain: a new period starts after the later
            "SELECT MAX(v) FROM (SELECT valid_until AS v FROM memberships WHERE member_id=:m AND program_id=:p"
            " UNION ALL SELECT valid_until FROM remote_memberships WHERE member_id=:m AND program_id=:p)",
            {"m": member_id, "p": program_id},
        ).fetchone()
        previous = row[0] if row else None
        start = day if previous is None or date.fromisoformat(previous) < day else date.fromisoformat(previous) + timedelta(days=1)
        if (start - day).days + program.period_days * periods > MAX_MEMBERSHIP_DAYS:
            raise LoyaltyError("bad_item", f"{program.name}: this would run the membership past {MAX_MEMBERSHIP_DAYS // 365} years"
                                           f" from today (paid until {previous})" if previous else
                               f"{program.name}: {periods} periods would run past {MAX_MEMBERSHIP_DAYS // 365} years")
        until = start + timedelta(days=program.period_days * periods - 1)
        memberships.write(tx.conn, member_id, program_id, until.isoformat())
        tx.append("membership", event_id=ids.next(), member_id=member_id, card_id=card_id, program_id=program_id, sale_id=sale_id,
                  payload={"from": start.isoformat(), "until": until.isoformat(), "previous_until": previous})


    def _tier_event(
        self, tx: Tx, ids: _Ids, member_id: str, card_id: str, sale_id: str, before: str | None, day: date, spend: int | None = None
    ) -> dict[str, Any] | None:
        if not self.cfg.tiers.levels:
            return None
        tier = self.cfg.tiers.tier_for(tier_spend(tx.conn, self.cfg, member_id, day) if spend is None else spend)
        after = tier.id if tier else None
        if after == before:
            return None
        tx.append("tier", event_id=ids.next(), member_id=member_id, card_id=card_id, sale_id=sale_id, payload={"from": before, "to": after})
        return {"from": before, "to": after}


# ---------------------------------------------------------------- helpers


def _normalize(raw: str) -> str:
    try:
        return cards.normalize(raw)
    except cards.CardIdError as exc:
        raise LoyaltyError("bad_card", str(exc)) from None


def _day_closed(day: date) -> LoyaltyError:
    return LoyaltyError("day_closed", f"business day {day} is closed (end of day ran); no more sales, refunds, enrolments or adjustments on it")


def _points_back(tx: Tx, events: list[sqlite3.Row], program_id: str) -> int:
    """The points a refund takes back in `program_id`: what its sale credited, less what has expired from it."""
    return sum(int(ev["amount"]) - lots.expired_from(tx, ev["event_id"]) for ev in events
               if ev["program_id"] == program_id and ev["account"] == "points" and int(ev["amount"]) > 0)


def _card_refused(row: sqlite3.Row) -> LoyaltyError:
    if row["status"] == "blocked":
        reason = f" ({row['reason']})" if row["reason"] else ""
        return LoyaltyError("card_blocked", f"card {row['id']} is blocked{reason}: keep the card and call the manager")
    return LoyaltyError("card_replaced", f"card {row['id']} was replaced by {row['replaced_by']}: use the new card")


def _earned(plan: Plan) -> dict[str, int]:
    return {**plan.stamps_earned, **plan.points_earned}


def _redeemed(plan: Plan) -> dict[str, int]:
    return {**plan.rewards_used, **plan.points_redeemed}


def _queue_print(tx: Tx, kind: str, ref: str) -> None:
    tx.conn.execute("INSERT INTO print_jobs (kind, ref, created_at) VALUES (?,?,?)", (kind, ref, tx.ts))


def check_profile(name: str | None, phone: str | None, birthday: str | None) -> dict[str, str]:
    """The profile fields given, cleaned; LoyaltyError("bad_profile") names the first bad one."""
    profile: dict[str, str] = {}
    if name is not None:
        profile["name"] = freetext.clean(name, "the name", "bad_profile", MAX_NAME)
    if phone is not None:
        phone = phone.strip().translate(_ASCII_DIGITS)
        if not _PHONE.match(phone):
            raise LoyaltyError("bad_profile", f"phone {phone!r} must be digits (5 to 20), optionally with a leading +")
        profile["phone"] = phone
    if birthday is not None:
        birthday = birthday.strip().translate(_ASCII_DIGITS)
        m = _BIRTHDAY.match(birthday)
        if not m or int(m.group(2)) > _DAYS_IN_MONTH[int(m.group(1)) - 1]:
            raise LoyaltyError("bad_profile", f"birthday {birthday!r} must be MM-DD, e.g. 03-21")
        profile["birthday"] = birthday
    return profile


def _birthday_year(mmdd: str, day: date, window_days: int) -> int | None:
    """The year whose birthday's window contains `day` (Feb 29 counts on Feb 28 in other years)."""
    month, dom = int(mmdd[:2]), int(mmdd[3:])
    for year in (day.year, day.year - 1):
        try:
            bday = date(year, month, dom)
        except ValueError:
            bday = date(year, 2, 28)
        if bday <= day < bday + timedelta(days=window_days):
            return year
    return None
