"""Everything the app is given when it is built: ledger, devices, sync, clock.

`loyalty run`, `loyalty demo`, the tests and the benchmark each build their
own `Services` and hand it to `build_app`; the app never opens a device or a
file by itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drivers.readers.base import CardReader
from ledger.config import Config
from ledger.ids import new_id
from ledger.service import Loyalty

from .gate import Gate
from .ports import Printer, SyncPort, open_printer, open_reader, open_sync


@dataclass(frozen=True, slots=True)
class DemoCard:
    key: str  # the key that taps it in the tap dialog
    card_id: str
    label: str


@dataclass
class Services:
    gate: Gate
    printer: Printer
    sync: SyncPort
    reader: CardReader | None = None
    reader_error: str | None = None
    demo_cards: list[DemoCard] = field(default_factory=list)
    new_sale_id: Callable[[], str] = new_id
    demo: bool = False
    status_interval_s: float = 2.0

    @property
    def cfg(self) -> Config:
        return self.gate.cfg

    def check_pin(self, pin: str) -> bool | None:
        """True/False for a PIN; None when no manager PIN is configured."""
        wanted = self.cfg.manager.pin_sha256
        if not wanted:
            return None
        got = hashlib.sha256(pin.encode("utf-8")).hexdigest()
        return hmac.compare_digest(got, wanted)

    def close(self) -> None:
        if self.reader is not None:
            with contextlib.suppress(Exception):  # a broken device must not hide the app's own exit
                self.reader.close()
        self.gate.close()


def system_clock() -> datetime:
    return datetime.now(UTC)


def build_services(
    cfg: Config,
    *,
    clock: Callable[[], datetime] = system_clock,
    demo_cards: list[DemoCard] | None = None,
    demo: bool = False,
    reader_url: str | None = None,
    printer_url: str | None = None,
    new_sale_id: Callable[[], str] | None = None,
) -> Services:
    gate = Gate(Loyalty.open(cfg), clock)
    reader: CardReader | None = None
    reader_error: str | None = None
    try:
        reader = open_reader(cfg, reader_url)
    except Exception as exc:  # the till still sells with typed card ids (F2) while the reader is missing
        reader_error = str(exc) or type(exc).__name__
    services = Services(
        gate=gate,
        printer=open_printer(cfg, printer_url),
        sync=open_sync(gate),
        reader=reader,
        reader_error=reader_error,
        demo_cards=demo_cards or [],
        demo=demo,
    )
    if new_sale_id is not None:
        services.new_sale_id = new_sale_id
    return services
