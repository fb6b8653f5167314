"""The Textual cashier app. Only `terminal/` imports Textual."""

from __future__ import annotations

from .app import LoyaltyApp, build_app
from .services import DemoCard, Services, build_services

__all__ = ["DemoCard", "LoyaltyApp", "Services", "build_app", "build_services"]
