"""Sale, refund, receipt, ledger and config commands."""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path
from typing import Any

import receipts
from ledger import verify as ledger_verify
from ledger.config import Config, load
from ledger.errors import LoyaltyError
from ledger.service import CheckoutRequest

from ..context import Context, Output
from . import optional


def register(sub: Any) -> None:
    p = sub.add_parser("init", help="create the ledger file (done by any command that needs it)")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("sale", help="a headless checkout; prints the receipt text, or JSON")
    p.add_argument("--card", required=True, help="card id: uid:…, ndef:…, em:…, code:… (bare text = code:)")
    p.add_argument("--item", action="append", required=True, metavar="SKU[*QTY]", help="an item, repeatable: SKU or barcode, LAT*3 or 3*LAT")
    p.add_argument("--redeem", action="append", default=[], metavar="PROGRAM[=AMOUNT]",
                   help="redeem rewards (stamps: vouchers, default 1) or points (default: as many steps as fit); repeatable")
    p.add_argument("--sale-id", help="idempotency key: retrying with the same id never charges twice")
    p.set_defaults(handler=cmd_sale)

    p = sub.add_parser("refund", help="reverse a sale's loyalty effects, once")
    p.add_argument("sale_id", metavar="SALE", help="the sale's id or receipt number (till-1-000042, or just 42)")
    p.set_defaults(handler=cmd_refund)

    p = sub.add_parser("receipt", help="render a sale's receipt again")
    p.add_argument("sale_id", metavar="SALE", help="the sale's id or receipt number (till-1-000042, or just 42)")
    p.add_argument("--format", choices=receipts.FORMATS, default="text")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--copy", action="store_true", help="mark the receipt as a COPY")
    p.set_defaults(handler=cmd_receipt)

    p = sub.add_parser("ledger", help="ledger maintenance")
    lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    v = lsub.add_parser("verify", help="hash chain, integrity_check, balances == replay of events")
    v.set_defaults(handler=cmd_verify)
    e = lsub.add_parser("expire", help="write the expiry of all due points (run by end of day)")
    e.set_defaults(handler=cmd_expire)

    p = sub.add_parser("check-config", help="validate the config file")
    p.set_defaults(handler=cmd_check_config)


def cmd_init(args: argparse.Namespace, ctx: Context) -> Output:
    path = ctx.config.ledger.path
    seq, head = ctx.service.ledger.head()
    return Output({"ledger": str(path), "events": seq, "head": head}, f"ledger {path}: {seq} events")


def cmd_sale(args: argparse.Namespace, ctx: Context) -> Output:
    check_printer_url(ctx.config)  # a sale prints: a config that names no printer is refused before it commits
    req = CheckoutRequest.from_cli(args.card, args.item, args.redeem, args.sale_id)
    ask_chain(ctx, args.card)
    clock_behind(ctx)
    result = ctx.service.checkout(req, ctx.now)
    _after(ctx, "after_sale", result)
    if ctx.as_json:
        return Output(result)
    from receipts.text import render_sale_text

    return Output(result, render_sale_text(result, ctx.config))


def cmd_refund(args: argparse.Namespace, ctx: Context) -> Output:
    check_printer_url(ctx.config)
    clock_behind(ctx)
    result = ctx.service.refund(args.sale_id, ctx.now)
    _after(ctx, "after_refund", result)
    lines = [f"refunded sale {result.get('receipt') or result['sale']}: {result['currency']} {result['total']} ({result['refund']})"]
    for pid, moved in result["reversed"].items():
        lines.append(f"  {pid}: " + ", ".join(f"until {amount or '(none left)'}" if acct == "until" else f"{acct} {amount:+d}"
                                              for acct, amount in moved.items()))
    return Output(result, "\n".join(lines))


