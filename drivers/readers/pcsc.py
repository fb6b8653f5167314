"""`pcsc://[reader name]`: contactless (and contact) readers through pcscd, with pyscard.

Own monitor loop on `SCardGetStatusChange` instead of pyscard's CardMonitor,
which dies for good when pcscd goes away: here a lost service is re-established
every `retry_ms` and readers plugged in later are picked up through the PnP
notification. Card I/O runs on a separate worker thread and context with a
deadline on every exchange: a silent card blocks `SCardTransmit` for ever
(pcsc-lite has no timeout), and it must not block the monitor.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .apdu import CardProtocolError, is_storage_atr, is_type2_atr, read_type2_ndef, read_type4_ndef, read_uid
from .base import (
    CardError,
    CardPresent,
    CardRemoved,
    ReaderConnected,
    ReaderDisconnected,
    ReaderError,
    ReaderEvent,
)
from .common import ParsedUrl, present_from_ndef
from .ndefparse import NdefError, decode_message, warm

log = logging.getLogger(__name__)

PNP = "\\\\?PnP?\\Notification"


def _scard() -> Any:
    try:
        from smartcard import scard
    except ImportError as exc:
        raise ReaderError(f"pcsc:// needs pyscard (pip install pyscard): {exc}") from None
    return scard


class ExchangeTimeout(Exception):
    """The card (or pcscd) did not answer within the deadline."""


class CardGone(Exception):
    """The exchange failed at the PC/SC level: the card left, or pcscd went away."""

    def __init__(self, what: str, code: int):
        super().__init__(f"{what}: {code & 0xFFFFFFFF:#010x}")
        self.code = code


# What a card taken away (or a reader / pcscd going away) mid-read looks like: no event for these.
_GONE = frozenset(
    {
        0x80100069,  # SCARD_W_REMOVED_CARD
        0x8010000C,  # SCARD_E_NO_SMARTCARD
        0x80100016,  # SCARD_E_NOT_TRANSACTED (vpcd: the card's socket closed mid-APDU)
        0x80100068,  # SCARD_W_RESET_CARD
        0x80100067,  # SCARD_W_UNPOWERED_CARD
        0x80100066,  # SCARD_W_UNRESPONSIVE_CARD
        0x8010002F,  # SCARD_E_COMM_DATA_LOST
        0x80100017,  # SCARD_E_READER_UNAVAILABLE
        0x8010001D,  # SCARD_E_NO_SERVICE
        0x8010001E,  # SCARD_E_SERVICE_STOPPED
        0x80100003,  # SCARD_E_INVALID_HANDLE
        0x80100013,  # SCARD_F_COMM_ERROR
        0x80100009,  # SCARD_E_UNKNOWN_READER
    }
)


class _ServiceLost(Exception):
    pass


class _IoWorker:
    """One thread and one PC/SC context for card I/O. Abandoned (never joined) when an exchange hangs."""

    def __init__(self, scard: Any, name: str):
        self.scard = scard
        self.stuck = False
        self.ctx: Any = None
        self.jobs: queue.Queue[tuple[Callable[[Any], Any], queue.Queue[tuple[bool, Any]]] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"pcsc-io {name}")
        self.thread.start()

    def _run(self) -> None:
        sc = self.scard
        try:
            while True:
                job = self.jobs.get()
                if job is None:
                    return
                fn, box = job
                try:
                    if self.ctx is None:
                        hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
                        if hr != sc.SCARD_S_SUCCESS:
                            raise CardGone("establish context", hr)
                        self.ctx = ctx
                    box.put((True, fn(self.ctx)))
                except BaseException as exc:
                    box.put((False, exc))
        finally:
            if self.ctx is not None:
                sc.SCardReleaseContext(self.ctx)
                self.ctx = None

    def call(self, fn: Callable[[Any], Any], timeout: float) -> Any:
        if self.stuck:
            raise ExchangeTimeout("an earlier exchange is still hanging")
        box: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
        self.jobs.put((fn, box))
        try:
            ok, value = box.get(timeout=timeout)
        except queue.Empty:
            self.stuck = True
            self.jobs.put(None)  # the thread ends (and frees its context) once the call returns
            raise ExchangeTimeout(f"no answer within {timeout * 1000:.0f} ms") from None
        if not ok:
            if isinstance(value, CardGone):
                self.forget_context(value.code)
            raise value
        return value

    def forget_context(self, code: int) -> None:
        sc = self.scard
        if code in (sc.SCARD_E_NO_SERVICE, sc.SCARD_E_INVALID_HANDLE, sc.SCARD_E_SERVICE_STOPPED):
            # Old contexts never recover once pcscd restarts: make a new one on the next call.
            def drop(ctx: Any) -> None:
                sc.SCardReleaseContext(ctx)
                self.ctx = None

            self.jobs.put((drop, queue.Queue(maxsize=1)))

    def close(self) -> None:
        self.jobs.put(None)


@dataclass
class _Slot:
    state: int = 0
    present: bool = False
    tapped: bool = False
    io: _IoWorker | None = None


class PcscReader:
    technology = "pcsc"

    def __init__(self, wanted: str = "", *, timeout_ms: int = 500, poll_ms: int = 250, retry_ms: int = 100):
        self.wanted = wanted
        self.name = f"pcsc://{wanted}" if wanted else "pcsc://"
        self.timeout = timeout_ms / 1000
        self.poll_ms = poll_ms
        self.retry = retry_ms / 1000
        self.scard = _scard()
        self._ctx: Any = None
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        warm()

    # ------------------------------------------------------------------ loop

    def events(self, stop: threading.Event) -> Iterator[ReaderEvent]:
        sc = self.scard
        service_down_said = False
        while not stop.is_set():
            hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
            if hr != sc.SCARD_S_SUCCESS:
                if not service_down_said:
                    service_down_said = True
                    yield ReaderDisconnected(self.name, time.monotonic(), f"PC/SC service not available: {_msg(sc, hr)}")
                stop.wait(self.retry)
                continue
            service_down_said = False
            with self._lock:
                self._ctx = ctx
            try:
                yield from self._monitor(ctx, stop)
            except _ServiceLost as exc:
                service_down_said = True
                yield from self._drop_all(str(exc))
                stop.wait(self.retry)
            finally:
                with self._lock:
                    self._ctx = None
                sc.SCardReleaseContext(ctx)
        yield from self._drop_all("", quiet=True)

    def _drop_all(self, reason: str, *, quiet: bool = False) -> Iterator[ReaderEvent]:
        for name, slot in list(self._slots.items()):
            if slot.tapped:
                yield CardRemoved(name, time.monotonic())
            if not quiet:
                yield ReaderDisconnected(name, time.monotonic(), reason)
            if slot.io is not None:
                slot.io.close()
        self._slots.clear()

    def _matching(self, names: list[str]) -> list[str]:
        if not self.wanted:
            return names
        if self.wanted in names:
            return [self.wanted]
        low = self.wanted.lower()
        starts = [n for n in names if n.lower().startswith(low)]
        return starts or [n for n in names if low in n.lower()]

    def _list(self, ctx: Any) -> list[str]:
        sc = self.scard
        hr, names = sc.SCardListReaders(ctx, [])
        if hr == sc.SCARD_S_SUCCESS:
            return self._matching(list(names))
        if hr == sc.SCARD_E_NO_READERS_AVAILABLE:
            return []
        raise _ServiceLost(f"PC/SC service lost: {_msg(sc, hr)}")

    def _monitor(self, ctx: Any, stop: threading.Event) -> Iterator[ReaderEvent]:
        sc = self.scard
        pnp_state = sc.SCARD_STATE_UNAWARE
        relist = True
        said_none = False
        while not stop.is_set():
            if relist:
                relist = False
                names = self._list(ctx)
                for gone in [n for n in self._slots if n not in names]:
                    slot = self._slots.pop(gone)
                    if slot.tapped:
                        yield CardRemoved(gone, time.monotonic())
                    if slot.io is not None:
                        slot.io.close()
                    yield ReaderDisconnected(gone, time.monotonic(), "reader unplugged")
                for new in [n for n in names if n not in self._slots]:
                    slot = self._slots[new] = _Slot(state=sc.SCARD_STATE_UNAWARE)
                    # Start the I/O thread and its context now rather than on the first tap.
                    slot.io = _IoWorker(sc, new)
                    slot.io.jobs.put((lambda _ctx: None, queue.Queue(maxsize=1)))
                    yield ReaderConnected(new, time.monotonic())
                if not names and not said_none:
                    said_none = True
                    what = f"no reader matching {self.wanted!r}" if self.wanted else "no PC/SC reader"
                    yield ReaderDisconnected(self.name, time.monotonic(), what)
                elif names:
                    said_none = False
            states = [(n, s.state) for n, s in self._slots.items()] + [(PNP, pnp_state)]
            hr, changes = sc.SCardGetStatusChange(ctx, self.poll_ms, states)
            if hr in (sc.SCARD_E_TIMEOUT, sc.SCARD_E_CANCELLED):
                continue
            if hr == sc.SCARD_E_UNKNOWN_READER:
                relist = True
                continue
            if hr != sc.SCARD_S_SUCCESS:
                raise _ServiceLost(f"PC/SC service lost: {_msg(sc, hr)}")
            detected = time.monotonic()
            for name, event_state, atr in changes:
                if name == PNP:
                    if event_state & sc.SCARD_STATE_CHANGED:
                        relist = True
                    pnp_state = event_state & ~sc.SCARD_STATE_CHANGED
                    continue
                found = self._slots.get(name)
                if found is None:
                    continue
                slot = found
                slot.state = event_state & ~sc.SCARD_STATE_CHANGED
                if event_state & (sc.SCARD_STATE_UNKNOWN | sc.SCARD_STATE_IGNORE | sc.SCARD_STATE_UNAVAILABLE):
                    relist = True
                    continue
                present = bool(event_state & sc.SCARD_STATE_PRESENT)
                if present and not slot.present:
                    slot.present = True
                    if event_state & sc.SCARD_STATE_MUTE:
                        yield CardError(name, time.monotonic(), "card does not answer (mute)")
                        continue
                    event = self._read(name, slot, bytes(atr), detected)
                    if event is not None:
                        slot.tapped = isinstance(event, CardPresent)
                        yield event
                elif not present and slot.present:
                    slot.present = False
                    if slot.tapped:
                        slot.tapped = False
                        yield CardRemoved(name, time.monotonic())

    # ------------------------------------------------------------------ card

    def _read(self, name: str, slot: _Slot, atr: bytes, detected: float) -> CardPresent | CardError | None:
        """The tap, a CardError for a card that will not answer, or None for a card pulled away mid-read."""
        sc = self.scard
        if slot.io is None or slot.io.stuck:
            slot.io = _IoWorker(sc, name)
        io = slot.io
        io_s = 0.0
        handle: list[Any] = []

        def connect(ctx: Any) -> None:
            hr, hcard, proto = sc.SCardConnect(ctx, name, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1)
            if hr != sc.SCARD_S_SUCCESS:
                raise CardGone("connect", hr)
            handle.extend((hcard, proto))

        def transmit(apdu: bytes) -> bytes:
            nonlocal io_s

            def send(_ctx: Any) -> bytes:
                hr, resp = sc.SCardTransmit(handle[0], handle[1], list(apdu))
                if hr != sc.SCARD_S_SUCCESS:
                    raise CardGone("transmit", hr)
                if len(resp) < 2:
                    # "Success" with no status word: the card left mid-APDU (vpcd answers so
                    # when the card's socket closes). A card that is there always sends SW1 SW2.
                    raise CardGone("transmit: no status word", sc.SCARD_E_NOT_TRANSACTED)
                return bytes(resp)

            t0 = time.perf_counter()
            try:
                result: bytes = io.call(send, self.timeout)
                return result
            finally:
                io_s += time.perf_counter() - t0

        try:
            t0 = time.perf_counter()
            try:
                io.call(connect, self.timeout)
            finally:
                io_s += time.perf_counter() - t0
            uid = read_uid(transmit)
            if is_type2_atr(atr):
                message = read_type2_ndef(transmit)
            elif is_storage_atr(atr):
                message = None  # MIFARE Classic and friends: no NDEF without keys; the UID is the id
            else:
                message = read_type4_ndef(transmit)
            records = decode_message(message) if message else ()
            return present_from_ndef(
                records,
                reader=name,
                technology=self.technology,
                uid=uid,
                atr=atr,
                detected=detected,
                io_ms=io_s * 1000,
            )
        except ExchangeTimeout as exc:
            return CardError(name, time.monotonic(), f"card read deadline: {exc}")
        except CardGone as exc:
            if exc.code & 0xFFFFFFFF in _GONE:
                log.debug("card on %s gone mid-read: %s", name, exc)
                return None
            # Held by another program, a protocol the card does not offer...: say so, it is not a tap.
            return CardError(name, time.monotonic(), f"card not readable: {exc} {_msg(sc, exc.code)}")
        except (CardProtocolError, NdefError) as exc:
            # Falling back to the UID would give this card another account: refuse the tap instead.
            return CardError(name, time.monotonic(), f"card not readable: {exc}")
        finally:
            if handle and not io.stuck:
                with contextlib.suppress(ExchangeTimeout, CardGone):
                    io.call(lambda _ctx: sc.SCardDisconnect(handle[0], sc.SCARD_LEAVE_CARD), self.timeout)

    def close(self) -> None:
        with self._lock:
            ctx = self._ctx
        if ctx is not None:
            self.scard.SCardCancel(ctx)


def _msg(sc: Any, hr: int) -> str:
    try:
        return f"{sc.SCardGetErrorMessage(hr)} ({hr & 0xFFFFFFFF:#010x})"
    except Exception:  # an unknown code must not hide the original failure
        return f"{hr & 0xFFFFFFFF:#010x}"


def open(url: ParsedUrl, *, debounce_ms: int = 800) -> PcscReader:
    url.check_known(("timeout_ms", "poll_ms", "retry_ms"))
    return PcscReader(
        url.target.strip(),
        timeout_ms=url.integer("timeout_ms", 500, minimum=10, maximum=60_000),
        poll_ms=url.integer("poll_ms", 250, minimum=10, maximum=60_000),
        retry_ms=url.integer("retry_ms", 100, minimum=10, maximum=600_000),
    )
