"""CLI sub-commands, one module per feature; each has `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

MAX_LIMIT = 1_000_000


def limit_arg(text: str) -> int:
    """A `--limit N`: a whole number from 1 to MAX_LIMIT (SQLite's LIMIT takes no more than 64 bits)."""
    value = int(text) if text.strip().isdigit() else 0
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {MAX_LIMIT:,}")
    return value


def optional(name: str) -> ModuleType | None:
    """A feature module of this package, or None while it is not built."""
    full = f"{__name__}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name != full:
            raise
        return None
