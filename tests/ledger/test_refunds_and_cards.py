"""Refunds reverse exactly once; block, replace, auto-enrolment."""

from __future__ import annotations

import json
import re

import pytest

from ledger.errors import LoyaltyError
from ledger.service import CheckoutRequest
from ledger.verify import verify

CARD = "uid:04A1B2C3D4E5F6"
NEW = "uid:04FFEEDDCCBBAA"


def test_refund_after_a_redemption_gives_the_points_back(store):
    store.sale(CARD, ["BIG*10"])  # 200 points
    sale = store.sale(CARD, ["LAT*2"], ["points=200"])
    assert sale["programs"]["points"]["balance"] == 15
    refund = store.service.refund(sale["sale"], store.now("2026-11-22T12:00"))
    assert refund["reversed"]["points"] == {"points": 200 - 15}
    assert refund["programs"]["points"]["balance"] == 200
    # the refund names the receipt the customer holds and the money it was
    assert (refund["receipt"], refund["currency"], refund["total"]) == (sale["receipt"]["number"], "KWD", sale["total"])
    assert verify(store.service.conn).ok


def test_a_second_refund_is_refused(store):
    sale = store.sale(CARD, ["LAT"])
    store.service.refund(sale["sale"], store.now("2026-11-22T12:00"))
    events = store.count("events")
    with pytest.raises(LoyaltyError) as err:
        store.service.refund(sale["sale"], store.now("2026-11-22T12:05"))
    assert err.value.code == "already_refunded"
    assert store.count("events") == events
    # the facts a screen says it with: which receipt, which refund, when (store time)
    done = store.service.refund_of(sale["receipt"]["number"])
    assert err.value.data == {"receipt": sale["receipt"]["number"], "refund": done["refund"], "when": " at 2026-11-22 12:00"}
    assert done["sale"] == sale["sale"] and done["total"] == sale["total"]


def test_the_refund_of_a_sale_not_refunded_is_refused(store):
    sale = store.sale(CARD, ["LAT"])
    with pytest.raises(LoyaltyError) as err:
        store.service.refund_of(sale["sale"])
    assert (err.value.code, err.value.message) == ("not_refunded", f"sale {sale['receipt']['number']} was not refunded")


def test_refund_of_an_unknown_sale(store):
    with pytest.raises(LoyaltyError) as err:
        store.service.refund("nope", store.now("2026-11-22T12:00"))
    assert err.value.code == "unknown_sale"
    # a receipt another till printed: said so, not as a number that does not exist
    with pytest.raises(LoyaltyError) as err:
        store.service.refund("till-2-000009", store.now("2026-11-22T12:00"))
    assert err.value.code == "unknown_sale"
    assert err.value.message.startswith("receipt till-2-000009 is from till till-2, not from this till (till-9)"), err.value.message


def test_refund_refused_when_its_points_were_spent(store):
    first = store.sale(CARD, ["BIG*10"])  # 200 points
    spent = store.sale(CARD, ["LAT*2"], ["points=200"])  # spends them, earns 15
    events = store.count("events")
    with pytest.raises(LoyaltyError) as err:
        store.service.refund(first["sale"], store.now("2026-11-22T12:00"))
    assert err.value.code == "insufficient_balance"
    assert err.value.message.endswith(f"refund sale {spent['receipt']['number']} first")
    assert store.count("events") == events
    assert store.count("refunds") == 0


def test_refund_takes_back_stamps_and_the_reward_they_made(store):
    store.sale(CARD, ["ESP*9"])
    sale = store.sale(CARD, ["ESP*2"])
    assert sale["programs"]["coffee"] == {"kind": "stamps", "stamps": 1, "stamps_per_reward": 10, "rewards": 1, "to_next_reward": 9}
    refund = store.service.refund(sale["sale"], store.now("2026-11-22T12:00"))
    assert refund["programs"]["coffee"]["stamps"] == 9
    assert refund["programs"]["coffee"]["rewards"] == 0


