"""`loyalty card ...`: show, enrol, block, unblock, replace, adjust, history."""

from __future__ import annotations

import argparse
from typing import Any

from ledger import lots
from ledger.clock import last_day
from ledger.errors import LoyaltyError

from ..context import Context, Output
from . import limit_arg, optional, signed_int
from .core import ask_chain


def register(sub: Any) -> None:
    p = sub.add_parser("card", help="card and member work")
    csub = p.add_subparsers(dest="card_command", metavar="ACTION", required=True)

    s = csub.add_parser("show", help="what the card holds: member, tier, every program")
    s.add_argument("card")
    s.set_defaults(handler=cmd_show)

    s = csub.add_parser("enrol", help="enrol a card, or complete its member's profile")
    s.add_argument("card")
    s.add_argument("--name")
    s.add_argument("--phone")
    s.add_argument("--birthday", metavar="MM-DD")
    s.add_argument("--referrer", metavar="CARD", help="the card of the member who referred this one")
    s.set_defaults(handler=cmd_enrol)

    s = csub.add_parser("block", help="refuse a card from now on (lost, stolen, abuse)")
    s.add_argument("card")
    s.add_argument("--reason", default="")
    s.set_defaults(handler=cmd_block)

    s = csub.add_parser("unblock", help="accept a blocked card again")
    s.add_argument("card")
    s.set_defaults(handler=cmd_unblock)

    s = csub.add_parser("replace", help="move a member, balances and history to a new card")
    s.add_argument("old")
    s.add_argument("new")
    s.set_defaults(handler=cmd_replace)

    s = csub.add_parser("adjust", help="correct a points or stamps balance (manager), with a reason")
    s.add_argument("card")
    s.add_argument("--program", required=True)
    s.add_argument("--amount", required=True, help="points or stamps to add (negative: take), a whole number")
    s.add_argument("--reason", required=True)
    s.set_defaults(handler=cmd_adjust)

    readers = optional("readers")  # `card issue` belongs to the readers feature (signed card numbers)
    if readers is not None and hasattr(readers, "register_card_issue"):
        readers.register_card_issue(csub)

    s = csub.add_parser("history", help="the card's member's events, newest first")
    s.add_argument("card")
    s.add_argument("--limit", type=limit_arg, default=50, help="the latest N events (default 50)")
    s.set_defaults(handler=cmd_history)


def describe(view: dict[str, Any]) -> str:
    member = view["member"]
    lines = [f"card {view['card']} ({view['status']})" + (f" -> {view['replaced_by']}" if view.get("replaced_by") else "")]
    who = member.get("name") or "anonymous member"
    lines.append(f"  member {member['id']} — {who}" + (f", tier {member['tier']}" if member.get("tier") else ""))
    for pid, st in view["programs"].items():
        kind = st["kind"]
        if kind == "stamps":
            lines.append(f"  {pid}: {st['stamps']}/{st['stamps_per_reward']} stamps, {st['rewards']} reward(s) ready")
        elif kind == "points":
            lines.append(f"  {pid}: {st['balance']} points (worth {st['value']})")
            for lot in st["expiring"]:
                lines.append(f"    {lot['points']} valid until {last_day(lot['on'])}")
        elif kind == "discount":
            lines.append(f"  {pid}: {st['percent']}% discount")
        elif kind == "membership":
            ended = f" (ended {st['until']})" if st.get("until") else ""
            lines.append(f"  {pid}: " + (f"active until {st['until']}" if st["active"] else f"not active{ended}"))
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace, ctx: Context) -> Output:
    ask_chain(ctx, args.card)
    view = ctx.service.card(args.card, ctx.now)
    return Output(view, describe(view))


def cmd_enrol(args: argparse.Namespace, ctx: Context) -> Output:
    ask_chain(ctx, args.card)  # a card another store enrolled is refused as enrolled, not made a second member
    if args.referrer:
        ask_chain(ctx, args.referrer)
    view = ctx.service.enrol(args.card, ctx.now, name=args.name, phone=args.phone, birthday=args.birthday, referrer=args.referrer)
    paid = [f"  bonus {b['bonus']}: +{b['points']} {b['program']}" for b in view["bonuses"]]
    return Output(view, "\n".join([describe(view), *paid]))


