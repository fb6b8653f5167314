"""Ids for sales, members and events: time-ordered, and stable for retries.

A new operation gets a UUIDv7 (RFC 9562): its first 48 bits are the Unix time
in milliseconds, so the ids of a day's sales arrive in B-tree order and each
insert touches the rightmost leaf of its index instead of a random page. Ids
derived from an operation (its events, its member, its refund) are UUIDv8
whose first 48 bits are the operation's own: a sale and everything it writes
sit together in every index, and a retried sale derives the same ids.
"""

from __future__ import annotations

import hashlib
import os
import re
import time

# a UUID of version 7 or 8, whose first 48 bits are a time
_TIME_ORDERED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[78][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_VARIANT = "89ab"  # the two top bits of the 17th hex digit are 10


def receipt_number(terminal_id: str, seq: int) -> str:
    """The number printed on a receipt: the terminal and the seq of the sale's last event (till-1-000042)."""
    return f"{terminal_id}-{seq:06d}"


def new_id() -> str:
    """A fresh UUIDv7: milliseconds since the epoch, then 74 random bits."""
    h = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}7{os.urandom(10).hex()}"
    return _format(h[:13] + h[13:16] + _VARIANT[int(h[16], 16) & 3] + h[17:32])


def derived_id(op_id: str, *parts: str) -> str:
    """The id of something an operation writes: the same for the same (op_id, parts), near op_id in order."""
    h = hashlib.sha256("/".join((op_id, *parts)).encode()).hexdigest()
    # only a v7/v8 UUID carries a time in its first 48 bits; any other id (a sale
    # id a caller chose) gets the hash's bits there, ordered by nothing
    prefix = op_id[:8] + op_id[9:13] if _TIME_ORDERED.fullmatch(op_id) else h[:12]
    return _format(prefix + "8" + h[13:16] + _VARIANT[int(h[16], 16) & 3] + h[17:32])


def _format(h: str) -> str:
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
