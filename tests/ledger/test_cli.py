"""The `loyalty` CLI: JSON shapes, errors, nothing written by a failed command."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from ledger_store import STORE, run_cli

CARD = "uid:04A1B2C3D4E5F6"
AMOUNT = re.compile(r"^-?\d+\.\d{3}$")  # KWD: always three digits


@pytest.fixture
def cli(store):
    store.service.close()

    def run(*args: str):
        return run_cli("--config", str(store.path), "--now", "2026-11-22T10:00", *args)

    return run


def counts(store):
    conn = sqlite3.connect(store.cfg.ledger.path)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("events", "sales", "members", "cards", "print_jobs")}
    finally:
        conn.close()


def test_sale_json_shape(cli):
    cli("sale", "--card", CARD, "--item", "ESP*10")
    r = cli("--json", "sale", "--card", CARD, "--item", "LAT*2", "--item", "ESP", "--item", "111", "--redeem", "coffee")
    assert r.code == 0, r.err
    data = r.json
    for key in ("sale", "currency", "subtotal", "discount", "total", "lines", "earned", "redeemed", "card", "status", "member", "programs"):
        assert key in data
    assert data["currency"] == "KWD"
    for key in ("subtotal", "discount", "total"):
        assert AMOUNT.match(data[key]), data[key]
    assert (data["subtotal"], data["discount"], data["total"]) == ("4.000", "0.750", "3.250")
    assert [ln["sku"] for ln in data["lines"]] == ["LAT", "ESP", "ESP"]
    assert data["lines"][0] == {"sku": "LAT", "name": "Latte", "qty": 2, "unit_price": "1.250", "amount": "2.500", "reward": "0.000",
                                "discount": "0.000", "redeemed": "0.000", "total": "2.500"}
    assert data["redeemed"] == {"coffee": 1}
    assert data["earned"] == {"coffee": 3, "points": 32}
    assert data["programs"]["coffee"] == {"kind": "stamps", "stamps": 3, "stamps_per_reward": 10, "rewards": 0, "to_next_reward": 7}
    points = data["programs"]["points"]
    assert set(points) == {"kind", "balance", "value", "expiring"} and AMOUNT.match(points["value"])
    assert data["member"]["tier"] is None


def test_card_show_json_and_text(cli):
    cli("sale", "--card", CARD, "--item", "BIG*6")
    r = cli("--json", "card", "show", CARD)
    assert r.code == 0
    assert r.json["programs"]["points"] == {"kind": "points", "balance": 120, "value": "0.500", "expiring": []}
    assert r.json["card"] == CARD and r.json["status"] == "active"
    text = cli("card", "show", CARD).out
    assert "120 points (worth 0.500)" in text


def test_sale_text_prints_the_receipt(cli):
    r = cli("sale", "--card", CARD, "--item", "LAT", "--item", "CRO")
    assert r.code == 0
    assert "Latte" in r.out and "1.850" in r.out


def test_global_options_after_the_command(store):
    store.service.close()
    r = run_cli("card", "enrol", CARD, "--config", str(store.path), "--json", "--now", "2026-11-22T10:00")
    assert r.code == 0 and r.json["card"] == CARD


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("sale", "--card", CARD, "--item", "NOPE"), "unknown_sku"),
        (("sale", "--card", CARD, "--item", "LAT", "--redeem", "stars"), "unknown_program"),
        (("sale", "--card", CARD, "--item", "LAT", "--redeem", "points=100"), "insufficient_balance"),
        (("sale", "--card", CARD, "--item", "LAT", "--redeem", "points=1.5"), "bad_amount"),
        (("sale", "--card", CARD, "--item", "LAT*0"), "bad_item"),
        (("sale", "--card", "uid:XYZ", "--item", "LAT"), "bad_card"),
        (("sale", "--card", "uld:04A1B2C3", "--item", "LAT"), "bad_card"),  # a typo would enrol a second card
        (("refund", "no-such-sale"), "unknown_sale"),
        (("card", "show", "code:never-seen"), "unknown_card"),
        (("--now", "yesterday", "sale", "--card", CARD, "--item", "LAT"), "bad_time"),
        (("sale", "--card", CARD, "--item", "LAT*+5"), "bad_item"),
        (("sale", "--card", CARD, "--item", "LAT*999", "--item", "lat*2"), "bad_item"),  # 1001 of one item, on two lines
        (("sale", "--card", CARD, *[a for _ in range(201) for a in ("--item", "ESP")]), "bad_item"),
        (("sale", "--card", CARD, "--item", "LAT", "--sale-id", ""), "bad_sale_id"),
        (("sale", "--card", CARD, "--item", "LAT", "--sale-id", "till-9-000042"), "bad_sale_id"),
        (("card", "adjust", CARD, "--program", "points", "--amount", "9223372036854775807", "--reason", "x"), "bad_amount"),
        (("card", "adjust", CARD, "--program", "points", "--amount", "-1000000001", "--reason", "x"), "bad_amount"),
    ],
)
def test_errors_are_one_line_and_write_nothing(cli, store, args, code):
    cli("sale", "--card", CARD, "--item", "LAT")
    before = counts(store)
    plain = cli(*args)
    assert plain.code == 1
    assert plain.out == ""
    assert len(plain.err.strip().splitlines()) == 1 and plain.err.startswith("loyalty: ")
    as_json = cli("--json", *args)
    assert as_json.code == 1
    assert as_json.json["error"] == code
    assert json.loads(as_json.err) == as_json.json
    assert counts(store) == before


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("sale", "--card", CARD), "the following arguments are required: --item (see loyalty sale --help)"),
        (("bogus",), "invalid choice: 'bogus'"),
        (("sale", "--card", CARD, "--item", "LAT", "--frobnicate"), "unrecognized arguments: --frobnicate"),
        (("card",), "the following arguments are required"),
        (("card", "history", CARD, "--limit", "0"), "'0' is not a whole number from 1 to 1,000,000"),
        (("card", "history", CARD, "--limit", "100000000000000000000000"), "is not a whole number from 1 to"),
        (("print-queue", "list", "--limit", "-1"), "'-1' is not a whole number from 1 to"),
    ],
)
def test_usage_errors_follow_the_error_contract(cli, store, args, says):
    before = counts(store)
    plain = cli(*args)
    assert plain.code == 2
    assert plain.out == ""
    assert len(plain.err.strip().splitlines()) == 1 and plain.err.startswith("loyalty: ") and says in plain.err
    as_json = cli("--json", *args)
    assert as_json.code == 2
    assert as_json.json["error"] == "usage" and says in as_json.json["message"]
    assert json.loads(as_json.err) == as_json.json
    assert counts(store) == before


def test_a_sale_id_that_reads_as_a_receipt_number_is_named_as_ambiguous(cli):
    first = cli("--json", "sale", "--card", CARD, "--item", "LAT").json
    number = first["receipt"]["number"]
    digits = str(int(number.rpartition("-")[2]))
    mine = cli("--json", "sale", "--card", CARD, "--item", "ESP", "--sale-id", digits).json  # a POS's own transaction number
    plain = cli("--json", "refund", digits)
    assert plain.code == 1 and plain.json["error"] == "ambiguous_sale"
    assert number in plain.json["message"] and mine["receipt"]["number"] in plain.json["message"]
    assert cli("--json", "refund", number).json["sale"] == first["sale"]
    assert cli("--json", "refund", mine["receipt"]["number"]).json["sale"] == digits


def test_a_ledger_refuses_a_config_in_another_currency(cli, store):
    cli("sale", "--card", CARD, "--item", "LAT")
    other = store.path.with_name("bhd.toml")  # beside the first: the same ledger file
    other.write_text(store.path.read_text(encoding="utf-8").replace('currency = "KWD"', 'currency = "BHD"'), encoding="utf-8")
    before = counts(store)
    moved = run_cli("--config", str(other), "--json", "--now", "2026-11-22T10:00", "sale", "--card", CARD, "--item", "LAT")
    assert moved.code == 1 and moved.json["error"] == "wrong_currency"
    assert "keeps its amounts in KWD, not BHD" in moved.json["message"]
    assert counts(store) == before


def test_a_config_fixed_after_a_failed_first_command_opens_the_ledger_it_left(store):
    """The failed command left a migrated file with no event; the corrected terminal and currency take it."""
    failed = run_cli("--config", str(store.path), "--json", "sale", "--card", CARD, "--item", "NOPE")
    assert failed.code == 1 and failed.json["error"] == "unknown_sku"
    fixed = store.path.read_text(encoding="utf-8").replace('currency = "KWD"', 'currency = "BHD"').replace('terminal = "till-9"', 'terminal = "till-2"')
    store.path.write_text(fixed, encoding="utf-8")
    sale = run_cli("--config", str(store.path), "--json", "--now", "2026-11-22T10:00", "sale", "--card", CARD, "--item", "LAT")
    assert sale.code == 0, sale.err
    assert sale.json["receipt"]["terminal"] == "till-2" and sale.json["currency"] == "BHD"


def test_end_of_day_after_midnight_books_the_expiry_on_the_day_it_closes(cli):
    assert cli("--now", "2026-11-22T10:00", "sale", "--card", CARD, "--item", "LAT").code == 0
    [due] = cli("--json", "--now", "2026-12-15T10:00", "card", "show", CARD).json["programs"]["points"]["expiring"]  # within notice
    day = date.fromisoformat(due["on"])
    after_midnight = f"{day + timedelta(days=1)}T00:30"
    r = cli("--json", "--now", after_midnight, "sync", "--end-of-day", "--day", day.isoformat())
    assert r.code == 0, r.err
    assert r.json["day"] == day.isoformat() and r.json["expired_points"] == due["points"] > 0
    assert r.json["z"]["programs"]["points"]["points_expired"] == due["points"]
    history = cli("--json", "--now", after_midnight, "card", "history", CARD).json["events"]
    assert [e["business_day"] for e in history if e["kind"] == "expire"] == [day.isoformat()]
    assert cli("--json", "ledger", "verify").code == 0


def test_refund_twice(cli):
    sale = cli("--json", "sale", "--card", CARD, "--item", "LAT").json
    first = cli("--json", "refund", sale["sale"]).json
    again = cli("--json", "refund", sale["sale"])
    assert again.code == 1 and again.json["error"] == "already_refunded"
    # a retry after a crash lands here too: it says when, and how the slip comes out again
    said = again.json["message"]
    assert "already refunded at 20" in said and f"print-queue reprint --kind refund --ref {first['refund']}" in said
    assert cli("print-queue", "reprint", "--kind", "refund", "--ref", first["refund"]).code == 0


def test_receipt_reprint_and_out_file(cli, tmp_path):
    sale = cli("--json", "sale", "--card", CARD, "--item", "LAT").json
    text = cli("receipt", sale["sale"], "--copy").out
    assert "COPY" in text and "Latte" in text
    out = tmp_path / "r.txt"
    assert cli("receipt", sale["sale"], "--out", str(out)).code == 0
    assert "Latte" in out.read_text(encoding="utf-8")
    digits = str(int(sale["receipt"]["number"].rpartition("-")[2]))  # the receipt number as a manager types it
    assert cli("--json", "receipt", digits).json["sale"] == sale["sale"]


def test_ledger_verify_command(cli, store):
    cli("sale", "--card", CARD, "--item", "LAT")
    r = cli("--json", "ledger", "verify")
    assert r.code == 0 and r.json["ok"] is True
    conn = sqlite3.connect(store.cfg.ledger.path)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET amount = 999 WHERE kind = 'earn'")
    conn.commit()
    conn.close()
    bad = cli("--json", "ledger", "verify")
    assert bad.code == 1 and bad.json["ok"] is False and bad.json["checks"]["chain"] is False
    assert json.loads(bad.err)["error"] == "verify_failed"  # the one stderr line of a failed command
    text = cli("ledger", "verify")
    assert text.code == 1 and "FAILED" in text.out
    assert len(text.err.splitlines()) == 1 and text.err.startswith("loyalty: ledger verify FAILED")


def test_card_commands(cli):
    assert cli("card", "enrol", CARD, "--name", "Fatima", "--phone", "+96550000000", "--birthday", "03-21").code == 0
    assert cli("--json", "card", "block", CARD, "--reason", "lost").json["status"] == "blocked"
    assert cli("--json", "sale", "--card", CARD, "--item", "LAT").json["error"] == "card_blocked"
    replaced = cli("--json", "card", "replace", CARD, "uid:04FFEEDDCCBBAA").json
    assert replaced["card"] == "uid:04FFEEDDCCBBAA" and replaced["member"]["name"] == "Fatima"
    adjusted = cli("--json", "card", "adjust", "uid:04FFEEDDCCBBAA", "--program", "points", "--amount", "40", "--reason", "goodwill").json
    assert adjusted["programs"]["points"]["balance"] == 40
    history = cli("--json", "card", "history", "uid:04FFEEDDCCBBAA").json
    assert [e["kind"] for e in history["events"]][:3] == ["adjust", "replace", "block"] and history["more"] is False
    cut = cli("--json", "card", "history", "uid:04FFEEDDCCBBAA", "--limit", "2").json
    assert len(cut["events"]) == 2 and cut["more"] is True
    sale = cli("--json", "sale", "--card", "uid:04FFEEDDCCBBAA", "--item", "BEANS").json
    text = cli("card", "history", "uid:04FFEEDDCCBBAA", "--limit", "4").out
    assert f"{sale['receipt']['number']}" in text and "+4.500 KWD" in text and "total 4.500 KWD" in text  # money as money
    assert "10:00 +03" in text and "--limit N shows more" in text  # the store's clock, with its zone
    events = cli("--json", "card", "history", "uid:04FFEEDDCCBBAA", "--limit", "4").json["events"]
    spend = next(e for e in events if e["account"] == "spend")
    sold = next(e for e in events if e["kind"] == "sale")
    assert spend["amount"] == "4.500" and sold["payload"]["total"] == "4.500"  # money as decimal strings


def test_every_command_is_documented_in_the_readme():
    from terminal.cli import build_parser

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, child in sub.choices.items():
        nested = [a for a in child._actions if hasattr(a, "choices") and isinstance(a.choices, dict)]
        names = [f"{name} {n}" for a in nested for n in a.choices] or [name]
        for full in names:
            assert f"loyalty {full}" in readme, f"`loyalty {full}` is not in README.md"


def test_console_script_runs(store):
    store.service.close()
    exe = os.path.join(os.path.dirname(sys.executable), "loyalty")
    r = subprocess.run([exe, "--config", str(store.path), "--json", "check-config"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["currency"] == "KWD"


def test_end_of_day_without_a_server_closes_the_day_and_prints_the_z_report(cli):
    assert cli("sale", "--card", CARD, "--item", "LAT").code == 0
    r = cli("--json", "--now", "2026-11-22T20:00", "sync", "--end-of-day")
    assert r.code == 0, r.err  # a stand-alone till has nothing to sync: closing its day is all of it
    assert "[sync] server is not set" in r.json["offline"] and r.json["z"]["chain"]["standalone"] is True
    assert r.json["day"] == "2026-11-22" and r.json["z"]["sales"]["count"] == 1
    z = r.json["z"]
    text = cli("--now", "2026-11-22T20:05", "sync", "--end-of-day")
    assert "stand-alone till" in text.out and "Z REPORT" in text.out and "not synced" not in text.out.lower()
    late = cli("--json", "--now", "2026-11-22T21:00", "sale", "--card", CARD, "--item", "LAT")
    assert late.code == 1 and late.json["error"] == "day_closed"
    # a card blocked, unblocked or replaced after the close counts on the next day: the printed Z stays true
    assert cli("--now", "2026-11-22T23:45", "card", "block", CARD, "--reason", "lost").code == 0
    assert cli("--now", "2026-11-22T23:50", "card", "replace", CARD, "code:NEW-1").code == 0
    again = cli("--json", "--now", "2026-11-22T23:55", "report", "z", "--day", "2026-11-22").json
    assert (again["events"], again["chain"]["head_seq"]) == (z["events"], z["chain"]["head_seq"])
    history = cli("--json", "card", "history", "code:NEW-1").json
    days = {e["kind"]: e["business_day"] for e in history["events"] if e["kind"] in ("block", "replace")}
    assert days == {"block": "2026-11-23", "replace": "2026-11-23"}
    assert cli("--json", "ledger", "verify").code == 0


def test_version_names_the_installed_distribution():
    from importlib.metadata import version

    r = run_cli("--version")
    assert r.code == 0
    assert r.out.strip() == f"loyalty {version('pos-loyalty')}"


def test_a_closed_output_pipe_is_no_traceback_and_the_sale_stays(store):
    store.service.close()
    exe = os.path.join(os.path.dirname(sys.executable), "loyalty")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes a byte
    try:
        r = subprocess.run([exe, "--config", str(store.path), "--now", "2026-11-22T10:00", "--json", "sale", "--card", CARD,
                            "--item", "LAT", "--sale-id", "piped-1"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert r.returncode == 141
    assert r.stderr == ""  # no traceback, no "Exception ignored" at exit
    assert run_cli("--config", str(store.path), "--json", "receipt", "piped-1").code == 0  # committed all the same


def test_demo_script_walks_through_enrolment_two_sales_and_the_receipt(tmp_path):
    r = run_cli("--now", "2026-11-22T10:00", "demo", "--script", "--dir", str(tmp_path / "demo"))
    assert r.code == 0, r.err
    steps = [line for line in r.out.splitlines() if line[:2] in ("1.", "2.", "3.")]
    assert len(steps) == 3 and "enrolled" in steps[0] and "earned coffee +10" in steps[1] and "redeemed 1 coffee" in steps[2]
    assert "TOTAL" in r.out and "Receipt" in r.out


def test_a_sale_dated_before_the_ledgers_last_event_is_taken_with_a_warning(cli):
    assert cli("--now", "2026-11-22T10:00", "sale", "--card", CARD, "--item", "LAT").code == 0
    behind = cli("--now", "2026-11-21T09:00", "sale", "--card", CARD, "--item", "ESP")
    assert behind.code == 0  # the sale stands: the cashier must never lose it
    assert "earlier than the ledger's last event (2026-11-22 10:00)" in behind.err and "date and time" in behind.err
    on_time = cli("--now", "2026-11-22T10:03", "sale", "--card", CARD, "--item", "ESP")  # a few minutes' slack: no word
    assert on_time.code == 0 and "earlier than" not in on_time.err


def test_a_command_that_begins_a_new_ledger_says_so_once(tmp_path):
    config = tmp_path / "store.toml"
    # a disk not mounted: the ledger's folder and file are not there
    config.write_text(STORE.replace('path = "ledger.db"', 'path = "usb/loyalty/ledger.db"'), encoding="utf-8")
    first = run_cli("--config", str(config), "--now", "2026-11-22T10:00", "sale", "--card", CARD, "--item", "LAT")
    assert first.code == 0 and first.out  # the sale goes through: the cashier is never stopped
    assert first.err.startswith("loyalty: no ledger was at ") and "usb/loyalty/ledger.db" in first.err
    assert "check [ledger] path and that its disk is mounted" in first.err and len(first.err.splitlines()) == 1
    again = run_cli("--config", str(config), "--json", "--now", "2026-11-22T10:01", "sale", "--card", CARD, "--item", "LAT")
    assert again.code == 0 and again.err == ""
    # an empty file a failed first command left is no ledger either; `init` begins one without a warning (its own work)
    (tmp_path / "usb" / "loyalty" / "other.db").write_bytes(b"")
    other = STORE.replace('path = "ledger.db"', 'path = "usb/loyalty/other.db"')
    config.write_text(other, encoding="utf-8")
    verified = run_cli("--config", str(config), "--json", "ledger", "verify")
    assert verified.code == 0 and json.loads(verified.err)["warning"] == "new_ledger", verified.err
    (tmp_path / "usb" / "loyalty" / "third.db").write_bytes(b"")
    config.write_text(STORE.replace('path = "ledger.db"', 'path = "usb/loyalty/third.db"'), encoding="utf-8")
    init = run_cli("--config", str(config), "init")
    assert init.code == 0 and init.err == ""
