"""config.toml: load, validate, and turn into typed settings.

Every key is documented in docs/config.md. A bad file is answered by one
`ConfigError` naming the file, the dotted key, the line where known and, for
an unknown key, the closest known one.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import money, tomlpos
from .money import Currency, MoneyError

LOCALES = ("en", "ar", "fa")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RESERVED_PROGRAM_IDS = frozenset({"member"})

T = TypeVar("T")


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


# --------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class StoreConfig:
    id: str
    terminal: str
    name: str
    currency: Currency
    locale: str
    timezone: str
    address: tuple[str, ...] = ()
    digits: Literal["latn", "native"] = "latn"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    path: Path
    auto_enrol: bool = True


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    url: str = "sim://"
    require_signed: Literal["off", "warn", "require"] = "off"
    public_keys: tuple[str, ...] = ()
    debounce_ms: int = 800


@dataclass(frozen=True, slots=True)
class PrinterConfig:
    url: str = "preview://"
    profile: str = "default"
    paper_width_mm: int = 80
    timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class SyncConfig:
    server: str | None = None
    token_file: Path | None = None
    interval_seconds: int = 60
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class OfflineConfig:
    max_snapshot_age_hours: int = 24
    max_redeem_per_card_per_day: int = 0  # 0: no cap


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    pin_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class CatalogItem:
    sku: str
    name: str
    price: int
    category: str
    barcode: str | None = None
    names: dict[str, str] = field(default_factory=dict)

    def label(self, locale: str) -> str:
        return self.names.get(locale, self.name)


@dataclass(frozen=True, slots=True)
class Eligibility:
    """Which items count: by category or SKU; empty means every item."""

    categories: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()

    def matches(self, item: CatalogItem) -> bool:
        if not self.categories and not self.skus:
            return True
        return item.category in self.categories or item.sku in self.skus


@dataclass(frozen=True, slots=True)
class StampsProgram:
    id: str
    name: str
    stamps_per_reward: int
    per: Literal["item", "visit"]
    eligible: Eligibility
    reward_eligible: Eligibility
    reward_max_value: int | None
    names: dict[str, str] = field(default_factory=dict)
    kind: Literal["stamps"] = "stamps"


@dataclass(frozen=True, slots=True)
class PointsProgram:
    id: str
    name: str
    eligible: Eligibility
    per_amount: int | None  # minor units that earn `points`
    points: int
    per_item: int | None  # points per eligible unit, instead of per amount
    category_multipliers: dict[str, Fraction]
    step_points: int
    step_value: int
    min_redeem_points: int
    expire_after_days: int | None
    expiring_notice_days: int
    names: dict[str, str] = field(default_factory=dict)
    kind: Literal["points"] = "points"

    def value_of(self, points: int) -> int:
        """What `points` are worth when redeemed in whole steps."""
        if points <= 0:
            return 0
        return (points // self.step_points) * self.step_value


@dataclass(frozen=True, slots=True)
class DiscountStep:
    from_spend: int
    percent: Fraction


@dataclass(frozen=True, slots=True)
class DiscountProgram:
    id: str
    name: str
    eligible: Eligibility
    steps: tuple[DiscountStep, ...]  # ascending by from_spend; first starts at 0
    names: dict[str, str] = field(default_factory=dict)
    kind: Literal["discount"] = "discount"

    def percent_for(self, spend: int) -> Fraction:
        percent = Fraction(0)
        for step in self.steps:
            if spend >= step.from_spend:
                percent = step.percent
        return percent

    def next_step(self, spend: int) -> DiscountStep | None:
        for step in self.steps:
            if spend < step.from_spend:
                return step
        return None


@dataclass(frozen=True, slots=True)
class MembershipProgram:
    id: str
    name: str
    sku: str
    period_days: int
    discount_percent: Fraction
    points_multiplier: Fraction
    eligible: Eligibility
    names: dict[str, str] = field(default_factory=dict)
    kind: Literal["membership"] = "membership"


Program = StampsProgram | PointsProgram | DiscountProgram | MembershipProgram


@dataclass(frozen=True, slots=True)
class Tier:
    id: str
    name: str
    min_spend: int
    points_multiplier: Fraction
    discount_percent: Fraction
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TiersConfig:
    window_days: int = 365
    levels: tuple[Tier, ...] = ()  # ascending by min_spend

    def tier_for(self, spend: int) -> Tier | None:
        current = None
        for level in self.levels:
            if spend >= level.min_spend:
                current = level
        return current

    def next_tier(self, spend: int) -> Tier | None:
        for level in self.levels:
            if spend < level.min_spend:
                return level
        return None


@dataclass(frozen=True, slots=True)
class Promotion:
    id: str
    name: str
    multiplier: Fraction
    start: date | None
    end: date | None
    weekdays: frozenset[int]  # 0 = Monday; empty = every day
    programs: frozenset[str]  # empty = every points program

    def active_on(self, day: date) -> bool:
        if self.start and day < self.start:
            return False
        if self.end and day > self.end:
            return False
        return not self.weekdays or day.weekday() in self.weekdays


@dataclass(frozen=True, slots=True)
class Bonuses:
    program: str | None = None
    welcome: int = 0
    profile_completed: int = 0
    birthday: int = 0
    birthday_window_days: int = 7
    referral_referrer: int = 0
    referral_referee: int = 0


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    store: StoreConfig
    ledger: LedgerConfig
    reader: ReaderConfig
    printer: PrinterConfig
    sync: SyncConfig
    offline: OfflineConfig
    manager: ManagerConfig
    catalog: dict[str, CatalogItem]
    programs: dict[str, Program]
    tiers: TiersConfig
    promotions: tuple[Promotion, ...]
    bonuses: Bonuses
    rules_version: str

    @property
    def currency(self) -> Currency:
        return self.store.currency

    def item(self, code: str) -> CatalogItem | None:
        """An item by SKU (case-insensitive) or by barcode."""
        found = self.catalog.get(code) or self.catalog.get(code.upper())
        if found:
            return found
        for item in self.catalog.values():
            if item.barcode == code:
                return item
        return None

    def programs_of(self, kind: type[T]) -> list[T]:
        return [p for p in self.programs.values() if isinstance(p, kind)]

    def membership_for_sku(self, sku: str) -> MembershipProgram | None:
        for program in self.programs_of(MembershipProgram):
            if program.sku == sku:
                return program
        return None


# ----------------------------------------------------------------- validation


class _Ctx:
    def __init__(self, file: str, lines: dict[str, int]):
        self.file = file
        self.lines = lines

    def error(self, key: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(self.file, key, message, tomlpos.line_of(self.lines, key), hint)


class _Table:
    """A TOML table being read: typed getters, and unknown keys refused at `done`."""

    def __init__(self, ctx: _Ctx, path: str, data: Any):
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
        """A required key is absent: a misspelt key nearby is the likelier story."""
        typo = _closest(name, [k for k in self.data if isinstance(k, str)])
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
            hint = _closest(value, choices)
            raise ConfigError(
                self.ctx.file,
                self.key(name),
                f"must be one of {', '.join(choices)}, not {value!r}",
                tomlpos.line_of(self.ctx.lines, self.key(name)),
                hint,
            )
        return value

    def integer(self, name: str, default: int | None = None, *, required: bool = False, minimum: int | None = None) -> int:
        value = self._get(name, int, "a whole number", default, required)
        if value is not None and minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}, not {value}")
        return value  # type: ignore[no-any-return]

    def opt_integer(self, name: str, *, minimum: int | None = None) -> int | None:
        if name not in self.data:
            self.seen.add(name)
            return None
        return self.integer(name, minimum=minimum)

    def number(self, name: str, default: float) -> float:
        value = self._get(name, (int, float), "a number", default, False)
        return float(value)

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
        except (InvalidOperation, ValueError):
            raise self.error(name, f"must be a number, not {value!r}") from None
        if exact < minimum or (maximum is not None and exact > maximum):
            bound = f"between {_num(minimum)} and {_num(maximum)}" if maximum is not None else f"at least {_num(minimum)}"
            raise self.error(name, f"must be {bound}, not {value}")
        return exact

    def day(self, name: str) -> date | None:
        self.seen.add(name)
        if name not in self.data:
            return None
        value = self.data[name]
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(name, f"must be a date such as 2026-12-31, not {value!r}")

    def table(self, name: str, *, required: bool = False) -> _Table:
        self.seen.add(name)
        if name not in self.data:
            if required:
                raise self.missing(name)
            return _Table(self.ctx, self.key(name), {})
        return _Table(self.ctx, self.key(name), self.data[name])

    def tables(self, name: str) -> list[_Table]:
        self.seen.add(name)
        value = self.data.get(name, [])
        if not isinstance(value, list):
            raise self.error(name, f"must be an array of tables ([[{self.key(name)}]]), not {_tname(value)}")
        return [_Table(self.ctx, f"{self.key(name)}[{i}]", entry) for i, entry in enumerate(value)]

    def names(self, name: str = "names") -> dict[str, str]:
        sub = self.table(name)
        out: dict[str, str] = {}
        for loc in list(sub.data):
            if loc not in LOCALES:
                raise sub.ctx.error(sub.key(loc), f"is not a receipt language ({', '.join(LOCALES)})", _closest(loc, LOCALES))
            out[loc] = sub.text(loc, required=True)
        sub.done()
        return out

    def eligibility(self, name: str, catalog: dict[str, CatalogItem]) -> Eligibility:
        sub = self.table(name)
        categories = frozenset(sub.strings("categories"))
        skus = frozenset(sub.strings("skus"))
        known_categories = {item.category for item in catalog.values()}
        for cat in sorted(categories):
            if cat not in known_categories:
                raise sub.ctx.error(sub.key("categories"), f"no catalog item has category {cat!r}", _closest(cat, sorted(known_categories)))
        for sku in sorted(skus):
            if sku not in catalog:
                raise sub.ctx.error(sub.key("skus"), f"no catalog item has SKU {sku!r}", _closest(sku, sorted(catalog)))
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
                    _closest(name, known),
                )


def _closest(word: str, choices: Any) -> str | None:
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


# ------------------------------------------------------------------- loading


def load(path: str | Path) -> Config:
    """Read and validate a config file; raises ConfigError."""
    file = Path(path)
    try:
        raw_text = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(file), "", "no such config file (pass --config PATH or set LOYALTY_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(str(file), "", f"cannot read: {exc.strerror}") from None
    try:
        text = raw_text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(file), "", f"is not UTF-8 text (byte {exc.start})") from None
    return loads(text, file)


def loads(text: str, file: Path) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's tomllib puts the position only in the message text
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(found.group(1)) if found else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) + (f" (column {found.group(2)})" if found else "")
        raise ConfigError(str(file), "", f"is not valid TOML: {message}", line) from None
    ctx = _Ctx(str(file), tomlpos.key_lines(text))
    return _build(_Table(ctx, "", data), file)


def _build(root: _Table, file: Path) -> Config:
    base = file.resolve().parent

    s = root.table("store", required=True)
    cur_code = s.text("currency", required=True)
    try:
        cur = money.currency(cur_code)
    except MoneyError as exc:
        raise s.error("currency", str(exc)) from None
    tz = s.text("timezone", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise s.error("timezone", f"unknown time zone {tz!r} (IANA name such as Asia/Kuwait)") from None
    store = StoreConfig(
        id=s.text("id", required=True),
        terminal=s.text("terminal", required=True),
        name=s.text("name", ""),
        currency=cur,
        locale=s.choice("locale", LOCALES, "en"),
        timezone=tz,
        address=s.strings("address"),
        digits=s.choice("digits", ("latn", "native"), "latn"),  # type: ignore[arg-type]
    )
    s.done()
    if not store.name:
        store = StoreConfig(store.id, store.terminal, store.id, store.currency, store.locale, store.timezone, store.address, store.digits)

    lg = root.table("ledger")
    ledger = LedgerConfig(path=_path(base, lg.text("path", "var/ledger.db")), auto_enrol=lg.boolean("auto_enrol", True))
    lg.done()

    rd = root.table("reader")
    reader = ReaderConfig(
        url=rd.text("url", "sim://"),
        require_signed=rd.choice("require_signed", ("off", "warn", "require"), "off"),  # type: ignore[arg-type]
        public_keys=rd.strings("public_keys"),
        debounce_ms=rd.integer("debounce_ms", 800, minimum=0),
    )
    rd.done()

    pr = root.table("printer")
    printer = PrinterConfig(
        url=pr.text("url", "preview://"),
        profile=pr.text("profile", "default"),
        paper_width_mm=_width(pr),
        timeout_s=pr.number("timeout_s", 5.0),
    )
    pr.done()

    sy = root.table("sync")
    token = sy.opt_text("token_file")
    sync = SyncConfig(
        server=sy.opt_text("server"),
        token_file=_path(base, token) if token else None,
        interval_seconds=sy.integer("interval_seconds", 60, minimum=1),
        timeout_s=sy.number("timeout_s", 10.0),
    )
    sy.done()

    of = root.table("offline")
    offline = OfflineConfig(
        max_snapshot_age_hours=of.integer("max_snapshot_age_hours", 24, minimum=0),
        max_redeem_per_card_per_day=of.integer("max_redeem_per_card_per_day", 0, minimum=0),
    )
    of.done()

    mg = root.table("manager")
    pin = mg.opt_text("pin_sha256")
    if pin is not None and (len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin.lower())):
        raise mg.error("pin_sha256", "must be the 64 hex digits of SHA-256 of the PIN")
    manager = ManagerConfig(pin_sha256=pin.lower() if pin else None)
    mg.done()

    catalog: dict[str, CatalogItem] = {}
    barcodes: dict[str, str] = {}
    for t in root.tables("catalog"):
        sku = t.text("sku", required=True)
        if sku in catalog:
            raise t.error("sku", f"SKU {sku!r} appears twice in the catalog")
        item = CatalogItem(
            sku=sku,
            name=t.text("name", required=True),
            price=t.amount("price", cur, required=True),
            category=t.text("category", "other"),
            barcode=t.opt_text("barcode"),
            names=t.names(),
        )
        if item.barcode:
            if item.barcode in barcodes:
                raise t.error("barcode", f"barcode {item.barcode!r} is also item {barcodes[item.barcode]!r}")
            barcodes[item.barcode] = sku
        t.done()
        catalog[sku] = item

    programs: dict[str, Program] = {}
    for t in root.tables("program"):
        program = _program(t, cur, catalog)
        if program.id in programs:
            raise t.error("id", f"program id {program.id!r} appears twice")
        if program.id in RESERVED_PROGRAM_IDS:
            raise t.error("id", f"program id {program.id!r} is reserved")
        programs[program.id] = program
        t.done()

    tiers = _tiers(root.table("tiers"), cur)
    promotions = tuple(_promotion(t, programs) for t in root.tables("promotion"))
    bonuses = _bonuses(root.table("bonuses"), programs)
    root.done()

    rules = {
        "currency": cur.code,
        "catalog": {k: [v.price, v.category] for k, v in sorted(catalog.items())},
        "programs": root.data.get("program", []),
        "tiers": root.data.get("tiers", {}),
        "promotion": root.data.get("promotion", []),
        "bonuses": root.data.get("bonuses", {}),
    }
    digest = hashlib.sha256(json.dumps(rules, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Config(
        path=file,
        store=store,
        ledger=ledger,
        reader=reader,
        printer=printer,
        sync=sync,
        offline=offline,
        manager=manager,
        catalog=catalog,
        programs=programs,
        tiers=tiers,
        promotions=promotions,
        bonuses=bonuses,
        rules_version=digest,
    )


def _width(pr: _Table) -> int:
    value = pr.integer("paper_width_mm", 80)
    if value not in (58, 80):
        raise pr.error("paper_width_mm", f"must be 58 or 80, not {value}")
    return value


def _path(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _program(t: _Table, cur: Currency, catalog: dict[str, CatalogItem]) -> Program:
    pid = t.text("id", required=True)
    kind = t.choice("kind", ("stamps", "points", "discount", "membership"), "stamps") if t.has("kind") else None
    if kind is None:
        raise t.error("kind", "is required (stamps, points, discount or membership)")
    name = t.text("name", pid)
    names = t.names()
    if kind == "stamps":
        reward = t.table("reward", required=True)
        reward.choice("kind", ("free_item",), "free_item")
        reward_eligible = Eligibility(frozenset(reward.strings("categories")), frozenset(reward.strings("skus")))
        _check_eligibility(reward, reward_eligible, catalog)
        max_value = reward.amount("max_value", cur) if reward.has("max_value") else None
        reward.done()
        return StampsProgram(
            id=pid,
            name=name,
            stamps_per_reward=t.integer("stamps_per_reward", required=True, minimum=1),
            per=t.choice("per", ("item", "visit"), "item"),  # type: ignore[arg-type]
            eligible=t.eligibility("eligible", catalog),
            reward_eligible=reward_eligible,
            reward_max_value=max_value,
            names=names,
        )
    if kind == "points":
        earn = t.table("earn", required=True)
        per_item = earn.opt_integer("per_item", minimum=1)
        if per_item is None:
            per_amount = earn.amount("per_amount", cur, required=True)
            if per_amount <= 0:
                raise earn.error("per_amount", "must be more than zero")
            points = earn.integer("points", required=True, minimum=1)
        else:
            if earn.has("per_amount"):
                raise earn.error("per_amount", "give either per_amount (with points) or per_item, not both")
            per_amount, points = None, 0
        multipliers: dict[str, Fraction] = {}
        mult = earn.table("category_multipliers")
        known_categories = {item.category for item in catalog.values()}
        for cat in list(mult.data):
            if cat not in known_categories:
                raise mult.ctx.error(mult.key(cat), f"no catalog item has category {cat!r}", _closest(cat, sorted(known_categories)))
            multipliers[cat] = mult.ratio(cat, Fraction(1))
        mult.done()
        earn.done()
        redeem = t.table("redeem", required=True)
        step_points = redeem.integer("step_points", required=True, minimum=1)
        step_value = redeem.amount("step_value", cur, required=True)
        if step_value <= 0:
            raise redeem.error("step_value", "must be more than zero")
        min_points = redeem.integer("min_points", step_points, minimum=0)
        redeem.done()
        return PointsProgram(
            id=pid,
            name=name,
            eligible=t.eligibility("eligible", catalog),
            per_amount=per_amount,
            points=points,
            per_item=per_item,
            category_multipliers=multipliers,
            step_points=step_points,
            step_value=step_value,
            min_redeem_points=min_points,
            expire_after_days=t.opt_integer("expire_after_days", minimum=1),
            expiring_notice_days=t.integer("expiring_notice_days", 30, minimum=0),
            names=names,
        )
    if kind == "discount":
        steps: list[DiscountStep] = []
        if t.has("percent") and t.has("graduated"):
            raise t.error("graduated", "give either percent (flat) or graduated, not both")
        if t.has("graduated"):
            for g in t.tables("graduated"):
                steps.append(DiscountStep(g.amount("from", cur, required=True), g.ratio("percent", Fraction(0), maximum=Fraction(100))))
                g.done()
            if not steps:
                raise t.error("graduated", "needs at least one step")
            if steps[0].from_spend != 0:
                steps.insert(0, DiscountStep(0, Fraction(0)))
            for a, b in itertools.pairwise(steps):
                if b.from_spend <= a.from_spend:
                    raise t.error("graduated", "steps must be in ascending order of `from`")
        else:
            if not t.has("percent"):
                raise t.error("percent", "is required (or give graduated steps)")
            steps.append(DiscountStep(0, t.ratio("percent", Fraction(0), maximum=Fraction(100))))
        return DiscountProgram(id=pid, name=name, eligible=t.eligibility("eligible", catalog), steps=tuple(steps), names=names)
    # membership
    sku = t.text("sku", required=True)
    if sku not in catalog:
        raise t.error("sku", f"no catalog item has SKU {sku!r} (the membership is sold as a catalog item)")
    benefit = t.table("benefit", required=True)
    program = MembershipProgram(
        id=pid,
        name=name,
        sku=sku,
        period_days=t.integer("period_days", 365, minimum=1),
        discount_percent=benefit.ratio("discount_percent", Fraction(0), maximum=Fraction(100)),
        points_multiplier=benefit.ratio("points_multiplier", Fraction(1), minimum=Fraction(1)),
        eligible=t.eligibility("eligible", catalog),
        names=names,
    )
    benefit.done()
    return program


def _check_eligibility(t: _Table, elig: Eligibility, catalog: dict[str, CatalogItem]) -> None:
    known = {item.category for item in catalog.values()}
    for cat in sorted(elig.categories):
        if cat not in known:
            raise t.error("categories", f"no catalog item has category {cat!r}")
    for sku in sorted(elig.skus):
        if sku not in catalog:
            raise t.error("skus", f"no catalog item has SKU {sku!r}")


def _tiers(t: _Table, cur: Currency) -> TiersConfig:
    window = t.integer("window_days", 365, minimum=1)
    levels: list[Tier] = []
    for lv in t.tables("level"):
        tid = lv.text("id", required=True)
        levels.append(
            Tier(
                id=tid,
                name=lv.text("name", tid),
                min_spend=lv.amount("min_spend", cur, required=True),
                points_multiplier=lv.ratio("points_multiplier", Fraction(1), minimum=Fraction(1)),
                discount_percent=lv.ratio("discount_percent", Fraction(0), maximum=Fraction(100)),
                names=lv.names(),
            )
        )
        lv.done()
    t.done()
    ids = [lv.id for lv in levels]
    if len(set(ids)) != len(ids):
        raise t.error("level", "tier ids must be unique")
    levels.sort(key=lambda lv: lv.min_spend)
    return TiersConfig(window, tuple(levels))


def _promotion(t: _Table, programs: dict[str, Program]) -> Promotion:
    pid = t.text("id", required=True)
    days: set[int] = set()
    for i, wd in enumerate(t.strings("weekdays")):
        key = wd.lower()[:3]
        if key not in WEEKDAYS:
            raise t.ctx.error(f"{t.key('weekdays')}[{i}]", f"{wd!r} is not a weekday (mon..sun)", _closest(wd.lower(), WEEKDAYS))
        days.add(WEEKDAYS.index(key))
    targets = t.strings("programs")
    for target in targets:
        if not isinstance(programs.get(target), PointsProgram):
            points_ids = [p for p, v in programs.items() if isinstance(v, PointsProgram)]
            raise ConfigError(t.ctx.file, t.key("programs"), f"{target!r} is not a points program", tomlpos.line_of(t.ctx.lines, t.key("programs")), _closest(target, points_ids))
    promo = Promotion(
        id=pid,
        name=t.text("name", pid),
        multiplier=t.ratio("multiplier", Fraction(1), minimum=Fraction(1)) if t.has("multiplier") else _required(t, "multiplier"),
        start=t.day("from"),
        end=t.day("to"),
        weekdays=frozenset(days),
        programs=frozenset(targets),
    )
    if promo.start and promo.end and promo.end < promo.start:
        raise t.error("to", "ends before it starts")
    t.done()
    return promo


def _required(t: _Table, name: str) -> Fraction:
    raise t.error(name, "is required")


def _bonuses(t: _Table, programs: dict[str, Program]) -> Bonuses:
    target = t.opt_text("program")
    points_ids = [p for p, v in programs.items() if isinstance(v, PointsProgram)]
    if target is None and points_ids:
        target = points_ids[0]
    elif target is not None and target not in points_ids:
        raise ConfigError(t.ctx.file, t.key("program"), f"{target!r} is not a points program", tomlpos.line_of(t.ctx.lines, t.key("program")), _closest(target, points_ids))
    bonuses = Bonuses(
        program=target,
        welcome=t.integer("welcome", 0, minimum=0),
        profile_completed=t.integer("profile_completed", 0, minimum=0),
        birthday=t.integer("birthday", 0, minimum=0),
        birthday_window_days=t.integer("birthday_window_days", 7, minimum=1),
        referral_referrer=t.integer("referral_referrer", 0, minimum=0),
        referral_referee=t.integer("referral_referee", 0, minimum=0),
    )
    t.done()
    if target is None and any((bonuses.welcome, bonuses.profile_completed, bonuses.birthday, bonuses.referral_referrer, bonuses.referral_referee)):
        raise t.error("program", "bonuses need a points program to pay into")
    return bonuses
