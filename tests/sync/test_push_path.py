"""The push path's own parsing and hashing agree with the ledger, and the event id stays unique chain-wide."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from synctools import Terminal, in_process

from ledger.store import GENESIS, HASHED, canonical, event_hash
from sync.protocol import parse_events
from sync.store import ServerStore

COLS = (*HASHED, "hash")
CARD = "uid:04A1B2C3D4E5F6"

text = st.text(max_size=30)  # every code point json escapes or keeps: quotes, controls, U+2028, astral
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


def definition(ev: dict[str, Any]) -> str:
    """The hash as documented: SHA-256 of prev_hash + canonical JSON of the other hashed fields, payload as an object."""
    body = {k: ev[k] for k in HASHED if k != "prev_hash"} | {"payload": json.loads(ev["payload"])}
    return hashlib.sha256((ev["prev_hash"] + canonical(body)).encode()).hexdigest()


@settings(max_examples=300, deadline=None)
@given(
    strings=st.fixed_dictionaries({k: text for k in ("event_id", "terminal_id", "store_id", "ts", "business_day", "kind", "rules_version")}),
    optional=st.fixed_dictionaries({k: st.none() | text for k in ("member_id", "card_id", "program_id", "account", "sale_id", "ref_event_id")}),
    seq=st.integers(1, 2**62),
    amount=st.integers(-(2**62), 2**62),
    payload=json_values,
    prev=st.sampled_from([GENESIS, "ab" * 32]),
)
def test_the_event_hash_is_its_definition(strings: dict[str, Any], optional: dict[str, Any], seq: int, amount: int,
                                          payload: Any, prev: str) -> None:
    ev = {**strings, **optional, "seq": seq, "amount": amount, "prev_hash": prev, "payload": json.dumps(payload, ensure_ascii=False)}
    try:
        expected: str | None = definition(ev)
    except ValueError:  # a lone surrogate cannot be UTF-8: the server must refuse it the same way
        expected = None
    try:
        got: str | None = event_hash(ev)
    except ValueError:
        got = None
    assert got == expected
    if got is not None and not isinstance(payload, str):  # a str payload is read as JSON text
        assert event_hash({**ev, "payload": payload}) == got
    assert event_hash({**ev, "payload": "{}"}) == definition({**ev, "payload": "{}"})


def test_a_terminal_may_leave_optional_fields_out() -> None:
    ev = {"seq": 1, "event_id": "e1", "terminal_id": "till-1", "store_id": "s1", "ts": "2026-11-22T09:00:00.000000Z",
          "business_day": "2026-11-22", "kind": "note", "rules_version": "r1", "prev_hash": GENESIS}
    ev["hash"] = event_hash({**ev, **dict.fromkeys(("member_id", "card_id", "program_id", "account", "sale_id", "ref_event_id")),
                             "amount": 0, "payload": "{}"})
    (parsed,) = parse_events([ev])
    assert parsed["member_id"] is None and parsed["amount"] == 0 and parsed["payload"] == "{}"
    assert event_hash(parsed) == ev["hash"]


def wire(t: Terminal, since: int = 0) -> list[dict[str, Any]]:
    return [dict(zip(COLS, r, strict=True)) for r in t.conn.execute(f"SELECT {', '.join(COLS)} FROM events WHERE seq > ? ORDER BY seq", (since,))]


def test_an_event_id_stored_by_another_terminal_is_tamper(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a = make_terminal(server, "kw-salmiya-01", "till-1")
    b = make_terminal(server, "kw-hawally-02", "till-1")
    a.sale(CARD, "LAT")
    b.sale(CARD, "ESP")
    with in_process(server) as http:
        ra = wire(a)
        assert http.post(f"/v1/terminals/{a.tid}/events", json={"from_seq": 1, "events": ra},
                         headers={"Authorization": f"Bearer {a.token}"}).status_code == 200
        # b's own first event, re-chained under an id a already stored
        rb = wire(b)
        first = {**rb[0], "event_id": ra[0]["event_id"]}
        first["hash"] = event_hash(first)
        r = http.post(f"/v1/terminals/{b.tid}/events", json={"from_seq": 1, "events": [first]},
                      headers={"Authorization": f"Bearer {b.token}"})
        assert r.status_code == 422 and r.json()["error"] == "tamper"
        assert ra[0]["event_id"] in r.json()["message"]
        assert server.event_count(b.tid) == 0
        # a resend of what a already stored is still a no-op, and b's real chain goes through
        assert http.post(f"/v1/terminals/{a.tid}/events", json={"from_seq": 1, "events": ra},
                         headers={"Authorization": f"Bearer {a.token}"}).json()["acked_seq"] == len(ra)
        assert http.post(f"/v1/terminals/{b.tid}/events", json={"from_seq": 1, "events": rb},
                         headers={"Authorization": f"Bearer {b.token}"}).status_code == 200
    flags = [f for f in server.reports()["flags"] if f["kind"] == "tamper"]
    assert len(flags) == 1 and flags[0]["tid"] == b.tid and ra[0]["event_id"] in flags[0]["detail"]


def test_a_push_body_must_be_json(server: ServerStore, make_terminal: Callable[..., Terminal]) -> None:
    a = make_terminal(server)
    a.sale(CARD, "LAT")
    body = json.dumps({"from_seq": 1, "events": wire(a)})
    with in_process(server) as http:
        url, auth = f"/v1/terminals/{a.tid}/events", {"Authorization": f"Bearer {a.token}"}
        for headers in ({"Content-Type": "text/plain"}, {}):
            r = http.post(url, content=body, headers={**auth, **headers})
            assert r.status_code == 422 and r.json()["error"] == "invalid"
        r = http.post(url, content=body[:-5], headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"] == "invalid"
        r = http.post(url, json={"from_seq": 1, "events": [{**wire(a)[0], "seq": "x"}]}, headers=auth)
        assert r.status_code == 422 and r.json()["message"].startswith("body.events.0.seq")
        assert http.post(url, content=body, headers={**auth, "Content-Type": "application/json; charset=utf-8"}).status_code == 200
    assert server.event_count() == len(wire(a))
