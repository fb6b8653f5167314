"""Card readers, chosen by URL (see base.py for the protocol and events).

`open_reader("pcsc://")` imports the driver module for the URL's scheme only
then, so a till without pyscard or nfcpy still runs the other readers.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import Any

from .base import (
    CardError,
    CardPresent,
    CardReader,
    CardRemoved,
    ReaderConnected,
    ReaderDisconnected,
    ReaderError,
    ReaderEvent,
)
from .common import parse_url

__all__ = [
    "SCHEMES",
    "CardError",
    "CardPresent",
    "CardReader",
    "CardRemoved",
    "Reader",
    "ReaderConnected",
    "ReaderDisconnected",
    "ReaderError",
    "ReaderEvent",
    "open_reader",
]

# scheme -> module; each module has `open(url: ParsedUrl, *, debounce_ms: int) -> CardReader`.
SCHEMES: dict[str, str] = {
    "pcsc": "drivers.readers.pcsc",
    "nfc": "drivers.readers.nfcpy_reader",
    "serial": "drivers.readers.serialport",
    "keyboard": "drivers.readers.keyboard",
    "sim": "drivers.readers.sim",
}

EXAMPLES: dict[str, str] = {
    "pcsc": "pcsc:// or pcsc://ACS ACR122U",
    "nfc": "nfc:usb, nfc:usb:054c:06c1 or nfc:udp:127.0.0.1:54321",
    "serial": "serial:///dev/ttyUSB0?protocol=rdm6300",
    "keyboard": "keyboard://",
    "sim": "sim://",
}


class Reader:
    """A driver with the signature policy applied to what it reads.

    Other attributes are the driver's: `feed` (keyboard://), `tap` and `remove`
    (sim://). A reader without them has no such attribute, so callers can ask
    with getattr() whether typed ids can go through the reader.
    """

    def __init__(self, driver: CardReader, policy: Any = None):
        self.driver = driver
        self.policy = policy
        self.name = driver.name

    def events(self, stop: threading.Event) -> Iterator[ReaderEvent]:
        for event in self.driver.events(stop):
            if isinstance(event, CardPresent) and self.policy is not None:
                yield self.policy.apply(event)
            else:
                yield event

    def close(self) -> None:
        self.driver.close()

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr in ("driver", "policy", "name"):
            raise AttributeError(attr)
        try:
            return getattr(self.driver, attr)
        except AttributeError:
            raise AttributeError(f"reader {self.name} has no {attr!r} (feed: keyboard://; tap, remove: sim://)") from None


def check_url(url: str) -> None:
    """ReaderError unless `url` names a reader scheme this terminal has (nothing is opened)."""
    parsed = parse_url(url)
    if parsed.scheme not in SCHEMES:
        known = "; ".join(EXAMPLES[s] for s in SCHEMES)
        raise ReaderError(f"unknown reader scheme {parsed.scheme!r} in {url!r}; known: {known}")


def open_reader(
    url: str,
    *,
    require_signed: str = "off",
    public_keys: tuple[str, ...] | list[str] = (),
    debounce_ms: int = 800,
) -> Reader:
    """The reader for `url`, its events checked by the signature policy.

    Raises ReaderError for an unknown scheme (naming the known ones), bad
    options, or a missing hardware library.
    """
    check_url(url)
    parsed = parse_url(url)
    module = importlib.import_module(SCHEMES[parsed.scheme])
    from .. import identity

    try:
        policy = identity.SignaturePolicy(require_signed, public_keys)
    except (ValueError, identity.KeyFormatError) as exc:
        raise ReaderError(str(exc)) from None
    driver: CardReader = module.open(parsed, debounce_ms=debounce_ms)
    return Reader(driver, policy)


def open_configured(config: Any) -> Reader:
    """The reader of a `ledger.config.ReaderConfig`."""
    return open_reader(
        config.url,
        require_signed=config.require_signed,
        public_keys=config.public_keys,
        debounce_ms=config.debounce_ms,
    )
