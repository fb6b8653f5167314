"""A TOML table being validated: typed getters that name the file, the dotted
key and the line of every problem, and refuse unknown keys with a hint."""

from __future__ import annotations

import difflib
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from . import money, tomlpos
from .money import Currency, MoneyError
from .settings import LOCALES, MAX_COUNT, MAX_RATIO, CatalogItem, Eligibility


class ConfigError(Exception):
    """One clear message about a config file: file, key, line, hint."""

    def __init__(self, file: str, key: str, message: str, line: int | None = None, hint: str | None = None):
        self.file, self.key, self.line, self.hint = file, key, line, hint
        self.detail = message
        where = f"{file}:{line}" if line else file
        text = f"{where}: {key}: {message}" if key else f"{where}: {message}"
        if hint:
            text += f" (did you mean {hint!r}?)"
        super().__init__(text)





class Ctx:
    def __init__(self, file: str, lines: dict[str, int]):
        self.file = file
        self.lines = lines

    def error(self, key: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(self.file, key, message, tomlpos.line_of(self.lines, key), hint)


# keys valid beside a required key they resemble: `names` (the translations) is no misspelt `name`
_NOT_TYPOS = frozenset({"names"})


class Table:
    """A TOML table being read: typed getters, and unknown keys refused at `done`."""

    def __init__(self, ctx: Ctx, path: str, data: Any):
        if not isinstance(data, dict):
            raise ctx.error(path, f"must be a table, not {_tname(data)}")
        self.ctx, self.path, self.data = ctx, path, data
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name)

    def error(self, name: str, message: str) -> ConfigError:
        return self.ctx.error(self.key(name), message)

    def missing(self, name: str) -> ConfigError:
        """A required key is absent: a misspelt key nearby is the likelier story (not a key valid beside it)."""
        typo = closest(name, [k for k in self.data if isinstance(k, str) and k not in _NOT_TYPOS])
        if typo is not None and typo != name:
            return ConfigError(self.ctx.file, self.key(typo), "unknown key" + (f" in [{self.path}]" if self.path else ""),
                               tomlpos.line_of(self.ctx.lines, self.key(typo)), name)
        return self.error(name, "is required")

    def _get(self, name: str, kind: type | tuple[type, ...], what: str, default: Any, required: bool) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if required:
                raise self.missing(name)
            return default
        value = self.data[name]
        if isinstance(value, bool) and kind is not bool:
            raise self.error(name, f"must be {what}, not a boolean")
        if not isinstance(value, kind):
            raise self.error(name, f"must be {what}, not {_tname(value)}")
        return value

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self._get(name, str, "a string", default, required)
        if required and not str(value).strip():
            raise self.error(name, "must not be empty")
        return value  # type: ignore[no-any-return]

    def opt_text(self, name: str) -> str | None:
        return self._get(name, str, "a string", None, False)  # type: ignore[no-any-return]

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name, default)
        if value not in choices:
            hint = closest(value, choices)
            raise ConfigError(
                self.ctx.file,
                self.key(name),
                f"must be one of {', '.join(choices)}, not {value!r}",
                tomlpos.line_of(self.ctx.lines, self.key(name)),
                hint,
            )
        return value

    def integer(self, name: str, default: int | None = None, *, required: bool = False, minimum: int | None = None,
                maximum: int | None = None) -> int:
        value = self._get(name, int, "a whole number", default, required)
        maximum = MAX_COUNT if maximum is None else maximum
        if value is not None and minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}, not {value}")
        if value is not None and maximum is not None and value > maximum:
            raise self.error(name, f"must be at most {maximum}, not {value}")
        return value  # type: ignore[no-any-return]

    def opt_integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        if name not in self.data:
            self.seen.add(name)
            return None
        return self.integer(name, minimum=minimum, maximum=maximum)

    def number(self, name: str, default: float, *, maximum: float = 3600.0) -> float:
        """A duration in seconds: more than zero, finite (a timeout of -1, nan or inf would never work)."""
        value = float(self._get(name, (int, float), "a number", default, False))
        if not 0 < value <= maximum:
            raise self.error(name, f"must be more than 0 and at most {maximum:g}, not {value:g}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        return self._get(name, bool, "true or false", default, False)  # type: ignore[no-any-return]

    def strings(self, name: str) -> tuple[str, ...]:
        value = self._get(name, list, "a list of strings", [], False)
        for i, entry in enumerate(value):
            if not isinstance(entry, str):
                raise self.ctx.error(f"{self.key(name)}[{i}]", f"must be a string, not {_tname(entry)}")
        return tuple(value)

    def amount(self, name: str, cur: Currency, default: int | None = None, *, required: bool = False) -> int:
        self.seen.add(name)
        if name not in self.data:
            if required:
                raise self.missing(name)
            return default  # type: ignore[return-value]
        value = self.data[name]
        if not isinstance(value, str):
            raise self.error(name, f'must be a decimal string such as "1.500", not {_tname(value)} (amounts are quoted so no digit is lost)')
        try:
            return money.parse(value, cur)
        except MoneyError as exc:
            raise self.error(name, str(exc)) from None

    def ratio(self, name: str, default: Fraction, *, minimum: Fraction = Fraction(0), maximum: Fraction | None = None) -> Fraction:
        """A percent or multiplier: a number or a decimal string, kept exact."""
        self.seen.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.error(name, f"must be a number, not {_tname(value)}")
        try:
            exact = Fraction(Decimal(str(value)))
        except (InvalidOperation, ValueError, OverflowError):  # nan, inf
            raise self.error(name, f"must be a number, not {value!r}") from None
        # no rule needs more: a slip of the keyboard (1e12) must not mint points past any bound
        top = Fraction(MAX_RATIO) if maximum is None else maximum
        if exact < minimum or exact > top:
            bound = f"between {_num(minimum)} and {_num(top)}"
            raise self.error(name, f"must be {bound}, not {value}")
        return exact

    def day(self, name: str) -> date | None:
        self.seen.add(name)
        if name not in self.data:
            return None
        value = self.data[name]
        if isinstance(value, datetime):
            raise self.error(name, f"must be a date such as 2026-12-31, not a date and time ({value.isoformat()})")
        if isinstance(value, time):
            raise self.error(name, f"must be a date such as 2026-12-31, not a time of day ({value.isoformat()})")
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(name, f"must be a date such as 2026-12-31, not {value!r}")

    def table(self, name: str, *, required: bool = False) -> Table:
        self.seen.add(name)
        if name not in self.data:
            if required:
                raise self.missing(name)
            return Table(self.ctx, self.key(name), {})
        return Table(self.ctx, self.key(name), self.data[name])

    def tables(self, name: str) -> list[Table]:
        self.seen.add(name)
        value = self.data.get(name, [])
        if not isinstance(value, list):
            raise self.error(name, f"must be an array of tables ([[{self.key(name)}]]), not {_tname(value)}")
        return [Table(self.ctx, f"{self.key(name)}[{i}]", entry) for i, entry in enumerate(value)]

    def names(self, name: str = "names") -> dict[str, str]:
        sub = self.table(name)
        out: dict[str, str] = {}
        for loc in list(sub.data):
            if loc not in LOCALES:
                raise sub.ctx.error(sub.key(loc), f"is not a receipt language ({', '.join(LOCALES)})", closest(loc, LOCALES))
            out[loc] = sub.text(loc, required=True)
        sub.done()
        return out

    def eligibility(self, name: str, catalog: dict[str, CatalogItem]) -> Eligibility:
        sub = self.table(name)
        categories = frozenset(sub.strings("categories"))
        spelt = {sku.casefold(): sku for sku in catalog}  # matched whatever their case, here as at the till
        skus = frozenset(spelt.get(sku.casefold(), sku) for sku in sub.strings("skus"))
        known_categories = {item.category for item in catalog.values()}
        for cat in sorted(categories):
            if cat not in known_categories:
                raise sub.ctx.error(sub.key("categories"), f"no catalog item has category {cat!r}", closest(cat, sorted(known_categories)))
        for sku in sorted(skus):
            if sku not in catalog:
                raise sub.ctx.error(sub.key("skus"), f"no catalog item has SKU {sku!r}", closest(sku, sorted(catalog)))
        sub.done()
        return Eligibility(categories, skus)

    def done(self) -> None:
        for name in self.data:
            if name not in self.seen:
                known = sorted(self.seen)
                raise ConfigError(
                    self.ctx.file,
                    self.key(name),
                    "unknown key" + (f" in [{self.path}]" if self.path else ""),
                    tomlpos.line_of(self.ctx.lines, self.key(name)),
                    closest(name, known),
                )


def closest(word: str, choices: Any) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _tname(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return type(value).__name__


def _num(value: Fraction | None) -> str:
    if value is None:
        return ""
    return str(Decimal(value.numerator) / Decimal(value.denominator)).rstrip("0").rstrip(".") if value.denominator != 1 else str(value.numerator)


