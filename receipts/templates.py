"""Receipt templates: ledger data in, a `Document` out.

Every template reads only what the ledger recorded (a sale's JSON, a day's
totals), so a receipt printed again tomorrow says what it said today.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ledger.clock import last_day
from ledger.config import (
    Config,
    DiscountProgram,
    MembershipProgram,
    PointsProgram,
    Program,
    StampsProgram,
)

from .i18n import Lang, digits_setting
from .model import QR, Barcode, Cut, Document, Feed, Row, Rule, Stamps, Text

BONUS_LABELS = {
    "welcome": "Welcome bonus",
    "profile": "Profile bonus",
    "birthday": "Birthday bonus",
    "referral": "Referral bonus",
}


def lang_for(cfg: Config, locale: str | None = None, digits: str | None = None) -> Lang:
    loc = locale or os.environ.get("LOYALTY_RECEIPT_LOCALE") or cfg.store.locale
    configured = digits or getattr(cfg.store, "digits", None)
    return Lang(locale=loc, digits=digits_setting(configured), tz=cfg.store.tz)


def _new(kind: str, lang: Lang) -> Document:
    return Document(kind=kind, locale=lang.locale, direction="rtl" if lang.rtl else "ltr")


def _program_name(program: Program | None, pid: str, lang: Lang) -> str:
    if program is None:
        return pid
    return program.names.get(lang.locale, program.name)


def _source_name(cfg: Config, source: str, lang: Lang) -> str:
    """Who gave a discount: a program by its name, a tier's discount (source `tier:gold`) as "Tier Gold"."""
    if source.startswith("tier:"):
        return f"{lang._('Tier')} {_tier_name(cfg, source[5:], lang)}"
    return _program_name(cfg.programs.get(source), source, lang)


def _tier_name(cfg: Config, tier_id: str | None, lang: Lang) -> str:
    for level in cfg.tiers.levels:
        if level.id == tier_id:
            return level.names.get(lang.locale, level.name)
    return tier_id or ""


def _item_name(cfg: Config, sku: str, fallback: str, lang: Lang) -> str:
    item = cfg.catalog.get(sku)
    return item.label(lang.locale) if item else fallback


def _is_zero(amount: str) -> bool:
    return Decimal(amount) == 0


def _store_header(doc: Document, cfg: Config, lang: Lang, *, copy: bool) -> None:
    doc.add(Text(cfg.store.name, align="center", bold=True, size=2))
    for line in cfg.store.address:
        doc.add(Text(line, align="center"))
    if copy:
        doc.add(Feed(), Text(lang._("*** COPY ***"), align="center", bold=True, size=2))
    doc.add(Feed())


def stamp_caption(stamps: int, per_reward: int, lang: Lang) -> str:
    return f"{lang.num(stamps)}/{lang.num(per_reward)}"


def stamp_grid(stamps: int, per_reward: int) -> str:
    """The text form of a stamp card: ● ● ● ○ ○  3/5."""
    filled = max(0, min(stamps, per_reward))
    return " ".join(["●"] * filled + ["○"] * (per_reward - filled)) + f"  {stamps}/{per_reward}"


def qr_payload(card: str, receipt_number: str, seq: int | str, hash_prefix: str) -> str:
    """What the receipt's QR carries: enough to find the card and the exact ledger entry."""
    return f"LOYALTY:card={card};receipt={receipt_number};seq={seq};h={hash_prefix}"


def _free_item(cfg: Config, program: StampsProgram, lang: Lang) -> str:
    """What the reward is: as the config names it, else its one category ("coffee"), or the one or two items it is limited to."""
    if program.reward_name:
        return program.reward_names.get(lang.locale, program.reward_name)
    categories = sorted(program.reward_eligible.categories)
    skus = sorted(program.reward_eligible.skus)
    if len(categories) == 1 and not skus:
        return lang._(categories[0])
    if skus and not categories and len(skus) <= 2:
        return "/".join(_item_name(cfg, sku, sku, lang) for sku in skus)
    return lang._("reward")