def cmd_receipt(args: argparse.Namespace, ctx: Context) -> Output:
    result = ctx.service.sale(args.sale_id)
    data = receipts.render_sale(result, ctx.config, args.format, copy=args.copy)
    if args.out:
        _refuse_own_files(ctx, args.out)
        try:
            with open(args.out, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise LoyaltyError("io", f"cannot write {args.out}: {exc.strerror}") from None
        return Output({"sale": result["sale"], "out": args.out, "format": args.format, "bytes": len(data)}, f"wrote {args.out}")
    if args.format != "text":
        raise LoyaltyError("binary_output", f"--format {args.format} is binary: give --out FILE")
    text = data.decode("utf-8")
    return Output({"sale": result["sale"], "format": args.format, "receipt": text}, text)


def _refuse_own_files(ctx: Context, out: str) -> None:
    """--out never writes over the ledger (or its WAL) or the config: a slip of the tab key must not lose the till's sales."""
    ledger = ctx.config.ledger.path
    for own in (ledger, Path(f"{ledger}-wal"), Path(f"{ledger}-shm"), ctx.config_path):
        try:
            same = Path(out).resolve() == own.resolve() or (own.exists() and Path(out).exists() and os.path.samefile(out, own))
        except OSError:
            same = False
        if same:
            raise LoyaltyError("io", f"--out {out} is this till's {'config' if own == ctx.config_path else 'ledger'}: give another file")


def cmd_verify(args: argparse.Namespace, ctx: Context) -> Output:
    try:
        report = ledger_verify.verify(ctx.service.conn)
    except (sqlite3.DatabaseError, LoyaltyError) as exc:  # too damaged to open as a ledger: what SQLite finds is the answer
        if isinstance(exc, LoyaltyError) and exc.code != "ledger_damaged":
            raise
        report = _verify_damaged(ctx.config.ledger.path, exc)
    if report.ok:
        text = f"ledger ok: {report.events} events; " + ", ".join(f"{k} ok" for k in report.checks)
    else:
        text = "ledger verify FAILED:\n" + "\n".join(f"  {p}" for p in report.problems)
    problem = None if report.ok else ("verify_failed", f"ledger verify FAILED: {len(report.problems)} problem(s): {report.problems[0]}")
    return Output(report.as_json(), text, exit_code=0 if report.ok else 1, problem=problem)


def cmd_expire(args: argparse.Namespace, ctx: Context) -> Output:
    points = ctx.service.expire_all(ctx.now)
    return Output({"expired_points": points}, f"expired {points} points")


def _verify_damaged(path: Path, exc: Exception) -> ledger_verify.Report:
    """verify on a read-only connection that skips the ledger's own open (identity, migrations): a damaged page there
    is a problem to report, not a reason to report nothing."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.DatabaseError:
        conn = None
    if conn is not None:
        try:
            return ledger_verify.verify(conn)
        except sqlite3.DatabaseError:
            pass
        finally:
            conn.close()
    report = ledger_verify.Report()
    ledger_verify.check(report, "integrity", [f"integrity: cannot read the ledger: {exc}"])
    return report


def check_printer_url(cfg: Config) -> None:
    """The printer URL names a printer the drivers can open (nothing is connected): a typo shows now, not at the first sale."""
    from drivers.printers import PrinterError, open_printer
    from receipts.escpos import unknown_profile

    problem = unknown_profile(cfg.printer.profile)
    if problem:
        raise _url_error(cfg, "printer.profile", problem)
    try:
        open_printer(cfg.printer.url, profile=cfg.printer.profile, paper_mm=cfg.printer.paper_width_mm, timeout_s=cfg.printer.timeout_s)
    except PrinterError as exc:
        raise _url_error(cfg, "printer.url", str(exc)) from None


def _check_reader(cfg: Config) -> None:
    """The reader URL, its options and the signature keys are what the reader will accept (no device is opened:
    the drivers connect only when asked for events), so a typo shows now, not when the cashier app starts."""
    from drivers import identity
    from drivers.readers import ReaderError, open_configured

    try:
        identity.SignaturePolicy(cfg.reader.require_signed, cfg.reader.public_keys)
    except identity.KeyFormatError as exc:
        raise _url_error(cfg, "reader.public_keys", str(exc)) from None
    except ValueError as exc:
        raise _url_error(cfg, "reader.require_signed", str(exc)) from None
    try:
        open_configured(cfg.reader).close()
    except ReaderError as exc:
        raise _url_error(cfg, "reader.url", str(exc)) from None


def _url_error(cfg: Config, key: str, message: str) -> Exception:
    from ledger.tomlpos import key_lines, line_of
    from ledger.tomltable import ConfigError

    return ConfigError(str(cfg.path), key, message, line_of(key_lines(cfg.path.read_text(encoding="utf-8")), key))


def cmd_check_config(args: argparse.Namespace, ctx: Context) -> Output:
    cfg = load(ctx.config_path)
    check_printer_url(cfg)
    _check_reader(cfg)
    text = (
        f"{ctx.config_path}: ok — store {cfg.store.id}/{cfg.store.terminal}, {cfg.currency.code} "
        f"({cfg.currency.digits} digits), {len(cfg.catalog)} items, programs: {', '.join(cfg.programs) or 'none'}; "
        f"rules version {cfg.rules_version}"
    )
    return Output(
        {
            "ok": True,
            "file": str(ctx.config_path),
            "store": cfg.store.id,
            "terminal": cfg.store.terminal,
            "currency": cfg.currency.code,
            "digits": cfg.currency.digits,
            "items": len(cfg.catalog),
            "programs": {p.id: p.kind for p in cfg.programs.values()},
            "rules_version": cfg.rules_version,
        },
        text,
    )


def _after(ctx: Context, name: str, result: dict[str, Any]) -> None:
    """Hand a committed sale's or refund's print job to the printer feature (it never raises)."""
    printing = optional("printing")
    hook = getattr(printing, name, None) if printing else None
    if hook is not None:
        hook(ctx, result)


def ask_chain(ctx: Context, card: str) -> None:
    """A card this till does not know may be another store's member: asked before it is enrolled as a new one."""
    if ctx.config.sync.server:
        from sync.client import ask_chain_for_card

        ask_chain_for_card(ctx.service.conn, ctx.config, card, clock=(lambda: ctx.now) if ctx.now_text else None)


def clock_behind(ctx: Context, slack_s: float = 300.0) -> None:
    """A clock (or --now) earlier than the ledger's last event dates the sale, and its points' due days, in the past,
    perhaps on a day already closed: said on stderr; the sale goes on (the cashier app says it on screen)."""
    now, last = ctx.now, ctx.service.last_event_at()
    if last is not None and (last - now).total_seconds() > slack_s:
        tz = ctx.config.store.tz
        ctx.stderr_line("warning", "clock_behind", f"the time of this sale ({now.astimezone(tz):%Y-%m-%d %H:%M}) is earlier than"
                                                   f" the ledger's last event ({last.astimezone(tz):%Y-%m-%d %H:%M}):"
                                                   " check the till's date and time")
