"""The benchmark's bulk-built ledger is a real ledger: verify passes and lookups see its balances."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ledger.verify import verify

# loaded by path: putting bench/ on sys.path would let bench/sync.py shadow the sync package
_spec = importlib.util.spec_from_file_location("bench_dataset", Path(__file__).resolve().parents[2] / "bench" / "dataset.py")
assert _spec and _spec.loader
dataset = importlib.util.module_from_spec(_spec)
sys.modules["bench_dataset"] = dataset
_spec.loader.exec_module(dataset)
build, card_of = dataset.build, dataset.card_of


def test_bulk_built_ledger_verifies(make_store):
    store = make_store()
    store.service.close()
    build(store.cfg, 300, 2.25, today=store.now("2026-11-22T10:00").date())
    from ledger.service import Loyalty

    service = Loyalty.open(store.cfg)
    try:
        report = verify(service.conn)
        assert report.ok, report.problems
        assert report.events > 300 * 5
        view = service.card(card_of(7), store.now("2026-11-22T10:00"))
        assert view["programs"]["coffee"]["stamps"] >= 2
        stored = service.conn.execute(
            "SELECT amount FROM balances WHERE member_id=? AND account='points'", (view["member"]["id"],)
        ).fetchone()[0]
        assert 0 <= view["programs"]["points"]["balance"] <= stored and stored > 0
    finally:
        service.close()