def _loyalty_block(doc: Document, result: Mapping[str, Any], cfg: Config, lang: Lang) -> None:
    cur = result.get("currency", cfg.currency.code)
    earned: Mapping[str, int] = result.get("earned", {}) or {}
    redeemed: Mapping[str, int] = result.get("redeemed", {}) or {}
    issued: Mapping[str, int] = result.get("rewards_issued", {}) or {}
    doc.add(Text(lang._("Loyalty"), align="center", bold=True))
    doc.add(Row(lang._("Card"), result.get("card", "")))
    member = result.get("member", {}) or {}
    if member.get("tier"):
        doc.add(Row(lang._("Tier"), _tier_name(cfg, member["tier"], lang), bold=True))
    change = result.get("tier_change")
    if change and change.get("to"):
        doc.add(Text(lang._("New tier: {tier}", tier=_tier_name(cfg, change["to"], lang)), bold=True))
    nxt = member.get("next_tier")
    if nxt:
        doc.add(Text(lang._("{amount} more to {tier}", amount=lang.money(nxt["spend_needed"], cur),
                            tier=_tier_name(cfg, nxt["id"], lang))))
    for pid, state in (result.get("programs", {}) or {}).items():
        program = cfg.programs.get(pid)
        kind = state.get("kind")
        name = _program_name(program, pid, lang)
        if kind == "stamps":
            per = int(state["stamps_per_reward"])
            stamps = int(state["stamps"])
            doc.add(Rule(" "), Text(name, bold=True))
            doc.add(Stamps(stamps, per, stamp_caption(stamps, per, lang)))
            if earned.get(pid):
                doc.add(Row(lang._("Earned"), lang.signed(int(earned[pid]))))
            if redeemed.get(pid):
                doc.add(Row(lang._("Redeemed"), lang.signed(-int(redeemed[pid]))))
            if issued.get(pid):
                doc.add(Row(lang._("New rewards"), lang.signed(int(issued[pid]))))
            if state.get("rewards"):
                doc.add(Row(lang._("Rewards ready"), lang.num(int(state["rewards"])), bold=True))
            to_next = int(state.get("to_next_reward", per - stamps))
            item = _free_item(cfg, program, lang) if isinstance(program, StampsProgram) else lang._("reward")
            doc.add(Text(lang._("{n} more to a free {item}", n=to_next, item=item)))
        elif kind == "points":
            doc.add(Rule(" "), Text(name, bold=True))
            if earned.get(pid):
                doc.add(Row(lang._("Earned"), lang.signed(int(earned[pid]))))
            if redeemed.get(pid):
                doc.add(Row(lang._("Redeemed"), lang.signed(-int(redeemed[pid]))))
            if (result.get("expired") or {}).get(pid):  # lots come due, written off by this sale: the balance says why
                doc.add(Row(lang._("Expired"), lang.signed(-int(result["expired"][pid]))))
            for bonus in result.get("bonuses", []) or []:
                if bonus.get("program") == pid:
                    label = BONUS_LABELS.get(str(bonus.get("bonus")), "Bonus")
                    doc.add(Row(lang._(label), lang.signed(int(bonus["points"]))))
            doc.add(Row(lang._("New balance"), lang._("{points} pts", points=int(state["balance"])), bold=True))
            doc.add(Row(lang._("Worth"), lang.money(state["value"], cur)))
            if isinstance(program, PointsProgram) and program.step_points:
                doc.add(Text(lang._("{points} pts = {value}", points=program.step_points,
                                    value=lang.money(_fmt_minor(program.step_value, cfg), cur))))
            for lot in state.get("expiring", []) or []:
                doc.add(Text(lang._("{points} pts valid until {date}", points=int(lot["points"]), date=lang.day(last_day(lot["on"])))))
        elif kind == "discount":
            percent = state.get("percent")
            if not percent:
                continue
            doc.add(Rule(" "), Row(name, lang._("{percent} off", percent=lang.percent(percent)), bold=True))
            step = state.get("next")
            if step and isinstance(program, DiscountProgram):
                doc.add(Text(lang._("{amount} more to {percent} off", amount=lang.money(step["spend_needed"], cur),
                                    percent=lang.percent(step["percent"]))))
        elif kind == "membership" and state.get("active") and isinstance(program, MembershipProgram):
            doc.add(Rule(" "), Row(name, lang._("until {date}", date=lang.day(state.get("until") or ""))))


