"""The devices and services the app talks to, behind small seams.

Readers, printers and sync are built in their own packages; until a package
offers its registry (`open_reader`, `open_printer`, ...), the stand-ins here
keep the app whole: a simulated reader tapped by keys, a preview printer that
shows the receipt on screen, and a local end of day. Every call that may block
is made from a worker thread by the app, never from the UI thread.
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

from drivers.readers.base import CardPresent, CardReader, ReaderConnected, ReaderEvent
from ledger.config import Config

from .gate import Gate

Progress = Callable[[float, str], None]


def _registry(module: str, name: str) -> Callable[..., Any] | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    found = getattr(mod, name, None)
    return found if callable(found) else None


# ---------------------------------------------------------------- readers


class TapReader:
    """A reader fed by the app itself: demo keys and typed card ids become taps."""

    def __init__(self, name: str = "sim://"):
        self.name = name
        self._taps: queue.Queue[str] = queue.Queue()

    def tap(self, card_id: str) -> None:
        self._taps.put(card_id)

    def events(self, stop: threading.Event) -> Iterator[ReaderEvent]:
        yield ReaderConnected(reader=self.name, at=time.monotonic())
        while not stop.is_set():
            try:
                card_id = self._taps.get(timeout=0.1)
            except queue.Empty:
                continue
            yield CardPresent(card_id=card_id, reader=self.name, technology="sim", at=time.monotonic())

    def close(self) -> None:
        pass


def open_reader(cfg: Config, url: str | None = None) -> CardReader:
    """The configured reader (with the signature policy), from the drivers' registry; the tap reader without it."""
    url = url or cfg.reader.url
    real = _registry("drivers.readers", "open_reader")
    if real is not None:
        reader: CardReader = real(url, require_signed=cfg.reader.require_signed, public_keys=cfg.reader.public_keys,
                                  debounce_ms=cfg.reader.debounce_ms)
        return reader
    if url.startswith(("sim:", "keyboard:")):
        return TapReader(url)
    raise ConnectionError(f"no driver for reader {url!r} is installed; use sim:// or keyboard://, or type card ids with F2")


def tap(reader: CardReader | None, card_id: str) -> bool:
    """Tap a card on a reader that can simulate taps; False when it cannot."""
    for method, arg in (("tap", card_id), ("feed", card_id + "\n")):  # feed: keyboard://, a wedge types the id and Enter
        fn = getattr(reader, method, None)
        if not callable(fn):
            continue
        try:
            if method == "tap" and callable(getattr(reader, "remove", None)):
                reader.remove()  # type: ignore[union-attr]  # a key press is a new tap, even of the card already there
            fn(arg)
        except Exception:  # a hardware reader cannot take a typed id: the app handles it as a tap itself
            continue
        return True
    return False


# ---------------------------------------------------------------- printers


class Printer(Protocol):
    """Prints what the ledger queued (print_jobs), and says how many jobs wait."""

    name: str

    def print_job(self, kind: str, ref: str, *, copy: bool = False) -> str: ...

    def print_text(self, title: str, text: str) -> str: ...

    def queued(self) -> int: ...

    def print_waiting(self) -> tuple[int, list[str]]: ...


