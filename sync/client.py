"""The terminal's side of sync: push the outbox, pull the chain's changes.

State lives in the ledger file's `sync_state` table, so an interrupted sync
resumes where it stopped: the ack of a push and a pulled page with its cursor
are each written in one transaction. Every request is safe to repeat (the
server ignores events it has and pages are absolute snapshots), so a lost
reply is simply retried.
"""

from __future__ import annotations

import json
import queue
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ledger import memberships
from ledger.clock import from_iso
from ledger.config import Config
from ledger.errors import LoyaltyError
from ledger.store import GENESIS, HASHED

from .protocol import MAX_BATCH

SKEW_WARN_S = 120.0


@dataclass(frozen=True, slots=True)
class Progress:
    phase: str  # push, pull
    done: int
    total: int  # 0 when unknown (pull: pages are counted as they come)


ProgressFn = Callable[[Progress], None]


class SyncFailed(LoyaltyError):
    pass


class Offline(SyncFailed):
    def __init__(self, message: str):
        super().__init__("offline", message)


@dataclass
class PushSummary:
    sent: int = 0
    requests: int = 0
    acked_seq: int = 0
    acked_hash: str = GENESIS
    head_seq: int = 0
    overdrafts: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "requests": self.requests, "acked_seq": self.acked_seq, "acked_hash": self.acked_hash,
                "head_seq": self.head_seq, "overdrafts": self.overdrafts}


@dataclass
class PullSummary:
    pages: int = 0
    members: int = 0
    new_members: int = 0
    new_cards: int = 0
    hotlisted: int = 0
    cursor: int = 0
    rules_version: str | None = None
    clock_skew_s: float | None = None
    # the server was restored from a backup: it holds fewer of this till's events (they must be pushed again),
    # or counts changes from lower than the till's cursor (the pull started again from 0)
    rewound_ack: bool = False
    restarted: bool = False
    # cards this till enrolled as a new member that the chain has for another (docs/sync.md: card conflicts)
    conflicts: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"pages": self.pages, "members": self.members, "new_members": self.new_members, "new_cards": self.new_cards,
                "hotlisted": self.hotlisted, "cursor": self.cursor, "rules_version": self.rules_version,
                "clock_skew_s": self.clock_skew_s, "rewound_ack": self.rewound_ack, "restarted": self.restarted,
                "conflicts": self.conflicts}


def skew_warning(skew_s: float | None) -> str | None:
    """What to tell the operator when the till's clock is off the server's by more than SKEW_WARN_S
    (`skew_s` is the server's time minus the till's)."""
    if skew_s is None or abs(skew_s) <= SKEW_WARN_S:
        return None
    way = "behind" if skew_s > 0 else "ahead of"
    return f"this till's clock is {abs(skew_s):.0f} s {way} the server's: check its time setting (receipts and days use it)"


def read_token(path: Path | None) -> str:
    if path is None:
        raise SyncFailed("no_token", "[sync] token_file is not set: register the terminal with `loyalty server add-terminal`")
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        raise SyncFailed("no_token", f"cannot read the terminal token {path} (from `loyalty server add-terminal`)") from None
    except UnicodeDecodeError:
        raise SyncFailed("no_token", f"the terminal token file {path} is not the token `loyalty server add-terminal` wrote"
                                     " (not text): check [sync] token_file") from None
    if not token:
        raise SyncFailed("no_token", f"the terminal token file {path} is empty")
    if not token.isascii() or any(c.isspace() or not c.isprintable() for c in token):  # it would fail as a header, not as a login
        raise SyncFailed("no_token", f"the terminal token file {path} holds more than the token `loyalty server add-terminal`"
                                     " wrote (spaces, line breaks or other characters): check [sync] token_file")
    return token


