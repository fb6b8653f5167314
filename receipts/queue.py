"""The durable print queue over the ledger's `print_jobs` outbox.

The ledger writes a job in the sale's own transaction, so a committed sale
always has its receipt waiting. This module prints it afterwards, on its own
SQLite connection with short transactions, and never inside a sale:

* claim: `queued` -> `printing` (attempts + 1, a lease in `next_try_at`), committed
  before a single byte goes out;
* success: `printing` -> `printed` with `printed_at`, only after the printer took
  every byte;
* failure: `printing` -> `queued` with `last_error` and a backoff (2, 4, 8 ... s,
  at most 5 min); nothing is ever dropped;
* a job that cannot be rendered (its sale is gone) becomes `failed`, kept for
  the manager and `print-queue retry`;
* crash: a job found `printing` whose claiming process is gone, or whose lease
  ran out, was interrupted (the process died mid-print). Paper may or may not have come out, so it is
  printed again marked COPY: never lost, never silently duplicated;
* reprints are new jobs with `copy = 1`: the receipt says COPY.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from ledger.config import Config
from ledger.store import open_existing

from .model import Document

LEASE_S = 120.0  # longer than any printer timeout: a live job is never taken for a dead one
BACKOFF_MAX_S = 300.0
RECOVERED_NOTE = "interrupted while printing; printed again as COPY"


class PrinterLike(Protocol):
    def print(self, payload: Any) -> None: ...


class RenderError(LookupError):
    """The job's document cannot be built (its sale, refund or day is not in the ledger)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """The ledger's timestamp format: ISO 8601 UTC with microseconds and Z; sorts as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def backoff_s(attempts: int) -> float:
    return float(min(BACKOFF_MAX_S, 2 ** max(1, attempts)))


OWNER_PREFIX = "printing by "
UNCONFIRMED_TWICE = (" (not confirmed twice: check the printer, or raise its timeout_s; loyalty print-queue retry"
                     " prints it again)")


def _owner_note() -> str:
    # While a job prints, last_error names who prints it: host and process id.
    return f"{OWNER_PREFIX}{socket.gethostname()}:{os.getpid()}"


def _owner_gone(note: str | None) -> bool:
    if not note or not note.startswith(OWNER_PREFIX):
        return False
    host, _, pid = note[len(OWNER_PREFIX):].rpartition(":")
    if host != socket.gethostname() or not pid.isdecimal():
        return False  # another machine's job: only its lease can tell
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    ref: str
    copy: bool
    status: str
    attempts: int
    next_try_at: str | None
    last_error: str | None
    created_at: str
    printed_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(int(row["id"]), row["kind"], row["ref"], bool(row["copy"]), row["status"], int(row["attempts"]),
                   row["next_try_at"], row["last_error"], row["created_at"], row["printed_at"])

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "ref": self.ref, "copy": self.copy, "status": self.status,
            "attempts": self.attempts, "next_try_at": self.next_try_at, "last_error": self.last_error,
            "created_at": self.created_at, "printed_at": self.printed_at,
        }


class RenderedJob:
    """A job's document with its forms rendered on demand for the printer's paper."""

    def __init__(self, doc: Document, cfg: Config, *, profile: str, paper_mm: int, title: str):
        self.doc, self.cfg, self.profile, self.paper_mm = doc, cfg, profile, paper_mm
        self._title = title

    @property
    def title(self) -> str:
        return self._title

    def escpos(self) -> bytes:
        from .escpos import render_escpos

        return render_escpos(self.doc, profile=self.profile, width_mm=self.paper_mm)

    def text(self) -> str:
        from .escpos import paper
        from .text import render_text

        return render_text(self.doc, paper(self.profile, self.paper_mm).columns)

    def png(self) -> bytes:
        from .escpos import paper
        from .png import render_png_bytes

        return render_png_bytes(self.doc, paper(self.profile, self.paper_mm))


Loader = Callable[[sqlite3.Connection, Config, str, bool], Document]


