"""Typed messages that workers post back to the UI thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from .ports import SyncRound, SyncState, ZReport


@dataclass
class CardTapped(Message):
    card_id: str
    reader: str = ""
    signature: str = "none"
    warnings: tuple[str, ...] = ()
    looked_up: MemberLoaded | None = None  # read on the reader's thread, so the tap needs no worker


@dataclass
class ReaderStatus(Message):
    connected: bool
    name: str
    reason: str = ""


@dataclass
class MemberLoaded(Message):
    """The answer to a tap: a view, an unknown card, or a refusal."""

    card_id: str
    view: dict[str, Any] | None
    unknown: bool = False
    refused: str | None = None
    warning: str | None = None
    seq: int = 0
    note: str | None = None  # said on the message line when nothing is wrong


@dataclass
class QuoteReady(Message):
    seq: int
    quote: dict[str, Any] | None
    error: str | None = None


@dataclass
class SaleDone(Message):
    result: dict[str, Any]
    receipt: str
    welcomed: bool = False
    note: str = ""


@dataclass
class SaleFailed(Message):
    message: str


@dataclass
class PrintStatus(Message):
    ok: bool
    text: str


@dataclass
class StatusSnapshot(Message):
    sync: SyncState
    queued_prints: int


@dataclass
class SyncRoundDone(Message):
    """A background sync round ended (pushed and pulled, failed, or paused by the manager)."""

    round: SyncRound


@dataclass
class ManagerResult(Message):
    ok: bool
    text: str
    view: dict[str, Any] | None = None
    receipt: str | None = None
    # a value the ledger refused: the form opens again with what was typed (action, values, the reason)
    retry: tuple[str, dict[str, str], str] | None = None
    printed: str = ""  # the receipt pane's heading: where the slip printed, or why it did not
    replaced: tuple[str, str] | None = None  # a card replace: (old card, new card)


@dataclass
class EndOfDayProgress(Message):
    fraction: float
    label: str


@dataclass
class EndOfDayDone(Message):
    report: ZReport | None
    error: str | None = None


@dataclass
class HistoryLoaded(Message):
    card_id: str
    view: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
