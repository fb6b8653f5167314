"""The cashier's flows on the real app over the seeded demo ledger: keys in, screen and ledger checked."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from terminal.app import LoyaltyApp
from terminal.app.messages import CardTapped

from .helpers import dialog_text, text_of, until

pytestmark = pytest.mark.anyio

FATIMA = "uid:04A1B2C3D4E5F6"  # silver, 7/10 stamps, 1 reward ready, 1307 points
BLOCKED = "uid:04DEADBEEF0006"
NEW_CARD = "uid:04C0FFEE0000A1"


async def tap(pilot, key: str) -> None:
    app = pilot.app
    before = app.checkout.panel_shown_at
    await pilot.press("f2")
    await until(pilot, lambda: app.screen.__class__.__name__ == "TapScreen", what="tap dialog")
    await pilot.press(key)
    await until(pilot, lambda: app.checkout.panel_shown_at != before, what="member panel")


async def add(pilot, *items: str) -> None:
    app = pilot.app
    for item in items:
        seq = app.checkout._quote_seq
        await pilot.press(*item, "enter")
        await until(pilot, lambda seq=seq: app.checkout._quote_seq > seq and app.checkout.quote is not None, what=f"quote after {item}")
        await until(pilot, lambda: not any(w.group == "quote" and w.is_running for w in app.workers), what="quote worker")


async def pay(pilot) -> None:
    app = pilot.app
    await pilot.press("f9")
    await until(pilot, lambda: not app.checkout.paying and ("Paid" in text_of(app, "#message") or "not completed" in text_of(app, "#message")), what="sale")
    assert "Paid" in text_of(app, "#message"), text_of(app, "#message")
    await until(pilot, lambda: "printed" in text_of(app, "#print-status"), what="print")


async def test_tap_shows_the_member_panel(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        panel = text_of(app, "#member")
        assert "Fatima Al-Sabah" in panel
        assert "SILVER" in panel
        assert "●●●●●●●○○○ 7/10" in panel
        assert "1 reward ready" in panel
        assert "Points 1307 = 6.500 KWD" in panel
        assert "Discount card 3% off" in panel
        assert app.checkout.cart.card == FATIMA


async def test_a_scanners_burst_pasted_at_once_is_one_entry_per_line(make_app: Callable[..., LoyaltyApp]) -> None:
    from textual import events

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        field = app.checkout.query_one("#item-input")
        field.post_message(events.Paste("LAT*2\r\nCRO\n6281000000011\nDA"))  # the last code is still coming
        await until(pilot, lambda: len(app.checkout.cart.lines) == 3, what="three lines")
        assert [(ln.sku, ln.qty) for ln in app.checkout.cart.lines] == [("LAT", 2), ("CRO", 1), ("ESP", 1)]
        await pilot.press("T", "enter")
        await until(pilot, lambda: len(app.checkout.cart.lines) == 4, what="the fourth line")
        assert app.checkout.cart.lines[-1].sku == "DAT" and field.value == ""
        await pilot.press(*"SPN", "ctrl+j")  # a scanner that ends its codes with LF
        await until(pilot, lambda: len(app.checkout.cart.lines) == 5, what="the line ended by LF")


async def test_a_card_tapped_while_a_form_is_open_gets_nothing_that_form_was_for(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    other = "code:LOY-0008"  # Ali Karimi: 50 points
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "LAT")
        await pilot.press("f5")
        await until(pilot, lambda: app.screen is not app.checkout, what="points form")
        app.post_message(CardTapped(other))  # the next customer's card on the reader
        await until(pilot, lambda: app.checkout.cart.card == other, what="the other card")
        await pilot.press(*"100", "enter")
        await until(pilot, lambda: app.screen is app.checkout, what="form closed")
        assert app.checkout.cart.redeem == {} and "nothing was applied" in text_of(app, "#message")
        await pilot.press("f3")
        await until(pilot, lambda: app.screen is not app.checkout, what="profile form")
        app.post_message(CardTapped(FATIMA))
        await until(pilot, lambda: app.checkout.cart.card == FATIMA, what="back to the first card")
        await pilot.press(*"Zed", "enter", "enter", "enter")
        await until(pilot, lambda: app.screen is app.checkout, what="form closed")
        assert "nothing was applied" in text_of(app, "#message")
        await pilot.pause(0.3)
        assert app.services.gate.card(FATIMA)["member"]["name"] == "Fatima Al-Sabah"
        assert app.services.gate.card(other)["member"]["name"] == "Ali Karimi"


async def test_a_double_read_typed_into_the_tap_dialog_is_one_tap(make_app: Callable[..., LoyaltyApp]) -> None:
    from textual import events

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await add(pilot, "LAT")
        await pilot.press("f2")
        await until(pilot, lambda: app.screen.__class__.__name__ == "TapScreen", what="tap dialog")
        await pilot.press("slash")
        app.screen.query_one("#tap-id").post_message(events.Paste("code:LOY-0004\ncode:LOY-0004\n"))  # a reader's double read
        await until(pilot, lambda: app.checkout.cart.card == "code:LOY-0004", what="the card on the sale")
        await pilot.pause(0.2)
        assert app.is_running and app.screen is app.checkout and [ln.sku for ln in app.checkout.cart.lines] == ["LAT"]


async def test_expiring_points_are_shown(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "3")
        panel = text_of(app, "#member")
        assert "Maryam Hosseini" in panel
        assert "450 valid until 2026-12-06" in panel


async def test_sale_shows_receipt_and_next_customer_starts_clean(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "LAT*2", "CRO", "6281000000011")  # the last is the espresso's barcode
        assert [(ln.sku, ln.qty) for ln in app.checkout.cart.lines] == [("LAT", 2), ("CRO", 1), ("ESP", 1)]
        assert "TOTAL KWD 3.734" in text_of(app, "#totals")
        sale_id = app.checkout.cart.sale_id
        await pay(pilot)
        receipt = text_of(app, "#receipt")
        assert "3.734" in receipt and "Latte" in receipt
        assert "printed on preview://" in text_of(app, "#print-status")
        assert "Paid: KWD 3.734" in text_of(app, "#message")
        # the next customer: empty cart, no card, a new sale id
        assert app.checkout.cart.lines == [] and app.checkout.cart.card is None
        assert app.checkout.cart.sale_id != sale_id
        stored = app.services.gate.sale(sale_id)
        assert stored["total"] == "3.734" and stored["card"] == FATIMA
        assert app.services.printer.queued() == 0
        # what the preview printer took is that receipt
        from drivers.printers import preview

        last = preview.last()
        assert last is not None and "3.734" in last.text


async def test_remove_line_and_change_quantity(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await add(pilot, "LAT", "CRO")
        assert "TOTAL KWD 1.850" in text_of(app, "#totals")
        await pilot.press("up", "f6")  # the latte
        await until(pilot, lambda: len(app.checkout.cart.lines) == 1)
        assert app.checkout.cart.lines[0].sku == "CRO"
        await pilot.press("f7", "backspace", "\u00b2", "enter")  # a digit to isdigit(), no number: the form says so
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen" and "whole number" in
                    str(app.screen.query_one("#form-error").render()), what="the quantity refused")
        await pilot.press("backspace", *"3", "enter")
        await until(pilot, lambda: "TOTAL KWD 1.800" in text_of(app, "#totals"), what="qty 3")


async def test_apply_reward(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "SPN", "ESP")
        await pilot.press("f4")
        await until(pilot, lambda: "reward applied" in text_of(app, "#member"), what="reward applied")
        await until(pilot, lambda: (app.checkout.quote or {}).get("redeemed") == {"coffee": 1}, what="quote with reward")
        # the free coffee is the cheapest eligible one: the espresso
        assert app.checkout.quote is not None and app.checkout.quote["discounts"]["coffee"] == "0.750"
        sale_id = app.checkout.cart.sale_id
        await pay(pilot)
        assert app.services.gate.sale(sale_id)["redeemed"] == {"coffee": 1}
        assert app.services.gate.card(FATIMA)["programs"]["coffee"]["rewards"] == 0


async def test_reward_needs_an_eligible_item(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "CRO")
        await pilot.press("f4")
        await until(pilot, lambda: "cart has 0 item" in text_of(app, "#message"), what="refusal")
        await until(pilot, lambda: app.checkout.cart.redeem == {}, what="reward taken back")


async def test_removing_the_line_a_reward_pays_takes_the_reward_back(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "CRO", "LAT")
        await pilot.press("f4")
        await until(pilot, lambda: (app.checkout.quote or {}).get("redeemed") == {"coffee": 1}, what="reward applied")
        await pilot.press("down")  # the latte, the only coffee
        await pilot.press("f6")
        await until(pilot, lambda: app.checkout.cart.redeem == {}, what="reward taken back")
        assert "redemption taken back" in text_of(app, "#message")
        await until(pilot, lambda: (app.checkout.quote or {}).get("total") == "0.582", what="the croissant alone")
        await pay(pilot)  # the sale is not blocked by a reward it can no longer use


async def test_esc_clears_a_cart_only_when_pressed_twice(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "LAT")
        await pilot.press("escape")
        assert app.checkout.cart.lines and "Esc again within 3 s clears this sale" in text_of(app, "#message")
        await pilot.press("escape")
        await until(pilot, lambda: not app.checkout.cart.lines, what="cleared")
        assert "No card" in text_of(app, "#member")
        # an Esc that closes a dialog in between is the dialog's: the next Esc only warns again
        await add(pilot, "LAT")
        await pilot.press("escape", "f7")
        await until(pilot, lambda: app.screen is not app.checkout, what="quantity form")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.checkout, what="form closed")
        await pilot.press("escape")
        assert app.checkout.cart.lines and "Esc again within 3 s clears this sale" in text_of(app, "#message")
        await pilot.press("escape")
        await until(pilot, lambda: not app.checkout.cart.lines, what="cleared")
        # and the member screen does not show the customer who left
        await pilot.press("f8")
        assert "Tap a card first" in text_of(app, "#message")
        assert app.screen is app.checkout


async def test_a_manager_form_with_a_missing_field_stays_open(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await _manager(pilot, "n")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="replace form")
        await pilot.press(*"uid:04A1B2C3D4E5F6", "enter", "enter")  # no new card
        assert app.screen.__class__.__name__ == "FormScreen"
        assert "fill in: new" in str(app.screen.query_one("#form-error").render())
        await pilot.press("escape")
        await _manager(pilot, "a")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="adjust form")
        await pilot.press(*"uid:04A1B2C3D4E5F6", "enter", "enter", *"abc", "enter", *"goodwill", "enter")
        assert "a whole number other than 0" in str(app.screen.query_one("#form-error").render())
        # the field at fault has the focus: the next keys mend it, not the reason typed last
        assert app.screen.focused is app.screen.query_one("#field-amount")
        await pilot.press("end", "backspace", "backspace", "backspace", *"+5", "enter", "enter")  # Enter moves on, then submits
        await until(pilot, lambda: "Adjusted points by +5" in text_of(app, "#message"), what="adjusted")


async def test_an_empty_pin_is_no_attempt(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f12")
        await until(pilot, lambda: app.screen.__class__.__name__ == "PinScreen", what="PIN dialog")
        await pilot.press("enter", "enter")
        assert app.screen.wrong == 0 and "Type the PIN" in str(app.screen.query_one("#pin-error").render())
        await pilot.press(*"1111", "enter")
        assert "2 tries left" in str(app.screen.query_one("#pin-error").render())
        await pilot.press(*"2222", "enter")
        assert "1 try left" in str(app.screen.query_one("#pin-error").render())


async def test_partial_points_redemption(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "BEANS")
        await pilot.press("f5", *"200", "enter")
        await until(pilot, lambda: (app.checkout.quote or {}).get("redeemed") == {"points": 200}, what="200 points")
        assert "TOTAL KWD 3.500" in text_of(app, "#totals")
        # an amount in money works too: 0.500 is one step of 100 points
        await pilot.press("f5", *"0.500", "enter")
        await until(pilot, lambda: (app.checkout.quote or {}).get("redeemed") == {"points": 100}, what="100 points")
        assert "redeeming 100 points" in text_of(app, "#member")
        # blank: as many as fit, and the panel says how many that is once the quote knows
        await pilot.press("f5", "enter")
        await until(pilot, lambda: "redeeming 900 points" in text_of(app, "#member"), what="all that fits, counted")
        await pilot.press("f5", *"0.500", "enter")
        await until(pilot, lambda: (app.checkout.quote or {}).get("redeemed") == {"points": 100}, what="back to 100 points")
        sale_id = app.checkout.cart.sale_id
        await pay(pilot)
        sale = app.services.gate.sale(sale_id)
        assert sale["redeemed"] == {"points": 100} and sale["total"] == "4.000"


async def test_points_not_in_steps_are_refused_plainly(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "BEANS")
        await pilot.press("f5", *"150", "enter")
        await until(pilot, lambda: "steps of 100" in text_of(app, "#message"), what="step error")
        assert app.checkout.cart.redeem == {}
        assert "error" in app.checkout.query_one("#message").classes


async def test_a_receipt_that_cannot_print_never_asks_to_ring_the_sale_up_again(make_app: Callable[..., LoyaltyApp], demo_dir) -> None:
    import socket

    from ledger import config as config_mod
    from terminal.app.ports import open_printer

    with socket.socket() as s:  # a port nothing listens on: the printer is off
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config_mod.load(demo_dir / "config.toml")
    app = make_app(printer=open_printer(cfg, f"escpos+tcp://127.0.0.1:{port}?timeout=1"))
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "LAT")
        sale_id = app.checkout.cart.sale_id
        await pilot.press("f9")
        await until(pilot, lambda: "NOT printed" in text_of(app, "#message"), what="the print failure")
        said = text_of(app, "#message")
        assert "Paid: KWD" in said and "the sale is paid" in said and "try again" not in said, said
        assert app.services.gate.sale(sale_id)["sale"] == sale_id and not app.checkout.cart.lines
        # the manager's reprint, with the printer still off, says so: nothing is handed over
        await _manager(pilot, "p")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="reprint form")
        await pilot.press("enter")
        await until(pilot, lambda: "NOT printed" in text_of(app, "#message") and "Reprint of" in text_of(app, "#message"),
                    what="the reprint's failure")
        assert "NOT printed" in text_of(app, "#print-status")
        # the paper was out for long: its next try is minutes off (the backoff grows to 5 min)
        with app.services.gate.lock:
            app.services.gate.loyalty.conn.execute("UPDATE print_jobs SET next_try_at='2999-01-01T00:00:00.000000Z' WHERE status='queued'")
        # the printer is switched on: the receipt comes out by itself, now, not with the next customer's
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "receipts"))
        from receipt_support import Listener

        printer = Listener(port=port).start()
        try:
            await until(pilot, lambda: "Printed 1 waiting slip" in text_of(app, "#message"), timeout=20, what="the receipt printed")
            assert app.services.printer.queued() == 0
            assert any(app.services.gate.sale(sale_id)["receipt"]["number"].encode() in job for job in printer.received)
        finally:
            printer.stop()


async def test_a_slip_the_printer_leaves_unconfirmed_twice_is_held_and_said(make_app: Callable[..., LoyaltyApp], demo_dir) -> None:
    from ledger import config as config_mod
    from terminal.app.ports import open_printer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "receipts"))
    from receipt_support import Listener

    slow = Listener(read_limit=9).start()  # answers its status, then never takes the receipt in full
    try:
        cfg = config_mod.load(demo_dir / "config.toml")
        app = make_app(printer=open_printer(cfg, f"{slow.url}?timeout=0.2"))
        async with app.run_test(size=(100, 30)) as pilot:
            await tap(pilot, "1")
            await add(pilot, "LAT")
            await pilot.press("f9")
            await until(pilot, lambda: "did not confirm" in text_of(app, "#message") + text_of(app, "#print-status"),
                        timeout=30, what="the first unconfirmed print")
            await until(pilot, lambda: "twice: they are held" in text_of(app, "#message"), timeout=40, what="held, and said")
            assert "F12 p" in text_of(app, "#message")
    finally:
        slow.stop()


async def test_an_amount_with_too_many_digits_is_refused_in_the_form(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "BEANS")
        await pilot.press("f5", *"1.5000", "enter")  # KWD has 3 decimals
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen" and "more than 3 decimal" in
                    str(app.screen.query_one("#form-error").render()), what="the form's error")
        await pilot.press("escape")
        assert app.checkout.cart.redeem == {} and app.is_running


async def test_unknown_card_is_enrolled_with_its_quick_profile(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "m")
        assert "New card" in text_of(app, "#member")
        await pilot.press("f3", *"Huda Test", "enter", *"+965 5555 1234", "enter", *"02-14", "enter")
        await until(pilot, lambda: app.checkout.cart.profile.get("birthday") == "02-14", what="profile")
        await add(pilot, "LAT")
        await pay(pilot)
        assert "New member enrolled" in text_of(app, "#message")
        view = app.services.gate.card(NEW_CARD)
        assert view["member"]["name"] == "Huda Test"
        # welcome 50 + profile 25 + 12 earned on 1.250 paid
        assert view["programs"]["points"]["balance"] == 87
        # and the receipt says so: both bonuses and the balance after them
        receipt = text_of(app, "#receipt")
        assert re.search(r"Welcome bonus\s+\+50", receipt) and re.search(r"Profile bonus\s+\+25", receipt), receipt
        assert re.search(r"New balance\s+87 pts", receipt), receipt


async def test_a_members_profile_is_saved_at_once_even_with_no_sale(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "8")  # Ali Karimi: no phone, no birthday yet
        before = app.services.gate.card("code:LOY-0008")["programs"]["points"]["balance"]
        await pilot.press("f3", "enter", *"+98 912 000 0008", "enter", *"04-01", "enter")
        await until(pilot, lambda: "Profile saved" in text_of(app, "#message"), what="saved")
        await pilot.press("escape")  # no sale: the profile stays all the same
        view = app.services.gate.card("code:LOY-0008")
        assert view["member"]["birthday"] == "04-01" and view["member"]["phone"] == "+98 912 000 0008"
        assert view["programs"]["points"]["balance"] == before + 25  # the profile bonus, paid once


async def test_bad_profile_is_explained_in_the_form(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "m")
        await pilot.press("f3", "enter", "enter", *"13-40", "enter")
        await until(pilot, lambda: "must be MM-DD" in text_of(app, "#form-error"), what="form error")
        await pilot.press("escape")
        assert app.checkout.cart.profile == {}


async def test_blocked_card_is_refused_in_red(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await add(pilot, "LAT")
        await tap(pilot, "6")
        assert "CARD REFUSED" in text_of(app, "#member")
        assert "blocked" in text_of(app, "#message")
        assert "error" in app.checkout.query_one("#message").classes
        assert "refused" in app.checkout.query_one("#member").classes
        assert app.checkout.cart.card is None
        await pilot.press("f9")
        assert "Tap the customer's card first" in text_of(app, "#message")


async def test_replaced_card_points_to_the_new_one(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "l")
        assert "replaced by em:0C00000117" in text_of(app, "#member")


async def test_typed_card_id_taps_like_a_reader(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        before = app.checkout.panel_shown_at
        await pilot.press(*"code:LOY-0004", "enter")
        await until(pilot, lambda: app.checkout.panel_shown_at != before, what="panel")
        assert "Reza Tehrani" in text_of(app, "#member")
        assert "9/10" in text_of(app, "#member")


async def test_without_a_reader_a_typed_card_is_read_by_a_worker(make_app: Callable[..., LoyaltyApp]) -> None:
    # a reader's taps are looked up on its own thread; a till with no reader reads typed ids in a worker
    app = make_app(reader=None)
    async with app.run_test(size=(80, 24)) as pilot:
        before = app.checkout.panel_shown_at
        await pilot.press(*"code:LOY-0004", "enter")
        await until(pilot, lambda: app.checkout.panel_shown_at != before, what="panel")
        assert "Reza Tehrani" in text_of(app, "#member")
        await pilot.press(*"code:NOPE-1", "enter")
        await until(pilot, lambda: "New card" in text_of(app, "#member"), what="unknown card")


async def _sell_one(pilot) -> str:
    await tap(pilot, "2")
    await add(pilot, "SPN")
    await pay(pilot)
    return pilot.app.checkout.last_sale


async def test_refund_with_the_manager_pin(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        sale_id = await _sell_one(pilot)
        await pilot.press("f12", *"1234", "enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ManagerMenu", what="manager menu")
        await pilot.press("r")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="refund form")
        await pilot.press("enter")  # the last sale's receipt number is filled in
        # the sale is shown before anything is written: which one, when, whose card, how much
        sold = app.services.gate.sale(sale_id)
        await until(pilot, lambda: "Refund sale" in dialog_text(app), what="confirmation")
        asked = dialog_text(app)
        assert f"Refund sale {sold['receipt']['number']}?" in asked, asked
        assert f"Total: KWD {sold['total']}" in asked and sold["card"] in asked, asked
        assert f"{sold['lines'][0]['qty']} x {sold['lines'][0]['name']}" in asked, asked
        earned = next(pid for pid, n in sold["earned"].items() if n)
        assert f"{sold['earned'][earned]} {earned}" in asked.split("Earned:")[1], asked
        # every fact is on screen, none cut at the dialog's edge
        facts = app.screen.query_one("#form-facts")
        assert facts.region.right <= app.screen.query_one(".dialog").region.right
        assert facts.region.height >= len(str(facts.render()).splitlines())
        await pilot.press("y", "enter")
        assert "type yes" in str(app.screen.query_one("#form-error").render())
        assert "refunded" not in app.services.gate.sale(sale_id)
        await pilot.press("backspace", *"yes", "enter")
        await until(pilot, lambda: "Refunded" in text_of(app, "#message"), what="refund")
        assert app.services.gate.sale(sale_id).get("refunded")
        slip = text_of(app, "#receipt")  # the slip the printer gets: which receipt, how much, the balances after
        receipt = app.services.gate.sale(sale_id)["receipt"]["number"]
        assert "REFUND" in slip and re.search(rf"Receipt\s+{receipt}", slip) and re.search(r"Amount\s+KWD \d+\.\d{3}", slip), slip
        assert receipt in text_of(app, "#message")


async def test_a_refund_for_the_customer_at_the_till_shows_its_slip(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await _sell_one(pilot)
        await tap(pilot, "2")  # the same customer is back at the till
        await pilot.press("f12", *"1234", "enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ManagerMenu", what="manager menu")
        await pilot.press("r")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="refund form")
        await pilot.press("enter")
        await until(pilot, lambda: "Refund sale" in dialog_text(app), what="confirmation")
        await pilot.press(*"yes", "enter")
        await until(pilot, lambda: "Refunded" in text_of(app, "#message"), what="refund")
        await pilot.pause(0.3)
        # the slip stays on screen (refreshing the customer's panel used to cover it at once)
        assert app.checkout.query_one("#right").current == "receipt-panel"
        assert "REFUND" in text_of(app, "#receipt")


async def test_wrong_pin_refunds_nothing_and_locks_after_three(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        sale_id = await _sell_one(pilot)
        await pilot.press("f12", *"0000", "enter")
        await until(pilot, lambda: "Wrong PIN (2 tries left)" in text_of(app, "#pin-error"), what="wrong pin")
        await pilot.press(*"1111", "enter", *"9999", "enter")
        await until(pilot, lambda: "locked" in text_of(app, "#message"), what="lockout")
        await pilot.press("f12")
        assert app.screen is app.checkout
        assert "locked" in text_of(app, "#message")
        assert "refunded" not in app.services.gate.sale(sale_id)


async def test_end_of_day_waits_for_the_sale_in_the_cart(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "LAT")
        await pilot.press("f12", *"1234", "enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ManagerMenu")
        await pilot.press("e")
        await until(pilot, lambda: "a sale is in the cart" in text_of(app, "#message"), what="refused")
        assert app.screen is app.checkout and app.checkout.cart.lines
        day = app.services.gate.loyalty.day(app.services.gate.clock())
        assert not app.services.gate.loyalty.conn.execute("SELECT 1 FROM business_days WHERE day=?", (day.isoformat(),)).fetchone()
        # with the cart paid, "y" is not yes
        await pay(pilot)
        await pilot.press("f12", *"1234", "enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ManagerMenu")
        await pilot.press("e")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="confirmation")
        await pilot.press("y", "enter")
        assert "type yes" in str(app.screen.query_one("#form-error").render())


async def test_a_value_the_ledger_refuses_opens_the_form_again_as_typed(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f12", *"1234", "enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ManagerMenu")
        await pilot.press("r")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="refund form")
        field = app.screen.query_one("#field-sale")
        field.value = "xyz"
        await pilot.press("enter")
        # the same form again, with what was typed and why it was refused; no PIN asked
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen" and "no sale" in text_of(app, "#form-error"),
                    what="the form again")
        assert app.screen.query_one("#field-sale").value == "xyz"


async def test_ctrl_q_with_a_sale_in_the_cart_asks_twice(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "LAT")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: "Ctrl+Q again" in text_of(app, "#message"), what="the warning")
        assert app.is_running and app.checkout.cart.lines
        await pilot.press("ctrl+q")
        await until(pilot, lambda: not app.is_running, what="quit")


@pytest.mark.parametrize("width", [80, 100, 112, 120, 129])
async def test_the_status_bar_keeps_the_till_id_at_any_width(make_app: Callable[..., LoyaltyApp], width: int) -> None:
    app = make_app()
    async with app.run_test(size=(width, 30)) as pilot:
        app.services.sync.set_offline(True)  # the longest sync part: OFFLINE (forced)
        app.refresh_status()
        await until(pilot, lambda: "OFFLINE" in text_of(app, "#status"), what="offline shown")
        line = text_of(app, "#status")
        assert line.rstrip().endswith("till-1") and len(line.rstrip()) <= width - 2, line  # the bar's padding is 1 a side
        # a reader with a long name (a by-id device path, a PC/SC reader) gives way to the till's id
        app.checkout.reader_text = "reader ○ serial:/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0 (reconnecting)"
        app.refresh_status()
        await until(pilot, lambda: "serial:" in text_of(app, "#status"), what="the long name shown")
        line = text_of(app, "#status")
        assert line.rstrip().endswith("till-1") and len(line.rstrip()) <= width - 2 and line.startswith("reader ○ serial:"), line
        # and one a little too long: accO's reader at 80 columns
        app.checkout.reader_text = "reader ● serial:/tmp/accO/dev-reader"
        app.refresh_status()
        await until(pilot, lambda: "dev-" in text_of(app, "#status") or "…" in text_of(app, "#status"), what="the name shown")
        line = text_of(app, "#status")
        assert line.rstrip().endswith("till-1") and len(line.rstrip()) <= width - 2, line


async def test_closing_the_pin_dialog_gives_no_new_tries(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f12", *"0000", "enter", *"1111", "enter")
        await until(pilot, lambda: "1 try left" in text_of(app, "#pin-error"), what="two wrong")
        await pilot.press("escape", "f12")  # a new dialog remembers the two
        await until(pilot, lambda: app.screen.__class__.__name__ == "PinScreen" and "1 try left" in text_of(app, "#pin-error"),
                    what="the same count")
        await pilot.press(*"2222", "enter")
        await until(pilot, lambda: "locked" in text_of(app, "#message"), what="lockout")
        await pilot.press("f12")
        assert app.screen is app.checkout


async def test_manager_blocks_the_tapped_card(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "4")
        await pilot.press("f12", *"1234", "enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ManagerMenu")
        await pilot.press("b")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen")
        await pilot.press("enter", *"lost", "enter")
        await until(pilot, lambda: "is blocked" in text_of(app, "#message"), what="blocked")
        await until(pilot, lambda: "CARD REFUSED" in text_of(app, "#member"), what="panel refreshed")
        assert app.services.gate.card("code:LOY-0004")["status"] == "blocked"


async def test_a_card_unblocked_while_refused_on_screen_is_on_the_sale_at_once(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await add(pilot, "LAT")
        await tap(pilot, "6")
        assert "CARD REFUSED" in text_of(app, "#member")
        await pilot.press("f12", *"1234", "enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ManagerMenu")
        await pilot.press("u")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen")
        await pilot.press("enter")  # the refused card is filled in
        await until(pilot, lambda: "active again" in text_of(app, "#message"), what="unblocked")
        await until(pilot, lambda: app.checkout.cart.card == BLOCKED, what="the card on the sale")
        assert "CARD REFUSED" not in text_of(app, "#member") and "refused" not in app.checkout.query_one("#member").classes
        await pay(pilot)  # no second tap needed


async def test_manager_adjusts_with_a_reason(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "8")
        await pilot.press("f12", *"1234", "enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ManagerMenu")
        await pilot.press("a")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen")
        await pilot.press("enter", "enter", *"+100", "enter", "enter")  # no reason: the form says so and stays open
        assert "fill in: reason" in str(app.screen.query_one("#form-error").render())
        assert app.services.gate.card("code:LOY-0008")["programs"]["points"]["balance"] == 50
        await pilot.press(*"goodwill", "enter")
        await until(pilot, lambda: app.services.gate.card("code:LOY-0008")["programs"]["points"]["balance"] == 150, what="adjusted")


async def test_member_screen_lists_the_history(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await pilot.press("f8")
        await until(pilot, lambda: getattr(app.screen, "events_shown", 0) > 0, what="history")
        table = app.screen.query_one("#history")
        kinds = {str(table.get_row_at(i)[2]) for i in range(table.row_count)}
        assert {"enrolled", "sale", "stamps earned", "points earned", "reward"} <= kinds
        sale_rows = [table.get_row_at(i) for i in range(table.row_count) if str(table.get_row_at(i)[2]) == "sale"]
        # its receipt number as typed to find it (digits, no leading zeros), next to the time so it is never off screen
        assert sale_rows and all(str(row[1]).isdigit() and not str(row[1]).startswith("0") for row in sale_rows)
        receipt = app.services.gate.sale(str(sale_rows[0][1]))["receipt"]["number"]
        assert receipt.endswith(f"-{int(str(sale_rows[0][1])):06d}")
        await pilot.press("escape")
        assert app.screen is app.checkout


async def test_member_screen_history_fits_an_80_column_terminal(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tap(pilot, "1")
        await pilot.press("f8")
        await until(pilot, lambda: getattr(app.screen, "events_shown", 0) > 0, what="history")
        await pilot.pause()
        table = app.screen.query_one("#history")
        assert app.screen.has_class("-narrow")
        # every column on screen: no sideways scrolling to read an amount or its program
        assert table.virtual_size.width <= table.scrollable_content_region.width, (table.virtual_size, table.size)
        await pilot.resize_terminal(120, 30)
        await until(pilot, lambda: not app.screen.has_class("-narrow"), what="wide layout")


async def test_help_wraps_a_long_line_under_its_own_words(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await until(pilot, lambda: app.screen.__class__.__name__ == "HelpScreen")
        await pilot.pause()
        lines = _help_lines(app)
        at = next(i for i, line in enumerate(lines) if "redeem points" in line)
        assert lines[at].strip().startswith("F5") and not lines[at + 1].strip().startswith("F")  # F5's words go on
        # the continuation starts under the description, not under the keys
        assert len(lines[at + 1]) - len(lines[at + 1].lstrip()) == lines[at].index("redeem points"), lines[at:at + 2]


async def test_end_of_day_shows_the_z_report(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await _sell_one(pilot)
        await pilot.press("f12", *"1234", "enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ManagerMenu")
        await pilot.press("e")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="confirmation")
        await pilot.press("enter")  # nothing typed: the day stays open
        assert "type yes" in str(app.screen.query_one("#form-error").render())
        await pilot.press(*"yes", "enter")
        await until(pilot, lambda: "Z REPORT" in text_of(app, "#eod-text"), what="z report")
        report = text_of(app, "#eod-text")  # the paper's document, as the printer got it
        assert re.search(r"^Sales +1$", report, re.M) and re.search(r"^Subtotal +KWD 1\.750$", report, re.M), report
        assert re.search(r"^Total +KWD 1\.627$", report, re.M), report
        assert re.search(r"^Closed +2026-11-22 10:00$", report, re.M), report  # the store's clock, not the ledger's UTC
        # programs and tiers by name, as on receipts
        assert re.search(r"^  Tier Gold +-KWD 0\.123$", report, re.M) and re.search(r"^Coffee card$", report, re.M), report
        assert app.screen.query_one("#eod-bar").progress == 1.0


async def test_a_till_restarted_on_a_closed_day_says_so_before_the_first_item(make_app: Callable[..., LoyaltyApp]) -> None:
    from sync.endofday import close_day

    first = make_app()
    gate = first.services.gate
    with gate.lock:
        close_day(gate.loyalty.conn, gate.loyalty.day(gate.clock()), gate.clock())  # end of day cut off by a crash: no Z printed
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "is closed" in text_of(app, "#message"), what="the closed day said at start")
        assert "Z report has not printed" in text_of(app, "#message")
        # long: on as many rows as it needs (up to 3), so its end, which says what to do, is seen
        assert app.checkout.query_one("#message").size.height >= 2
        await pilot.press(*"LAT", "enter")
        await pilot.pause(0.1)
        assert not app.checkout.cart.lines and "is closed" in text_of(app, "#message")


async def test_a_till_whose_clock_was_set_back_says_so_at_start(make_app: Callable[..., LoyaltyApp]) -> None:
    from datetime import timedelta

    from .conftest import NOW

    app = make_app()
    app.services.gate.clock = lambda: NOW - timedelta(days=3)  # the demo ledger's last sale is from NOW
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "earlier than its last sale" in text_of(app, "#message"), what="the clock warning")
        assert "2026-11-19" in text_of(app, "#message")


@pytest.mark.parametrize("locale", ["ar", "fa"])
async def test_an_arabic_or_persian_receipt_reads_right_to_left_on_screen(make_app: Callable[..., LoyaltyApp], demo_dir: Path,
                                                                          locale: str) -> None:
    config = demo_dir / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace('locale = "en"', f'locale = "{locale}"'), encoding="utf-8")
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _sell_one(pilot)
        shown = text_of(app, "#receipt")
        number = app.services.gate.sale(app.checkout.last_sale)["receipt"]["number"]
        # the terminal does not reorder: the label (Arabic, on the right on paper) comes after the number here
        line = next(ln for ln in shown.splitlines() if number in ln and any("\ufb50" <= c <= "\ufeff" for c in ln))
        label = next(i for i, c in enumerate(line) if "\ufb50" <= c <= "\ufeff")
        assert line.index(number) < label, line
        # and the letters are in their joined forms, which a terminal cannot make itself
        assert not any("\u0621" <= c <= "\u064a" for c in shown), shown


async def test_a_ledger_deleted_under_an_idle_till_is_seen_and_saved_at_the_next_tick(make_app: Callable[..., LoyaltyApp],
                                                                                       demo_dir: Path) -> None:
    app = make_app(status_interval_s=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await _sell_one(pilot)
        path = app.services.cfg.ledger.path
        path.unlink()  # someone deletes the ledger; nobody tries a sale
        await until(pilot, lambda: "deleted or replaced" in text_of(app, "#message"), what="the lost ledger said")
        [rescued] = path.parent.glob(f"{path.name}.rescued-*")
        assert str(rescued) in text_of(app, "#message")
        assert not Path(f"{path}-wal").exists()  # nothing of the old file left at the path for the next program to read
        import sqlite3

        conn = sqlite3.connect(rescued)
        try:
            assert conn.execute("SELECT COUNT(*) FROM sales").fetchone()[0] > 0  # the day's sales, the last one too
            assert conn.execute("SELECT 1 FROM sales WHERE id=?", (app.checkout.last_sale,)).fetchone()
        finally:
            conn.close()


async def test_help_lists_every_key(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await until(pilot, lambda: app.screen.__class__.__name__ == "HelpScreen")
        await pilot.pause()
        shown = "\n".join(_help_lines(app))
        for binding in app.checkout.BINDINGS:
            key = getattr(binding, "key", "").replace("escape", "esc")
            if getattr(binding, "show", True):
                assert f"{key.upper()}  " in shown.upper(), key


def _help_lines(app: LoyaltyApp) -> list[str]:
    """The help's key list as the screen shows it."""
    from textual.geometry import Region
    from textual.widgets import Static

    keys = app.screen.query(Static).filter(".keys").first()
    return [strip.text.rstrip() for strip in keys.render_lines(Region(0, 0, keys.size.width, keys.size.height))]


