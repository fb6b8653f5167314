"""Push and pull through the real client and the real server, in process (TestClient) on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from synctools import NOW, Terminal, in_process, local_events, server_events

from ledger.errors import LoyaltyError
from ledger.store import HASHED, event_hash
from sync.client import SyncFailed
from sync.store import SCHEMA_VERSION, ServerStore

CARD = "uid:04A1B2C3D4E5F6"
COLS = (*HASHED, "hash")


def wire(t: Terminal, since: int = 0) -> list[dict[str, Any]]:
    return [dict(zip(COLS, r, strict=True)) for r in t.conn.execute(f"SELECT {', '.join(COLS)} FROM events WHERE seq > ? ORDER BY seq", (since,))]


def rehash(rows: list[dict[str, Any]], prev: str) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        r = {**r, "prev_hash": prev}
        r["hash"] = event_hash(r)
        prev = r["hash"]
        out.append(r)
    return out


def two_stores(server: ServerStore, make_terminal: Callable[..., Terminal]) -> tuple[Terminal, Terminal]:
    """A till at each of two stores of the chain, both registered with `server`."""
    return make_terminal(server, "kw-salmiya-01", "till-1"), make_terminal(server, "kw-hawally-02", "till-1")


def test_push_then_pull_gives_every_till_the_chain_balance(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a, b = two_stores(server, make_terminal)
    a.sale(CARD, "LAT*3", "BEANS")
    a.sale(CARD, "ESP*2")
    with in_process(server) as http:
        res = a.client(http).sync()
        assert res["push"]["acked_seq"] == a.head() == res["push"]["head_seq"]
        assert server_events(server, a.tid) == local_events(a)
        assert server.balances_of() == {k: v for k, v in a.shown().items()}

        pulled = b.client(http).sync()["pull"]
        assert pulled["new_members"] == 1 and pulled["new_cards"] == 1
        # the card is known at the other store, with the balance it earned at the first
        assert b.conn.execute("SELECT status FROM cards WHERE id=?", (CARD,)).fetchone()[0] == "active"
        assert b.shown() == a.shown() == server.balances_of()
        points = b.loyalty.card(CARD, NOW)["member"]["id"]
        assert points == a.member(CARD)

        # an earning at the second store reaches the first; each till keeps its own share apart
        b.sale(CARD, "LAT")
        b.client(http).sync()
        a.client(http).sync()
        assert a.shown() == b.shown() == server.balances_of()
        remote_a = dict(((m, p, acc), v) for m, p, acc, v in a.conn.execute("SELECT member_id, program_id, account, amount FROM remote_balances"))
        own_b = dict(((m, p, acc), v) for m, p, acc, v in b.conn.execute("SELECT member_id, program_id, account, amount FROM balances"))
        assert {k: v for k, v in remote_a.items() if v} == {k: v for k, v in own_b.items() if v}


def test_push_is_idempotent_and_pull_resumes_from_its_cursor(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a = make_terminal(server)
    a.sale(CARD, "LAT*2")
    rows = wire(a)
    with in_process(server) as http:
        h = {"Authorization": f"Bearer {a.token}"}
        first = http.post(f"/v1/terminals/{a.tid}/events", json={"from_seq": 1, "events": rows}, headers=h)
        again = http.post(f"/v1/terminals/{a.tid}/events", json={"from_seq": 1, "events": rows}, headers=h)
        assert first.status_code == again.status_code == 200
        assert first.json()["acked_seq"] == again.json()["acked_seq"] == len(rows)
        assert server.event_count() == len(rows)
        # part old, part new: the old part is a no-op, the new part is stored
        a.sale(CARD, "ESP")
        both = http.post(f"/v1/terminals/{a.tid}/events", json={"from_seq": 2, "events": wire(a, 1)}, headers=h)
        assert both.status_code == 200 and both.json()["acked_seq"] == a.head()
        assert server_events(server, a.tid) == local_events(a)

        client = a.client(http, page=1)
        client.push()
        p1 = client.pull()
        assert p1.pages >= 1 and p1.members == 1
        again_pull = client.pull()
        assert again_pull.members == 0 and again_pull.cursor == p1.cursor


def test_a_gap_answers_409_and_the_client_resends_from_the_server_head(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a = make_terminal(server)
    a.sale(CARD, "LAT*2")
    a.sale(CARD, "ESP")
    rows = wire(a)
    with in_process(server) as http:
        h = {"Authorization": f"Bearer {a.token}"}
        r = http.post(f"/v1/terminals/{a.tid}/events", json={"from_seq": 3, "events": rows[2:]}, headers=h)
        assert r.status_code == 409
        assert r.json()["last_seq"] == 0
        assert server.event_count() == 0
        # a till that believes more is acked than the server holds (server restored from a backup)
        client = a.client(http)
        client._set({"acked_seq": 3, "acked_hash": rows[2]["hash"]})
        client.push()
        assert server_events(server, a.tid) == local_events(a)


def test_tamper_and_auth_are_refused_flagged_and_store_nothing(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a, b = two_stores(server, make_terminal)
    a.sale(CARD, "LAT*2")
    rows = wire(a)
    with in_process(server) as http:
        ha = {"Authorization": f"Bearer {a.token}"}
        url = f"/v1/terminals/{a.tid}/events"
        assert http.post(url, json={"from_seq": 1, "events": rows}, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert http.post(url, json={"from_seq": 1, "events": rows}).status_code == 401
        # b's valid token, pushing as a
        assert http.post(url, json={"from_seq": 1, "events": rows}, headers={"Authorization": f"Bearer {b.token}"}).status_code == 403
        # a's events pushed under b's own id: they claim another terminal
        rb = http.post(f"/v1/terminals/{b.tid}/events", json={"from_seq": 1, "events": rows}, headers={"Authorization": f"Bearer {b.token}"})
        assert rb.status_code == 422
        # an edited amount without a new hash
        bad = [dict(r) for r in rows]
        bad[1]["amount"] += 5
        assert http.post(url, json={"from_seq": 1, "events": bad}, headers=ha).status_code == 422
        assert server.event_count() == 0

        assert http.post(url, json={"from_seq": 1, "events": rows}, headers=ha).status_code == 200
        stored = server_events(server, a.tid)
        balances = server.balances_of()
        # replayed with altered content, re-chained so every hash checks out
        forged = rehash([{**r, "amount": r["amount"] * 10} for r in rows], rows[0]["prev_hash"])
        r = http.post(url, json={"from_seq": 1, "events": forged}, headers=ha)
        assert r.status_code == 422 and r.json()["error"] == "tamper"
        # new events that do not continue the stored chain
        a.sale(CARD, "ESP")
        new = wire(a, len(rows))
        broken = rehash(new, "f" * 64)
        assert http.post(url, json={"from_seq": len(rows) + 1, "events": broken}, headers=ha).status_code == 422
        # a reused event id with other content
        reused = rehash([{**new[0], "event_id": rows[0]["event_id"]}], rows[-1]["hash"])
        assert http.post(url, json={"from_seq": len(rows) + 1, "events": reused}, headers=ha).status_code == 422
        assert server_events(server, a.tid) == stored
        assert server.balances_of() == balances

        # the till's own client with a token the server does not know: what to check, and where
        a.token = "lt_not_this_chains_token"
        with pytest.raises(SyncFailed) as refused:
            a.client(http).pull()
    assert refused.value.code == "unauthorized"
    assert "HTTP 401" in refused.value.message and "[sync] token_file" in refused.value.message
    assert "this chain's server" in refused.value.message and "add-terminal --rotate" in refused.value.message

    kinds = [f["kind"] for f in server.reports()["flags"]]
    assert kinds.count("bad_token") == 3
    assert kinds.count("wrong_terminal") == 1
    assert kinds.count("tamper") == 5


def test_two_stores_redeem_offline_overdraft_is_flagged_and_shown_alike(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a, b = two_stores(server, make_terminal)
    a.sale(CARD, "BEANS*10")  # 10 * 4.500 * 10 points * 2 (retail) = 900 + welcome 50
    with in_process(server) as http:
        a.client(http).sync()
        b.client(http).sync()
        member = a.member(CARD)
        key = (member, "points", "points")
        synced = b.shown()[key]
        assert synced == a.shown()[key] == 950
        # both offline: each redeems, through a real checkout, up to what it last saw of the chain (its escrow)
        sold_a = a.sale(CARD, "BEANS", redeem=("points=600",))
        sold_b = b.sale(CARD, "BEANS", redeem=("points=600",))
        assert sold_a["redeemed"] == sold_b["redeemed"] == {"points": 600}
        expected = synced - 2 * 600 + sold_a["earned"]["points"] + sold_b["earned"]["points"]
        assert expected < 0
        ra = a.client(http).sync()
        rb = b.client(http).sync()
        assert ra["push"]["overdrafts"] == []
        overdrafts = rb["push"]["overdrafts"]
        assert [(o["member_id"], o["program_id"], o["account"]) for o in overdrafts] == [(member, "points", "points")]
        assert overdrafts[0]["balance"] < 0
        a.client(http).sync()
    # every till shows the same negative balance, and it never goes below what two escrows allow
    assert a.shown()[key] == b.shown()[key] == server.balances_of()[key] == expected
    assert expected >= -synced
    rep = server.reports()["overdrafts"]
    assert [(o["member_id"], o["current"], o["tid"]) for o in rep] == [(member, expected, b.tid)]
    assert rep[0]["cards"] == [CARD]  # what the manager finds the customer by
    # the till refuses to redeem from a negative balance
    with pytest.raises(LoyaltyError) as exc:
        a.sale(CARD, "BEANS", redeem=("points=100",))
    assert exc.value.code == "insufficient_balance"


def test_a_card_blocked_at_one_store_is_refused_at_another_after_pull(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a, b = two_stores(server, make_terminal)
    a.sale(CARD, "LAT")
    with in_process(server) as http:
        a.client(http).sync()
        b.client(http).sync()
        b.sale(CARD, "ESP")
        a.loyalty.block(CARD, NOW, "stolen")
        a.client(http).sync()
        pulled = b.client(http).sync()["pull"]
        assert pulled["hotlisted"] == 1
    with pytest.raises(LoyaltyError) as exc:
        b.sale(CARD, "ESP")
    assert exc.value.code == "card_blocked"
    assert "(stolen)" in exc.value.message  # the other store's cashier reads why


def test_a_block_without_a_reason_reads_blocked_at_another_till_and_keeps_the_blocking_tills_word(
        server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a, b = two_stores(server, make_terminal)
    a.sale(CARD, "LAT")
    with in_process(server) as http:
        a.client(http).sync()
        b.client(http).sync()
        a.loyalty.block(CARD, NOW)
        a.client(http).sync()
        b.client(http).sync()
        a.client(http).sync()
        reasons = {t.tid: t.conn.execute("SELECT reason FROM cards WHERE id=?", (CARD,)).fetchone()[0] for t in (a, b)}
        assert reasons == {a.tid: None, b.tid: "blocked at another till"}
        # unblocked and blocked again, now with a reason: the other till learns it
        a.loyalty.unblock(CARD, NOW)
        a.loyalty.block(CARD, NOW, "lost, reported by phone")
        a.client(http).sync()
        assert b.client(http).sync()["pull"]["hotlisted"] == 0  # it was blocked there already
        assert tuple(b.conn.execute("SELECT status, reason FROM cards WHERE id=?", (CARD,)).fetchone()) == ("blocked", "lost, reported by phone")
        a.loyalty.unblock(CARD, NOW)
        a.client(http).sync()
        b.client(http).sync()
        assert tuple(b.conn.execute("SELECT status, reason FROM cards WHERE id=?", (CARD,)).fetchone()) == ("active", None)


def test_a_server_of_the_first_schema_gains_the_block_reason_and_keeps_its_cards(db_url: str) -> None:
    from sqlalchemy import text

    first = ServerStore(db_url)
    with first.engine.begin() as conn:
        conn.execute(text("INSERT INTO cards (card_id, member_id, status) VALUES ('uid:04AABBCC', 'm-1', 'blocked')"))
        conn.execute(text("ALTER TABLE cards DROP COLUMN reason"))
        conn.execute(text("UPDATE meta SET value='1' WHERE key='schema_version'"))
    first.close()
    again = ServerStore(db_url)
    try:
        assert again.schema_version() == 2
        with again.engine.begin() as conn:
            assert conn.execute(text("SELECT card_id, status, reason FROM cards")).all() == [("uid:04AABBCC", "blocked", None)]
    finally:
        again.close()


def test_replace_moves_the_member_to_the_new_card_everywhere(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a, b = two_stores(server, make_terminal)
    a.sale(CARD, "LAT")
    a.loyalty.replace(CARD, "code:NEW-1", NOW)
    with in_process(server) as http:
        a.client(http).sync()
        b.client(http).sync()
    rows = dict(b.conn.execute("SELECT id, status FROM cards").fetchall())
    assert rows == {CARD: "replaced", "code:NEW-1": "active"}
    assert b.sale("code:NEW-1", "ESP")["member"]["id"] == a.member(CARD)
    # replaced again at the other store: the first card points at the card in use, at the server and at every till
    b.loyalty.replace("code:NEW-1", "code:NEW-2", NOW)
    with in_process(server) as http:
        b.client(http).sync()
        a.client(http).sync()
    for till in (a, b):
        rows = {r[0]: (r[1], r[2]) for r in till.conn.execute("SELECT id, status, replaced_by FROM cards")}
        assert rows == {CARD: ("replaced", "code:NEW-2"), "code:NEW-1": ("replaced", "code:NEW-2"), "code:NEW-2": ("active", None)}


def test_reports_list_tills_not_synced_for_a_day(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    from datetime import UTC, datetime, timedelta

    a = make_terminal(server, "kw-salmiya-01", "till-1")
    make_terminal(server, "kw-salmiya-01", "till-2")
    a.sale(CARD, "LAT")
    with in_process(server) as http:
        a.client(http).sync()
        rep = http.get(f"/v1/terminals/{a.tid}/reports", headers={"Authorization": f"Bearer {a.token}"}).json()
    assert [t["tid"] for t in rep["stale_terminals"]] == ["kw-salmiya-01:till-2"]
    later = server.reports(now=datetime.now(UTC) + timedelta(days=2))
    assert [t["tid"] for t in later["stale_terminals"]] == ["kw-salmiya-01:till-1", "kw-salmiya-01:till-2"]


def test_schema_is_created_once_and_reopened(db_url: str) -> None:
    first = ServerStore(db_url)
    tid, _ = first.add_terminal("s", "t")
    first.close()
    again = ServerStore(db_url)
    try:
        assert again.schema_version() == SCHEMA_VERSION == 2
        assert again.terminal_head(tid) == (0, "0" * 64)
        with pytest.raises(Exception, match="already registered"):
            again.add_terminal("s", "t")
        _, token = again.add_terminal("s", "t", rotate=True)
        assert token.startswith("lt_")
        # a mistyped till given --rotate is refused, not registered as a new one
        with pytest.raises(Exception, match="is not registered"):
            again.add_terminal("s", "t2", rotate=True)
        with pytest.raises(Exception, match="already registered"):
            again.add_terminal("s", "t")  # still one till; "t2" was not added
        again.add_terminal("s", "t2")
    finally:
        again.close()


def test_ledgers_still_verify_after_pulls_and_the_clock_skew_is_measured(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    from ledger.verify import verify

    a, b = two_stores(server, make_terminal)
    a.sale(CARD, "LAT*2", "BEANS")
    with in_process(server) as http:
        a.client(http).sync()
        res = b.client(http).sync()
        b.sale(CARD, "ESP")
        b.client(http).sync()
        a.client(http).sync()
    assert res["pull"]["clock_skew_s"] is not None and abs(res["pull"]["clock_skew_s"]) < 5
    assert "warning" not in res
    for t in (a, b):
        report = verify(t.conn)
        assert report.ok, report.problems
    state = dict(b.conn.execute("SELECT key, value FROM sync_state").fetchall())
    assert {"acked_seq", "acked_hash", "cursor", "last_pull_at", "clock_skew_s"} <= set(state)


def test_background_sync_runs_on_its_interval_and_reports(server: ServerStore, make_terminal: Callable[..., Terminal], tmp_path: Any) -> None:
    import threading

    from synctools import LiveServer

    from sync.client import BackgroundSync, Offline, SyncClient

    a = make_terminal(server, "kw-salmiya-01", "till-1")
    a.sale(CARD, "LAT")
    live = LiveServer(server.url).start()
    results: list[Any] = []
    got = threading.Event()
    base = {"url": live.base}

    def on_result(r: Any) -> None:
        results.append(r)
        got.set()

    def make() -> SyncClient:
        from ledger.store import connect

        conn = connect(a.loyalty.ledger.path)  # the worker's own connection to the ledger file
        return SyncClient(conn, server=base["url"], token=a.token, store_id="kw-salmiya-01", terminal_id="till-1",
                          attempts=1, backoff_s=0.01, owns_conn=True)

    bg = BackgroundSync(make, interval_s=0.2, on_result=on_result)
    try:
        bg.start()
        assert got.wait(10)
        assert isinstance(results[0], dict) and results[0]["push"]["acked_seq"] == a.head()
        a.sale(CARD, "ESP")
        got.clear()
        bg.sync_now()
        deadline = time.monotonic() + 10
        while server.terminal_head(a.tid)[0] != a.head():
            assert time.monotonic() < deadline
            got.wait(0.1)
        live.stop()
        base["url"] = "http://127.0.0.1:9"  # nothing listens there: offline
        got.clear()
        bg.sync_now()
        assert got.wait(10)
        deadline = time.monotonic() + 10
        while not isinstance(results[-1], Offline):
            assert time.monotonic() < deadline
            got.wait(0.1)
        assert bg.failures >= 1
    finally:
        bg.stop()
        live.stop()


def test_a_till_that_only_pulls_is_not_reported_stale(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    idle = make_terminal(server, "kw-salmiya-01", "till-9")
    assert [t["tid"] for t in server.reports()["stale_terminals"]] == [idle.tid]
    with in_process(server) as http:
        idle.client(http).sync()
    assert server.reports()["stale_terminals"] == []


def test_a_database_gone_from_under_the_server_answers_503_and_the_till_says_so(postgres: Any, make_terminal: Callable[..., Terminal]) -> None:
    import psycopg
    from fastapi.testclient import TestClient

    from sync.app import create_app
    from sync.client import Offline

    url = postgres.new_database()
    store = ServerStore(url)
    till = make_terminal(store)
    till.sale("uid:04A1B2C3D4E5F6", "LAT")
    try:
        with TestClient(create_app(store), raise_server_exceptions=False) as http:
            store.engine.dispose()
            with psycopg.connect(f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE {url.rsplit('/', 1)[1]} WITH (FORCE)")  # as if PostgreSQL were stopped
            answer = http.get(f"/v1/terminals/{till.tid}/changes", params={"since": 0}, headers={"Authorization": f"Bearer {till.token}"})
            assert answer.status_code == 503 and answer.json()["error"] == "database_unavailable"
            with pytest.raises(Offline) as down:
                till.client(http).sync()
            assert "the server's database does not answer" in down.value.message
    finally:
        store.close()


def test_the_clock_skew_warning_says_which_way_the_till_is_off() -> None:
    from sync.client import skew_warning

    # skew is the server's time minus the till's: a till 5 h ahead measures -18000
    assert "18000 s ahead of the server's" in str(skew_warning(-18_000.0))
    assert "300 s behind the server's" in str(skew_warning(300.0))
    assert skew_warning(90.0) is None and skew_warning(None) is None


def _backup(path: Any) -> bytes:
    """The SQLite server file as a backup would hold it (everything checkpointed)."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(path)) as conn:  # closed, not only committed: no handle on the file outlives the copy
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return bytes(path.read_bytes())


