"""`loyalty demo` and `loyalty run`."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from ..context import Context, Output

DEMO_STORE = Path(__file__).resolve().parent.parent / "demo_store.toml"


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="a scripted walk through the demo store (enrol, sales, receipt), on embedded defaults")
    p.add_argument("--dir", help="where the demo ledger lives (default: a new temp dir)")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace, ctx: Context) -> Output:
    from ledger import config as config_mod
    from ledger.service import CheckoutRequest, Loyalty
    from receipts.text import render_sale_text

    workdir = Path(args.dir or tempfile.mkdtemp(prefix="loyalty-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "config.toml"
    store.write_text(DEMO_STORE.read_text(encoding="utf-8"), encoding="utf-8")
    cfg = config_mod.load(store)
    service = Loyalty.open(cfg)
    try:
        now = ctx_now(ctx, cfg)
        out = [f"demo store {cfg.store.name}; ledger in {workdir}", ""]
        card = "uid:04A1B2C3D4E5F6"
        service.enrol(card, now, name="Fatima", phone="+965 5000 0000", birthday="03-21")
        service.checkout(CheckoutRequest.from_cli(card, ["LAT*10", "CRO"], []), now)
        result = service.checkout(CheckoutRequest.from_cli(card, ["ESP", "SPN", "DAT"], ["coffee", "points"]), now)
        out.append(render_sale_text(result, cfg))
        out.append(f"try: LOYALTY_CONFIG={store} loyalty card show {card}")
        return Output({"dir": str(workdir), "sale": result}, "\n".join(out))
    finally:
        service.close()


def ctx_now(ctx: Context, cfg: Any) -> Any:
    from ledger import clock

    return clock.parse_now(ctx.now_text, cfg.store.tz)