async def test_the_same_card_tapped_again_is_read_again(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tap(pilot, "4")
        await pilot.press("escape")
        assert "No card" in text_of(app, "#member")
        await tap(pilot, "4")
        assert "Reza Tehrani" in text_of(app, "#member")


async def test_without_a_manager_pin_the_dialog_says_how_to_set_one(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app(check_pin=lambda pin: None)  # a config without [manager]
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f12", *"1234", "enter")
        await until(pilot, lambda: "pin_sha256" in text_of(app, "#pin-error"), what="no-PIN message")
        assert "add [manager] pin_sha256 to config.toml" in text_of(app, "#pin-error")


async def _manager(pilot, key: str) -> None:
    app = pilot.app
    await pilot.press("f12", *"1234", "enter")
    await until(pilot, lambda: app.screen.__class__.__name__ == "ManagerMenu", what="manager menu")
    await pilot.press(key)


async def test_manager_replaces_a_card_and_reprints_a_receipt(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await _sell_one(pilot)  # Ahmad's card, uid:04B2C3D4E5F607
        await _manager(pilot, "n")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="replace form")
        await pilot.press("enter", *"code:NEW-0002", "enter")
        await until(pilot, lambda: "Member moved to card code:NEW-0002" in text_of(app, "#message"), what="replaced")
        assert app.services.gate.card("uid:04B2C3D4E5F607")["status"] == "replaced"
        assert app.services.gate.card("code:NEW-0002")["member"]["name"] == "Ahmad Al-Mutairi"
        await _manager(pilot, "p")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="reprint form")
        await pilot.press("enter")
        await until(pilot, lambda: "Reprinted" in text_of(app, "#message"), what="reprint")
        assert "COPY" in text_of(app, "#receipt")


async def test_manager_forces_offline_and_back(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await _manager(pilot, "o")
        await until(pilot, lambda: "OFFLINE (forced)" in text_of(app, "#status"), what="forced offline")
        await _manager(pilot, "o")
        await until(pilot, lambda: "Back online" in text_of(app, "#message"), what="back online")
        await until(pilot, lambda: "OFFLINE (forced)" not in text_of(app, "#status"), what="status back")


async def test_the_collector_runs_on_a_timer_not_during_taps(make_app: Callable[..., LoyaltyApp],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    import terminal.app.app as app_module

    monkeypatch.setattr(app_module, "GC_EVERY_S", 0.05)
    monkeypatch.setattr(app_module, "GC_FULL_EVERY", 3)
    passes: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: not gc.isenabled(), what="the collector handed to the timer")
        gc.callbacks.append(seen)
        try:
            await until(pilot, lambda: 2 in passes, what="a full pass from the timer")
        finally:
            gc.callbacks.remove(seen)
        assert 1 in passes  # the young generations in between
    assert gc.isenabled()  # given back when the app ends


async def test_the_footer_keeps_the_cashiers_keys_on_a_narrow_terminal(make_app: Callable[..., LoyaltyApp]) -> None:
    from textual.widgets._footer import FooterKey

    def shown(app: LoyaltyApp) -> list[str]:
        return [key.action for key in app.checkout.query(FooterKey) if key.display and key.region.right <= app.size.width]

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: bool(shown(app)), what="footer")
        narrow = shown(app)
        assert narrow == ["help", "tap", "pay", "reward", "points", "clear", "profile", "member"]
        await add(pilot, "LAT")
        await pilot.press("f6")  # a key the narrow footer leaves out still works
        await until(pilot, lambda: app.checkout.query_one("#cart").row_count == 0, what="line removed")
        await pilot.resize_terminal(120, 30)
        await until(pilot, lambda: "manager" in shown(app), what="wide footer")
        assert shown(app)[-3:] == ["remove_line", "quantity", "manager"]
        assert "Salmiya Coffee House · till-1" in text_of(app, "#status")  # room for the long status line
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: "manager" not in shown(app), what="narrow footer again")
        status = text_of(app, "#status")  # the short one keeps the till's id and the sync state on screen
        assert status.endswith("│ till-1") and "pending, synced" in status and len(status) <= 78, status


