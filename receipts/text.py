"""Plain-text sale receipt (preview, CLI, tests).

Input is the sale's JSON result (`loyalty sale --json`), so a receipt can be
rendered again from the ledger at any time, exactly as it was at the sale.
"""

from __future__ import annotations

from typing import Any

from ledger.config import Config, PointsProgram, StampsProgram

WIDTH = 42


def _row(left: str, right: str, width: int = WIDTH) -> str:
    space = max(1, width - len(left) - len(right))
    return f"{left}{' ' * space}{right}"


def stamp_grid(stamps: int, per_reward: int) -> str:
    filled = max(0, min(stamps, per_reward))
    return " ".join(["●"] * filled + ["○"] * (per_reward - filled)) + f"  {stamps}/{per_reward}"


def render_sale_text(result: dict[str, Any], cfg: Config, *, copy: bool = False) -> str:
    cur = result["currency"]
    out: list[str] = []
    out.append(cfg.store.name.center(WIDTH).rstrip())
    for line in cfg.store.address:
        out.append(line.center(WIDTH).rstrip())
    if copy:
        out.append("*** COPY ***".center(WIDTH).rstrip())
    rc = result.get("receipt", {})
    out.append(_row(f"Receipt {rc.get('number', '')}", rc.get("ts", "")[:16].replace("T", " ")))
    out.append("-" * WIDTH)
    for ln in result["lines"]:
        label = f"{ln['qty']} x {ln['name']}"
        out.append(_row(label, ln["amount"]))
        if ln["reward"] != _zero(ln["reward"]):
            out.append(_row("   reward", "-" + ln["reward"]))
        if ln["discount"] != _zero(ln["discount"]):
            out.append(_row("   discount", "-" + ln["discount"]))
    out.append("-" * WIDTH)
    out.append(_row("Subtotal", result["subtotal"]))
    for source, amount in result.get("discounts", {}).items():
        out.append(_row(f"  {source}", "-" + amount))
    out.append(_row(f"TOTAL {cur}", result["total"]))
    out.append("=" * WIDTH)
    out.append(f"Card {result['card']}")
    tier = result.get("member", {}).get("tier")
    if tier:
        out.append(f"Tier: {tier}")
    earned, redeemed = result.get("earned", {}), result.get("redeemed", {})
    for pid, state in result.get("programs", {}).items():
        program = cfg.programs.get(pid)
        if isinstance(program, StampsProgram):
            out.append(f"{program.name}: {stamp_grid(state['stamps'], state['stamps_per_reward'])}")
            if state["rewards"]:
                out.append(f"  {state['rewards']} reward(s) ready")
            out.append(f"  {state['to_next_reward']} more to the next reward")
        elif isinstance(program, PointsProgram):
            moved = []
            if pid in earned:
                moved.append(f"+{earned[pid]}")
            if pid in redeemed:
                moved.append(f"-{redeemed[pid]}")
            out.append(_row(f"{program.name} {' '.join(moved)}".rstrip(), f"{state['balance']} = {state['value']} {cur}"))
            for lot in state.get("expiring", []):
                out.append(f"  {lot['points']} expire on {lot['on']}")
        elif state.get("kind") == "discount" and state.get("percent"):
            out.append(f"{pid}: {state['percent']}% off")
    for bonus in result.get("bonuses", []):
        out.append(f"Bonus ({bonus['bonus']}): +{bonus['points']}")
    out.append("-" * WIDTH)
    out.append(f"#{rc.get('seq', '')} {rc.get('hash', '')}")
    return "\n".join(out) + "\n"


def _zero(example: str) -> str:
    _whole, _, frac = example.partition(".")
    return "0" + ("." + "0" * len(frac) if frac else "")
