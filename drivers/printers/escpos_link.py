"""ESC/POS printers on a two-way link: TCP, serial, USB, through python-escpos's connectors.

Each job opens the link, asks DLE EOT whether the printer can print (when it
answers), writes the bytes with a timeout, and closes the link, so a printer
switched off between two sales costs one failed attempt, not a stuck socket.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import tempfile
from typing import Any

from . import PrinterUrl
from .base import (
    DLE_EOT_OFFLINE,
    DLE_EOT_PAPER,
    DLE_EOT_PRINTER,
    Payload,
    PrinterError,
    PrinterStatus,
    PrinterUnsure,
    parse_status,
)

if "ESCPOS_CAPABILITIES_PICKLE_DIR" not in os.environ:
    _cache = os.path.join(tempfile.gettempdir(), f"pos-loyalty-escpos-{os.getuid() if hasattr(os, 'getuid') else 0}")
    os.makedirs(_cache, exist_ok=True)
    os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = _cache

STATUS_WAIT_S = 0.5  # a printer that answers DLE EOT does so within milliseconds
NO_ANSWER = "no status answer"


class EscposLinkPrinter:
    def __init__(self, url: PrinterUrl, *, profile: str, paper_mm: int, timeout_s: float):
        self.url = url.raw
        self.parsed = url
        self.profile = profile
        self.paper_mm = paper_mm
        self.timeout_s = url.number("timeout", timeout_s)
        self.query_status = url.flag("status", True)
        # once a printer has answered DLE EOT, silence is a fault (hung, jammed, its buffer full), not its way
        self._answers = False
        if url.scheme == "escpos+tcp":
            url.check_known(("timeout", "status"))
            host, _, port = url.target.rpartition(":") if ":" in url.target else (url.target, "", "9100")
            if not host:
                raise PrinterError(f"printer URL {url.raw!r} needs a host, such as escpos+tcp://10.0.0.5:9100")
            try:
                self._port = int(port or 9100)
            except ValueError:
                raise PrinterError(f"printer URL {url.raw!r}: port {port!r} is not a number") from None
            self._host = host.strip("[]")
        elif url.scheme == "escpos+serial":
            url.check_known(("baudrate", "timeout", "status"))
            if not url.target:
                raise PrinterError(f"printer URL {url.raw!r} needs a device, such as escpos+serial:///dev/ttyS0?baudrate=19200")
            self._device = url.target if url.target.startswith("/") else "/" + url.target
            self._baudrate = int(url.number("baudrate", 9600))
        elif url.scheme == "escpos+usb":
            url.check_known(("timeout", "status"))
            vid, _, pid = url.target.partition(":")
            try:
                self._vid, self._pid = int(vid, 16), int(pid, 16)
            except ValueError:
                raise PrinterError(f"printer URL {url.raw!r} needs VID:PID in hex, such as escpos+usb://04b8:0e15") from None

    # ------------------------------------------------------------ link

    def _connect(self) -> Any:
        try:
            if self.parsed.scheme == "escpos+tcp":
                from escpos.printer import Network

                link = Network(self._host, self._port, timeout=self.timeout_s, profile=self.profile)
                link.open()
            elif self.parsed.scheme == "escpos+serial":
                from escpos.printer import Serial

                link = Serial(self._device, baudrate=self._baudrate, timeout=self.timeout_s, dsrdtr=False, profile=self.profile)
                link.open()
                link.device.write_timeout = self.timeout_s
            else:
                try:
                    import usb.core  # noqa: F401
                except ImportError:
                    raise PrinterError("escpos+usb:// needs the pyusb package (pip install pyusb) and libusb") from None
                from escpos.printer import Usb

                link = Usb(self._vid, self._pid, timeout=int(self.timeout_s * 1000), profile=self.profile)
                link.open()
        except PrinterError:
            raise
        except Exception as exc:
            raise PrinterError(f"{self.url}: cannot connect: {_reason(exc)}") from None
        return link

    def _ask(self, link: Any, query: bytes, wait: float = STATUS_WAIT_S) -> int | None:
        try:
            link._raw(query)
            if self.parsed.scheme == "escpos+tcp":
                link.device.settimeout(wait)
                try:
                    data = link.device.recv(1)
                finally:
                    link.device.settimeout(self.timeout_s)
            elif self.parsed.scheme == "escpos+serial":
                link.device.timeout = wait
                try:
                    data = link.device.read(1)
                finally:
                    link.device.timeout = self.timeout_s
            else:
                data = link._read()
        except TimeoutError:
            return None
        except Exception as exc:
            raise PrinterError(f"{self.url}: status query failed: {_reason(exc)}") from None
        return data[0] if data else None

    def _status_on(self, link: Any) -> PrinterStatus:
        printer = self._ask(link, DLE_EOT_PRINTER)
        if printer is None:
            return PrinterStatus(detail=NO_ANSWER)
        return parse_status(printer, self._ask(link, DLE_EOT_OFFLINE), self._ask(link, DLE_EOT_PAPER))

    # ------------------------------------------------------------ protocol

    def status(self) -> PrinterStatus:
        link = self._connect()
        try:
            if not self.query_status:  # a printer that answers DLE EOT wrongly, or a link that must not be read
                return PrinterStatus(detail="connected; status not asked (status=0 in the URL)")
            return self._status_on(link)
        finally:
            _close(link)

    def print(self, payload: Payload) -> None:
        data = payload.escpos()
        link = self._connect()
        try:
            answered = False
            if self.query_status:
                state = self._status_on(link)
                if state.detail == NO_ANSWER:
                    if self._answers:
                        raise PrinterError(f"{self.url}: the printer does not answer, though it did before: it may be hung,"
                                           " jammed or busy (the receipt waits in the queue)")
                else:
                    answered = self._answers = True
                    if not state.ready:
                        raise PrinterError(f"{self.url}: {state.problem()}")
            try:
                link._raw(data)
                if self.parsed.scheme == "escpos+serial":
                    link.device.flush()
            except Exception as exc:
                raise PrinterError(f"{self.url}: write failed: {_reason(exc)}") from None
            # The bytes sit in the link's buffers until the printer reads them: a query sent after them is
            # answered only once it has. A printer that stopped reading would otherwise count as printed.
            # It reads as it prints: a slow one (a 9600-baud line moves about 1 KB/s) gets a second per KB.
            wait = self.timeout_s + len(data) / 1000
            if answered and self._ask(link, DLE_EOT_PRINTER, wait=wait) is None:
                raise PrinterUnsure(f"{self.url}: the printer did not confirm the whole receipt (no answer after it within"
                                    f" {wait:.0f} s); it is printed again, marked COPY, once the printer answers")
        finally:
            _close(link)

    def close(self) -> None:
        """Links live for one job only."""


def _close(link: Any) -> None:
    # Closing a link that already broke must not hide the first error.
    with contextlib.suppress(Exception):
        link.close()


_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused: is the printer on, and at this address and port?",
    errno.EHOSTUNREACH: "no route to the printer's address",
    errno.ENETUNREACH: "no route to the printer's network",
    errno.ENOENT: "no such device",
    errno.EACCES: "permission denied (the till's user cannot open the device)",
}


def _reason(exc: BaseException) -> str:
    """Why the link failed, in words a store manager can act on (python-escpos wraps the OS error in its own)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (TimeoutError, socket.timeout)):
            return "timed out"
        if isinstance(seen, OSError) and seen.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[seen.errno]
        seen = seen.__cause__ or seen.__context__
    text = " ".join(str(exc).split())
    for code, words in _ERRNO_WORDS.items():
        if f"[Errno {code}]" in text:
            return words
    return text or type(exc).__name__


def open(url: PrinterUrl, *, profile: str, paper_mm: int, timeout_s: float) -> EscposLinkPrinter:
    return EscposLinkPrinter(url, profile=profile, paper_mm=paper_mm, timeout_s=timeout_s)
