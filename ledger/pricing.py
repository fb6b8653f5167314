"""The rules engine: what a cart costs and what it earns, as pure arithmetic.

No I/O here: `price_cart` takes the member's state before the sale and the
cart, and returns a `Plan` that the service writes in one transaction. The
order of operations is fixed and documented in README ("How a sale is
computed"):

1. lines are priced (quantity x unit price);
2. stamp rewards are applied, each to the cheapest eligible unit, capped at
   the reward's `max_value`;
3. one percent discount per line, the highest of the discount card (by
   cumulative spend before this sale), an active paid membership and the
   tier; percents do not stack;
4. points redeemed pay part of what is left, split over the lines by
   largest remainder;
5. earnings on what was paid in money: stamps per eligible unit not paid
   by a reward (or one per visit), points per amount (floored) or per item,
   times the category multiplier, the tier's, the membership's and the
   highest active promotion's.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from math import floor

from . import money
from .config import (
    CatalogItem,
    Config,
    DiscountProgram,
    MembershipProgram,
    PointsProgram,
    StampsProgram,
    Tier,
)
from .errors import LoyaltyError
from .settings import MAX_EARN, MAX_LINES, MAX_QTY


@dataclass(frozen=True, slots=True)
class MemberState:
    """What the rules need to know about a member before the sale."""

    stamps: dict[str, int] = field(default_factory=dict)  # program -> stamps
    rewards: dict[str, int] = field(default_factory=dict)  # program -> vouchers
    points: dict[str, int] = field(default_factory=dict)  # program -> points, this ledger + the chain
    spendable_rewards: dict[str, int] | None = None  # what may be redeemed now (offline escrow); None: all
    spendable_points: dict[str, int] | None = None
    spend: int = 0  # cumulative money paid, all time
    window_spend: int = 0  # money paid in the tier window
    memberships: frozenset[str] = frozenset()  # active paid memberships
    membership_until: dict[str, str] = field(default_factory=dict)  # program -> last day (active or not)


@dataclass(slots=True)
class Line:
    item: CatalogItem
    qty: int
    gross: int
    reward: int = 0  # paid by stamp rewards
    reward_units: int = 0
    discount: int = 0  # percent discount
    discount_source: str | None = None
    redeemed: int = 0  # paid by points
    percent: Fraction = Fraction(0)

    @property
    def net(self) -> int:
        return self.gross - self.reward - self.discount - self.redeemed

    @property
    def money_units(self) -> int:
        """Units paid (at least in part) in money: not by a reward, not wholly by points or a full discount."""
        left = self.qty - self.reward_units
        priced = self.gross - self.reward - self.discount
        if left <= 0 or priced <= 0:
            return 0
        # points cover whole units first: a unit counts as paid while any money is left on it
        return left - self.redeemed * left // priced


@dataclass(slots=True)
class Plan:
    lines: list[Line]
    tier: Tier | None
    stamps_earned: dict[str, int] = field(default_factory=dict)
    rewards_used: dict[str, int] = field(default_factory=dict)
    reward_value: dict[str, int] = field(default_factory=dict)
    points_earned: dict[str, int] = field(default_factory=dict)
    points_redeemed: dict[str, int] = field(default_factory=dict)
    points_redeemed_value: dict[str, int] = field(default_factory=dict)
    discounts: dict[str, int] = field(default_factory=dict)  # source -> amount
    memberships_bought: dict[str, int] = field(default_factory=dict)  # program -> periods

    @property
    def subtotal(self) -> int:
        return sum(line.gross for line in self.lines)

    @property
    def total(self) -> int:
        return sum(line.net for line in self.lines)

    @property
    def discount(self) -> int:
        return self.subtotal - self.total


def parse_item(spec: str) -> tuple[str, int]:
    """`SKU`, `SKU*QTY` or `QTY*SKU` (as a cashier types it; SKU*QTY when both sides are numbers)."""
    head, star, tail = spec.partition("*")
    if star and head.strip().isdecimal() and not tail.strip().isdecimal() and "*" not in tail:
        spec = f"{tail}*{head}"
    shown = shown_spec(spec)
    code, _, qty_text = spec.rpartition("*") if "*" in spec else (spec, "", "1")
    code = code.strip()
    if not code:
        raise LoyaltyError("bad_item", f"item {shown} has no SKU (expected SKU or SKU*QTY)")
    try:
        if not qty_text.strip().isdecimal():  # int() also takes "+5" and "1_000"; "²" is a digit but no number
            raise ValueError(qty_text)
        qty = int(qty_text)
    except ValueError:
        raise LoyaltyError("bad_item", f"quantity in {shown} must be a whole number from 1 to {MAX_QTY}") from None
    if qty < 1 or qty > MAX_QTY:
        raise LoyaltyError("bad_item", f"quantity in {shown} must be between 1 and {MAX_QTY}")
    return code, qty


def shown_spec(text: str, limit: int = 40) -> str:
    """A typed item as an error message quotes it: whole when short, its start when not (a scanner gone wild)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text)} characters)"