def cmd_block(args: argparse.Namespace, ctx: Context) -> Output:
    ask_chain(ctx, args.card)  # a card another store enrolled since the last pull is blocked here too
    view = ctx.service.block(args.card, ctx.now, args.reason)
    return Output(view, describe(view))


def cmd_unblock(args: argparse.Namespace, ctx: Context) -> Output:
    ask_chain(ctx, args.card)
    view = ctx.service.unblock(args.card, ctx.now)
    return Output(view, describe(view))


def cmd_replace(args: argparse.Namespace, ctx: Context) -> Output:
    ask_chain(ctx, args.old)
    view = ctx.service.replace(args.old, args.new, ctx.now)
    return Output(view, describe(view))


def cmd_adjust(args: argparse.Namespace, ctx: Context) -> Output:
    try:  # a number that reads but is not whole is refused as the value it is, as --redeem's are (not as usage)
        amount = signed_int(args.amount)
    except argparse.ArgumentTypeError as exc:
        raise LoyaltyError("bad_amount", f"--amount: {exc} of points or stamps") from None
    ask_chain(ctx, args.card)
    view = ctx.service.adjust(args.card, args.program, amount, args.reason, ctx.now)
    return Output(view, describe(view))


def cmd_history(args: argparse.Namespace, ctx: Context) -> Output:
    from ledger import money
    from ledger.cards import normalize
    from ledger.clock import local_time

    events = ctx.service.history(args.card, args.limit + 1)  # one more tells whether the list was cut
    more = len(events) > args.limit
    events = events[: args.limit]
    cfg = ctx.config

    def local(ts: str) -> str:  # people read the store's clock and zone; the JSON keeps the ledger's UTC time
        return local_time(ts, cfg.store.tz).strftime("%Y-%m-%d %H:%M %Z")

    def what(e: dict[str, Any]) -> str:
        payload = e["payload"] if isinstance(e["payload"], dict) else {}
        if e["account"] == "spend":
            return f"{'+' if e['amount'] >= 0 else '-'}{money.fmt(abs(e['amount']), cfg.currency)} {cfg.currency.code}"
        if e["kind"] == "sale" and "total" in payload:
            return f"total {money.fmt(int(payload['total']), cfg.currency)} {cfg.currency.code}"
        if e["kind"] == "tier":
            return f"{payload.get('from') or 'no tier'} -> {payload.get('to') or 'no tier'}"
        if "until" in payload and e["account"] is None:  # a membership bought, or one taken back
            return f"until {payload['until'] or '(ended)'}"
        if e["kind"] == lots.GIVEN:  # a lot come due gave points a redemption at another till had drawn
            return f"{-int(payload.get('remote', 0))} spent at another till"
        return f"{e['amount']:+d}" if e["account"] else ""

    text = "\n".join(
        f"{e['seq']:>6} {local(e['ts'])} {(e['receipt'] or '-'):<14} {e['kind']:<15} {e['program_id'] or '':<10} {e['account'] or '':<8} {what(e)}"
        for e in events
    )
    if more:
        text += f"\n(the latest {args.limit} events; --limit N shows more)"

    def as_json(e: dict[str, Any]) -> dict[str, Any]:
        """Money as decimal strings, as everywhere in the JSON: spend moves and a sale's totals."""
        out = dict(e)
        if e["account"] == "spend":
            out["amount"] = money.fmt(int(e["amount"]), cfg.currency)
        if e["kind"] == "sale" and isinstance(e["payload"], dict):
            out["payload"] = {k: money.fmt(int(v), cfg.currency) if k in ("subtotal", "discount", "total") else v
                              for k, v in e["payload"].items()}
        return out

    data = {"card": normalize(args.card), "events": [as_json(e) for e in events], "more": more}
    return Output(data, text or "no events")
