"""config.toml: load, validate, and turn into typed settings (ledger/settings.py).

Every key is documented in docs/config.md. A bad file is answered by one
`ConfigError` naming the file, the dotted key, the line where known and, for
an unknown key, the closest known one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import stat
import tomllib
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from . import money, tomlpos
from .money import Currency, MoneyError
from .settings import (
    ID_PATTERN,
    LOCALES,
    MAX_PERIOD_DAYS,
    MAX_TIER_WINDOW_DAYS,
    RESERVED_PROGRAM_IDS,
    WEEKDAY_NAMES,
    WEEKDAYS,
    Bonuses,
    CatalogItem,
    Config,
    DiscountProgram,
    DiscountStep,
    Eligibility,
    LedgerConfig,
    ManagerConfig,
    MembershipProgram,
    OfflineConfig,
    PointsProgram,
    PrinterConfig,
    Program,
    Promotion,
    ReaderConfig,
    StampsProgram,
    StoreConfig,
    SyncConfig,
    Tier,
    TiersConfig,
)
from .tomltable import ConfigError, Ctx, Table, closest

__all__ = [
    "LOCALES",
    "WEEKDAYS",
    "Bonuses",
    "CatalogItem",
    "Config",
    "ConfigError",
    "DiscountProgram",
    "DiscountStep",
    "Eligibility",
    "LedgerConfig",
    "ManagerConfig",
    "MembershipProgram",
    "OfflineConfig",
    "PointsProgram",
    "PrinterConfig",
    "Program",
    "Promotion",
    "ReaderConfig",
    "StampsProgram",
    "StoreConfig",
    "SyncConfig",
    "Tier",
    "TiersConfig",
    "load",
    "loads",
]




MAX_CONFIG_BYTES = 4_000_000


def load(path: str | Path) -> Config:
    """Read and validate a config file; raises ConfigError."""
    file = Path(path)
    try:
        mode = file.stat().st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            # opening a named pipe waits for a writer that may never come: the command would hang
            raise ConfigError(str(file), "", "is a named pipe or a socket, not a file; the config is a TOML file")
        with file.open("rb") as f:  # a device or a runaway file is not read to its end
            raw_text = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw_text) > MAX_CONFIG_BYTES:
            raise ConfigError(str(file), "", f"is larger than {MAX_CONFIG_BYTES // 1_000_000} MB: not a config file")
    except FileNotFoundError:
        raise ConfigError(str(file), "", "no such config file (pass --config PATH or set LOYALTY_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(str(file), "", f"cannot read: {exc.strerror}") from None
    try:
        text = raw_text.decode("utf-8-sig")  # a byte-order mark, as some Windows editors write, is not content
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
    ctx = Ctx(str(file), tomlpos.key_lines(text))
    return _build(Table(ctx, "", data), file)


def _build(root: Table, file: Path) -> Config:
    base = file.resolve().parent

    s = root.table("store", required=True)
    cur_code = s.text("currency", required=True)
    try:
        cur = money.currency(cur_code)
    except MoneyError as exc:
        raise s.ctx.error(s.key("currency"), str(exc), closest(cur_code.upper(), money.known_currencies())) from None
    tz = s.text("timezone", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise s.ctx.error(s.key("timezone"), f"unknown time zone {tz!r} (IANA name such as Asia/Kuwait)",
                          closest(tz, available_timezones())) from None
    for key in ("id", "terminal"):
        if not re.fullmatch(ID_PATTERN, s.text(key, required=True)):
            raise s.error(key, "letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit"
                               " (it is part of the chain's terminal ids and of receipt numbers)")
    store = StoreConfig(
        id=s.text("id", required=True),
        terminal=s.text("terminal", required=True),
        name=s.text("name", ""),
        currency=cur,
        locale=s.choice("locale", LOCALES, "en"),
        timezone=tz,
        address=s.strings("address"),
        digits=s.choice("digits", ("latn", "native"), "latn") if s.has("digits") else None,  # type: ignore[arg-type]
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
        debounce_ms=rd.integer("debounce_ms", 800, minimum=0, maximum=60_000),
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
    server = sy.opt_text("server")
    if server and (problem := server_url_problem(server)):
        raise sy.error("server", f"must be the server's http:// or https:// URL (such as http://10.0.0.2:8765): {problem}")
    sync = SyncConfig(
        server=server,
        token_file=_path(base, token) if token else None,
        interval_seconds=sy.integer("interval_seconds", 60, minimum=1, maximum=86_400),
        timeout_s=sy.number("timeout_s", 10.0),
        retry_for_s=sy.number("retry_for_s", 15.0, maximum=600.0),
    )
    sy.done()

    of = root.table("offline")
    offline = OfflineConfig(
        max_snapshot_age_hours=of.integer("max_snapshot_age_hours", 24, minimum=0, maximum=24 * 366),
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
    folded: dict[str, str] = {}
    rows: list[tuple[Table, CatalogItem]] = []
    for t in root.tables("catalog"):
        sku = t.text("sku", required=True)
        if "*" in sku or sku != sku.strip() or not sku:  # LAT*3 is three lattes on the command line
            raise t.error("sku", f"SKU {sku!r} may not hold '*' or start or end with a space (SKU*QTY means a quantity)")
        if sku.casefold() in folded:
            same = folded[sku.casefold()]
            raise t.error("sku", f"SKU {sku!r} appears twice in the catalog" + (f" (as {same!r}: SKUs are matched whatever their case)" if same != sku else ""))
        folded[sku.casefold()] = sku
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
        rows.append((t, item))
    for t, item in rows:
        # a code typed at the till is a SKU first: a barcode spelt like another item's SKU could never be rung up
        if item.barcode and item.barcode.casefold() in folded and folded[item.barcode.casefold()] != item.sku:
            raise t.error("barcode", f"barcode {item.barcode!r} is item {folded[item.barcode.casefold()]!r}'s SKU")

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
    promotions: list[Promotion] = []
    for t in root.tables("promotion"):
        promotion = _promotion(t, programs)
        if any(p.id == promotion.id for p in promotions):
            raise t.error("id", f"promotion id {promotion.id!r} appears twice")
        promotions.append(promotion)
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
        promotions=tuple(promotions),
        bonuses=bonuses,
        rules_version=digest,
    )


def _width(pr: Table) -> int:
    value = pr.integer("paper_width_mm", 80)
    if value not in (58, 80):
        raise pr.error("paper_width_mm", f"must be 58 or 80, not {value}")
    return value


def _path(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _program(t: Table, cur: Currency, catalog: dict[str, CatalogItem]) -> Program:
    pid = t.text("id", required=True)
    kind = t.choice("kind", ("stamps", "points", "discount", "membership"), "stamps") if t.has("kind") else None
    if kind is None:
        raise t.error("kind", "is required (stamps, points, discount or membership)")
    name = t.text("name", pid)
    names = t.names()
    if kind == "stamps":
        reward = t.table("reward", required=True)
        reward.choice("kind", ("free_item",), "free_item")
        reward_eligible = Eligibility(frozenset(reward.strings("categories")), frozenset(_skus(reward.strings("skus"), catalog)))
        _check_eligibility(reward, reward_eligible, catalog)
        max_value = reward.amount("max_value", cur) if reward.has("max_value") else None
        reward_name = reward.text("name", required=True) if reward.has("name") else None
        reward_names = reward.names()
        if reward_names and not reward_name:
            raise reward.error("name", "is required beside names (the English word the translations stand for)")
        reward.done()
        return StampsProgram(
            id=pid,
            name=name,
            stamps_per_reward=t.integer("stamps_per_reward", required=True, minimum=1, maximum=1000),
            per=t.choice("per", ("item", "visit"), "item"),  # type: ignore[arg-type]
            eligible=t.eligibility("eligible", catalog),
            reward_eligible=reward_eligible,
            reward_max_value=max_value,
            names=names,
            reward_name=reward_name,
            reward_names=reward_names,
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
                raise mult.ctx.error(mult.key(cat), f"no catalog item has category {cat!r}", closest(cat, sorted(known_categories)))
            multipliers[cat] = mult.ratio(cat, Fraction(1))
        mult.done()
        earn.done()
        redeem = t.table("redeem", required=True)
        step_points = redeem.integer("step_points", required=True, minimum=1)
        step_value = redeem.amount("step_value", cur, required=True)
        if step_value <= 0:
            raise redeem.error("step_value", "must be more than zero")
        min_points = redeem.integer("min_points", step_points, minimum=0)
        if min_points % step_points:
            raise redeem.error("min_points", f"must be a whole number of steps ({step_points} points), not {min_points}")
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
            expire_after_days=t.opt_integer("expire_after_days", minimum=1, maximum=MAX_PERIOD_DAYS),
            expiring_notice_days=t.integer("expiring_notice_days", 30, minimum=0, maximum=MAX_PERIOD_DAYS),
            names=names,
        )
    if kind == "discount":
        steps: list[DiscountStep] = []
        if t.has("percent") and t.has("graduated"):
            raise t.error("graduated", "give either percent (flat) or graduated, not both")
        if t.has("graduated"):
            given = t.tables("graduated")
            for g in given:
                steps.append(DiscountStep(g.amount("from", cur, required=True), g.ratio("percent", Fraction(0), maximum=Fraction(100))))
                g.done()
            if not steps:
                raise t.error("graduated", "needs at least one step")
            for g, (a, b) in zip(given[1:], itertools.pairwise(steps), strict=True):
                if b.from_spend <= a.from_spend:  # named at the step out of order, not at the program
                    raise g.error("from", "steps must be in ascending order of `from`")
            if steps[0].from_spend != 0:
                steps.insert(0, DiscountStep(0, Fraction(0)))
        else:
            if not t.has("percent"):
                raise t.error("percent", "is required (or give graduated steps)")
            steps.append(DiscountStep(0, t.ratio("percent", Fraction(0), maximum=Fraction(100))))
        return DiscountProgram(id=pid, name=name, eligible=t.eligibility("eligible", catalog), steps=tuple(steps), names=names)
    # membership
    [sku] = _skus((t.text("sku", required=True),), catalog)
    if sku not in catalog:
        raise t.error("sku", f"no catalog item has SKU {sku!r} (the membership is sold as a catalog item)")
    benefit = t.table("benefit", required=True)
    program = MembershipProgram(
        id=pid,
        name=name,
        sku=sku,
        period_days=t.integer("period_days", 365, minimum=1, maximum=MAX_PERIOD_DAYS),
        discount_percent=benefit.ratio("discount_percent", Fraction(0), maximum=Fraction(100)),
        points_multiplier=benefit.ratio("points_multiplier", Fraction(1), minimum=Fraction(1)),
        eligible=t.eligibility("eligible", catalog),
        names=names,
    )
    benefit.done()
    if not program.discount_percent and program.points_multiplier == 1:  # sold for a period of nothing
        raise benefit.ctx.error(benefit.path, "gives nothing: set discount_percent above 0 and/or points_multiplier above 1")
    return program


def server_url_problem(text: str) -> str | None:
    """What is wrong with a sync server URL, or None: a port past 65535 or a broken address would otherwise
    read as a server that does not answer."""
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError as exc:
        return f"{text!r} is not a URL ({exc})"
    if url.scheme not in ("http", "https") or not url.hostname:
        return f"{text!r} is not an http:// or https:// URL"
    if url.username or url.password:  # the till signs in with its token; a user:password@ would replace it
        return "it holds a user or password: give none (the till signs in with its [sync] token_file)"
    if port == 0:
        return f"{text!r} has port 0"
    return None


def _skus(given: tuple[str, ...], catalog: dict[str, CatalogItem]) -> list[str]:
    """SKUs as the catalog spells them: they are matched whatever their case, here as at the till."""
    spelt = {sku.casefold(): sku for sku in catalog}
    return [spelt.get(sku.casefold(), sku) for sku in given]


def _check_eligibility(t: Table, elig: Eligibility, catalog: dict[str, CatalogItem]) -> None:
    known = {item.category for item in catalog.values()}
    for cat in sorted(elig.categories):
        if cat not in known:
            raise t.error("categories", f"no catalog item has category {cat!r}")
    for sku in sorted(elig.skus):
        if sku not in catalog:
            raise t.error("skus", f"no catalog item has SKU {sku!r}")


def _tiers(t: Table, cur: Currency) -> TiersConfig:
    window = t.integer("window_days", 365, minimum=1, maximum=MAX_TIER_WINDOW_DAYS)
    levels: list[Tier] = []
    for lv in t.tables("level"):
        tid = lv.text("id", required=True)
        if tid in (level.id for level in levels):
            raise lv.error("id", f"tier id {tid!r} appears twice")
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
    for i, (a, b) in enumerate(itertools.pairwise(levels), start=1):
        if b.min_spend <= a.min_spend:
            raise t.ctx.error(f"{t.key('level')}[{i}].min_spend", f"levels must be in ascending order of min_spend ({b.id!r} after {a.id!r})")
    return TiersConfig(window, tuple(levels))


def _promotion(t: Table, programs: dict[str, Program]) -> Promotion:
    pid = t.text("id", required=True)
    days: set[int] = set()
    for i, wd in enumerate(t.strings("weekdays")):
        key = wd.strip().lower()
        names = WEEKDAYS if key in WEEKDAYS else WEEKDAY_NAMES
        if key not in names:
            raise t.ctx.error(f"{t.key('weekdays')}[{i}]", f"{wd!r} is not a weekday (mon..sun)", closest(key, WEEKDAYS + WEEKDAY_NAMES))
        days.add(names.index(key))
    targets = t.strings("programs")
    for target in targets:
        if not isinstance(programs.get(target), PointsProgram):
            points_ids = [p for p, v in programs.items() if isinstance(v, PointsProgram)]
            raise ConfigError(t.ctx.file, t.key("programs"), f"{target!r} is not a points program", tomlpos.line_of(t.ctx.lines, t.key("programs")), closest(target, points_ids))
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


def _required(t: Table, name: str) -> Fraction:
    raise t.error(name, "is required")


def _bonuses(t: Table, programs: dict[str, Program]) -> Bonuses:
    target = t.opt_text("program")
    points_ids = [p for p, v in programs.items() if isinstance(v, PointsProgram)]
    if target is None and points_ids:
        target = points_ids[0]
    elif target is not None and target not in points_ids:
        raise ConfigError(t.ctx.file, t.key("program"), f"{target!r} is not a points program", tomlpos.line_of(t.ctx.lines, t.key("program")), closest(target, points_ids))
    bonuses = Bonuses(
        program=target,
        welcome=t.integer("welcome", 0, minimum=0),
        profile_completed=t.integer("profile_completed", 0, minimum=0),
        birthday=t.integer("birthday", 0, minimum=0),
        birthday_window_days=t.integer("birthday_window_days", 7, minimum=1, maximum=366),
        referral_referrer=t.integer("referral_referrer", 0, minimum=0),
        referral_referee=t.integer("referral_referee", 0, minimum=0),
    )
    t.done()
    if target is None and any((bonuses.welcome, bonuses.profile_completed, bonuses.birthday, bonuses.referral_referrer, bonuses.referral_referee)):
        raise t.error("program", "bonuses need a points program to pay into")
    return bonuses