class QueuePrinter:
    """A printer from drivers.printers, fed through the durable print queue (receipts.queue)."""

    def __init__(self, cfg: Config, driver: Any):
        self.cfg = cfg
        self.driver = driver
        self.name = str(getattr(driver, "url", cfg.printer.url))

    def _queue(self) -> Any:
        from receipts.queue import PrintQueue

        loaders = _registry_value("terminal.commands.printing", "LOADERS") or {}
        return PrintQueue(self.cfg.ledger.path, self.cfg, loaders=loaders, paper_mm=getattr(self.driver, "paper_mm", None))

    def print_job(self, kind: str, ref: str, *, copy: bool = False) -> str:
        queue = self._queue()
        try:
            queue.recover()  # a job a crash cut off is waiting again (as COPY), not printing
            job = queue.find(kind, ref)
            waiting = job is not None and job.status != "printed"
            if job is not None and job.status == "printing":  # the queue's own run has it on the printer this very moment
                return f"printing now on {self.name}"
            if copy:
                job_id = queue.reprint(kind, ref)  # a receipt that never printed is that job, not a COPY beside it
            elif job is None:
                job_id = queue.enqueue(kind, ref)
            elif job.status == "printed":
                return f"already printed on {self.name}"
            else:
                job_id = job.id
                queue.retry([job_id])
            outcome = queue.print_job(job_id, self.driver)
            if not outcome.printed:
                error = outcome.error or "not printed"
                raise ConnectionError(error if self.name in error else f"{self.name}: {error}")
            # the printer works: what waited behind it goes out too, and the cashier is told it did
            others = sum(1 for done in queue.run(self.driver, limit=5) if done.printed)
            said = f"printed on {self.name}" + (" (the original, which had not printed)" if copy and waiting else "")
            return said + (f"; {others} other waiting slip(s) came out too" if others else "")
        finally:
            queue.close()

    def print_text(self, title: str, text: str) -> str:
        from drivers.printers.base import RawPayload

        self.driver.print(RawPayload(text.encode("utf-8"), title=title, preview_text=text))
        return f"printed on {self.name}"

    def queued(self) -> int:
        queue = self._queue()
        try:
            counts: dict[str, int] = queue.counts()
        finally:
            queue.close()
        return counts.get("queued", 0) + counts.get("failed", 0) + counts.get("printing", 0)

    def print_waiting(self) -> tuple[int, list[str]]:
        """Print what is due in the queue (jobs a crash cut off first, as COPY): how many came out, and the
        receipts now held for a person (a printer that did not confirm them twice).

        Jobs whose retry is still minutes off (the backoff grows to 5 min while the
        paper is out) go now if the printer says it is back: a status query costs
        milliseconds, a receipt that waits on a working printer a customer's time.
        """
        queue = self._queue()
        try:
            backed_off = queue.backed_off()
            if backed_off and not queue.due(1) and self._says_ready():
                queue.retry(backed_off)
            outcomes = queue.run(self.driver, limit=5)
            return sum(1 for o in outcomes if o.printed), [f"{o.job.kind} {o.job.ref}" for o in outcomes if o.held]
        finally:
            queue.close()

    def _says_ready(self) -> bool:
        status = getattr(self.driver, "status", None)
        if status is None:
            return False
        try:
            state = status()
        except Exception:  # still off: the backoff stands
            return False
        return bool(state.online is True and state.ready)


class MissingPrinter:
    """A printer that could not be opened: receipts stay queued, the reason is shown."""

    def __init__(self, cfg: Config, url: str, reason: str):
        self.cfg = cfg
        self.name = url
        self.reason = reason

    def print_job(self, kind: str, ref: str, *, copy: bool = False) -> str:
        raise ConnectionError(f"{self.reason}; the receipt stays queued")

    def print_text(self, title: str, text: str) -> str:
        raise ConnectionError(self.reason)

    def print_waiting(self) -> tuple[int, list[str]]:
        return 0, []  # nothing to print on: the jobs stay queued for a printer that opens

    def queued(self) -> int:
        from ledger.store import open_existing

        conn = open_existing(self.cfg.ledger.path, timeout=5.0)
        try:
            row = conn.execute("SELECT COUNT(*) FROM print_jobs WHERE status != 'printed'").fetchone()
        finally:
            conn.close()
        return int(row[0])


def open_printer(cfg: Config, url: str | None = None) -> Printer:
    url = url or cfg.printer.url
    real = _registry("drivers.printers", "open_printer")
    if real is None:
        return MissingPrinter(cfg, url, "no printer drivers are installed")
    try:
        driver = real(url, profile=cfg.printer.profile, paper_mm=cfg.printer.paper_width_mm, timeout_s=cfg.printer.timeout_s)
    except Exception as exc:  # a bad printer URL must not stop the till: sales go on, receipts wait
        return MissingPrinter(cfg, url, str(exc) or type(exc).__name__)
    return QueuePrinter(cfg, driver)


def _registry_value(module: str, name: str) -> Any:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return getattr(mod, name, None)


# ---------------------------------------------------------------- sync


@dataclass(frozen=True, slots=True)
class SyncState:
    online: bool
    pending: int
    last_sync: str | None
    forced_offline: bool
    note: str = ""
    refused: str = ""  # why the server turned the last round down; "" when it did not
    standalone: bool = False  # no [sync] server: the till works alone by design


@dataclass(frozen=True, slots=True)
class ZReport:
    day: str
    text: str
    synced: bool
    detail: str = ""


class SyncPort(Protocol):
    """What the app needs from sync: the status bar's state, the manager's switch, and end of day."""

    def state(self) -> SyncState: ...

    def set_offline(self, offline: bool) -> None: ...

    def ask_chain(self, card_id: str) -> bool: ...

    def end_of_day(self, progress: Progress) -> ZReport: ...

    def start_background(self, on_round: Callable[[SyncRound], None]) -> bool: ...

    def stop_background(self, timeout_s: float = 0.5) -> None: ...


