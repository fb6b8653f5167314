"""The print queue: a sale never waits for paper, a receipt is never lost, a duplicate always says COPY."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from escpos_decode import decode
from receipt_support import CARD, Listener, Store, free_port, run_cli

from drivers.printers import open_printer
from receipts.escpos import paper
from receipts.queue import LEASE_S, PrintQueue

ROOT = Path(__file__).resolve().parents[2]


def _receipts(listener: Listener) -> list[bytes]:
    """The receipts a listener got, status queries taken off, empty connections left out."""
    out = []
    for data in listener.received:
        while data[:2] == b"\x10\x04":
            data = data[3:]
        if data:
            out.append(data)
    return out


def _job(path: Path, **where: Any) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM print_jobs ORDER BY id")]
    finally:
        conn.close()


def test_printer_offline_then_back_prints_exactly_once(make_store, tmp_path: Path) -> None:
    port = free_port()
    store: Store = make_store(printer=f"escpos+tcp://127.0.0.1:{port}", timeout_s=1.0)
    store.service.close()
    start = time.monotonic()
    r = run_cli("--config", str(store.path), "--now", "2026-11-20T09:30", "sale", "--card", CARD, "--item", "LAT*2")
    assert r.code == 0, r.err
    assert time.monotonic() - start < 3, "an offline printer must not hold the sale"
    assert "Latte" in r.out
    assert len(r.err.strip().splitlines()) == 1 and "kept in the print queue" in r.err
    db = store.cfg.ledger.path
    [job] = _job(db)
    assert job["status"] == "queued" and job["attempts"] == 1 and job["next_try_at"] and "cannot connect" in job["last_error"]

    # still offline, not due yet: nothing is tried (the queue keeps the script's clock)
    r = run_cli("--config", str(store.path), "--now", "2026-11-20T09:30", "--json", "print-queue", "run")
    assert r.code == 0 and r.json["jobs"] == []
    r = run_cli("--config", str(store.path), "--now", "2026-11-20T09:30", "--json", "print-queue", "list")
    assert r.json["jobs"][0]["next_try_at"].startswith("2026-11-20T06:3")  # Kuwait time 09:30 plus the backoff, in UTC
    r = run_cli("--config", str(store.path), "--now", "2026-11-20T09:30", "--json", "print-queue", "run")
    assert r.code == 0 and r.json["jobs"] == []

    server = Listener(port=port).start()
    try:
        r = run_cli("--config", str(store.path), "--json", "print-queue", "retry")
        assert r.code == 0 and r.json["printed"] == 1, r.out
        r = run_cli("--config", str(store.path), "--json", "print-queue", "retry")
        assert r.code == 0 and r.json["printed"] == 0
        server.wait_for(1)
        [paper] = _receipts(server)
    finally:
        server.stop()
    d = decode(paper)
    sale = json.loads(sqlite3.connect(db).execute("SELECT result FROM sales").fetchone()[0])
    assert d.cuts == 1 and sale["receipt"]["number"] in d.text and "COPY" not in d.text
    [job] = _job(db)
    assert job["status"] == "printed" and job["attempts"] == 2 and job["printed_at"]


def test_next_sale_flushes_what_waited(make_store) -> None:
    port = free_port()
    store: Store = make_store(printer=f"escpos+tcp://127.0.0.1:{port}", timeout_s=1.0)
    store.service.close()
    assert run_cli("--config", str(store.path), "sale", "--card", CARD, "--item", "ESP").code == 0
    server = Listener(port=port).start()
    try:
        db = store.cfg.ledger.path
        with sqlite3.connect(db) as conn:  # the backoff has passed
            conn.execute("UPDATE print_jobs SET next_try_at = NULL")
        assert run_cli("--config", str(store.path), "sale", "--card", CARD, "--item", "LAT").code == 0
        server.wait_for(2)
        assert len(_receipts(server)) == 2
    finally:
        server.stop()
    assert [j["status"] for j in _job(db)] == ["printed", "printed"]


def test_backoff_grows_and_is_capped(make_store) -> None:
    store: Store = make_store(printer=f"escpos+tcp://127.0.0.1:{free_port()}", timeout_s=0.5)
    store.sale(["LAT"], sale_id="s-1")
    now = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    clock = [now]
    queue = PrintQueue(store.cfg.ledger.path, store.cfg, clock=lambda: clock[0])
    printer = open_printer(store.cfg.printer.url, timeout_s=0.5)
    waits = []
    for _ in range(10):
        [outcome] = queue.run(printer)
        assert not outcome.printed
        job = queue.job(outcome.job.id)
        assert job is not None and job.status == "queued"
        due = datetime.fromisoformat(job.next_try_at.replace("Z", "+00:00"))  # type: ignore[union-attr]
        waits.append((due - clock[0]).total_seconds())
        clock[0] = due
    queue.close()
    assert waits[:4] == [2, 4, 8, 16] and max(waits) == 300


def test_a_sale_whose_receipt_did_not_print_says_so_as_a_json_warning(make_store) -> None:
    store: Store = make_store(printer=f"escpos+tcp://127.0.0.1:{free_port()}", timeout_s=1.0)
    store.service.close()
    r = run_cli("--config", str(store.path), "--now", "2026-11-20T09:31", "--json", "sale", "--card", CARD, "--item", "LAT")
    # the sale stands (exit 0, its answer on stdout); the one stderr line is a warning object
    assert r.code == 0 and r.json["total"]
    warning = json.loads(r.err)
    assert warning["warning"] == "not_printed" and "kept in the print queue" in warning["message"]


def test_reprint_is_a_new_job_marked_copy(make_store, tmp_path: Path) -> None:
    out = tmp_path / "paper.bin"
    store: Store = make_store(printer=f"file://{out}")
    sale = store.sale(["LAT", "CRO"], sale_id="s-1")
    store.service.close()
    r = run_cli("--config", str(store.path), "--json", "print-queue", "run")
    assert r.json["printed"] == 1
    r = run_cli("--config", str(store.path), "--json", "print-queue", "reprint", "--sale", sale["sale"])
    assert r.code == 0 and r.json["printed"] == 1
    d = decode(out.read_bytes())
    assert d.cuts == 2 and d.text.count("*** COPY ***") == 1
    jobs = _job(store.cfg.ledger.path)
    assert [(j["copy"], j["status"]) for j in jobs] == [(0, "printed"), (1, "printed")]
    r = run_cli("--config", str(store.path), "--json", "print-queue", "reprint", str(jobs[0]["id"]))
    assert r.code == 0 and decode(out.read_bytes()).text.count("*** COPY ***") == 2
    listed = run_cli("--config", str(store.path), "--json", "print-queue", "list").json
    assert listed["counts"] == {"printed": 3} and len(listed["jobs"]) == 3
    assert {j["receipt"] for j in listed["jobs"]} == {sale["receipt"]["number"]}  # what is printed on the paper
    text = run_cli("--config", str(store.path), "print-queue").out
    assert text.count(sale["receipt"]["number"]) == 3 and sale["sale"] not in text
    # the number printed on the receipt, or its digits, finds the sale too
    for ref in (sale["receipt"]["number"], str(sale["receipt"]["seq"])):
        r = run_cli("--config", str(store.path), "--json", "print-queue", "reprint", "--sale", ref)
        assert r.code == 0 and r.json["printed"] == 1, r.err
    # a ref that names nothing is refused and queues nothing; so is retrying a job that does not exist
    for args in (("--sale", "no-such-sale"), ("--kind", "z_report", "--ref", "2099-13-45"), ("--kind", "enrolment", "--ref", "code:NEVER"),
                 ("--kind", "z_report", "--ref", sale["receipt"]["business_day"]),  # a day still open has no Z to copy
                 ("--kind", "z_report", "--ref", "2020-01-01"),
                 ("--kind", "voucher", "--ref", "s-1:coffee"), ("--kind", "voucher", "--ref", "s-1:points")):  # s-1 issued no voucher
        r = run_cli("--config", str(store.path), "--json", "print-queue", "reprint", *args)
        assert r.code == 1 and r.json["error"] in ("unknown_sale", "unknown_receipt"), (args, r.out)
    r = run_cli("--config", str(store.path), "--json", "print-queue", "retry", "999")
    assert r.code == 1 and r.json["error"] == "unknown_job"
    listed = run_cli("--config", str(store.path), "--json", "print-queue", "list").json
    assert listed["counts"] == {"printed": 5}


def test_a_reprint_of_a_receipt_that_never_printed_is_that_receipt_once(make_store, tmp_path: Path) -> None:
    out = tmp_path / "paper.bin"
    store: Store = make_store(printer=f"file://{out}")
    sale = store.sale(["LAT"], sale_id="s-waiting")  # its job waits: the printer was out of paper
    store.service.close()
    r = run_cli("--config", str(store.path), "--json", "print-queue", "reprint", "--sale", sale["sale"])
    assert r.code == 0 and r.json["printed"] == 1
    r = run_cli("--config", str(store.path), "--json", "print-queue", "run")  # nothing else waits
    d = decode(out.read_bytes())
    assert d.cuts == 1 and "COPY" not in d.text  # the original, once
    assert [(j["copy"], j["status"]) for j in _job(store.cfg.ledger.path)] == [(0, "printed")]


def test_a_receipt_the_printer_did_not_confirm_prints_again_as_copy(make_store) -> None:
    server = Listener(read_limit=9).start()  # answers its status, then reads no more: the job may or may not be paper
    try:
        store: Store = make_store(printer=server.url)
        sale = store.sale(["LAT"], sale_id="s-unsure")
        store.service.close()
        queue = PrintQueue(store.cfg.ledger.path, store.cfg, clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))
        printer = open_printer(server.url, profile=store.cfg.printer.profile, timeout_s=0.3)
        [outcome] = queue.run(printer)
        assert not outcome.printed and "did not confirm" in (outcome.error or "")
        # unconfirmed again (a printer too slow for its timeout): it waits for a person, not a COPY a round
        later = PrintQueue(store.cfg.ledger.path, store.cfg, clock=lambda: datetime(2030, 1, 2, tzinfo=UTC))
        [twice] = later.run(printer)
        assert not twice.printed and "not confirmed twice" in (twice.error or "")
        assert [(j["status"], j["copy"]) for j in _job(store.cfg.ledger.path)] == [("failed", 1)]
        assert later.run(printer) == []
        server.read_limit = None  # it reads again; the manager retries the job
        later.retry()
        [again] = later.run(open_printer(server.url, profile=store.cfg.printer.profile, timeout_s=5))
        assert again.printed
        queue.close()
        later.close()
        last = decode(_receipts(server)[-1])
        assert sale["receipt"]["number"] in last.text and "*** COPY ***" in last.text  # the first may be on paper too
    finally:
        server.stop()


def test_a_job_that_cannot_be_rendered_is_kept_as_failed(make_store) -> None:
    store: Store = make_store()
    queue = PrintQueue(store.cfg.ledger.path, store.cfg)
    job_id = queue.enqueue("sale", "no-such-sale")
    outcome = queue.print_job(job_id, open_printer("preview://"))
    assert not outcome.printed and "not in the ledger" in (outcome.error or "")
    job = queue.job(job_id)
    assert job is not None and job.status == "failed"
    assert queue.retry([job_id]) == 1 and queue.job(job_id).status == "queued"  # type: ignore[union-attr]
    queue.close()


def test_a_job_claimed_elsewhere_waits_for_its_lease(make_store) -> None:
    store: Store = make_store()
    store.sale(["LAT"], sale_id="s-1")
    now = datetime.now(UTC)
    queue = PrintQueue(store.cfg.ledger.path, store.cfg, clock=lambda: now)
    [job] = queue.jobs()
    assert queue.claim(job.id) is not None
    # another till printing it over a shared file: alive as far as we can tell
    queue.conn.execute("UPDATE print_jobs SET last_error='printing by other-host:1'")
    assert queue.recover() == 0 and queue.job(job.id).status == "printing"  # type: ignore[union-attr]
    taken = queue.print_job(job.id, Listener())  # a second try meets the claim: it prints nothing and says why
    assert not taken.printed and taken.elsewhere and taken.error == "job is printing, not queued"
    later = PrintQueue(store.cfg.ledger.path, store.cfg, clock=lambda: now + timedelta(seconds=LEASE_S + 1))
    assert later.recover() == 1
    recovered = later.job(job.id)
    assert recovered is not None and recovered.status == "queued" and recovered.copy
    later.close()
    queue.close()


def test_a_run_that_loses_a_job_to_another_process_reports_no_failure(make_store) -> None:
    store: Store = make_store()
    store.sale(["LAT"], sale_id="s-1")
    store.sale(["CRO"], sale_id="s-2")
    other = PrintQueue(store.cfg.ledger.path, store.cfg)

    class Racing(PrintQueue):
        def due(self, limit: int = 20):  # type: ignore[no-untyped-def]
            jobs = super().due(limit)
            assert other.claim(jobs[0].id) is not None  # the other process wins the first job between look and claim
            return jobs

    queue = Racing(store.cfg.ledger.path, store.cfg)
    outcomes = queue.run(open_printer("preview://"))
    assert [(o.job.ref, o.printed) for o in outcomes] == [("s-2", True)]  # the lost job is not a failure of this run
    queue.close()
    other.close()


def test_receipt_command_formats(make_store, tmp_path: Path) -> None:
    store: Store = make_store(locale="ar")
    sale = store.sale(["LAT*2"], sale_id="s-1")
    store.service.close()
    esc, png = tmp_path / "r.bin", tmp_path / "r.png"
    assert run_cli("--config", str(store.path), "receipt", sale["sale"], "--format", "escpos", "--out", str(esc)).code == 0
    assert run_cli("--config", str(store.path), "receipt", sale["sale"], "--format", "png", "--out", str(png)).code == 0
    d = decode(esc.read_bytes())
    assert d.text_bytes == 0 and d.rasters and d.qr[0].startswith(f"LOYALTY:card={CARD};receipt=till-1-")
    assert png.read_bytes().startswith(b"\x89PNG")
    text = run_cli("--config", str(store.path), "receipt", sale["sale"]).out
    assert "لاتيه" in text


def test_printer_test_and_status_commands(make_store, listener: Listener, tmp_path: Path) -> None:
    store: Store = make_store()
    store.service.close()
    out = tmp_path / "test.bin"
    r = run_cli("--config", str(store.path), "--json", "printer", "test", "--url", f"file://{out}", "--paper", "58")
    assert r.code == 0 and r.json["paper_mm"] == 58
    d = decode(out.read_bytes())
    assert "PRINTER TEST" in d.text and d.qr == ["LOYALTY:test"] and d.barcodes == ["{BTEST-1234"] and d.cuts == 1
    columns = paper(store.cfg.printer.profile, 58).columns
    rulers = [line for line in d.text.splitlines() if line.startswith("1234567890")]
    assert [len(line) for line in rulers] == [columns], rulers  # one line, exactly as wide as the paper
    r = run_cli("--config", str(store.path), "--json", "printer", "status", "--url", listener.url)
    assert r.code == 0 and r.json["ready"] is True and r.json["online"] is True
    r = run_cli("--config", str(store.path), "printer", "test", "--url", "lpr://x")
    assert r.code == 1 and "escpos+tcp://" in r.err


CHILD = r"""
import sys
from ledger.config import load
from drivers.printers import open_printer
from receipts.queue import PrintQueue