def _fmt_minor(minor: int, cfg: Config) -> str:
    from ledger import money

    return money.fmt(minor, cfg.currency)


def sale_receipt(result: Mapping[str, Any], cfg: Config, *, copy: bool = False, lang: Lang | None = None) -> Document:
    """The customer's receipt: lines, totals, and what the sale did to each balance."""
    lang = lang or lang_for(cfg)
    cur = result.get("currency", cfg.currency.code)
    rc: Mapping[str, Any] = result.get("receipt", {}) or {}
    doc = _new("sale", lang)
    _store_header(doc, cfg, lang, copy=copy)
    doc.add(Row(lang._("Receipt"), str(rc.get("number", ""))))
    doc.add(Row(lang._("Date"), lang.local_time(str(rc.get("ts", "")))))
    if result.get("refunded"):
        doc.add(Text(lang._("REFUNDED"), align="center", bold=True, size=2))
    doc.add(Rule())
    for ln in result.get("lines", []):
        name = _item_name(cfg, ln["sku"], ln["name"], lang)
        qty = int(ln["qty"])
        times = "×" if lang.rtl else "x"  # printers' code pages lack ×; raster lines have it
        doc.add(Row(name if qty == 1 else f"{lang.num(qty)} {times} {name}", lang.money(ln["amount"], cur)))
        if qty != 1:
            doc.add(Text("  " + lang._("{qty} at {price}", qty=qty, price=lang.money(ln["unit_price"], cur))))
        if not _is_zero(ln.get("reward", "0")):
            doc.add(Row("  " + lang._("Free (reward)"), lang.negative(ln["reward"], cur)))
    doc.add(Rule())
    doc.add(Row(lang._("Subtotal"), lang.money(result["subtotal"], cur)))
    for source, amount in (result.get("discounts", {}) or {}).items():
        if _is_zero(amount):
            continue
        doc.add(Row("  " + _source_name(cfg, source, lang), lang.negative(amount, cur)))
    doc.add(Row(lang._("TOTAL"), lang.money(result["total"], cur), bold=True, size=2))
    doc.add(Rule("="))
    _loyalty_block(doc, result, cfg, lang)
    doc.add(Rule())
    number, seq, hash_prefix = str(rc.get("number", "")), rc.get("seq", ""), str(rc.get("hash", ""))
    doc.add(QR(qr_payload(str(result.get("card", "")), number, seq, hash_prefix)))
    doc.add(Text(lang._("Receipt {number}", number=number), align="center"))
    doc.add(Text(lang.ltr(f"#{seq} · {hash_prefix}"), align="center"))
    doc.add(Text(lang._("Thank you!"), align="center", bold=True))
    doc.add(Cut())
    return doc


