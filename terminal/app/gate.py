"""The app's one door to the ledger.

The service holds a single SQLite connection; workers run on several threads,
so every call goes through one lock. Nothing here touches Textual: the same
object serves the benchmark and the tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from ledger import money
from ledger.clock import iso, local_time
from ledger.config import Config, PointsProgram, StampsProgram
from ledger.errors import LoyaltyError
from ledger.pricing import MemberState, price_cart
from ledger.service import CheckoutRequest, Loyalty


class Gate:
    """Serialized calls into `Loyalty`, with the till's clock."""

    def __init__(self, loyalty: Loyalty, clock: Callable[[], datetime]):
        self.loyalty = loyalty
        self.cfg: Config = loyalty.cfg
        self.clock = clock
        self.lock = threading.RLock()  # also taken by sync, which shares the ledger's connection

    def close(self) -> None:
        with self.lock:
            self.loyalty.close()

    # ------------------------------------------------------------ cards

    def card(self, card_id: str) -> dict[str, Any]:
        with self.lock:
            return self.loyalty.card(card_id, self.clock())

    def history(self, card_id: str, limit: int = 200) -> list[dict[str, Any]]:
        with self.lock:
            return self.loyalty.history(card_id, limit)

    def enrol(self, card_id: str, **profile: str | None) -> dict[str, Any]:
        with self.lock:
            return self.loyalty.enrol(card_id, self.clock(), **profile)

    def block(self, card_id: str, reason: str) -> dict[str, Any]:
        with self.lock:
            return self.loyalty.block(card_id, self.clock(), reason)

    def unblock(self, card_id: str) -> dict[str, Any]:
        with self.lock:
            return self.loyalty.unblock(card_id, self.clock())

    def replace(self, old: str, new: str) -> dict[str, Any]:
        with self.lock:
            return self.loyalty.replace(old, new, self.clock())

    def adjust(self, card_id: str, program: str, amount: int, reason: str) -> dict[str, Any]:
        with self.lock:
            return self.loyalty.adjust(card_id, program, amount, reason, self.clock())

    # ------------------------------------------------------------ sales

    def quote(self, card_id: str | None, items: list[tuple[str, int]], redeem: dict[str, int | None]) -> dict[str, Any]:
        with self.lock:
            if card_id is not None:
                return self.loyalty.quote(CheckoutRequest(card=card_id, items=items, redeem=redeem), self.clock())
            # no card yet: shelf prices, no loyalty discount until a card is tapped
            plan = price_cart(self.cfg, items, MemberState(), {}, self.loyalty.day(self.clock()))
        cur = self.cfg.currency
        subtotal = money.fmt(plan.subtotal, cur)
        zero = money.fmt(0, cur)
        lines = [
            {"sku": ln.item.sku, "name": ln.item.name, "qty": ln.qty, "unit_price": money.fmt(ln.item.price, cur),
             "amount": money.fmt(ln.gross, cur), "reward": zero, "discount": zero, "redeemed": zero, "total": money.fmt(ln.gross, cur)}
            for ln in plan.lines
        ]
        return {"currency": cur.code, "subtotal": subtotal, "discount": zero, "total": subtotal, "discounts": {},
                "lines": lines, "earned": {}, "redeemed": {}}

    def checkout(self, req: CheckoutRequest) -> dict[str, Any]:
        with self.lock:
            return self.loyalty.checkout(req, self.clock())

    def refund(self, sale_ref: str) -> dict[str, Any]:
        with self.lock:
            return self.loyalty.refund(self.sale_id_for(sale_ref), self.clock())

    def refund_of(self, sale_ref: str) -> dict[str, Any]:
        with self.lock:
            return self.loyalty.refund_of(self.sale_id_for(sale_ref))

    def sale(self, sale_ref: str) -> dict[str, Any]:
        with self.lock:
            return self.loyalty.sale(self.sale_id_for(sale_ref))

    def sale_id_for(self, ref: str) -> str:
        """A sale by its id or by the receipt number printed on it (till-1-000042)."""
        ref = ref.strip()
        if not ref:
            raise LoyaltyError("unknown_sale", "give the sale's receipt number (e.g. till-1-000042 or 42) or its id")
        with self.lock:
            return self.loyalty.find_sale(ref)

    # ------------------------------------------------------------ status

    def pending_events(self) -> tuple[int, str | None]:
        """Events not yet acknowledged by the server, and when the last sync ran."""
        with self.lock:
            conn = self.loyalty.conn
            head, _hash = self.loyalty.ledger.head()
            state = dict(conn.execute("SELECT key, value FROM sync_state").fetchall())
        acked = int(state.get("acked_seq", 0) or 0)
        last = max(filter(None, (state.get("last_push_at"), state.get("last_pull_at"))), default=None)
        return max(0, head - acked), last

    def ledger_problem(self) -> str | None:
        """Why the ledger can take no sale any more (its file deleted or replaced under the till), or None.

        Asked at every status tick, not only at a sale: the sooner it is seen, the
        sooner what the file held is saved and its -wal taken off the path.
        """
        with self.lock:
            try:
                self.loyalty.ledger.check_file()
            except LoyaltyError as exc:
                return exc.message
        return None

    def clock_behind(self, slack_s: float = 300.0) -> str | None:
        """What to tell the cashier when the till's clock reads earlier than its ledger's last event: sales would be
        dated (and their points due) in the past, perhaps on a day already closed."""
        with self.lock:
            last = self.loyalty.last_event_at()
        now = self.clock()
        if last is None or (last - now).total_seconds() <= slack_s:
            return None
        tz = self.loyalty.cfg.store.tz
        return (f"This till's clock says {now.astimezone(tz):%Y-%m-%d %H:%M}, earlier than its last sale or change"
                f" ({last.astimezone(tz):%Y-%m-%d %H:%M}): set the date and time right before selling.")

    def day_to_close(self) -> date:
        """The business day end of day closes now (after midnight: the day that just ended, Loyalty.day_to_close)."""
        with self.lock:
            return self.loyalty.day_to_close(self.clock())

    def recent_sale_note(self, minutes: int = 15) -> str:
        """At start: the till's last sale when it was made in the last minutes (a crash or power cut during a payment
        leaves the cashier unsure whether it went through); empty otherwise."""
        since = iso(self.clock() - timedelta(minutes=minutes))
        with self.lock:
            # the last row written, not a scan of the day's sales by time
            row = self.loyalty.conn.execute("SELECT receipt_no, currency, total, ts FROM sales ORDER BY rowid DESC LIMIT 1").fetchone()
        if row is None or row["ts"] < since:
            return ""
        at = local_time(row["ts"], self.cfg.store.tz)
        total = money.fmt(int(row["total"]), self.cfg.currency)
        return (f"Last sale before this start: receipt {row['receipt_no']}, {row['currency']} {total} at {at:%H:%M}, completed"
                " and recorded: do not ring it up again.")

    def closed_today(self) -> str | None:
        """What to tell the cashier when today's business day is closed already (end of day ran, perhaps cut off
        by a crash before its Z report printed); None on an open day."""
        day = self.loyalty.day(self.clock()).isoformat()
        with self.lock:
            conn = self.loyalty.conn
            closed = conn.execute("SELECT closed_at FROM business_days WHERE day=?", (day,)).fetchone()
            if closed is None:
                return None
            printed = conn.execute("SELECT 1 FROM print_jobs WHERE kind='z_report' AND ref=? AND status='printed'", (day,)).fetchone()
        said = f"Business day {day} is closed (end of day ran): no more sales on it, until the next business day."
        return said + ("" if printed else " Its Z report has not printed: F12 e runs end of day again and prints it.")

    # ------------------------------------------------------------ rules helpers (pure)

    def points_for(self, program_id: str, text: str) -> int | None:
        """What the cashier typed for a points redemption: points (200), money (1.000), or blank for all."""
        program = self.cfg.programs.get(program_id)
        if not isinstance(program, PointsProgram):
            raise LoyaltyError("not_redeemable", f"{program_id} is not a points program")
        text = text.strip()
        if not text:
            return None
        code = self.cfg.currency.code
        # an amount has a decimal point, or (in a currency without decimals) its currency: IRR 50000 or 50000 IRR
        bare = text.upper().removeprefix(code).removesuffix(code).strip() if code in text.upper() else None
        if "." in text or bare is not None:
            try:
                amount = money.parse(bare if bare is not None else text, self.cfg.currency)
            except money.MoneyError as exc:  # 1.5000 in KWD: the form says so and stays open
                raise LoyaltyError("bad_amount", str(exc)) from None
            if amount <= 0 or amount % program.step_value:
                step = money.fmt(program.step_value, self.cfg.currency)
                raise LoyaltyError("bad_amount", f"{text} is not a whole number of {step} steps: type a multiple of {step}")
            return amount // program.step_value * program.step_points
        try:
            points = int(text)
        except ValueError:
            raise LoyaltyError("bad_amount", f"{text!r}: type points (e.g. {program.step_points}) or an amount"
                                             f" (e.g. {self.amount_example(program)})") from None
        return points

    def amount_example(self, program: PointsProgram) -> str:
        """How the cashier types one redemption step as money: 0.500, or IRR 50000 where a number alone is points."""
        shown = money.fmt(program.step_value, self.cfg.currency)
        return shown if self.cfg.currency.digits else f"{self.cfg.currency.code} {shown}"

    def stamp_programs(self) -> tuple[StampsProgram, ...]:
        return self.cfg.programs_of(StampsProgram)

    def points_programs(self) -> tuple[PointsProgram, ...]:
        return self.cfg.programs_of(PointsProgram)
