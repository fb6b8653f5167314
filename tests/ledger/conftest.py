"""Fixtures: a small store of our own, opened fresh for each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ledger_store import STORE, Store

from ledger.config import load
from ledger.service import Loyalty


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., Store]]:
    opened: list[Loyalty] = []

    def make(extra: str = "", replace: dict[str, str] | None = None) -> Store:
        text = STORE
        for old, new in (replace or {}).items():
            assert old in text, old
            text = text.replace(old, new)
        path = tmp_path / "store.toml"
        path.write_text(text + extra, encoding="utf-8")
        cfg = load(path)
        service = Loyalty.open(cfg)
        opened.append(service)
        return Store(path, cfg, service)

    yield make
    for service in opened:
        service.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


