"""Screenshots of the main screens (pytest-textual-snapshot); `--snapshot-update` accepts a change after review."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from terminal.app import LoyaltyApp

from .helpers import text_of, until


async def _ready(pilot: Any) -> None:
    app = pilot.app
    app.checkout.query_one("#item-input").cursor_blink = False  # a blinking cursor made screenshots differ by timing
    await until(pilot, lambda: "reader ● sim" in text_of(app, "#status") and "queued" in text_of(app, "#status"), what="status bar")


async def _tap(pilot: Any, key: str) -> None:
    app = pilot.app
    before = app.checkout.panel_shown_at
    await pilot.press("f2")
    await until(pilot, lambda: app.screen.__class__.__name__ == "TapScreen")
    await pilot.press(key)
    await until(pilot, lambda: app.checkout.panel_shown_at != before, what="panel")


async def _add(pilot: Any, *items: str) -> None:
    app = pilot.app
    for item in items:
        await pilot.press(*item, "enter")
    n = len(items)
    await until(pilot, lambda: app.checkout.quote is not None and len(app.checkout.quote["lines"]) == n, what="quote")
    table = app.checkout.query_one("#cart")
    await until(pilot, lambda: all(table.get_row_at(i)[2] != "…" for i in range(n)), what="cart priced")


def test_checkout_with_member_panel(snap_compare: Callable[..., bool], make_app: Callable[..., LoyaltyApp]) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await _tap(pilot, "1")
        await _add(pilot, "LAT*2", "CRO")
        await pilot.press("f4")
        await until(pilot, lambda: (pilot.app.checkout.quote or {}).get("redeemed") == {"coffee": 1}, what="reward")

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_checkout_wide(snap_compare: Callable[..., bool], make_app: Callable[..., LoyaltyApp]) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await _tap(pilot, "3")
        await _add(pilot, "BEANS", "ESP")

    assert snap_compare(make_app(), terminal_size=(120, 34), run_before=run_before)


def test_blocked_card(snap_compare: Callable[..., bool], make_app: Callable[..., LoyaltyApp]) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await _tap(pilot, "6")

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_tap_dialog(snap_compare: Callable[..., bool], make_app: Callable[..., LoyaltyApp]) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("f2")
        await until(pilot, lambda: pilot.app.screen.__class__.__name__ == "TapScreen")

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_help_screen(snap_compare: Callable[..., bool], make_app: Callable[..., LoyaltyApp]) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("f1")
        await until(pilot, lambda: pilot.app.screen.__class__.__name__ == "HelpScreen")

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_member_screen(snap_compare: Callable[..., bool], make_app: Callable[..., LoyaltyApp]) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await _tap(pilot, "k")
        await pilot.press("f8")
        await until(pilot, lambda: getattr(pilot.app.screen, "events_shown", 0) > 0, what="history")

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=run_before)


def test_end_of_day(snap_compare: Callable[..., bool], make_app: Callable[..., LoyaltyApp]) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.press("f12", *"1234", "enter")
        await until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ManagerMenu")
        await pilot.press("e")
        await until(pilot, lambda: pilot.app.screen.__class__.__name__ == "FormScreen", what="confirmation")
        await pilot.press(*"yes", "enter")
        await until(pilot, lambda: "Z REPORT" in text_of(pilot.app, "#eod-text"), what="z report")
        await until(pilot, lambda: "printed" in text_of(pilot.app, "#eod-print"), what="z report printed")

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)
