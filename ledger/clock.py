"""Wall time and business days, with an override for scripts and tests (--now)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from .errors import LoyaltyError


def parse_now(text: str | None, tz: ZoneInfo) -> datetime:
    """`--now` (ISO 8601; a naive time is the store's local time) or the real clock, in UTC."""
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            when = datetime.combine(date.fromisoformat(text), datetime.min.time().replace(hour=12))
        except ValueError:
            raise LoyaltyError("bad_time", f"--now {text!r} is not an ISO 8601 time such as 2026-11-22T10:30") from None
    if not FIRST_YEAR <= when.year <= LAST_YEAR:  # expiry and membership dates run years past it
        raise LoyaltyError("bad_time", f"--now {text!r} is outside the years {FIRST_YEAR} to {LAST_YEAR}")
    if when.tzinfo is None:
        local = when.replace(tzinfo=tz)
        if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != when:  # skipped when the clocks went forward
            raise LoyaltyError("bad_time", f"--now {text!r} does not exist in {tz.key}: the clocks went forward over it"
                                           " (give the time after the change, or a UTC offset)")
        when = local
    return when.astimezone(UTC)


# the clock a till may be told it is: room on both sides for the dates the rules compute from it
FIRST_YEAR, LAST_YEAR = 2000, 2199


def business_day(now: datetime, tz: ZoneInfo) -> date:
    """The store's local calendar date at `now`."""
    return now.astimezone(tz).date()


def iso(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def from_iso(ts: str) -> datetime:
    """A time the ledger or the server wrote (`iso`: UTC, "Z"), as an aware datetime."""
    return datetime.fromisoformat(ts)


def local_time(ts: str, tz: ZoneInfo) -> datetime:
    """A ledger time on the store's clock: what people read (reports, history)."""
    return from_iso(ts).astimezone(tz)


def last_day(gone_on: str) -> str:
    """The last day points can be used, for a lot whose `on` is the first day they are gone."""
    return (date.fromisoformat(gone_on) - timedelta(days=1)).isoformat()
