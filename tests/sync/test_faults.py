"""The real client through a fault proxy to the real server under uvicorn on loopback.

After every random fault schedule, each event is on the server exactly once
(the server's chain equals the till's) and every till shows the balances the
server holds.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx
import pytest
from faultproxy import FAULTS, FaultProxy
from synctools import LiveServer, Terminal, local_events, server_events, sync_until_done

SCHEDULES = 100
ITEMS = ("LAT", "ESP*2", "BEANS", "CRO", "SPN*3")


def test_fault_proxy_faults_each_do_what_they_say(live: LiveServer) -> None:
    proxy = FaultProxy(live.port)
    try:
        with httpx.Client(base_url=proxy.base, timeout=2) as http:
            assert http.get("/v1/health").status_code == 200
            for fault in ("drop", "reset", "truncate", "lost_reply"):
                proxy.schedule([fault])
                with pytest.raises(httpx.TransportError):
                    http.get("/v1/health")
            proxy.schedule(["delay", "duplicate"])
            assert http.get("/v1/health").status_code == 200
            assert http.get("/v1/health").status_code == 200
        assert proxy.applied[1:] == ["drop", "reset", "truncate", "lost_reply", "delay", "duplicate"]
    finally:
        proxy.close()


def test_random_fault_schedules_leave_every_event_once_and_balances_agreed(
    live: LiveServer, make_terminal: Callable[..., Terminal]
) -> None:
    proxy = FaultProxy(live.port, restart=live.restart, delay_s=0.02)
    rng = random.Random(20261122)
    weights = [6, 2, 2, 2, 2, 2, 2, 1]
    try:
        with httpx.Client(base_url=proxy.base, timeout=2.0) as http:
            assert live.store is not None
            a = make_terminal(live.store, "kw-salmiya-01", "till-1")
            b = make_terminal(live.store, "kw-hawally-02", "till-1")
            for i in range(SCHEDULES):
                # a's card becomes known at b through the server; b then earns on it too
                for _ in range(rng.randint(1, 3)):
                    a.sale(f"code:C{i}-a", rng.choice(ITEMS))
                faults = rng.choices(FAULTS, weights=weights, k=rng.randint(1, 6))
                proxy.schedule(faults)
                ca = a.client(http, attempts=3, batch=rng.choice([2, 3, 500]), page=rng.choice([40, 500]), rng=rng)
                cb = b.client(http, attempts=3, batch=rng.choice([2, 3, 500]), page=rng.choice([40, 500]), rng=rng)
                sync_until_done(ca)
                sync_until_done(cb)
                for _ in range(rng.randint(1, 3)):
                    b.sale(rng.choice([f"code:C{i}-a", f"code:C{i}-b"]), rng.choice(ITEMS))
                sync_until_done(cb)
                sync_until_done(ca)
                assert live.store is not None
                for t in (a, b):
                    assert server_events(live.store, t.tid) == local_events(t), f"schedule {i}: {faults}"
                    assert live.store.terminal_head(t.tid)[0] == t.head()
                chain = live.store.balances_of()
                assert a.shown() == b.shown() == {k: v for k, v in chain.items() if v}, f"schedule {i}: {faults}"
        assert live.store is not None
        assert live.store.reports()["flags"] == []
        assert {"drop", "reset", "truncate", "duplicate", "lost_reply", "restart", "delay"} <= set(proxy.applied)
    finally:
        proxy.close()
