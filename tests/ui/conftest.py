"""The demo store, seeded once per run and copied for each test, and the app built on it."""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger import config as config_mod
from terminal.app import DemoCard, LoyaltyApp, build_app, build_services
from terminal.demo import open_demo, tap_list

NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)  # 10:00 in Kuwait


def _ids(seed: int) -> Callable[[], uuid.UUID]:
    rng = random.Random(seed)
    return lambda: uuid.UUID(int=rng.getrandbits(128), version=4)


@pytest.fixture(scope="session")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # seeded ids are drawn from a fixed sequence so hashes, and so screenshots, repeat run after run
    path = tmp_path_factory.mktemp("demo-seeded")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(uuid, "uuid4", _ids(7))
        open_demo(path, NOW)
    return path


@pytest.fixture
def demo_dir(seeded_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "demo"
    shutil.copytree(seeded_dir, target)
    return target


@pytest.fixture
def make_app(demo_dir: Path) -> Iterator[Callable[..., LoyaltyApp]]:
    built: list[Any] = []

    def make(**kw: Any) -> LoyaltyApp:
        cfg = config_mod.load(demo_dir / "config.toml")
        counter = iter(range(1, 10_000))
        services = build_services(
            cfg,
            clock=lambda: NOW,
            demo_cards=[DemoCard(k, c, label) for k, c, label in tap_list()],
            demo=True,
            reader_url="sim://",
            printer_url="preview://",
            new_sale_id=lambda: str(uuid.UUID(int=next(counter), version=4)),
        )
        for key, value in kw.items():
            setattr(services, key, value)
        built.append(services)
        return build_app(services)

    yield make
    for services in built:
        services.close()
