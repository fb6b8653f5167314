"""Discount cards, tiers, promotions, paid membership and bonuses."""

from __future__ import annotations

import pytest

from ledger.config import ConfigError
from ledger.errors import LoyaltyError
from ledger.service import CheckoutRequest
from ledger.verify import verify

CARD = "uid:04A1B2C3D4E5F6"
FRIEND = "code:FRIEND-1"

DISCOUNT = """
[[program]]
id = "card"
kind = "discount"
eligible = { categories = ["coffee", "pastry"] }

[[program.graduated]]
from = "0.000"
percent = 2

[[program.graduated]]
from = "10.000"
percent = 5
"""

TIERS = """
[tiers]
window_days = 30

[[tiers.level]]
id = "silver"
min_spend = "10.000"
points_multiplier = 2

[[tiers.level]]
id = "gold"
min_spend = "20.000"
points_multiplier = 3
discount_percent = 10
"""

PROMO = """
[[promotion]]
id = "fridays"
multiplier = 2
from = 2026-11-01
to = 2026-11-30
weekdays = ["fri"]
"""

MEMBERSHIP = """
[[program]]
id = "vip"
kind = "membership"
sku = "VIP"
period_days = 365
benefit = { discount_percent = 15, points_multiplier = 2 }
"""

BONUSES = """
[bonuses]
welcome = 50
profile_completed = 25
birthday = 100
birthday_window_days = 7
referral_referrer = 70
referral_referee = 30
"""


def test_flat_discount(make_store):
    store = make_store(DISCOUNT.replace('[[program.graduated]]\nfrom = "10.000"\npercent = 5\n', "").replace(
        '[[program.graduated]]\nfrom = "0.000"\npercent = 2\n', "").replace('eligible = { categories = ["coffee", "pastry"] }', 'percent = 2.5\neligible = { categories = ["coffee", "pastry"] }'))
    result = store.sale(CARD, ["ESP", "BEANS"])
    lines = {ln["sku"]: ln for ln in result["lines"]}
    assert lines["ESP"]["discount"] == "0.019"  # 2.5 % of 0.750 = 0.01875, half-up
    assert lines["BEANS"]["discount"] == "0.000"  # retail is not eligible
    assert result["programs"]["card"]["percent"] == 2.5


def test_graduated_discount_crosses_its_threshold(make_store):
    store = make_store(DISCOUNT)
    first = store.sale(CARD, ["BIG*5"])
    assert (first["discount"], first["total"]) == ("0.200", "9.800")
    assert first["programs"]["card"]["percent"] == 2
    assert first["programs"]["card"]["next"] == {"percent": 5, "spend_needed": "0.200"}
    # the sale that crosses the threshold still pays the old percent
    second = store.sale(CARD, ["BIG"])
    assert second["discount"] == "0.040"
    assert second["member"]["spend"] == "11.760"
    assert second["programs"]["card"]["percent"] == 5
    third = store.sale(CARD, ["ESP"])
    assert third["lines"][0]["discount"] == "0.038"  # 5 % of 0.750 = 0.0375, half-up
    assert third["total"] == "0.712"
    assert third["programs"]["card"]["next"] is None  # the top step: the key stays, as null
    # a store without tiers answers the same keys
    assert (third["member"]["tier"], third["member"]["tier_spend"], third["member"]["next_tier"]) == (None, None, None)


def test_tier_upgrade_multiplier_window_and_tier_discount(make_store):
    store = make_store(TIERS)
    first = store.sale(CARD, ["BIG*5"], at="2026-11-01T10:00")
    assert first["tier_change"] == {"from": None, "to": "silver"}
    assert first["earned"]["points"] == 100  # earned at the tier before the sale
    assert first["member"]["tier"] == "silver"
    second = store.sale(CARD, ["LAT"], at="2026-11-02T10:00")
    assert second["earned"]["points"] == 25  # 12.5 x 2, floored once
    assert second["tier_change"] is None
    # 30 days later the first sale has left the window
    assert store.show(CARD, "2026-12-01T10:00")["member"]["tier"] is None
    assert second["member"]["next_tier"] == {"id": "gold", "spend_needed": "8.750"}
    gold = store.sale(CARD, ["BIG*10"], at="2026-11-03T10:00")
    assert gold["tier_change"] == {"from": "silver", "to": "gold"}
    assert gold["member"]["next_tier"] is None  # the top tier: the key stays, as null
    after = store.sale(CARD, ["LAT"], at="2026-11-04T10:00")
    assert after["lines"][0]["discount"] == "0.125"  # gold: 10 % off
    assert after["discounts"] == {"tier:gold": "0.125"}
    assert after["earned"]["points"] == 33  # 1.125 x 10 x 3 = 33.75


