"""Printer and print-queue commands, and the print after each sale."""

from __future__ import annotations

import argparse
import sqlite3
from datetime import date
from typing import Any

from drivers.printers import PrinterError, ReceiptPrinter, open_printer
from ledger.config import Config
from ledger.errors import LoyaltyError
from receipts.model import Document
from receipts.queue import Loader, Outcome, PrintQueue, RenderedJob, RenderError

from ..context import Context, Output
from . import bounded, limit_arg

AFTER_SALE_TIMEOUT_S = 2.0  # the cashier waits for this at most; the queue keeps the rest
KINDS = ("sale", "refund", "z_report", "voucher", "enrolment")


def register(sub: Any) -> None:
    p = sub.add_parser("printer", help="receipt printer: test page and status")
    psub = p.add_subparsers(dest="printer_command", metavar="ACTION", required=True)
    t = psub.add_parser("test", help="print a test page (store header, ruler, QR, barcode, cut) and show the status")
    _printer_options(t)
    t.add_argument("--locale", choices=("en", "ar", "fa"), help="language of the test page (default: the store's)")
    t.set_defaults(handler=cmd_printer_test)
    s = psub.add_parser("status", help="ask the printer for its status (DLE EOT) without printing")
    _printer_options(s)
    s.set_defaults(handler=cmd_printer_status)

    q = sub.add_parser("print-queue", help="receipts waiting for the printer: list, run, retry, reprint")
    qsub = q.add_subparsers(dest="queue_command", metavar="ACTION")
    q.set_defaults(handler=cmd_queue_list, status=None, limit=20)
    ql = qsub.add_parser("list", help="the latest jobs (default action)")
    ql.add_argument("--status", choices=("queued", "printing", "printed", "failed"))
    ql.add_argument("--limit", type=limit_arg, default=20, help="the latest N jobs (default 20)")
    ql.set_defaults(handler=cmd_queue_list)
    qr = qsub.add_parser("run", help="print every job that is due now")
    _printer_options(qr)
    qr.set_defaults(handler=cmd_queue_run)
    qt = qsub.add_parser("retry", help="make waiting and failed jobs due now and print them")
    qt.add_argument("job", nargs="*", type=bounded(1, 2**62), help="job ids (default: all waiting and failed)")
    _printer_options(qt)
    qt.set_defaults(handler=cmd_queue_retry)
    qp = qsub.add_parser("reprint", help="print a receipt again, marked COPY")
    qp.add_argument("job", nargs="?", type=bounded(1, 2**62), help="the job id to print again")
    qp.add_argument("--sale", metavar="SALE", help="the sale's receipt: its number (till-1-000042 or 42) or the sale id")
    qp.add_argument("--kind", choices=KINDS, help="with --ref: any receipt kind")
    qp.add_argument("--ref", help="with --kind: sale id, refund id, day (z_report), SALE:PROGRAM (voucher), card (enrolment)")
    _printer_options(qp)
    qp.set_defaults(handler=cmd_queue_reprint)


def _printer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="printer URL (default: [printer] url in the config)")
    p.add_argument("--paper", type=int, choices=(58, 80), help="paper width in mm (default: the config's)")


def _open(cfg: Config, args: argparse.Namespace | None = None, *, timeout_s: float | None = None) -> ReceiptPrinter:
    url = getattr(args, "url", None) or cfg.printer.url
    paper = getattr(args, "paper", None) or cfg.printer.paper_width_mm
    try:
        return open_printer(url, profile=cfg.printer.profile, paper_mm=paper, timeout_s=timeout_s or cfg.printer.timeout_s)
    except PrinterError as exc:
        raise LoyaltyError("printer", str(exc)) from None


def _z_loader(conn: sqlite3.Connection, cfg: Config, ref: str, copy: bool) -> Document:
    from receipts.templates import z_report
    from sync.endofday import z_report as day_totals

    try:
        day = date.fromisoformat(ref)
    except ValueError:
        raise RenderError(f"{ref!r} is not a business day (YYYY-MM-DD)") from None
    # a Z report is the paper of a closed day: a "copy" of a day still open (or never kept) copies nothing
    if conn.execute("SELECT 1 FROM business_days WHERE day=?", (day.isoformat(),)).fetchone() is None:
        raise RenderError(f"business day {ref} is not closed: it has no Z report (loyalty report z --day {ref} shows its figures)")
    return z_report(day_totals(conn, cfg, day), cfg, copy=copy)


LOADERS: dict[str, Loader] = {"z_report": _z_loader}
_WHAT = {"z_report": "Z report", "refund": "refund slip"}


