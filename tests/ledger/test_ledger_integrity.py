"""The ledger file: atomic sales, idempotent retries, append-only events, tamper detection."""

from __future__ import annotations

import sqlite3

import pytest

from ledger.errors import LoyaltyError
from ledger.verify import verify

CARD = "uid:04A1B2C3D4E5F6"


def busy(store):
    store.sale(CARD, ["ESP*9"])
    store.sale(CARD, ["LAT*3", "BEANS"])
    sale = store.sale(CARD, ["ESP", "BIG"], ["coffee"])
    store.sale("code:77", ["CRO*2"])
    return sale


def tamper(store, *sql):
    conn = store.service.conn
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    for statement in sql:
        conn.execute(statement)


def test_verify_passes_on_a_busy_ledger(store):
    busy(store)
    report = verify(store.service.conn)
    assert report.ok, report.problems
    assert report.checks == {"integrity": True, "chain": True, "balances": True, "lots": True, "sales": True}
    assert report.events == store.count("events")


def test_wal_and_full_sync(store):
    conn = store.service.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_events_are_append_only(store):
    busy(store)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.service.conn.execute("UPDATE events SET amount = 1000 WHERE seq = 3")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.service.conn.execute("DELETE FROM events WHERE seq = 3")


def test_an_edited_event_is_detected(store):
    busy(store)
    tamper(store, "UPDATE events SET amount = amount + 500 WHERE kind = 'earn' AND seq = (SELECT MIN(seq) FROM events WHERE kind = 'earn')")
    report = verify(store.service.conn)
    assert not report.checks["chain"]
    assert any("edited" in p for p in report.problems)


def test_an_edited_balance_is_detected(store):
    busy(store)
    store.service.conn.execute("UPDATE balances SET amount = amount + 1 WHERE account = 'points'")
    report = verify(store.service.conn)
    assert report.checks["chain"] and not report.checks["balances"]


def test_a_deleted_event_is_detected(store):
    busy(store)
    tamper(store, "DELETE FROM events WHERE seq = 4")
    report = verify(store.service.conn)
    assert not report.checks["chain"]
    assert any("missing" in p for p in report.problems)


def test_reordered_events_are_detected(store):
    busy(store)
    tamper(
        store,
        "UPDATE events SET seq = -1 WHERE seq = 5",
        "UPDATE events SET seq = 5 WHERE seq = 6",
        "UPDATE events SET seq = 6 WHERE seq = -1",
    )
    assert not verify(store.service.conn).checks["chain"]


def test_a_truncated_chain_is_detected(store):
    busy(store)
    tamper(store, "DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events)")
    report = verify(store.service.conn)
    assert not report.checks["chain"]
    assert any("chain head" in p for p in report.problems)


def test_an_edited_sale_is_detected(store):
    busy(store)
    store.service.conn.execute("UPDATE sales SET total = total - 100 WHERE rowid = 1")
    assert not verify(store.service.conn).checks["sales"]


def test_a_retried_sale_is_committed_once(store):
    first = store.sale(CARD, ["LAT*2"], sale_id="s-1")
    again = store.sale(CARD, ["LAT*2"], sale_id="s-1")
    assert again["replayed"] is True
    assert {k: v for k, v in again.items() if k != "replayed"} == first
    assert store.count("sales") == 1
    assert store.show(CARD)["programs"]["points"]["balance"] == 25


@pytest.mark.parametrize("items", [["lat*2"], ["LAT", "LAT"], ["ESP", "LAT*2"], ["111", "LAT*2"]])
def test_a_retry_is_the_same_sale_whatever_the_spelling_of_its_items(store, items):
    first = store.sale(CARD, ["LAT*2", "ESP"] if "ESP" in items or "111" in items else ["LAT*2"], sale_id="s-1")
    again = store.sale(CARD, items, sale_id="s-1")  # SKU case, lines split or merged, order, barcode for SKU
    assert again["replayed"] is True and again["sale"] == first["sale"]
    assert store.count("sales") == 1


def test_a_sale_id_reused_for_another_cart_is_refused(store):
    store.sale(CARD, ["LAT*2"], sale_id="s-1")
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["LAT*3"], sale_id="s-1")
    assert err.value.code == "conflict" and "with other items" in err.value.message
    with pytest.raises(LoyaltyError) as err:
        store.sale("code:SOMEONE-ELSE", ["LAT*2"], sale_id="s-1")
    assert err.value.code == "conflict" and f"for card {CARD}, not code:SOMEONE-ELSE" in err.value.message
    assert store.count("sales") == 1


