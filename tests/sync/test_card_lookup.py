"""A card a till does not know is asked of the chain before it is enrolled: a card enrolled, or given to a
member by a replace, at another store since the till's last pull is that member, not a second one. What is
enrolled twice all the same (both tills offline) is said at the next sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from synctools import REPO, LiveServer, Terminal, in_process

from sync.store import ServerStore

OLD = "uid:04AA0000000001"
NEW = "uid:04AA00000000A1"


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "terminal.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if check and proc.returncode != 0:
        raise AssertionError(f"loyalty {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _at(live: LiveServer, till: Terminal) -> Terminal:
    text = till.config_path.read_text(encoding="utf-8")
    assert "http://127.0.0.1:8765" in text
    till.config_path.write_text(text.replace("http://127.0.0.1:8765", live.base), encoding="utf-8")
    return till


def test_a_card_replaced_at_another_store_is_that_member_before_the_next_pull(live: LiveServer,
                                                                             make_terminal: Callable[..., Terminal]) -> None:
    assert live.store is not None
    a = _at(live, make_terminal(live.store, "kw-salmiya-01", "till-1"))
    b = _at(live, make_terminal(live.store, "kw-hawally-02", "till-1"))
    first = json.loads(run("sale", "--card", OLD, "--item", "BEANS*2", "--json", cwd=a.dir).stdout)
    alice = first["member"]["id"]
    for till in (a, b):
        run("sync", cwd=till.dir)
    run("card", "replace", OLD, NEW, cwd=a.dir)
    run("sync", cwd=a.dir)
    # b has not pulled since: it asks the chain for the card it does not know, and sells to Alice
    sale = json.loads(run("sale", "--card", NEW, "--item", "LAT", "--json", cwd=b.dir).stdout)
    assert sale["member"]["id"] == alice and sale["enrolled"] is False
    assert not [x for x in sale["bonuses"] if x["bonus"] == "welcome"]  # no second welcome bonus
    assert sale["programs"]["points"]["balance"] == first["programs"]["points"]["balance"] + sale["earned"]["points"]
    synced = run("sync", cwd=b.dir).stdout
    assert "CARD CONFLICT" not in synced
    run("sync", cwd=a.dir)
    assert [f for f in live.store.reports()["flags"] if f["kind"] == "card_conflict"] == []
    shown = [json.loads(run("card", "show", NEW, "--json", cwd=t.dir).stdout) for t in (a, b)]
    assert shown[0]["member"]["id"] == shown[1]["member"]["id"] == alice
    assert shown[0]["programs"] == shown[1]["programs"]
    # a card no store has is enrolled as a new member, as before, and the lookup left nothing behind
    fresh = json.loads(run("sale", "--card", "code:NOBODY-1", "--item", "LAT", "--json", cwd=b.dir).stdout)
    assert fresh["enrolled"] is True and fresh["member"]["id"] != alice


def test_a_card_another_store_enrolled_is_shown_there_before_the_next_pull(live: LiveServer,
                                                                          make_terminal: Callable[..., Terminal]) -> None:
    assert live.store is not None
    a = _at(live, make_terminal(live.store, "kw-salmiya-01", "till-1"))
    b = _at(live, make_terminal(live.store, "kw-hawally-02", "till-1"))
    run("card", "enrol", OLD, "--name", "Alice", cwd=a.dir)
    run("sync", cwd=a.dir)
    shown = json.loads(run("card", "show", OLD, "--json", cwd=b.dir).stdout)  # was "not enrolled" until b pulled
    assert shown["status"] == "active" and shown["programs"]["points"]["balance"] > 0
    assert "name" not in shown["member"]  # personal data stays at the store that took it
    # a manager's action at b on a card a enrolled since b's last pull finds the member too
    run("card", "enrol", "code:LOST-7", cwd=a.dir)
    run("sync", cwd=a.dir)
    blocked = json.loads(run("card", "block", "code:LOST-7", "--reason", "lost", "--json", cwd=b.dir).stdout)
    assert blocked["status"] == "blocked" and blocked["programs"]["points"]["balance"] > 0


def test_a_card_both_tills_enrolled_offline_is_said_at_sync(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a = make_terminal(server, "kw-salmiya-01", "till-1")
    b = make_terminal(server, "kw-hawally-02", "till-1")
    a.sale(OLD, "LAT")  # both offline: two members for one card
    b.sale(OLD, "ESP")
    with in_process(server) as http:
        a.client(http).sync()
        result = b.client(http).sync()
    conflicts = result["pull"]["conflicts"]
    assert [c["card"] for c in conflicts] == [OLD], conflicts
    assert conflicts[0]["member_chain"] == a.loyalty.conn.execute("SELECT member_id FROM cards WHERE id=?", (OLD,)).fetchone()[0]
    assert conflicts[0]["member_here"] == b.loyalty.conn.execute("SELECT member_id FROM cards WHERE id=?", (OLD,)).fetchone()[0]
    assert [f["kind"] for f in server.reports()["flags"]].count("card_conflict") == 1


def test_a_till_pointed_at_another_chains_server_is_refused(server: ServerStore, make_terminal: Callable[..., Terminal],
                                                            tmp_path: Path) -> None:
    import pytest

    from sync.client import SyncFailed

    a = make_terminal(server, "kw-salmiya-01", "till-1")
    a.sale(OLD, "BEANS")
    with in_process(server) as http:
        a.client(http).sync()
    kept = a.conn.execute("SELECT value FROM sync_state WHERE key='chain_id'").fetchone()[0]
    assert kept == server.chain_id()
    other = ServerStore(f"sqlite:///{tmp_path / 'other-chain.db'}")
    try:
        _tid, a.token = other.add_terminal("kw-salmiya-01", "till-1")  # a token that chain gave it, all the same
        a.sale(OLD, "LAT")
        with in_process(other) as http, pytest.raises(SyncFailed) as refused:
            a.client(http).sync()
        assert refused.value.code == "wrong_chain" and "loyalty sync --new-server" in refused.value.message
        assert other.event_count() == 0  # nothing of this chain's went into the other
        assert [f["kind"] for f in other.reports()["flags"]] == ["wrong_chain"]
        # the chain's own server set up anew from nothing: the operator says so once, and the till syncs with it
        run("sync", "--new-server", "--server", "http://[::1", cwd=a.dir, check=False)  # no server asked: forgotten all the same
        assert a.conn.execute("SELECT value FROM sync_state WHERE key='chain_id'").fetchone() is None
        with in_process(other) as http:
            a.client(http).sync()
        assert other.event_count() == a.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        assert a.conn.execute("SELECT value FROM sync_state WHERE key='chain_id'").fetchone()[0] == other.chain_id()
    finally:
        other.close()


def test_a_server_that_trickles_its_answer_does_not_hold_the_sale(tmp_path: Path, server: ServerStore,
                                                                  make_terminal: Callable[..., Terminal]) -> None:
    # one byte a second: each read is inside httpx's timeout, so only a deadline on the whole question ends it
    import socket
    import threading
    import time

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not stop.is_set():
                    try:
                        conn.sendall(b"a")
                    except OSError:
                        break
                    time.sleep(0.5)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        till = make_terminal(server)
        text = till.config_path.read_text(encoding="utf-8")
        till.config_path.write_text(text.replace("http://127.0.0.1:8765", f"http://127.0.0.1:{listener.getsockname()[1]}"),
                                    encoding="utf-8")
        started = time.monotonic()
        sale = json.loads(run("sale", "--card", "code:SLOW-1", "--item", "ESP", "--json", cwd=till.dir).stdout)
        took = time.monotonic() - started
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert sale["enrolled"] is True  # nothing came back: a new card, as offline
    assert took < 20, took  # it waited out the trickle for minutes before


def test_an_overdraft_names_the_members_card_at_sync_and_in_the_server_report(live: LiveServer,
                                                                              make_terminal: Callable[..., Terminal]) -> None:
    assert live.store is not None
    a = _at(live, make_terminal(live.store, "kw-salmiya-01", "till-1"))
    b = _at(live, make_terminal(live.store, "kw-hawally-02", "till-1"))
    run("sale", "--card", OLD, "--item", "BEANS*10", cwd=a.dir)  # 950 points with the welcome bonus
    for till in (a, b):
        run("sync", cwd=till.dir)
    for till in (a, b):  # each redeems what it last saw of the chain before either syncs again
        run("sale", "--card", OLD, "--item", "BEANS", "--redeem", "points=600", cwd=till.dir)
    run("sync", cwd=a.dir)
    said = run("sync", cwd=b.dir).stdout
    assert f"OVERDRAFT member {b.member(OLD)} (card {OLD}) points/points: -" in said, said
    report = run("server", "report", "--db", live.url, cwd=b.dir).stdout
    assert f"(card {OLD}) points/points -" in report, report
