"""The card reader seam: what every reader driver yields.

A reader runs in a worker thread: `events(stop)` blocks, yields events as they
happen, and returns when `stop` is set. The UI and `loyalty reader test`
consume the same events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol


class ReaderError(Exception):
    """A reader that cannot be opened or used: bad URL, missing library, no device."""


@dataclass(frozen=True, slots=True)
class CardPresent:
    card_id: str  # normalized: uid:, ndef:, em:, code: (ledger.cards)
    reader: str
    technology: str  # pcsc, nfc, em4100, keyboard, sim, ...
    at: float  # time.monotonic() when the event was made
    uid: bytes | None = None
    atr: bytes | None = None
    ndef: tuple[str, ...] = ()  # decoded NDEF text/URI records
    signature: str = "none"  # none, valid, invalid (signed card numbers)
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # The card number as read (NDEF record or barcode text), signature included;
    # the signature policy checks this, card_id carries the number alone.
    raw: str = ""
    # time.monotonic() when the stack (pcscd, nfcpy, the serial line) reported
    # the card: `at - detected` is the time spent in this driver.
    detected: float | None = None
    io_ms: float = 0.0  # of that, time spent waiting on card exchanges
    # Signature policy `require` and the number is unsigned or its signature invalid:
    # the card must not be used (the reason is in `warnings`).
    refused: bool = False


@dataclass(frozen=True, slots=True)
class CardRemoved:
    reader: str
    at: float


@dataclass(frozen=True, slots=True)
class CardError:
    """A card seen but not read (silent card, unreadable data, an unusable number): no tap."""

    reader: str
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class ReaderConnected:
    reader: str
    at: float


@dataclass(frozen=True, slots=True)
class ReaderDisconnected:
    reader: str
    at: float
    reason: str = ""


ReaderEvent = CardPresent | CardRemoved | CardError | ReaderConnected | ReaderDisconnected


class CardReader(Protocol):
    name: str

    def events(self, stop: threading.Event) -> Iterator[ReaderEvent]: ...

    def close(self) -> None: ...
