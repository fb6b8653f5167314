"""The checkout screen: the cart, the member panel, totals, pay, receipt.

The UI thread never waits on the ledger or a device: taps, quotes, payments
and printing run in thread workers and come back as messages. Each quote and
tap carries a sequence number, so an answer that arrives after the cart moved
on is dropped instead of shown.
"""

from __future__ import annotations

import textwrap
import time
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, Input, Static

from ledger.errors import LoyaltyError
from ledger.service import CheckoutRequest, check_profile

from . import render
from .cart import Cart, looks_like_card
from .entry import ScanInput
from .messages import (
    MemberLoaded,
    PrintStatus,
    QuoteReady,
    SaleDone,
    SaleFailed,
    StatusSnapshot,
)
from .panel import Panel
from .services import Services

CLEAR_CONFIRM_S = 3.0  # a second Esc within this clears a cart


def plain_error(exc: BaseException) -> str:
    """An error of a sale or an action that did not happen (so trying again is right)."""
    if isinstance(exc, LoyaltyError):
        return exc.message
    return f"{type(exc).__name__}: {exc} (the cart is kept: try again, or call the manager)"


def plain_reason(exc: BaseException) -> str:
    """What went wrong, and nothing about the cart: for what failed after a sale was paid (its receipt), or a
    manager's action. A printer's own words need no Python class name before them."""
    if isinstance(exc, LoyaltyError):
        return exc.message
    return str(exc) if isinstance(exc, ConnectionError) and str(exc) else f"{type(exc).__name__}: {exc}"


class TillFooter(Footer):
    """Textual's footer, leaving out the keys a cashier needs least when the terminal is too narrow for all.

    All eleven keys take ~101 columns; at 80 the last ones were cut off, Esc among them.
    """

    SPARE = frozenset({"remove_line", "quantity", "manager"})
    WIDE = 104

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self._narrow: bool | None = None

    def compose(self) -> ComposeResult:
        narrow = self.app.size.width < self.WIDE
        self._narrow = narrow
        for widget in super().compose():
            if not (narrow and getattr(widget, "action", None) in self.SPARE):
                yield widget

    def on_resize(self) -> None:
        if self._narrow is not None and (self.app.size.width < self.WIDE) != self._narrow:
            self.call_after_refresh(self.recompose)


