"""`serial://DEVICE?protocol=rdm6300|line&baudrate=N`: 125 kHz fob readers and line readers.

The port is reopened whenever it fails or vanishes (USB adapter pulled, a
pty whose other end went away), so a reader plugged back in works again.
Presence is by time: RDM6300-type readers repeat the frame while a fob is
near and never say it left.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from ledger.cards import CardIdError

from .base import CardError, CardPresent, CardRemoved, ReaderConnected, ReaderDisconnected, ReaderError, ReaderEvent
from .common import Debouncer, ParsedUrl, card_and_raw
from .frames import BadLine, LineParser, Rdm6300Parser

PROTOCOLS = ("rdm6300", "line")


class SerialReader:
    def __init__(
        self,
        device: str,
        *,
        protocol: str = "rdm6300",
        baudrate: int = 9600,
        debounce_ms: int = 800,
        kind: str = "code",
        retry_s: float = 0.2,
    ):
        if protocol not in PROTOCOLS:
            raise ReaderError(f"serial reader protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        if kind not in ("code", "em", "uid", "ndef"):
            raise ReaderError(f"serial reader kind must be code, em, uid or ndef, not {kind!r}")
        self.device = device
        self.protocol = protocol
        self.baudrate = baudrate
        self.kind = kind
        self.retry_s = retry_s
        self.name = f"serial:{device}"
        self.technology = "em4100" if protocol == "rdm6300" else "serial"
        self._debounce = Debouncer(debounce_ms / 1000)
        self._port: Any = None

    def _open(self) -> Any:
        import serial

        # serial_for_url also takes loop:// and socket:// (handy on a bench);
        # exclusive keeps a second program from stealing half the bytes.
        kwargs: dict[str, Any] = {"baudrate": self.baudrate, "timeout": 0.05}
        if "://" not in self.device:
            kwargs["exclusive"] = True
        return serial.serial_for_url(self.device, **kwargs)

    def events(self, stop: threading.Event) -> Iterator[ReaderEvent]:
        import serial

        reported_down = False
        while not stop.is_set():
            try:
                port = self._open()
            except (serial.SerialException, OSError, ValueError) as exc:
                if not reported_down:
                    reported_down = True
                    yield ReaderDisconnected(self.name, time.monotonic(), f"cannot open {self.device}: {exc}")
                stop.wait(self.retry_s)
                continue
            self._port = port
            reported_down = False
            yield ReaderConnected(self.name, time.monotonic())
            parser: Rdm6300Parser | LineParser = Rdm6300Parser() if self.protocol == "rdm6300" else LineParser()
            try:
                while not stop.is_set():
                    port.timeout = self._debounce.timeout(time.monotonic(), 0.05)
                    data = port.read(max(1, port.in_waiting))
                    now = time.monotonic()
                    if data:
                        yield from self._handle(parser.feed(data), now)
                    if self._debounce.expired(time.monotonic()):
                        yield CardRemoved(self.name, time.monotonic())
            except (serial.SerialException, OSError, TypeError) as exc:
                # pyserial raises TypeError from read() when the fd was closed under it.
                reported_down = True
                if self._debounce.current is not None:
                    self._debounce.current = None
                    yield CardRemoved(self.name, time.monotonic())
                yield ReaderDisconnected(self.name, time.monotonic(), f"{self.device}: {exc}")
                stop.wait(self.retry_s)
            finally:
                self._port = None
                with contextlib.suppress(serial.SerialException, OSError):
                    port.close()

    def _handle(self, items: list[Any], detected: float) -> Iterator[ReaderEvent]:
        for item in items:
            if isinstance(item, BadLine):
                yield CardError(self.name, time.monotonic(), f"unusable read: {item.reason}")
                continue
            if isinstance(item, str):
                try:
                    card, raw = card_and_raw(item, self.kind)
                except CardIdError as exc:
                    yield CardError(self.name, time.monotonic(), f"unusable card number {item[:40]!r}: {exc}")
                    continue
            else:
                card, raw = item.card_id, ""
            new, removed = self._debounce.seen(card, detected)
            if removed:
                yield CardRemoved(self.name, time.monotonic())
            if new:
                yield CardPresent(card, self.name, self.technology, time.monotonic(), raw=raw, detected=detected)

    def close(self) -> None:
        port = self._port
        if port is not None:
            # Best effort: not every port type can cancel a read.
            with contextlib.suppress(Exception):
                port.cancel_read()


def open(url: ParsedUrl, *, debounce_ms: int = 800) -> SerialReader:
    url.check_known(("protocol", "baudrate", "debounce_ms", "kind"))
    if not url.target:
        raise ReaderError("serial reader URL needs a device: serial:///dev/ttyUSB0?protocol=rdm6300")
    protocol = url.text("protocol", "rdm6300")
    return SerialReader(
        url.target,
        protocol=protocol,
        baudrate=url.integer("baudrate", 9600, minimum=50, maximum=4_000_000),
        debounce_ms=url.integer("debounce_ms", debounce_ms, maximum=60_000),
        kind=url.text("kind", "em" if protocol == "rdm6300" else "code"),
    )