def test_a_tier_window_longer_than_a_pull_carries_is_refused(make_store):
    with pytest.raises(ConfigError, match=r"tiers\.window_days: must be at most 400"):
        make_store(TIERS.replace("window_days = 30", "window_days = 500"))


def test_a_refund_counts_in_the_tier_window_on_the_day_of_its_sale(make_store):
    store = make_store(TIERS)
    old = store.sale(CARD, ["BIG*5"], at="2026-11-01T10:00")  # 10.000: silver
    store.sale(CARD, ["BIG*3"], at="2026-11-20T10:00")  # 6.000
    # refunded after it left the 30-day window: the window keeps the 6.000 paid since
    refund = store.service.refund(old["sale"], store.now("2026-12-05T10:00"))
    assert refund["member"]["tier_spend"] == "6.000"
    assert store.show(CARD, "2026-12-06T10:00")["member"]["tier_spend"] == "6.000"


def test_the_tier_window_ends_on_its_own_day(make_store):
    store = make_store(TIERS)
    store.sale(CARD, ["BIG*5"], at="2026-11-20T10:00")  # 10.000: silver from the 20th
    earlier = store.show(CARD, "2026-11-10T10:00")
    assert (earlier["member"]["tier"], earlier["member"]["tier_spend"]) == (None, "0.000")
    # a sale dated before it (a till whose clock was behind) earns at the tier of its own day
    backdated = store.sale(CARD, ["LAT"], at="2026-11-12T10:00")
    assert backdated["earned"]["points"] == 12  # not 25: silver's multiplier came later
    assert backdated["member"]["tier_spend"] == "1.250"
    assert store.show(CARD, "2026-11-21T10:00")["member"]["tier_spend"] == "11.250"


def test_a_refund_inside_the_window_takes_its_spend_out_of_it(make_store):
    store = make_store(TIERS)
    sale = store.sale(CARD, ["BIG*5"], at="2026-11-01T10:00")
    store.sale(CARD, ["BIG*3"], at="2026-11-20T10:00")
    refund = store.service.refund(sale["sale"], store.now("2026-11-25T10:00"))
    assert refund["member"]["tier_spend"] == "6.000"
    assert refund["tier_change"] == {"from": "silver", "to": None}


def test_promotion_by_weekday_and_date_range(make_store):
    store = make_store(PROMO)
    assert store.sale(CARD, ["LAT"], at="2026-11-27T10:00")["earned"]["points"] == 25  # a Friday in range
    assert store.sale(CARD, ["LAT"], at="2026-11-26T10:00")["earned"]["points"] == 12  # Thursday
    assert store.sale(CARD, ["LAT"], at="2026-12-04T10:00")["earned"]["points"] == 12  # Friday, out of range


@pytest.mark.parametrize(("days", "friday"), [('["friday"]', True), ('["Fri", "sun"]', True), ('["sat", "sunday"]', False)])
def test_promotion_weekdays_by_short_or_full_name(make_store, days, friday):
    store = make_store(PROMO.replace('weekdays = ["fri"]', f"weekdays = {days}"))
    assert store.sale(CARD, ["LAT"], at="2026-11-27T10:00")["earned"]["points"] == (25 if friday else 12)


@pytest.mark.parametrize("day", ["fryday", "satx", "sundays", ""])
def test_a_weekday_that_is_no_weekday_is_refused(make_store, day):
    with pytest.raises(ConfigError, match="is not a weekday"):
        make_store(PROMO.replace('weekdays = ["fri"]', f'weekdays = ["{day}"]'))


