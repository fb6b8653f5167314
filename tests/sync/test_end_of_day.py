"""`loyalty sync --end-of-day` against `loyalty server`, as processes over loopback; interruption and rerun."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from synctools import NOW, REPO, LiveServer, Terminal, free_port, in_process, local_events, server_events

from ledger.errors import LoyaltyError
from receipts import render
from receipts.templates import z_report as z_paper
from sync.client import Progress, SyncFailed
from sync.endofday import end_of_day, z_report
from sync.store import ServerStore

LOYALTY = [sys.executable, "-m", "terminal.cli"]
CARD = "uid:04A1B2C3D4E5F6"


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*LOYALTY, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    if check and proc.returncode != 0:
        raise AssertionError(f"loyalty {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_end_of_day_against_loyalty_server(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    till = tmp_path / "till"
    till.mkdir()
    text = (REPO / "config.toml").read_text(encoding="utf-8").replace("http://127.0.0.1:8765", f"http://127.0.0.1:{port}")
    text = text.replace('url = "preview://"', f'url = "preview://{till / "paper"}"')
    (till / "config.toml").write_text(text, encoding="utf-8")
    added = json.loads(run("server", "add-terminal", "--db", db_url, "--store", "kw-salmiya-01", "--terminal", "till-1",
                           "--token-file", str(till / "var" / "terminal.token"), "--json", cwd=tmp_path).stdout)
    assert added["tid"] == "kw-salmiya-01:till-1" and added["token"].startswith("lt_")
    again = run("server", "add-terminal", "--db", db_url, "--store", "kw-salmiya-01", "--terminal", "till-1", cwd=tmp_path, check=False)
    assert again.returncode != 0 and "already registered" in again.stderr

    server = subprocess.Popen([*LOYALTY, "server", "--db", db_url, "--port", str(port)], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.1)
        assert "/v1/terminals/{tid}/events" in httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()["paths"]

        now = "2026-11-22T20:00"
        run("sale", "--card", CARD, "--item", "LAT*3", "--item", "BEANS", "--now", now, cwd=till)
        run("sale", "--card", "code:SECOND", "--item", "ESP", "--now", now, cwd=till)
        sale = json.loads(run("sale", "--card", CARD, "--item", "CRO", "--now", now, "--json", cwd=till).stdout)
        run("refund", sale["sale"], "--now", now, cwd=till)

        eod = json.loads(run("sync", "--end-of-day", "--now", now, "--json", cwd=till).stdout)
        z = eod["z"]
        assert eod["day"] == "2026-11-22"
        assert z["sales"]["count"] == 3 and z["refunds"]["count"] == 1
        assert z["chain"]["in_sync"] and z["chain"]["server_acked_seq"] == z["chain"]["head_seq"] > 0
        assert z["programs"]["coffee"]["stamps_given"] == 4  # 3 lattes and an espresso

        closed = run("sale", "--card", CARD, "--item", "LAT", "--now", now, "--json", cwd=till, check=False)
        assert closed.returncode != 0 and json.loads(closed.stdout)["error"] == "day_closed"

        rerun = json.loads(run("sync", "--end-of-day", "--now", "2026-11-22T20:30", "--json", cwd=till).stdout)
        assert rerun["closed_at"] == eod["closed_at"] and rerun["push"]["sent"] == 0
        assert rerun["z"] == {**z, "chain": {**z["chain"], "last_push_at": z["chain"]["last_push_at"]}}
        text = run("report", "z", "--day", "2026-11-22", "--now", now, cwd=till).stdout
        # the printed document, word for word, and nothing to do: no NOT SYNCED line
        paper = (till / "paper" / "last.txt").read_text(encoding="utf-8")
        assert text.rstrip("\n") == paper.rstrip("\n") and "in sync" in text and "2026-11-22" in text

        # next morning: sales go on, a plain sync pushes them
        run("sale", "--card", CARD, "--item", "LAT", "--now", "2026-11-23T08:00", cwd=till)
        plain = run("sync", "--now", "2026-11-23T08:00", cwd=till).stdout
        assert "server holds seq" in plain
        # the closed day's Z printed again shows the chain as the day left it, not the head of the next day
        again = json.loads(run("report", "z", "--day", "2026-11-22", "--now", "2026-11-23T08:05", "--json", cwd=till).stdout)
        assert again["chain"]["head_seq"] == z["chain"]["head_seq"] and again["chain"]["head_hash"] == z["chain"]["head_hash"]
        assert again["chain"]["in_sync"] and {k: v for k, v in again.items() if k != "chain"} == {k: v for k, v in z.items() if k != "chain"}
        report = json.loads(run("server", "report", "--db", db_url, "--json", cwd=tmp_path).stdout)
        assert report["flags"] == [] and report["overdrafts"] == [] and report["stale_terminals"] == []
        later = json.loads(run("server", "report", "--db", db_url, "--now", "2030-01-01T00:00", "--json", cwd=tmp_path).stdout)
        assert [t["tid"] for t in later["stale_terminals"]] == [added["tid"]]  # --now is the report's clock too
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)

    store = ServerStore(db_url)
    try:
        head = int(json.loads(run("init", "--json", cwd=till).stdout)["events"])
        assert store.terminal_head(added["tid"])[0] == head
    finally:
        store.close()


def test_sync_without_a_server_says_offline(tmp_path: Path) -> None:
    till = tmp_path / "till"
    till.mkdir()
    text = (REPO / "config.toml").read_text(encoding="utf-8").replace("http://127.0.0.1:8765", f"http://127.0.0.1:{free_port()}")
    text = text.replace('url = "preview://"', f'url = "preview://{till / "paper"}"')
    text = text.replace("interval_seconds = 60", "interval_seconds = 60\nretry_for_s = 0.5")  # nobody will answer: no need to wait
    assert "retry_for_s" in text
    (till / "config.toml").write_text(text + "\n", encoding="utf-8")
    (till / "var").mkdir()
    (till / "var" / "terminal.token").write_text("lt_x")
    proc = run("sync", "--json", cwd=till, check=False)
    assert proc.returncode != 0 and json.loads(proc.stdout)["error"] == "offline"
    run("sale", "--card", "code:X", "--item", "LAT", "--now", "2026-11-22T10:00", cwd=till)
    # end of day offline still closes the day and prints the Z report, marked not synced
    proc = run("sync", "--end-of-day", "--now", "2026-11-22T20:00", cwd=till, check=False)
    assert proc.returncode == 1
    assert "no answer from the sync server" in proc.stderr  # said in a log too, not only on a terminal
    assert "NOT SYNCED" in proc.stdout and "Z REPORT" in proc.stdout and "Business day                    2026-11-22" in proc.stdout
    # and on paper, once: running end of day again does not print it again
    paper = (till / "paper" / "last.txt").read_text(encoding="utf-8")
    assert "Z REPORT" in paper and "2026-11-22" in paper and "COPY" not in paper
    (till / "paper" / "last.txt").unlink()
    run("sync", "--end-of-day", "--now", "2026-11-22T20:05", cwd=till, check=False)
    assert not (till / "paper" / "last.txt").exists()
    jobs = json.loads(run("print-queue", "list", "--json", cwd=till).stdout)
    z_jobs = [j for j in jobs["jobs"] if j["kind"] == "z_report"]
    assert [(j["ref"], j["status"]) for j in z_jobs] == [("2026-11-22", "printed")]
    (till / "var" / "terminal.token").unlink()
    proc = run("sync", cwd=till, check=False)
    assert proc.returncode != 0 and "token" in proc.stderr



def test_end_of_day_after_midnight_closes_the_day_that_just_ended(tmp_path: Path) -> None:
    till = tmp_path / "till"
    till.mkdir()
    text = (REPO / "config.toml").read_text(encoding="utf-8").replace('server = "http://127.0.0.1:8765"\n', "")
    assert 'server = "' not in text
    (till / "config.toml").write_text(text.replace('url = "preview://"', f'url = "preview://{till / "paper"}"'), encoding="utf-8")
    run("sale", "--card", "code:X", "--item", "LAT", "--now", "2026-11-23T22:40", cwd=till)
    # the café closes at half past midnight: the day with the sales is the one closed, not the new one
    closed = json.loads(run("sync", "--end-of-day", "--json", "--now", "2026-11-24T00:30", cwd=till).stdout)
    assert closed["day"] == "2026-11-23" and closed["z"]["sales"]["count"] == 1
    assert run("sale", "--card", "code:X", "--item", "LAT", "--now", "2026-11-24T09:00", cwd=till).returncode == 0
    # with a sale on the new day, end of day closes that day, as before
    again = json.loads(run("sync", "--end-of-day", "--json", "--now", "2026-11-24T23:00", cwd=till).stdout)
    assert again["day"] == "2026-11-24"
    # a day with no sale after a closed one: its own end of day closes it (a quiet day's Z says nothing was sold)
    quiet = json.loads(run("sync", "--end-of-day", "--json", "--now", "2026-11-25T22:00", cwd=till).stdout)
    assert quiet["day"] == "2026-11-25" and quiet["z"]["sales"]["count"] == 0


def test_sync_waits_for_a_server_that_is_restarting(tmp_path: Path) -> None:
    port = free_port()
    till = tmp_path / "till"
    till.mkdir()
    text = (REPO / "config.toml").read_text(encoding="utf-8").replace("http://127.0.0.1:8765", f"http://127.0.0.1:{port}")
    (till / "config.toml").write_text(text, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'server.db'}"
    run("server", "add-terminal", "--db", db, "--store", "kw-salmiya-01", "--terminal", "till-1",
        "--token-file", str(till / "var" / "terminal.token"), cwd=tmp_path)
    run("sale", "--card", CARD, "--item", "LAT", "--now", "2026-11-22T10:00", cwd=till)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sync = subprocess.Popen([*LOYALTY, "sync", "--json"], cwd=till, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    server = None
    try:
        time.sleep(2.0)  # the till has found nobody at the port by now, more than once
        assert sync.poll() is None, sync.communicate()
        server = subprocess.Popen([*LOYALTY, "server", "--db", db, "--port", str(port)], cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        out, err = sync.communicate(timeout=60)
        assert sync.returncode == 0, err
        result = json.loads(out)
        assert result["retries"] >= 2 and result["push"]["sent"] > 0
        assert result["push"]["acked_seq"] == int(json.loads(run("ledger", "verify", "--json", cwd=till).stdout)["events"])
    finally:
        sync.kill()
        if server:
            server.terminate()
            server.wait(timeout=10)


class Interrupt(BaseException):
    pass


@pytest.mark.parametrize("stop_at", range(1, 16, 2))
def test_end_of_day_interrupted_anywhere_then_rerun(stop_at: int, server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a = make_terminal(server, "kw-salmiya-01", "till-1")
    other = make_terminal(server, "kw-hawally-02", "till-1")
    for n in range(6):
        a.sale(f"code:A{n % 3}", "LAT")
        other.sale(f"code:B{n}", "ESP")
    calls: list[Progress] = []

    def progress(p: Progress) -> None:
        calls.append(p)
        if len(calls) == stop_at:
            raise Interrupt

    with in_process(server) as http:
        other.client(http).sync()
        with pytest.raises(Interrupt):
            end_of_day(a.loyalty, a.client(http, batch=3, page=2, progress=progress), NOW)
        with pytest.raises(LoyaltyError):
            a.sale("code:A0", "LAT")
        result: dict[str, Any] = end_of_day(a.loyalty, a.client(http, batch=3, page=2), NOW)
    assert result["z"]["chain"]["in_sync"]
    assert server_events(server, a.tid) == local_events(a)
    assert a.shown() == {k: v for k, v in server.balances_of().items() if v}
    assert result["z"] == z_report(a.conn, a.cfg, NOW.date())
    assert "offline" not in result


def test_end_of_day_offline_raises_after_closing_unless_tolerated(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    from sync.client import Offline

    a = make_terminal(server)
    a.sale(CARD, "LAT")
    with httpx.Client(base_url=f"http://127.0.0.1:{free_port()}") as http:
        with pytest.raises(Offline):
            end_of_day(a.loyalty, a.client(http, attempts=2), NOW)
        assert a.conn.execute("SELECT COUNT(*) FROM business_days").fetchone()[0] == 1
        result = end_of_day(a.loyalty, a.client(http, attempts=2), NOW, tolerate_offline=True)
    assert "unreachable" in result["offline"]
    assert not result["z"]["chain"]["in_sync"] and result["z"]["sales"]["count"] == 1
    chain = result["z"]["chain"]  # nothing sent: the push says where the ack and the head stand (it said 0 and 0)
    assert result["push"]["sent"] == 0 and result["push"]["head_seq"] == chain["head_seq"] > 0
    assert (result["push"]["acked_seq"], result["push"]["acked_hash"]) == (chain["server_acked_seq"], chain["server_acked_hash"])


def test_an_end_of_day_that_found_no_server_is_not_in_sync_even_with_every_event_pushed(
        server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a = make_terminal(server)
    a.sale(CARD, "LAT")
    with in_process(server) as http:
        a.client(http, clock=lambda: NOW - timedelta(hours=1)).sync()  # every event pushed and acked before the server went away
    with httpx.Client(base_url=f"http://127.0.0.1:{free_port()}") as gone:
        result = end_of_day(a.loyalty, a.client(gone, attempts=1, clock=lambda: NOW), NOW, tolerate_offline=True)
    chain = result["z"]["chain"]
    assert chain["server_acked_seq"] == chain["head_seq"] and chain["in_sync"] is False  # the paper says not synced
    assert "not synced" in render(z_paper(result["z"], a.cfg), "text", a.cfg).decode("utf-8")
    with in_process(server) as http:
        a.client(http, clock=lambda: NOW + timedelta(hours=1)).sync()  # a sync that gets through: the day's Z is in sync again
    assert z_report(a.conn, a.cfg, NOW.date())["chain"]["in_sync"] is True


def test_a_url_that_is_not_the_sync_server_says_so(live: LiveServer, make_terminal: Callable[..., Terminal]) -> None:
    assert live.store is not None
    till = make_terminal(live.store)
    till.sale(CARD, "LAT")  # something to push: the push meets the wrong URL first
    for wrong in (f"{live.base}/foo", f"{live.base}/v1/health/x"):
        with httpx.Client(base_url=wrong) as http, pytest.raises(SyncFailed) as err:
            till.client(http, attempts=1).sync()
        assert err.value.code == "push_refused"
        assert "does not answer as a loyalty sync server; check [sync] server" in err.value.message
        assert "{" not in err.value.message  # no raw body


def test_https_to_the_plain_http_server_is_a_setting_not_an_outage(live: LiveServer, make_terminal: Callable[..., Terminal]) -> None:
    assert live.store is not None
    till = make_terminal(live.store)
    till.sale(CARD, "LAT")
    started = time.monotonic()
    with httpx.Client(base_url=live.base.replace("http://", "https://")) as http, pytest.raises(SyncFailed) as err:
        till.client(http, attempts=6, backoff_s=0.5, backoff_max_s=2).sync()
    assert err.value.code == "not_a_sync_server" and "does not speak TLS" in err.value.message
    assert time.monotonic() - started < 2  # said at once, not retried as an outage


class _AnyPage(http.server.BaseHTTPRequestHandler):
    def _page(self) -> None:
        body = b"<html><body>Welcome</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page

    def log_message(self, *args: object) -> None:
        pass


def test_another_web_server_at_the_sync_url_is_named_at_once(tmp_path: Path, server: ServerStore,
                                                             make_terminal: Callable[..., Terminal]) -> None:
    # a plain web server answers 404 with an HTML page: not an outage to wait out, a wrong [sync] server
    import functools

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        till = make_terminal(server)
        till.sale(CARD, "LAT")
        with httpx.Client(base_url=f"http://127.0.0.1:{web.server_address[1]}") as http_client:
            client = till.client(http_client, attempts=5)
            with pytest.raises(SyncFailed) as err:
                client.sync()
        assert err.value.code == "push_refused" and client.retries == 0
        assert "HTTP 501" in err.value.message and "does not answer as a loyalty sync server" in err.value.message
        with httpx.Client(base_url=f"http://127.0.0.1:{web.server_address[1]}") as http_client:
            client = till.client(http_client, attempts=5)
            with pytest.raises(SyncFailed) as err:
                client.pull()  # a GET: its 404 page
        assert err.value.code == "pull_refused" and client.retries == 0 and "HTTP 404" in err.value.message
        # one that answers every request with a page (200 text/html) is no sync server either
        page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AnyPage)
        threading.Thread(target=page.serve_forever, daemon=True).start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{page.server_address[1]}") as http_client:
                client = till.client(http_client, attempts=5)
                with pytest.raises(SyncFailed) as err:
                    client.sync()
            assert err.value.code == "not_a_sync_server" and client.retries == 0 and "text/html" in err.value.message
        finally:
            page.shutdown()
            page.server_close()
    finally:
        web.shutdown()
        web.server_close()


def test_a_scripts_clock_dates_the_chains_snapshot(live: LiveServer, make_terminal: Callable[..., Terminal]) -> None:
    # `--now` months ahead of the real clock: the pull is dated by the till's clock, so what another
    # till earned is fresh for a redemption at that same moment (it counted as months old)
    assert live.store is not None
    a = make_terminal(live.store, terminal_id="till-1")
    b = make_terminal(live.store, terminal_id="till-2")
    later = "2027-03-01T10:00"
    earned = json.loads(run("sale", "--card", "code:TRAVELLER", "--item", "BEANS", "--now", later, "--json", cwd=a.dir).stdout)
    points = int(earned["programs"]["points"]["balance"])
    assert points >= 100
    for till in (a, b):
        run("sync", "--server", live.base, "--now", later, cwd=till.dir)
    sale = run("sale", "--card", "code:TRAVELLER", "--item", "LAT", "--redeem", "points=100", "--now", later, "--json",
               cwd=b.dir, check=False)
    assert sale.returncode == 0, sale.stderr
    done = json.loads(sale.stdout)
    assert done["redeemed"] == {"points": 100}
    assert done["programs"]["points"]["balance"] == points - 100 + done["earned"]["points"]


def test_a_pull_with_nothing_new_for_a_member_keeps_their_snapshot_fresh(live: LiveServer, make_terminal: Callable[..., Terminal]) -> None:
    # the member last changed two days ago; the till synced an hour ago: what the chain holds is an hour old
    assert live.store is not None
    a = make_terminal(live.store, terminal_id="till-1")
    b = make_terminal(live.store, terminal_id="till-2")
    run("sale", "--card", "code:REGULAR", "--item", "BEANS*4", "--now", "2027-03-01T10:00", cwd=a.dir)
    for till in (a, b):
        run("sync", "--server", live.base, "--now", "2027-03-01T10:05", cwd=till.dir)
    run("sync", "--server", live.base, "--now", "2027-03-03T09:00", cwd=b.dir)  # nothing new for this member
    sale = run("sale", "--card", "code:REGULAR", "--item", "LAT", "--redeem", "points=100", "--now", "2027-03-03T10:00", "--json",
               cwd=b.dir, check=False)
    assert sale.returncode == 0, sale.stderr
    assert json.loads(sale.stdout)["redeemed"] == {"points": 100}
    # with no pull for longer than [offline] max_snapshot_age_hours, the chain's points wait for the next one
    late = run("sale", "--card", "code:REGULAR", "--item", "LAT", "--redeem", "points=100", "--now", "2027-03-05T10:00", "--json",
               cwd=b.dir, check=False)
    assert late.returncode == 1 and "max_snapshot_age_hours" in late.stderr


def test_end_of_day_warns_of_a_till_clock_off_the_servers(server: ServerStore, make_terminal: Callable[..., Terminal],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    import sync.store
    from ledger.clock import iso

    monkeypatch.setattr(sync.store, "now_iso", lambda: iso(datetime.now(UTC) - timedelta(hours=5)))  # so the till is 5 h ahead
    a = make_terminal(server)
    a.sale(CARD, "LAT")
    with in_process(server) as http:
        result = end_of_day(a.loyalty, a.client(http), NOW)
    assert "ahead of the server's" in result["warning"] and result["pull"]["clock_skew_s"] < -17_000
