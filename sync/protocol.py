"""The wire format between a terminal and the central server (DESIGN §7).

Every string is bounded and free of NUL characters: PostgreSQL text cannot
hold NUL, and a request must never reach the database with data it would
refuse (that would be a 5xx instead of a 4xx).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

MAX_BATCH = 500
MAX_PAGE = 1000
BIG = 2**62  # inside BIGINT on every backend

Text = Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")]
Id = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00]+$")]
Hash = Annotated[str, Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")]
Payload = Annotated[str, Field(max_length=20_000, pattern=r"^[^\x00]*$")]
TERMINAL_ID_PATTERN = r"^[A-Za-z0-9._-]{1,60}:[A-Za-z0-9._-]{1,60}$"


class WireEvent(BaseModel):
    """One ledger event, exactly the fields its hash covers plus the hash."""

    seq: int = Field(ge=1, le=BIG)
    event_id: Id
    terminal_id: Id
    store_id: Id
    ts: Text
    business_day: Text
    member_id: Id | None = None
    card_id: Id | None = None
    program_id: Text | None = None
    account: Text | None = None
    kind: Id
    amount: int = Field(default=0, ge=-BIG, le=BIG)
    sale_id: Id | None = None
    ref_event_id: Id | None = None
    rules_version: Text
    payload: Payload = "{}"
    prev_hash: Hash
    hash: Hash


class PushRequest(BaseModel):
    from_seq: int = Field(ge=1, le=BIG)
    events: list[WireEvent] = Field(max_length=MAX_BATCH)


class Overdraft(BaseModel):
    member_id: str
    program_id: str
    account: str
    balance: int


class PushResponse(BaseModel):
    acked_seq: int
    acked_hash: str
    overdrafts: list[Overdraft]


class CardSnapshot(BaseModel):
    card_id: str
    status: str
    replaced_by: str | None = None


class BalanceSnapshot(BaseModel):
    program_id: str
    account: str
    amount: int  # the chain's balance minus the asking terminal's own events
    chain: int  # the chain's balance, all terminals


class MemberSnapshot(BaseModel):
    member_id: str
    enrolled_store: str | None
    enrolled_at: str | None
    change: int
    cards: list[CardSnapshot]
    balances: list[BalanceSnapshot]


class ChangesPage(BaseModel):
    cursor: int
    more: bool
    members: list[MemberSnapshot]
    hotlist: list[str]
    rules_version: str | None
    server_time: str


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