def test_refunding_one_of_two_stacked_membership_purchases_takes_back_its_days_only(make_store):
    store = make_store(MEMBERSHIP)
    first = store.sale(CARD, ["VIP"], at="2026-11-22T10:00")  # 2026-11-22 .. 2027-11-21
    second = store.sale(CARD, ["VIP"], at="2026-11-23T10:00")  # extends: 2027-11-22 .. 2028-11-20 (2028 is a leap year)
    assert second["programs"]["vip"]["until"] == "2028-11-20"
    refund = store.service.refund(first["sale"], store.now("2026-11-24T10:00"))
    assert refund["programs"]["vip"] == {"kind": "membership", "active": True, "until": "2027-11-21", "percent": 15}
    assert refund["reversed"]["vip"] == {"until": "2027-11-21"}  # what the refund took back, as the slip prints it
    assert all(all(v != 0 for v in accounts.values()) for accounts in refund["reversed"].values())
    assert store.sale(CARD, ["LAT"], at="2026-11-24T11:00")["discounts"] == {"vip": "0.188"}
    refund = store.service.refund(second["sale"], store.now("2026-11-24T12:00"))
    assert refund["programs"]["vip"]["active"] is False and refund["programs"]["vip"]["until"] is None  # none paid for
    assert refund["reversed"]["vip"] == {"until": None}
    from receipts.templates import refund_slip
    from receipts.text import render_text
    assert "not active" in render_text(refund_slip(refund, store.cfg), 42)
    assert verify(store.service.conn).ok


def test_refunding_the_latest_membership_purchase_gives_back_the_period_before_it(make_store):
    store = make_store(MEMBERSHIP)
    store.sale(CARD, ["VIP"], at="2026-11-22T10:00")
    second = store.sale(CARD, ["VIP"], at="2026-11-23T10:00")
    refund = store.service.refund(second["sale"], store.now("2026-11-24T10:00"))
    assert refund["programs"]["vip"]["until"] == "2027-11-21"


def test_refunding_an_old_lapsed_membership_leaves_the_running_one_alone(make_store):
    store = make_store(MEMBERSHIP)
    old = store.sale(CARD, ["VIP"], at="2026-11-22T10:00")  # 2026-11-22 .. 2027-11-21, then it lapses
    new = store.sale(CARD, ["VIP"], at="2027-12-10T10:00")  # a new year from its own day
    assert new["programs"]["vip"]["until"] == "2028-12-08"
    refund = store.service.refund(old["sale"], store.now("2027-12-11T10:00"))
    assert refund["programs"]["vip"] == {"kind": "membership", "active": True, "until": "2028-12-08", "percent": 15}
    assert "vip" not in refund["reversed"]  # nothing was taken off the running period: the refund does not say it was
    assert store.sale(CARD, ["LAT"], at="2027-12-11T11:00")["discounts"] == {"vip": "0.188"}
    assert verify(store.service.conn).ok


def test_a_membership_run_counts_the_days_of_its_purchases_not_refunded():
    from datetime import date

    from ledger.memberships import Purchase, last_day

    def bought(ts: str, day: str, first: str, last: str, refunded: bool = False) -> Purchase:
        return Purchase(ts, ts, date.fromisoformat(day), date.fromisoformat(first), date.fromisoformat(last), refunded)

    one = bought("t1", "2026-01-01", "2026-01-01", "2026-01-30")
    stacked = bought("t2", "2026-01-10", "2026-01-31", "2026-03-01")
    assert last_day([one, stacked]) == date(2026, 3, 1)
    # either refunded: one period from the run's first day
    assert last_day([bought("t1", "2026-01-01", "2026-01-01", "2026-01-30", True), stacked]) == date(2026, 1, 30)
    assert last_day([one, bought("t2", "2026-01-10", "2026-01-31", "2026-03-01", True)]) == date(2026, 1, 30)
    # a stacked purchase written by a till whose clock was behind still joins the run it stacked on
    assert last_day([bought("t0", "2026-01-10", "2026-01-31", "2026-03-01"), one]) == date(2026, 3, 1)
    # all refunded: nothing
    assert last_day([bought("t1", "2026-01-01", "2026-01-01", "2026-01-30", True)]) is None
    assert last_day([]) is None


