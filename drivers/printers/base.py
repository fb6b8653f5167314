"""What every receipt printer offers: take a print job, say how it is.

A driver never sees a receipt document: it gets a `Payload` whose forms
(ESC/POS bytes, text, PNG) are rendered only when asked, so a preview never
pays for ESC/POS and a thermal printer never pays for a PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PrinterError(Exception):
    """The printer could not take the job (offline, cover open, no paper, timeout, bad URL)."""

    maybe_printed = False  # True: the job went out and may have printed in full; printed again, it says COPY


class PrinterUnsure(PrinterError):
    """The job went out but the printer did not confirm it: it may have printed, or be stuck in the printer."""

    maybe_printed = True


class Payload(Protocol):
    """A print job's forms; each is rendered when a driver asks for it."""

    @property
    def title(self) -> str: ...

    def escpos(self) -> bytes: ...

    def text(self) -> str: ...

    def png(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class RawPayload:
    """Bytes that are already ESC/POS (a test page, a job rendered elsewhere)."""

    data: bytes
    title: str = "raw"
    preview_text: str = ""

    def escpos(self) -> bytes:
        return self.data

    def text(self) -> str:
        return self.preview_text

    def png(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What DLE EOT told us; None where the printer did not say (one-way links, no answer)."""

    online: bool | None = None
    cover_open: bool | None = None
    paper_out: bool | None = None
    paper_near_end: bool | None = None
    error: bool | None = None
    detail: str = ""

    @property
    def ready(self) -> bool:
        """False only when the printer said something that stops printing."""
        return not (self.online is False or self.cover_open or self.paper_out or self.error)

    def problem(self) -> str:
        if self.cover_open:
            return "cover open"
        if self.paper_out:
            return "paper out"
        if self.error:
            return "printer error"
        if self.online is False:
            return "offline"
        return ""

    def as_json(self) -> dict[str, object]:
        return {
            "online": self.online,
            "cover_open": self.cover_open,
            "paper_out": self.paper_out,
            "paper_near_end": self.paper_near_end,
            "error": self.error,
            "ready": self.ready,
            "detail": self.detail,
        }


class ReceiptPrinter(Protocol):
    url: str
    profile: str
    paper_mm: int

    def print(self, payload: Payload) -> None:
        """Print the job or raise PrinterError; returns once every byte was handed over."""
        ...

    def status(self) -> PrinterStatus: ...

    def close(self) -> None: ...


# DLE EOT n: real-time status (printer, offline cause, roll paper sensor).
DLE_EOT_PRINTER = b"\x10\x04\x01"
DLE_EOT_OFFLINE = b"\x10\x04\x02"
DLE_EOT_PAPER = b"\x10\x04\x04"
STATUS_QUERIES = DLE_EOT_PRINTER + DLE_EOT_OFFLINE + DLE_EOT_PAPER


def _valid(byte: int) -> bool:
    # Every status byte has bits 1 and 4 set and bits 0 and 7 clear.
    return byte & 0x93 == 0x12


def parse_status(printer: int | None, offline: int | None, paper: int | None) -> PrinterStatus:
    """Decode the three DLE EOT answers; a missing or malformed one says nothing."""
    p = printer if printer is not None and _valid(printer) else None
    o = offline if offline is not None and _valid(offline) else None
    r = paper if paper is not None and _valid(paper) else None
    if p is None and o is None and r is None:
        return PrinterStatus(detail="no status answer")
    status = PrinterStatus(
        online=None if p is None else not (p & 0x08),
        cover_open=None if o is None else bool(o & 0x04),
        paper_out=None if r is None and o is None else bool((r or 0) & 0x60) or bool((o or 0) & 0x20),
        paper_near_end=None if r is None else bool(r & 0x0C),
        error=None if o is None else bool(o & 0x40),
    )
    problem = status.problem()
    return PrinterStatus(status.online, status.cover_open, status.paper_out, status.paper_near_end, status.error,
                         problem or ("paper near end" if status.paper_near_end else "ready"))