def test_refund_of_a_sale_that_used_a_reward_returns_the_voucher(store):
    store.sale(CARD, ["ESP*10"])
    sale = store.sale(CARD, ["LAT"], ["coffee"])
    refund = store.service.refund(sale["sale"], store.now("2026-11-22T12:00"))
    assert refund["programs"]["coffee"]["rewards"] == 1
    assert refund["programs"]["coffee"]["stamps"] == 0


def coffee(view):
    return view["programs"]["coffee"]["stamps"], view["programs"]["coffee"]["rewards"]


def test_refunding_a_stamp_that_went_into_an_unused_voucher_turns_the_voucher_back_into_stamps(store):
    first = store.sale(CARD, ["ESP*4"])
    filled = store.sale(CARD, ["ESP*6"])  # the card fills: 1 voucher, 0 stamps
    assert coffee(filled) == (0, 1)
    refund = store.service.refund(first["sale"], store.now("2026-11-22T12:00"))
    # as if the first sale had never happened: the second one's 6 stamps, no voucher
    assert coffee(refund) == (6, 0)
    assert refund["reversed"]["coffee"] == {"stamps": 6, "rewards": -1}
    assert verify(store.service.conn).ok


def test_a_voucher_used_by_a_later_sale_is_made_again_from_the_stamps_left(store):
    store.sale(CARD, ["ESP*4"])
    filled = store.sale(CARD, ["ESP*6"])  # voucher
    used = store.sale(CARD, ["LAT", "ESP*6"], ["coffee"])  # the voucher pays an espresso; 6 units paid, 6 stamps
    assert coffee(used) == (6, 0)
    # without the filling sale: 4 + 6 stamps, the full card the later sale used; nothing left over
    refund = store.service.refund(filled["sale"], store.now("2026-11-22T12:00"))
    assert coffee(refund) == (0, 0)
    # and nothing is stuck: the sale that used the voucher refunds too, leaving the first sale's 4
    refund = store.service.refund(used["sale"], store.now("2026-11-22T12:05"))
    assert coffee(refund) == (4, 0)
    assert verify(store.service.conn).ok


def test_a_refund_whose_voucher_was_used_and_not_made_good_names_the_sale_to_refund_first(store):
    store.sale(CARD, ["ESP*4"])
    filled = store.sale(CARD, ["ESP*6"])  # voucher
    used = store.sale(CARD, ["LAT"], ["coffee"])  # uses it, earns nothing
    events = store.count("events")
    with pytest.raises(LoyaltyError) as err:
        store.service.refund(filled["sale"], store.now("2026-11-22T12:00"))
    assert err.value.code == "insufficient_balance"
    assert err.value.message.endswith(f"was already used; refund sale {used['receipt']['number']} first")
    assert store.count("events") == events
    store.service.refund(used["sale"], store.now("2026-11-22T12:05"))
    refund = store.service.refund(filled["sale"], store.now("2026-11-22T12:10"))
    assert coffee(refund) == (4, 0)
    assert verify(store.service.conn).ok


def test_a_refund_counts_the_points_it_gives_back_before_taking_what_it_earned(store):
    store.sale(CARD, ["BIG*10"])  # 200 points
    sale = store.sale(CARD, ["LAT*2"], ["points=200"])  # redeems 200, earns 15
    store.service.adjust(CARD, "points", -10, "test", store.now("2026-11-22T11:00"))  # 5 left, less than the 15 earned
    refund = store.service.refund(sale["sale"], store.now("2026-11-22T12:00"))
    assert refund["programs"]["points"]["balance"] == 5 + 200 - 15
    assert refund["reversed"]["points"] == {"points": 200 - 15}
    assert verify(store.service.conn).ok