def test_paid_membership_gives_its_benefit_for_the_period(make_store):
    store = make_store(MEMBERSHIP)
    bought = store.sale(CARD, ["VIP", "LAT"], at="2026-11-22T10:00")
    lines = {ln["sku"]: ln for ln in bought["lines"]}
    assert lines["VIP"]["discount"] == "0.000"
    assert lines["LAT"]["discount"] == "0.188"  # 15 % of 1.250 = 0.1875, half-up
    assert bought["programs"]["vip"] == {"kind": "membership", "active": True, "until": "2027-11-21", "percent": 15}
    later = store.sale(CARD, ["LAT"], at="2027-11-21T10:00")
    assert later["total"] == "1.062"
    assert later["earned"]["points"] == 21  # 10.62 x 2
    expired = store.sale(CARD, ["LAT"], at="2027-11-22T10:00")
    assert expired["total"] == "1.250"
    assert expired["programs"]["vip"]["active"] is False
    assert expired["programs"]["vip"]["until"] == "2027-11-21"  # the last day it gave its benefit


def test_renewing_a_membership_extends_it(make_store):
    store = make_store(MEMBERSHIP)
    store.sale(CARD, ["VIP"], at="2026-11-22T10:00")
    renewed = store.sale(CARD, ["VIP"], at="2027-06-01T10:00")
    assert renewed["programs"]["vip"]["until"] == "2028-11-20"  # 2027-11-22 + 365 days (2028 is a leap year)


def test_welcome_and_profile_bonuses(make_store):
    store = make_store(BONUSES)
    view = store.service.enrol(CARD, store.now("2026-11-01T10:00"), name="Fatima", phone="+965 5000 0000", birthday="11-20")
    assert view["programs"]["points"]["balance"] == 75
    assert view["bonuses"] == [{"bonus": "welcome", "program": "points", "points": 50}, {"bonus": "profile", "program": "points", "points": 25}]
    # completing the profile again pays nothing more
    view = store.service.enrol(CARD, store.now("2026-11-02T10:00"), name="Fatima A.")
    assert view["programs"]["points"]["balance"] == 75 and view["bonuses"] == []


def test_a_card_enrolled_by_its_first_sale_lists_the_welcome_bonus(make_store):
    store = make_store(BONUSES)
    first = store.sale(CARD, ["CRO"], at="2026-11-22T10:00")
    assert first["enrolled"] is True
    assert first["bonuses"] == [{"bonus": "welcome", "program": "points", "points": 50}]
    assert first["programs"]["points"]["balance"] == 50 + first["earned"]["points"]
    assert store.sale(CARD, ["CRO"], at="2026-11-22T11:00")["bonuses"] == []


def test_refunding_the_sale_that_enrolled_a_card_keeps_its_welcome(make_store):
    store = make_store(BONUSES)
    first = store.sale(CARD, ["CRO"], at="2026-11-22T10:00")  # enrols the card: welcome 50
    refund = store.service.refund(first["sale"], store.now("2026-11-22T10:30"))
    assert refund["reversed"]["points"] == {"points": -first["earned"]["points"]}  # what the purchase earned, not the welcome
    assert refund["programs"]["points"]["balance"] == 50  # as for a card enrolled at the counter first
    assert verify(store.service.conn).ok


