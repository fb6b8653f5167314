"""The typed settings of a store: what config.toml says, after validation (ledger/config.py)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from operator import attrgetter
from pathlib import Path
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

from .money import Currency

LOCALES = ("en", "ar", "fa")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
RESERVED_PROGRAM_IDS = frozenset({"member"})
# the longest tier window: a sync pull carries this many days of a member's spend at the other tills
MAX_TIER_WINDOW_DAYS = 400
# a store or terminal id: it goes into the chain's terminal ids (store:terminal) and receipt numbers
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
# Ceilings that keep every sum in SQLite's 64-bit integers and every date before year 9999,
# whatever a config or a command asks for; each is far past what a store does.
MAX_COUNT = 1_000_000_000          # a count in the config (points, stamps, steps)
MAX_RATIO = 100                    # a multiplier in the config (a percent has its own bound of 100)
MAX_EARN = 1_000_000_000           # points or stamps one sale may earn in one program
MAX_ADJUST = 1_000_000_000         # points or stamps in one manager adjustment
MAX_QTY = 999                      # units of one item in a sale
MAX_LINES = 200                    # lines in a sale
MAX_MEMBERSHIP_DAYS = 100 * 365    # how far ahead a membership may be paid
MAX_PERIOD_DAYS = 3660             # a config's period in days (membership, expiry)
MAX_NAME = 80                      # characters in a member's name
MAX_REASON = 200                   # characters in a block's or an adjustment's reason

T = TypeVar("T")




@dataclass(frozen=True, slots=True)
class StoreConfig:
    id: str
    terminal: str
    name: str
    currency: Currency
    locale: str
    timezone: str
    address: tuple[str, ...] = ()
    digits: Literal["latn", "native"] | None = None  # None: not set ($LOYALTY_RECEIPT_DIGITS may choose, else Latin)

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
    retry_for_s: float = 15.0


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
    # what the reward is called on a receipt ("3 more to a free tea"), and per language; none: its category or items
    reward_name: str | None = None
    reward_names: dict[str, str] = field(default_factory=dict)


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


S = TypeVar("S")


def _reached(levels: tuple[S, ...], spend: int, threshold: Callable[[S], int]) -> S | None:
    """The last of `levels` (ascending by `threshold`) that `spend` has reached."""
    i = bisect_right(levels, spend, key=threshold)
    return levels[i - 1] if i else None


def _next(levels: tuple[S, ...], spend: int, threshold: Callable[[S], int]) -> S | None:
    """The first of `levels` that `spend` has not reached yet."""
    i = bisect_right(levels, spend, key=threshold)
    return levels[i] if i < len(levels) else None


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
        step = _reached(self.steps, spend, _FROM_SPEND)
        return step.percent if step else Fraction(0)

    def next_step(self, spend: int) -> DiscountStep | None:
        return _next(self.steps, spend, _FROM_SPEND)


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


_FROM_SPEND: Callable[[DiscountStep], int] = attrgetter("from_spend")
_MIN_SPEND: Callable[[Tier], int] = attrgetter("min_spend")


@dataclass(frozen=True, slots=True)
class TiersConfig:
    window_days: int = 365
    levels: tuple[Tier, ...] = ()  # ascending by min_spend

    def tier_for(self, spend: int) -> Tier | None:
        return _reached(self.levels, spend, _MIN_SPEND)

    def next_tier(self, spend: int) -> Tier | None:
        return _next(self.levels, spend, _MIN_SPEND)


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
    # programs by kind, asked for many times per sale
    _by_kind: dict[type, tuple[Program, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)
    # SKUs case-folded and barcodes, for item(); filled on first use
    _codes: dict[str, CatalogItem] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def currency(self) -> Currency:
        return self.store.currency

    def item(self, code: str) -> CatalogItem | None:
        """An item by SKU (case-insensitive) or by barcode."""
        found = self.catalog.get(code)
        if found:
            return found
        if not self._codes:
            for item in self.catalog.values():
                if item.barcode:
                    self._codes[item.barcode] = item
            for item in self.catalog.values():  # a SKU wins over a barcode spelled the same
                self._codes[item.sku.casefold()] = item
        return self._codes.get(code) or self._codes.get(code.casefold())

    def programs_of(self, kind: type[T]) -> tuple[T, ...]:
        found = self._by_kind.get(kind)
        if found is None:
            found = self._by_kind[kind] = tuple(p for p in self.programs.values() if isinstance(p, kind))
        return found  # type: ignore[return-value]  # filtered by kind above

    def membership_for_sku(self, sku: str) -> MembershipProgram | None:
        for program in self.programs_of(MembershipProgram):
            if program.sku == sku:
                return program
        return None