def open_queue(ctx: Context, printer: ReceiptPrinter | None = None) -> PrintQueue:
    cfg = ctx.config
    ctx.service  # noqa: B018 - opening the service creates and migrates the ledger file first
    # --now dates the jobs and their retries too: a script's clock is the queue's clock
    return PrintQueue(cfg.ledger.path, cfg, loaders=LOADERS, clock=lambda: ctx.now,
                      paper_mm=printer.paper_mm if printer is not None else None)


def after_sale(ctx: Context, result: dict[str, Any]) -> None:
    """Print the committed sale's receipt once, briefly; on any failure it waits in the queue."""
    print_now(ctx, "sale", str(result["sale"]))


def after_refund(ctx: Context, result: dict[str, Any]) -> None:
    """The same for a committed refund's slip."""
    print_now(ctx, "refund", str(result["refund"]))


def after_end_of_day(ctx: Context, day: str) -> None:
    """The day's Z report on paper, once: queued if no job has it yet, then one short attempt."""
    queue = open_queue(ctx)
    try:
        if queue.find("z_report", day) is None:
            queue.enqueue("z_report", day)
    finally:
        queue.close()
    print_now(ctx, "z_report", day)


def print_now(ctx: Context, kind: str, ref: str) -> None:
    """One short attempt at a queued job; never raises, so a committed operation never fails on paper."""
    queue: PrintQueue | None = None
    try:
        printer = _open(ctx.config, timeout_s=min(ctx.config.printer.timeout_s, AFTER_SALE_TIMEOUT_S))
        queue = open_queue(ctx, printer)
        # a retried sale whose first run was killed mid-print: its job goes back to the queue (as COPY), and out now
        queue.recover()
        job = queue.find(kind, ref)
        if job is None or job.status != "queued":
            return
        outcome = queue.print_job(job.id, printer)
        if outcome.elsewhere:
            return  # another process (a queue run, a second till command) took it between find and claim
        if outcome.printed:
            # The printer is back: what waited behind it goes out too, a few at a time.
            queue.run(printer, limit=5)
        else:
            # a warning, not an error: the operation stands (exit 0)
            ctx.stderr_line("warning", "not_printed", f"{_WHAT.get(kind, 'receipt')} not printed, kept in the print queue (job {job.id}): {outcome.error}")
    except Exception as exc:  # a receipt problem must never fail a committed sale
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        ctx.stderr_line("warning", "not_printed", f"{_WHAT.get(kind, 'receipt')} not printed, kept in the print queue: {reason}")
    finally:
        if queue is not None:
            queue.close()


def cmd_printer_test(args: argparse.Namespace, ctx: Context) -> Output:
    from receipts.templates import lang_for, printer_test

    cfg = ctx.config
    printer = _open(cfg, args)
    status = _status(printer)
    doc = printer_test(cfg, lang=lang_for(cfg, args.locale), paper_mm=printer.paper_mm)
    payload = RenderedJob(doc, cfg, profile=printer.profile, paper_mm=printer.paper_mm, title="printer test")
    try:
        printer.print(payload)
    except PrinterError as exc:
        # what the printer said is the answer the manager needs: it goes with the failure
        said = status["detail"] or "unknown"
        data = {"url": printer.url, "paper_mm": printer.paper_mm, "printed": False, "error": str(exc), "status": status}
        return Output(data, f"test page NOT printed: {exc}; status: {said}", exit_code=1, problem=("printer", f"{exc} (status: {said})"))
    data = {"url": printer.url, "paper_mm": printer.paper_mm, "printed": True, "status": status}
    return Output(data, f"test page sent to {printer.url} ({printer.paper_mm} mm); status: {status['detail'] or 'unknown'}")


def _status(printer: ReceiptPrinter) -> dict[str, Any]:
    try:
        return printer.status().as_json()
    except PrinterError as exc:
        return {"ready": False, "detail": str(exc)}


def cmd_printer_status(args: argparse.Namespace, ctx: Context) -> Output:
    printer = _open(ctx.config, args)
    status = _status(printer)
    ok = bool(status.get("ready"))
    said = str(status.get("detail") or "unknown")
    detail = said if said.startswith(printer.url) else f"{printer.url}: {said}"  # the driver may name the URL itself
    return Output({"url": printer.url, **status}, detail, exit_code=0 if ok else 1, problem=None if ok else ("printer_not_ready", detail))


