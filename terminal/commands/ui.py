"""`loyalty demo` and `loyalty run`: the cashier app (and the scripted demo walk-through)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.errors import LoyaltyError

from ..context import Context, Output


def _fast_frames() -> None:
    # Textual paces repaints at 60 per second by default; a till repaints only when something changed,
    # and at 240 a tap's member panel reaches the screen within a few milliseconds instead of up to 17
    os.environ.setdefault("TEXTUAL_FPS", "240")


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="the cashier app on the seeded demo store: simulated reader, preview printer")
    p.add_argument("--dir", help="where the demo keeps its config and ledger (default: a new temp dir); reused if seeded")
    p.add_argument("--script", action="store_true", help="no UI: a scripted walk through the demo store (enrol, sales, receipt); also what runs where there is no terminal")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("run", help="the cashier app on the configured reader, printer and ledger")
    p.set_defaults(handler=cmd_run)


def _clock(ctx: Context, tz: Any) -> Any:
    from ledger import clock

    if ctx.now_text is None:
        return lambda: clock.parse_now(None, tz)
    fixed: datetime = clock.parse_now(ctx.now_text, tz)
    return lambda: fixed


def cmd_demo(args: argparse.Namespace, ctx: Context) -> Output | int:
    from terminal.demo import open_demo

    workdir = Path(args.dir or tempfile.mkdtemp(prefix="loyalty-demo-"))
    if workdir.exists() and not workdir.is_dir():
        raise LoyaltyError("usage", f"--dir {workdir} is a file, not a folder")
    if not args.script and not (sys.stdin.isatty() and sys.stdout.isatty()):
        # the screen drawn into a pipe or a file would never end: the walk-through shows the same without one
        print("loyalty: no terminal here: the headless walk-through instead (loyalty demo --script)", file=sys.stderr)
        args.script = True
    if args.script:
        return _script(workdir, ctx)
    from ledger import config as config_mod
    from terminal.demo import DEMO_STORE

    tz = config_mod.load(DEMO_STORE).store.tz
    clock = _clock(ctx, tz)
    cfg, _path = open_demo(workdir, clock())
    _fast_frames()
    from terminal.app import DemoCard, build_app, build_services
    from terminal.demo import tap_list

    cards = [DemoCard(key, card, label) for key, card, label in tap_list()]
    services = build_services(cfg, clock=clock, demo_cards=cards, demo=True, reader_url="sim://", printer_url="preview://")
    try:
        build_app(services).run()
    finally:
        services.close()
    if _after_till(services):
        return 1
    print(f"demo ledger kept in {workdir} (loyalty demo --dir {workdir} continues it)")
    return 0


def _need_terminal(what: str) -> None:
    # the screen drawn into a file or a pipe would never end: say so instead
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise LoyaltyError("no_terminal", f"{what} draws the cashier screen and needs a terminal (stdin and stdout);"
                                          " run it in one (or tmux), or use the other commands in scripts")


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    cfg = ctx.config
    _need_terminal("loyalty run")
    _fast_frames()
    from terminal.app import build_app, build_services

    services = build_services(cfg, clock=_clock(ctx, cfg.store.tz))
    try:
        build_app(services).run()
    finally:
        services.close()
    return _after_till(services)


def _after_till(services: Any) -> int:
    """Exit 1, with the word where the day's sales went, when the ledger file was taken away under the till."""
    rescued = services.gate.loyalty.ledger.rescued
    if rescued is None:
        return 0
    where = f"what it held is saved as {rescued}" if isinstance(rescued, Path) else str(rescued)
    print(f"loyalty: the ledger {services.cfg.ledger.path} was deleted or replaced while the till ran; {where}."
          " Put the right ledger file back before starting again", file=sys.stderr)
    return 1


def _script(workdir: Path, ctx: Context) -> Output:
    """The headless walk-through: a new member, two sales, the second redeeming, its receipt."""
    from ledger import clock as clock_mod
    from ledger import config as config_mod
    from ledger.service import CheckoutRequest, Loyalty
    from receipts.text import render_sale_text
    from terminal.demo import prepare_dir

    store = prepare_dir(workdir)
    cfg = config_mod.load(store)
    service = Loyalty.open(cfg)
    try:
        now = clock_mod.parse_now(ctx.now_text, cfg.store.tz)
        out = [f"demo store {cfg.store.name}; ledger in {workdir}", ""]
        card = "uid:04A1B2C3D4E5F6"
        cur = cfg.currency.code

        def moved(figures: dict[str, int]) -> str:
            return ", ".join(f"{pid} {n:+d}" for pid, n in figures.items()) or "nothing"

        view = service.enrol(card, now, name="Fatima", phone="+965 5000 0000", birthday="03-21")
        points = view["programs"].get("points", {}).get("balance", 0)
        out.append(f"1. card {card} enrolled for Fatima, with a full profile: {points} points of welcome and profile bonuses")
        first = service.checkout(CheckoutRequest.from_cli(card, ["LAT*10", "CRO"], []), now)
        out.append(f"2. sale {first['receipt']['number']}: ten lattes and a croissant, {first['total']} {cur}; "
                   f"earned {moved(first['earned'])}")
        result = service.checkout(CheckoutRequest.from_cli(card, ["ESP", "SPN", "DAT"], ["coffee", "points"]), now)
        out.append(f"3. sale {result['receipt']['number']}: redeemed {', '.join(f'{n} {pid}' for pid, n in result['redeemed'].items())},"
                   f" {result['total']} {cur} to pay; its receipt:")
        out.append("")
        out.append(render_sale_text(result, cfg))
        out.append(f"try: LOYALTY_CONFIG={store} loyalty card show {card}")
        return Output({"dir": str(workdir), "sale": result}, "\n".join(out))
    finally:
        service.close()
