"""Balances held by the rest of the chain (written by sync) count at the till, within the offline escrow."""

from __future__ import annotations

import pytest

from ledger.errors import LoyaltyError
from ledger.verify import verify

CARD = "uid:04A1B2C3D4E5F6"


def synced(store, member_id, points, at="2026-11-22T06:00:00Z", rewards=0):
    store.service.conn.execute(
        "INSERT INTO remote_balances (member_id, program_id, account, amount, synced_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT (member_id, program_id, account) DO UPDATE SET amount = excluded.amount, synced_at = excluded.synced_at",
        (member_id, "points", "points", points, at),
    )
    if rewards:
        store.service.conn.execute(
            "INSERT INTO remote_balances (member_id, program_id, account, amount, synced_at) VALUES (?,?,?,?,?)",
            (member_id, "coffee", "rewards", rewards, at),
        )


def test_the_chain_balance_is_shown_and_can_be_redeemed(store):
    first = store.sale(CARD, ["LAT*4"])  # 50 points here
    synced(store, first["member"]["id"], 300)  # earned in other stores
    assert store.show(CARD)["programs"]["points"]["balance"] == 350
    assert store.show(CARD)["programs"]["points"]["value"] == "1.500"  # 3 whole steps of 100, all of it spendable
    sale = store.sale(CARD, ["BIG*2"], ["points=300"])  # 50 from local lots, 250 drawn on the chain
    assert sale["programs"]["points"]["balance"] == 350 - 300 + 25
    drawn = store.service.conn.execute("SELECT payload FROM events WHERE kind = 'redeem'").fetchone()[0]
    assert '"remote":250' in drawn
    assert verify(store.service.conn).ok
    refund = store.service.refund(sale["sale"], store.now("2026-11-22T12:00"))
    assert refund["programs"]["points"]["balance"] == 350
    assert verify(store.service.conn).ok


def test_a_stale_snapshot_cannot_be_spent(store):
    first = store.sale(CARD, ["LAT*4"])  # 50 points here
    synced(store, first["member"]["id"], 300, at="2026-11-20T06:00:00Z")  # older than 24 hours
    assert store.show(CARD)["programs"]["points"]["balance"] == 350  # still shown
    # but not promised as money: 50 spendable points are no whole step yet
    assert store.show(CARD)["programs"]["points"]["value"] == "0.000"
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["BIG*2"], ["points=200"])
    assert err.value.code == "insufficient_balance"
    # the cashier is told why the points on screen cannot all be spent
    assert err.value.message.startswith("points: 200 points asked, 50 available; what the card holds at other stores")
    assert "[offline] max_snapshot_age_hours" in err.value.message
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["BIG*2"], ["points=500"])  # more than even the chain holds: no such note
    assert err.value.message == "points: 500 points asked, 50 available"


def test_a_reward_earned_in_another_store_can_be_used(store):
    first = store.sale(CARD, ["CRO"])
    synced(store, first["member"]["id"], 0, rewards=1)
    assert store.show(CARD)["programs"]["coffee"]["rewards"] == 1
    sale = store.sale(CARD, ["LAT"], ["coffee"])
    assert sale["total"] == "0.000"
    assert sale["programs"]["coffee"]["rewards"] == 0
    assert verify(store.service.conn).ok