class ChainSync:
    """The sync client (sync/): end of day on the till's connection through the gate's lock; the
    background rounds on a connection of their own, so a slow or dead server never holds the cart."""

    def __init__(self, gate: Gate, note: str = ""):
        self.gate = gate
        self.forced_offline = False
        self.note = note  # why there is no server, when there is none
        self._health: Any = None  # a client kept for the status bar's health checks
        # one sync at a time: end of day waits for a background round, a round waits for end of day
        self._one_at_a_time = threading.Lock()
        self._background: Any = None  # sync.client.BackgroundSync, once started

    def start_background(self, on_round: Callable[[SyncRound], None]) -> bool:
        """Push and pull every `[sync] interval_seconds` on a thread of the sync package's own; False when sync is not set up."""
        if self._background is not None:
            return True
        if self.note or self.not_set_up():
            return False
        from sync.client import BackgroundSync, SyncClient  # httpx and the client load here, after the first frame

        cfg = self.gate.cfg

        def report(result: dict[str, Any] | Exception) -> None:
            on_round(SyncRound.of(result))

        # BackgroundSync calls only sync() and close() on what make_client returns
        make_client = cast("Callable[[], SyncClient]", self._round_client)
        self._background = BackgroundSync(make_client, interval_s=float(max(1, cfg.sync.interval_seconds)),
                                          on_result=report)
        self._background.start()
        return True

    def stop_background(self, timeout_s: float = 0.5) -> None:
        # short: a round stuck on a dead server must not hold the app's exit; the thread is a daemon
        if self._background is not None:
            self._background.stop(timeout_s)
            self._background = None

    def _round_client(self) -> _BackgroundRound:
        return _BackgroundRound(self)

    def _client(self, progress: Progress | None = None) -> Any:
        from sync.client import SyncClient, read_token

        cfg = self.gate.cfg
        if not cfg.sync.server:
            raise ConnectionError("no [sync] server in the config")
        bar = None
        if progress is not None:
            def bar(p: Any) -> None:
                share = (0.2, 0.5) if p.phase == "push" else (0.7, 0.2)
                done = p.done / p.total if p.total else 0.5
                progress(share[0] + share[1] * min(1.0, done), f"{p.phase}: {p.done}" + (f" of {p.total}" if p.total else ""))
        return SyncClient(self.gate.loyalty.conn, server=cfg.sync.server, token=read_token(cfg.sync.token_file),
                          store_id=cfg.store.id, terminal_id=cfg.store.terminal, timeout_s=cfg.sync.timeout_s,
                          attempts=2, progress=bar, clock=self.gate.clock)

    def not_set_up(self) -> str:
        cfg = self.gate.cfg
        if not cfg.sync.server or cfg.sync.token_file is None or not cfg.sync.token_file.exists():
            return "sync is not set up for this till ([sync] server, token_file from `loyalty server add-terminal`)"
        return ""

    def state(self) -> SyncState:
        pending, last = self.gate.pending_events()
        refused = _refusal(getattr(self._background, "last_error", None))
        online = False
        note = self.note
        note = note or self.not_set_up()
        if not self.forced_offline and not note:
            try:
                if self._health is None:
                    self._health = self._client()
                online = bool(self._health.online(timeout_s=1.0))  # network: the status worker's thread, not the lock
                background = self._background
                # the server answers, and says no: waking the round early would only ask again
                if online and background is not None and background.failures and not refused:
                    background.sync_now()  # the server is back: no need to sit out the rest of a long backoff
            except Exception as exc:
                note = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return SyncState(online=online, pending=pending, last_sync=last, forced_offline=self.forced_offline, note=note,
                         refused=refused, standalone=not self.gate.cfg.sync.server)

    def ask_chain(self, card_id: str) -> bool:
        """A card the tap found unknown here, asked of the chain (network and its write on a connection of their own,
        never under the gate's lock); True: another store has it and it is now known here as that member."""
        if self.forced_offline or self.note or self.not_set_up():
            return False
        from sync.client import ask_chain_for_card

        return ask_chain_for_card(None, self.gate.cfg, card_id, clock=self.gate.clock)

    def set_offline(self, offline: bool) -> None:
        self.forced_offline = offline
        if not offline and self._background is not None:
            self._background.sync_now()  # what was sold while forced offline goes out now, not an interval later

    def end_of_day(self, progress: Progress) -> ZReport:
        gate = self.gate
        day = gate.day_to_close()
        progress(0.05, f"closing business day {day}")
        if not self._one_at_a_time.acquire(blocking=False):
            progress(0.05, "waiting for the background sync to finish")
            self._one_at_a_time.acquire()
        try:
            return self._end_of_day(progress, day)
        finally:
            self._one_at_a_time.release()

    def _end_of_day(self, progress: Progress, day: Any) -> ZReport:
        from sync.endofday import z_report

        gate = self.gate
        detail = ""
        synced = False
        with gate.lock:
            now = gate.clock()
            if self.forced_offline:
                detail = "forced offline: nothing pushed; run end of day again when back online"
            elif self.not_set_up():
                detail = f"{self.not_set_up()}: local report only"
            else:
                try:
                    client = self._client(progress)
                except Exception as exc:
                    detail = f"sync not available ({exc}): local report only"
                    client = None
                if client is not None:
                    try:
                        from sync.endofday import end_of_day

                        end_of_day(gate.loyalty, client, now, day)
                        synced = True
                    except Exception as exc:
                        detail = f"sync failed ({getattr(exc, 'message', None) or exc}): the day is closed here; run end of day again when online"
                    finally:
                        client.close()
            if not synced:  # closed and expired all the same, and the day's Z says not synced until a sync gets through
                from sync.client import Offline
                from sync.endofday import end_of_day

                progress(0.5, "closing the day, expiring due points")
                end_of_day(gate.loyalty, Offline(detail), now, day, tolerate_offline=True)
            progress(0.9, "Z report")
            totals = z_report(gate.loyalty.conn, gate.cfg, day)
        # on screen as on paper: the same document, in the store's words and order
        from receipts import render
        from receipts.templates import z_report as z_document

        text = render(z_document(totals, gate.cfg), "text", gate.cfg).decode("utf-8")
        progress(1.0, "done" if synced else f"done: {detail}")
        return ZReport(day=day.isoformat(), text=text, synced=synced, detail=detail)