def cmd_queue_list(args: argparse.Namespace, ctx: Context) -> Output:
    from ledger.clock import local_time

    with open_queue(ctx) as queue:
        jobs = queue.jobs(status=args.status, limit=args.limit)
        counts = queue.counts()
    # a manager reads receipt numbers (what is printed on the paper) and the store's clock
    sale_ids = [j.ref for j in jobs if j.kind in ("sale", "refund")]
    marks = ",".join("?" * len(sale_ids))
    numbers = dict(ctx.service.conn.execute(
        f"SELECT id, receipt_no FROM sales WHERE id IN ({marks}) UNION ALL"
        f" SELECT r.id, s.receipt_no FROM refunds r JOIN sales s ON s.id = r.sale_id WHERE r.id IN ({marks})",
        (*sale_ids, *sale_ids),
    ).fetchall()) if sale_ids else {}
    tz = ctx.config.store.tz
    lines = [", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no print jobs"]
    for job in jobs:
        flag = " COPY" if job.copy else ""
        when = local_time(job.next_try_at, tz).strftime("%Y-%m-%d %H:%M") if job.next_try_at else ""
        extra = f" next try {when}" if job.status == "queued" and when else ""
        error = f" - {job.last_error}" if job.last_error and job.status != "printed" else ""
        ref = numbers.get(job.ref) or job.ref
        lines.append(f"{job.id:>6} {job.status:<8} {job.kind:<9} {ref}{flag} attempts={job.attempts}{extra}{error}")
    return Output({"counts": counts, "jobs": [j.as_json() | ({"receipt": numbers[j.ref]} if j.ref in numbers else {}) for j in jobs]},
                  "\n".join(lines))


def _report(outcomes: list[Outcome], queue: PrintQueue, extra: dict[str, Any] | None = None) -> Output:
    printed = sum(1 for o in outcomes if o.printed)
    waiting = queue.counts().get("queued", 0)  # a run stops at the first failure: the printer is down for the rest too
    lines = [f"printed {printed} of {len(outcomes)} job(s)" + (f"; {waiting} waiting for the next try" if waiting else "")]
    lines += [f"  job {o.job.id} ({o.job.kind} {o.job.ref}): {'printed' if o.printed else o.error}" for o in outcomes]
    data = {"printed": printed, "jobs": [o.as_json() for o in outcomes], "waiting": waiting, **(extra or {})}
    failed = [o for o in outcomes if not o.printed]
    rest = f"; {waiting} job(s) wait for the next try" if waiting else ""
    problem = (("print_failed", f"{len(failed)} of {len(outcomes)} job(s) not printed: job {failed[0].job.id}: {failed[0].error}{rest}")
               if failed else None)
    return Output(data, "\n".join(lines), exit_code=1 if failed else 0, problem=problem)


def cmd_queue_run(args: argparse.Namespace, ctx: Context) -> Output:
    printer = _open(ctx.config, args)
    with open_queue(ctx, printer) as queue:
        return _report(queue.run(printer), queue)


def cmd_queue_retry(args: argparse.Namespace, ctx: Context) -> Output:
    printer = _open(ctx.config, args)
    with open_queue(ctx, printer) as queue:
        for job_id in args.job or []:
            if queue.job(job_id) is None:
                raise LoyaltyError("unknown_job", f"no print job {job_id} (loyalty print-queue lists them)")
        made_due = queue.retry(args.job or None)
        return _report(queue.run(printer), queue, {"made_due": made_due})


def cmd_queue_reprint(args: argparse.Namespace, ctx: Context) -> Output:
    given = [name for name, value in (("a job id", args.job), ("--sale", args.sale), ("--kind/--ref", args.kind or args.ref))
             if value is not None]
    if len(given) > 1:
        raise LoyaltyError("usage", f"give one of a job id, --sale or --kind with --ref, not {' and '.join(given)}")
    printer = _open(ctx.config, args)
    with open_queue(ctx, printer) as queue:
        if args.job is not None:
            job = queue.job(args.job)
            if job is None:
                raise LoyaltyError("unknown_job", f"no print job {args.job}")
            kind, ref = job.kind, job.ref
        elif args.sale:
            kind, ref = "sale", ctx.service.find_sale(args.sale)  # the receipt number on the paper, its digits, or the id
        elif args.kind and args.ref:
            kind, ref = args.kind, args.ref
        else:
            raise LoyaltyError("usage", "give a job id, --sale SALE_ID, or --kind KIND --ref REF")
        try:
            new_id = queue.reprint(kind, ref)
        except RenderError as exc:
            raise LoyaltyError("unknown_receipt", str(exc)) from None
        return _report([queue.print_job(new_id, printer)], queue, {"job": new_id})
