"""`keyboard://`: HID readers and barcode scanners that type the number + Enter.

The UI owns the keyboard, so it hands each finished line to `feed(text)`
(from any thread). A scanner that reads the same code twice within the
debounce time gives one tap.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from ledger.cards import CardIdError

from .base import CardError, CardPresent, CardRemoved, ReaderConnected, ReaderEvent
from .common import Debouncer, ParsedUrl, card_and_raw


class KeyboardReader:
    technology = "keyboard"

    def __init__(self, name: str = "keyboard", debounce_ms: int = 800, kind: str = "code"):
        self.name = name
        self.kind = kind
        self._lines: queue.Queue[tuple[str, float]] = queue.Queue()
        self._debounce = Debouncer(debounce_ms / 1000)
        self._lock = threading.Lock()
        self._partial = ""

    def feed(self, text: str) -> None:
        """Typed text, whole lines or a few keys at a time: each CR or LF ends a number.

        Text after the last line end waits for the rest of its line. Blank lines are ignored.
        """
        now = time.monotonic()
        with self._lock:
            self._partial += text
            *lines, self._partial = self._partial.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            for line in lines:
                if line.strip():
                    self._lines.put((line.strip(), now))

    def events(self, stop: threading.Event) -> Iterator[ReaderEvent]:
        yield ReaderConnected(self.name, time.monotonic())
        while not stop.is_set():
            try:
                line, fed = self._lines.get(timeout=self._debounce.timeout(time.monotonic(), 0.05))
            except queue.Empty:
                if self._debounce.expired(time.monotonic()):
                    yield CardRemoved(self.name, time.monotonic())
                continue
            try:
                card, raw = card_and_raw(line, self.kind)
            except CardIdError as exc:
                yield CardError(self.name, time.monotonic(), f"unusable card number {line[:40]!r}: {exc}")
                continue
            new, removed = self._debounce.seen(card, fed)
            if removed:
                yield CardRemoved(self.name, time.monotonic())
            if new:
                yield CardPresent(
                    card, self.name, self.technology, time.monotonic(), raw=raw, detected=fed
                )

    def close(self) -> None:
        pass


def open(url: ParsedUrl, *, debounce_ms: int = 800) -> KeyboardReader:
    url.check_known(("name", "debounce_ms"))
    return KeyboardReader(url.text("name", "keyboard"), url.integer("debounce_ms", debounce_ms, maximum=60_000))