class CheckoutScreen(Screen[None]):
    DEFAULT_CSS = """
    CheckoutScreen { layout: vertical; }
    #status { height: 1; background: $boost; color: $text; padding: 0 1; }
    #main { height: 1fr; }
    #left { width: 1fr; min-width: 30; }
    #right { width: 48; height: 100%; border-left: solid $primary; padding: 0 0 0 1; }
    #right > VerticalScroll { scrollbar-size-vertical: 1; }
    #item-input { margin: 0; }
    #cart { height: 1fr; }
    #totals { height: 4; padding: 0 1; border-top: solid $primary; }
    #message { height: auto; max-height: 4; padding: 0 1; }
    #message.error { background: $error; color: $text; text-style: bold; }
    #message.ok { background: $success-darken-2; color: $text; }
    #message.warn { background: $warning-darken-2; color: $text; }
    #member { height: auto; }
    #member.refused { background: $error 20%; }
    #receipt { height: auto; }
    #print-status { height: auto; text-style: bold; }
    """

    # in footer order: what a cashier needs most comes first; a narrow footer leaves out
    # TillFooter.SPARE (the F1 help lists every key)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help"),
        Binding("f2", "tap", "Tap"),
        Binding("f9", "pay", "Pay"),
        Binding("f4", "reward", "Reward"),
        Binding("f5", "points", "Points"),
        Binding("escape", "clear", "Clear"),
        Binding("f3", "profile", "Profile"),
        Binding("f8", "member", "Member"),
        Binding("f6", "remove_line", "Remove"),
        Binding("f7", "quantity", "Qty"),
        Binding("f12", "manager", "Manager"),
        Binding("up", "line_up", "Line up", show=False),
        Binding("down", "line_down", "Line down", show=False),
        Binding("pageup", "receipt_up", "Scroll up", show=False),
        Binding("pagedown", "receipt_down", "Scroll down", show=False),
    ]

    def __init__(self, services: Services):
        super().__init__()
        self.services = services
        self.cfg = services.cfg
        self.cart = Cart.start(services.new_sale_id)
        self.quote: dict[str, Any] | None = None
        self._quote_seq = 0
        self._tap_seq = 0
        self._undo_redeem: dict[str, int | None] | None = None
        self.paying = False
        self.last_sale: str | None = None
        self.last_receipt: str | None = None
        self.last_card: str | None = None
        self.paid_words = ""  # the last sale's "Paid: ..." line: a receipt that fails to print is said after it
        self.reader_text = "reader …"
        self.tap_started: float | None = None
        self.panel_shown_at: float | None = None
        self._said: tuple[str, str] = ("", "")
        self._totals_key: object = None
        self._esc_at: float | None = None
        self._status: StatusSnapshot | None = None
        self._said_rows = 1

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield ScanInput(placeholder="item or card, Enter", id="item-input")
                yield DataTable(id="cart", cursor_type="row", zebra_stripes=True)
                yield Static("", id="totals")
            with ContentSwitcher(initial="member", id="right"):
                # as tall as the tallest text it has shown: a tap repaints it in place,
                # with a new layout only when it grows
                yield Panel(render.empty_panel(self.services.demo), id="member")
                with VerticalScroll(id="receipt-panel"):
                    yield Static("", id="print-status")
                    yield Static("", id="receipt")
        yield Static("", id="message")
        yield TillFooter(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#cart", DataTable)
        table.can_focus = False
        table.add_column("Item", key="item")
        table.add_column("Qty", key="qty")
        table.add_column("Total", key="total")
        self.query_one("#item-input", Input).focus()
        self.show_totals()
        self.show_status(None)

    # ------------------------------------------------------------ messages line and status bar

    def say(self, text: str, kind: str = "") -> None:
        # unchanged widgets are left alone: every repainted widget adds to the time a tap takes to show
        if (text, kind) == self._said:
            return
        found = self.query("#message")
        if not found:  # a worker can report while the app is closing
            return
        msg = found.first(Static)
        self._said = (text, kind)
        if set(msg.classes) != ({kind} if kind else set()):
            msg.set_classes(kind)
        # a new layout only when the message needs another number of rows (up to 4): a long one would
        # otherwise be cut to the row the last one took, and its end is what says what to do
        width = max(1, (msg.content_region.width or self.app.size.width - 2))
        rows = min(4, max(1, sum(max(1, len(textwrap.wrap(line, width))) for line in text.split("\n"))))
        msg.update(Text(text), layout=rows != self._said_rows)  # messages quote config keys like [sync]: never markup
        self._said_rows = rows

    def on_resize(self) -> None:
        if self.query("#status"):
            self.show_status(self._status)

    def show_status(self, snap: StatusSnapshot | None) -> None:
        self._status = snap
        # the longest form that fits the width: every part (the till's id last) stays on screen at 80 columns
        width = self._status_width()
        line = next((text for text in (self._status_line(snap, level) for level in range(3)) if len(text) <= width),
                    self._status_line(snap, 2))
        found = self.query("#status")
        if not found:  # a status worker can report while the app is closing
            return
        found.first(Static).update(Text(line), layout=False)

    def _status_width(self) -> int:
        """The status bar's columns: the screen's less its padding (a line one longer wraps, out of sight)."""
        return self.app.size.width - 2

    def _status_line(self, snap: StatusSnapshot | None, level: int) -> str:
        """The status bar: 0 in full, 1 short, 2 shortest (the reader's name cut to what is left)."""
        parts = [self.reader_text]
        if level == 2:
            rest = len(self._status_line(snap, 3)) - len("reader")
            room = max(10, self._status_width() - rest)
            if len(self.reader_text) > room:
                parts = [self.reader_text[: room - 1] + "…"]
        elif level == 3:  # only to measure the other parts: the reader's mark alone
            parts = ["reader"]
        level = min(level, 2)
        printer = (f"printer {self.services.printer.name}", "printer:", "prn")[level]
        if snap is None:
            parts += [printer, "sync …"]
        else:
            parts.append(f"{printer} ({snap.queued_prints} queued)" if level == 0 else f"{printer} {snap.queued_prints} queued")
            sync = snap.sync
            mode = "online" if sync.online and not sync.forced_offline else (
                ("OFFLINE (forced)" if level < 2 else "OFFLINE") if sync.forced_offline else "offline")
            if sync.refused and not sync.forced_offline:
                mode = ("SYNC REFUSED", "SYNC REFUSED", "REFUSED")[level]  # the message line said why
            if sync.standalone:  # no server by design: not a network fault to worry about
                parts.append(("stand-alone till (no sync server)", "stand-alone", "alone")[level])
            else:
                last = self.store_time(sync.last_sync)
                parts.append((f"{mode}: {sync.pending} pending, last sync {last}", f"{mode}: {sync.pending} pending, synced {last}",
                              f"{mode}: {sync.pending} pending")[level])
        parts.append(f"{self.cfg.store.name} · {self.cfg.store.terminal}" if level == 0 else self.cfg.store.terminal)
        return " │ ".join(parts)

    def store_time(self, utc_iso: str | None) -> str:
        """A UTC time from the ledger as the store reads a clock: 10:42 today, 2026-11-21 18:05 before."""
        if not utc_iso:
            return "never"
        try:
            moment = datetime.fromisoformat(utc_iso).astimezone(self.cfg.store.tz)
        except ValueError:
            return utc_iso
        today = self.services.gate.clock().astimezone(self.cfg.store.tz).date()
        return moment.strftime("%H:%M" if moment.date() == today else "%Y-%m-%d %H:%M")

    # ------------------------------------------------------------ cart

    def refresh_cart(self) -> None:
        table = self.query_one("#cart", DataTable)
        row = table.cursor_row
        table.clear()
        quoted = {ln["sku"]: ln for ln in (self.quote or {}).get("lines", [])}
        for line in self.cart.lines:
            q = quoted.get(line.sku)
            total = render.grouped(q["total"]) if q else "…"
            table.add_row(line.name[:18], str(line.qty), total, key=line.sku)
        if self.cart.lines:
            table.move_cursor(row=min(max(row, 0), len(self.cart.lines) - 1))

    def show_totals(self, error: str | None = None) -> None:
        quote = self.quote if self.cart.lines else None
        key = (error, None if quote is None else (quote["subtotal"], quote["discount"], quote["total"], str(quote.get("earned"))))
        if key == self._totals_key:
            return
        self._totals_key = key
        self.query_one("#totals", Static).update(render.totals_text(quote, self.cfg, error), layout=False)

    def cart_changed(self) -> None:
        self.quote = None if not self.cart.lines else self.quote
        self.refresh_cart()
        self.request_quote()

    def request_quote(self) -> None:
        self._quote_seq += 1
        if not self.cart.lines:
            self.quote = None
            self.show_totals()
            return
        self.run_quote(self._quote_seq, self.cart.card, self.cart.items(), dict(self.cart.redeem))

    @work(thread=True, exclusive=True, group="quote", exit_on_error=False)
    def run_quote(self, seq: int, card: str | None, items: list[tuple[str, int]], redeem: dict[str, int | None]) -> None:
        try:
            quote = self.services.gate.quote(card, items, redeem)
        except Exception as exc:
            self.post_message(QuoteReady(seq, None, plain_error(exc)))
            return
        self.post_message(QuoteReady(seq, quote))

    @on(QuoteReady)
    def _quote_ready(self, msg: QuoteReady) -> None:
        if msg.seq != self._quote_seq:
            return
        if msg.error is not None:
            if self._undo_redeem is not None:
                self.cart.redeem = self._undo_redeem
                self._undo_redeem = None
                self.say(msg.error, "error")
                self.show_member()
                self.request_quote()
                return
            if self.cart.redeem:
                # the cart changed under a reward or points already applied (a line removed, a quantity
                # lowered): take them back, as a refused redemption is, rather than block the sale
                self.cart.redeem = {}
                self.say(f"{msg.error}: redemption taken back (F4/F5 to apply again).", "error")
                self.show_member()
                self.request_quote()
                return
            self.show_totals(msg.error)
            self.say(msg.error, "error")
            return
        self._undo_redeem = None
        self.quote = msg.quote
        self.refresh_cart()
        self.show_totals()
        if any(v is None for v in self.cart.redeem.values()):
            self.show_member()  # "all that fits" now has a number

    @on(Input.Submitted, "#item-input")
    def _item_entered(self, event: Input.Submitted) -> None:
        text = event.value.strip()  # the field is empty already (ScanInput)
        if text and self._while_paying(f"{text}:"):
            return
        if not text:
            if self.cart.lines:
                self.say("F9 completes the sale; Esc clears the customer.")
            return
        if looks_like_card(text):
            self.services_tap(text)
            return
        if not self.cart.lines:
            closed = self.services.gate.closed_today()
            if closed:  # said at the first item, not after the whole cart was scanned
                self.say(closed, "error")
                return
        try:
            line = self.cart.add(self.cfg, text)
        except LoyaltyError as exc:
            self.say(exc.message, "error")
            return
        self.show_right("member")
        self.say(f"{line.qty} x {line.name}", "")
        self.cart_changed()
        self.query_one("#cart", DataTable).move_cursor(row=self.cart.lines.index(line))

    def action_line_up(self) -> None:
        table = self.query_one("#cart", DataTable)
        table.move_cursor(row=max(0, table.cursor_row - 1))

    def action_line_down(self) -> None:
        table = self.query_one("#cart", DataTable)
        table.move_cursor(row=min(len(self.cart.lines) - 1, table.cursor_row + 1))

    def action_receipt_up(self) -> None:
        self.query_one("#receipt-panel", VerticalScroll).scroll_page_up()

    def action_receipt_down(self) -> None:
        self.query_one("#receipt-panel", VerticalScroll).scroll_page_down()

    def action_remove_line(self) -> None:
        if self._while_paying("Removing a line"):
            return
        try:
            line = self.cart.remove(self.query_one("#cart", DataTable).cursor_row if self.cart.lines else -1)
        except LoyaltyError as exc:
            self.say(exc.message, "error")
            return
        self.say(f"removed {line.name}")
        self.cart_changed()

    def action_quantity(self) -> None:
        if self._while_paying("Changing a quantity"):
            return
        if not self.cart.lines:
            self.say("The cart is empty: type an item first.", "error")
            return
        from .dialogs import Field, FormScreen  # dialogs load after the first frame, not before it

        index = self.query_one("#cart", DataTable).cursor_row
        line = self.cart.lines[index]

        def check(values: dict[str, str]) -> str | None:
            text = values["qty"].strip()
            if not text.isdecimal() or not 1 <= int(text) <= 999:
                return "a whole number from 1 to 999"
            return None

        def done(values: dict[str, str] | None) -> None:
            if values is None:
                return
            self.cart.set_qty(index, int(values["qty"]))
            self.cart_changed()

        self.app.push_screen(FormScreen(f"Quantity of {line.name}", [Field("qty", "Quantity", str(line.qty))], validate=check), done)

    def action_clear(self) -> None:
        if self._while_paying("Clearing"):
            return
        if self.cart.lines and not self._clear_armed():
            self.say(f"Esc again within {CLEAR_CONFIRM_S:.0f} s clears this sale ({len(self.cart.lines)} line(s)).", "warn")
            return
        self.new_customer()
        self.last_card = None  # F8 must not show the customer who just left
        self.say("Ready for the next customer.")

    def on_screen_suspend(self) -> None:
        # a dialog opened: the Esc that closes it is the dialog's, so an Esc before it no longer arms the clear
        self._esc_at = None

    def _clear_armed(self) -> bool:
        """A second Esc within a few seconds clears a cart; one Esc (often meant for a dialog) only warns."""
        now = time.monotonic()
        armed = self._esc_at is not None and now - self._esc_at < CLEAR_CONFIRM_S
        self._esc_at = None if armed else now
        return armed

    def new_customer(self) -> None:
        self.cart = Cart.start(self.services.new_sale_id)
        self.quote = None
        self._quote_seq += 1
        self._tap_seq += 1
        self._undo_redeem = None
        self.query_one("#member", Panel).remove_class("refused")
        self._set_panel(render.empty_panel(self.services.demo))
        self.show_right("member")
        self.refresh_cart()
        self.show_totals()

    def show_right(self, which: str) -> None:
        switcher = self.query_one("#right", ContentSwitcher)
        if switcher.current != which:
            switcher.current = which

    # ------------------------------------------------------------ cards

    def action_tap(self) -> None:
        from .dialogs import TapScreen

        def tapped(card_id: str | None) -> None:
            if card_id:
                self.services_tap(card_id)

        self.app.push_screen(TapScreen(self.services.demo_cards), tapped)

    def services_tap(self, card_id: str) -> None:
        """A card typed or picked: through the reader when it can simulate taps, so the demo runs the real path."""
        from .ports import tap

        self.tap_started = time.perf_counter()
        if not tap(self.services.reader, card_id):
            self.card_tapped(card_id)

    def shows_card(self, card_id: str | None) -> bool:
        """Whether the panel is about this card: the sale's, or one just refused (a manager may unblock it)."""
        if card_id is None:
            return False
        if self.cart.card is not None:
            return self.cart.card == card_id
        return self.last_card == card_id and self.query_one("#member", Panel).has_class("refused")

    def card_tapped(
        self, card_id: str, signature: str = "none", warnings: tuple[str, ...] = (), looked_up: MemberLoaded | None = None
    ) -> None:
        if self._while_paying(f"Card {card_id}"):
            return
        if self.tap_started is None:
            self.tap_started = time.perf_counter()
        self._tap_seq += 1
        if looked_up is not None:  # the reader's thread has read the ledger already: show it now
            looked_up.seq = self._tap_seq
            self._member_loaded(looked_up)
            if looked_up.unknown:
                self.ask_chain(self._tap_seq, card_id, signature, warnings)
            return
        self.load_card(self._tap_seq, card_id, signature, warnings)

    @work(thread=True, exclusive=True, group="card", exit_on_error=False)
    def load_card(self, seq: int, card_id: str, signature: str, warnings: tuple[str, ...]) -> None:
        answer = self.look_up(card_id, signature, warnings)
        answer.seq = seq
        self.post_message(answer)
        if answer.unknown:
            self._ask_chain(seq, card_id, signature, warnings)

    @work(thread=True, exclusive=True, group="chain", exit_on_error=False)
    def ask_chain(self, seq: int, card_id: str, signature: str, warnings: tuple[str, ...]) -> None:
        self._ask_chain(seq, card_id, signature, warnings)

    def _ask_chain(self, seq: int, card_id: str, signature: str, warnings: tuple[str, ...]) -> None:
        """A card new to this till, asked of the chain after the panel showed it: another store's member since
        the last pull (enrolled or given by a replace there) is shown as that member, and the sale goes to
        them, not to a new member with a second welcome bonus."""
        try:
            known = bool(self.services.sync.ask_chain(card_id))
        except Exception:  # best effort: a new card here, as when offline
            return
        if known:
            again = self.look_up(card_id, signature, warnings)
            again.seq = seq
            again.note = "A member from another store of the chain: their balances are shown, and the sale is theirs."
            self.post_message(again)

    def look_up(self, card_id: str, signature: str, warnings: tuple[str, ...]) -> MemberLoaded:
        """What a tap shows, read from the ledger; any thread (it touches no widget), never raises."""
        policy = self.cfg.reader.require_signed
        warning = "; ".join(warnings) or None
        if policy != "off" and signature != "valid":
            text = "this card's number is not signed by the chain" if signature == "none" else "this card's signature is INVALID"
            if policy == "require":
                return MemberLoaded(card_id, None, refused=f"{text}: refuse it and call the manager")
            warning = f"{text}: check the card" + (f"; {warning}" if warning else "")
        try:
            view = self.services.gate.card(card_id)
        except LoyaltyError as exc:
            if exc.code == "unknown_card":
                from ledger.cards import CardIdError, normalize

                try:
                    norm = normalize(card_id)
                except CardIdError:
                    norm = card_id
                return MemberLoaded(norm, None, unknown=True, warning=warning)
            return MemberLoaded(card_id, None, refused=exc.message)
        except Exception as exc:
            return MemberLoaded(card_id, None, refused=plain_reason(exc))
        if view["status"] == "blocked":
            refused = f"card {view['card']} is blocked: keep the card and call the manager"
        elif view["status"] == "replaced":
            refused = f"card {view['card']} was replaced by {view.get('replaced_by')}: use the new card"
        else:
            refused = None
        return MemberLoaded(view["card"], view, refused=refused, warning=warning)

    @on(MemberLoaded)
    def _member_loaded(self, msg: MemberLoaded) -> None:
        if msg.seq != self._tap_seq:
            return
        panel = self.query_one("#member", Panel)
        self.show_right("member")
        self.last_card = msg.card_id
        if msg.refused:
            self.cart.card = None
            self.cart.view = None
            self.cart.unknown = False
            self.cart.redeem = {}
            if not panel.has_class("refused"):
                panel.add_class("refused")
            self._set_panel(render.refusal_panel(msg.card_id, msg.refused))
            self.say(msg.refused, "error")
            self.app.bell()
        else:
            if self.cart.card != msg.card_id:
                self.cart.redeem = {}
                self.cart.profile = {}
            self.cart.card = msg.card_id
            self.cart.view = msg.view
            self.cart.unknown = msg.unknown
            if panel.has_class("refused"):
                panel.remove_class("refused")
            self.show_member()
            if msg.warning:
                self.say(msg.warning, "warn")
            elif msg.unknown:
                self.say("New card: it is enrolled when the sale is paid (F3 adds a profile).", "ok")
            elif msg.note:
                self.say(msg.note, "ok")
            elif self._said[1] in ("error", "warn"):
                # the panel shows whose card it is; a known card only clears a problem
                # left on the message line (repainting that line too would put the
                # whole screen between it and the panel into the tap's frame)
                self.say("", "")
            self.request_quote()
        self.panel_shown_at = time.perf_counter()

    def show_member(self) -> None:
        if self.cart.card is None:
            self._set_panel(render.empty_panel(self.services.demo))
        elif self.cart.unknown or self.cart.view is None:
            self._set_panel(render.unknown_panel(self.cart.card, self.cart.profile, self.cfg.bonuses.profile_completed))
        else:
            redeemed = (self.quote or {}).get("redeemed") if self.cart.redeem else None
            self._set_panel(render.member_panel(self.cfg, self.cart.view, self.cart.redeem, self.cart.profile, redeemed))

    def _set_panel(self, content: Text) -> None:
        self.query_one("#member", Panel).show(content)

    def action_profile(self) -> None:
        if self._while_paying("The profile"):
            return
        if self.cart.card is None:
            self.say("Tap the customer's card first (F2).", "error")
            return
        view = self.cart.view or {}
        member = view.get("member", {})
        if not self.cart.unknown and all(member.get(k) for k in ("name", "phone", "birthday")):
            self.say("This member's profile is complete.", "")
            return
        current = self.cart.profile
        from .dialogs import Field, FormScreen

        def check(values: dict[str, str]) -> str | None:
            try:
                check_profile(*(values[k].strip() or None for k in ("name", "phone", "birthday")))
            except LoyaltyError as exc:
                return exc.message
            return None

        opened_for = (self.cart, self.cart.card)

        def done(values: dict[str, str] | None) -> None:
            if values is None or self._card_changed(opened_for, "F3"):
                return
            profile = {k: v.strip() for k, v in values.items() if v.strip()}
            if profile and not self.cart.unknown and self.cart.card is not None:
                # an enrolled member's profile is saved now: with no sale to follow it would be lost
                self.save_profile(self.cart.card, profile)
                return
            self.cart.profile = profile
            self.show_member()
            self.say("Profile kept: it is saved with the sale that enrols the card." if profile else "No profile.", "ok")

        fields = [
            Field("name", "Name", current.get("name", member.get("name", ""))),
            Field("phone", "Phone", current.get("phone", member.get("phone", "")), "+965 5000 0000"),
            Field("birthday", "Birthday (MM-DD)", current.get("birthday", member.get("birthday", "")), "03-21"),
        ]
        # the card it is for, in its title: a tap while it is open changes the sale's card, not this form's
        self.app.push_screen(FormScreen(f"Quick profile of {self.cart.card} (all optional)", fields, validate=check), done)

    def _card_changed(self, opened_for: tuple[Cart, str | None], key: str) -> bool:
        """A form answered for one card must not land on another tapped (or a new sale begun) while it was open."""
        cart, card = opened_for
        if self.cart is cart and self.cart.card == card:
            return False
        now = f" for card {self.cart.card}" if self.cart.card else ""
        self.say(f"The card changed while the form was open ({card}): nothing was applied; {key} again{now}.", "warn")
        return True

    @work(thread=True, group="profile", exit_on_error=False)
    def save_profile(self, card: str, profile: dict[str, str]) -> None:
        try:
            view = self.services.gate.enrol(card, **profile)
        except Exception as exc:
            self.app.call_from_thread(self.say, f"Profile not saved: {plain_reason(exc)}", "error")
            return
        self.app.call_from_thread(self._profile_saved, card, view)

    def _profile_saved(self, card: str, view: dict[str, Any]) -> None:
        paid = "".join(f" {b['bonus'].capitalize()} bonus: +{b['points']} points." for b in view.get("bonuses", []))
        if self.cart.card == card:
            self.cart.view = view
            self.show_member()
            self.request_quote()
        self.say(f"Profile saved.{paid}", "ok")

    def action_reward(self) -> None:
        if self._while_paying("Redeeming a reward"):
            return
        view = self.cart.view
        if view is None:
            self.say("Tap a member's card first (F2).", "error")
            return
        ready = [pid for pid, st in view["programs"].items() if st.get("kind") == "stamps" and st.get("rewards")]
        if not ready:
            self.say("No reward ready on this card.", "error")
            return
        pid = ready[0]
        self._undo_redeem = dict(self.cart.redeem)
        if pid in self.cart.redeem:
            del self.cart.redeem[pid]
            self.say("Reward taken off.")
        else:
            self.cart.redeem[pid] = None
            self.say(f"Reward applied: {self.cfg.programs[pid].name}.", "ok")
        self.show_member()
        self.request_quote()

    def action_points(self) -> None:
        if self._while_paying("Redeeming points"):
            return
        view = self.cart.view
        if view is None:
            self.say("Tap a member's card first (F2).", "error")
            return
        programs = [p for p in self.services.gate.points_programs() if view["programs"].get(p.id, {}).get("balance", 0) > 0]
        if not programs:
            self.say("No points to redeem on this card.", "error")
            return
        program = programs[0]
        state = view["programs"][program.id]
        from .dialogs import Field, FormScreen
        gate = self.services.gate

        def check(values: dict[str, str]) -> str | None:
            try:
                gate.points_for(program.id, values["amount"])
            except LoyaltyError as exc:
                return exc.message
            return None

        opened_for = (self.cart, self.cart.card)

        def done(values: dict[str, str] | None) -> None:
            if values is None or self._card_changed(opened_for, "F5"):
                return
            points = gate.points_for(program.id, values["amount"])
            self._undo_redeem = dict(self.cart.redeem)
            if points == 0:
                self.cart.redeem.pop(program.id, None)
                self.say("No points redeemed.")
            else:
                self.cart.redeem[program.id] = points
                self.say(f"Redeeming {points} {program.name.lower()}." if points is not None else f"Redeeming as many {program.name.lower()} as fit.", "ok")
            self.show_member()
            self.request_quote()

        title = f"Redeem {program.name} of {self.cart.card}: {state['balance']} = {render.grouped(state['value'])} {self.cfg.currency.code}"
        hint = (f"points in steps of {program.step_points}, or an amount ({gate.amount_example(program)})\n"
                "blank: as many as fit   0: none   Esc: cancel")
        self.app.push_screen(FormScreen(title, [Field("amount", "Points or amount", "")], hint=hint, validate=check), done)

    # ------------------------------------------------------------ pay

    def _while_paying(self, what: str) -> bool:
        """While a sale commits its cart is fixed: a change now would be in neither that sale nor the next one."""
        if not self.paying:
            return False
        self.say(f"{what} not done: the sale is being completed. Do it again once it is paid.", "error")
        return True

    def action_pay(self) -> None:
        if self.paying:
            self.say("Payment in progress…")
            return
        if not self.cart.lines:
            self.say("The cart is empty: type or scan an item first.", "error")
            return
        if self.cart.card is None:
            self.say("Tap the customer's card first (F2): the loyalty till records sales on a card.", "error")
            return
        self.paying = True
        self.say("Completing the sale…")
        # the quick profile goes in the sale's own transaction, before its bonuses: the receipt shows the profile
        # and birthday bonuses it pays and the balance after them
        req = CheckoutRequest(card=self.cart.card, items=self.cart.items(), redeem=dict(self.cart.redeem), sale_id=self.cart.sale_id,
                              profile=dict(self.cart.profile) or None)
        self.run_sale(req, self.cart.unknown)

    @work(thread=True, group="sale", exit_on_error=False)
    def run_sale(self, req: CheckoutRequest, unknown: bool) -> None:
        try:
            result = self.services.gate.checkout(req)
        except Exception as exc:
            self.post_message(SaleFailed(plain_error(exc)))
            return
        note = "profile saved" if req.profile else ""
        from receipts import render_sale  # loaded after the first frame (app.warm_up), not at startup

        text = render_sale(result, self.cfg, "text").decode("utf-8")
        self.post_message(SaleDone(result, text, welcomed=unknown, note=note))

    @on(SaleDone)
    def _sale_done(self, msg: SaleDone) -> None:
        self.paying = False
        result = msg.result
        self.last_sale = result["sale"]
        self.last_receipt = result["receipt"]["number"]
        self.last_card = result["card"]
        self.new_customer()
        self.show_receipt(msg.receipt, "printing…")
        words = [f"Paid: {result['currency']} {render.grouped(result['total'])}, receipt {result['receipt']['number']}."]
        if msg.welcomed:
            words.append("New member enrolled.")
        if msg.note:
            words.append(msg.note.capitalize() + ".")
        words.append("Next customer.")
        self.paid_words = " ".join(words)
        self.say(self.paid_words, "ok")
        self.print_document("sale", result["sale"])

    @on(SaleFailed)
    def _sale_failed(self, msg: SaleFailed) -> None:
        self.paying = False
        self.say(f"Sale not completed: {msg.message}", "error")

    def show_receipt(self, text: str, status: str) -> None:
        from receipts.templates import lang_for

        from .rtl import for_terminal

        # an Arabic or Persian slip as the paper shows it: right to left, letters joined
        shown = for_terminal(text, lang_for(self.cfg).rtl)
        self.query_one("#receipt", Static).update(Text(shown, no_wrap=True, overflow="crop"))
        self.query_one("#print-status", Static).update(Text(status))
        self.show_right("receipt-panel")
        self.query_one("#receipt-panel", VerticalScroll).scroll_home(animate=False)  # its header first, not where the last one was left

    @work(thread=True, group="print", exit_on_error=False)
    def print_document(self, kind: str, ref: str) -> None:
        try:
            status = self.services.printer.print_job(kind, ref)
        except Exception as exc:
            # the sale is paid and committed: its receipt waits in the queue; ringing it up again would sell it twice
            self.post_message(PrintStatus(False, f"receipt NOT printed ({plain_reason(exc)}): the sale is paid; its receipt"
                                                 " waits in the print queue and prints by itself once the printer is back"))
            return
        self.post_message(PrintStatus(True, status))

    @on(PrintStatus)
    def _printed(self, msg: PrintStatus) -> None:
        self.query_one("#print-status", Static).update(Text(msg.text, style="green" if msg.ok else "bold red"))
        if not msg.ok:
            self.say(f"{self.paid_words} {msg.text[:1].upper()}{msg.text[1:]}".strip(), "error")
        self.app.refresh_status()  # type: ignore[attr-defined]

    # ------------------------------------------------------------ other screens

    def action_help(self) -> None:
        from .dialogs import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_member(self) -> None:
        card = self.cart.card or self.last_card
        if card is None:
            self.say("Tap a card first (F2): the member screen shows its history.", "error")
            return
        from .member import MemberScreen

        self.app.push_screen(MemberScreen(self.services, card))

    def action_manager(self) -> None:
        self.app.open_manager()  # type: ignore[attr-defined]
