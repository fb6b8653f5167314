"""Background sync while selling: the real app, the real server under uvicorn on loopback, no cashier action."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from terminal.app import LoyaltyApp

from .helpers import text_of, until
from .test_checkout import _manager, _sell_one

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))

from synctools import LiveServer, server_events

pytestmark = pytest.mark.anyio

INTERVAL_S = 1


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(f"sqlite:///{tmp_path / 'server.db'}").start()
    try:
        yield srv
    finally:
        srv.stop()


def connect_till(demo_dir: Path, srv: LiveServer) -> str:
    """Point the demo till at the live server with a token of its own, as `loyalty server add-terminal` does."""
    assert srv.store is not None
    path = demo_dir / "config.toml"
    text = path.read_text(encoding="utf-8")
    store_id = re.search(r'^id = "([^"]+)"', text, re.M)
    terminal = re.search(r'^terminal = "([^"]+)"', text, re.M)
    assert store_id and terminal, "the demo config names its store and till"
    tid, token = srv.store.add_terminal(store_id.group(1), terminal.group(1))
    token_file = demo_dir / "till.token"
    token_file.write_text(token, encoding="utf-8")
    sync = f'[sync]\nserver = "{srv.base}"\ntoken_file = "{token_file}"\ninterval_seconds = {INTERVAL_S}\ntimeout_s = 2.0\n'
    text, n = re.subn(r"^\[sync\]\n(?:[^\[\n].*\n|\n)*", sync + "\n", text, flags=re.M)
    path.write_text(text if n else text + "\n" + sync, encoding="utf-8")
    return tid


def local_head(app: LoyaltyApp) -> int:
    head, _hash = app.services.gate.loyalty.ledger.head()
    return int(head)


def server_head(srv: LiveServer, tid: str) -> int:
    assert srv.store is not None
    seqs = [seq for seq, _id, _hash in server_events(srv.store, tid)]
    return max(seqs, default=0)


async def test_sales_reach_the_server_by_themselves_and_offline_the_till_keeps_selling(
    make_app: Callable[..., LoyaltyApp], demo_dir: Path, live: LiveServer
) -> None:
    tid = connect_till(demo_dir, live)
    app = make_app(status_interval_s=0.3)
    async with app.run_test(size=(100, 30)) as pilot:
        # the seeded history goes out first, with nobody asking for it
        await until(pilot, lambda: server_head(live, tid) == local_head(app) > 0, timeout=60, what="the seeded events on the server")
        sale_id = await _sell_one(pilot)
        head = local_head(app)
        await until(pilot, lambda: server_head(live, tid) == head, timeout=30, what="the sale on the server")
        assert live.store is not None
        sent = {event_id for _seq, event_id, _hash in server_events(live.store, tid)}
        sold = {str(r[0]) for r in app.services.gate.loyalty.conn.execute("SELECT event_id FROM events WHERE sale_id=?", (sale_id,))}
        assert sold and sold <= sent
        await until(pilot, lambda: "online: 0 pending" in text_of(app, "#status"), what="status online, nothing pending")
        assert "synced never" not in text_of(app, "#status")  # the short status line, at 100 columns

        live.stop()
        started = pilot.app.checkout.last_sale
        second = await _sell_one(pilot)  # the cart does not wait on the dead server
        assert second != started
        assert app.services.gate.sale(second)["total"]
        await until(pilot, lambda: re.search(r"\boffline: [1-9]\d* pending", text_of(app, "#status")) is not None,
                    timeout=30, what="offline with pending events")
        assert local_head(app) > head

        live.start()  # the same port and database: the server is back
        await until(pilot, lambda: server_head(live, tid) == local_head(app), timeout=30, what="what was sold offline on the server")
        await until(pilot, lambda: "online: 0 pending" in text_of(app, "#status"), what="status online again")


async def test_force_offline_pauses_background_sync(make_app: Callable[..., LoyaltyApp], demo_dir: Path, live: LiveServer) -> None:
    tid = connect_till(demo_dir, live)
    app = make_app(status_interval_s=0.3)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: server_head(live, tid) == local_head(app) > 0, timeout=60, what="the seeded events on the server")
        await _manager(pilot, "o")
        await until(pilot, lambda: "OFFLINE" in text_of(app, "#status"), what="forced offline")
        before = server_head(live, tid)
        await _sell_one(pilot)
        assert local_head(app) > before
        await pilot.pause(INTERVAL_S * 3)  # rounds that would have pushed the sale
        assert server_head(live, tid) == before
        assert app.last_sync_round is not None and app.last_sync_round.paused
        await _manager(pilot, "o")
        await until(pilot, lambda: server_head(live, tid) == local_head(app), timeout=30, what="the sale on the server after going back online")


async def test_a_server_that_refuses_the_token_is_said_once_and_not_asked_again_and_again(
    make_app: Callable[..., LoyaltyApp], demo_dir: Path, live: LiveServer
) -> None:
    connect_till(demo_dir, live)
    (demo_dir / "till.token").write_text("lt_not_this_tills_token", encoding="utf-8")
    app = make_app(status_interval_s=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: "SYNC REFUSED" in text_of(app, "#status"), timeout=30, what="the refusal on the status bar")
        assert "Sync refused by the server" in text_of(app, "#message") and "token" in text_of(app, "#message")
        await pilot.pause(4.0)  # twenty status polls: the health check answers, yet the refused round is not rerun
        assert live.store is not None
        refusals = [f for f in live.store.reports()["flags"] if f["kind"] == "bad_token"]
        assert 1 <= len(refusals) <= 4, len(refusals)  # rounds 1 s, then 2 s, then 4 s apart
        await _sell_one(pilot)  # and the cashier sells on


async def test_a_card_another_store_enrolled_since_the_last_pull_is_that_member_on_the_panel(
    make_app: Callable[..., LoyaltyApp], demo_dir: Path, live: LiveServer, tmp_path: Path
) -> None:
    import httpx
    from synctools import Terminal

    connect_till(demo_dir, live)
    path = demo_dir / "config.toml"
    path.write_text(path.read_text(encoding="utf-8").replace(f"interval_seconds = {INTERVAL_S}\n", "interval_seconds = 3600\n"),
                    encoding="utf-8")  # no background pull in between: only the tap's question can know the card
    app = make_app(status_interval_s=0.3)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(1.0)  # the first background round has run
        assert live.store is not None
        other = Terminal(tmp_path / "other", "kw-hawally-02", "till-1", live.store)
        card = "uid:04BB0000000042"
        enrolled = other.sale(card, "BEANS*2")
        with httpx.Client(base_url=live.base) as http:
            other.client(http).sync()
        await pilot.press(*card, "enter")
        await until(pilot, lambda: "another store" in text_of(app, "#message"), timeout=10, what="the chain's member")
        assert app.checkout.cart.unknown is False and app.checkout.cart.view is not None
        assert app.checkout.cart.view["member"]["id"] == enrolled["member"]["id"]
        assert str(enrolled["programs"]["points"]["balance"]) in text_of(app, "#member")
        other.loyalty.close()