def test_a_refund_short_of_points_no_later_sale_took_says_where_they_went(store):
    sale = store.sale(CARD, ["BIG*10"])  # 200 points
    store.service.adjust(CARD, "points", -150, "transferred by hand", store.now("2026-11-22T11:00"))
    with pytest.raises(LoyaltyError) as err:
        store.service.refund(sale["sale"], store.now("2026-11-22T12:00"))
    assert err.value.code == "insufficient_balance"
    assert "no later sale at this till spent them" in err.value.message and "refund the later sale" not in err.value.message


def test_refund_does_not_take_points_that_already_expired(store):
    sale = store.sale(CARD, ["LAT*8"], at="2026-11-01T10:00")  # 100 points, gone on 12-01
    store.sale(CARD, ["CRO"], at="2026-12-02T10:00")  # expiry written; +6
    refund = store.service.refund(sale["sale"], store.now("2026-12-03T10:00"))
    assert refund["programs"]["points"]["balance"] == 6
    assert refund["expired"] == {}  # written off by the sale before it, not by the refund


def test_a_refund_says_which_points_it_wrote_off_first(store):
    store.sale(CARD, ["LAT*8"], at="2026-11-01T10:00")  # 100 points, gone on 12-01
    later = store.sale(CARD, ["CRO"], at="2026-11-20T10:00")  # +6, gone on 12-20
    refund = store.service.refund(later["sale"], store.now("2026-12-02T10:00"))
    assert refund["expired"] == {"points": 100} and refund["reversed"]["points"] == {"points": -6}
    assert refund["programs"]["points"]["balance"] == 0
    assert verify(store.service.conn).ok


def test_points_given_back_to_an_expired_lot_expire_again(store):
    store.sale(CARD, ["LAT*8"], at="2026-11-01T10:00")  # lot A, 100, gone 12-01
    sale = store.sale(CARD, ["LAT*2"], ["points=100"], at="2026-11-20T10:00")  # takes lot A; earns 20
    assert store.show(CARD, at="2026-12-05T10:00")["programs"]["points"]["balance"] == 20
    refund = store.service.refund(sale["sale"], store.now("2026-12-05T10:00"))
    assert refund["programs"]["points"]["balance"] == 0
    assert refund["reversed"]["points"] == {"points": -20}  # the net change: the 100 given back are gone again
    assert verify(store.service.conn).ok


def test_blocked_card_is_refused_and_nothing_is_written(store):
    store.sale(CARD, ["LAT"])
    store.service.block(CARD, store.now("2026-11-22T11:00"), "reported stolen")
    events = store.count("events")
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["LAT"])
    assert err.value.code == "card_blocked"
    assert "reported stolen" in err.value.message
    assert store.count("events") == events
    assert store.show(CARD)["status"] == "blocked"
    # a manager's correction still goes on it (README: card adjust): a card blocked for abuse may lose points
    before = store.show(CARD)["programs"]["points"]["balance"]
    view = store.service.adjust(CARD, "points", -5, "abuse", store.now("2026-11-22T11:10"))
    assert view["status"] == "blocked" and view["programs"]["points"]["balance"] == before - 5
    store.service.unblock(CARD, store.now("2026-11-22T11:30"))
    assert store.sale(CARD, ["LAT"])["status"] == "active"


def test_replace_moves_balances_and_history_and_refuses_the_old_card(store):
    store.sale(CARD, ["ESP*12"])
    before = store.show(CARD)
    view = store.service.replace(CARD, NEW, store.now("2026-11-22T11:00"))
    assert view["card"] == NEW
    assert view["programs"] == before["programs"]
    assert view["member"]["id"] == before["member"]["id"]
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["LAT"])
    assert err.value.code == "card_replaced"
    assert NEW in err.value.message
    assert store.show(CARD)["replaced_by"] == NEW
    history = store.service.history(NEW)
    assert {"stamp", "earn", "replace"} <= {e["kind"] for e in history}
    assert store.sale(NEW, ["ESP"], ["coffee"])["programs"]["coffee"]["rewards"] == 0
    with pytest.raises(LoyaltyError) as err:  # a manager's adjustment too goes on the card in use
        store.service.adjust(CARD, "points", 5, "goodwill", store.now("2026-11-22T12:00"))
    assert err.value.code == "card_replaced" and NEW in err.value.message