async def test_a_refund_asked_twice_says_when_and_its_slip_prints_again_from_the_menu(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        sale_id = await _sell_one(pilot)
        receipt = app.services.gate.sale(sale_id)["receipt"]["number"]

        async def manager(key: str) -> None:
            await pilot.press("f12", *"1234", "enter")
            await until(pilot, lambda: app.screen.__class__.__name__ == "ManagerMenu", what="manager menu")
            await pilot.press(key)
            await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="form")

        # a sale never refunded has no slip: the form says so and stays as typed
        await manager("s")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen" and "was not refunded" in text_of(app, "#form-error"),
                    what="not refunded")
        await pilot.press("escape")
        await manager("r")
        await pilot.press("enter")
        await until(pilot, lambda: "Refund sale" in dialog_text(app), what="confirmation")
        await pilot.press(*"yes", "enter")
        await until(pilot, lambda: "Refunded" in text_of(app, "#message"), what="refund")
        await manager("r")
        await pilot.press("enter")  # no confirmation for a sale refunded already: what was done is said
        # said in the till's words: when, and which key prints the slip (not a command line), and no form again
        await until(pilot, lambda: "already refunded at" in text_of(app, "#message"), what="refused")
        said = text_of(app, "#message")
        assert receipt in said and "F12 s" in said and "loyalty " not in said, said
        assert app.screen is app.checkout
        app.checkout.query_one("#receipt").update("")
        await manager("s")
        await pilot.press("enter")
        await until(pilot, lambda: "Refund slip of" in text_of(app, "#message"), what="slip reprinted")
        assert "printed again" in text_of(app, "#message")
        slip = text_of(app, "#receipt")
        assert "REFUND" in slip and "COPY" in slip and receipt in slip, slip
        refund_id = app.services.gate.sale(sale_id)["refunded"]
        copies = app.services.gate.loyalty.conn.execute(
            "SELECT COUNT(*) FROM print_jobs WHERE kind='refund' AND ref=? AND copy=1", (refund_id,)).fetchone()[0]
        assert copies == 1