def test_a_refund_short_of_points_says_how_many_it_takes_back(make_store):
    store = make_store(BONUSES)
    store.service.enrol(CARD, store.now("2026-11-22T09:00"))  # welcome 50
    big = store.sale(CARD, ["BEANS*3"], at="2026-11-22T10:00")
    earned = big["earned"]["points"]
    spend = (big["programs"]["points"]["balance"] // 100) * 100
    store.sale(CARD, ["BEANS"], redeem=[f"points={spend}"], at="2026-11-22T11:00")
    with pytest.raises(LoyaltyError) as err:
        store.service.refund(big["sale"], store.now("2026-11-22T12:00"))
    assert err.value.code == "insufficient_balance"
    assert f"takes back the {earned} points it earned" in err.value.message


def test_birthday_bonus_is_paid_once_a_year(make_store):
    store = make_store(BONUSES)
    store.service.enrol(CARD, store.now("2026-11-01T10:00"), birthday="11-20")
    first = store.sale(CARD, ["CRO"], at="2026-11-22T10:00")
    assert first["bonuses"] == [{"bonus": "birthday", "program": "points", "points": 100}]
    assert store.sale(CARD, ["CRO"], at="2026-11-23T10:00")["bonuses"] == []
    assert store.sale(CARD, ["CRO"], at="2027-11-19T10:00")["bonuses"] == []  # before next year's birthday
    assert store.sale(CARD, ["CRO"], at="2027-11-26T10:00")["bonuses"][0]["bonus"] == "birthday"
    assert store.sale(CARD, ["CRO"], at="2027-11-27T10:00")["bonuses"] == []


def test_birthday_on_29_february_counts_on_28_february(make_store):
    store = make_store(BONUSES)
    store.service.enrol(CARD, store.now("2026-11-01T10:00"), birthday="02-29")
    assert store.sale(CARD, ["CRO"], at="2027-02-28T10:00")["bonuses"][0]["bonus"] == "birthday"


def test_referral_is_paid_to_both_once(make_store):
    store = make_store(BONUSES)
    store.sale(FRIEND, ["CRO"])  # the referrer: welcome 50 + 6
    store.service.enrol(CARD, store.now("2026-11-22T10:00"), referrer=FRIEND)  # welcome 50
    first = store.sale(CARD, ["CRO"])
    assert {"bonus": "referral", "program": "points", "points": 30} in first["bonuses"]
    assert first["programs"]["points"]["balance"] == 50 + 30 + 6
    assert store.show(FRIEND)["programs"]["points"]["balance"] == 56 + 70
    second = store.sale(CARD, ["CRO"])
    assert second["bonuses"] == []
    assert store.show(FRIEND)["programs"]["points"]["balance"] == 56 + 70
    assert verify(store.service.conn).ok


def test_two_members_cannot_refer_each_other(make_store):
    store = make_store(BONUSES)
    third = "code:THIRD-1"
    at = store.now("2026-11-22T09:00")
    store.service.enrol(FRIEND, at)
    store.service.enrol(CARD, at, referrer=FRIEND)
    store.service.enrol(third, at, referrer=CARD)
    for loop in (CARD, third):  # directly, and round through a third member
        with pytest.raises(LoyaltyError) as err:
            store.service.enrol(FRIEND, at, referrer=loop)
        assert err.value.code == "bad_referrer" and "referral goes one way" in err.value.message
    assert store.service.conn.execute("SELECT COUNT(*) FROM events WHERE kind='referrer'").fetchone()[0] == 2
    friend = store.sale(FRIEND, ["CRO"])
    assert not [b for b in friend["bonuses"] if b["bonus"] == "referral"]  # nobody referred FRIEND
    before = store.show(FRIEND)["programs"]["points"]["balance"]
    store.sale(CARD, ["CRO"])  # the referral, paid once, to both
    assert store.show(FRIEND)["programs"]["points"]["balance"] == before + 70
    assert verify(store.service.conn).ok


def test_a_blocked_or_replaced_card_cannot_refer(make_store):
    store = make_store(BONUSES)
    store.sale(FRIEND, ["CRO"])
    store.service.block(FRIEND, store.now("2026-11-22T09:00"), "reported stolen")
    with pytest.raises(LoyaltyError) as err:
        store.service.enrol(CARD, store.now("2026-11-22T10:00"), referrer=FRIEND)
    assert err.value.code == "bad_referrer" and "is blocked" in err.value.message
    assert store.count("members") == 1  # nothing written


def test_a_profile_given_with_a_sale_pays_its_bonuses_on_that_sale(make_store):
    store = make_store(BONUSES)
    before = store.sale(CARD, ["CRO"], at="2026-11-20T10:00")["programs"]["points"]["balance"]  # enrolled: welcome 50 + earned
    req = CheckoutRequest.from_cli(CARD, ["CRO"], [])
    req.profile = {"name": "Fatima", "phone": "+965 5000 0000", "birthday": "11-20"}
    sale = store.service.checkout(req, store.now("2026-11-22T10:00"))
    assert sale["bonuses"] == [{"bonus": "profile", "program": "points", "points": 25},
                               {"bonus": "birthday", "program": "points", "points": 100}]
    assert sale["member"]["name"] == "Fatima"
    assert sale["programs"]["points"]["balance"] == before + 25 + 100 + sale["earned"]["points"]
    # the profile is not the sale's: refunding the sale takes back its points and birthday bonus, not the profile's
    refund = store.service.refund(sale["sale"], store.now("2026-11-22T11:00"))
    assert refund["member"]["name"] == "Fatima"
    assert refund["programs"]["points"]["balance"] == before + 25
