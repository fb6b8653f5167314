"""The cashier app: built by `build_app(services)`, runs the reader and the status bar, and the manager's actions."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App

from drivers.readers.base import CardPresent, CardRemoved, ReaderConnected, ReaderDisconnected
from ledger.cards import normalize as normalize_card
from ledger.errors import LoyaltyError

from .checkout import CheckoutScreen, plain_reason
from .messages import CardTapped, ManagerResult, ReaderStatus, StatusSnapshot, SyncRoundDone
from .ports import SyncRound
from .services import Services

if TYPE_CHECKING:
    from textual.theme import Theme

    from .dialogs import PinScreen

PIN_LOCKOUT_S = 30.0
QUIT_CONFIRM_S = 3.0  # a second Ctrl+Q within this quits with a sale in the cart
MANAGER_FORMS = ("refund", "reprint", "refund_slip", "block", "unblock", "replace", "adjust")  # actions with a form (app._manager_form)
GC_EVERY_S = 2.0  # the young generations, between taps
PRINT_QUEUE_EVERY_S = 3.0
GC_FULL_EVERY = 30  # timer ticks: a full collection once a minute


class LoyaltyApp(App[None]):
    TITLE = "loyalty"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, services: Services):
        super().__init__()
        self.services = services
        self.checkout = CheckoutScreen(services)
        self._stop = threading.Event()
        self._pin_locked_until = 0.0
        self.manager_log: list[str] = []
        self.last_sync_round: SyncRound | None = None
        self._ledger_said: str | None = None
        self._gc_ticks = 0
        self.start_note = ""  # the last sale before this start, said until the waiting slips' message replaces it

    _theme_cache: tuple[str, Theme] | None = None
    _quit_armed_at = 0.0

    async def action_quit(self) -> None:
        """Ctrl+Q: with a sale in the cart, only when pressed twice (it would leave the customer's sale unpaid)."""
        lines = self.checkout.cart.lines if self.screen is self.checkout else []
        if lines and time.monotonic() - self._quit_armed_at > QUIT_CONFIRM_S:
            self._quit_armed_at = time.monotonic()
            self.checkout.say(f"A sale is in the cart and not paid: Ctrl+Q again within {QUIT_CONFIRM_S:.0f} s quits.", "warn")
            return
        self.exit()

    @property
    def current_theme(self) -> Theme:
        # Textual rebuilds its table of themes on every lookup and looks the theme up for each widget it
        # styles or paints (hundreds of times for the first frame); this app registers no themes of its own
        name = self.theme
        cached = self._theme_cache
        if cached is None or cached[0] != name:
            cached = self._theme_cache = (name, super().current_theme)
        return cached[1]

    def on_mount(self) -> None:
        self.push_screen(self.checkout)
        self.call_after_refresh(self._after_first_frame)
        if self.services.reader is not None:
            self.read_cards()
        else:
            self.checkout.reader_text = "reader: none (F2 types ids)"
            if self.services.reader_error:
                self.checkout.say(f"Card reader not available: {self.services.reader_error}", "error")
        self.set_timer(0.3, self._say_if_closed)
        # the first poll waits for the first frame: it may import the sync client and reach the network
        self.set_timer(0.5, self.refresh_status)
        self.set_timer(0.5, self.start_sync)
        self.set_interval(self.services.status_interval_s, self.refresh_status)
        # receipts that wait (printer was down, a crash cut one off) go out when the printer is back, not
        # with the next customer's; the queue's own backoff keeps a dead printer from being asked each time
        self.set_timer(1.0, self.print_waiting)
        self.set_interval(PRINT_QUEUE_EVERY_S, self.print_waiting)

    def _say_if_closed(self) -> None:
        gate = self.services.gate
        # a till restarted after an end of day (or a crash in one), or with its clock set back, says so before the
        # first item
        problem = gate.clock_behind() or gate.closed_today()
        if problem:
            self.checkout.say(problem, "error")
        elif gate.loyalty.ledger.begun and not self.services.demo:
            # a till that had a ledger and finds none (a disk not mounted, a mistyped path) must not sell on unawares
            self.checkout.say(f"New ledger begun at {gate.loyalty.ledger.path}: no ledger was there. If this till had one,"
                              " close the app and check [ledger] path and that its disk is mounted.", "error")
        elif not self.services.demo:
            # restarted after a crash or a power cut during a payment: the cashier last saw "Completing the sale…"
            self.start_note = gate.recent_sale_note()
            if self.start_note:
                self.checkout.say(self.start_note, "ok")

    @work(thread=True, exclusive=True, group="print-queue", exit_on_error=False)
    def print_waiting(self) -> None:
        if self.checkout.paying:
            return  # the sale prints its own receipt first: this tick's turn comes again
        try:
            printed, held = self.services.printer.print_waiting()
        except Exception:  # a printer that fails keeps its jobs queued; the status bar counts them
            return
        if held:  # it will not print by itself: a person must look at the printer
            self.call_from_thread(self.checkout.say, f"The printer did not confirm {len(held)} slip(s) twice: they are held,"
                                                     " not printed again by themselves. Check the printer (or its timeout_s);"
                                                     " manager: F12 p prints one again.", "error")
        elif printed:  # the cashier learns what just came out of the printer, and whose it is not
            note, self.start_note = (f" {self.start_note}" if self.start_note else ""), ""
            self.call_from_thread(self.checkout.say, f"Printed {printed} waiting slip(s) from the print queue (earlier sales).{note}",
                                  "ok")

    def _after_first_frame(self) -> None:
        # What startup built lives all day: keep it out of the collector's passes. The collector then runs
        # on a timer, not by allocation count: left automatic it stopped ~1 tap in 10 for a young pass
        # (0.3 ms) and ~1 in 100 for a full one (3 ms, once 27 ms), the slowest taps. `loyalty run` and
        # `loyalty demo` start with it off (terminal/cli.py).
        gc.freeze()
        gc.disable()
        self.set_interval(GC_EVERY_S, self._collect_garbage)

    def _collect_garbage(self) -> None:
        self._gc_ticks += 1
        gc.collect(2 if self._gc_ticks % GC_FULL_EVERY == 0 else 1)

    def on_unmount(self) -> None:
        self._stop.set()
        self.services.sync.stop_background()
        gc.enable()  # the process may go on without the app (tests, scripts)

    # ------------------------------------------------------------ background sync

    @work(thread=True, exclusive=True, group="sync-start", exit_on_error=False)
    def start_sync(self) -> None:
        # these load here rather than at startup, where they delayed the first frame; loaded now, the first
        # receipt and the first dialog do not wait for them either
        import receipts  # noqa: F401

        from . import dialogs  # noqa: F401

        if self._stop.is_set():
            return

        def posted(done: SyncRound) -> None:
            self.post_message(SyncRoundDone(done))

        try:
            self.services.sync.start_background(posted)
        except Exception as exc:  # the till sells without sync; end of day says what to do
            self.post_message(SyncRoundDone(SyncRound(ok=False, error=plain_reason(exc))))

    @on(SyncRoundDone)
    def _sync_round(self, msg: SyncRoundDone) -> None:
        said_before = self.last_sync_round is not None and self.last_sync_round.error == msg.round.error
        self.last_sync_round = msg.round
        if msg.round.warning:
            self.checkout.say(msg.round.warning, "warn")
        if msg.round.refused and not said_before:  # said once: the status bar keeps SYNC REFUSED while it lasts
            self.checkout.say(f"Sync refused by the server: {msg.round.error}. Sales go on; call the manager.", "error")
        self.refresh_status()

    # ------------------------------------------------------------ reader

    @work(thread=True, exclusive=True, group="reader", exit_on_error=False)
    def read_cards(self) -> None:
        reader = self.services.reader
        assert reader is not None
        backoff = 0.5
        while not self._stop.is_set():
            try:
                for event in reader.events(self._stop):
                    if isinstance(event, CardPresent):
                        # read the member here, on the reader's thread: the app then shows the
                        # panel as the tap arrives, with no worker thread in between
                        answer = self.checkout.look_up(event.card_id, event.signature, event.warnings)
                        self.post_message(CardTapped(event.card_id, event.reader, event.signature, event.warnings, answer))
                    elif isinstance(event, ReaderConnected):
                        backoff = 0.5
                        self.post_message(ReaderStatus(True, event.reader))
                    elif isinstance(event, ReaderDisconnected):
                        self.post_message(ReaderStatus(False, event.reader, event.reason))
                    elif isinstance(event, CardRemoved):
                        pass
                    if self._stop.is_set():
                        return
            except Exception as exc:  # a reader that fails is retried; the till keeps selling meanwhile
                self.post_message(ReaderStatus(False, getattr(reader, "name", "reader"), plain_reason(exc)))
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, 5.0)

    @on(CardTapped)
    def _card_tapped(self, msg: CardTapped) -> None:
        self.checkout.card_tapped(msg.card_id, msg.signature, msg.warnings, msg.looked_up)

    @on(ReaderStatus)
    def _reader_status(self, msg: ReaderStatus) -> None:
        if msg.connected:
            self.checkout.reader_text = f"reader ● {msg.name}"
        else:
            self.checkout.reader_text = f"reader ○ {msg.name} (reconnecting)"
            if msg.reason:
                self.checkout.say(f"Card reader: {msg.reason}. Check its cable; F2 types card ids meanwhile.", "error")
        self.refresh_status()

    # ------------------------------------------------------------ status bar

    def refresh_status(self) -> None:
        self.poll_status()

    @work(thread=True, exclusive=True, group="status", exit_on_error=False)
    def poll_status(self) -> None:
        gone = self.services.gate.ledger_problem()
        if gone and gone != self._ledger_said:  # said once, when first seen: the till sells nothing more
            self._ledger_said = gone
            self.call_from_thread(self.checkout.say, gone, "error")
        try:
            snap = StatusSnapshot(self.services.sync.state(), self.services.printer.queued())
        except Exception:  # the status bar must never take the till down; it tries again next tick
            return
        self.post_message(snap)

    @on(StatusSnapshot)
    def _status(self, msg: StatusSnapshot) -> None:
        self.checkout.show_status(msg)

    # ------------------------------------------------------------ manager

    def open_manager(self) -> None:
        from .dialogs import ManagerMenu, PinScreen  # dialogs load after the first frame, not before it

        left = self._pin_locked_until - time.monotonic()
        if left > 0:
            self.checkout.say(f"Manager actions are locked for {left:.0f} s after wrong PINs.", "error")
            return

        def pin_done(ok: bool | None) -> None:
            wrong = self._last_pin.wrong if isinstance(self._last_pin, PinScreen) else 0
            self._pin_wrong = 0 if ok else wrong
            if ok:
                self.push_screen(ManagerMenu(), self.manager_action)
                return
            if wrong >= PinScreen.TRIES:
                self._pin_wrong = 0
                self._pin_locked_until = time.monotonic() + PIN_LOCKOUT_S
                self.checkout.say(f"Wrong PIN {PinScreen.TRIES} times: manager actions locked for {PIN_LOCKOUT_S:.0f} s.", "error")
            elif wrong:
                self.checkout.say("Wrong PIN: manager actions cancelled.", "error")

        self._last_pin = PinScreen(self.services.check_pin, "manager actions", wrong=self._pin_wrong)
        self.push_screen(self._last_pin, pin_done)

    _last_pin: PinScreen | None = None
    _pin_wrong = 0  # wrong PINs since the last right one or the last lock-out, over every PIN dialog

    def manager_action(self, action: str | None) -> None:
        if action is None:
            return
        if action in MANAGER_FORMS:
            self._manager_form(action)
            return
        if action == "offline":
            sync = self.services.sync
            offline = not sync.state().forced_offline
            sync.set_offline(offline)
            self.note_manager(True, "Forced offline: sync is paused." if offline else "Back online: sync resumes.")
            self.refresh_status()
        elif action == "end_of_day":
            if self.checkout.cart.lines:  # closed, the day would take no more sales: this one could never be paid
                self.checkout.say("End of day not started: a sale is in the cart. Complete it (F9) or clear it (Esc twice) first.",
                                  "error")
                return
            day = self.services.gate.day_to_close()
            from .dialogs import Field, FormScreen

            def confirmed(values: dict[str, str] | None) -> None:
                if values is not None:
                    from .endofday import EndOfDayScreen

                    self.push_screen(EndOfDayScreen(self.services))

            # closing the day cannot be undone: no sale is taken on it afterwards
            self.push_screen(
                FormScreen(f"End of day: close business day {day}?", [Field("confirm", "Type yes to close it", "")],
                           hint="No sale, refund or enrolment is taken on this day afterwards.   Enter: close   Esc: cancel",
                           validate=lambda v: None if v["confirm"].strip().lower() == "yes" else "type yes to close the day, or Esc"),
                confirmed,
            )

    def _manager_form(self, action: str, typed: dict[str, str] | None = None, error: str = "") -> None:
        """The form of a manager action: first with what the till knows (the last receipt, the card in hand), again with
        what was typed when the ledger refused it, the reason shown (the PIN is not asked again)."""
        from .dialogs import Field, FormScreen

        co = self.checkout
        sale_ref = co.last_receipt or ""
        card = co.cart.card or co.last_card or ""
        programs = [p.id for p in self.services.gate.points_programs()] + [p.id for p in self.services.gate.stamp_programs()]
        forms: dict[str, tuple[str, list[Field], Callable[[dict[str, str]], str | None] | None]] = {
            "refund": ("Refund a sale", [Field("sale", "Receipt number (or sale id)", sale_ref)], None),
            "reprint": ("Reprint a receipt", [Field("sale", "Receipt number (or sale id)", sale_ref)], None),
            "refund_slip": ("Reprint a refund slip", [Field("sale", "Receipt number of the refunded sale", sale_ref)], None),
            "block": ("Block a card", [Field("card", "Card id", card), Field("reason", "Reason", "", "lost, stolen, abuse…")],
                      _needs("card", "reason")),
            "unblock": ("Unblock a card", [Field("card", "Card id", card)], _needs("card")),
            "replace": ("Replace a card", [Field("old", "Old card id", card), Field("new", "New card id", "", "tap or type the new card")],
                        _needs("old", "new")),
            "adjust": ("Adjust a balance", [Field("card", "Card id", card),
                                            Field("program", f"Program ({', '.join(programs)})", programs[0] if programs else ""),
                                            Field("amount", "Amount (+ adds, - takes)", "", "+100 or -2"),
                                            Field("reason", "Reason (required)", "")], _adjust_problem),
        }
        title, fields, validate = forms[action]
        if typed:
            fields = [Field(f.name, f.label, typed.get(f.name, f.value), f.placeholder, f.password) for f in fields]
        self.push_screen(FormScreen(title, fields, validate=validate, error=error), self._then(action))

    def _then(self, action: str) -> Callable[[dict[str, str] | None], None]:
        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                self.run_manager(action, values)

        return done

    def _confirm_refund(self, sale: dict[str, Any]) -> None:
        """The sale a refund would reverse, to compare with the customer's paper before anything is written."""
        from .dialogs import Field, FormScreen
        from .render import grouped

        number = sale["receipt"]["number"]
        shown = sale["lines"][:5]  # a long sale must not push the answer field off the screen
        lines = ", ".join(f"{line['qty']} x {line['name']}" for line in shown)
        if len(sale["lines"]) > len(shown):
            lines += f" and {len(sale['lines']) - len(shown)} more line(s)"
        facts = [f"Sold {self.checkout.store_time(sale['receipt']['ts'])} on card {sale['card']}",
                 f"Items: {lines}",
                 f"Total: {sale['currency']} {grouped(sale['total'])}"]
        earned = ", ".join(f"{n} {pid}" for pid, n in sale["earned"].items() if n)
        redeemed = ", ".join(f"{n} {pid}" for pid, n in sale["redeemed"].items() if n)
        if earned:
            facts.append(f"Earned: {earned}")
        if redeemed:
            facts.append(f"Redeemed: {redeemed}")

        def confirmed(values: dict[str, str] | None) -> None:
            if values is not None:
                self.run_manager("refund", {"sale": number}, confirmed=True)

        self.push_screen(
            FormScreen(f"Refund sale {number}?", [Field("confirm", "Type yes to refund it", "")], facts=facts,
                       hint="Enter: refund   Esc: cancel",
                       validate=lambda v: None if v["confirm"].strip().lower() == "yes" else "type yes to refund this sale, or Esc"),
            confirmed,
        )

    @work(thread=True, group="manager", exit_on_error=False)
    def run_manager(self, action: str, values: dict[str, str], *, confirmed: bool = False) -> None:
        gate = self.services.gate
        try:
            if action == "refund" and not confirmed:
                # a refund is shown before it is done: a mistyped number, or another store's receipt from a till of
                # the same name, would reverse another customer's sale at once (one refunded already is said below)
                sale = gate.sale(values["sale"])
                if not sale.get("refunded"):
                    self.call_from_thread(self._confirm_refund, sale)
                    return
            if action == "refund":
                result = gate.refund(values["sale"])
                moved = ", ".join((f"{pid} to {amount}" if amount else f"{pid} ended") if acct == "until" else f"{amount:+d} {acct}"
                                  for pid, accts in result["reversed"].items() for acct, amount in accts.items())
                gone = sum((result.get("expired") or {}).values())
                if gone:  # points come due, written off by the refund's transaction: the balance says why
                    moved += f"; {gone} expired points written off"
                from receipts import render
                from receipts.templates import refund_slip

                slip = render(refund_slip(result, self.services.cfg), "text", self.services.cfg).decode("utf-8")
                status, problem = self._print_quietly("refund", result["refund"])
                said = f"Refunded {result.get('receipt') or values['sale']}: {moved or 'nothing to reverse'}."
                if problem:  # the refund stands; the manager must know there is no slip to hand over yet
                    said += f" Slip NOT printed ({problem}): it waits in the print queue."
                self.post_message(ManagerResult(True, said, result, slip, printed=status or f"NOT printed: {problem}"))
            elif action == "reprint":
                sale = gate.sale(values["sale"])
                from receipts import render_sale

                text = render_sale(sale, self.services.cfg, "text", copy=True).decode("utf-8")
                status, problem = self._print_quietly("sale", sale["sale"], copy=True)
                number = sale["receipt"]["number"]
                if problem:
                    self.post_message(ManagerResult(False, f"Reprint of {number} NOT printed ({problem}): it waits in the print"
                                                           " queue and prints once the printer is back.", None, text,
                                                    printed=f"NOT printed: {problem}"))
                elif "the original" in status:  # it had never printed: no COPY, and the screen says what came out
                    text = render_sale(sale, self.services.cfg, "text").decode("utf-8")
                    self.post_message(ManagerResult(True, f"Reprinted {number}: {status}.", None, text, printed=status))
                else:
                    said = f"; {status.split('; ', 1)[1]}" if "; " in status else ""
                    self.post_message(ManagerResult(True, f"Reprinted {number} (marked COPY){said}.", None, text, printed=status))
            elif action == "refund_slip":
                refund = gate.refund_of(values["sale"])
                from receipts import render
                from receipts.templates import refund_slip

                slip = render(refund_slip(refund, self.services.cfg, copy=True), "text", self.services.cfg).decode("utf-8")
                status, problem = self._print_quietly("refund", refund["refund"], copy=True)
                number = refund.get("receipt") or values["sale"]
                if problem:
                    self.post_message(ManagerResult(False, f"Refund slip of {number} NOT printed ({problem}): it waits in the"
                                                           " print queue and prints once the printer is back.", None, slip,
                                                    printed=f"NOT printed: {problem}"))
                else:
                    self.post_message(ManagerResult(True, f"Refund slip of {number} printed again (marked COPY).", None, slip,
                                                    printed=status))
            elif action == "block":
                view = gate.block(values["card"], values["reason"].strip())
                self.post_message(ManagerResult(True, f"Card {view['card']} is blocked.", view))
            elif action == "unblock":
                view = gate.unblock(values["card"])
                self.post_message(ManagerResult(True, f"Card {view['card']} is active again.", view))
            elif action == "replace":
                view = gate.replace(values["old"], values["new"])
                self.post_message(ManagerResult(True, f"Member moved to card {view['card']}; the old card is refused from now on.", view,
                                                replaced=(normalize_card(values["old"]), view["card"])))
            elif action == "adjust":
                text = values["amount"].strip().replace(" ", "")
                try:
                    amount = int(text)
                except ValueError:
                    self.post_message(ManagerResult(False, f"Adjust: {text!r} is not a whole number (e.g. +100 or -2)."))
                    return
                view = gate.adjust(values["card"], values["program"].strip(), amount, values["reason"])
                self.post_message(ManagerResult(True, f"Adjusted {values['program']} by {amount:+d} on {view['card']}.", view))
        except LoyaltyError as exc:
            if exc.code == "already_refunded":  # done once already: the slip is what the manager may still need
                said = (f"Refund not done again: sale {exc.data['receipt']} was already refunded{exc.data['when']}."
                        " F12 s prints its refund slip again.")
                self.post_message(ManagerResult(False, said))
                return
            said = f"{action.replace('_', ' ').capitalize()} not done: {plain_reason(exc)}"
            # a value refused: the form again, as typed (a crash is not the manager's to retype)
            self.post_message(ManagerResult(False, said, retry=(action, values, plain_reason(exc))))
        except Exception as exc:  # a crash is not the manager's to retype: no form again
            self.post_message(ManagerResult(False, f"{action.replace('_', ' ').capitalize()} not done: {plain_reason(exc)}"))

    def _print_quietly(self, kind: str, ref: str, *, copy: bool = False) -> tuple[str, str]:
        """(where it printed, "") or ("", why not): the action itself is done whatever the paper does."""
        try:
            return self.services.printer.print_job(kind, ref, copy=copy), ""
        except Exception as exc:  # the paper waits in the queue
            return "", plain_reason(exc)

    @on(ManagerResult)
    def _manager_result(self, msg: ManagerResult) -> None:
        self.note_manager(msg.ok, msg.text)
        if msg.retry is not None:
            action, typed, reason = msg.retry
            self._manager_form(action, typed, reason)
        if msg.receipt:
            self.checkout.show_receipt(msg.receipt, msg.printed or f"printed on {self.services.printer.name}")
        # a slip on screen stays there: tapping the card again to refresh its panel would cover it
        if msg.view is not None and not msg.receipt and self.checkout.shows_card(msg.view.get("card")):
            self.checkout.card_tapped(msg.view["card"])
        elif msg.replaced is not None and self.checkout.shows_card(msg.replaced[0]):
            self.checkout.card_tapped(msg.replaced[1])  # the sale in hand goes on the new card, its panel with it
        self.refresh_status()

    def note_manager(self, ok: bool, text: str) -> None:
        self.manager_log.append(text)
        self.checkout.say(text, "ok" if ok else "error")


def _needs(*names: str) -> Callable[[dict[str, str]], str | None]:
    """A form check: every named field filled in (the dialog stays open with what was typed)."""
    def check(values: dict[str, str]) -> str | None:
        missing = [n for n in names if not values.get(n, "").strip()]
        return f"fill in: {', '.join(missing)}" if missing else None

    return check


def _adjust_problem(values: dict[str, str]) -> str | None:
    missing = _needs("card", "program", "amount", "reason")(values)
    if missing:
        return missing
    text = values["amount"].strip().replace(" ", "")
    if not text.lstrip("+-").isdecimal() or int(text) == 0:
        return f"amount {values['amount'].strip()!r}: a whole number other than 0 (e.g. +100 or -2)"
    return None


def build_app(services: Services) -> LoyaltyApp:
    return LoyaltyApp(services)

