"""Small modal screens: forms, the manager PIN, tapping a card, menus, help."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from .entry import ScanInput
from .services import DemoCard

DIALOG_CSS = """
.dialog {
    width: 64;
    max-width: 100%;
    height: auto;
    max-height: 100%;
    border: thick $primary;
    background: $panel;
    padding: 0 1;
}
.dialog Label { width: 100%; }
.dialog .title { text-style: bold; margin-bottom: 1; }
.dialog .facts { margin-bottom: 1; }
.dialog .error { color: $error; text-style: bold; }
.dialog .hint { color: $text-muted; }
.dialog Input { margin-bottom: 0; }
"""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    label: str
    value: str = ""
    placeholder: str = ""
    password: bool = False


class FormScreen(ModalScreen[dict[str, str] | None]):
    """Fields one under the other; Enter moves on, Enter on the last submits, Esc cancels."""

    DEFAULT_CSS = "FormScreen { align: center middle; }" + DIALOG_CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, fields: list[Field], *, hint: str = "", validate: Callable[[dict[str, str]], str | None] | None = None,
                 error: str = "", facts: list[str] | None = None):
        super().__init__()
        self.form_title = title
        self.facts = facts or []  # what the form is about, one line each, above the fields (a refund's sale)
        self.fields = fields
        self.hint = hint
        self.validate = validate
        self.error = error  # shown from the start: the form opened again with what the ledger refused

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.form_title), classes="title")
            if self.facts:
                yield Label(Text("\n".join(self.facts)), classes="facts", id="form-facts")
            for f in self.fields:
                yield Label(Text(f.label))
                yield Input(value=f.value, placeholder=f.placeholder, password=f.password, id=f"field-{f.name}")
            yield Label(Text(self.error), classes="error", id="form-error")
            yield Label(Text(self.hint or "Enter: next / done   Esc: cancel"), classes="hint")

    def values(self) -> dict[str, str]:
        return {f.name: self.query_one(f"#field-{f.name}", Input).value for f in self.fields}

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        event.stop()
        inputs = list(self.query(Input))
        at = inputs.index(event.input)
        if at + 1 < len(inputs):
            inputs[at + 1].focus()
            return
        values = self.values()
        problem = self.validate(values) if self.validate else None
        if problem:
            self.query_one("#form-error", Label).update(Text(problem))
            # the field the problem names (the first it names), so the next keys edit it, not the last field
            named = [(m.start(), f.name) for f in self.fields if (m := re.search(rf"\b{re.escape(f.name)}\b", problem))]
            if named:
                self.query_one(f"#field-{min(named)[1]}", Input).focus()
            return
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PinScreen(ModalScreen[bool]):
    """The manager PIN. Three wrong PINs close it; the app then locks manager actions for a while."""

    DEFAULT_CSS = "PinScreen { align: center middle; }" + DIALOG_CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    TRIES = 3

    def __init__(self, check: Callable[[str], bool | None], purpose: str, wrong: int = 0):
        super().__init__()
        self.check = check
        self.purpose = purpose
        self.wrong = wrong  # wrong PINs so far, also in dialogs closed before this one: Esc does not give new tries

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Manager PIN: {self.purpose}", classes="title")
            yield Input(password=True, placeholder="PIN", id="pin")
            yield Label(self._left() if self.wrong else "", classes="error", id="pin-error")
            yield Label("Enter: confirm   Esc: cancel", classes="hint")

    @on(Input.Submitted, "#pin")
    def _submit(self, event: Input.Submitted) -> None:
        event.stop()
        error = self.query_one("#pin-error", Label)
        if not event.value.strip():  # Enter on an empty field is no attempt
            error.update(Text("Type the PIN, then Enter (Esc cancels)."))
            return
        ok = self.check(event.value)
        if ok is None:
            error.update(Text("No manager PIN is set: add [manager] pin_sha256 to config.toml (SHA-256 of the PIN)."))
            return
        if ok:
            self.dismiss(True)
            return
        self.wrong += 1
        event.input.value = ""
        if self.wrong >= self.TRIES:
            self.dismiss(False)
            return
        error.update(Text(self._left()))

    def _left(self) -> str:
        left = self.TRIES - self.wrong
        return f"Wrong PIN ({left} {'try' if left == 1 else 'tries'} left). Try again, or Esc."

    def action_cancel(self) -> None:
        self.dismiss(False)


class TapScreen(ModalScreen[str | None]):
    """Tap a card: a key per demo card, or type any card id (as a keyboard-wedge reader would)."""

    DEFAULT_CSS = (
        "TapScreen { align: center middle; } TapScreen .dialog { width: 90; }"
        " TapScreen .cards { height: auto; } TapScreen .column { width: 1fr; }" + DIALOG_CSS
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("slash", "type_id", "Type an id", show=False),
    ]

    def __init__(self, cards: list[DemoCard]):
        super().__init__()
        self.cards = cards
        self.by_key = {c.key: c.card_id for c in cards}
        self._answered = False

    def _answer(self, card: str | None) -> None:
        # once: a reader's double read (two ids in one burst) would dismiss again, and pop the screen beneath
        if not self._answered:
            self._answered = True
            self.dismiss(card)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Tap a card", classes="title")
            if self.cards:
                half = (len(self.cards) + 1) // 2
                with Horizontal(classes="cards"):
                    for column in (self.cards[:half], self.cards[half:]):
                        listing = Text(no_wrap=True, overflow="ellipsis")
                        for c in column:
                            listing.append(f" {c.key} ", style="bold reverse")
                            listing.append(f" {c.label}\n")
                        yield Static(listing, classes="column")
                yield Label("A key taps that card; / types a card id", classes="hint")
            # with demo keys the field waits for "/", so a key taps instead of typing
            # a wedge reader types here too: its Enter (or LF) ends one id, however fast the next follows
            yield ScanInput(placeholder="card id, e.g. uid:04A1B2C3D4E5F6 or code:12345", id="tap-id", disabled=bool(self.cards))
            yield Label("Enter: tap   Esc: cancel", classes="hint")

    def on_mount(self) -> None:
        if not self.cards:
            self.query_one("#tap-id", Input).focus()

    def on_key(self, event: events.Key) -> None:
        if self.query_one("#tap-id", Input).has_focus:
            return
        card = self.by_key.get(event.character or "")
        if card is not None:
            event.stop()
            self._answer(card)

    def action_type_id(self) -> None:
        field = self.query_one("#tap-id", Input)
        field.disabled = False
        field.focus()

    @on(Input.Submitted, "#tap-id")
    def _typed(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self._answer(event.value.strip())

    def action_cancel(self) -> None:
        self._answer(None)


MANAGER_ACTIONS: list[tuple[str, str, str]] = [
    ("r", "refund", "Refund a sale"),
    ("p", "reprint", "Reprint a receipt"),
    ("s", "refund_slip", "Reprint a refund slip"),
    ("b", "block", "Block a card"),
    ("u", "unblock", "Unblock a card"),
    ("n", "replace", "Replace a card (lost or broken)"),
    ("a", "adjust", "Adjust a balance (with a reason)"),
    ("o", "offline", "Force offline / back online"),
    ("e", "end_of_day", "End of day and Z report"),
]


class ManagerMenu(ModalScreen[str | None]):
    DEFAULT_CSS = "ManagerMenu { align: center middle; }" + DIALOG_CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Close")]

    def compose(self) -> ComposeResult:
        text = Text()
        for key, _action, label in MANAGER_ACTIONS:
            text.append(f" {key} ", style="bold reverse")
            text.append(f" {label}\n")
        with Vertical(classes="dialog"):
            yield Label("Manager", classes="title")
            yield Static(text)
            yield Label("Press a key, Esc closes", classes="hint")

    def on_key(self, event: events.Key) -> None:
        for key, action, _label in MANAGER_ACTIONS:
            if event.character == key:
                event.stop()
                self.dismiss(action)
                return

    def action_cancel(self) -> None:
        self.dismiss(None)


KEYS: list[tuple[str, str]] = [
    ("type + Enter", "add an item: SKU, barcode, LAT*3 or 3*LAT; a card id (uid:…, code:…) taps it"),
    ("F1", "this help"),
    ("F2", "tap a card (demo keys, or type an id)"),
    ("F3", "quick profile for a new card: name, phone, birthday"),
    ("F4", "apply a ready reward (again: take it off)"),
    ("F5", "redeem points: type points (200) or an amount (1.000); blank = all that fits; 0 = none"),
    ("Up / Down", "select a cart line"),
    ("PgUp / PgDn", "scroll the receipt"),
    ("F6", "remove the selected line"),
    ("F7", "change the selected line's quantity"),
    ("F8", "member screen: the card's history"),
    ("F9", "complete the sale (receipt preview and print)"),
    ("F12", "manager actions (PIN): refund, reprint, refund slip, block, unblock, replace, adjust, offline, end of day"),
    ("Esc", "clear the customer (twice with items in the cart)"),
    ("Ctrl+Q", "quit (twice with a sale in the cart)"),
]


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = "HelpScreen { align: center middle; } HelpScreen .dialog { width: 78; }" + DIALOG_CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        # two columns, so a long line wraps under its own words, not under the keys
        keys = Table.grid(padding=(0, 2))
        keys.add_column(justify="right", style="bold", no_wrap=True)
        keys.add_column(ratio=1)
        for key, what in KEYS:
            keys.add_row(key, what)
        with VerticalScroll(classes="dialog"):
            yield Label("Keys", classes="title")
            yield Static(keys, classes="keys")
            yield Label("Esc closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