def test_replace_onto_a_card_in_use_is_refused(store):
    store.sale(CARD, ["LAT"])
    store.sale(NEW, ["LAT"])
    with pytest.raises(LoyaltyError) as err:
        store.service.replace(CARD, NEW, store.now("2026-11-22T11:00"))
    assert err.value.code == "card_in_use"


def test_unknown_card_is_enrolled_on_its_first_sale(store):
    result = store.sale("code:4242", ["LAT"])
    assert result["enrolled"] is True
    assert result["card"] == "code:4242"
    assert store.sale("4242", ["LAT"])["enrolled"] is False  # a bare number is a code: card


def test_auto_enrolment_can_be_turned_off(make_store):
    store = make_store(replace={"auto_enrol = true": "auto_enrol = false"})
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["LAT"])
    assert err.value.code == "unknown_card"
    assert store.count("members") == 0


def test_daily_redemption_cap(make_store):
    store = make_store(replace={"max_redeem_per_card_per_day = 0": "max_redeem_per_card_per_day = 1"})
    store.sale(CARD, ["BIG*20"])  # 400 points
    store.sale(CARD, ["LAT"], ["points=100"])
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["LAT"], ["points=100"])
    assert err.value.code == "redeem_cap"
    # the cashier hears it when asking for the redemption (the quote), not only at payment
    with pytest.raises(LoyaltyError) as err:
        store.service.quote(CheckoutRequest.from_cli(CARD, ["LAT"], ["points=100"]), store.now("2026-11-22T12:00"))
    assert err.value.code == "redeem_cap"
    assert store.service.quote(CheckoutRequest.from_cli(CARD, ["LAT"], []), store.now("2026-11-22T12:00"))["redeemed"] == {}
    assert store.sale(CARD, ["LAT"], ["points=100"], at="2026-11-23T10:00")["redeemed"] == {"points": 100}


def test_profile_validation(store):
    for kwargs in ({"birthday": "02-30"}, {"birthday": "13-01"}, {"phone": "call me"}, {"name": "  "},
                   {"name": "Ali\x1b@"}, {"name": "x" * 81}, {"name": "Ali \u202eilA"}, {"name": "\u200b"}, {"name": "\u200c \u200e"}):
        with pytest.raises(LoyaltyError) as err:
            store.service.enrol(CARD, store.now("2026-11-22T10:00"), **kwargs)
        assert err.value.code == "bad_profile"
    assert store.count("members") == 0


def test_reasons_are_one_bounded_line_without_control_characters(store):
    store.sale(CARD, ["LAT"])
    before = store.count("events")
    now = store.now("2026-11-22T10:00")
    for reason in ("x" * 201, "lost\x07", "a \u2066b"):
        for call in (lambda r: store.service.block(CARD, now, r), lambda r: store.service.adjust(CARD, "points", 5, r, now)):
            with pytest.raises(LoyaltyError) as err:
                call(reason)
            assert err.value.code == "bad_reason"
    assert store.count("events") == before
    # white space runs become one space; a Persian joiner is kept
    store.service.adjust(CARD, "points", 5, "  wrong\n\tscan ", now)
    view = store.service.block(CARD, now, "گم\u200cشده")
    assert view["status"] == "blocked"
    payloads = [json.loads(p) for (p,) in store.service.conn.execute("SELECT payload FROM events WHERE kind IN ('adjust', 'block') ORDER BY seq")]
    assert [p.get("reason") for p in payloads] == ["wrong scan", "گم\u200cشده"]