async def test_a_till_that_begins_a_new_ledger_says_so_at_start(demo_dir: Path) -> None:
    from ledger import config as config_mod
    from terminal.app import build_app, build_services
    from terminal.app.services import system_clock

    text = (demo_dir / "config.toml").read_text(encoding="utf-8")
    assert 'path = "var/ledger.db"' in text
    (demo_dir / "config.toml").write_text(text.replace('path = "var/ledger.db"', 'path = "mnt/usb/ledger.db"'), encoding="utf-8")
    cfg = config_mod.load(demo_dir / "config.toml")
    services = build_services(cfg, clock=system_clock, reader_url="sim://", printer_url="preview://")
    try:
        app = build_app(services)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: "New ledger begun at" in text_of(app, "#message"), what="new ledger said")
            assert "mnt/usb/ledger.db" in text_of(app, "#message") and "disk is mounted" in text_of(app, "#message")
    finally:
        services.close()


async def test_an_item_scanned_while_the_sale_commits_is_refused_not_lost(make_app: Callable[..., LoyaltyApp]) -> None:
    import sqlite3

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        await add(pilot, "LAT")
        # another process holds the ledger's write lock: the sale waits for it, as on a slow disk
        blocker = sqlite3.connect(app.services.gate.loyalty.ledger.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            await pilot.press("f9")
            await until(pilot, lambda: app.checkout.paying, what="paying")
            await pilot.press(*"CRO", "enter")
            await until(pilot, lambda: "CRO: not done: the sale is being completed" in text_of(app, "#message"), what="refused")
            assert [line.sku for line in app.checkout.cart.lines] == ["LAT"]
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        await until(pilot, lambda: "Paid" in text_of(app, "#message"), what="sale")
        sold = app.services.gate.sale(app.checkout.last_sale)
        assert [line["sku"] for line in sold["lines"]] == ["LAT"] and not app.checkout.cart.lines


@pytest.mark.parametrize(("currency", "typed", "points"), [
    ("IRR", "IRR 1000", 200), ("IRR", "1000 irr", 200), ("IRR", "200", 200),  # a number alone is points where amounts have no decimals
    ("KWD", "1.000", 200), ("KWD", "KWD 1.000", 200), ("KWD", "200", 200),
])
def test_points_typed_as_money_in_any_currency(tmp_path: Path, currency: str, typed: str, points: int) -> None:
    from ledger_store import STORE

    from ledger.config import load
    from ledger.service import Loyalty
    from terminal.app.gate import Gate
    from terminal.app.services import system_clock

    step = {"IRR": "500", "KWD": "0.500"}[currency]
    text = STORE.replace('currency = "KWD"', f'currency = "{currency}"')
    text = re.sub(r'"(\d+)\.(\d{3})"', lambda m: f'"{int(m.group(1)) * 1000 + int(m.group(2))}"' if currency == "IRR" else m.group(0), text)
    text = text.replace('step_value = "500"', f'step_value = "{step}"')
    (tmp_path / "store.toml").write_text(text, encoding="utf-8")
    gate = Gate(Loyalty.open(load(tmp_path / "store.toml")), system_clock)
    try:
        assert gate.points_for("points", typed) == points
        example = gate.amount_example(gate.cfg.programs["points"])  # type: ignore[arg-type]
        assert example == ("IRR 500" if currency == "IRR" else "0.500")
    finally:
        gate.close()


@pytest.mark.parametrize(("currency", "shown"), [("IRR", "Total IRR 0"), ("KWD", "Total KWD 0.000"), ("JPY", "Total JPY 0")])
def test_an_empty_cart_totals_zero_in_its_currencys_digits(tmp_path: Path, currency: str, shown: str) -> None:
    from ledger_store import STORE

    from ledger.config import load
    from terminal.app.render import totals_text

    text = re.sub(r'"(\d+)\.(\d{3})"', lambda m: f'"{int(m.group(1)) * 1000 + int(m.group(2))}"', STORE) if currency != "KWD" else STORE
    (tmp_path / "store.toml").write_text(text.replace('currency = "KWD"', f'currency = "{currency}"'), encoding="utf-8")
    assert totals_text(None, load(tmp_path / "store.toml")).plain == shown


async def test_a_till_restarted_just_after_a_sale_says_it_went_through(demo_dir: Path) -> None:
    from datetime import timedelta

    from ledger import config as config_mod
    from ledger.service import CheckoutRequest
    from terminal.app import build_app, build_services

    from .conftest import NOW

    cfg = config_mod.load(demo_dir / "config.toml")
    # the sale the cashier saw as "Completing the sale…" when the power went
    first = build_services(cfg, clock=lambda: NOW - timedelta(minutes=3), reader_url="sim://", printer_url="preview://")
    try:
        sold = first.gate.loyalty.checkout(CheckoutRequest.from_cli("code:LOY-0004", ["LAT"], []), NOW - timedelta(minutes=3))
    finally:
        first.close()
    services = build_services(cfg, clock=lambda: NOW, reader_url="sim://", printer_url="preview://")
    try:
        app = build_app(services)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: sold["receipt"]["number"] in text_of(app, "#message"), what="last sale said")
            assert "completed and recorded: do not ring it up again" in text_of(app, "#message")
    finally:
        services.close()
    # an hour later it is history, not news
    later = build_services(cfg, clock=lambda: NOW + timedelta(hours=1), reader_url="sim://", printer_url="preview://")
    try:
        assert later.gate.recent_sale_note() == ""
    finally:
        later.close()


async def test_a_card_replaced_during_its_sale_carries_the_sale(make_app: Callable[..., LoyaltyApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await tap(pilot, "1")
        old = app.checkout.cart.card
        await add(pilot, "LAT")
        await _manager(pilot, "n")
        await until(pilot, lambda: app.screen.__class__.__name__ == "FormScreen", what="replace form")
        assert app.screen.query_one("#field-old").value == old  # the card in hand
        await pilot.press("tab", *"code:NEW-CARD-1", "enter")
        await until(pilot, lambda: app.checkout.cart.card == "code:NEW-CARD-1", what="the sale on the new card")
        assert [line.sku for line in app.checkout.cart.lines] == ["LAT"]
        await pay(pilot)
        assert app.services.gate.sale(app.checkout.last_sale)["card"] == "code:NEW-CARD-1"


@pytest.mark.parametrize(("amount", "shown"), [
    ("17234500", "17,234,500"), ("5744.850", "5,744.850"), ("-1234.500", "-1,234.500"), ("0.582", "0.582"), ("999", "999"), ("…", "…"),
])
def test_amounts_on_screen_group_their_thousands_as_the_receipt_does(amount: str, shown: str) -> None:
    from terminal.app.render import grouped

    assert grouped(amount) == shown