def test_event_ids_of_a_sale_are_derived_from_its_id(store, make_store, tmp_path):
    # the same sale committed on a fresh ledger writes the same event ids: a retry after a crash cannot duplicate
    store.sale(CARD, ["LAT"], sale_id="s-9")
    ids = [r[0] for r in store.service.conn.execute("SELECT event_id FROM events ORDER BY seq")]
    store.service.close()
    (tmp_path / "ledger.db").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"ledger.db{suffix}").unlink(missing_ok=True)
    other = make_store()
    other.sale(CARD, ["LAT"], sale_id="s-9")
    assert [r[0] for r in other.service.conn.execute("SELECT event_id FROM events ORDER BY seq")] == ids


def test_a_failing_sale_leaves_nothing(store):
    busy(store)
    counts = {t: store.count(t) for t in ("events", "sales", "sale_lines", "print_jobs", "members", "cards", "lots")}
    for items, redeem in ((["NOPE"], []), (["LAT"], ["coffee=5"]), (["LAT"], ["nosuch"]), ([], [])):
        with pytest.raises(LoyaltyError):
            store.sale("code:new-card", items, redeem)
    assert {t: store.count(t) for t in counts} == counts


def test_a_sale_writes_its_print_job_in_the_same_transaction(store):
    sale = store.sale(CARD, ["LAT"])
    jobs = store.service.conn.execute("SELECT kind, ref, status FROM print_jobs").fetchall()
    assert [tuple(j) for j in jobs] == [("sale", sale["sale"], "queued")]


def test_closed_business_day_refuses_sales_and_refunds(store):
    sale = store.sale(CARD, ["LAT"])
    store.service.conn.execute("INSERT INTO business_days (day, closed_at) VALUES ('2026-11-22', '2026-11-22T20:00:00Z')")
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["LAT"])
    assert err.value.code == "day_closed"
    with pytest.raises(LoyaltyError) as err:
        store.service.refund(sale["sale"], store.now("2026-11-22T21:00"))
    assert err.value.code == "day_closed"
    # nor anything else that moves a balance after the Z report: adjustments, enrolments (their bonuses)
    with pytest.raises(LoyaltyError) as err:
        store.service.adjust(CARD, "points", 10, "goodwill", store.now("2026-11-22T21:00"))
    assert err.value.code == "day_closed"
    with pytest.raises(LoyaltyError) as err:
        store.service.enrol("uid:04FFEEDDCCBBAA", store.now("2026-11-22T21:00"))
    assert err.value.code == "day_closed"
    # a lost card can still be blocked at any hour
    assert store.service.block(CARD, store.now("2026-11-22T21:30"), "lost")["status"] == "blocked"
    store.service.unblock(CARD, store.now("2026-11-23T07:00"))
    assert store.sale(CARD, ["LAT"], at="2026-11-23T08:00")["total"] == "1.250"


def test_a_ledger_belongs_to_one_terminal(make_store, store):
    store.sale(CARD, ["LAT"])
    store.service.close()
    with pytest.raises(LoyaltyError) as err:
        make_store(replace={'terminal = "till-9"': 'terminal = "till-2"'})
    assert err.value.code == "wrong_terminal"


def test_the_fast_open_knows_every_migration():
    from ledger.schema import migrations
    from ledger.store import MIGRATIONS

    assert tuple(m.name for m in migrations._migrations) == MIGRATIONS


def test_reopening_a_ledger_keeps_it(store):
    from ledger.service import Loyalty

    store.sale(CARD, ["LAT"])
    store.service.close()
    again = Loyalty.open(store.cfg)
    try:
        assert again.card(CARD, store.now("2026-11-22T12:00"))["programs"]["points"]["balance"] == 12
        assert verify(again.conn).ok
    finally:
        again.close()


def test_a_transaction_reads_its_own_appends(store):
    # appends wait to be written in batches: any read through the transaction must still see them
    ledger = store.service.ledger
    now = store.now("2026-11-22T10:00")
    with pytest.raises(RuntimeError, match="rolled back"), ledger.transaction(now, now.date()) as tx:
        tx.append("adjust", event_id="e-1", member_id="m-1", program_id="coffee", account="stamps", amount=5)
        tx.append("adjust", event_id="e-2", member_id="m-1", program_id="coffee", account="stamps", amount=7)
        assert tx.balance("m-1", "coffee", "stamps") == 12
        assert tx.conn.execute("SELECT COUNT(*) FROM events WHERE member_id='m-1'").fetchone()[0] == 2
        raise RuntimeError("rolled back")
    assert store.count("events") == 0 and store.count("balances") == 0  # nothing of it stayed
    with ledger.transaction(now, now.date()) as tx:
        tx.append("adjust", event_id="e-3", member_id="m-2", program_id="coffee", account="stamps", amount=3)
    assert store.service.conn.execute("SELECT amount FROM balances WHERE member_id='m-2'").fetchone()[0] == 3
    assert verify(store.service.conn).ok  # written at the commit, in chain order
