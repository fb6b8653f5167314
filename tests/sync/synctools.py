"""Test parts for sync: terminals with their own ledger files, a PostgreSQL of
their own, and the real server under uvicorn on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ledger.config import load
from ledger.service import CheckoutRequest, Loyalty
from sync.app import create_app
from sync.client import SyncClient
from sync.store import ServerStore

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    """A throwaway cluster in a temp dir; each test gets a database of its own."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="loyalty-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.n = 0
        self._as_user = os.geteuid() == 0
        if self._as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        self._run([str(PG_BIN / "pg_ctl"), "-w", "-D", str(self.data), "-l", str(self.dir / "log"), "start", "-o", opts])

    def _run(self, cmd: list[str]) -> None:
        if self._as_user:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def new_database(self) -> str:
        import psycopg

        self.n += 1
        name = f"t{self.n}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run([str(PG_BIN / "pg_ctl"), "-w", "-D", str(self.data), "stop", "-m", "immediate"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class LiveServer:
    """The real app under uvicorn in a thread, on a fixed loopback port so it can be restarted."""

    def __init__(self, url: str, port: int | None = None):
        self.url = url
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.store: ServerStore | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LiveServer:
        self.store = ServerStore(self.url)
        config = uvicorn.Config(create_app(self.store), host="127.0.0.1", port=self.port, log_level="error", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        if self.store is not None:
            self.store.close()
        self._server = self._thread = self.store = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Terminal:
    """One till: its own config file, ledger file and token."""

    def __init__(self, root: Path, store_id: str, terminal_id: str, server: ServerStore, *, extra: str = ""):
        self.dir = root / f"{store_id}-{terminal_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        text = (REPO / "config.toml").read_text(encoding="utf-8")
        text = text.replace('id = "kw-salmiya-01"', f'id = "{store_id}"').replace('terminal = "till-1"', f'terminal = "{terminal_id}"')
        self.config_path = self.dir / "config.toml"
        self.config_path.write_text(text + extra, encoding="utf-8")
        self.cfg = load(self.config_path)
        self.loyalty = Loyalty.open(self.cfg)
        self.tid, self.token = server.add_terminal(store_id, terminal_id)
        (self.dir / "var").mkdir(exist_ok=True)
        (self.dir / "var" / "terminal.token").write_text(self.token)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.loyalty.conn

    def sale(self, card: str, *items: str, redeem: tuple[str, ...] = (), when: datetime = NOW) -> dict[str, Any]:
        return self.loyalty.checkout(CheckoutRequest.from_cli(card, list(items), list(redeem)), when)

    def client(self, http: httpx.Client, **kw: Any) -> SyncClient:
        kw.setdefault("backoff_s", 0.01)
        kw.setdefault("backoff_max_s", 0.05)
        return SyncClient(self.conn, server="", token=self.token, store_id=self.cfg.store.id,
                          terminal_id=self.cfg.store.terminal, http=http, **kw)

    def head(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def member(self, card: str) -> str:
        return str(self.conn.execute("SELECT member_id FROM cards WHERE id=?", (card,)).fetchone()[0])

    def shown(self) -> dict[tuple[str, str, str], int]:
        """What the till holds for every member: its own balance plus the rest of the chain's."""
        out: dict[tuple[str, str, str], int] = {}
        for table in ("balances", "remote_balances"):
            for m, p, a, amount in self.conn.execute(f"SELECT member_id, program_id, account, amount FROM {table}"):
                out[(m, p, a)] = out.get((m, p, a), 0) + int(amount)
        return {k: v for k, v in out.items() if v}

    def close(self) -> None:
        self.loyalty.close()


@contextmanager
def in_process(store: ServerStore) -> Iterator[httpx.Client]:
    from fastapi.testclient import TestClient

    with TestClient(create_app(store), raise_server_exceptions=True) as http:
        yield http


def sync_until_done(client: SyncClient, tries: int = 200) -> dict[str, Any]:
    from sync.client import Offline

    for _ in range(tries):
        try:
            return client.sync()
        except Offline:
            continue
    raise AssertionError("sync never got through")


def server_events(store: ServerStore, tid: str) -> list[tuple[int, str, str]]:
    from sqlalchemy import select

    from sync.store import events

    with store.engine.connect() as conn:
        return [(int(r.seq), r.event_id, r.hash) for r in conn.execute(select(events.c.seq, events.c.event_id, events.c.hash).where(events.c.tid == tid).order_by(events.c.seq))]


def local_events(t: Terminal) -> list[tuple[int, str, str]]:
    return [(int(r[0]), str(r[1]), str(r[2])) for r in t.conn.execute("SELECT seq, event_id, hash FROM events ORDER BY seq")]
