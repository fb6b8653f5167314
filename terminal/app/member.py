"""The member screen: who the card belongs to and what happened on it."""

from __future__ import annotations

import json
from typing import ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ledger import lots
from ledger.clock import local_time

from . import render
from .checkout import plain_reason
from .messages import HistoryLoaded
from .services import Services

KIND_WORDS = {
    "enrol": "enrolled",
    "sale": "sale",
    "stamp": "stamps earned",
    "earn": "points earned",
    "bonus": "bonus",
    "reward": "reward",
    "redeem": "redeemed",
    "expire": "expired",
    lots.GIVEN: "spent at another till",
    "adjust": "adjusted",
    "reverse": "refund reversal",
    "tier": "tier change",
    "block": "blocked",
    "unblock": "unblocked",
    "replace": "card replaced",
    "profile": "profile",
    "membership": "membership",
}


class MemberScreen(Screen[None]):
    DEFAULT_CSS = """
    MemberScreen { layout: vertical; }
    #member-title { height: 1; background: $boost; padding: 0 1; text-style: bold; }
    #member-body { height: 1fr; }
    #member-summary { width: 34; padding: 0 1; border-right: solid $primary; }
    #history { width: 1fr; }
    /* under 100 columns the summary goes above the history: beside it, the history's columns would scroll sideways */
    MemberScreen.-narrow #member-body { layout: vertical; }
    MemberScreen.-narrow #member-summary { width: 1fr; height: 40%; border-right: none; border-bottom: solid $primary; }
    MemberScreen.-narrow #history { height: 1fr; }
    """
    NARROW = 100
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f8", "back", "Back"), Binding("f1", "help", "Help")]

    def __init__(self, services: Services, card_id: str):
        super().__init__()
        self.services = services
        self.card_id = card_id
        self.events_shown = 0

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Member: {self.card_id}"), id="member-title")
        with Horizontal(id="member-body"):
            with VerticalScroll(id="member-summary"):
                yield Static("loading…", id="member-view")
            yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < self.NARROW, "-narrow")

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < self.NARROW, "-narrow")
        table = self.query_one("#history", DataTable)
        # the receipt's number without the till and its zeros (what refund takes), next to the time: never off screen
        # the amount before the program: at 80 columns the last column is the one cut
        table.add_columns("When", "Rcpt", "What", "Amount", "Program")
        table.focus()
        self.load()

    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def load(self) -> None:
        gate = self.services.gate
        try:
            view = gate.card(self.card_id)
            events = gate.history(self.card_id, 200)
        except Exception as exc:
            self.post_message(HistoryLoaded(self.card_id, None, error=plain_reason(exc)))
            return
        self.post_message(HistoryLoaded(self.card_id, view, events))

    @on(HistoryLoaded)
    def _loaded(self, msg: HistoryLoaded) -> None:
        summary = self.query_one("#member-view", Static)
        if msg.error or msg.view is None:
            summary.update(render.refusal_panel(self.card_id, msg.error or "no such card"))
            return
        panel = render.member_panel(self.services.cfg, msg.view)
        if msg.view["status"] != "active":
            panel = render.refusal_panel(msg.view["card"], f"status: {msg.view['status']}") + panel
        summary.update(panel)
        table = self.query_one("#history", DataTable)
        table.clear()
        for ev in msg.events:
            payload = ev.get("payload") or {}
            what = KIND_WORDS.get(ev["kind"], ev["kind"])
            if ev["kind"] == "bonus" and payload.get("bonus"):
                what = f"bonus {payload['bonus']}"
            if payload.get("reason"):  # a long reason is cut here (the summary has it whole): the columns after it stay on screen
                reason = payload["reason"] if len(payload["reason"]) <= 16 else payload["reason"][:15] + "…"
                what += f" ({reason})"
            amount = f"{ev['amount']:+d} {ev['account']}" if ev["account"] and ev["amount"] else ""
            if ev["kind"] == "sale":
                amount = _money(self.services, payload.get("total"))
            elif ev["account"] == "spend":
                amount = "+" + _money(self.services, ev["amount"]) if ev["amount"] > 0 else "-" + _money(self.services, -ev["amount"])
            elif "until" in payload and not ev["account"]:  # a membership bought or taken back
                amount = f"to {payload['until']}" if payload["until"] else "ended"
            elif ev["kind"] == lots.GIVEN:  # the balance moved at the other till's redemption, not here
                amount = f"{-int(payload.get('remote', 0))} points"
            digits = (ev.get("receipt") or "").rpartition("-")[2]
            table.add_row(self._local(ev["ts"]), str(int(digits)) if digits.isdecimal() else digits, what, amount, ev["program_id"] or "")
        self.events_shown = len(msg.events)

    def _local(self, ts: str) -> str:
        """Store time: the ledger keeps UTC, the manager reads the shop's clock."""
        try:
            return local_time(ts, self.services.cfg.store.tz).strftime("%Y-%m-%d %H:%M")  # 26-11-23 read as a year 2023
        except ValueError:
            return ts[:16]

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        from .dialogs import HelpScreen

        self.app.push_screen(HelpScreen())


def _money(services: Services, minor: object) -> str:
    from ledger import money

    if isinstance(minor, int):
        return f"{render.grouped(money.fmt(minor, services.cfg.currency))} {services.cfg.currency.code}"
    return json.dumps(minor) if minor is not None else ""
