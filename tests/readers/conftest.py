"""Fixtures for the reader tests: an event stream over a real driver, socat pty pairs."""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.readers import ReaderEvent


class Stream:
    """A reader's events, consumed on a thread as the UI does, and awaited by type."""

    def __init__(self, reader: Any):
        self.reader = reader
        self.stop = threading.Event()
        self.queue: queue.Queue[ReaderEvent | BaseException] = queue.Queue()
        self.seen: list[ReaderEvent] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.reader.events(self.stop):
                self.queue.put(event)
        except BaseException as exc:
            self.queue.put(exc)

    def next(self, timeout: float = 3.0) -> ReaderEvent:
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no reader event within {timeout} s; seen: {self.seen}") from None
        if isinstance(item, BaseException):
            raise item
        self.seen.append(item)
        return item

    def wait_for(self, kind: type, timeout: float = 3.0) -> Any:
        """The next event of `kind`, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} within {timeout} s; seen: {self.seen}")
            event = self.next(left)
            if isinstance(event, kind):
                return event

    def quiet(self, seconds: float) -> list[ReaderEvent]:
        """Every event in the next `seconds` (the caller asserts there were none, or which)."""
        out: list[ReaderEvent] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(item, BaseException):
                raise item
            self.seen.append(item)
            out.append(item)
        return out

    def close(self) -> None:
        self.stop.set()
        self.reader.close()
        self.thread.join(5)
        assert not self.thread.is_alive(), "reader did not stop within 5 s of stop being set"


@pytest.fixture
def stream() -> Iterator[Any]:
    made: list[Stream] = []

    def start(reader: Any) -> Stream:
        s = Stream(reader)
        made.append(s)
        return s

    yield start
    for s in made:
        s.close()


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)


class PtyPair:
    """`socat` joining two ptys: the driver opens `device`, the test writes to `card`."""

    def __init__(self, directory: Path):
        self.device = directory / "reader-tty"
        self.card = directory / "card-tty"
        self.proc: subprocess.Popen[bytes] | None = None
        self.fd: int | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.card}", f"pty,raw,echo=0,link={self.device}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not (self.device.exists() and self.card.exists()):
            if time.monotonic() > deadline:
                raise AssertionError("socat made no pty pair within 5 s")
            time.sleep(0.005)
        self.fd = os.open(self.card, os.O_RDWR | os.O_NOCTTY)

    def write(self, data: bytes) -> None:
        assert self.fd is not None
        os.write(self.fd, data)

    def stop(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.proc is not None:
            kill(self.proc)
            self.proc = None
        deadline = time.monotonic() + 2
        while self.device.exists() and time.monotonic() < deadline:
            time.sleep(0.005)


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    pair = PtyPair(tmp_path)
    pair.start()
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def idle_pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    """A pty pair not started yet: the device path does not exist."""
    pair = PtyPair(tmp_path)
    try:
        yield pair
    finally:
        pair.stop()


# ---------------------------------------------------------------- pcscd + vpcd


def _pcscd_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "pcscd":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class Pcscd:
    """The machine's one pcscd: reused when running, else started here (and stopped at the end)."""

    def __init__(self, log_dir: Path):
        self.log = log_dir / "pcscd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def ready(self, timeout: float = 5.0) -> None:
        from smartcard import scard

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if hr == scard.SCARD_S_SUCCESS:
                hr, names = scard.SCardListReaders(ctx, [])
                scard.SCardReleaseContext(ctx)
                if hr == scard.SCARD_S_SUCCESS and "Virtual PCD 00 00" in names:
                    return
            time.sleep(0.01)
        raise AssertionError(f"pcscd has no Virtual PCD reader after {timeout} s (is vsmartcard-vpcd installed?)")

    def ensure(self) -> None:
        if not _pcscd_pids():
            self.start()
        self.ready()

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(["pcscd", "-f"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.ready()

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup by pcscd itself."""
        for pid in _pcscd_pids():
            os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(5)
            self.proc = None
        deadline = time.monotonic() + 5
        while _pcscd_pids():
            if time.monotonic() > deadline:
                raise AssertionError("pcscd survived SIGKILL for 5 s")
            time.sleep(0.005)

    def stop_own(self) -> None:
        if self.proc is not None:
            kill(self.proc)
            self.proc = None


PCSC_LOCK = Path(tempfile.gettempdir()) / "pos-loyalty-pcsc.lock"


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """One PC/SC test at a time on this machine, across test runs too: there is one
    pcscd and one vpcd port, and a test kills pcscd."""
    with PCSC_LOCK.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def pcscd_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    daemon = Pcscd(tmp_path_factory.mktemp("pcscd"))
    try:
        yield daemon
    finally:
        with machine_lock():
            daemon.stop_own()


@pytest.fixture
def pcscd(pcscd_daemon: Pcscd) -> Iterator[Pcscd]:
    with machine_lock():
        pcscd_daemon.ensure()  # another run may have stopped the one this run used
        yield pcscd_daemon


def wait_empty(reader: str, timeout: float = 3.0) -> None:
    """Until pcscd reports `reader` empty: a card swapped within one 400 ms poll is invisible to it."""
    from smartcard import scard

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr != scard.SCARD_S_SUCCESS:
            return  # no pcscd: no card either
        try:
            hr, states = scard.SCardGetStatusChange(ctx, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        finally:
            scard.SCardReleaseContext(ctx)
        if hr != scard.SCARD_S_SUCCESS or states[0][1] & scard.SCARD_STATE_EMPTY:
            return
        time.sleep(0.02)
    raise AssertionError(f"{reader} still holds a card {timeout} s after it was taken away")


@pytest.fixture
def cards() -> Iterator[Any]:
    """Make virtual cards whose remove() waits until pcscd saw it; all are taken away after the test."""
    from .vcard import CardSpec, VirtualCard

    made: list[VirtualCard] = []

    class Card(VirtualCard):
        def remove(self) -> None:
            was_in = self.sock is not None
            super().remove()
            if was_in:
                wait_empty(f"Virtual PCD 00 {self.port - 35963:02d}")

    def make(port: int = 35963, **spec: Any) -> VirtualCard:
        card = Card(CardSpec(**spec), port)
        made.append(card)
        return card

    yield make
    for card in made:
        card.remove()


# ---------------------------------------------------------------- nfcpy udp


def free_udp_port() -> int:
    import socket

    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        # nfcpy's udp driver turns the port into a service name and back into int(): a port
        # /etc/services names (60179 is "fido") fails as "invalid literal for int()"
        try:
            socket.getservbyport(port)
        except OSError:
            return port


class NfcTag:
    """A tag emulated by nfcpy in its own process (tests/readers/nfctag.py); kill it to take it away."""

    def __init__(self, port: int, log_dir: Path):
        self.port = port
        self.log = log_dir / f"nfctag-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_at = 0.0

    def put(self, text: str, kind: str = "3", uid: str = "", vanish_after: int = 0) -> None:
        import sys

        script = Path(__file__).with_name("nfctag.py")
        args = [sys.executable, str(script), str(self.port), "--type", kind, "--text", text]
        if uid:
            args += ["--uid", uid]
        if vanish_after:
            args += ["--vanish-after", str(vanish_after)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            raise AssertionError(f"tag emulator did not start: {line!r}; see {self.log}")
        self.ready_at = time.monotonic()

    def take(self) -> None:
        if self.proc is not None:
            kill(self.proc)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


@pytest.fixture
def nfc_tag(tmp_path: Path) -> Iterator[NfcTag]:
    tag = NfcTag(free_udp_port(), tmp_path)
    try:
        yield tag
    finally:
        tag.take()
