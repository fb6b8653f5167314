"""CLI sub-commands, one module per feature; each has `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from types import ModuleType

MAX_LIMIT = 1_000_000


def bounded(low: float, high: float, *, whole: bool = True) -> Callable[[str], float]:
    """An argparse type: a number from `low` to `high` (digits only for whole numbers)."""

    def parse(text: str) -> float:
        try:
            value: float = int(text) if whole and text.strip().lstrip("-").isdecimal() else float("nan") if whole else float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # nan, inf and out of range all fail this
            span = f"{int(low):,} to {int(high):,}" if whole else f"{low:g} to {high:g}"
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if whole else 'a number'} from {span}")
        return value

    return parse


def signed_int(text: str) -> int:
    """A whole number with an optional minus or plus sign: digits only (int() also takes "1_000")."""
    body = text.strip()
    digits = body[1:] if body[:1] in "+-" else body
    if not digits.isdecimal():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(body)


# a `--limit N`: SQLite's LIMIT takes no more than 64 bits, and no screen more than this
limit_arg = bounded(1, MAX_LIMIT)


def optional(name: str) -> ModuleType | None:
    """A feature module of this package, or None while it is not built."""
    full = f"{__name__}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name != full:
            raise
        return None
