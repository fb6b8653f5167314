"""Money as integer minor units, with the currency's digits taken from CLDR.

Amounts never travel as floats: config files and JSON carry decimal strings
("12.500" for KWD), the ledger stores integers (12500 fils).

Rounding rules (see README, "Money and rounding"):

* a percent of an amount is rounded half-up to the minor unit
  (`percent_of`): 5 % of 0.750 KWD is 0.0375 -> 0.038;
* an amount split over lines is split by largest remainder (`allocate`), so
  the parts always add up to the whole;
* points earned on an amount are floored (`ledger.programs.points`): no
  rounding ever creates a point that was not paid for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from babel.core import UnknownLocaleError
from babel.numbers import format_currency, get_currency_precision, list_currencies

_AMOUNT = re.compile(r"-?\d+(?:\.(\d+))?")


class MoneyError(ValueError):
    """An amount that cannot be represented in the currency."""


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    digits: int
    scale: int = field(init=False, repr=False, compare=False)  # 10**digits

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", 10**self.digits)


@lru_cache(maxsize=64)
def currency(code: str) -> Currency:
    """The currency `code` (ISO 4217) with its minor-unit digits from CLDR."""
    upper = code.upper()
    if upper not in known_currencies():
        raise MoneyError(f"unknown currency code {code!r} (ISO 4217, e.g. KWD, EUR, JPY)")
    return Currency(upper, get_currency_precision(upper))


@lru_cache(maxsize=1)
def known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


# a price or amount at most this many minor units: a sale of 200 lines of 999 such items still
# sums inside SQLite's 64-bit integers
MAX_MINOR = 10**12


def parse(text: str | int | Decimal, cur: Currency, *, allow_negative: bool = False) -> int:
    """Parse a decimal string into minor units, refusing extra digits.

    "1.5" KWD -> 1500; "1.2345" KWD is an error rather than a silent rounding.
    """
    if isinstance(text, (bool, float)):
        raise MoneyError(f"amount {text!r} must be a decimal string such as \"1.500\"")
    plain = str(text).strip()
    # digits, then optionally a point and digits: no exponent, no sign but minus, no padding zeros past the currency's digits
    match = _AMOUNT.fullmatch(plain)
    if match is None:
        raise MoneyError(f"{text!r} is not an amount (expected a decimal string such as \"{fmt(cur.scale * 25 // 2, cur)}\")")
    if len(match.group(1) or "") > cur.digits:
        raise MoneyError(f"{plain} has more than {cur.digits} decimal digit(s), the most {cur.code} allows")
    minor = int(Decimal(plain) * cur.scale)
    if abs(minor) > MAX_MINOR:
        raise MoneyError(f"{plain} is more than the largest amount this till takes ({fmt(MAX_MINOR, cur)} {cur.code})")
    if minor < 0 and not allow_negative:
        raise MoneyError(f"amount {plain} must not be negative")
    return minor


def to_decimal(minor: int, cur: Currency) -> Decimal:
    return (Decimal(minor) / cur.scale).quantize(Decimal(1).scaleb(-cur.digits))


def fmt(minor: int, cur: Currency) -> str:
    """Minor units as the plain decimal string used in JSON: 12500 -> "12.500"."""
    if cur.digits == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), cur.scale)
    return f"{sign}{whole}.{frac:0{cur.digits}d}"


def display(minor: int, cur: Currency, locale: str = "en") -> str:
    """Localized money for people (receipts, UI): "KWD 12.500", "‏12٫500 د.ك.‏"."""
    try:
        return format_currency(to_decimal(minor, cur), cur.code, locale=locale)
    except UnknownLocaleError:
        return format_currency(to_decimal(minor, cur), cur.code, locale="en")


def percent_of(minor: int, percent: Fraction | Decimal | int) -> int:
    """`percent` % of `minor`, rounded half-up to a whole minor unit."""
    ratio = percent if isinstance(percent, Fraction) else Fraction(percent)
    # integer arithmetic on the exact fraction: called for every line of every sale
    return _half_up(minor * ratio.numerator, 100 * ratio.denominator)


def _half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator (> 0) rounded half away from zero."""
    whole, rest = divmod(abs(numerator), denominator)
    if 2 * rest >= denominator:
        whole += 1
    return -whole if numerator < 0 else whole


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split `total` in proportion to `weights` by largest remainder.

    The parts add up to `total` exactly; ties go to the earlier weight.
    """
    if total == 0 or not weights:
        return [0] * len(weights)
    base = sum(weights)
    if base <= 0:
        raise MoneyError("cannot allocate over lines that sum to zero")
    shares = [Fraction(total * w, base) for w in weights]
    parts = [int(s) for s in shares]  # floor for non-negative totals
    left = total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return parts


__all__ = [
    "Currency",
    "MoneyError",
    "allocate",
    "currency",
    "display",
    "fmt",
    "parse",
    "percent_of",
    "to_decimal",
]
