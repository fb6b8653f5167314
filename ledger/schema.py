"""The ledger's tables, as sqlite-utils migrations (applied on open).

Events are append-only: triggers refuse UPDATE and DELETE, and the hash chain
(`ledger verify`) catches anyone who drops the triggers first.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("pos-loyalty-ledger")


def _run(db: Database, script: str) -> None:
    # executescript() would COMMIT the migration's transaction: run statement by statement.
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            db.execute(buf)
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buf[:60]!r}")


@migrations()
def m001_core(db: Database) -> None:
    _run(
        db,
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE members (
            id TEXT PRIMARY KEY,
            name TEXT,
            phone TEXT,
            birthday TEXT,            -- MM-DD
            enrolled_store TEXT NOT NULL,
            enrolled_at TEXT NOT NULL,
            referrer_id TEXT REFERENCES members(id),
            first_sale_id TEXT
        );
        CREATE TABLE cards (
            id TEXT PRIMARY KEY,      -- normalized: uid:, ndef:, em:, code:
            member_id TEXT NOT NULL REFERENCES members(id),
            status TEXT NOT NULL CHECK (status IN ('active', 'blocked', 'replaced')),
            replaced_by TEXT,
            reason TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX cards_member ON cards(member_id);

        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,  -- gapless per terminal, from 1
            event_id TEXT NOT NULL UNIQUE,
            terminal_id TEXT NOT NULL,
            store_id TEXT NOT NULL,
            ts TEXT NOT NULL,         -- UTC, ISO 8601
            business_day TEXT NOT NULL,
            member_id TEXT,
            card_id TEXT,
            program_id TEXT,
            account TEXT,
            kind TEXT NOT NULL,
            amount INTEGER NOT NULL DEFAULT 0,
            sale_id TEXT,
            ref_event_id TEXT,
            rules_version TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '{}',
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX events_member ON events(member_id, program_id, account, business_day);
        CREATE INDEX events_sale ON events(sale_id);
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;

        CREATE TABLE balances (
            member_id TEXT NOT NULL,
            program_id TEXT NOT NULL,
            account TEXT NOT NULL,    -- stamps, rewards, points, spend
            amount INTEGER NOT NULL,
            PRIMARY KEY (member_id, program_id, account)
        ) WITHOUT ROWID;

        -- points lots, for expiry oldest first; moves say which event took what
        CREATE TABLE lots (
            lot_id TEXT PRIMARY KEY,  -- the crediting event's id
            member_id TEXT NOT NULL,
            program_id TEXT NOT NULL,
            earned_day TEXT NOT NULL,
            expires_on TEXT,          -- first day the points are gone; NULL: never
            points INTEGER NOT NULL,
            remaining INTEGER NOT NULL
        );
        CREATE INDEX lots_open ON lots(member_id, program_id, remaining, expires_on);
        CREATE TABLE lot_moves (
            event_id TEXT NOT NULL,
            lot_id TEXT NOT NULL,
            amount INTEGER NOT NULL,  -- taken from the lot (negative: given back)
            PRIMARY KEY (event_id, lot_id)
        ) WITHOUT ROWID;

        CREATE TABLE memberships (
            member_id TEXT NOT NULL,
            program_id TEXT NOT NULL,
            valid_until TEXT NOT NULL, -- last day of the benefit
            PRIMARY KEY (member_id, program_id)
        ) WITHOUT ROWID;

        -- bonuses paid at most once per key (birthday:2026, referral, ...)
        CREATE TABLE awards (
            member_id TEXT NOT NULL,
            award TEXT NOT NULL,
            event_id TEXT NOT NULL,
            sale_id TEXT,
            PRIMARY KEY (member_id, award)
        ) WITHOUT ROWID;

        CREATE TABLE sales (
            id TEXT PRIMARY KEY,
            terminal_id TEXT NOT NULL,
            store_id TEXT NOT NULL,
            ts TEXT NOT NULL,
            business_day TEXT NOT NULL,
            card_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            currency TEXT NOT NULL,
            subtotal INTEGER NOT NULL,
            discount INTEGER NOT NULL,
            total INTEGER NOT NULL,
            request_hash TEXT NOT NULL,
            result TEXT NOT NULL,     -- the sale's JSON answer, for idempotent retries and reprints
            refund_id TEXT
        );
        CREATE INDEX sales_member ON sales(member_id, business_day);
        CREATE INDEX sales_day ON sales(business_day);
        CREATE TABLE sale_lines (
            sale_id TEXT NOT NULL REFERENCES sales(id),
            line_no INTEGER NOT NULL,
            sku TEXT NOT NULL,
            name TEXT NOT NULL,
            category TEXT NOT NULL,
            qty INTEGER NOT NULL,
            unit_price INTEGER NOT NULL,
            gross INTEGER NOT NULL,
            reward INTEGER NOT NULL,
            discount INTEGER NOT NULL,
            redeemed INTEGER NOT NULL,
            net INTEGER NOT NULL,
            PRIMARY KEY (sale_id, line_no)
        ) WITHOUT ROWID;
        CREATE TABLE refunds (
            id TEXT PRIMARY KEY,
            sale_id TEXT NOT NULL UNIQUE REFERENCES sales(id),
            ts TEXT NOT NULL,
            business_day TEXT NOT NULL,
            result TEXT NOT NULL
        );

        -- outbox: receipts to print, written in the sale's transaction
        CREATE TABLE print_jobs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,       -- sale, refund, z_report, voucher, enrolment
            ref TEXT NOT NULL,        -- sale id, refund id, business day...
            copy INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'printing', 'printed', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_try_at TEXT,
            last_error TEXT,
            created_at TEXT NOT NULL,
            printed_at TEXT
        );
        CREATE INDEX print_jobs_status ON print_jobs(status, id);

        -- sync outbox state: events above acked_seq are still to push
        CREATE TABLE sync_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE business_days (
            day TEXT PRIMARY KEY,
            closed_at TEXT NOT NULL
        );
        """
    )


