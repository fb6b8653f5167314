"""What the panels say, as Rich text built from the ledger's JSON.

Kept apart from the widgets so the wording is tested and reused (member
screen, benchmark) without a running app.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ledger import money
from ledger.clock import last_day
from ledger.config import Config, DiscountProgram, MembershipProgram, PointsProgram, StampsProgram


def stamp_grid(stamps: int, per_reward: int) -> str:
    filled = max(0, min(stamps, per_reward))
    return "●" * filled + "○" * (per_reward - filled)


def tier_name(cfg: Config, tier_id: str | None) -> str:
    for level in cfg.tiers.levels:
        if level.id == tier_id:
            return level.name
    return "no tier"


def member_panel(cfg: Config, view: dict[str, Any], redeem: dict[str, int | None] | None = None, profile: dict[str, str] | None = None,
                 redeemed: dict[str, int] | None = None) -> Text:
    """The member panel of a tapped, known card; `redeemed`: what the cart's quote takes, when known."""
    redeem = redeem or {}
    redeemed = redeemed or {}
    cur = cfg.currency.code
    member = view.get("member", {})
    out = Text()
    name = member.get("name") or "Member (no name)"
    out.append(name, style="bold")
    out.append("  ")
    out.append(f" {tier_name(cfg, member.get('tier')).upper()} ", style="bold reverse")
    out.append("\n")
    out.append(view["card"], style="dim")
    out.append(f"  since {member.get('since', '')}\n", style="dim")
    nxt = member.get("next_tier")
    if nxt:
        out.append(f"{nxt['spend_needed']} {cur} more to {tier_name(cfg, nxt['id'])}\n", style="dim")
    programs = view.get("programs", {})
    for pid, state in programs.items():
        program = cfg.programs.get(pid)
        if isinstance(program, StampsProgram):
            out.append(f"\n{program.name}\n", style="bold")
            out.append(stamp_grid(state["stamps"], state["stamps_per_reward"]), style="green")
            out.append(f" {state['stamps']}/{state['stamps_per_reward']}\n")
            if state["rewards"]:
                used = redeem.get(pid)
                if pid in redeem:
                    out.append(f"  reward applied ({used or 1} of {state['rewards']})\n", style="bold green")
                else:
                    out.append(f"  {state['rewards']} {'reward' if state['rewards'] == 1 else 'rewards'} ready: F4 applies\n", style="bold yellow")
            else:
                out.append(f"  {state['to_next_reward']} more to a free one\n")
        elif isinstance(program, PointsProgram):
            out.append(f"\n{program.name} ", style="bold")
            out.append(f"{state['balance']} = {grouped(state['value'])} {cur}\n")
            if pid in redeem:
                asked = redeem[pid]
                taken = asked if asked is not None else redeemed.get(pid)
                out.append(f"  redeeming {taken} points\n" if taken is not None else "  redeeming all that fits\n", style="bold green")
            elif state["balance"] >= program.step_points:
                out.append("  F5 redeems points\n", style="yellow")
            for lot in state.get("expiring", []):
                out.append(f"  {lot['points']} valid until {last_day(lot['on'])}\n", style="bold red")
        elif isinstance(program, DiscountProgram):
            out.append(f"\n{program.name} ", style="bold")
            out.append(f"{state['percent']}% off\n")
        elif isinstance(program, MembershipProgram) and state.get("active"):
            out.append(f"\n{program.name} ", style="bold")
            out.append(f"{state['percent']}% until {state['until']}\n")
    if profile:
        out.append("\nProfile on payment: " + ", ".join(profile) + "\n", style="cyan")
    return out


def unknown_panel(card_id: str, profile: dict[str, str], bonus: int) -> Text:
    out = Text()
    out.append("New card\n", style="bold")
    out.append(card_id + "\n", style="dim")
    out.append("\nEnrolled when the sale is paid.\n")
    if profile:
        out.append("Profile: " + ", ".join(f"{k} {v}" for k, v in profile.items()) + "\n", style="cyan")
    else:
        extra = f" (+{bonus} points)" if bonus else ""
        out.append(f"F3 adds name, phone, birthday{extra}\n", style="yellow")
    return out


def refusal_panel(card_id: str, message: str) -> Text:
    out = Text()
    out.append(" CARD REFUSED \n", style="bold white on red")
    out.append(card_id + "\n\n", style="dim")
    out.append(message + "\n", style="bold red")
    return out


def empty_panel(demo: bool) -> Text:
    out = Text()
    out.append("No card\n", style="bold")
    out.append("\nAsk the customer to tap their card.\n")
    out.append("F2 taps a demo card\n" if demo else "F2 types a card number\n", style="dim")
    return out


def grouped(amount: str) -> str:
    """A decimal string as the cashier reads it: thousands grouped (17,234,500 IRR; 5,744.850 KWD), as on the receipt."""
    sign, digits = ("-", amount[1:]) if amount.startswith("-") else ("", amount)
    whole, dot, fraction = digits.partition(".")
    if not whole.isdecimal():
        return amount  # "…" and the like: shown as they are
    return f"{sign}{int(whole):,}{dot}{fraction}"


def totals_text(quote: dict[str, Any] | None, cfg: Config, error: str | None = None) -> Text:
    cur = cfg.currency.code
    out = Text()
    if error:
        out.append(error, style="bold red")
        return out
    if not quote:
        out.append(f"Total {cur} {money.fmt(0, cfg.currency)}", style="bold")  # 0.000 in KWD, 0 in IRR
        return out
    out.append(f"Subtotal {grouped(quote['subtotal'])}")
    if quote["discount"].strip("0."):
        out.append(f"  off -{grouped(quote['discount'])}", style="green")
    out.append("\n")
    out.append(f"TOTAL {cur} {grouped(quote['total'])}", style="bold")
    earned = quote.get("earned") or {}
    if earned:
        out.append("\nearns " + ", ".join(f"{v} {_unit(cfg, k, v)}" for k, v in earned.items()), style="dim")
    return out


def _unit(cfg: Config, pid: str, n: int) -> str:
    program = cfg.programs.get(pid)
    if isinstance(program, StampsProgram):
        return "stamp" if n == 1 else "stamps"
    if isinstance(program, PointsProgram):
        return "point" if n == 1 else "points"
    return pid
