"""Waiting on the running app and reading what it shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from terminal.app import LoyaltyApp


async def until(pilot: Any, cond: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Let the app run until `cond()` holds (workers answer through messages)."""
    loops = int(timeout / 0.02)
    for _ in range(loops):
        if cond():
            return
        await pilot.pause(0.02)
    app = pilot.app
    shown = app.checkout.query_one("#message").render() if app.checkout.is_mounted else ""
    raise AssertionError(f"timed out waiting for {what or cond}; the message line says: {shown}")


def text_of(app: LoyaltyApp, selector: str) -> str:
    widget = app.screen.query_one(selector) if app.screen.query(selector) else app.checkout.query_one(selector)
    rendered = widget.render()
    return str(getattr(rendered, "plain", rendered))



def dialog_text(app: LoyaltyApp) -> str:
    """Every label of the screen on top (a form's title, its fields' labels, its hint), one per line."""
    from textual.widgets import Label

    if app.screen is app.checkout:
        return ""
    return "\n".join(str(getattr(r, "plain", r)) for r in (label.render() for label in app.screen.query(Label)))
