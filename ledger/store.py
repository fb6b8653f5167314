"""The SQLite ledger file: connection, write transactions, the event chain.

One writer at a time (`BEGIN IMMEDIATE`), WAL with `synchronous=FULL`, so a
sale that returned is on disk and a crash leaves either all of a sale or none
of it. Events are appended through `Tx.append`, which chains their hashes and
moves the materialized balance in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from .clock import iso
from .errors import LoyaltyError

# The migrations of ledger/schema.py, by name (a test keeps the two in step): when
# all are applied, opening a ledger needs no sqlite-utils import, which keeps the
# till's start fast.
MIGRATIONS = ("m001_core", "m002_remote", "m003_receipt_numbers", "m004_fewer_sale_indexes", "m005_chain_state",
              "m006_membership_buys", "m007_redeem_days", "m008_remote_draws",
              "m009_remote_given", "m010_remote_last_redeems")

GENESIS = "0" * 64

# The fields covered by an event's hash, in the order rows are read.
HASHED = (
    "seq",
    "event_id",
    "terminal_id",
    "store_id",
    "ts",
    "business_day",
    "member_id",
    "card_id",
    "program_id",
    "account",
    "kind",
    "amount",
    "sale_id",
    "ref_event_id",
    "rules_version",
    "payload",
    "prev_hash",
)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(value: Any) -> str:
    return _CANONICAL.encode(value)


# An event's hash is SHA-256 over prev_hash and the canonical JSON (`canonical`) of
# the other hashed fields, payload as an object. The body's keys are fixed, so their
# sorted order is a template and a hash pays only for encoding the values: every
# sale hashes several events, and a server push hundreds. The template is checked
# against json's own output at import.
_BODY_KEYS = tuple(sorted(k for k in HASHED if k != "prev_hash"))
_BODY_TEMPLATE = "{" + ",".join(f'"{k}":%s' for k in _BODY_KEYS) + "}"
_PAYLOAD_AT = _BODY_KEYS.index("payload")
if _BODY_TEMPLATE % (("null",) * len(_BODY_KEYS)) != canonical(dict.fromkeys(_BODY_KEYS)):
    raise RuntimeError("the event body template is not canonical JSON")


def event_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical JSON of the event (payload as an object or its JSON text)."""
    payload = fields["payload"]
    if isinstance(payload, str):
        # "{}" is most events' payload, and always decodes to the empty object
        payload = "{}" if payload == "{}" else _CANONICAL.encode(json.loads(payload))
    else:
        payload = _CANONICAL.encode(payload)
    return _digest(fields, payload)


