"""`nfc:usb[:vid:pid]` and `nfc:udp:HOST:PORT`: NFC readers driven by nfcpy.

nfcpy talks to PN53x / RC-S380 / ACR122U chips over USB itself (so pcscd must
not hold the same reader), and to a tag simulated over UDP for tests. Options:
`targets=106A,212F` (what to poll for) and `retry_ms` (reopening a device that
was unplugged).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from .base import CardError, CardRemoved, ReaderConnected, ReaderDisconnected, ReaderError, ReaderEvent
from .common import ParsedUrl, present_from_ndef
from .ndefparse import NdefError, decode_message, warm

log = logging.getLogger(__name__)

DEFAULT_TARGETS = {"usb": ("106A", "106B", "212F"), "udp": ("106A", "212F")}
BRTY = ("106A", "106B", "212F", "424F", "212A", "424A")


def _nfc() -> Any:
    try:
        import nfc
        import nfc.clf
    except ImportError as exc:
        raise ReaderError(f"nfc: readers need nfcpy (pip install nfcpy): {exc}") from None
    return nfc


class NfcReader:
    technology = "nfc"

    def __init__(self, path: str, *, targets: tuple[str, ...], retry_ms: int = 500, presence_ms: int = 50):
        self.path = path
        self.name = f"nfc:{path}"
        self.targets = targets
        self.retry = retry_ms / 1000
        self.presence = presence_ms / 1000
        self.nfc = _nfc()
        self._tapped = False
        warm()

    def events(self, stop: threading.Event) -> Iterator[ReaderEvent]:
        nfc = self.nfc
        said_down = False
        while not stop.is_set():
            try:
                clf = nfc.ContactlessFrontend(self.path)
            except (OSError, nfc.clf.CommunicationError) as exc:
                if not said_down:
                    said_down = True
                    yield ReaderDisconnected(self.name, time.monotonic(), f"cannot open {self.path}: {exc}")
                stop.wait(self.retry)
                continue
            said_down = False
            yield ReaderConnected(self.name, time.monotonic())
            try:
                yield from self._poll(clf, stop)
            except (OSError, nfc.clf.CommunicationError) as exc:
                said_down = True
                if self._tapped:  # the device went away with a card on it
                    self._tapped = False
                    yield CardRemoved(self.name, time.monotonic())
                yield ReaderDisconnected(self.name, time.monotonic(), f"{self.path}: {exc}")
                stop.wait(self.retry)
            finally:
                try:
                    clf.close()
                except (OSError, nfc.clf.CommunicationError) as exc:
                    log.debug("closing %s: %s", self.path, exc)

    def _poll(self, clf: Any, stop: threading.Event) -> Iterator[ReaderEvent]:
        discovered: list[float] = []

        def on_discover(target: Any) -> bool:
            discovered.append(time.monotonic())
            return True

        options = {
            "targets": list(self.targets),
            "on-discover": on_discover,
            "on-connect": lambda tag: False,  # hand the tag back: presence is watched here
            "iterations": 1,
            "interval": 0.01,
            "beep-on-connect": False,
        }
        while not stop.is_set():
            discovered.clear()
            tag = clf.connect(rdwr=options, terminate=stop.is_set)
            if tag is False:
                if stop.is_set():  # nfcpy also returns False on the Ctrl-C that stopped us: not a reader fault
                    return
                raise OSError("the reader stopped answering")  # nfcpy logs and returns False on IOError
            if tag is None or stop.is_set():
                continue
            detected = discovered[0] if discovered else time.monotonic()
            event = self._read(tag, detected)
            if event is None:
                continue
            self._tapped = not isinstance(event, CardError)
            yield event
            # One tap per stay on the reader, even for a card that could not be read.
            while not stop.is_set() and self._present(tag):
                stop.wait(self.presence)
            if self._tapped:
                self._tapped = False
                yield CardRemoved(self.name, time.monotonic())

    def _present(self, tag: Any) -> bool:
        nfc = self.nfc
        try:
            return bool(tag.is_present)
        except nfc.clf.CommunicationError:
            return False

    def _octets(self, tag: Any) -> bytes | None:
        nfc = self.nfc
        try:
            ndef = tag.ndef
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError):
            return None
        return bytes(ndef.octets) if ndef is not None else None

    def _read(self, tag: Any, detected: float) -> Any:
        """The tap, a CardError, or None when the tag left before it was read in full."""
        t0 = time.perf_counter()
        uid = bytes(tag.identifier)
        octets = self._octets(tag)
        if octets is None and self._present(tag):
            # nfcpy answers "no NDEF" both for a blank tag and for a read cut short:
            # read again before taking the UID as this card's id.
            octets = self._octets(tag)
        if not self._present(tag):
            return None
        io_ms = (time.perf_counter() - t0) * 1000
        try:
            records = decode_message(octets) if octets else ()
        except NdefError as exc:
            return CardError(self.name, time.monotonic(), f"card not readable: {exc}")
        kind = type(tag).__name__
        return present_from_ndef(
            records,
            reader=self.name,
            technology=f"nfc/{getattr(tag, 'type', kind)}",
            uid=uid,
            detected=detected,
            io_ms=io_ms,
        )

    def close(self) -> None:
        pass


def open(url: ParsedUrl, *, debounce_ms: int = 800) -> NfcReader:
    url.check_known(("targets", "retry_ms", "presence_ms"))
    path = url.target.strip()
    kind = path.split(":", 1)[0]
    if kind not in DEFAULT_TARGETS:
        raise ReaderError(f"nfc reader URL must be nfc:usb[:VID:PID] or nfc:udp:HOST:PORT, not nfc:{path!r}")
    if kind == "udp" and path.count(":") != 2:
        raise ReaderError(f"nfc:udp needs HOST:PORT, as in nfc:udp:127.0.0.1:54321 (got nfc:{path})")
    if kind == "udp" and not (path.rsplit(":", 1)[1].isdecimal() and 0 < int(path.rsplit(":", 1)[1]) < 65536):
        raise ReaderError(f"nfc:udp port must be a number from 1 to 65535 (got nfc:{path})")
    if kind == "udp" and _service_name(int(path.rsplit(":", 1)[1])):
        # nfcpy's udp driver turns the port into that name and then fails to read it as a number
        raise ReaderError(f"nfc:udp port {path.rsplit(':', 1)[1]} is the {_service_name(int(path.rsplit(':', 1)[1]))!r} service"
                          " of /etc/services, which nfcpy cannot use: choose another port")
    if kind == "usb" and path != "usb" and not re.fullmatch(r"usb:[0-9A-Fa-f]{4}(:[0-9A-Fa-f]{4})?|usb:\d{3}(:\d{3})?", path):
        raise ReaderError(f"nfc:usb takes VID:PID in hex (nfc:usb:054c:06c1) or BUS:DEVICE (nfc:usb:001:004), not nfc:{path}")
    raw_targets = url.text("targets", ",".join(DEFAULT_TARGETS[kind]))
    targets = tuple(t.strip().upper() for t in raw_targets.split(",") if t.strip())
    for t in targets:
        if t not in BRTY:
            raise ReaderError(f"nfc target {t!r} is not one of {', '.join(BRTY)}")
    if not targets:
        raise ReaderError("nfc reader needs at least one target type")
    return NfcReader(
        path,
        targets=targets,
        retry_ms=url.integer("retry_ms", 500, minimum=10, maximum=600_000),
        presence_ms=url.integer("presence_ms", 50, minimum=10, maximum=60_000),
    )


def _service_name(port: int) -> str:
    import socket

    try:
        return socket.getservbyport(port)
    except OSError:
        return ""
