"""The Textual cashier app. Only `terminal/` imports Textual.

`build_app` and `LoyaltyApp` load Textual on first use, so the app's plain
parts (gate, ports, cart, services) serve the CLI and benchmarks without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .services import DemoCard, Services, build_services

if TYPE_CHECKING:
    from .app import LoyaltyApp, build_app

__all__ = ["DemoCard", "LoyaltyApp", "Services", "build_app", "build_services"]


def __getattr__(name: str) -> Any:
    if name in ("LoyaltyApp", "build_app"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
