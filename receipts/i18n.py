"""Receipt language: message catalogs, digits, money and dates for en, ar, fa.

Catalogs are gettext .po files shipped in `receipts/locale/`; the msgid is the
English text, so a missing translation prints English rather than nothing.
Money goes through Babel (CLDR) for the store's currency and locale.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import format_currency, format_decimal

LOCALE_DIR = Path(__file__).parent / "locale"  # package data, beside the code
RTL_LOCALES = frozenset({"ar", "fa"})
_UTC = ZoneInfo("UTC")
Digits = Literal["latn", "native"]

# CLDR numbering systems used when a store asks for native digits.
_NATIVE_SYSTEM = {"ar": "arab", "fa": "arabext"}
_DIGITS = {
    "arab": "٠١٢٣٤٥٦٧٨٩",
    "arabext": "۰۱۲۳۴۵۶۷۸۹",
}
# Babel's locale for money: "ar" alone formats the currency sign for no region;
# a store in Kuwait or Iran reads the region's CLDR pattern.
_BETWEEN_DIGITS = re.compile(r"(?<=\d)([-:/. ])(?=\d)")
_CODE_THEN_DIGIT = re.compile(r"(^[\u200e\u200f\u061c]?[-\u2212]?[A-Z]{3})(?=\d)")
_MONEY_LOCALE = {"en": "en", "ar": "ar_KW", "fa": "fa_IR"}


def parse_po(text: str) -> dict[str, str]:
    """msgid -> msgstr of a .po file (single and multi-line strings, no plurals)."""
    out: dict[str, str] = {}
    key: str | None = None
    field_name = ""
    parts: dict[str, list[str]] = {"msgid": [], "msgstr": []}

    def flush() -> None:
        msgid, msgstr = "".join(parts["msgid"]), "".join(parts["msgstr"])
        if msgid and msgstr:
            out[msgid] = msgstr
        parts["msgid"], parts["msgstr"] = [], []

    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("msgid "):
            if key is not None:
                flush()
            key, field_name = "msgid", "msgid"
            line = line[6:]
        elif line.startswith("msgstr "):
            field_name = "msgstr"
            line = line[7:]
        if line.startswith('"'):
            parts[field_name].append(str(ast.literal_eval(line)))
    if key is not None:
        flush()
    return out


@lru_cache(maxsize=8)
def catalog(locale: str) -> dict[str, str]:
    if locale == "en":
        return {}
    try:
        text = (LOCALE_DIR / f"{locale}.po").read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse_po(text)


def digits_setting(configured: str | None = None) -> Digits:
    """`native` or `latn`: the store's choice, else $LOYALTY_RECEIPT_DIGITS, else Latin digits."""
    value = (configured or os.environ.get("LOYALTY_RECEIPT_DIGITS") or "latn").strip().lower()
    return "native" if value in ("native", "arab", "arabext", "eastern", "persian") else "latn"


@dataclass(frozen=True, slots=True)
class Lang:
    """One receipt's language settings, with the helpers templates need."""

    locale: str = "en"
    digits: Digits = "latn"
    tz: ZoneInfo = _UTC

    @property
    def rtl(self) -> bool:
        return self.locale in RTL_LOCALES

    @property
    def numbering(self) -> str:
        if self.digits == "native" and self.locale in _NATIVE_SYSTEM:
            return _NATIVE_SYSTEM[self.locale]
        return "latn"

    def _(self, msgid: str, **values: object) -> str:
        text = catalog(self.locale).get(msgid, msgid)
        if values:
            text = text.format(**{k: self.num(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in values.items()})
        return text

    def localize_digits(self, text: str) -> str:
        table = _DIGITS.get(self.numbering)
        if table is None:
            return text
        return text.translate(str.maketrans("0123456789", table))

    def num(self, value: int | Decimal) -> str:
        if self.numbering == "latn":
            return str(value) if isinstance(value, int) and abs(value) < 1000 else format_decimal(value, locale="en")
        text = format_decimal(value, locale=_MONEY_LOCALE.get(self.locale, self.locale), numbering_system=self.numbering)
        return self.localize_digits(text)

    def percent(self, value: str | int | Decimal) -> str:
        """12.5 -> "12.5%", with this language's digits and CLDR's percent sign ("٪" in Persian)."""
        return self.num(Decimal(str(value))) + _percent_sign(_MONEY_LOCALE.get(self.locale, "en"), self.numbering)

    def money(self, amount: str | Decimal, currency: str) -> str:
        """A decimal string ("12.500") in the store currency, as CLDR writes it for this language."""
        return _money(str(amount), currency, _MONEY_LOCALE.get(self.locale, "en"), self.numbering)


    def negative(self, amount: str | Decimal, currency: str) -> str:
        """An amount taken off: -KWD 1.250; in RTL lines the sign stays glued to the digits' left."""
        text = self.money(amount, currency)
        if not Decimal(amount):  # nothing taken off is no minus: "-KWD 0.000" reads as a debt on paper
            return text
        mark = text[:1] if text[:1] in "\u200e\u200f" else ""
        return f"{mark}\u200e-{text[len(mark):]}" if self.rtl else f"-{text}"

    def signed(self, value: int) -> str:
        """+5 / -3 for points and stamps moved, the sign before the number in every language."""
        sign = "+" if value > 0 else "-" if value < 0 else ""
        number = self.num(abs(value))
        if not self.rtl:
            return sign + number
        # native Arabic digits are "Arabic numbers" to the bidi algorithm and pull a sign with
        # only one strong neighbour to their right: the sign gets a mark on both sides
        inner = "\u200e" if sign and not number.isascii() else ""
        return f"\u200e{sign}{inner}{number}"

    def local_time(self, iso_utc: str) -> str:
        """The ledger's UTC timestamp as the store's wall clock: 2026-11-22 19:07."""
        if not iso_utc:
            return ""
        moment = datetime.fromisoformat(iso_utc.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return self.ltr(self.localize_digits(moment.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")))

    def day(self, value: str | date) -> str:
        text = value.isoformat() if isinstance(value, date) else str(value)
        return self.ltr(self.localize_digits(text))

    def ltr(self, text: str) -> str:
        # After an Arabic word the bidi algorithm takes digits as Arabic numbers and would
        # show 2026-12-15 as 15-12-2026; left-to-right marks keep dates as written. Native
        # Arabic digits are Arabic numbers wherever they stand, so each separator between
        # them gets marks of its own too.
        if not (self.rtl and text):
            return text
        if any(ch.isdigit() and not ch.isascii() for ch in text):
            text = _BETWEEN_DIGITS.sub("\u200e\\1\u200e", text)
        return f"\u200e{text}\u200e"


@lru_cache(maxsize=16)
def _percent_sign(locale: str, numbering: str) -> str:
    return str(Locale.parse(locale).number_symbols[numbering]["percentSign"])


@lru_cache(maxsize=2048)
def _money(amount: str, currency: str, locale: str, numbering: str) -> str:
    text = format_currency(Decimal(amount), currency, locale=locale, numbering_system=numbering)
    # Babel takes the numbering system's separators but leaves the digits Latin.
    if numbering in _DIGITS:
        text = text.translate(str.maketrans("0123456789", _DIGITS[numbering]))
    # CLDR's bidi marks stay: they keep sign, digits and currency in the order CLDR means in RTL lines.
    text = text.replace("\xa0", " ")
    # CLDR's currency spacing: an alphabetic code stands apart from the digits (KWD 12.500).
    return _CODE_THEN_DIGIT.sub(r"\1 ", text)
