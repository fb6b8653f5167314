"""What several drivers share: URL options, card ids from text, time-based debounce."""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass, field

from ledger.cards import KINDS, CardIdError, normalize

from .. import device_url, identity
from .base import CardPresent, ReaderError


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    scheme: str
    target: str  # what follows "scheme://" (or "scheme:"), before "?"
    options: dict[str, str] = field(default_factory=dict)

    def text(self, name: str, default: str) -> str:
        return self.options.get(name, default)

    def number(self, name: str, default: float, *, minimum: float = 0.0, maximum: float = 3600.0) -> float:
        value = self.options.get(name)
        if value is None:
            return default
        try:
            result = float(value)
        except ValueError:
            raise ReaderError(f"reader URL option {name}={value!r} must be a number") from None
        if not minimum <= result <= maximum:  # also nan and inf
            raise ReaderError(f"reader URL option {name}={value!r} must be from {_plain(minimum)} to {_plain(maximum)}")
        return result

    def integer(self, name: str, default: int, *, minimum: int = 0, maximum: int = 3_600_000) -> int:
        value = self.number(name, default, minimum=minimum, maximum=maximum)
        if value != int(value):
            raise ReaderError(f"reader URL option {name}={self.options[name]!r} must be a whole number")
        return int(value)

    def check_known(self, known: tuple[str, ...]) -> None:
        for name in self.options:
            if name not in known:
                hint = f"; known: {', '.join(known)}" if known else "; this reader takes none"
                raise ReaderError(f"unknown option {name!r} in reader URL {self.scheme}:{hint}")


def _plain(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:g}"


def parse_url(url: str) -> ParsedUrl:
    try:
        parts = device_url.split(url)
    except ValueError as exc:
        raise ReaderError(f"reader URL: {exc}") from None
    if parts is None:
        raise ReaderError(f"reader URL {url!r} has no scheme (such as pcsc:// or sim://)")
    return ParsedUrl(*parts)


def card_from_text(kind: str, text: str) -> str:
    """The normalized id for a number read as text (NDEF or barcode), signature removed."""
    number, _ = identity.split(text.strip())
    return normalize(f"{kind}:{number}")


def card_and_raw(text: str, default_kind: str = "code") -> tuple[str, str]:
    """(normalized id, number text for the signature check) for a typed or scripted id.

    ``uid:``/``em:``/``ndef:``/``code:`` prefixes are honoured; bare text is `default_kind`.
    """
    kind, sep, value = text.strip().partition(":")
    if not sep or kind.lower() not in KINDS:
        if sep:
            normalize(text)  # a near miss of a card type ("uld:04A1...") is refused, as when typed: not a second card
        kind, value = default_kind, text.strip()
    kind = kind.lower()
    if kind in ("ndef", "code"):
        return card_from_text(kind, value), value.strip()
    return normalize(f"{kind}:{value}"), ""


def ndef_number(records: tuple[tuple[str, str], ...]) -> str | None:
    """The card number among decoded NDEF records: first text record, else a URI's last path segment."""
    for kind, value in records:
        if kind == "text" and value.strip():
            return value.strip()
    for kind, value in records:
        if kind == "uri":
            parts = urllib.parse.urlsplit(value)
            segment = urllib.parse.unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
            if segment.strip():
                return segment.strip()
    return None


def present_from_ndef(
    records: tuple[tuple[str, str], ...],
    *,
    reader: str,
    technology: str,
    uid: bytes | None,
    atr: bytes | None = None,
    detected: float | None = None,
    io_ms: float = 0.0,
) -> CardPresent:
    """A CardPresent from what a tag held: the NDEF number if any, else the UID."""
    number = ndef_number(records)
    warnings: tuple[str, ...] = ()
    card_id = ""
    raw = ""
    if number is not None:
        try:
            card_id = card_from_text("ndef", number)
            raw = number
        except CardIdError as exc:
            warnings = (f"NDEF number unusable ({exc}); using the UID",)
    if not card_id:
        if uid is None:
            raise ReaderError("card has neither a usable NDEF number nor a UID")
        card_id = _uid_card(uid)
    return CardPresent(
        card_id=card_id,
        reader=reader,
        technology=technology,
        at=time.monotonic(),
        uid=uid,
        atr=atr,
        ndef=tuple(value for kind, value in records if kind in ("text", "uri")),
        warnings=warnings,
        raw=raw,
        detected=detected,
        io_ms=io_ms,
    )


def _uid_card(uid: bytes) -> str:
    if len(uid) in (4, 7, 10):
        return normalize("uid:" + uid.hex())
    # Some cards (FeliCa IDm: 8 bytes, random 4-byte UIDs) fall outside ISO 14443 sizes;
    # keep them as a code so the card still works.
    return normalize("code:UID-" + uid.hex().upper())


class Debouncer:
    """Time-based presence for readers that only repeat what they see (serial, scanners).

    A card seen again within `hold` seconds of its last sighting is the same tap;
    silence longer than `hold` means it left.
    """

    def __init__(self, hold: float):
        self.hold = hold
        self.current: str | None = None
        self.last_seen = 0.0

    def seen(self, card: str, now: float) -> tuple[bool, bool]:
        """(a new tap, a removal of the previous card to report first)."""
        if card == self.current and now - self.last_seen <= self.hold:
            self.last_seen = now
            return False, False
        removed = self.current is not None
        self.current, self.last_seen = card, now
        return True, removed

    def expired(self, now: float) -> bool:
        """True once, when the present card has been silent for longer than `hold`."""
        if self.current is not None and now - self.last_seen > self.hold:
            self.current = None
            return True
        return False

    def timeout(self, now: float, default: float) -> float:
        """How long a read may wait before `expired` can change."""
        if self.current is None:
            return default
        return max(0.0, min(default, self.last_seen + self.hold - now + 0.001))
