"""Test support for the ledger tests: a small store of our own (not the demo's) and an in-process CLI runner."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger import clock
from ledger.config import Config
from ledger.service import CheckoutRequest, Loyalty
from terminal.cli import main

STORE = """
[store]
id = "kw-test-01"
terminal = "till-9"
currency = "KWD"
locale = "en"
timezone = "Asia/Kuwait"

[ledger]
path = "ledger.db"
auto_enrol = true

[offline]
max_redeem_per_card_per_day = 0

[[catalog]]
sku = "ESP"
name = "Espresso"
price = "0.750"
category = "coffee"
barcode = "111"

[[catalog]]
sku = "LAT"
name = "Latte"
price = "1.250"
category = "coffee"

[[catalog]]
sku = "BIG"
name = "Big mocha"
price = "2.000"
category = "coffee"

[[catalog]]
sku = "CRO"
name = "Croissant"
price = "0.600"
category = "pastry"

[[catalog]]
sku = "BEANS"
name = "Beans"
price = "4.500"
category = "retail"

[[catalog]]
sku = "VIP"
name = "VIP card"
price = "10.000"
category = "membership"

[[program]]
id = "coffee"
kind = "stamps"
stamps_per_reward = 10
eligible = { categories = ["coffee"] }
reward = { kind = "free_item", categories = ["coffee"], max_value = "1.500" }

[[program]]
id = "points"
kind = "points"
earn = { per_amount = "1.000", points = 10, category_multipliers = { retail = 2 } }
redeem = { step_points = 100, step_value = "0.500" }
expire_after_days = 30
expiring_notice_days = 10
"""


@dataclass
class Store:
    path: Path
    cfg: Config
    service: Loyalty

    def now(self, text: str) -> datetime:
        return clock.parse_now(text, self.cfg.store.tz)

    def sale(self, card: str, items: list[str], redeem: list[str] | None = None, at: str = "2026-11-22T10:00", sale_id: str | None = None) -> dict[str, Any]:
        req = CheckoutRequest.from_cli(card, items, redeem or [], sale_id)
        return self.service.checkout(req, self.now(at))

    def show(self, card: str, at: str = "2026-11-22T10:00") -> dict[str, Any]:
        return self.service.card(card, self.now(at))

    def count(self, table: str) -> int:
        return int(self.service.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(*args: str) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())
