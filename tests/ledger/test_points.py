"""Points: earning on fractional amounts, multipliers, redemption in steps, expiry by lots."""

from __future__ import annotations

import pytest

from ledger.errors import LoyaltyError
from ledger.verify import verify

CARD = "uid:04A1B2C3D4E5F6"


def give(store, points, at="2026-11-22T09:00"):
    store.sale(CARD, ["CRO"], at=at)  # enrol
    store.service.adjust(CARD, "points", points - store.show(CARD, at[:10] + "T23:00")["programs"]["points"]["balance"], "test", store.now(at))


def test_points_on_a_fractional_amount_are_floored(store):
    result = store.sale(CARD, ["ESP*3", "CRO"])  # 2.850 KWD
    assert result["total"] == "2.850"
    assert result["earned"]["points"] == 28


def test_category_multiplier(store):
    result = store.sale(CARD, ["BEANS"])  # 4.500 x 10 x 2
    assert result["earned"]["points"] == 90


def test_points_per_item(make_store):
    store = make_store(replace={'earn = { per_amount = "1.000", points = 10, category_multipliers = { retail = 2 } }': "earn = { per_item = 5 }"})
    result = store.sale(CARD, ["ESP*3", "CRO"])
    assert result["earned"]["points"] == 20


def test_partial_redemption_in_steps(store):
    give(store, 250)
    result = store.sale(CARD, ["LAT*2"], ["points=200"])
    assert result["redeemed"]["points"] == 200
    assert result["discounts"]["points"] == "1.000"
    assert result["total"] == "1.500"
    assert result["earned"]["points"] == 15
    assert result["programs"]["points"]["balance"] == 250 - 200 + 15
    assert result["programs"]["points"]["value"] == "0.000"


def test_redeem_without_amount_takes_as_many_steps_as_fit(store):
    give(store, 450)
    result = store.sale(CARD, ["LAT"], ["points"])  # due 1.250: two steps of 0.500 fit
    assert result["redeemed"]["points"] == 200
    assert result["total"] == "0.250"


@pytest.mark.parametrize(
    ("redeem", "code"),
    [("points=150", "bad_amount"), ("points=300", "insufficient_balance"), ("points=-100", "bad_amount"), ("points=abc", "bad_amount")],
)
def test_bad_redemptions_are_refused_and_write_nothing(store, redeem, code):
    give(store, 250)
    events, sales = store.count("events"), store.count("sales")
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["LAT*2"], [redeem])
    assert err.value.code == code
    assert (store.count("events"), store.count("sales")) == (events, sales)


@pytest.mark.parametrize(
    ("points", "items", "why"),
    [
        (150, ["LAT*2"], "150 points, not enough to redeem (steps of 100, at least 200)"),
        (450, ["CRO"], "the amount due 0.600 takes at most 100 points, less than the 200 a redemption needs"),
    ],
)
def test_redeem_all_that_fits_says_why_nothing_fits(make_store, points, items, why):
    store = make_store(replace={'redeem = { step_points = 100, step_value = "0.500" }': 'redeem = { step_points = 100, step_value = "0.500", min_points = 200 }'})
    give(store, points)
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, items, ["points"])
    assert err.value.code == "insufficient_balance"
    assert err.value.message == f"points: {why}"


def test_redeeming_more_than_the_amount_due_is_refused(store):
    give(store, 250)
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["ESP"], ["points=200"])  # 1.000 for a 0.750 espresso
    assert err.value.code == "exceeds_due"


def test_points_expire_on_the_boundary_day(store):
    store.sale(CARD, ["LAT*8"], at="2026-11-01T10:00")  # 100 points, expire after 30 days
    day_before = store.show(CARD, "2026-11-30T23:59")["programs"]["points"]
    assert day_before["balance"] == 100
    assert day_before["expiring"] == [{"points": 100, "on": "2026-12-01"}]
    assert store.show(CARD, "2026-12-01T00:01")["programs"]["points"]["balance"] == 0
    # the next write records the expiry as an event
    result = store.sale(CARD, ["CRO"], at="2026-12-01T08:00")
    assert result["programs"]["points"]["balance"] == 6
    assert result["expired"] == {"points": 100}  # the sale says what it wrote off, so the receipt can
    from receipts.text import render_sale_text
    assert "Expired" in render_sale_text(result, store.cfg) and "-100" in render_sale_text(result, store.cfg)
    assert store.sale(CARD, ["CRO"], at="2026-12-01T09:00")["expired"] == {}
    kinds = [r[0] for r in store.service.conn.execute("SELECT kind FROM events WHERE kind='expire'")]
    assert kinds == ["expire"]
    assert verify(store.service.conn).ok


def test_expiring_list_only_shows_lots_within_the_notice_window(store):
    store.sale(CARD, ["LAT*8"], at="2026-11-01T10:00")
    assert store.show(CARD, "2026-11-15T10:00")["programs"]["points"]["expiring"] == []
    assert store.show(CARD, "2026-11-21T10:00")["programs"]["points"]["expiring"] == [{"points": 100, "on": "2026-12-01"}]


def test_redemption_takes_the_oldest_lot_first(store):
    store.sale(CARD, ["LAT*8"], at="2026-11-01T10:00")  # lot A: 100, gone 12-01
    store.sale(CARD, ["LAT*8"], at="2026-11-15T10:00")  # lot B: 100, gone 12-15
    store.sale(CARD, ["LAT*8"], ["points=100"], at="2026-11-20T10:00")  # takes lot A; earns 95 (lot C)
    assert store.show(CARD, "2026-12-02T10:00")["programs"]["points"]["balance"] == 195
    assert store.show(CARD, "2026-12-16T10:00")["programs"]["points"]["balance"] == 95


def test_a_sale_that_would_mint_points_past_any_bound_is_refused(make_store):
    store = make_store(replace={'earn = { per_amount = "1.000", points = 10,': 'earn = { per_amount = "0.001", points = 1000000000,'})
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["LAT"])
    assert err.value.code == "too_many_points" and "check the program's earn rule" in err.value.message
    assert store.service.conn.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == 0


def test_a_balance_below_min_points_is_worth_nothing_yet(make_store):
    store = make_store(replace={'redeem = { step_points = 100, step_value = "0.500" }':
                                'redeem = { step_points = 100, step_value = "0.500", min_points = 200 }'})
    store.sale(CARD, ["BEANS*3"])  # 13.500 x 10 x 2 (retail): 270 points
    assert store.show(CARD)["programs"]["points"]["value"] == "1.000"
    store.sale(CARD, ["LAT"], ["points=200"])
    view = store.show(CARD)["programs"]["points"]
    assert view["balance"] < 200 and view["value"] == "0.000"  # it cannot be redeemed until it reaches 200 again