def refund_slip(result: Mapping[str, Any], cfg: Config, *, copy: bool = False, lang: Lang | None = None) -> Document:
    """What a refund took back from each balance."""
    lang = lang or lang_for(cfg)
    doc = _new("refund", lang)
    _store_header(doc, cfg, lang, copy=copy)
    doc.add(Text(lang._("REFUND"), align="center", bold=True, size=2))
    # the sale's receipt number is what the customer holds (an id's first characters say nothing)
    doc.add(Row(lang._("Receipt"), lang.ltr(str(result.get("receipt") or result.get("sale", "")))))
    doc.add(Row(lang._("Card"), lang.ltr(str(result.get("card", "")))))
    if result.get("ts"):
        doc.add(Row(lang._("Date"), lang.local_time(str(result["ts"]))))
    if result.get("total") is not None:
        doc.add(Row(lang._("Amount"), lang.money(str(result["total"]), str(result.get("currency", cfg.currency.code))), bold=True))
    doc.add(Rule())
    for pid, moved in _config_order(cfg, result.get("reversed", {}) or {}):
        name = _program_name(cfg.programs.get(pid), pid, lang)
        # accounts in one order too: a copy read back from the ledger (keys sorted) lists them as the original did
        for account, amount in sorted(moved.items(), key=lambda item: (_ACCOUNT_ORDER.get(item[0], len(_ACCOUNT_ORDER)), item[0])):
            if account == "until":  # a membership taken back: the last day it has left, or none
                doc.add(Row(name, lang._("until {date}", date=lang.day(amount)) if amount else lang._("not active")))
            elif account == "points":  # the program's name says it is points
                doc.add(Row(name, lang.signed(int(amount))))
            else:
                doc.add(Row(f"{name}: {lang._(account)}", lang.signed(int(amount))))
    for pid, points in _config_order(cfg, result.get("expired") or {}):  # come due, written off first
        doc.add(Row(f"{_program_name(cfg.programs.get(pid), pid, lang)}: {lang._('Expired')}", lang.signed(-int(points))))
    doc.add(Rule())
    for pid, state in (result.get("programs", {}) or {}).items():
        name = _program_name(cfg.programs.get(pid), pid, lang)
        if state.get("kind") == "points":
            doc.add(Row(name, lang._("{points} pts", points=int(state["balance"]))))
        elif state.get("kind") == "stamps":
            doc.add(Row(name, stamp_caption(int(state["stamps"]), int(state["stamps_per_reward"]), lang)))
            if int(state.get("rewards") or 0) > 0:  # vouchers the member still holds, given back ones too
                doc.add(Row("  " + lang._("Rewards ready"), lang.num(int(state["rewards"]))))
    doc.add(Cut())
    return doc


_ACCOUNT_ORDER = {"stamps": 0, "rewards": 1, "points": 2, "until": 3}


