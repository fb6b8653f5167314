"""The pull cursor never skips a change that commits after a later-numbered one.

A push that is still in flight holds the change counter; a push that starts
after it cannot take numbers until it commits. With numbers handed out at
insert time instead (a plain sequence), the reader below would move its
cursor past the in-flight push's rows and never see them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from synctools import Terminal

from ledger.store import HASHED
from sync.protocol import parse_events
from sync.store import ServerStore

COLS = (*HASHED, "hash")


def wire(t: Terminal, since: int = 0, limit: int = 10_000) -> list[dict[str, Any]]:
    return [dict(zip(COLS, r, strict=True)) for r in t.conn.execute(
        f"SELECT {', '.join(COLS)} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (since, limit))]


def pull_all(server: ServerStore, tid: str, token: str, since: int, seen: dict[str, dict[str, Any]], limit: int = 3) -> int:
    while True:
        page = server.changes(tid, token, since, limit)
        numbers = [m["change"] for m in page["members"]]
        assert numbers == sorted(numbers) and all(n > since for n in numbers)
        for m in page["members"]:
            seen[m["member_id"]] = m
        since = page["cursor"]
        if not page["more"]:
            return since


def test_a_push_committing_late_is_not_skipped(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a = make_terminal(server, "s1", "till-1")
    b = make_terminal(server, "s2", "till-1")
    reader = make_terminal(server, "s3", "till-1")
    a.sale("code:A", "LAT")
    b.sale("code:B", "LAT")
    slow = server.engine.connect()
    trans = slow.begin()
    server.push_in(slow, a.tid, 1, wire(a))  # in flight: numbered, not committed
    done = threading.Event()

    def push_b() -> None:
        server.push(b.tid, b.token, 1, parse_events(wire(b)))
        done.set()

    thread = threading.Thread(target=push_b)
    thread.start()
    try:
        time.sleep(0.3)
        seen: dict[str, dict[str, Any]] = {}
        cursor = pull_all(server, reader.tid, reader.token, 0, seen)
        assert seen == {}  # b, which started later, is not visible before a commits
        assert not done.is_set()
        trans.commit()
    finally:
        if trans.is_active:
            trans.rollback()
        slow.close()
        thread.join(30)
    assert done.is_set()
    cursor = pull_all(server, reader.tid, reader.token, cursor, seen)
    assert set(seen) == {a.member("code:A"), b.member("code:B")}


def test_concurrent_pushes_and_a_reader_never_lose_a_change(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    tills = [make_terminal(server, f"s{i}", "till-1") for i in range(6)]
    reader = make_terminal(server, "reader", "till-1")
    for n in range(8):
        for i, t in enumerate(tills):
            t.sale(f"code:T{i}-{n % 3}", "LAT")
    errors: list[BaseException] = []

    def pusher(t: Terminal) -> None:
        try:
            seq = 0
            while seq < t.head():
                rows = wire(t, seq, 3)
                server.push(t.tid, t.token, seq + 1, parse_events(rows))
                seq = rows[-1]["seq"]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pusher, args=(t,)) for t in tills]
    seen: dict[str, dict[str, Any]] = {}
    cursor = 0
    for th in threads:
        th.start()
    while any(th.is_alive() for th in threads):
        cursor = pull_all(server, reader.tid, reader.token, cursor, seen)
    for th in threads:
        th.join()
    assert errors == []
    cursor = pull_all(server, reader.tid, reader.token, cursor, seen)
    full: dict[str, dict[str, Any]] = {}
    pull_all(server, reader.tid, reader.token, 0, full, limit=1000)
    assert len(full) == 18
    # the incremental reader holds exactly the latest state of every member
    assert {k: (v["change"], v["balances"]) for k, v in seen.items()} == {k: (v["change"], v["balances"]) for k, v in full.items()}
