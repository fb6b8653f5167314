"""The central server's store: one SQLAlchemy Core code path for SQLite and PostgreSQL.

Push (DESIGN §7) runs in one transaction: the terminal row is locked, the
batch is checked against the stored chain head, the events are inserted, the
chain's balances move, and the members the batch touched get new change
numbers. Change numbers are taken from a one-row counter as the very last
write before COMMIT; the counter's row lock is held until the transaction
ends, so numbers are handed out in commit order and a reader that saw number
N has also seen every number below it. That is what lets the pull cursor be
a plain integer that never skips a row committed late.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    case,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import ConnectionPoolEntry

from ledger.ids import receipt_number
from ledger.lots import GIVEN as GIVEN_TO_DRAWS
from ledger.settings import MAX_TIER_WINDOW_DAYS
from ledger.store import GENESIS, HASHED, event_hash

from .protocol import WireEvent

SCHEMA_VERSION = 2
DEFAULT_DB = "sqlite:///var/server.db"
# far more events than one sale writes (a few per program, not per line): where its receipt's last event is looked for
SALE_EVENTS_MAX = 200
MOVABLE = ("points", "rewards", "stamps")  # accounts a member spends; spend is a total, never an overdraft

metadata = MetaData()

meta = Table("meta", metadata, Column("key", String(60), primary_key=True), Column("value", Text, nullable=False))

terminals = Table(
    "terminals",
    metadata,
    Column("tid", String(130), primary_key=True),
    Column("store_id", String(60), nullable=False),
    Column("terminal_id", String(60), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("last_seq", BigInteger, nullable=False, default=0),
    Column("last_hash", String(64), nullable=False, default=GENESIS),
    Column("last_push_at", String(40)),
    Column("last_seen_at", String(40)),  # last push or pull: an idle till that pulls is not lost
    Column("rules_version", Text),
    Column("created_at", String(40), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("event_id", String(120), primary_key=True),
    Column("tid", String(130), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("terminal_id", String(120), nullable=False),
    Column("store_id", String(120), nullable=False),
    Column("ts", Text, nullable=False),
    Column("business_day", Text, nullable=False),
    Column("member_id", String(120)),
    Column("card_id", String(120)),
    Column("program_id", Text),
    Column("account", Text),
    Column("kind", String(120), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("sale_id", String(120)),
    Column("ref_event_id", String(120)),
    Column("rules_version", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("tid", "seq", name="events_tid_seq"),
)
Index("events_member", events.c.member_id)

balances = Table(
    "balances",
    metadata,
    Column("member_id", String(120), primary_key=True),
    Column("program_id", Text, primary_key=True),
    Column("account", Text, primary_key=True),
    Column("amount", BigInteger, nullable=False),
)

# Each terminal's own share of a balance: a pull answers chain minus this.
terminal_balances = Table(
    "terminal_balances",
    metadata,
    Column("tid", String(130), primary_key=True),
    Column("member_id", String(120), primary_key=True),
    Column("program_id", Text, primary_key=True),
    Column("account", Text, primary_key=True),
    Column("amount", BigInteger, nullable=False),
)

members = Table(
    "members",
    metadata,
    Column("member_id", String(120), primary_key=True),
    Column("enrolled_store", String(120)),
    Column("enrolled_at", Text),
)

cards = Table(
    "cards",
    metadata,
    Column("card_id", String(120), primary_key=True),
    Column("member_id", String(120), nullable=False),
    Column("status", String(20), nullable=False),
    Column("replaced_by", String(120)),
    Column("reason", Text),  # why it was blocked, as the blocking till wrote it
)
Index("cards_member", cards.c.member_id)

member_changes = Table(
    "member_changes",
    metadata,
    Column("member_id", String(120), primary_key=True),
    Column("change_no", BigInteger, nullable=False),
)
Index("member_changes_no", member_changes.c.change_no)

change_counter = Table(
    "change_counter", metadata, Column("id", Integer, primary_key=True, autoincrement=False), Column("n", BigInteger, nullable=False)
)

overdrafts = Table(
    "overdrafts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", String(120), nullable=False),
    Column("program_id", Text, nullable=False),
    Column("account", Text, nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("tid", String(130), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", String(40), nullable=False),
)

flags = Table(
    "flags",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),
    Column("tid", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("at", String(40), nullable=False),
)

# Schema steps after the first: (version, statements). create_all builds the
# current shape on an empty database; an older one is brought up step by step.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (2, ("ALTER TABLE cards ADD COLUMN reason TEXT",)),
)


class SyncError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, **extra: Any):
        super().__init__(message)
        self.message = message
        self.extra = extra


class Unauthorized(SyncError):
    status, code = 401, "unauthorized"


class Forbidden(SyncError):
    status, code = 403, "forbidden"


class Gap(SyncError):
    status, code = 409, "seq_gap"


class Tamper(SyncError):
    status, code = 422, "tamper"


class Busy(SyncError):
    status, code = 503, "busy"


class Conflict(SyncError):
    status, code = 409, "exists"


class NotRegistered(SyncError):
    status, code = 404, "unknown_terminal"


class WrongCurrency(SyncError):
    status, code = 409, "wrong_currency"


class WrongChain(SyncError):
    status, code = 409, "wrong_chain"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def make_tid(store_id: str, terminal_id: str) -> str:
    return f"{store_id}:{terminal_id}"


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the installed driver)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _insert(conn: Connection) -> Callable[..., Any]:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


@dataclass
class PushResult:
    acked_seq: int
    acked_hash: str
    overdrafts: list[dict[str, Any]] = field(default_factory=list)
    stored: int = 0


class ServerStore:
    """The server's database; thread-safe (one engine, pooled connections)."""

    def __init__(self, url: str = DEFAULT_DB, *, pool_size: int = 10):
        self.url = normalize_url(url)
        self.engine = self._engine(self.url, pool_size)
        self.dialect = self.engine.dialect.name
        # a flag is written after the push's own transaction rolled back; one at a time is plenty
        self._flag_lock = threading.Lock()
        self._currency: str | None = None  # the chain's, once a till said it (check_currency)
        self._chain: str | None = None  # this server's chain id (chain_id)
        self.migrate()

    @staticmethod
    def _engine(url: str, pool_size: int) -> Engine:
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                from pathlib import Path

                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=pool_size, max_overflow=20)

            @event.listens_for(engine, "connect")
            def _connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
                # pysqlite's own BEGIN is deferred and late; take the write lock up front instead,
                # so two pushes never both read a chain head and then collide on upgrade.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                # readers keep WAL's concurrent snapshot; writers queue on the write lock
                conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE")

            return engine
        return create_engine(url, pool_size=pool_size, max_overflow=40, pool_pre_ping=True)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ schema

    def migrate(self) -> int:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # two servers starting on an empty database must not both create the tables
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(5150001)")
            metadata.create_all(conn, checkfirst=True)
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            version = int(row) if row else 0
            if version == 0:
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                conn.execute(change_counter.insert().values(id=1, n=0))
                version = SCHEMA_VERSION
            for step, statements in MIGRATIONS:
                if step > version:
                    for sql in statements:
                        conn.exec_driver_sql(sql)
                    conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(step)))
                    version = step
            # made here, under the migration's lock, so that no pull ever writes to find it (chain_id)
            if conn.execute(select(meta.c.value).where(meta.c.key == "chain_id")).scalar() is None:
                conn.execute(meta.insert().values(key="chain_id", value=uuid.uuid4().hex))
            return version

    def schema_version(self) -> int:
        with self._reader() as conn:
            return int(conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar_one())

    # ------------------------------------------------------------ terminals

    def add_terminal(self, store_id: str, terminal_id: str, *, rotate: bool = False) -> tuple[str, str]:
        """Register a terminal (or give it a new token); returns (tid, token). Only the hash is kept."""
        tid = make_tid(store_id, terminal_id)
        token = "lt_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            exists = conn.execute(select(terminals.c.tid).where(terminals.c.tid == tid)).scalar()
            if exists and not rotate:
                raise Conflict(f"terminal {tid} is already registered (use --rotate to issue a new token)")
            if not exists:  # an id typed in other letters is the same till to a person: a second one is a typo
                same = conn.execute(select(terminals.c.tid).where(func.lower(terminals.c.tid) == tid.lower())).scalar()
                if same is not None:
                    raise Conflict(f"terminal {tid} differs only in case from {same}, registered already: give its id as"
                                   " registered (--rotate issues it a new token)")
            if rotate and not exists:
                # a mistyped store or till must not become a new till with a token of its own
                raise NotRegistered(f"terminal {tid} is not registered: register it without --rotate")
            if exists:
                conn.execute(update(terminals).where(terminals.c.tid == tid).values(token_hash=token_hash(token)))
            else:
                conn.execute(
                    terminals.insert().values(
                        tid=tid, store_id=store_id, terminal_id=terminal_id, token_hash=token_hash(token),
                        last_seq=0, last_hash=GENESIS, created_at=now_iso(),
                    )
                )
        return tid, token

    def token_owner(self, token: str) -> str | None:
        """The terminal a token belongs to, or None; nothing is flagged (the operator asks, not a till)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(terminals.c.tid).where(terminals.c.token_hash == token_hash(token))).first()
        return str(row.tid) if row else None

    def check_currency(self, tid: str, token: str | None, code: str) -> None:
        """Amounts travel in minor units: a till in another currency would read 5.820 KWD as 58.20 EUR.

        The first registered till that says its currency sets the chain's; a till in
        another one is refused (and flagged), before anything is stored or sent.
        """
        kept = self._currency
        if kept == code:
            return
        self.authenticate(tid, token)  # only a registered till sets, or is told, the chain's currency
        with self.engine.begin() as conn:
            kept = conn.execute(select(meta.c.value).where(meta.c.key == "currency")).scalar()
            if kept is None:
                try:
                    with conn.begin_nested():
                        conn.execute(meta.insert().values(key="currency", value=code))
                    kept = code
                except IntegrityError:  # another till set it first
                    kept = conn.execute(select(meta.c.value).where(meta.c.key == "currency")).scalar()
        self._currency = kept
        if kept != code:
            self.flag("wrong_currency", tid, f"till in {code}, chain in {kept}")
            raise WrongCurrency(f"this chain's server keeps amounts in {kept}, and till {tid} is set up for {code}:"
                                f" nothing was sent or taken (check [store] currency)")

    def chain_id(self) -> str:
        """This chain's id, made once and kept in the database (a server restored from a backup keeps it).

        A till keeps the id of the server it synced with, and a server with another id
        refuses it: a till pointed at another chain's server would push its events into
        that chain and sell on balances the other chain never held.
        """
        if self._chain is None:
            with self._reader() as conn:  # made by migrate()
                self._chain = str(conn.execute(select(meta.c.value).where(meta.c.key == "chain_id")).scalar_one())
        return self._chain

    def check_chain(self, tid: str, token: str | None, chain: str) -> None:
        """A till that synced with another chain's server is refused (and flagged) before anything is stored or sent."""
        mine = self.chain_id()
        if chain == mine:
            return
        self.authenticate(tid, token)
        self.flag("wrong_chain", tid, f"till synced with chain {chain}, this server is chain {mine}")
        raise WrongChain(f"till {tid} synced with another chain's server (chain {chain[:8]}), this server is chain {mine[:8]}:"
                         " nothing was sent or taken")

    def authenticate(self, tid: str, token: str | None, conn: Connection | None = None) -> Any:
        """The terminal row of a token that may act as `tid`; a refusal is flagged for the manager.

        With `conn`, the lookup runs on it (as a reader, rolled back after), so a push checks
        out one pooled connection, not two.
        """
        row = None
        if token:
            if conn is None:
                with self.engine.connect() as own:
                    return self.authenticate(tid, token, own)
            conn.execution_options(read_only=True)
            try:
                row = conn.execute(select(terminals).where(terminals.c.token_hash == token_hash(token))).first()
                conn.rollback()
            finally:
                conn.execution_options(read_only=False)
        if row is None:
            self.flag("bad_token", tid, "unknown token" if token else "no bearer token")
            raise Unauthorized("unknown token" if token else "a bearer token is required")
        if row.tid != tid:
            self.flag("wrong_terminal", row.tid, f"token of {row.tid} used for {tid}")
            raise Forbidden(f"this token belongs to terminal {row.tid}, not {tid}")
        return row

    def flag(self, kind: str, tid: str, detail: str) -> None:
        with self._flag_lock, self.engine.begin() as conn:
            conn.execute(flags.insert().values(kind=kind, tid=tid[:130], detail=detail[:2000], at=now_iso()))

    # ------------------------------------------------------------ push

    def push(self, tid: str, token: str | None, from_seq: int, batch: Sequence[WireEvent]) -> PushResult:
        """Store a validated batch (`protocol.parse_push`: every optional field present)."""
        try:
            return self._push(tid, token, from_seq, batch)
        except Tamper as exc:
            self.flag("tamper", tid, exc.message)
            raise
        except IntegrityError as exc:
            # The unique event id is the idempotency check itself: the insert meets an id stored
            # by anyone (a PostgreSQL insert waits for a concurrent one to commit or roll back).
            taken = self._stored_elsewhere(tid, batch)
            if not taken and _unique_violation(exc):
                # nothing of this batch is stored: a race on another key (two first sightings of
                # one card); the retry will see the winner's row
                raise Busy("a concurrent push changed the same rows; retry") from None
            detail = f"event id {taken} is already stored with other content" if taken else f"refused by the database: {str(exc.orig)[:200]}"
            self.flag("tamper", tid, detail)
            raise Tamper(detail) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated or _retryable(exc):
                raise Busy("the database is busy; retry") from None
            raise

    def _push(self, tid: str, token: str | None, from_seq: int, batch: Sequence[WireEvent]) -> PushResult:
        with self.engine.connect() as conn:
            term = self.authenticate(tid, token, conn)
            # no transaction is open while the hashes are checked: nothing is locked yet
            self._check_batch(term, from_seq, batch)
            with conn.begin():
                return self.push_in(conn, tid, from_seq, batch)

    def _stored_elsewhere(self, tid: str, batch: Sequence[Mapping[str, Any]]) -> str | None:
        """An event id of the batch that the database holds as another event than this one."""
        wanted = {ev["event_id"]: ev["seq"] for ev in batch}
        with self._reader() as conn:
            for r in conn.execute(select(events.c.event_id, events.c.tid, events.c.seq).where(events.c.event_id.in_(list(wanted)))):
                if (r.tid, int(r.seq)) != (tid, wanted[r.event_id]):
                    return str(r.event_id)
        return None

    def _check_batch(self, term: Any, from_seq: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Everything that needs no database: ids, sequence, hashes, links inside the batch."""
        prev: str | None = None
        for i, ev in enumerate(rows):
            if ev["seq"] != from_seq + i:
                raise Tamper(f"event {i} has seq {ev['seq']}, expected {from_seq + i} (a batch is consecutive)")
            if ev["terminal_id"] != term.terminal_id or ev["store_id"] != term.store_id:
                raise Tamper(f"event seq {ev['seq']} claims terminal {ev['store_id']}:{ev['terminal_id']}")
            try:
                digest = event_hash(ev)
                if not ev["payload"].lstrip(" \t\r\n").startswith("{"):  # it parsed: an object, or not one at all
                    raise ValueError
            except (ValueError, TypeError, RecursionError):
                raise Tamper(f"event seq {ev['seq']}: payload is not a JSON object") from None
            if digest != ev["hash"]:
                raise Tamper(f"event seq {ev['seq']}: hash does not match its content")
            if prev is not None and ev["prev_hash"] != prev:
                raise Tamper(f"event seq {ev['seq']}: prev_hash does not link to the event before it")
            prev = ev["hash"]
        ids = [ev["event_id"] for ev in rows]
        if len(set(ids)) != len(ids):
            raise Tamper("the batch repeats an event id")

    def push_in(self, conn: Connection, tid: str, from_seq: int, rows: Sequence[Mapping[str, Any]]) -> PushResult:
        """The push transaction's body, on a connection whose transaction the caller owns."""
        term = conn.execute(select(terminals).where(terminals.c.tid == tid).with_for_update()).one()
        last_seq, last_hash = int(term.last_seq), str(term.last_hash)
        if from_seq > last_seq + 1:
            raise Gap(f"the server has this terminal's events up to seq {last_seq}", last_seq=last_seq, last_hash=last_hash)
        old = [ev for ev in rows if ev["seq"] <= last_seq]
        new = [ev for ev in rows if ev["seq"] > last_seq]
        if old:
            stored = {
                int(r.seq): (r.event_id, r.hash)
                for r in conn.execute(
                    select(events.c.seq, events.c.event_id, events.c.hash).where(
                        events.c.tid == tid, events.c.seq >= old[0]["seq"], events.c.seq <= old[-1]["seq"]
                    )
                )
            }
            for ev in old:
                if stored.get(ev["seq"]) != (ev["event_id"], ev["hash"]):
                    # what the manager reads in the flags: the common stories first, tampering last
                    raise Tamper(f"event seq {ev['seq']} was stored with other content: a second till set up with this till's id,"
                                 " a ledger begun again or put back from a copy, or events replayed and altered")
        if not new:
            return PushResult(last_seq, last_hash)
        if new[0]["prev_hash"] != last_hash:
            raise Tamper(f"event seq {new[0]['seq']}: prev_hash does not continue the stored chain at seq {last_seq}")
        # an event id stored before, by anyone, fails this insert on the primary key (see push)
        _insert_events(conn, tid, new)

        deltas: dict[tuple[str, str, str], int] = {}
        for ev in new:
            if ev["account"] is not None and ev["member_id"] is not None and ev["amount"]:
                key = (ev["member_id"], ev["program_id"] or "", ev["account"])
                deltas[key] = deltas.get(key, 0) + int(ev["amount"])
        touched = {ev["member_id"] for ev in new if ev["member_id"]}
        self._cards_and_members(conn, tid, new, touched)
        found: list[dict[str, Any]] = []
        if deltas:
            keys = sorted(deltas)  # one lock order for every push: no deadlock between two pushes
            self._add(conn, balances, [(*k, deltas[k]) for k in keys])
            self._add(conn, terminal_balances, [(tid, *k, deltas[k]) for k in keys])
            # only a debit can overdraw: read back just the balances this batch took from
            debited = sorted({m for (m, p, a), d in deltas.items() if d < 0 and a in MOVABLE})
            if debited:
                for r in conn.execute(select(balances).where(balances.c.member_id.in_(debited), balances.c.amount < 0)):
                    key = (r.member_id, r.program_id, r.account)
                    if key in deltas and deltas[key] < 0 and r.account in MOVABLE:
                        found.append({"member_id": r.member_id, "program_id": r.program_id, "account": r.account, "balance": int(r.amount)})
                found.sort(key=lambda o: (o["member_id"], o["program_id"], o["account"]))
            at = now_iso()
            head = int(new[-1]["seq"])
            if found:
                conn.execute(overdrafts.insert(), [{**o, "tid": tid, "seq": head, "at": at} for o in found])
        acked_seq, acked_hash = int(new[-1]["seq"]), str(new[-1]["hash"])
        conn.execute(
            update(terminals).where(terminals.c.tid == tid).values(
                last_seq=acked_seq, last_hash=acked_hash, last_push_at=now_iso(), last_seen_at=now_iso(),
                rules_version=new[-1]["rules_version"]
            )
        )
        self._number_changes(conn, sorted(touched))
        return PushResult(acked_seq, acked_hash, found, len(new))

    def _add(self, conn: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Add deltas to a balance table; rows are its primary key's values, then the amount."""
        keys = [c.name for c in table.primary_key.columns]
        _bulk(conn, table, [*keys, "amount"], rows,
              f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET amount = {table.name}.amount + excluded.amount")

    def _cards_and_members(self, conn: Connection, tid: str, new: Sequence[Mapping[str, Any]], touched: set[str]) -> None:
        ins = _insert(conn)
        for ev in new:
            kind, member_id, card_id = ev["kind"], ev["member_id"], ev["card_id"]
            if member_id is None or kind not in ("enrol", "block", "unblock", "replace", "referrer"):
                continue
            if kind == "enrol":
                conn.execute(
                    ins(members).values(member_id=member_id, enrolled_store=ev["store_id"], enrolled_at=ev["ts"]).on_conflict_do_nothing()
                )
                if card_id:
                    self._put_card(conn, tid, card_id, member_id, "active", None)
            elif kind in ("block", "unblock") and card_id:
                reason = json.loads(ev["payload"]).get("reason") if kind == "block" else None
                self._put_card(conn, tid, card_id, member_id, "blocked" if kind == "block" else "active", None, force=True,
                               reason=reason if isinstance(reason, str) and reason else None)
            elif kind == "replace" and card_id:
                new_card = json.loads(ev["payload"]).get("new_card")
                self._put_card(conn, tid, card_id, member_id, "replaced", new_card, force=True)
                # cards this one had replaced point at the card in use now, as on the till
                conn.execute(update(cards).where(cards.c.replaced_by == card_id, cards.c.status == "replaced",
                                                 cards.c.member_id == member_id).values(replaced_by=new_card))
                if isinstance(new_card, str):
                    self._put_card(conn, tid, new_card, member_id, "active", None)
            touched.add(member_id)

    def _put_card(self, conn: Connection, tid: str, card_id: str, member_id: str, status: str, replaced_by: str | None,
                  force: bool = False, reason: str | None = None) -> None:
        row = conn.execute(select(cards.c.member_id).where(cards.c.card_id == card_id)).first()
        if row is None:
            conn.execute(cards.insert().values(card_id=card_id, member_id=member_id, status=status, replaced_by=replaced_by, reason=reason))
            return
        if row.member_id != member_id:
            # two stores enrolled the same card offline: the first enrolment keeps the card, the manager decides
            conn.execute(flags.insert().values(kind="card_conflict", tid=tid, at=now_iso(),
                                               detail=f"card {card_id} belongs to member {row.member_id}; {tid} used it for {member_id}"))
            return
        if force:
            conn.execute(update(cards).where(cards.c.card_id == card_id).values(status=status, replaced_by=replaced_by, reason=reason))

    def _number_changes(self, conn: Connection, touched: list[str]) -> None:
        if not touched:
            return
        # numbers run ahead of the clock (microseconds) as well as the counter: a database restored from a backup,
        # whose counter went back, still numbers new changes past every cursor a till holds, so none is skipped
        k = len(touched)
        floor = int(time.time() * 1_000_000) + k
        end = int(conn.execute(
            update(change_counter).where(change_counter.c.id == 1)
            .values(n=case((change_counter.c.n + k > floor, change_counter.c.n + k), else_=floor)).returning(change_counter.c.n)
        ).scalar_one())
        start = end - len(touched) + 1
        _bulk(conn, member_changes, ("member_id", "change_no"), [(m, start + i) for i, m in enumerate(touched)],
              " ON CONFLICT (member_id) DO UPDATE SET change_no = excluded.change_no")

    # ------------------------------------------------------------ pull

    def changes(self, tid: str, token: str | None, since: int, limit: int) -> dict[str, Any]:
        self.authenticate(tid, token)
        with self._reader() as conn:
            page = self.changes_in(conn, tid, since, limit)
        if not page["more"]:
            self._seen(tid)
        return page

    def _seen(self, tid: str) -> None:
        """Best effort: a pull must not queue behind pushes for a timestamp the next pull sets anyway."""
        try:
            with self.engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                if self.dialect == "sqlite" and raw is not None:
                    raw.execute("PRAGMA busy_timeout=200")
                try:
                    with conn.begin():
                        conn.execute(update(terminals).where(terminals.c.tid == tid).values(last_seen_at=now_iso()))
                finally:
                    if self.dialect == "sqlite" and raw is not None:
                        raw.execute("PRAGMA busy_timeout=30000")
        except DBAPIError:
            pass

    def _reader(self) -> Connection:
        conn = self.engine.connect().execution_options(read_only=True)
        if self.dialect == "postgresql":
            # one snapshot for the page: the chain balance and this terminal's share must agree
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        return conn

    def _others_state(self, conn: Connection, tid: str, ids: list[str]) -> tuple[
        dict[str, list[dict[str, Any]]], dict[str, dict[str, list[dict[str, Any]]]], dict[str, list[str]], dict[str, str]
    ]:
        """What the other terminals' events say about these members beyond balances: money paid per
        business day (the tier window), the membership purchases (and the last change per program), the
        sales that redeemed on the last days (the daily cap) and the latest one per account (what a refused
        refund names), the bonuses paid, who referred them."""
        since = (datetime.now(UTC).date() - timedelta(days=MAX_TIER_WINDOW_DAYS)).isoformat()
        sale = events.alias("sale")  # a refund's reversal counts on the day of the sale it reverses
        day = func.coalesce(sale.c.business_day, events.c.business_day)
        spend: dict[str, list[dict[str, Any]]] = {}
        for row in conn.execute(
            select(events.c.member_id, day.label("day"), func.sum(events.c.amount).label("amount"))
            .select_from(events.outerjoin(sale, sale.c.event_id == events.c.ref_event_id))
            .where(events.c.member_id.in_(ids), events.c.tid != tid, events.c.program_id == "member",
                   events.c.account == "spend", events.c.business_day >= since)
            .group_by(events.c.member_id, day)
            .having(day >= since)
            .order_by(events.c.member_id, day)
        ):
            if int(row.amount):
                spend.setdefault(row.member_id, []).append({"day": row.day, "amount": int(row.amount)})
        # sales that redeemed something, without the refunded ones, per business day: the member's last three days
        # with any (the daily cap only needs today's, and a business day runs on the store's clock, not the server's)
        latest = dict(conn.execute(
            select(events.c.member_id, func.max(events.c.business_day))
            .where(events.c.member_id.in_(ids), events.c.tid != tid, events.c.kind == "redeem")
            .group_by(events.c.member_id)
        ).all())
        since_day = {m: (date.fromisoformat(d) - timedelta(days=2)).isoformat() for m, d in latest.items()}
        reversed_ = events.alias("reversed")
        redeem_days: dict[str, list[dict[str, Any]]] = {}
        for row in conn.execute(
            select(events.c.member_id, events.c.business_day, func.count(func.distinct(events.c.sale_id)).label("sales"))
            .select_from(events.outerjoin(reversed_, (reversed_.c.ref_event_id == events.c.event_id) & (reversed_.c.kind == "reverse")))
            .where(events.c.member_id.in_(list(since_day)), events.c.tid != tid, events.c.kind == "redeem",
                   events.c.business_day >= min(since_day.values(), default=""), reversed_.c.event_id.is_(None))
            .group_by(events.c.member_id, events.c.business_day)
            .order_by(events.c.member_id, events.c.business_day)
        ) if since_day else ():
            if row.business_day >= since_day[row.member_id]:
                redeem_days.setdefault(row.member_id, []).append({"day": row.business_day, "sales": int(row.sales)})
        # the latest sale elsewhere that redeemed from each account, not refunded: a refund here refused because a
        # later sale used what it would take back names that sale, even when it was at another till
        latest_redeem: dict[tuple[str, str, str], Any] = {}
        for redeem in conn.execute(
            select(events.c.member_id, events.c.program_id, events.c.account, events.c.tid, events.c.seq, events.c.store_id,
                   events.c.terminal_id, events.c.sale_id, events.c.business_day, events.c.ts)
            .select_from(events.outerjoin(reversed_, (reversed_.c.ref_event_id == events.c.event_id) & (reversed_.c.kind == "reverse")))
            .where(events.c.member_id.in_(ids), events.c.tid != tid, events.c.kind == "redeem", reversed_.c.event_id.is_(None))
            .order_by(events.c.ts, events.c.tid, events.c.seq)
        ):
            if redeem.program_id and redeem.account and redeem.sale_id:
                latest_redeem[(redeem.member_id, redeem.program_id, redeem.account)] = redeem
        # a receipt's number is the seq of its sale's last event: a sale's events follow one another at its till
        last_seq = {(r.tid, r.sale_id): int(r.seq) for r in latest_redeem.values()}
        sought = list(latest_redeem.values())
        for at in range(0, len(sought), 100):  # a page holds up to 1000 members: SQLite parses a long OR as deep as it is
            batch = sought[at:at + 100]
            for found in conn.execute(
                select(events.c.tid, events.c.sale_id, func.max(events.c.seq).label("seq"))
                .where(or_(*(and_(events.c.tid == r.tid, events.c.seq.between(r.seq, r.seq + SALE_EVENTS_MAX)) for r in batch)),
                       events.c.sale_id.in_({r.sale_id for r in batch}))
                .group_by(events.c.tid, events.c.sale_id)
            ):
                key = (found.tid, found.sale_id)
                if key in last_seq:  # (one sale id given at two tills is two sales)
                    last_seq[key] = max(last_seq[key], int(found.seq))
        last_redeems: dict[str, list[dict[str, Any]]] = {}
        for (member_id, program_id, account), row in sorted(latest_redeem.items()):
            last_redeems.setdefault(member_id, []).append({
                "program_id": program_id, "account": account, "store_id": row.store_id, "terminal_id": row.terminal_id,
                "receipt": receipt_number(row.terminal_id, last_seq[(row.tid, row.sale_id)]), "day": row.business_day,
                "ts": row.ts})
        last: dict[tuple[str, str], str | None] = {}
        paid: dict[str, list[str]] = {}
        referrers: dict[str, str] = {}
        buys: dict[str, list[dict[str, Any]]] = {}
        refunded: set[str] = set()
        for ev in conn.execute(
            select(events.c.event_id, events.c.member_id, events.c.program_id, events.c.account, events.c.kind, events.c.payload,
                   events.c.ts, events.c.business_day, events.c.ref_event_id)
            .where(events.c.member_id.in_(ids), events.c.tid != tid, events.c.kind.in_(("membership", "reverse", "bonus", "referrer")))
            .order_by(events.c.ts, events.c.tid, events.c.seq)
        ):
            payload = json.loads(ev.payload) if ev.payload else {}
            if ev.kind == "membership" and ev.program_id and isinstance(payload.get("from"), str) and isinstance(payload.get("until"), str):
                buys.setdefault(ev.member_id, []).append({"event_id": ev.event_id, "program_id": ev.program_id, "ts": ev.ts,
                                                          "day": ev.business_day, "from": payload["from"], "until": payload["until"]})
            elif ev.kind == "reverse" and ev.account is None and ev.ref_event_id:
                refunded.add(ev.ref_event_id)
            if ev.kind == "referrer":
                if isinstance(payload.get("referrer"), str):
                    referrers.setdefault(ev.member_id, payload["referrer"])  # the first one set holds, as at a till
            elif ev.kind == "bonus":
                if isinstance(payload.get("bonus"), str):
                    paid.setdefault(ev.member_id, []).append(payload["bonus"])
            elif ev.program_id and "until" in payload and (ev.kind == "membership" or ev.account is None):
                # a purchase, or a refund's reversal of one (no account; it carries the last day left)
                last[(ev.member_id, ev.program_id)] = payload["until"]
        # points the other tills drew on the chain beyond their own lots, less what their lots gave to draws
        # (a redemption's or adjustment's "remote"; a refund's reversal takes it back): the lots the asking till
        # holds give those first when they come due, and expire only the rest
        drawn: dict[tuple[str, str], int] = {}
        given: dict[tuple[str, str], int] = {}
        for moved in conn.execute(
            select(events.c.member_id, events.c.program_id, events.c.kind, events.c.payload)
            .where(events.c.member_id.in_(ids), events.c.tid != tid, events.c.account == "points",
                   events.c.payload.like('%"remote"%'))
        ):
            remote = json.loads(moved.payload).get("remote") if moved.payload else None
            if isinstance(remote, int) and moved.program_id:
                key = (moved.member_id, moved.program_id)
                drawn[key] = drawn.get(key, 0) + (-remote if moved.kind == "reverse" else remote)
                if moved.kind == GIVEN_TO_DRAWS:
                    given[key] = given.get(key, 0) - remote
        lists: dict[str, dict[str, list[dict[str, Any]]]] = {}  # per member: memberships, membership_buys, redeem_days, drawn, ...
        for (member_id, program_id), until in sorted(last.items()):
            lists.setdefault(member_id, {}).setdefault("memberships", []).append({"program_id": program_id, "until": until})
        for member_id, bought in buys.items():
            lists.setdefault(member_id, {})["membership_buys"] = [b | {"refunded": b["event_id"] in refunded} for b in bought]
        for member_id, days in redeem_days.items():
            lists.setdefault(member_id, {})["redeem_days"] = days
        for member_id, redeems in last_redeems.items():
            lists.setdefault(member_id, {})["last_redeems"] = redeems
        for (member_id, program_id), points in sorted(drawn.items()):
            if points or given.get((member_id, program_id)):
                lists.setdefault(member_id, {}).setdefault("drawn", []).append(
                    {"program_id": program_id, "points": points, "given": given.get((member_id, program_id), 0)})
        return spend, lists, {m: sorted(set(keys)) for m, keys in paid.items()}, referrers

    def changes_in(self, conn: Connection, tid: str, since: int, limit: int) -> dict[str, Any]:
        page = conn.execute(
            select(member_changes.c.member_id, member_changes.c.change_no)
            .where(member_changes.c.change_no > since)
            .order_by(member_changes.c.change_no)
            .limit(limit)
        ).all()
        out, hotlist = self._snapshots(conn, tid, [(r.member_id, int(r.change_no)) for r in page])
        rules = conn.execute(
            select(terminals.c.rules_version).where(terminals.c.last_push_at.is_not(None)).order_by(terminals.c.last_push_at.desc()).limit(1)
        ).scalar()
        mine = conn.execute(select(terminals.c.last_seq, terminals.c.last_hash).where(terminals.c.tid == tid)).one()
        return {
            "cursor": int(page[-1].change_no) if page else since,
            "more": len(page) == limit,
            "members": out,
            "hotlist": hotlist,
            "rules_version": rules,
            "server_time": now_iso(),
            # what the asking till can check its own state against: a server restored from a backup holds fewer of
            # its events (it resends them) and counts changes from lower (it pulls again from the start)
            "acked_seq": int(mine.last_seq),
            "acked_hash": str(mine.last_hash),
            "changes_head": int(conn.execute(select(change_counter.c.n).where(change_counter.c.id == 1)).scalar() or 0),
            "chain_id": self.chain_id(),
        }

    def card(self, tid: str, token: str | None, card_id: str) -> dict[str, Any]:
        """The member who holds `card_id` in the chain, as a pull page shows it (none: an unknown card).

        A till asks before it enrols a card it does not know: a card enrolled, or given
        to a member by a replace, at another store since its last pull is that member,
        not a new one. The till's pull cursor does not move.
        """
        self.authenticate(tid, token)
        with self._reader() as conn:
            row = conn.execute(
                select(cards.c.member_id, func.coalesce(member_changes.c.change_no, 0).label("change_no"))
                .select_from(cards.outerjoin(member_changes, member_changes.c.member_id == cards.c.member_id))
                .where(cards.c.card_id == card_id)
            ).first()
            out, hotlist = self._snapshots(conn, tid, [(row.member_id, int(row.change_no))] if row else [])
        return {"members": out, "hotlist": hotlist, "server_time": now_iso(), "chain_id": self.chain_id()}

    def _snapshots(self, conn: Connection, tid: str, page: list[tuple[str, int]]) -> tuple[list[dict[str, Any]], list[str]]:
        """Each member's snapshot for the asking till (its own share taken out of the balances), and their blocked cards."""
        ids = [member_id for member_id, _change in page]
        out: list[dict[str, Any]] = []
        hotlist: list[str] = []
        if ids:
            info = {r.member_id: r for r in conn.execute(select(members).where(members.c.member_id.in_(ids)))}
            card_rows: dict[str, list[dict[str, Any]]] = {}
            for r in conn.execute(select(cards).where(cards.c.member_id.in_(ids)).order_by(cards.c.card_id)):
                card = {"card_id": r.card_id, "status": r.status, "replaced_by": r.replaced_by}
                if r.status == "blocked" and r.reason:
                    card["reason"] = r.reason
                card_rows.setdefault(r.member_id, []).append(card)
                if r.status == "blocked":
                    hotlist.append(r.card_id)
            own = {
                (r.member_id, r.program_id, r.account): int(r.amount)
                for r in conn.execute(select(terminal_balances).where(terminal_balances.c.tid == tid, terminal_balances.c.member_id.in_(ids)))
            }
            bal: dict[str, list[dict[str, Any]]] = {}
            for r in conn.execute(select(balances).where(balances.c.member_id.in_(ids)).order_by(balances.c.program_id, balances.c.account)):
                chain = int(r.amount)
                bal.setdefault(r.member_id, []).append(
                    {"program_id": r.program_id, "account": r.account, "chain": chain, "amount": chain - own.get((r.member_id, r.program_id, r.account), 0)}
                )
            spend, lists, awards, referrers = self._others_state(conn, tid, ids)
            for member_id, change_no in page:
                m = info.get(member_id)
                out.append({
                    "member_id": member_id,
                    "enrolled_store": m.enrolled_store if m else None,
                    "enrolled_at": m.enrolled_at if m else None,
                    "change": change_no,
                    "cards": card_rows.get(member_id, []),
                    "balances": bal.get(member_id, []),
                    "spend_days": spend.get(member_id, []),
                    # memberships: the last day per program, for tills that do not count purchases (ledger/memberships.py)
                    **{key: lists.get(member_id, {}).get(key, []) for key in ("memberships", "membership_buys", "redeem_days", "drawn", "last_redeems")},
                    "awards": awards.get(member_id, []),
                    "referrer_id": referrers.get(member_id),
                })
        return out, hotlist

    # ------------------------------------------------------------ reports

    def reports(self, *, stale_after: timedelta = timedelta(days=1), now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        cutoff = (now - stale_after).astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        with self._reader() as conn:
            od = conn.execute(
                select(overdrafts, balances.c.amount.label("current"))
                .select_from(overdrafts.outerjoin(balances, (balances.c.member_id == overdrafts.c.member_id)
                                                  & (balances.c.program_id == overdrafts.c.program_id)
                                                  & (balances.c.account == overdrafts.c.account)))
                .order_by(overdrafts.c.id)
            ).all()
            held: dict[str, list[str]] = {}  # the cards a member holds: what the manager can look a customer up by
            for card in conn.execute(
                select(cards.c.member_id, cards.c.card_id)
                .where(cards.c.member_id.in_({r.member_id for r in od}), cards.c.status != "replaced")
                .order_by(cards.c.card_id)
            ) if od else ():
                held.setdefault(card.member_id, []).append(card.card_id)
            fl = conn.execute(select(flags).order_by(flags.c.id)).all()
            stale = conn.execute(
                select(terminals).where(terminals.c.last_seen_at.is_(None) | (terminals.c.last_seen_at < cutoff)).order_by(terminals.c.tid)
            ).all()
        return {
            "overdrafts": [
                {"member_id": r.member_id, "cards": held.get(r.member_id, []), "program_id": r.program_id, "account": r.account,
                 "balance": int(r.balance), "current": int(r.current or 0), "tid": r.tid, "seq": int(r.seq), "at": r.at}
                for r in od
            ],
            "flags": [{"kind": r.kind, "tid": r.tid, "detail": r.detail, "at": r.at} for r in fl],
            "stale_terminals": [
                {"tid": r.tid, "store_id": r.store_id, "terminal_id": r.terminal_id, "last_seq": int(r.last_seq),
                 "last_push_at": r.last_push_at, "last_seen_at": r.last_seen_at}
                for r in stale
            ],
        }

    # ------------------------------------------------------------ reads for tests and operators

    def event_count(self, tid: str | None = None) -> int:
        with self._reader() as conn:
            q = select(func.count()).select_from(events)
            if tid is not None:
                q = q.where(events.c.tid == tid)
            return int(conn.execute(q).scalar_one())

    def balances_of(self, member_ids: Iterable[str] | None = None) -> dict[tuple[str, str, str], int]:
        with self._reader() as conn:
            q = select(balances)
            if member_ids is not None:
                q = q.where(balances.c.member_id.in_(list(member_ids)))
            return {(r.member_id, r.program_id, r.account): int(r.amount) for r in conn.execute(q)}

    def terminal_head(self, tid: str) -> tuple[int, str]:
        with self._reader() as conn:
            r = conn.execute(select(terminals.c.last_seq, terminals.c.last_hash).where(terminals.c.tid == tid)).one()
            return int(r.last_seq), str(r.last_hash)


_EVENT_COLUMNS = ("tid", *HASHED, "hash")
_event_values = itemgetter(*_EVENT_COLUMNS[1:])
_EVENT_TYPES = ["int8" if isinstance(events.c[c].type, BigInteger) else "text" for c in _EVENT_COLUMNS]
_COPY_EVENTS = f"COPY events ({', '.join(_EVENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_INSERT_EVENTS = f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})"


def _insert_events(conn: Connection, tid: str, new: Sequence[Mapping[str, Any]]) -> None:
    """The batch's events, in the push's transaction.

    PostgreSQL takes them by binary COPY: psycopg encodes each row in C, where
    an INSERT, even of one array per column, dumps every value in Python.
    A duplicate event id fails the COPY like an INSERT, on the primary key.
    """
    if conn.dialect.name != "postgresql":
        conn.exec_driver_sql(_INSERT_EVENTS, [(tid, *_event_values(ev)) for ev in new])
        return
    import psycopg

    raw: Any = conn.connection.dbapi_connection
    try:
        with raw.cursor() as cur, cur.copy(_COPY_EVENTS) as copy:
            copy.set_types(_EVENT_TYPES)
            for ev in new:
                copy.write_row((tid, *_event_values(ev)))
    except psycopg.Error as exc:
        # the driver was called directly: give push the error SQLAlchemy would have raised
        raise DBAPIError.instance(_COPY_EVENTS, None, exc, psycopg.Error) from exc


def _bulk(conn: Connection, table: Table, cols: Sequence[str], rows: list[tuple[Any, ...]], tail: str = "") -> None:
    """Insert many rows, the hot path of a push, straight to the driver.

    The statement is the same plain SQL on both backends; only the way the
    rows travel differs. SQLite's executemany is a C loop. psycopg's runs
    Python per row, so PostgreSQL gets one array per column and `unnest`:
    one statement, prepared once, whatever the batch size. The arrays travel
    in binary (`%b`): in text, psycopg quotes each element through a regex.
    """
    if not rows:
        return
    names = ", ".join(cols)
    if conn.dialect.name == "postgresql":
        types = ["bigint" if isinstance(table.c[c].type, BigInteger | Integer) else "text" for c in cols]
        arrays = ", ".join(f"%b::{t}[]" for t in types)
        columns = tuple(list(col) for col in zip(*rows, strict=True))
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}){tail}", columns)
        return
    marks = ", ".join("?" * len(cols))
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks}){tail}", rows)


def _unique_violation(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(exc.orig)


def _retryable(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    if code in ("40001", "40P01", "55P03", "57014"):
        return True
    return "database is locked" in str(exc.orig)