def _config_order(cfg: Config, by_program: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Programs as the config lists them: a slip read back from the ledger (keys sorted) prints as the one made
    at the till."""
    rank = {pid: i for i, pid in enumerate(cfg.programs)}
    return sorted(by_program.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


# every figure `sync.endofday.z_report` gives per program, in its order: the paper adds up as the JSON does
Z_PROGRAM_LABELS = {
    "points_earned": "Points earned",
    "points_redeemed": "Points redeemed",
    "points_expired": "Points expired",
    "points_adjusted": "Points adjusted",
    "points_reversed": "Points reversed",
    "stamps_given": "Stamps given",
    "stamps_adjusted": "Stamps adjusted",
    "stamps_reversed": "Stamps reversed",
    "rewards_issued": "Rewards issued",
    "rewards_redeemed": "Rewards redeemed",
    "rewards_reversed": "Rewards reversed",
    "rewards_back_to_stamps": "Rewards back to stamps",
}

# shown when zero too; corrections and refunds only on days that had them
Z_ALWAYS = frozenset({"points_earned", "points_redeemed", "points_expired", "stamps_given", "rewards_issued", "rewards_redeemed"})


def z_report(totals: Mapping[str, Any], cfg: Config, *, copy: bool = False, lang: Lang | None = None) -> Document:
    """End of day from a plain dict of the day's totals, as `sync.endofday.z_report` makes it:
    day, closed_at, currency, sales {count, subtotal, discount, total}, discounts {program: amount},
    refunds {count, total}, net_total, enrolments, programs {program: {points_earned, ...}},
    events {first_seq, last_seq, count}, chain {head_seq, head_hash, server_acked_seq, server_acked_hash, in_sync}."""
    lang = lang or lang_for(cfg)
    cur = str(totals.get("currency", cfg.currency.code))
    sales: Mapping[str, Any] = totals.get("sales", {}) or {}
    refunds: Mapping[str, Any] = totals.get("refunds", {}) or {}
    doc = _new("z_report", lang)
    _store_header(doc, cfg, lang, copy=copy)
    # a day still open gives a reading (an X report), not the day's closing paper
    doc.add(Text(lang._("Z REPORT") if totals.get("closed_at") else lang._("X REPORT"), align="center", bold=True, size=2))
    doc.add(Row(lang._("Business day"), lang.day(str(totals.get("day", "")))))
    doc.add(Row(lang._("Store"), str(totals.get("store", cfg.store.id))))
    doc.add(Row(lang._("Terminal"), str(totals.get("terminal", cfg.store.terminal))))
    doc.add(Row(lang._("Closed"), lang.local_time(str(totals["closed_at"])) if totals.get("closed_at") else lang._("not closed")))
    doc.add(Rule())
    doc.add(Row(lang._("Sales"), lang.num(int(sales.get("count", 0)))))
    doc.add(Row(lang._("Subtotal"), lang.money(str(sales.get("subtotal", "0")), cur)))
    doc.add(Row(lang._("Discounts"), lang.negative(str(sales.get("discount", "0")), cur)))
    for pid, amount in (totals.get("discounts", {}) or {}).items():
        doc.add(Row("  " + _source_name(cfg, pid, lang), lang.negative(str(amount), cur)))
    doc.add(Row(lang._("Total"), lang.money(str(sales.get("total", "0")), cur)))
    doc.add(Row(lang._("Refunds"), f"{lang.num(int(refunds.get('count', 0)))} / {lang.negative(str(refunds.get('total', '0')), cur)}"))
    doc.add(Row(lang._("Net"), lang.money(str(totals.get("net_total", "0")), cur), bold=True))
    doc.add(Rule())
    doc.add(Row(lang._("New members"), lang.num(int(totals.get("enrolments", 0)))))
    for pid, moved in (totals.get("programs", {}) or {}).items():
        doc.add(Text(_program_name(cfg.programs.get(pid), pid, lang), bold=True))
        for key, label in Z_PROGRAM_LABELS.items():
            if key in moved and (moved[key] or key in Z_ALWAYS):
                doc.add(Row("  " + lang._(label), lang.num(int(moved[key]))))
    doc.add(Rule())
    events: Mapping[str, Any] = totals.get("events", {}) or {}
    chain: Mapping[str, Any] = totals.get("chain", {}) or {}
    doc.add(Row(lang._("Events"), lang.ltr(f"{events.get('first_seq') or 0}-{events.get('last_seq') or 0} ({events.get('count', 0)})")))
    doc.add(Row(lang._("Chain head"), lang.ltr(f"#{chain.get('head_seq', '')} {str(chain.get('head_hash', ''))[:12]}")))
    if chain.get("server_acked_seq"):
        doc.add(Row(lang._("Server ack"), lang.ltr(f"#{chain.get('server_acked_seq')} {str(chain.get('server_acked_hash', ''))[:12]}")))
    synced = lang._("stand-alone till") if chain.get("standalone") else lang._("in sync") if chain.get("in_sync") else lang._("not synced")
    doc.add(Text(synced, align="center", bold=True))
    doc.add(Cut())
    return doc


def voucher(data: Mapping[str, Any], cfg: Config, *, copy: bool = False, lang: Lang | None = None) -> Document:
    """A reward voucher: `data` has program, card, code, and optionally valid_until and sale."""
    lang = lang or lang_for(cfg)
    pid = str(data.get("program", ""))
    program = cfg.programs.get(pid)
    doc = _new("voucher", lang)
    _store_header(doc, cfg, lang, copy=copy)
    doc.add(Text(lang._("REWARD VOUCHER"), align="center", bold=True, size=2))
    doc.add(Text(_program_name(program, pid, lang), align="center", bold=True))
    if isinstance(program, StampsProgram):
        doc.add(Text(lang._("One free {item}", item=_free_item(cfg, program, lang)), align="center", size=2))
        if program.reward_max_value:
            doc.add(Text(lang._("up to {amount}", amount=lang.money(_fmt_minor(program.reward_max_value, cfg), cfg.currency.code)),
                         align="center"))
    doc.add(Row(lang._("Card"), str(data.get("card", ""))))
    if data.get("valid_until"):
        doc.add(Row(lang._("Valid until"), lang.day(str(data["valid_until"]))))
    code = str(data.get("code", ""))
    doc.add(Feed(), Barcode(code), Text(code, align="center"), Feed())
    doc.add(Text(lang._("Show this voucher or tap your card"), align="center"))
    doc.add(Cut())
    return doc


def enrolment_slip(data: Mapping[str, Any], cfg: Config, *, copy: bool = False, lang: Lang | None = None) -> Document:
    """Welcome slip for a new member: `data` is a card view (card show --json), with optional welcome_points."""
    lang = lang or lang_for(cfg)
    doc = _new("enrolment", lang)
    _store_header(doc, cfg, lang, copy=copy)
    doc.add(Text(lang._("Welcome!"), align="center", bold=True, size=2))
    doc.add(Text(lang._("Your loyalty card"), align="center"))
    card = str(data.get("card", ""))
    doc.add(Row(lang._("Card"), card))
    member = data.get("member", {}) or {}
    if member.get("name"):
        doc.add(Row(lang._("Name"), str(member["name"])))
    if member.get("since"):
        doc.add(Row(lang._("Member since"), lang.day(str(member["since"]))))
    if data.get("welcome_points"):
        doc.add(Row(lang._("Welcome bonus"), lang._("{points} pts", points=int(data["welcome_points"])), bold=True))
    doc.add(Rule())
    for program in cfg.programs.values():
        name = _program_name(program, program.id, lang)
        if isinstance(program, StampsProgram):
            doc.add(Text(lang._("{name}: {n} stamps = one free {item}", name=name, n=program.stamps_per_reward,
                                item=_free_item(cfg, program, lang))))
        elif isinstance(program, PointsProgram) and program.step_points:
            doc.add(Text(lang._("{name}: {points} pts = {value}", name=name, points=program.step_points,
                                value=lang.money(_fmt_minor(program.step_value, cfg), cfg.currency.code))))
    doc.add(Feed(), QR(f"LOYALTY:card={card}"), Cut())
    return doc


def printer_test(cfg: Config, *, lang: Lang | None = None, paper_mm: int | None = None) -> Document:
    """A test page: the store header, a ruler, a QR code, a barcode, the cut.

    The ruler is as long as a line of the configured paper and profile: on a printer
    set up to match, it fills one line exactly and its last digit touches the edge.
    """
    from receipts.escpos import paper_for

    lang = lang or lang_for(cfg)
    doc = _new("test", lang)
    _store_header(doc, cfg, lang, copy=False)
    doc.add(Text(lang._("PRINTER TEST"), align="center", bold=True, size=2))
    doc.add(Row(lang._("Printer"), cfg.printer.url))
    doc.add(Row(lang._("Paper"), lang.ltr(f"{paper_mm or cfg.printer.paper_width_mm} mm")))
    columns = paper_for(cfg, paper_mm).columns
    doc.add(Rule(), Text(("1234567890" * (columns // 10 + 1))[:columns]), Rule())
    doc.add(Row(lang._("Total"), lang.money("12.345", cfg.currency.code), bold=True))
    doc.add(Stamps(7, 10, stamp_caption(7, 10, lang)))
    doc.add(QR("LOYALTY:test"), Barcode("TEST-1234"), Cut())
    return doc
