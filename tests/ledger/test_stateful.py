"""Random days of trading: after every step the ledger replays to its balances.

Sales, refunds, redemptions, expiry, replace and block over simulated days,
on a store with every kind of program. After each step: `ledger verify`
passes (chain, balances == replay, lots, sales), no local balance is
negative, and a sale refunded at once leaves every balance as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from ledger_store import STORE

from ledger import clock
from ledger.config import load
from ledger.errors import LoyaltyError
from ledger.service import CheckoutRequest, Loyalty
from ledger.verify import verify

EXTRA = """
[[program]]
id = "card"
kind = "discount"
eligible = { categories = ["coffee", "pastry"] }

[[program.graduated]]
from = "0.000"
percent = 2

[[program.graduated]]
from = "15.000"
percent = 5

[[program]]
id = "vip"
kind = "membership"
sku = "VIP"
period_days = 20
benefit = { discount_percent = 10, points_multiplier = 2 }

[tiers]
window_days = 20

[[tiers.level]]
id = "silver"
min_spend = "12.000"
points_multiplier = 1.5

[[promotion]]
id = "fridays"
multiplier = 2
weekdays = ["fri"]

[bonuses]
welcome = 20
profile_completed = 10
birthday = 30
birthday_window_days = 3
referral_referrer = 40
referral_referee = 15
"""

SKUS = ["ESP", "LAT", "BIG", "CRO", "BEANS", "VIP"]
CARDS = ["uid:04000001", "uid:04000002", "code:3333", "em:0100000004"]
EXPECTED = {
    "insufficient_balance", "no_eligible_item", "exceeds_due", "card_blocked", "card_replaced",
    "redeem_cap", "bad_amount", "already_refunded", "card_in_use", "unknown_card",
}


class Trading(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="loyalty-stateful-"))
        path = self.dir / "store.toml"
        path.write_text(STORE.replace("max_redeem_per_card_per_day = 0", "max_redeem_per_card_per_day = 3") + EXTRA, encoding="utf-8")
        self.cfg = load(path)
        self.service = Loyalty.open(self.cfg)
        self.now = clock.parse_now("2026-11-01T09:00", self.cfg.store.tz)
        self.sales: list[str] = []
        self.cards = list(CARDS)
        self.spare = 0
        for card in CARDS:  # every card starts with stamps and points to spend
            result = self.service.checkout(CheckoutRequest.from_cli(card, ["ESP*9", "BIG*6"], []), self.tick())
            self.sales.append(result["sale"])

    def teardown(self) -> None:
        self.service.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def tick(self) -> datetime:
        self.now += timedelta(minutes=7)
        return self.now

    def attempt(self, fn, *args):  # type: ignore[no-untyped-def]
        try:
            result = fn(*args)
        except LoyaltyError as exc:
            assert exc.code in EXPECTED, f"unexpected error {exc.code}: {exc.message}"
            event(f"{fn.__name__}: {exc.code}")
            return None
        event(f"{fn.__name__}: ok")
        return result

    def balances(self, card: str) -> dict[tuple[str, str], int]:
        member = self.service.conn.execute("SELECT member_id FROM cards WHERE id=?", (card,)).fetchone()
        if member is None:
            return {}
        rows = self.service.conn.execute("SELECT program_id, account, amount FROM balances WHERE member_id=?", (member[0],))
        return {(r[0], r[1]): r[2] for r in rows if r[2]}

    @rule(card=st.sampled_from(range(4)), items=st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 4)), min_size=1, max_size=4),
          redeem=st.sampled_from([[], ["coffee"], ["points"], ["points=100"], ["points=200"], ["coffee", "points"]]))
    def sale(self, card: int, items: list[tuple[str, int]], redeem: list[str]) -> None:
        req = CheckoutRequest.from_cli(self.cards[card], [f"{s}*{q}" for s, q in items], redeem)
        result = self.attempt(self.service.checkout, req, self.now + timedelta(minutes=7))
        if result is not None:
            self.sales.append(result["sale"])
            # what the sale answered (computed from its own moves) is what the ledger now says
            fresh = self.service.card(self.cards[card], self.now + timedelta(minutes=7))
            assert (result["programs"], result["member"]) == (fresh["programs"], fresh["member"])
        self.tick()

    @rule(card=st.sampled_from(range(4)), items=st.lists(st.sampled_from(SKUS), min_size=1, max_size=5))
    def plain_sale(self, card: int, items: list[str]) -> None:
        result = self.attempt(self.service.checkout, CheckoutRequest.from_cli(self.cards[card], items, []), self.tick())
        if result is not None:
            self.sales.append(result["sale"])

    @precondition(lambda self: bool(self.sales))
    @rule(pick=st.integers(0, 10**6))
    def refund(self, pick: int) -> None:
        self.attempt(self.service.refund, self.sales[pick % len(self.sales)], self.tick())

    @rule(card=st.sampled_from(range(4)), items=st.lists(st.sampled_from(SKUS), min_size=1, max_size=3),
          redeem=st.sampled_from([[], ["coffee"], ["points"]]))
    def sale_then_refund_changes_nothing(self, card: int, items: list[str], redeem: list[str]) -> None:
        self.service.expire_all(self.tick())
        before = self.balances(self.cards[card])
        if not before:
            return
        memberships = self.service.conn.execute("SELECT * FROM memberships ORDER BY 1, 2").fetchall()
        result = self.attempt(self.service.checkout, CheckoutRequest.from_cli(self.cards[card], items, redeem), self.tick())
        if result is None:
            return
        self.service.refund(result["sale"], self.tick())
        assert self.balances(self.cards[card]) == before
        assert self.service.conn.execute("SELECT * FROM memberships ORDER BY 1, 2").fetchall() == memberships

    @rule(days=st.integers(1, 40))
    def next_day(self, days: int) -> None:
        self.now += timedelta(days=days)

    @rule()
    def expire(self) -> None:
        self.service.expire_all(self.tick())

    @rule(card=st.sampled_from(range(4)))
    def block_and_unblock(self, card: int) -> None:
        self.attempt(self.service.block, self.cards[card], self.tick(), "test")
        if card % 2:
            self.attempt(self.service.unblock, self.cards[card], self.tick())

    @rule(card=st.sampled_from(range(4)))
    def replace(self, card: int) -> None:
        self.spare += 1
        new = f"code:spare-{self.spare}"
        if self.attempt(self.service.replace, self.cards[card], new, self.tick()) is not None:
            self.cards[card] = new

    @rule(card=st.sampled_from(range(4)), birthday=st.sampled_from(["11-02", "11-20", "02-29", "12-31"]), referrer=st.sampled_from(range(4)))
    def enrol(self, card: int, birthday: str, referrer: int) -> None:
        ref = self.cards[referrer] if referrer != card else None
        try:
            self.service.enrol(self.cards[card], self.tick(), name="Test", phone="+96550000000", birthday=birthday, referrer=ref)
        except LoyaltyError as exc:
            assert exc.code in EXPECTED | {"bad_referrer"}, exc.message

    @rule(card=st.sampled_from(range(4)), amount=st.sampled_from([-120, -30, -1, 1, 25, 150]), program=st.sampled_from(["points", "coffee"]))
    def adjust(self, card: int, amount: int, program: str) -> None:
        self.attempt(self.service.adjust, self.cards[card], program, amount, "count", self.tick())

    @invariant()
    def ledger_replays_to_its_balances(self) -> None:
        report = verify(self.service.conn)
        assert report.ok, report.problems

    @invariant()
    def no_negative_balance(self) -> None:
        negative = self.service.conn.execute(
            "SELECT * FROM balances WHERE amount < 0 AND account IN ('stamps', 'rewards', 'points')"
        ).fetchall()
        assert not negative, [tuple(r) for r in negative]

    @invariant()
    def stamps_below_a_full_card(self) -> None:
        row = self.service.conn.execute("SELECT MAX(amount) FROM balances WHERE account = 'stamps'").fetchone()
        assert row[0] is None or row[0] < 10


TestTrading = Trading.TestCase
TestTrading.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
