"""The devices and services the app talks to, behind small seams.

Readers, printers and sync are built in their own packages; until a package
offers its registry (`open_reader`, `open_printer`, ...), the stand-ins here
keep the app whole: a simulated reader tapped by keys, a preview printer that
shows the receipt on screen, and a local end of day. Every call that may block
is made from a worker thread by the app, never from the UI thread.
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from drivers.readers.base import CardPresent, CardReader, ReaderConnected, ReaderEvent

from .gate import DayTotals, Gate

Progress = Callable[[float, str], None]


def _registry(module: str, name: str) -> Callable[..., Any] | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    found = getattr(mod, name, None)
    return found if callable(found) else None


# ---------------------------------------------------------------- readers


class TapReader:
    """A reader fed by the app itself: demo keys and typed card ids become taps."""

    def __init__(self, name: str = "sim://"):
        self.name = name
        self._taps: queue.Queue[str] = queue.Queue()

    def tap(self, card_id: str) -> None:
        self._taps.put(card_id)

    def events(self, stop: threading.Event) -> Iterator[ReaderEvent]:
        yield ReaderConnected(reader=self.name, at=time.monotonic())
        while not stop.is_set():
            try:
                card_id = self._taps.get(timeout=0.1)
            except queue.Empty:
                continue
            yield CardPresent(card_id=card_id, reader=self.name, technology="sim", at=time.monotonic())

    def close(self) -> None:
        pass


def open_reader(url: str) -> CardReader:
    """The configured reader: the drivers' registry when it is there, else the tap reader for sim:// and keyboard://."""
    real = _registry("drivers.readers", "open_reader")
    if real is not None:
        reader: CardReader = real(url)
        return reader
    if url.startswith(("sim:", "keyboard:")):
        return TapReader(url)
    raise ConnectionError(f"no driver for reader {url!r} is installed yet; use sim:// or keyboard://, or type card ids with F2")


def tap(reader: CardReader | None, card_id: str) -> bool:
    """Tap a card on a reader that can simulate taps; False when it cannot."""
    tap_fn = getattr(reader, "tap", None)
    if callable(tap_fn):
        tap_fn(card_id)
        return True
    feed = getattr(reader, "feed", None)  # keyboard://: a wedge types the id and Enter
    if callable(feed):
        feed(card_id + "\n")
        return True
    return False


# ---------------------------------------------------------------- printers


class Printer(Protocol):
    name: str

    def print_bytes(self, data: bytes) -> None: ...

    def shows_on_screen(self) -> bool: ...


class PreviewPrinter:
    """preview://: the receipt panel is the paper."""

    def __init__(self, url: str = "preview://"):
        self.name = url

    def print_bytes(self, data: bytes) -> None:
        del data

    def shows_on_screen(self) -> bool:
        return True


class DriverPrinter:
    """A printer from the drivers' registry."""

    def __init__(self, url: str, driver: Any):
        self.name = url
        self._driver = driver

    def print_bytes(self, data: bytes) -> None:
        for method in ("print_bytes", "print", "write"):
            fn = getattr(self._driver, method, None)
            if callable(fn):
                fn(data)
                return
        raise ConnectionError(f"printer driver for {self.name} cannot print")

    def shows_on_screen(self) -> bool:
        return self.name.startswith("preview:")


class MissingPrinter:
    """A configured printer whose driver is not installed: receipts stay queued."""

    def __init__(self, url: str):
        self.name = url

    def print_bytes(self, data: bytes) -> None:
        raise ConnectionError(f"no driver for printer {self.name} is installed yet; the receipt stays queued")

    def shows_on_screen(self) -> bool:
        return False


def open_printer(url: str) -> Printer:
    if url.startswith("preview:"):
        return PreviewPrinter(url)
    real = _registry("drivers.printers", "open_printer")
    if real is not None:
        return DriverPrinter(url, real(url))
    return MissingPrinter(url)


# ---------------------------------------------------------------- sync


@dataclass(frozen=True, slots=True)
class SyncState:
    online: bool
    pending: int
    last_sync: str | None
    forced_offline: bool


@dataclass(frozen=True, slots=True)
class ZReport:
    totals: DayTotals
    text: str
    server_ack: str | None = None


class LocalSync:
    """Until the sync client lands: always offline, end of day from the local ledger."""

    def __init__(self, gate: Gate):
        self.gate = gate
        self.forced_offline = False

    def state(self) -> SyncState:
        pending, last = self.gate.pending_events()
        return SyncState(online=False, pending=pending, last_sync=last, forced_offline=self.forced_offline)

    def set_offline(self, offline: bool) -> None:
        self.forced_offline = offline

    def end_of_day(self, progress: Progress) -> ZReport:
        progress(0.1, "expiring due points")
        totals = self.gate.day_totals(expire=True)
        progress(0.6, "adding up the day's sales")
        text = z_report_text(self.gate, totals)
        progress(1.0, "done (local report: the sync client is not installed, nothing was pushed)")
        return ZReport(totals=totals, text=text)


def z_report_text(gate: Gate, t: DayTotals) -> str:
    cfg = gate.cfg
    cur = cfg.currency.code
    width = 42

    def row(left: str, right: str) -> str:
        return left + " " * max(1, width - len(left) - len(right)) + right

    lines = [
        cfg.store.name.center(width).rstrip(),
        f"Z REPORT {t.day}".center(width).rstrip(),
        f"{cfg.store.id} / {cfg.store.terminal}".center(width).rstrip(),
        "-" * width,
        row("Sales", str(t.sales)),
        row("Subtotal", t.subtotal),
        row("Discounts and rewards", "-" + t.discount),
        row(f"Total {cur}", t.total),
        row("Refunds", str(t.refunds)),
        row(f"Refunded {cur}", "-" + t.refunded_total),
        row("Points expired", str(t.points_expired)),
        "-" * width,
        "day closed" if t.closed else "day still open (local report, not synced)",
    ]
    return "\n".join(lines) + "\n"


class SyncPort(Protocol):
    """What the app needs from sync: the status bar's state, the manager's switch, and end of day."""

    def state(self) -> SyncState: ...

    def set_offline(self, offline: bool) -> None: ...

    def end_of_day(self, progress: Progress) -> ZReport: ...


def open_sync(gate: Gate) -> SyncPort:
    return LocalSync(gate)
