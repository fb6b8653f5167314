"""Stamp cards: the 10th coffee free, cheapest first, capped, carry-over."""

from __future__ import annotations

import pytest

from ledger.errors import LoyaltyError

CARD = "uid:04A1B2C3D4E5F6"


def test_tenth_coffee_earns_a_reward_and_extra_stamps_carry_over(store):
    store.sale(CARD, ["ESP*9"])
    assert store.show(CARD)["programs"]["coffee"] == {
        "kind": "stamps", "stamps": 9, "stamps_per_reward": 10, "rewards": 0, "to_next_reward": 1,
    }
    result = store.sale(CARD, ["LAT*3"])
    assert result["earned"]["coffee"] == 3
    assert result["rewards_issued"] == {"coffee": 1}
    assert result["programs"]["coffee"]["stamps"] == 2
    assert result["programs"]["coffee"]["rewards"] == 1


def test_reward_pays_the_cheapest_eligible_item_and_that_item_earns_nothing(store):
    store.sale(CARD, ["ESP*10"])
    result = store.sale(CARD, ["BIG", "LAT", "ESP", "CRO"], ["coffee"])
    lines = {ln["sku"]: ln for ln in result["lines"]}
    assert lines["ESP"]["reward"] == "0.750" and lines["ESP"]["total"] == "0.000"
    assert lines["LAT"]["reward"] == "0.000"
    assert result["redeemed"] == {"coffee": 1}
    # BIG and LAT earn a stamp each; the free espresso does not
    assert result["earned"]["coffee"] == 2
    assert result["programs"]["coffee"]["rewards"] == 0
    assert result["total"] == "3.850"
    # points are earned on money paid only: 3.850 -> 38
    assert result["earned"]["points"] == 38


def test_reward_value_is_capped(store):
    store.sale(CARD, ["ESP*10"])
    result = store.sale(CARD, ["BIG"], ["coffee"])
    assert result["lines"][0]["reward"] == "1.500"
    assert result["total"] == "0.500"
    assert "coffee" not in result["earned"]


def test_two_rewards_take_the_two_cheapest_units(store):
    store.sale(CARD, ["ESP*20"])
    result = store.sale(CARD, ["LAT*2", "ESP", "BIG"], ["coffee=2"])
    lines = {ln["sku"]: ln for ln in result["lines"]}
    assert lines["ESP"]["reward"] == "0.750"
    assert lines["LAT"]["reward"] == "1.250"
    assert lines["BIG"]["reward"] == "0.000"
    assert result["discounts"]["coffee"] == "2.000"


def test_one_stamp_per_visit(make_store):
    store = make_store(replace={"stamps_per_reward = 10": 'stamps_per_reward = 10\nper = "visit"'})
    result = store.sale(CARD, ["ESP*3", "LAT"])
    assert result["earned"]["coffee"] == 1


def test_reward_without_an_eligible_item_is_refused_and_writes_nothing(store):
    store.sale(CARD, ["ESP*10"])
    events = store.count("events")
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["CRO"], ["coffee"])
    assert err.value.code == "no_eligible_item"
    assert store.count("events") == events
    assert store.show(CARD)["programs"]["coffee"]["rewards"] == 1


def test_zero_rewards_is_a_bad_amount(store):
    store.sale(CARD, ["ESP*10"])
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["ESP"], ["coffee=0"])
    assert err.value.code == "bad_amount"


def test_reward_not_ready_is_refused(store):
    store.sale(CARD, ["ESP*3"])
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["ESP"], ["coffee"])
    assert err.value.code == "insufficient_balance"


def test_units_paid_by_points_earn_no_stamps(store):
    store.sale(CARD, ["BEANS*4"])  # 360 points
    free = store.sale(CARD, ["ESP*2"], ["points=300"])  # 1.500: both espressos paid by points
    assert free["total"] == "0.000" and free["earned"] == {}
    # points cover whole units first: 1.000 of 1.500 pays one espresso, the other is paid (in part) in money
    store.sale(CARD, ["BEANS*4"])
    part = store.sale(CARD, ["ESP*2"], ["points=200"])
    assert part["total"] == "0.500" and part["earned"]["coffee"] == 1
    some = store.sale(CARD, ["ESP*2"], ["points=100"])  # 0.500 covers no whole unit
    assert some["earned"]["coffee"] == 2


def test_a_visit_paid_wholly_by_points_earns_no_visit_stamp(make_store):
    store = make_store(replace={"stamps_per_reward = 10": 'stamps_per_reward = 10\nper = "visit"'})
    store.sale(CARD, ["BEANS*5"])  # 450 points
    assert store.sale(CARD, ["ESP*2"], ["points=300"])["earned"] == {}
    assert store.sale(CARD, ["ESP*2"], ["points=100"])["earned"]["coffee"] == 1