def _json_row(conn: sqlite3.Connection, sql: str, ref: str, what: str) -> dict[str, Any]:
    row = conn.execute(sql, (ref,)).fetchone()
    if row is None:
        raise RenderError(f"{what} {ref!r} is not in the ledger")
    data: dict[str, Any] = json.loads(row[0])
    return data


def load_sale(conn: sqlite3.Connection, cfg: Config, ref: str, copy: bool) -> Document:
    from .templates import sale_receipt

    row = conn.execute("SELECT result, refund_id FROM sales WHERE id=?", (ref,)).fetchone()
    if row is None:
        raise RenderError(f"sale {ref!r} is not in the ledger")
    result: dict[str, Any] = json.loads(row[0])
    if row[1]:
        result["refunded"] = row[1]
    return sale_receipt(result, cfg, copy=copy)


def load_refund(conn: sqlite3.Connection, cfg: Config, ref: str, copy: bool) -> Document:
    from .templates import refund_slip

    return refund_slip(_json_row(conn, "SELECT result FROM refunds WHERE id=?", ref, "refund"), cfg, copy=copy)


def load_voucher(conn: sqlite3.Connection, cfg: Config, ref: str, copy: bool) -> Document:
    """ref = SALE_ID:PROGRAM_ID, the sale that issued the reward."""
    from .templates import voucher

    sale_id, _, program_id = ref.rpartition(":")
    sale = _json_row(conn, "SELECT result FROM sales WHERE id=?", sale_id, "sale")
    if not (sale.get("rewards_issued") or {}).get(program_id):
        raise RenderError(f"sale {sale_id!r} issued no {program_id!r} reward voucher")
    code = f"{program_id.upper()}-{sale.get('receipt', {}).get('seq', '')}-{str(sale.get('receipt', {}).get('hash', ''))[:6].upper()}"
    return voucher({"program": program_id, "card": sale.get("card", ""), "code": code, "sale": sale_id}, cfg, copy=copy)


def load_enrolment(conn: sqlite3.Connection, cfg: Config, ref: str, copy: bool) -> Document:
    """ref = the card id."""
    from .templates import enrolment_slip

    row = conn.execute(
        "SELECT c.id, m.name, m.enrolled_at FROM cards c JOIN members m ON m.id = c.member_id WHERE c.id=?", (ref,)
    ).fetchone()
    if row is None:
        raise RenderError(f"card {ref!r} is not in the ledger")
    member: dict[str, Any] = {"since": str(row[2])[:10]}
    if row[1]:
        member["name"] = row[1]
    welcome = cfg.bonuses.welcome if cfg.bonuses.program else 0
    return enrolment_slip({"card": row[0], "member": member, "welcome_points": welcome}, cfg, copy=copy)


