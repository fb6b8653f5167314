"""Fixtures for the receipts tests (the helpers live in receipt_support.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from receipt_support import Documents, Listener, PtyPair, Store, make_documents, write_config

from ledger.config import load
from ledger.service import Loyalty


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., Store]]:
    opened: list[Loyalty] = []

    def make(**kwargs: Any) -> Store:
        folder = tmp_path / f"store{len(opened)}"
        path = write_config(folder, **kwargs)
        cfg = load(path)
        service = Loyalty.open(cfg)
        opened.append(service)
        return Store(path, cfg, service)

    yield make
    for service in opened:
        service.close()


@pytest.fixture
def docs(make_store: Callable[..., Store]) -> Documents:
    return make_documents(make_store())


# ----------------------------------------------------------------- CLI


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener().start()
    yield server
    server.stop()


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    socat = shutil.which("socat")
    assert socat, "socat is required (scripts/setup.sh installs it)"
    log = tmp_path / "socat.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([socat, "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 5
        paths: list[str] = []
        while time.monotonic() < deadline and len(paths) < 2:
            paths = re.findall(r"PTY is (\S+)", log.read_text(errors="replace"))
            time.sleep(0.01)
        assert len(paths) == 2, log.read_text(errors="replace")
        yield PtyPair(paths[0], paths[1], proc)
    finally:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture(autouse=True)
def _receipt_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The receipts tests pin their own settings; a developer's shell must not change them.
    for name in ("LOYALTY_RECEIPT_DIGITS", "LOYALTY_RECEIPT_LOCALE", "LOYALTY_RTL_ENGINE", "LOYALTY_FONT_DIR", "LOYALTY_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")

