"""The customer in front of the till: items, card, rewards asked for.

Plain data, no I/O: the screen changes it and asks the ledger for a quote.
The sale id is made when the cart starts so a retried payment never charges
twice (the ledger answers a known sale id with the stored sale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger.config import Config
from ledger.errors import LoyaltyError
from ledger.ids import new_id
from ledger.pricing import parse_item, shown_spec

CARD_PREFIXES = ("uid:", "ndef:", "em:", "code:")


@dataclass
class CartLine:
    sku: str
    name: str
    qty: int


@dataclass
class Cart:
    sale_id: str
    lines: list[CartLine] = field(default_factory=list)
    card: str | None = None
    view: dict[str, Any] | None = None  # the member panel's data, from the last tap
    unknown: bool = False  # a card the ledger does not know: enrolled on payment
    redeem: dict[str, int | None] = field(default_factory=dict)
    profile: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, make_id: Callable[[], str] = new_id) -> Cart:
        return cls(sale_id=make_id())

    def items(self) -> list[tuple[str, int]]:
        return [(ln.sku, ln.qty) for ln in self.lines]

    def add(self, cfg: Config, text: str) -> CartLine:
        """`LAT`, `LAT*3`, `3*LAT` or a barcode; the same item again adds to its line."""
        code, qty = parse_item(text.strip())
        item = cfg.item(code)
        if item is None:
            raise LoyaltyError("unknown_sku", f"no item {shown_spec(code)}: check the SKU or barcode (F1 lists the keys)")
        for line in self.lines:
            if line.sku == item.sku:
                if line.qty + qty > 999:
                    raise LoyaltyError("bad_item", f"{item.name}: at most 999 per line")
                line.qty += qty
                return line
        line = CartLine(item.sku, item.name, qty)
        self.lines.append(line)
        return line

    def remove(self, index: int) -> CartLine:
        if not 0 <= index < len(self.lines):
            raise LoyaltyError("no_line", "no line selected: move with the arrow keys first")
        return self.lines.pop(index)

    def set_qty(self, index: int, qty: int) -> None:
        if not 0 <= index < len(self.lines):
            raise LoyaltyError("no_line", "no line selected: move with the arrow keys first")
        if not 1 <= qty <= 999:
            raise LoyaltyError("bad_item", "the quantity must be between 1 and 999 (F6 removes a line)")
        self.lines[index].qty = qty


def looks_like_card(text: str) -> bool:
    """A typed or wedge-scanned card id rather than an item."""
    return text.strip().lower().startswith(CARD_PREFIXES)
