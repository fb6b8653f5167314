"""Free text a person types (names, reasons): one line, bounded, nothing a printer or a screen would obey.

It is stored in the ledger's events, synced to the chain and printed: a control
character would reach an ESC/POS printer as a command, a bidi override would
reorder the receipt line, and a newline would break the one-line messages that
quote it.
"""

from __future__ import annotations

import unicodedata

from .errors import LoyaltyError

# explicit embeddings, overrides and isolates; the marks (LRM, RLM, ALM) and the joiners (ZWNJ, ZWJ) stay
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean(value: str, what: str, code: str, max_len: int, *, required: bool = True) -> str:
    """`value` with its runs of white space made one space; LoyaltyError(code) says what is wrong with it."""
    text = " ".join(value.split())
    if not text and required:
        raise LoyaltyError(code, f"{what} is empty")
    if len(text) > max_len:
        raise LoyaltyError(code, f"{what} is {len(text)} characters; at most {max_len}")
    bad = next((ch for ch in text if ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs")), None)
    if bad is not None:
        raise LoyaltyError(code, f"{what} holds a control character (U+{ord(bad):04X})")
    if text and all(unicodedata.category(ch) in ("Cf", "Zs") for ch in text):  # only joiners or marks: nothing to read
        raise LoyaltyError(code, f"{what} has nothing to read (only invisible characters)")
    return text