DEFAULT_LOADERS: dict[str, Loader] = {
    "sale": load_sale,
    "refund": load_refund,
    "voucher": load_voucher,
    "enrolment": load_enrolment,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    job: Job
    printed: bool
    error: str | None = None
    elsewhere: bool = False  # another process had claimed the job (it prints or printed it)
    held: bool = False  # failed for good: it waits for a person (print-queue retry), not for the next run

    def as_json(self) -> dict[str, Any]:
        return {"job": self.job.id, "kind": self.job.kind, "ref": self.job.ref, "printed": self.printed, "error": self.error}


class PrintQueue:
    def __init__(self, path: Path | str, cfg: Config, *, clock: Callable[[], datetime] = utcnow,
                 loaders: Mapping[str, Loader] | None = None, profile: str | None = None, paper_mm: int | None = None):
        self.cfg = cfg
        self.clock = clock
        self.loaders: dict[str, Loader] = dict(DEFAULT_LOADERS)
        if loaders:
            self.loaders.update(loaders)
        self.profile = profile or cfg.printer.profile
        self.paper_mm = paper_mm or cfg.printer.paper_width_mm
        # Our own connection: a print never holds the ledger's write lock longer than one UPDATE.
        # It never creates the file: where the ledger was deleted, an empty one would hide the loss.
        self.conn = open_existing(Path(path))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PrintQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ reading

    def job(self, job_id: int) -> Job | None:
        row = self.conn.execute("SELECT * FROM print_jobs WHERE id=?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def jobs(self, *, status: str | None = None, limit: int = 50) -> list[Job]:
        if status:
            rows = self.conn.execute("SELECT * FROM print_jobs WHERE status=? ORDER BY id DESC LIMIT ?", (status, limit))
        else:
            rows = self.conn.execute("SELECT * FROM print_jobs ORDER BY id DESC LIMIT ?", (limit,))
        return [Job.from_row(r) for r in rows.fetchall()]

    def due(self, limit: int = 20) -> list[Job]:
        now = stamp(self.clock())
        rows = self.conn.execute(
            "SELECT * FROM print_jobs WHERE status='queued' AND (next_try_at IS NULL OR next_try_at <= ?) ORDER BY id LIMIT ?",
            (now, limit),
        ).fetchall()
        return [Job.from_row(r) for r in rows]

    def backed_off(self) -> list[int]:
        """Jobs waiting out a backoff after the printer refused them (paper out, offline): a printer that says it
        is ready again may have them at once. Not one it took unconfirmed (COPY): it may be slow, not off."""
        return [int(r[0]) for r in self.conn.execute(
            "SELECT id FROM print_jobs WHERE status='queued' AND next_try_at IS NOT NULL AND copy=0 ORDER BY id")]

    def find(self, kind: str, ref: str) -> Job | None:
        row = self.conn.execute(
            "SELECT * FROM print_jobs WHERE kind=? AND ref=? ORDER BY (status='queued') DESC, id DESC LIMIT 1", (kind, ref)
        ).fetchone()
        return Job.from_row(row) if row else None

    def counts(self) -> dict[str, int]:
        return {str(s): int(n) for s, n in self.conn.execute("SELECT status, COUNT(*) FROM print_jobs GROUP BY status")}

    # ------------------------------------------------------------ writing (one short transaction each)

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            cur = self.conn.execute(sql, params)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        # rowcount for an UPDATE, the new id for an INSERT
        return int(cur.lastrowid or 0) if sql.startswith("INSERT") else int(cur.rowcount)

    def recover(self) -> int:
        """Jobs cut off mid-print go back to the queue as COPY.

        A `printing` job is abandoned when its lease ran out, or at once when the
        process that claimed it on this machine is gone (a till restarted after a
        crash does not wait for the lease).
        """
        now = stamp(self.clock())
        rows = self.conn.execute("SELECT id, next_try_at, last_error FROM print_jobs WHERE status='printing'").fetchall()
        dead = [int(r["id"]) for r in rows if (r["next_try_at"] or "") <= now or _owner_gone(r["last_error"])]
        if not dead:
            return 0
        marks = ",".join("?" * len(dead))
        return self._write(
            f"UPDATE print_jobs SET status='queued', copy=1, next_try_at=NULL, last_error=? WHERE status='printing' AND id IN ({marks})",
            (RECOVERED_NOTE, *dead),
        )

    def claim(self, job_id: int) -> Job | None:
        lease = stamp(self.clock() + timedelta(seconds=LEASE_S))
        changed = self._write(
            "UPDATE print_jobs SET status='printing', attempts=attempts+1, next_try_at=?, last_error=?"
            " WHERE id=? AND status='queued'",
            (lease, _owner_note(), job_id),
        )
        return self.job(job_id) if changed else None

    def _done(self, job_id: int) -> None:
        self._write("UPDATE print_jobs SET status='printed', printed_at=?, next_try_at=NULL, last_error=NULL WHERE id=? AND status='printing'",
                    (stamp(self.clock()), job_id))

    def _failed(self, job: Job, error: str, *, permanent: bool, copy: bool = False) -> None:
        if permanent:
            self._write("UPDATE print_jobs SET status='failed', next_try_at=NULL, last_error=? WHERE id=?", (error[:500], job.id))
            return
        retry_at = stamp(self.clock() + timedelta(seconds=backoff_s(job.attempts)))
        self._write("UPDATE print_jobs SET status='queued', next_try_at=?, last_error=?, copy=MAX(copy, ?) WHERE id=? AND status='printing'",
                    (retry_at, error[:500], int(copy), job.id))

    def retry(self, job_ids: list[int] | None = None) -> int:
        """Make queued and failed jobs due now (all of them, or the given ones)."""
        if job_ids:
            marks = ",".join("?" * len(job_ids))
            return self._write(f"UPDATE print_jobs SET status='queued', next_try_at=NULL WHERE id IN ({marks}) AND status IN ('queued', 'failed')",
                               tuple(job_ids))
        return self._write("UPDATE print_jobs SET status='queued', next_try_at=NULL WHERE status IN ('queued', 'failed')", ())

    def reprint(self, kind: str, ref: str) -> int:
        """The receipt again: a new job that says COPY, for one printed before.

        A receipt whose job never printed (waiting, failed, or cut off by a crash and
        recovered here as COPY) is that job, made due now: a COPY beside it would
        come out as well as the job itself, two papers for one.
        """
        if kind not in self.loaders:
            raise RenderError(f"no receipt of kind {kind!r}; known: {', '.join(sorted(self.loaders))}")
        self.loaders[kind](self.conn, self.cfg, ref, True)  # a ref that renders nothing queues nothing (RenderError)
        self.recover()
        waiting = self.conn.execute(
            "SELECT id FROM print_jobs WHERE kind=? AND ref=? AND status IN ('queued', 'failed') ORDER BY id DESC LIMIT 1", (kind, ref)
        ).fetchone()
        if waiting is not None:
            self.retry([int(waiting["id"])])
            return int(waiting["id"])
        return self._write("INSERT INTO print_jobs (kind, ref, copy, created_at) VALUES (?,?,1,?)", (kind, ref, stamp(self.clock())))

    def enqueue(self, kind: str, ref: str, *, copy: bool = False) -> int:
        """A job outside a sale (Z report, voucher, enrolment slip)."""
        return self._write("INSERT INTO print_jobs (kind, ref, copy, created_at) VALUES (?,?,?,?)", (kind, ref, int(copy), stamp(self.clock())))

    # ------------------------------------------------------------ printing

    def document(self, job: Job) -> Document:
        loader = self.loaders.get(job.kind)
        if loader is None:
            raise RenderError(f"no template for print jobs of kind {job.kind!r}")
        return loader(self.conn, self.cfg, job.ref, job.copy)

    def print_job(self, job_id: int, printer: PrinterLike) -> Outcome:
        """Claim, render, print, record. Raises nothing a printer can cause."""
        job = self.claim(job_id)
        if job is None:
            current = self.job(job_id)
            if current is None:
                raise RenderError(f"no print job {job_id}")
            return Outcome(current, False, f"job is {current.status}, not queued", elsewhere=current.status in ("printing", "printed"))
        try:
            doc = self.document(job)
        except Exception as exc:
            self._failed(job, f"cannot render: {exc}", permanent=True)
            return Outcome(job, False, f"cannot render: {exc}")
        payload = RenderedJob(doc, self.cfg, profile=self.profile, paper_mm=self.paper_mm, title=f"{job.kind} {job.ref}")
        try:
            printer.print(payload)
        except Exception as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            # a job that went out unconfirmed may be on paper already: its next print says COPY. Unconfirmed a
            # second time, it waits for a person: a printer too slow for its timeout would take a COPY a round
            unsure = bool(getattr(exc, "maybe_printed", False))
            held = unsure and bool(job.copy)
            if held:
                message += UNCONFIRMED_TWICE
            self._failed(job, message, permanent=held, copy=unsure)
            return Outcome(job, False, message, held=held)
        self._done(job.id)
        return Outcome(job, True)

    def run(self, printer: PrinterLike, *, limit: int = 20) -> list[Outcome]:
        """Recover interrupted jobs, then print what is due, oldest first, until the printer fails."""
        self.recover()
        outcomes: list[Outcome] = []
        for job in self.due(limit):
            outcome = self.print_job(job.id, printer)
            if outcome.elsewhere:
                continue  # another process claimed it between our look and our claim: it prints it
            outcomes.append(outcome)
            if not outcome.printed and outcome.error and not outcome.error.startswith("cannot render"):
                break  # the printer is down: the rest wait for their turn
        return outcomes
