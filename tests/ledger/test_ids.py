"""Sale, member and event ids: valid UUIDs, time-ordered, and stable for a retried operation."""

from __future__ import annotations

import time
import uuid

from ledger.ids import derived_id, new_id


def test_a_new_id_is_a_uuid7_carrying_the_time() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid.UUID(new_id())
    after = time.time_ns() // 1_000_000
    assert value.version == 7 and value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after


def test_new_ids_sort_in_the_order_they_were_made() -> None:
    ids = []
    for _ in range(5):
        ids.append(new_id())
        time.sleep(0.002)
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_derived_ids_are_stable_and_sit_next_to_their_operation() -> None:
    op = new_id()
    first = derived_id(op, "1")
    assert first == derived_id(op, "1")  # a retry writes the same ids
    assert len({derived_id(op, str(n)) for n in range(100)}) == 100
    assert first[:13] == op[:13]  # the same 48-bit time: one B-tree neighbourhood
    value = uuid.UUID(first)
    assert value.version == 8 and value.variant == uuid.RFC_4122


def test_any_other_operation_id_still_derives_a_valid_uuid() -> None:
    for op in ("S1", "sale-2026-11-22-0001", str(uuid.uuid4()), new_id().upper()):
        value = uuid.UUID(derived_id(op, "member"))
        assert value.version == 8 and value.variant == uuid.RFC_4122
    assert derived_id("S1", "1") != derived_id("S2", "1")