def _restore(path: Any, saved: bytes) -> ServerStore:
    """The server started again on the backup (in a file of its own: no handle on the old one can reach it)."""
    restored = path.with_name("restored-" + path.name)
    restored.write_bytes(saved)
    return ServerStore(f"sqlite:///{restored}")


def test_a_server_restored_from_a_backup_gets_back_what_it_lost_at_the_next_sync(tmp_path: Any,
                                                                                 make_terminal: Callable[..., Terminal]) -> None:
    db = tmp_path / "server.db"
    store = ServerStore(f"sqlite:///{db}")
    a = make_terminal(store, terminal_id="till-1")
    b = make_terminal(store, terminal_id="till-2")
    card = "uid:04A1B2C3D4E5F6"
    a.sale(card, "LAT")
    with in_process(store) as http:
        a.client(http).sync()
        b.client(http).sync()
    store.close()
    saved = _backup(db)
    store = ServerStore(f"sqlite:///{db}")
    a.sale(card, "BEANS*2")  # after the backup: the server gets it, then loses it in the restore
    d = make_terminal(store, terminal_id="till-4")  # a till that will not sync again soon
    for n in range(3):
        d.sale(f"code:LOST-{n}", "ESP")
    with in_process(store) as http:
        a.client(http).sync()
        d.client(http).sync()
        b.client(http).sync()  # its cursor is now past what the restored server will count
    store.close()
    store = _restore(db, saved)
    try:
        with in_process(store) as http:
            # till-1 has nothing new: it still finds out, and sends again what the server lost
            result = a.client(http).sync()
            assert result["pull"]["rewound_ack"] is True and result["push"]["acked_seq"] == a.head()
            assert [seq for seq, _, _ in server_events(store, a.tid)] == list(range(1, a.head() + 1))
            # a new change after the restore is numbered past every cursor: till-2, whose cursor is past the restored
            # counter, still gets it (a reused number was skipped for good)
            c = make_terminal(store, terminal_id="till-3")
            new_cards = [f"code:NEW-{n}" for n in range(4)]
            for new_card in new_cards:
                c.sale(new_card, "LAT")
            c.client(http).sync()
            b.client(http).sync()
            for shown in (card, *new_cards):
                assert b.loyalty.card(shown, NOW)["programs"] == c.loyalty.card(shown, NOW)["programs"], shown
            assert b.loyalty.card(card, NOW)["programs"] == a.loyalty.card(card, NOW)["programs"]
    finally:
        store.close()


def test_a_till_ledger_put_back_from_an_older_copy_is_named_at_sync(tmp_path: Any, server: ServerStore,
                                                                    make_terminal: Callable[..., Terminal]) -> None:
    import shutil

    a = make_terminal(server)
    a.sale("uid:04A1B2C3D4E5F6", "LAT")
    with in_process(server) as http:
        a.client(http).sync()
    a.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(a.cfg.ledger.path, tmp_path / "older.db")
    a.sale("uid:04A1B2C3D4E5F6", "ESP")
    with in_process(server) as http:
        a.client(http).sync()
    a.close()
    for extra in ("-wal", "-shm"):
        Path(f"{a.cfg.ledger.path}{extra}").unlink(missing_ok=True)
    shutil.copy(tmp_path / "older.db", a.cfg.ledger.path)
    from ledger.service import Loyalty

    a.loyalty = Loyalty.open(a.cfg)
    with in_process(server) as http, pytest.raises(SyncFailed) as err:
        a.client(http).sync()
    assert err.value.code == "ledger_behind_server" and "put back from an older copy" in err.value.message
