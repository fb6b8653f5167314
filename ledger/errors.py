"""The one error type the domain raises: a stable code and a plain message.

The CLI prints `message` on stderr (or `{"error": code, "message": ...}` with
--json); the cashier UI shows it. Codes are part of the JSON contract.
"""

from __future__ import annotations


class LoyaltyError(Exception):
    def __init__(self, code: str, message: str, *, data: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        # what a screen needs to say it in its own words (the message names CLI commands)
        self.data = data or {}

    def as_json(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}
