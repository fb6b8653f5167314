"""`sim://`: a reader with no hardware, for the demo and tests.

Another thread calls `tap(card_id)` and `remove()`; `sim://?cards=A,B&every=3`
also taps the listed cards in turn (each held `hold` seconds), for the demo.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from ledger.cards import CardIdError

from .base import CardPresent, CardRemoved, ReaderConnected, ReaderError, ReaderEvent
from .common import ParsedUrl, card_and_raw


class SimReader:
    technology = "sim"

    def __init__(self, name: str = "sim", script: tuple[str, ...] = (), every: float = 3.0, hold: float = 0.5):
        self.name = name
        self.script = script
        self.every = every
        self.hold = hold
        self._commands: queue.Queue[tuple[str, str, str]] = queue.Queue()
        self._present: str | None = None

    def tap(self, card_id: str) -> None:
        """Put a card on the reader (replacing any card there).

        `card_id` is a card id, or ``ndef:``/``code:`` + a signed number text.
        """
        self._commands.put(("tap", *card_and_raw(card_id)))

    def remove(self) -> None:
        self._commands.put(("remove", "", ""))

    def events(self, stop: threading.Event) -> Iterator[ReaderEvent]:
        yield ReaderConnected(self.name, time.monotonic())
        next_script = time.monotonic() + (self.every if self.script else 1e18)
        script_index = 0
        remove_at: float | None = None
        while not stop.is_set():
            now = time.monotonic()
            wait = min(0.05, max(0.0, next_script - now))
            if remove_at is not None:
                wait = min(wait, max(0.0, remove_at - now))
            try:
                cmd, card, raw = self._commands.get(timeout=wait)
            except queue.Empty:
                now = time.monotonic()
                if remove_at is not None and now >= remove_at:
                    remove_at = None
                    cmd, card, raw = "remove", "", ""
                elif now >= next_script:
                    text = self.script[script_index % len(self.script)]
                    script_index += 1
                    next_script = now + self.every
                    remove_at = now + self.hold
                    cmd = "tap"
                    card, raw = card_and_raw(text)
                else:
                    continue
            if cmd == "remove":
                if self._present is not None:
                    self._present = None
                    yield CardRemoved(self.name, time.monotonic())
                continue
            if self._present == card:
                continue  # the same card still on the reader: one tap
            if self._present is not None:
                yield CardRemoved(self.name, time.monotonic())
            self._present = card
            now = time.monotonic()
            uid = bytes.fromhex(card[4:]) if card.startswith("uid:") else None
            ndef = (raw,) if card.startswith("ndef:") else ()
            yield CardPresent(card, self.name, self.technology, now, uid=uid, ndef=ndef, raw=raw, detected=now)

    def close(self) -> None:
        pass


def open(url: ParsedUrl, *, debounce_ms: int = 800) -> SimReader:
    url.check_known(("cards", "every", "hold", "name"))
    cards = tuple(c.strip() for c in url.text("cards", "").split(",") if c.strip())
    for card in cards:
        try:
            card_and_raw(card)
        except CardIdError as exc:
            raise ReaderError(f"sim:// cards: {exc}") from None
    return SimReader(url.text("name", "sim"), cards, url.number("every", 3.0, minimum=0.01), url.number("hold", 0.5))