class SyncClient:
    """Sync of one terminal's ledger (an open sqlite3 connection in autocommit mode) with the server."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        server: str,
        token: str,
        store_id: str,
        terminal_id: str,
        http: httpx.Client | None = None,
        timeout_s: float = 10.0,
        attempts: int = 6,
        backoff_s: float = 0.2,
        backoff_max_s: float = 5.0,
        give_up_s: float | None = None,
        on_retry: Callable[[str, float], None] | None = None,
        batch: int = MAX_BATCH,
        page: int = 500,
        progress: ProgressFn | None = None,
        rng: random.Random | None = None,
        owns_conn: bool = False,
        clock: Callable[[], datetime] | None = None,
    ):
        self.conn = conn
        # the till's clock (`--now` in scripts): snapshot ages are measured against it
        self.clock = clock
        self.owns_conn = owns_conn
        self.tid = f"{store_id}:{terminal_id}"
        self.http = http or httpx.Client(base_url=server, timeout=timeout_s)
        self._own_http = http is None
        self.headers = {"Authorization": f"Bearer {token}"}
        currency = _ledger_currency(conn)
        if currency:  # the server refuses a till in another currency than the chain's (amounts are minor units)
            self.headers["X-Loyalty-Currency"] = currency
        chain = conn.execute("SELECT value FROM sync_state WHERE key='chain_id'").fetchone()
        if chain:  # the server this till synced with: another chain's server refuses it
            self.headers["X-Loyalty-Chain"] = str(chain[0])
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        # attempts bound a server that answers badly; this bounds the wait for one that does not answer at all
        self.give_up_s = give_up_s
        self.on_retry = on_retry  # told why and how long before each retry, for a person watching
        self.batch = min(batch, MAX_BATCH)
        self.page = page
        self.progress = progress
        self.rng = rng or random.Random()
        self.retries = 0

    def close(self) -> None:
        if self._own_http:
            self.http.close()
        if self.owns_conn:
            self.conn.close()

    # ------------------------------------------------------------ state

    def state(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.conn.execute("SELECT key, value FROM sync_state").fetchall()}

    def _set(self, values: dict[str, Any]) -> None:
        self.conn.executemany(
            "INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def acked(self) -> tuple[int, str]:
        st = self.state()
        return int(st.get("acked_seq", 0)), st.get("acked_hash", GENESIS)

    def pending(self) -> int:
        head = int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
        return head - self.acked()[0]

    # ------------------------------------------------------------ transport

    def _request(self, method: str, url: str, headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        """One logical request, retried with jittered exponential backoff on anything transient."""
        headers = {**self.headers, **(headers or {})}
        last = ""
        started = time.monotonic()
        for attempt in range(self.attempts):
            if attempt:
                delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)) * (0.5 + self.rng.random() / 2)
                if self.give_up_s is not None and time.monotonic() - started + delay > self.give_up_s:
                    break
                self.retries += 1
                if self.on_retry:
                    self.on_retry(last, delay)
                time.sleep(delay)
            try:
                resp = self.http.request(method, url, headers=headers, **kw)
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError) and "WRONG_VERSION_NUMBER" in str(exc):
                    # https:// to a server that speaks plain HTTP: a setting to fix, not an outage to wait out
                    raise SyncFailed("not_a_sync_server", f"{self.http.base_url} does not speak TLS (https): the server"
                                     " listens on plain http://, or [sync] server names the wrong port; check [sync]"
                                     " server") from None
                last = f"{type(exc).__name__}: {exc}"
                continue
            try:
                body = resp.json()
            except ValueError as exc:
                if 400 <= resp.status_code < 500 or resp.status_code == 501:
                    # another web server's page (404, or 501 to a POST): no wait makes it a loyalty server
                    return resp.status_code, {}
                kind = resp.headers.get("content-type", "")
                if resp.status_code < 300 and "json" not in kind:  # a page, not an answer cut off on the way
                    raise SyncFailed("not_a_sync_server", f"{self.http.base_url} answered HTTP {resp.status_code} with"
                                     f" {kind.split(';')[0] or 'no content type'}, not as a loyalty sync server;"
                                     " check [sync] server (scheme, host, port, no path)") from None
                last = f"HTTP {resp.status_code}, {type(exc).__name__}: {exc}"  # cut off or garbled on the way: try again
                continue
            if resp.status_code >= 500 or not isinstance(body, dict):
                said = body.get("message") if isinstance(body, dict) else None
                last = f"HTTP {resp.status_code}" + (f": {said}" if said else "")
                continue
            return resp.status_code, body
        raise Offline(f"the sync server is unreachable or cannot answer ({last}); sales go on offline; sync again later (the till app tries again by itself)")

    def _chain_of(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chain id an answer gave, to keep with what it brought, the first time (then sent with every request)."""
        chain = body.get("chain_id")
        if not isinstance(chain, str) or "X-Loyalty-Chain" in self.headers:
            return {}
        self.headers["X-Loyalty-Chain"] = chain
        return {"chain_id": chain}

    def _refused(self, what: str, status: int, body: dict[str, Any]) -> SyncFailed:
        if status == 401 and body.get("error") == "unauthorized":  # a wrong token file, or another chain's server
            return SyncFailed("unauthorized", f"{what} refused (HTTP 401): {body.get('message')}: the server at {self.http.base_url}"
                              " does not know this till's token. Check [sync] token_file, and that [sync] server is this chain's"
                              " server; the operator issues a new token with loyalty server add-terminal --rotate (or, for a"
                              " server put back from a backup older than this till's registration, registers it again without"
                              " --rotate, writing the token to a new file)")
        if status == 409 and body.get("error") == "wrong_chain":
            return SyncFailed("wrong_chain", f"{what} refused: {body.get('message')}. The server at {self.http.base_url} is another"
                              " chain's: check [sync] server. If this chain's server was set up anew from nothing (no backup),"
                              " loyalty sync --new-server takes it as this till's server")
        if "error" in body and "message" in body:  # the loyalty server's own answer
            return SyncFailed(str(body["error"]), f"{what} refused (HTTP {status}): {body['message']}")
        # something else answered: a wrong path or port, a proxy
        return SyncFailed(f"{what}_refused", f"{what} refused (HTTP {status}): {self.http.base_url} does not answer as a loyalty sync server;"
                          " check [sync] server (scheme, host, port, no path)")

    def online(self, timeout_s: float = 2.0) -> bool:
        try:
            return self.http.get("/v1/health", timeout=timeout_s).status_code == 200
        except httpx.TransportError:
            return False

    # ------------------------------------------------------------ push

    def push(self) -> PushSummary:
        acked, _ = self.acked()
        head = int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
        out = PushSummary(acked_seq=acked, head_seq=head)
        start = acked
        self._report("push", 0, head - start)
        while acked < head:
            # the next batches are read and encoded on another connection while this one is on the wire
            with _Prefetch(self.conn, acked, head, self.batch) as batches:
                for first, last, payload in batches:
                    if last <= acked:
                        continue
                    if first != acked + 1:
                        break  # the server acked other than a batch end: read again from its ack
                    status, body = self._request("POST", f"/v1/terminals/{self.tid}/events", content=payload,
                                                 headers={"Content-Type": "application/json"})
                    out.requests += 1
                    if status == 409 and "last_seq" in body:
                        # the server has less than we thought (restored from a backup): resend from its head
                        last_seq = int(body["last_seq"])
                        if last_seq > acked or self._hash_at(last_seq) != body.get("last_hash"):
                            raise SyncFailed("chain_mismatch", f"the server's chain head (seq {last_seq}) is not this ledger's: call support")
                        acked = last_seq
                        with self._tx():
                            self._set({"acked_seq": last_seq, "acked_hash": body["last_hash"]})
                        break
                    if status == 422 and body.get("error") == "tamper" and "other content" in str(body.get("message")):
                        # events the server holds otherwise under the same numbers: not this till's ledger as the
                        # chain knows it (lost and begun again, an older copy sold on, or another file in its place)
                        at = re.search(r"seq \d+", str(body.get("message")))
                        raise SyncFailed("ledger_not_servers", f"push refused: the server holds other events under this till's"
                                         f" numbers ({at.group(0) if at else 'its chain'}). Either another till is set up with this"
                                         f" till's id ({self.tid}) and token: this ledger's sales cannot be synced under that id; keep"
                                         " its file (its receipts stay valid), run this till on a new [ledger] path under an id of its"
                                         " own ([store] terminal, loyalty server add-terminal), and the manager gives the members the"
                                         " points it paid with card adjust. Or this ledger was begun again (the till's file lost), sold"
                                         " on from an older copy, or replaced: put back the till's own ledger ([ledger] path: a backup,"
                                         " or a ledger.db.rescued-* file). Nothing was sent")
                    if status != 200:
                        raise self._refused("push", status, body)
                    ack, ack_hash = int(body["acked_seq"]), str(body["acked_hash"])
                    if ack > head or self._hash_at(ack) != ack_hash:
                        raise SyncFailed("chain_mismatch", f"the server acknowledged seq {ack} with a hash this ledger does not have")
                    out.overdrafts.extend(body.get("overdrafts", []))
                    out.sent += max(0, ack - acked)
                    acked = max(acked, ack)
                    with self._tx():
                        self._set({"acked_seq": acked, "acked_hash": ack_hash, "last_push_at": self._stamp(), **self._chain_of(body)})
                    self._report("push", acked - start, head - start)
        out.acked_seq, out.acked_hash = self.acked()
        return out

    def _hash_at(self, seq: int) -> str:
        if seq == 0:
            return GENESIS
        row = self.conn.execute("SELECT hash FROM events WHERE seq=?", (seq,)).fetchone()
        return str(row[0]) if row else ""

    # ------------------------------------------------------------ pull

    def pull(self) -> PullSummary:
        out = PullSummary(cursor=int(self.state().get("cursor", 0)))
        self._report("pull", 0, 0)
        while True:
            sent = datetime.now(UTC)
            status, body = self._request("GET", f"/v1/terminals/{self.tid}/changes", params={"since": out.cursor, "limit": self.page})
            if status != 200:
                raise self._refused("pull", status, body)
            received = datetime.now(UTC)
            server = from_iso(str(body["server_time"]))
            out.clock_skew_s = round((server - (sent + (received - sent) / 2)).total_seconds(), 3)
            if out.pages == 0 and self._check_server_state(body, out):
                continue  # the server was restored: pull from the start
            self._apply(body, out)
            out.pages += 1
            out.rules_version = body.get("rules_version")
            self._report("pull", out.pages, 0)
            if not body.get("more"):
                return out

    def _check_server_state(self, page: dict[str, Any], out: PullSummary) -> bool:
        """The server's word on this till against the ledger's, before the first page is applied. True: pull again
        from 0 (the server counts changes from lower than this till's cursor: it was restored from a backup)."""
        head = int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
        acked, _ = self.acked()
        server_seq, server_hash = page.get("acked_seq"), page.get("acked_hash")
        if isinstance(server_seq, int) and isinstance(server_hash, str):
            if server_seq > head:
                raise SyncFailed("ledger_behind_server", f"the server holds this till's events up to seq {server_seq}, this ledger only"
                                 f" up to {head}: the ledger was put back from an older copy. Put back the latest ledger file"
                                 " ([ledger] path); sales made on this copy cannot be synced")
            if server_seq < acked:  # restored from a backup: what it lost goes again, from its head
                if self._hash_at(server_seq) != server_hash:
                    raise SyncFailed("chain_mismatch", f"the server's chain head (seq {server_seq}) is not this ledger's: call support")
                with self._tx():
                    self._set({"acked_seq": server_seq, "acked_hash": server_hash})
                out.rewound_ack = True
        changes_head = page.get("changes_head")
        if isinstance(changes_head, int) and out.cursor > changes_head and not out.restarted:
            with self._tx():
                self._set({"cursor": 0})
            out.cursor, out.restarted = 0, True
            return True
        return False

    def lookup_card(self, card_id: str) -> bool:
        """Ask the chain for a card this till does not know, before enrolling it; True: another store has it.

        A card enrolled, or given to a member by a replace, at another store since
        this till's last pull is then that member here too, not a second one with a
        second welcome bonus. The member's snapshot is applied as a pull applies it;
        the pull cursor does not move (the next pull brings the member again).
        """
        status, body = self._request("GET", f"/v1/terminals/{self.tid}/card", params={"id": card_id})
        if status != 200:
            raise self._refused("card lookup", status, body)
        if not body.get("members"):
            return False
        out = PullSummary()
        with self._tx():
            self._apply_members(body, out, self._stamp())
            self._set(self._chain_of(body))
        return True

    def _apply(self, page: dict[str, Any], out: PullSummary) -> None:
        """One page and its cursor, in one transaction."""
        now = self._stamp()
        with self._tx():
            self._apply_members(page, out, now)
            out.cursor = int(page["cursor"])
            values: dict[str, Any] = {"cursor": out.cursor, "last_pull_at": now, **self._chain_of(page)}
            if out.clock_skew_s is not None:
                values["clock_skew_s"] = out.clock_skew_s
            if page.get("rules_version"):
                values["server_rules_version"] = page["rules_version"]
            self._set(values)

    def _apply_members(self, page: dict[str, Any], out: PullSummary, now: str) -> None:
        """The page's member snapshots, inside the caller's transaction."""
        conn = self.conn
        acked = int(self.state().get("acked_seq", 0))
        pending = {str(r[0]) for r in conn.execute(
            "SELECT card_id FROM events WHERE seq > ? AND kind IN ('block', 'unblock', 'replace', 'enrol') AND card_id IS NOT NULL", (acked,))}
        for m in page["members"]:
            mid = m["member_id"]
            cur = conn.execute(
                "INSERT OR IGNORE INTO members (id, enrolled_store, enrolled_at) VALUES (?, ?, ?)",
                (mid, m.get("enrolled_store") or "", m.get("enrolled_at") or now),
            )
            out.new_members += cur.rowcount
            for c in m["cards"]:
                row = conn.execute("SELECT member_id, status, replaced_by, reason FROM cards WHERE id=?", (c["card_id"],)).fetchone()
                blocked = c["status"] == "blocked"
                said = c.get("reason") if blocked else None  # the blocking till's reason, when it gave one
                if row is None:
                    conn.execute(
                        "INSERT INTO cards (id, member_id, status, replaced_by, reason, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (c["card_id"], mid, c["status"], c.get("replaced_by"), said or ("blocked at another till" if blocked else None), now),
                    )
                    out.new_cards += 1
                elif row[0] == mid and c["card_id"] not in pending and (
                        (row[1], row[2]) != (c["status"], c.get("replaced_by")) or (said and said != row[3])):
                    # the chain's word on a card's status wins unless this till changed it and has not pushed yet
                    reason = (said or row[3] or "blocked at another till") if blocked else None
                    conn.execute("UPDATE cards SET status=?, replaced_by=?, reason=? WHERE id=?",
                                 (c["status"], c.get("replaced_by"), reason, c["card_id"]))
                    out.hotlisted += blocked and row[1] != "blocked"
                elif row[0] != mid and c["status"] != "replaced":
                    # enrolled here as a new member while the chain had it for another: the server flagged it
                    # (card_conflict); this till keeps its own member, and says so
                    out.conflicts.append({"card": c["card_id"], "member_here": str(row[0]), "member_chain": mid})
            conn.execute("DELETE FROM remote_balances WHERE member_id=?", (mid,))
            conn.executemany(
                "INSERT INTO remote_balances (member_id, program_id, account, amount, synced_at) VALUES (?, ?, ?, ?, ?)",
                [(mid, b["program_id"], b["account"], int(b["amount"]), now) for b in m["balances"]],
            )
            for table in ("remote_spend", "remote_memberships", "remote_membership_buys", "remote_redeem_days", "remote_awards",
                          "remote_draws", "remote_last_redeems"):
                conn.execute(f"DELETE FROM {table} WHERE member_id=?", (mid,))
            conn.executemany("INSERT INTO remote_draws (member_id, program_id, points, given) VALUES (?, ?, ?, ?)",
                             [(mid, d["program_id"], int(d["points"]), int(d.get("given", 0))) for d in m.get("drawn", [])])
            conn.executemany("INSERT OR REPLACE INTO remote_redeem_days (member_id, day, sales) VALUES (?, ?, ?)",
                             [(mid, d["day"], int(d["sales"])) for d in m.get("redeem_days", [])])
            conn.executemany(
                "INSERT OR REPLACE INTO remote_last_redeems (member_id, program_id, account, store_id, terminal_id, receipt, day, ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(mid, r["program_id"], r["account"], r["store_id"], r["terminal_id"], r["receipt"], r["day"], r["ts"])
                 for r in m.get("last_redeems", [])],
            )
            conn.executemany("INSERT INTO remote_spend (member_id, day, amount) VALUES (?, ?, ?)",
                             [(mid, d["day"], int(d["amount"])) for d in m.get("spend_days", [])])
            if "membership_buys" in m:  # every purchase: the till works out the last day (ledger/memberships.py)
                conn.executemany(
                    "INSERT OR IGNORE INTO remote_membership_buys (member_id, event_id, program_id, ts, day, from_day, until, refunded)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(mid, b["event_id"], b["program_id"], b["ts"], b["day"], b["from"], b["until"], int(bool(b["refunded"])))
                     for b in m["membership_buys"]],
                )
                programs = {b["program_id"] for b in m["membership_buys"]} | {
                    r[0] for r in conn.execute("SELECT program_id FROM memberships WHERE member_id=?", (mid,))}
                for program_id in sorted(programs):
                    memberships.settle(conn, mid, program_id)
            else:  # a server that sends each program's last day only
                conn.executemany("INSERT INTO remote_memberships (member_id, program_id, valid_until) VALUES (?, ?, ?)",
                                 [(mid, ms["program_id"], ms["until"]) for ms in m.get("memberships", [])])
            conn.executemany("INSERT INTO remote_awards (member_id, award) VALUES (?, ?)",
                             [(mid, award) for award in m.get("awards", [])])
            referrer = m.get("referrer_id")
            if isinstance(referrer, str):  # referred at another till: the first sale here pays the referral
                conn.execute("INSERT OR IGNORE INTO members (id, enrolled_store, enrolled_at) VALUES (?, '', ?)", (referrer, now))
                conn.execute("UPDATE members SET referrer_id=? WHERE id=? AND referrer_id IS NULL", (referrer, mid))
            out.members += 1

    # ------------------------------------------------------------ both

    def _stamp(self) -> str:
        return _now(self.clock() if self.clock is not None else None)

    def exchange(self) -> tuple[PushSummary, PullSummary]:
        """Push, then pull; and push again what a server restored from a backup turned out to have lost."""
        pushed = self.push()
        pulled = self.pull()
        if pulled.rewound_ack:
            pushed = self.push()
        return pushed, pulled

    def sync(self) -> dict[str, Any]:
        pushed, pulled = self.exchange()
        result: dict[str, Any] = {"tid": self.tid, "push": pushed.as_json(), "pull": pulled.as_json(), "retries": self.retries}
        warning = skew_warning(pulled.clock_skew_s)
        if warning:
            result["warning"] = warning
        return result

    def _report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(Progress(phase, done, total))


