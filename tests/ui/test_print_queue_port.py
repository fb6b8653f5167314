"""The app's printer port on a real TCP printer: what a reprint prints when the original never came out."""

from __future__ import annotations

import sys
from pathlib import Path

from ledger import config as config_mod
from ledger.service import CheckoutRequest, Loyalty
from terminal.app.ports import open_printer

from .conftest import NOW

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "receipts"))

from receipt_support import Listener


def test_a_reprint_of_a_receipt_that_never_printed_prints_the_original_once(demo_dir: Path) -> None:
    cfg = config_mod.load(demo_dir / "config.toml")
    service = Loyalty.open(cfg)
    try:
        first = service.checkout(CheckoutRequest.from_cli("uid:04A1B2C3D4E5F6", ["LAT"], []), NOW)
        second = service.checkout(CheckoutRequest.from_cli("uid:04A1B2C3D4E5F6", ["CRO"], []), NOW)
        waiting = service.conn.execute("SELECT COUNT(*) FROM print_jobs WHERE status != 'printed'").fetchone()[0]
        assert waiting >= 2  # the printer was off for both
    finally:
        service.close()
    printer_box = Listener().start()
    try:
        printer = open_printer(cfg, printer_box.url)
        said = printer.print_job("sale", second["sale"], copy=True)
        assert "the original, which had not printed" in said and f"{waiting - 1} other waiting slip(s) came out too" in said
        service = Loyalty.open(cfg)
        try:
            jobs = service.conn.execute("SELECT ref, copy, status FROM print_jobs WHERE ref IN (?, ?)", (first["sale"], second["sale"])).fetchall()
        finally:
            service.close()
        assert sorted(tuple(j) for j in jobs) == sorted([(first["sale"], 0, "printed"), (second["sale"], 0, "printed")])
        number = second["receipt"]["number"].encode()
        assert sum(1 for job in printer_box.received if number in job) == 1 and b"COPY" not in b"".join(printer_box.received)
        assert printer.queued() == 0
    finally:
        printer_box.stop()
