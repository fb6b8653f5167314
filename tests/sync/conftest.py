"""Fixtures: every server test runs on SQLite and on a real PostgreSQL started here."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synctools import LiveServer, Postgres, Terminal

from sync.store import ServerStore


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.new_database()


@pytest.fixture
def server(db_url: str) -> Iterator[ServerStore]:
    store = ServerStore(db_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def live(db_url: str) -> Iterator[LiveServer]:
    srv = LiveServer(db_url).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def make_terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def make(store: ServerStore, store_id: str = "kw-salmiya-01", terminal_id: str = "till-1", extra: str = "") -> Terminal:
        t = Terminal(tmp_path, store_id, terminal_id, store, extra=extra)
        opened.append(t)
        return t

    yield make
    for t in opened:
        t.close()
