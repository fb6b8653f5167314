"""Card identifiers: one normalized text per physical card, by technology.

* ``uid:04A1B2C3D4E5F6``: the UID of an NFC tag or contactless smart card
  (4, 7 or 10 bytes; upper-case hex);
* ``ndef:<number>``: a card number stored in an NDEF text or URI record;
* ``em:<10 hex>``: a 125 kHz EM4100 fob (version byte + 32-bit id);
* ``code:<text>``: a printed barcode / QR code, or a number typed by hand.

A bare text with no prefix is taken as ``code:``, since that is what a
cashier types or a keyboard-wedge scanner sends.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

KINDS = ("uid", "ndef", "em", "code")
# control, format (zero-width, bidi marks and overrides, BOM), surrogate, private, unassigned, line and paragraph separators
_INVISIBLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))
_DIGITS = str.maketrans({c: str(i) for digits in ("٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹") for i, c in enumerate(digits)})
_HEX = re.compile(r"^[0-9A-F]+$")
_MAX_TEXT = 128


class CardIdError(ValueError):
    """A card identifier that cannot be normalized."""


def normalize(raw: str) -> str:
    """The normalized id for `raw`, or CardIdError with the reason."""
    # one card, one id, however it was typed: full-width or composed letters and Arabic-Indic or Persian digits
    # read as the plain ones (NFKC), and nothing invisible, which would make a second card nobody can see
    text = unicodedata.normalize("NFKC", raw).translate(_DIGITS).strip()
    hidden = next((c for c in text if unicodedata.category(c) in _INVISIBLE), None)
    if hidden is not None:
        raise CardIdError(f"card id holds an invisible or control character (U+{ord(hidden):04X})")
    if not text:
        raise CardIdError("empty card id")
    kind, sep, value = text.partition(":")
    if not sep or kind.lower() not in KINDS:
        # a mistyped prefix would silently enrol a second card (code:uld:04A1...); any other
        # text before a colon (a URL in a QR code) is the code itself
        typo = difflib.get_close_matches(kind.lower(), KINDS, n=1, cutoff=0.6) if sep and kind.isalpha() else []
        if typo:
            raise CardIdError(f"unknown card type {kind + ':'!r} (did you mean {typo[0] + ':'!r}?); write code:{text} for a code with that text")
        kind, value = "code", text
    kind = kind.lower()
    value = value.strip()
    if kind == "uid":
        hexed = value.replace(" ", "").replace(":", "").replace("-", "").upper()
        if not _HEX.match(hexed) or len(hexed) not in (8, 14, 20):
            raise CardIdError(f"uid must be 4, 7 or 10 bytes of hex, not {value!r}")
        return f"uid:{hexed}"
    if kind == "em":
        hexed = value.upper()
        if not _HEX.match(hexed) or len(hexed) != 10:
            raise CardIdError(f"em id must be 10 hex digits, not {value!r}")
        return f"em:{hexed}"
    if not value:
        raise CardIdError(f"{kind}: card id has no number")
    if len(value) > _MAX_TEXT:
        raise CardIdError(f"{kind}: card id is longer than {_MAX_TEXT} characters")
    return f"{kind}:{value}"


def uid_id(uid: bytes) -> str:
    return normalize("uid:" + uid.hex())


def em_id(version: int, number: int) -> str:
    return f"em:{version:02X}{number:08X}"