class _BackgroundRound:
    """One background round, shaped as BackgroundSync's client: opens its ledger connection only when it runs."""

    def __init__(self, chain: ChainSync):
        self.chain = chain

    def sync(self) -> dict[str, Any]:
        chain = self.chain
        if chain.forced_offline:
            return {"paused": True}
        with chain._one_at_a_time:
            if chain.forced_offline:
                return {"paused": True}
            from ledger.store import open_existing
            from sync.client import SyncClient, read_token

            cfg = chain.gate.cfg
            assert cfg.sync.server is not None
            token = read_token(cfg.sync.token_file)
            client = SyncClient(open_existing(cfg.ledger.path), server=cfg.sync.server, token=token, store_id=cfg.store.id,
                                terminal_id=cfg.store.terminal, timeout_s=cfg.sync.timeout_s, owns_conn=True,
                                clock=chain.gate.clock)
            try:
                result: dict[str, Any] = client.sync()
            finally:
                client.close()
            return result

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class SyncRound:
    """What one background round did, for the status bar and the message line."""

    ok: bool
    paused: bool = False
    pushed: int = 0
    error: str = ""
    warning: str = ""
    refused: bool = False  # the server answered no (not a network failure): a person must act

    @classmethod
    def of(cls, result: dict[str, Any] | Exception) -> SyncRound:
        if isinstance(result, Exception):
            from sync.client import SyncFailed

            said = getattr(result, "message", None) or str(result) or type(result).__name__
            # said as the server's refusal only when the server gave it
            return cls(ok=False, error=said, refused=isinstance(result, SyncFailed) and bool(_refusal(result)))
        if result.get("paused"):
            return cls(ok=False, paused=True)
        warning = str(result.get("warning", ""))
        conflicts = [str(c["card"]) for c in result.get("pull", {}).get("conflicts", [])]
        if conflicts:  # the manager settles it (docs/sync.md); the cashier only needs to know the card is split
            warning = (f"Card {', '.join(conflicts[:3])} is another member at the rest of the chain: call the manager"
                       " (loyalty server report). " + warning).strip()
        return cls(ok=True, pushed=int(result.get("push", {}).get("sent", 0)), warning=warning)


def _refusal(error: BaseException | None) -> str:
    """Why a round failed other than for want of the server (a token, a ledger it does not hold...): asking again
    soon would change nothing. "" when it went through or the server could not be reached."""
    from sync.client import Offline

    if error is None or isinstance(error, Offline):
        return ""
    return str(getattr(error, "message", None) or error or type(error).__name__)


def open_sync(gate: Gate) -> SyncPort:
    return ChainSync(gate)