cfg = load(sys.argv[1])
queue = PrintQueue(cfg.ledger.path, cfg)
printer = open_printer(cfg.printer.url, profile=cfg.printer.profile, paper_mm=cfg.printer.paper_width_mm, timeout_s=5)
print("ready", flush=True)
queue.run(printer)
print("done", flush=True)
"""


@pytest.mark.parametrize("kill_after_s", [0.0, 0.25, 0.45, 0.7])
def test_sigkill_while_printing_loses_nothing_and_marks_any_second_paper_copy(make_store, kill_after_s: float) -> None:
    # The printer answers no status query: the child waits for it with the job claimed ('printing').
    server = Listener(status=None).start()
    try:
        store: Store = make_store(printer=server.url)
        sale = store.sale(["LAT*3", "CRO"], sale_id="s-kill")
        store.service.close()
        db = store.cfg.ledger.path
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(store.path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 10
            while _job(db)[0]["status"] == "queued" and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(kill_after_s)
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=10)
        [job] = _job(db)
        assert job["status"] in ("printing", "printed"), job
        before = len(_receipts(server))

        # restart at once: the claiming process is gone, no need to wait for its lease
        queue = PrintQueue(db, store.cfg)
        outcomes = queue.run(open_printer(server.url, profile=store.cfg.printer.profile, timeout_s=5))
        [job] = [j.as_json() for j in queue.jobs()]
        queue.close()
        time.sleep(0.2)
        papers = [decode(p) for p in _receipts(server)]
        assert job["status"] == "printed", job
        assert 1 <= len(papers) <= 2
        # the last paper is whole; a first one may have been cut short by the kill
        assert sale["receipt"]["number"] in papers[-1].text and papers[-1].cuts == 1
        if before == 0 or job["copy"]:
            # killed mid-print: printed again, and that second paper says so
            assert outcomes and outcomes[0].printed
            assert "*** COPY ***" in papers[-1].text
        if len(papers) == 2:
            assert "COPY" not in papers[0].text and "*** COPY ***" in papers[1].text
        if not job["copy"]:
            assert len(papers) == 1 and not outcomes  # finished before the kill: never printed twice
    finally:
        server.stop()


def test_a_sale_retried_after_a_kill_mid_print_prints_its_receipt_as_copy(make_store, tmp_path: Path) -> None:
    import socket

    from terminal.commands.printing import after_sale
    from terminal.context import Context

    out = tmp_path / "paper.bin"
    store: Store = make_store(printer=f"file://{out}")
    sale = store.sale(["LAT"], sale_id="s-killed")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # the first run of the command, killed while its receipt printed: its process is no more
    store.service.conn.execute("UPDATE print_jobs SET status='printing', attempts=1, next_try_at='9999-12-31T00:00:00Z',"
                               " last_error=? WHERE ref='s-killed'", (f"printing by {socket.gethostname()}:{gone.pid}",))
    store.service.close()
    ctx = Context(config_path=str(store.path), now_text=None, as_json=False)
    try:
        after_sale(ctx, {**sale, "replayed": True})  # the retry, answered from the ledger
    finally:
        ctx.close()
    d = decode(out.read_bytes())
    assert sale["receipt"]["number"] in d.text and "*** COPY ***" in d.text  # paper may have come out the first time


def test_after_refund_prints_the_slip(make_store, tmp_path: Path) -> None:
    from terminal.commands.printing import after_refund
    from terminal.context import Context

    out = tmp_path / "paper.bin"
    store: Store = make_store(printer=f"file://{out}")
    store.sale(["LAT"], sale_id="s-1")
    refund = store.refund("s-1")
    store.service.close()
    ctx = Context(config_path=str(store.path), now_text=None, as_json=False)
    try:
        after_refund(ctx, refund)
    finally:
        ctx.close()
    d = decode(out.read_bytes())
    # the slip first, then the sale's receipt that had waited behind it (marked refunded by now)
    assert d.cuts == 2 and d.text.index("REFUND\n") < d.text.index("REFUNDED")
    jobs = {j["kind"]: j["status"] for j in _job(store.cfg.ledger.path)}
    assert jobs == {"sale": "printed", "refund": "printed"}


def test_printer_test_on_a_printer_out_of_paper_says_what_the_printer_said(make_store, tmp_path: Path) -> None:
    store: Store = make_store()
    store.service.close()
    empty = Listener(status={1: 0x12, 2: 0x12, 4: 0x72}).start()  # DLE EOT 4: paper out
    try:
        r = run_cli("--config", str(store.path), "--json", "printer", "test", "--url", empty.url)
        assert r.code == 1
        assert r.json["printed"] is False and r.json["status"]["paper_out"] is True and "paper out" in r.json["error"]
        [line] = r.err.strip().splitlines()
        assert json.loads(line)["error"] == "printer" and "paper out" in line
        text = run_cli("--config", str(store.path), "printer", "test", "--url", empty.url)
        assert text.code == 1 and "test page NOT printed" in text.out and "paper out" in text.err
        assert all(b"PRINTER TEST" not in sent for sent in empty.received)
    finally:
        empty.stop()


def test_status_0_in_the_url_means_the_printer_is_never_asked(make_store) -> None:
    store: Store = make_store()
    store.service.close()
    mute = Listener(status={1: 0x12, 2: 0x12, 4: 0x72}).start()  # it would say paper out if asked
    try:
        r = run_cli("--config", str(store.path), "--json", "printer", "status", "--url", mute.url + "?status=0")
        assert r.code == 0 and r.json["ready"] is True and r.json["paper_out"] is None and "status not asked" in r.json["detail"]
        r = run_cli("--config", str(store.path), "--json", "printer", "test", "--url", mute.url + "?status=0")
        assert r.code == 0 and r.json["printed"] is True
        mute.wait_for(2)
        assert all(b"\x10\x04" not in sent for sent in mute.received)
        assert any(b"PRINTER TEST" in sent for sent in mute.received)
    finally:
        mute.stop()


def test_a_run_that_stops_at_a_printer_gone_says_how_many_jobs_wait(make_store) -> None:
    store: Store = make_store(printer=f"escpos+tcp://127.0.0.1:{free_port()}")  # nothing listens there
    store.sale(["LAT"], sale_id="s-1")
    store.sale(["ESP"], sale_id="s-2")
    store.service.close()
    r = run_cli("--config", str(store.path), "--json", "print-queue", "retry")
    assert r.code == 1 and r.json["made_due"] == 2
    assert len(r.json["jobs"]) == 1 and r.json["printed"] == 0  # the first failure stops the run: the printer is down
    assert r.json["waiting"] == 2 and "2 job(s) wait for the next try" in r.err


def test_a_refund_slip_read_back_from_the_ledger_prints_as_the_one_made_at_the_till(make_store) -> None:
    from receipts.templates import refund_slip
    from receipts.text import render_text

    store: Store = make_store()
    sale = store.sale(["LAT*3", "CRO"], sale_id="s-slip")  # stamps and points: two programs reversed
    refund = store.refund(sale["sale"])
    stored = json.loads(store.service.conn.execute("SELECT result FROM refunds WHERE id=?", (refund["refund"],)).fetchone()[0])
    assert len(refund["reversed"]) > 1  # the order is what differs between the two
    assert render_text(refund_slip(stored, store.cfg), 42) == render_text(refund_slip(refund, store.cfg), 42)