def _digest(fields: Mapping[str, Any], payload_json: str) -> str:
    values = [
        encode_basestring(v) if v.__class__ is str else "null" if v is None else int.__repr__(v) if v.__class__ is int else _CANONICAL.encode(v)
        for v in map(fields.__getitem__, _BODY_KEYS)
    ]
    values[_PAYLOAD_AT] = payload_json
    return hashlib.sha256((fields["prev_hash"] + _BODY_TEMPLATE % tuple(values)).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    event_id: str
    kind: str
    member_id: str | None
    program_id: str | None
    account: str | None
    amount: int
    sale_id: str | None
    ref_event_id: str | None
    payload: dict[str, Any]
    hash: str


def connect(path: Path) -> sqlite3.Connection:
    return tune(_plain(path))


def _plain(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=10.0, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def tune(conn: sqlite3.Connection) -> sqlite3.Connection:
    """The ledger's settings on a connection (WAL changes the file: only for a file known to be a ledger or new)."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    # fewer, larger checkpoints: each one fsyncs the database file
    conn.execute("PRAGMA wal_autocheckpoint=4000")
    return conn


# The file each Ledger of this process opened, by resolved path: a second connection is opened only to that file.
_OPENED: dict[Path, tuple[int, int]] = {}


def open_existing(path: Path, *, timeout: float = 10.0) -> sqlite3.Connection:
    """A second connection to a ledger that exists (the print queue's, the background sync's).

    It never makes an empty file where the ledger was deleted, which would hide the
    loss; nor does it open a file put in the place of the one this process has
    open: SQLite would take the open file's -wal for the new file's and write it
    into it, corrupting a ledger restored from a backup.
    """
    resolved = Path(path).resolve()
    opened = _OPENED.get(resolved)
    if opened is not None and _file_id(resolved) != opened:
        raise gone_error(Path(path))
    conn = sqlite3.connect(f"{resolved.as_uri()}?mode=rw", uri=True, isolation_level=None, timeout=timeout, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    tune(conn)  # the ledger's own settings
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn


MIN_FREE_BYTES = 1_000_000  # below this, "disk I/O error" is a full disk


def database_error(exc: sqlite3.DatabaseError, path: Path, doing: str) -> LoyaltyError:
    """What SQLite's refusal means to the person at the till, as one error (nothing was written)."""
    said = str(exc)
    folder = Path(path).parent
    if "full" in said or ("disk I/O" in said and _free_bytes(folder) < MIN_FREE_BYTES):
        return LoyaltyError("ledger_disk_full", f"{doing} {path}: the disk is full; nothing was written"
                                                " (free some space on it, then try again)")
    if "unable to open" in said and folder.is_dir() and not os.access(folder, os.W_OK):
        said = "readonly folder"  # WAL needs to make its -wal and -shm files beside the ledger
    if "malformed" in said:
        return LoyaltyError("ledger_damaged", f"{doing} {path}: the file is damaged ({said}); nothing was written."
                                              " Run loyalty ledger verify, and restore the ledger from a backup")
    if "readonly" in said or "read-only" in said:
        return LoyaltyError("ledger_read_only", f"{doing} {path}: the file or its folder is read-only; nothing was written"
                                                " (the till's user must be able to write both)")
    if "locked" in said or "busy" in said:
        return LoyaltyError("ledger_busy", f"{doing} {path}: another process kept it busy too long ({said}); nothing was written,"
                                           " try again")
    return LoyaltyError("ledger", f"{doing} {path}: {said} (check [ledger] path)")


def gone_error(path: Path, rescued: Path | str | None = None) -> LoyaltyError:
    saved = f" What it held is saved as {rescued}." if isinstance(rescued, Path) else (f" {rescued}." if rescued else "")
    return LoyaltyError("ledger_gone", f"the ledger {path} was deleted or replaced under this program: nothing was written."
                                       f"{saved} Quit, put the ledger file back (a backup, or the saved file), start again")


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return MIN_FREE_BYTES


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Ledger:
    """An open ledger file for one terminal of one store."""

    def __init__(self, path: Path, *, terminal_id: str, store_id: str, rules_version: str, currency: str | None = None):
        self.path = path
        self.currency = currency
        self.terminal_id = terminal_id
        self.store_id = store_id
        self.rules_version = rules_version
        self._file: tuple[int, int] | None = None
        self._wal: tuple[tuple[int, int] | None, tuple[int, int] | None] = (None, None)
        self._rescued: Path | str | None = None
        # no ledger was there (or an empty file a failed first command left): this open begins one
        self.begun = not path.exists() or (path.is_file() and path.stat().st_size == 0)
        try:
            self.conn = _plain(path)
            applied = self._applied()
            if applied - set(MIGRATIONS):
                self.conn.close()
                raise LoyaltyError("ledger", f"the ledger {path} was written by a newer version of pos-loyalty"
                                             f" ({', '.join(sorted(applied - set(MIGRATIONS)))}): update this till's software")
            if not applied and self._holds_other_tables():
                self.conn.close()
                raise LoyaltyError("ledger", f"{path} is an SQLite database, but not a pos-loyalty ledger: it was left as it is"
                                             f" (check [ledger] path)")
            tune(self.conn)
            if not applied >= set(MIGRATIONS):
                from sqlite_utils import Database

                from .schema import migrations

                db = Database(self.conn)
                if migrations.pending(db):
                    migrations.apply(db)
        except sqlite3.DatabaseError as exc:  # a directory, another kind of file, a disk that refuses
            raise database_error(exc, path, "cannot open the ledger") from None
        try:
            self._check_identity()
        except sqlite3.DatabaseError as exc:
            raise database_error(exc, path, "cannot read the ledger") from None
        # the file this connection writes: a ledger deleted or replaced under a running till is noticed
        self._file = _file_id(path)
        if self._file is not None:
            _OPENED[path.resolve()] = self._file
        # and its -wal and -shm: left behind at the path if the file is swapped, they are this file's, not the new one's
        self._wal = (_file_id(Path(f"{path}-wal")), _file_id(Path(f"{path}-shm")))

    def _applied(self) -> set[str]:
        try:
            return {r[0] for r in self.conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'pos-loyalty-ledger'")}
        except sqlite3.OperationalError:  # a new file: no migrations table yet
            return set()

    def _holds_other_tables(self) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite%' AND name != '_sqlite_migrations' LIMIT 1"
        ).fetchone() is not None

    def _check_identity(self) -> None:
        # A ledger file belongs to one terminal: its chain must not be continued by another.
        kept = dict(self.conn.execute("SELECT key, value FROM meta WHERE key IN ('terminal_id', 'currency')").fetchall())
        if kept.get("terminal_id") == self.terminal_id and self.currency in (None, kept.get("currency")):
            return  # the usual open writes nothing, so it never waits for another process's sale
        with self.transaction(None) as tx:
            row = tx.conn.execute("SELECT value FROM meta WHERE key='terminal_id'").fetchone()
            # A ledger with no event yet (a first command that failed made it) has nothing to protect: it takes
            # the config's terminal and currency, so fixing the config after a failed first command just works.
            if row is not None and self._holds_nothing(tx.conn):
                tx.conn.execute("DELETE FROM meta WHERE key IN ('terminal_id', 'store_id', 'currency')")
                row = None
            if row is None:
                tx.conn.execute("INSERT INTO meta(key, value) VALUES ('terminal_id', ?), ('store_id', ?)", (self.terminal_id, self.store_id))
                tx.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('head_seq', '0'), ('head_hash', ?)", (GENESIS,))
            elif row["value"] != self.terminal_id:
                raise LoyaltyError(
                    "wrong_terminal",
                    f"ledger {self.path} belongs to terminal {row['value']!r}, not {self.terminal_id!r} (check [store].terminal or [ledger].path)",
                )
            if self.currency is not None:
                # amounts are kept in minor units: read in another currency they would change value
                kept = tx.conn.execute("SELECT value FROM meta WHERE key='currency'").fetchone()
                if kept is None:
                    kept = tx.conn.execute("SELECT currency AS value FROM sales LIMIT 1").fetchone()
                    tx.conn.execute("INSERT INTO meta(key, value) VALUES ('currency', ?)", (kept["value"] if kept else self.currency,))
                if kept is not None and kept["value"] != self.currency:
                    raise LoyaltyError(
                        "wrong_currency",
                        f"ledger {self.path} keeps its amounts in {kept['value']}, not {self.currency} (check [store].currency or [ledger].path)",
                    )

    @staticmethod
    def _holds_nothing(conn: sqlite3.Connection) -> bool:
        """No event, and no row in any table but meta: not even a sync cursor or another till's card."""
        if conn.execute("SELECT value FROM meta WHERE key='head_seq'").fetchone()["value"] != "0":
            return False
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite%'")]
        return not any(conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables if t not in ("meta", "_sqlite_migrations"))

    def close(self) -> None:
        if self._file is not None and _OPENED.get(self.path.resolve()) == self._file:
            del _OPENED[self.path.resolve()]
        if self.moved():  # a quit after the file was deleted or replaced: what it held is saved first
            self._secure()
        self.conn.close()

    def check_file(self) -> None:
        """Refuse to write when the ledger's path no longer names the open file.

        A deleted file stays writable through the open connection: sales would be
        "paid" into a file nobody can open again, and the till would start over at
        receipt 1 after a restart. What the open file holds is saved beside it
        first (`_rescue`): it may be the only copy of the day's sales.
        """
        if self.moved():
            self._secure()
            raise gone_error(self.path, self._rescued)

    @property
    def rescued(self) -> Path | str | None:
        """Where what the file held was saved after it moved (or why it could not be), else None."""
        return self._rescued

    def moved(self) -> bool:
        """Whether the path no longer names the file this connection has open (deleted, or another put there)."""
        return self._file is not None and _file_id(self.path) != self._file

    def _secure(self) -> None:
        """Once the file has moved: save what it holds, and take its -wal and -shm from the path at once.

        SQLite leaves them at the path, and any process that opens the path (a
        `ledger verify`, a restarted till) would replay them into the file put
        there: a backup put back would come out corrupt or not restored.
        """
        if self._rescued is None:
            self._rescued = self._rescue()
        for suffix, kept in zip(("-wal", "-shm"), self._wal, strict=True):
            side = Path(f"{self.path}{suffix}")
            if kept is not None and _file_id(side) == kept:
                # this connection goes on reading them through its open handles; the path is free of them
                side.unlink(missing_ok=True)

    def _rescue(self) -> Path | str:
        """A copy of the open file, read through this connection (its pages and its -wal), beside the path."""
        target = self.path.with_name(f"{self.path.name}.rescued-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        try:
            self.conn.execute("VACUUM INTO ?", (str(target),))
        except sqlite3.Error as exc:
            return f"it could not be saved ({exc})"
        return target

    @contextmanager
    def transaction(self, now: datetime | None, day: date | None = None) -> Iterator[Tx]:
        """One atomic write: everything inside commits together or not at all."""
        self.check_file()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            tx = Tx(self, now, day)
            yield tx
            tx.flush()
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if type(exc) in (sqlite3.OperationalError, sqlite3.DatabaseError):  # the file refused: say why, as one error
                raise database_error(exc, self.path, "cannot write the ledger") from exc  # type: ignore[arg-type]
            raise

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reads that span several queries."""
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("COMMIT")

    def head(self) -> tuple[int, str]:
        rows = dict(self.conn.execute("SELECT key, value FROM meta WHERE key IN ('head_seq', 'head_hash')").fetchall())
        return int(rows.get("head_seq", 0)), str(rows.get("head_hash", GENESIS))


# the one statement that writes an event row (bench/ builds its big ledgers with it too)
INSERT_EVENT = f"INSERT INTO events ({', '.join((*HASHED, 'hash'))}) VALUES ({','.join('?' * (len(HASHED) + 1))})"
_MOVE_BALANCE = (
    "INSERT INTO balances (member_id, program_id, account, amount) VALUES (?,?,?,?)"
    " ON CONFLICT (member_id, program_id, account) DO UPDATE SET amount = amount + excluded.amount"
)


class Tx:
    """The write transaction an operation runs in."""

    def __init__(self, ledger: Ledger, now: datetime | None, day: date | None):
        self.ledger = ledger
        self._conn = ledger.conn
        # Event rows and balance moves wait here and go in with one executemany per
        # statement: a sale appends several. Anything that touches `conn` writes them
        # first, so every read in the transaction sees every earlier append.
        self._pending: dict[str, list[tuple[Any, ...]]] = {}
        self.now = now
        self.ts = iso(now) if now else ""
        self.day = day.isoformat() if day else ""
        self._seq: int | None = None
        self._hash = ""
        self.appended: list[Event] = []

    @property
    def conn(self) -> sqlite3.Connection:
        if self._pending:
            self._write_pending()
        return self._conn

    def _write_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for sql, rows in pending.items():
            self._conn.executemany(sql, rows)

    def later(self, sql: str, params: tuple[Any, ...]) -> None:
        """A write that nothing reads before the next use of `conn` (or the commit): batched with its like."""
        self._pending.setdefault(sql, []).append(params)

    def prime_head(self, seq: int, head: str) -> None:
        """The chain head, when the caller read it with its own first query."""
        if self._seq is None:
            self._seq, self._hash = seq, head

    def _load_head(self) -> None:
        seq, head = self.ledger.head()
        self._seq, self._hash = seq, head

    def append(
        self,
        kind: str,
        *,
        event_id: str,
        member_id: str | None = None,
        card_id: str | None = None,
        program_id: str | None = None,
        account: str | None = None,
        amount: int = 0,
        sale_id: str | None = None,
        ref_event_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Event:
        """Append one event to the chain and move its balance, in this transaction."""
        if self._seq is None:
            self._load_head()
        assert self._seq is not None
        seq = self._seq + 1
        body = payload or {}
        body_json = _CANONICAL.encode(body) if body else "{}"
        fields: dict[str, Any] = {
            "seq": seq,
            "event_id": event_id,
            "terminal_id": self.ledger.terminal_id,
            "store_id": self.ledger.store_id,
            "ts": self.ts,
            "business_day": self.day,
            "member_id": member_id,
            "card_id": card_id,
            "program_id": program_id,
            "account": account,
            "kind": kind,
            "amount": amount,
            "sale_id": sale_id,
            "ref_event_id": ref_event_id,
            "rules_version": self.ledger.rules_version,
            "payload": body_json,
            "prev_hash": self._hash,
        }
        digest = _digest(fields, body_json)
        self._pending.setdefault(INSERT_EVENT, []).append((*[fields[k] for k in HASHED], digest))
        if account is not None and member_id is not None and amount:
            self._pending.setdefault(_MOVE_BALANCE, []).append((member_id, program_id or "", account, amount))
        self._seq, self._hash = seq, digest
        event = Event(seq, event_id, kind, member_id, program_id, account, amount, sale_id, ref_event_id, payload or {}, digest)
        self.appended.append(event)
        return event

    def flush(self) -> None:
        self._write_pending()
        if self._seq is not None and self.appended:
            self._conn.execute(
                "UPDATE meta SET value = CASE key WHEN 'head_seq' THEN ? ELSE ? END WHERE key IN ('head_seq', 'head_hash')",
                (str(self._seq), self._hash),
            )

    def balance(self, member_id: str, program_id: str, account: str) -> int:
        row = self.conn.execute(
            "SELECT amount FROM balances WHERE member_id=? AND program_id=? AND account=?",
            (member_id, program_id, account),
        ).fetchone()
        return int(row[0]) if row else 0