def test_arabic_and_persian_digits_in_a_profile_are_kept_as_ascii(store):
    view = store.service.enrol(CARD, store.now("2026-11-22T10:00"), phone="+٩٦٥ ٥٠٠٠ ١٢٣٤", birthday="۰۳-۲۱")
    assert view["member"]["phone"] == "+965 5000 1234"
    assert view["member"]["birthday"] == "03-21"


def test_a_sale_is_found_by_its_receipt_number(store):
    sale = store.sale(CARD, ["LAT"])
    number = sale["receipt"]["number"]
    assert store.service.find_sale(number) == sale["sale"]
    assert store.service.sale(number)["sale"] == sale["sale"]
    assert store.service.find_sale(str(int(number.rpartition("-")[2]))) == sale["sale"]  # the digits alone, as typed
    # the member's history names the receipt of each of the sale's events
    assert {e["receipt"] for e in store.service.history(CARD) if e["sale_id"] == sale["sale"]} == {number}
    refund = store.service.refund(number, store.now("2026-11-22T12:00"))
    assert refund["sale"] == sale["sale"]
    terminal, _, seq = number.rpartition("-")
    other_terminal = "other-till-" + seq  # the same seq on another till's receipt
    for ref in (f"{terminal}-999999", other_terminal, f"{terminal}-", "99999999999999999999999", "999999"):
        with pytest.raises(LoyaltyError) as err:
            store.service.find_sale(ref)
        assert err.value.code == "unknown_sale"


def test_a_blocked_card_shows_why(store):
    store.sale(CARD, ["LAT"])
    view = store.service.block(CARD, store.now("2026-11-22T11:00"), "reported stolen")
    assert (view["status"], view["reason"]) == ("blocked", "reported stolen")
    blocks = store.count("events")
    # blocked again: a new reason replaces the old one (an event, so other tills learn it); the same or none changes nothing
    assert store.service.block(CARD, store.now("2026-11-22T11:02"), "found, used by someone else")["reason"] == "found, used by someone else"
    assert store.count("events") == blocks + 1
    assert store.service.block(CARD, store.now("2026-11-22T11:03"), "")["reason"] == "found, used by someone else"
    assert store.count("events") == blocks + 1
    assert "reason" not in store.service.unblock(CARD, store.now("2026-11-22T11:05"))
    assert verify(store.service.conn).ok


def test_member_since_is_the_store_s_day(store):
    # 01:00 in Kuwait is 22:00 UTC the day before: the member joined on the store's day
    first = store.sale(NEW, ["LAT"], at="2026-11-22T01:00")
    assert first["member"]["since"] == "2026-11-22"


def test_a_card_replaced_twice_points_at_the_card_in_use(store):
    third = "em:00AABBCCDD"
    store.sale(CARD, ["ESP"])
    store.service.replace(CARD, NEW, store.now("2026-11-22T11:00"))
    store.service.replace(NEW, third, store.now("2026-11-22T12:00"))
    assert store.show(CARD)["replaced_by"] == third
    with pytest.raises(LoyaltyError) as err:
        store.sale(CARD, ["LAT"])
    assert err.value.code == "card_replaced" and third in err.value.message
    assert store.sale(third, ["ESP"])["programs"]["coffee"]["stamps"] == 2


def test_the_refund_slip_says_when_and_which_vouchers_the_member_holds(store):
    store.sale(CARD, ["ESP*10"], at="2026-11-22T09:00")  # a voucher
    later = store.sale(CARD, ["LAT"], at="2026-11-22T09:30")
    refund = store.service.refund(later["sale"], store.now("2026-11-22T10:15"))
    from receipts.templates import refund_slip
    from receipts.text import render_text

    slip = render_text(refund_slip(refund, store.cfg), 42)
    assert re.search(r"Date\s+2026-11-22 10:15", slip), slip  # the store's clock
    assert re.search(r"Rewards ready\s+1", slip), slip