_COLS = (*HASHED, "hash")


class _Prefetch:
    """Batches of events after `after`, up to `head`, read and JSON-encoded by a helper thread."""

    def __init__(self, conn: sqlite3.Connection, after: int, head: int, batch: int):
        path = str(conn.execute("PRAGMA database_list").fetchone()[2])
        self._q: queue.Queue[tuple[int, int, bytes] | BaseException | None] = queue.Queue(maxsize=3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(path, after, head, batch), daemon=True)

    def __enter__(self) -> Iterator[tuple[int, int, bytes]]:
        self._thread.start()
        return self._iter()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with suppress(queue.Empty):
                self._q.get(timeout=0.05)
        self._thread.join()

    def _iter(self) -> Iterator[tuple[int, int, bytes]]:
        while True:
            item = self._q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, item: tuple[int, int, bytes] | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, path: str, after: int, head: int, batch: int) -> None:
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                cols = ", ".join(_COLS)
                while after < head and not self._stop.is_set():
                    rows = [dict(zip(_COLS, r, strict=True)) for r in conn.execute(
                        f"SELECT {cols} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?", (after, head, batch))]
                    if not rows:
                        break
                    first, after = int(rows[0]["seq"]), int(rows[-1]["seq"])
                    body = json.dumps({"from_seq": first, "events": rows}, separators=(",", ":"), ensure_ascii=False).encode()
                    if not self._put((first, after, body)):
                        return
            finally:
                conn.close()
            self._put(None)
        except BaseException as exc:
            self._put(exc)