@migrations()
def m002_remote(db: Database) -> None:
    _run(
        db,
        """
        -- what the rest of the chain holds for a member, from the last pull:
        -- the server's balance minus this terminal's own events (sync/ writes it)
        CREATE TABLE remote_balances (
            member_id TEXT NOT NULL,
            program_id TEXT NOT NULL,
            account TEXT NOT NULL,
            amount INTEGER NOT NULL,
            synced_at TEXT NOT NULL,   -- UTC ISO time of the pull that wrote it
            PRIMARY KEY (member_id, program_id, account)
        ) WITHOUT ROWID;
        """,
    )


@migrations()
def m003_receipt_numbers(db: Database) -> None:
    # the number printed on the receipt is what a manager types to find a sale
    _run(
        db,
        """
        ALTER TABLE sales ADD COLUMN receipt_no TEXT;
        UPDATE sales SET receipt_no = json_extract(result, '$.receipt.number');
        CREATE INDEX sales_receipt ON sales(receipt_no);
        """,
    )


@migrations()
def m004_fewer_sale_indexes(db: Database) -> None:
    # Every index is one more page written by each sale's commit. A sale's events are
    # found through its member (refund) or its receipt's event seq (find_sale), and
    # nothing looks sales up by member: these three indexes cost more than they gave.
    _run(
        db,
        """
        DROP INDEX events_sale;
        DROP INDEX sales_member;
        DROP INDEX sales_receipt;
        """,
    )


@migrations()
def m005_chain_state(db: Database) -> None:
    # What the rest of the chain did for a member beyond balances, from the last pull (sync/ writes
    # it, without this terminal's own events): money paid per day for the tier window, the last
    # membership change per program, the bonuses already paid (each is paid once per member).
    _run(
        db,
        """
        CREATE TABLE remote_spend (
            member_id TEXT NOT NULL,
            day TEXT NOT NULL,         -- business day of the sales
            amount INTEGER NOT NULL,
            PRIMARY KEY (member_id, day)
        ) WITHOUT ROWID;
        CREATE TABLE remote_memberships (
            member_id TEXT NOT NULL,
            program_id TEXT NOT NULL,
            valid_until TEXT,          -- NULL: taken back by a refund
            PRIMARY KEY (member_id, program_id)
        ) WITHOUT ROWID;
        CREATE TABLE remote_awards (
            member_id TEXT NOT NULL,
            award TEXT NOT NULL,
            PRIMARY KEY (member_id, award)
        ) WITHOUT ROWID;
        """,
    )


@migrations()
def m006_membership_buys(db: Database) -> None:
    # Every membership purchase at the rest of the chain's tills, from the last pull: a refund at one
    # till shortens a period another till stacked on it (ledger/memberships.py). Replaces
    # remote_memberships for members pulled from a server that sends them.
    _run(
        db,
        """
        CREATE TABLE remote_membership_buys (
            member_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            program_id TEXT NOT NULL,
            ts TEXT NOT NULL,          -- when it was written (orders purchases that start on the same day)
            day TEXT NOT NULL,         -- business day it was bought on
            from_day TEXT NOT NULL,    -- the first day it paid for
            until TEXT NOT NULL,       -- the last
            refunded INTEGER NOT NULL, -- 1: its sale was refunded
            PRIMARY KEY (member_id, event_id)
        ) WITHOUT ROWID;
        """,
    )


@migrations()
def m007_redeem_days(db: Database) -> None:
    # Sales at the rest of the chain's tills that redeemed, per business day, from the last pull:
    # [offline] max_redeem_per_card_per_day counts them with this till's own.
    _run(
        db,
        """
        CREATE TABLE remote_redeem_days (
            member_id TEXT NOT NULL,
            day TEXT NOT NULL,
            sales INTEGER NOT NULL,
            PRIMARY KEY (member_id, day)
        ) WITHOUT ROWID;
        """,
    )


@migrations()
def m008_remote_draws(db: Database) -> None:
    # Points other tills drew on the chain's balance (a redemption beyond their own lots), less what
    # tills already took from their lots for them, from the last pull: a lot here that comes due
    # gives those points first, and expires only the rest (points spent are not expired again).
    _run(
        db,
        """
        CREATE TABLE remote_draws (
            member_id TEXT NOT NULL,
            program_id TEXT NOT NULL,
            points INTEGER NOT NULL,
            PRIMARY KEY (member_id, program_id)
        ) WITHOUT ROWID;
        """,
    )


@migrations()
def m009_remote_given(db: Database) -> None:
    # Of those, what the other tills' lots gave to draws: a till settles a giving a refund undid only when no
    # other till gave (two tills that both gave would both expire the same points).
    _run(db, "ALTER TABLE remote_draws ADD COLUMN given INTEGER NOT NULL DEFAULT 0;")


@migrations()
def m010_remote_last_redeems(db: Database) -> None:
    # The latest sale at another till that redeemed from each account, from the last pull: a refund here
    # refused because a later sale used what it would take back names that sale and its till.
    _run(
        db,
        """
        CREATE TABLE remote_last_redeems (
            member_id TEXT NOT NULL,
            program_id TEXT NOT NULL,
            account TEXT NOT NULL,
            store_id TEXT NOT NULL,
            terminal_id TEXT NOT NULL,
            receipt TEXT NOT NULL,
            day TEXT NOT NULL,
            ts TEXT NOT NULL,
            PRIMARY KEY (member_id, program_id, account)
        ) WITHOUT ROWID;
        """,
    )
