"""The wire format between a terminal and the central server (DESIGN §7).

Every string is bounded and free of NUL characters: PostgreSQL text cannot
hold NUL, and a request must never reach the database with data it would
refuse (that would be a 5xx instead of a 4xx).
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

MAX_BATCH = 500
MAX_PAGE = 1000
BIG = 2**62  # inside BIGINT on every backend

Text = Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")]
Id = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00]+$")]
Hash = Annotated[str, Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")]
Payload = Annotated[str, Field(max_length=20_000, pattern=r"^[^\x00]*$")]
TERMINAL_ID_PATTERN = r"^[A-Za-z0-9._-]{1,60}:[A-Za-z0-9._-]{1,60}$"


class WireEvent(TypedDict):
    """One ledger event, exactly the fields its hash covers plus the hash.

    A TypedDict, not a model: a push carries up to 500 of them, and pydantic
    validates the request bytes straight into plain dicts, the form the hash
    check and the bulk insert read, with no per-event object or dump.
    """

    seq: Annotated[int, Field(ge=1, le=BIG)]
    event_id: Id
    terminal_id: Id
    store_id: Id
    ts: Text
    business_day: Text
    member_id: NotRequired[Id | None]
    card_id: NotRequired[Id | None]
    program_id: NotRequired[Text | None]
    account: NotRequired[Text | None]
    kind: Id
    amount: NotRequired[Annotated[int, Field(ge=-BIG, le=BIG)]]
    sale_id: NotRequired[Id | None]
    ref_event_id: NotRequired[Id | None]
    rules_version: Text
    payload: NotRequired[Payload]
    prev_hash: Hash
    hash: Hash


# what an optional field means when a terminal leaves it out
EVENT_DEFAULTS: tuple[tuple[str, object], ...] = (
    ("member_id", None), ("card_id", None), ("program_id", None), ("account", None),
    ("amount", 0), ("sale_id", None), ("ref_event_id", None), ("payload", "{}"),
)
EVENT_FIELDS = len(WireEvent.__annotations__)


class PushRequest(TypedDict):
    from_seq: Annotated[int, Field(ge=1, le=BIG)]
    events: Annotated[list[WireEvent], Field(max_length=MAX_BATCH)]


PUSH_REQUEST: TypeAdapter[PushRequest] = TypeAdapter(PushRequest)
EVENTS: TypeAdapter[list[WireEvent]] = TypeAdapter(list[WireEvent])


def complete(events: list[WireEvent]) -> list[WireEvent]:
    """Fill the optional fields a terminal left out, in place (a till sends them all)."""
    for ev in events:
        if len(ev) != EVENT_FIELDS:
            for key, default in EVENT_DEFAULTS:
                ev.setdefault(key, default)  # type: ignore[misc]
    return events


def parse_push(body: bytes) -> PushRequest:
    """Validate a push body from its bytes: JSON is parsed once, by pydantic-core."""
    request = PUSH_REQUEST.validate_json(body)
    complete(request["events"])
    return request


def parse_events(rows: list[dict[str, Any]]) -> list[WireEvent]:
    """The same validation for events already decoded (tests, tools)."""
    return complete(EVENTS.validate_python(rows))


class Overdraft(BaseModel):
    member_id: str
    program_id: str
    account: str
    balance: int


class PushResponse(BaseModel):
    acked_seq: int
    acked_hash: str
    overdrafts: list[Overdraft]
    chain_id: str | None = None  # the till keeps it and sends it back (X-Loyalty-Chain): another chain's server refuses it


class CardSnapshot(BaseModel):
    card_id: str
    status: str
    replaced_by: str | None = None
    reason: str | None = None  # a blocked card's reason, as the blocking till wrote it


class BalanceSnapshot(BaseModel):
    program_id: str
    account: str
    amount: int  # the chain's balance minus the asking terminal's own events
    chain: int  # the chain's balance, all terminals


class SpendDay(BaseModel):
    day: str  # business day of the sales (a refund counts on its sale's day)
    amount: int  # money paid, minor units


class MembershipSnapshot(BaseModel):
    program_id: str
    until: str | None  # last day of the benefit, None: taken back by a refund


class MembershipBuy(BaseModel):
    event_id: str
    program_id: str
    ts: str  # when the selling till wrote it
    day: str  # business day it was bought on
    from_: str = Field(alias="from")  # first day it paid for (after `day` when stacked on a running period)
    until: str  # last day it paid for, as sold
    refunded: bool  # its sale was refunded: the till takes its days off the end of its run

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class RedeemDay(BaseModel):
    day: str  # business day
    sales: int  # sales at other tills that redeemed something that day, refunded ones left out


class DrawnPoints(BaseModel):
    program_id: str
    points: int  # draws less givings, of the other tills
    given: int = 0  # of which the other tills' lots gave


class LastRedeem(BaseModel):
    program_id: str
    account: str
    store_id: str
    terminal_id: str
    receipt: str  # the number on that sale's receipt (terminal-seq of its last event)
    day: str  # its business day
    ts: str


class MemberSnapshot(BaseModel):
    member_id: str
    enrolled_store: str | None
    enrolled_at: str | None
    change: int
    cards: list[CardSnapshot]
    balances: list[BalanceSnapshot]
    # what the other terminals did that a till's own ledger cannot know (all three without the asking terminal's events):
    spend_days: list[SpendDay] = []  # money paid per business day over the last SPEND_DAYS days: the tier window
    memberships: list[MembershipSnapshot] = []  # the last membership change per program (tills before membership_buys)
    membership_buys: list[MembershipBuy] = []  # every membership purchase: the till works out the last day from them
    redeem_days: list[RedeemDay] = []  # sales that redeemed, per business day (the last three with any): the daily cap is chain-wide
    drawn: list[DrawnPoints] = []  # points drawn on the chain beyond those tills' own lots, less what their lots gave (expiry)
    last_redeems: list[LastRedeem] = []  # per program and account, the latest sale elsewhere that redeemed, not refunded
    awards: list[str] = []  # bonuses paid (welcome, profile, birthday:2026, referral:...): each at most once per member
    referrer_id: str | None = None  # who referred the member, as another till recorded it


class ChangesPage(BaseModel):
    cursor: int
    more: bool
    members: list[MemberSnapshot]
    hotlist: list[str]
    rules_version: str | None
    server_time: str
    acked_seq: int | None = None  # the asking till's last event the server holds
    acked_hash: str | None = None
    changes_head: int | None = None  # the server's change counter: a cursor past it means the server was restored
    chain_id: str | None = None


class CardPage(BaseModel):
    """The chain's member for one card, asked by a till before it enrols a card it does not know."""

    members: list[MemberSnapshot]  # none: no till has the card
    hotlist: list[str]
    server_time: str
    chain_id: str | None = None


class Health(BaseModel):
    status: str
    server_time: str
    schema_version: int


class ErrorBody(BaseModel):
    error: str
    message: str
    last_seq: int | None = None
    last_hash: str | None = None


class OverdraftRow(BaseModel):
    member_id: str
    program_id: str
    account: str
    balance: int
    current: int
    tid: str
    seq: int
    at: str


class FlagRow(BaseModel):
    kind: str
    tid: str
    detail: str
    at: str


class TerminalRow(BaseModel):
    tid: str
    store_id: str
    terminal_id: str
    last_seq: int
    last_push_at: str | None
    last_seen_at: str | None


class Reports(BaseModel):
    overdrafts: list[OverdraftRow]
    flags: list[FlagRow]
    stale_terminals: list[TerminalRow]