class BackgroundSync:
    """Sync every `interval_s` while the app runs; backs off while the server is unreachable.

    `on_result` gets each sync's result dict, or the error; the cashier UI posts
    it as a message. `make_client` should open a ledger connection of its own
    (`ledger.store.connect`) and pass `owns_conn=True`, so the worker never
    shares the cashier's connection and closes it after each round.
    """

    def __init__(self, make_client: Callable[[], SyncClient], *, interval_s: float, max_backoff_s: float = 600.0,
                 on_result: Callable[[dict[str, Any] | Exception], None] | None = None):
        self.make_client = make_client
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.on_result = on_result
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0
        self.last_error: Exception | None = None  # the last round's, None after a round that went through

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loyalty-sync", daemon=True)
        self._thread.start()

    def sync_now(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            client = self.make_client()
            try:
                result: dict[str, Any] | Exception = client.sync()
                self.failures = 0
                self.last_error = None
            except Exception as exc:
                result = exc
                self.failures += 1
                self.last_error = exc
            finally:
                client.close()
            if self.on_result is not None:
                self.on_result(result)
            wait = self.interval_s if not self.failures else min(self.max_backoff_s, self.interval_s * 2 ** min(self.failures, 10))
            self._wake.wait(wait)
            self._wake.clear()


def _ledger_currency(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='currency'").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def _now(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def ask_chain_for_card(conn: sqlite3.Connection | None, cfg: Config, raw_card: str, *, clock: Callable[[], datetime] | None = None,
                       timeout_s: float = 2.0) -> bool:
    """Before a card this till does not know is enrolled, ask the chain whether another store has it (True: it is
    now known here as that member). Best effort and short: offline, not set up, or refused, the sale goes on and
    enrols it (a conflict the server flags and `loyalty sync` reports). `conn`: the ledger, to ask only for a card
    it does not hold (None: the caller knows it does not)."""
    from ledger.cards import CardIdError, normalize

    try:
        card_id = normalize(raw_card)
    except CardIdError:
        return False  # the sale says what is wrong with it
    server, token_file = cfg.sync.server, cfg.sync.token_file
    if not server or token_file is None or (conn is not None and conn.execute("SELECT 1 FROM cards WHERE id=?", (card_id,)).fetchone()):
        return False
    try:
        token = read_token(token_file)
    except LoyaltyError:
        return False
    found: list[bool] = []

    def ask() -> None:
        # a connection of its own: a server that trickles its answer is left behind at the deadline, and
        # whatever it brings later is written as a pull writes it, beside the sale
        from ledger.store import open_existing

        with suppress(LoyaltyError, ValueError, httpx.HTTPError, sqlite3.Error):
            client = SyncClient(open_existing(cfg.ledger.path), server=server, token=token, store_id=cfg.store.id,
                                terminal_id=cfg.store.terminal, timeout_s=min(cfg.sync.timeout_s, timeout_s), attempts=1,
                                clock=clock, owns_conn=True)
            try:
                found.append(client.lookup_card(card_id))
            finally:
                client.close()

    # httpx's timeout is per read: a deadline for the whole question is the thread's
    asking = threading.Thread(target=ask, name="card-lookup", daemon=True)
    asking.start()
    asking.join(timeout_s)
    return bool(found and found[0])