def price_cart(
    cfg: Config,
    items: list[tuple[str, int]],
    state: MemberState,
    redeem: dict[str, int | None],
    day: date,
) -> Plan:
    if not items:
        raise LoyaltyError("empty_sale", "a sale needs at least one item")
    if len(items) > MAX_LINES:
        raise LoyaltyError("bad_item", f"a sale takes at most {MAX_LINES} lines, not {len(items)}")
    lines: list[Line] = []
    per_sku: dict[str, int] = {}
    for code, qty in items:
        item = cfg.item(code)
        if item is None:
            hint = _closest(code, list(cfg.catalog))
            raise LoyaltyError("unknown_sku", f"no item with SKU or barcode {shown_spec(code)} in the catalog"
                                              + (f" (did you mean {hint!r}?)" if hint else ""))
        per_sku[item.sku] = per_sku.get(item.sku, 0) + qty
        if per_sku[item.sku] > MAX_QTY:
            raise LoyaltyError("bad_item", f"{item.sku}: {per_sku[item.sku]} in all, at most {MAX_QTY} of one item in a sale")
        lines.append(Line(item=item, qty=qty, gross=item.price * qty))

    for pid in redeem:
        if pid not in cfg.programs:
            hint = _closest(pid, list(cfg.programs))
            raise LoyaltyError("unknown_program", f"no program {pid!r}" + (f" (did you mean {hint!r}?)" if hint else f"; programs: {', '.join(cfg.programs)}"))
        if not isinstance(cfg.programs[pid], (StampsProgram, PointsProgram)):
            raise LoyaltyError("not_redeemable", f"program {pid!r} is a {cfg.programs[pid].kind} program: nothing to redeem")

    tier = cfg.tiers.tier_for(state.window_spend)
    plan = Plan(lines=lines, tier=tier)

    # 2. stamp rewards, cheapest eligible unit first
    for program in cfg.programs_of(StampsProgram):
        if program.id not in redeem:
            continue
        asked_rewards = redeem[program.id]
        wanted = 1 if asked_rewards is None else asked_rewards
        if wanted < 1:
            raise LoyaltyError("bad_amount", f"redeem {program.id}: the number of rewards must be at least 1")
        have = (state.spendable_rewards if state.spendable_rewards is not None else state.rewards).get(program.id, 0)
        if wanted > have:
            raise LoyaltyError("insufficient_balance", f"{program.id}: {wanted} reward(s) asked, {max(0, have)} ready"
                               + _stale(state.rewards.get(program.id, 0) >= wanted))
        units = sorted(
            (line.item.price, i)
            for i, line in enumerate(lines)
            if program.reward_eligible.matches(line.item)
            for _ in range(line.qty - line.reward_units)
        )
        if len(units) < wanted:
            raise LoyaltyError("no_eligible_item", f"{program.id}: the cart has {len(units)} item(s) the reward can pay for, {wanted} reward(s) asked")
        value_total = 0
        for price, i in units[:wanted]:
            value = min(price, program.reward_max_value) if program.reward_max_value is not None else price
            lines[i].reward += value
            lines[i].reward_units += 1
            value_total += value
        plan.rewards_used[program.id] = wanted
        plan.reward_value[program.id] = value_total
        plan.discounts[program.id] = value_total

    # 3. one percent per line: the best of discount card, membership, tier
    membership_skus = {p.sku for p in cfg.programs_of(MembershipProgram)}
    for line in lines:
        if line.item.sku in membership_skus:
            continue
        best, source = Fraction(0), None
        for dp in cfg.programs_of(DiscountProgram):
            if dp.eligible.matches(line.item):
                pct = dp.percent_for(state.spend)
                if pct > best:
                    best, source = pct, dp.id
        for mp in cfg.programs_of(MembershipProgram):
            active = mp.id in state.memberships or any(ln.item.sku == mp.sku for ln in lines)
            if active and mp.eligible.matches(line.item) and mp.discount_percent > best:
                best, source = mp.discount_percent, mp.id
        if tier is not None and tier.discount_percent > best:
            best, source = tier.discount_percent, f"tier:{tier.id}"
        if best > 0 and source is not None:
            line.percent = best
            line.discount = money.percent_of(line.gross - line.reward, best)
            line.discount_source = source
            if line.discount:  # a line a reward paid in full has nothing left to take a percent of
                plan.discounts[source] = plan.discounts.get(source, 0) + line.discount

    # 4. points pay part of what is left
    for pp in cfg.programs_of(PointsProgram):
        if pp.id not in redeem:
            continue
        due = sum(line.net for line in lines)
        have = (state.spendable_points if state.spendable_points is not None else state.points).get(pp.id, 0)
        asked = redeem[pp.id]
        if asked is None:
            steps = min(have // pp.step_points, due // pp.step_value)
            if steps * pp.step_points < max(pp.min_redeem_points, 1):
                if have < max(pp.step_points, pp.min_redeem_points):
                    why = (f"{max(0, have)} points, not enough to redeem (steps of {pp.step_points}, at least {pp.min_redeem_points})"
                           + _stale(state.points.get(pp.id, 0) >= max(pp.step_points, pp.min_redeem_points)))
                elif due < pp.step_value:
                    why = f"the amount due {money.fmt(due, cfg.currency)} is less than one step of {money.fmt(pp.step_value, cfg.currency)}"
                else:
                    why = (f"the amount due {money.fmt(due, cfg.currency)} takes at most {steps * pp.step_points} points,"
                           f" less than the {pp.min_redeem_points} a redemption needs")
                raise LoyaltyError("insufficient_balance", f"{pp.id}: {why}")
            points = steps * pp.step_points
        else:
            points = asked
            if points <= 0:
                raise LoyaltyError("bad_amount", f"redeem {pp.id}: points must be more than zero")
            if points % pp.step_points:
                raise LoyaltyError("bad_amount", f"redeem {pp.id}: points are redeemed in steps of {pp.step_points}, not {points}")
            if points < pp.min_redeem_points:
                raise LoyaltyError("bad_amount", f"redeem {pp.id}: at least {pp.min_redeem_points} points per redemption")
            if points > have:
                raise LoyaltyError("insufficient_balance", f"{pp.id}: {points} points asked, {max(0, have)} available"
                                   + _stale(state.points.get(pp.id, 0) >= points))
        value = pp.value_of(points)
        if value > due:
            raise LoyaltyError(
                "exceeds_due",
                f"{pp.id}: {points} points are worth {money.fmt(value, cfg.currency)}, more than the {money.fmt(due, cfg.currency)} due",
            )
        shares = money.allocate(value, [line.net for line in lines])
        for line, share in zip(lines, shares, strict=True):
            line.redeemed += share
        plan.points_redeemed[pp.id] = points
        plan.points_redeemed_value[pp.id] = value
        plan.discounts[pp.id] = plan.discounts.get(pp.id, 0) + value

    # 5. earnings on what was paid in money
    for program in cfg.programs_of(StampsProgram):
        paid_units = sum(line.money_units for line in lines if program.eligible.matches(line.item))
        earned = paid_units if program.per == "item" else (1 if paid_units > 0 else 0)
        if earned:
            plan.stamps_earned[program.id] = earned

    promo_by_program: dict[str, Fraction] = {}
    for promo in cfg.promotions:
        if promo.active_on(day):
            for pp in cfg.programs_of(PointsProgram):
                if not promo.programs or pp.id in promo.programs:
                    promo_by_program[pp.id] = max(promo_by_program.get(pp.id, Fraction(1)), promo.multiplier)
    member_mult = Fraction(1)
    for mp in cfg.programs_of(MembershipProgram):
        if mp.id in state.memberships or any(ln.item.sku == mp.sku for ln in lines):
            member_mult = max(member_mult, mp.points_multiplier)
    tier_mult = tier.points_multiplier if tier else Fraction(1)
    for pp in cfg.programs_of(PointsProgram):
        mult = tier_mult * member_mult * promo_by_program.get(pp.id, Fraction(1))
        base = Fraction(0)
        for line in lines:
            if not pp.eligible.matches(line.item):
                continue
            cat = pp.category_multipliers.get(line.item.category, Fraction(1))
            if pp.per_item is not None:
                base += Fraction(line.money_units * pp.per_item) * cat
            else:
                assert pp.per_amount is not None
                base += Fraction(line.net * pp.points, pp.per_amount) * cat
        earned = floor(base * mult)
        if earned > MAX_EARN:  # a rule that mints this much is a slip in the config, not a reward
            raise LoyaltyError("too_many_points", f"{pp.name}: this sale would earn {earned} points, more than {MAX_EARN}"
                                                  f" a sale may: check the program's earn rule in the config; nothing was written")
        if earned > 0:
            plan.points_earned[pp.id] = earned

    for mp in cfg.programs_of(MembershipProgram):
        periods = sum(line.qty for line in lines if line.item.sku == mp.sku)
        if periods:
            plan.memberships_bought[mp.id] = periods
    return plan


def _stale(enough_in_the_chain: bool) -> str:
    """Why what the card shows cannot all be spent: the rest of the chain's part waits for a fresh sync."""
    if not enough_in_the_chain:
        return ""
    return ("; what the card holds at other stores can be spent again after the next sync"
            " (the last one is older than [offline] max_snapshot_age_hours)")


def _closest(word: str, choices: list[str]) -> str | None:
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None
