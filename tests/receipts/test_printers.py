"""Printers by URL over real transports: the same bytes as python-escpos's Dummy, status, timeouts."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import serial
from escpos_decode import decode
from receipt_support import Listener, PtyPair, build, config

from drivers.printers import PrinterError, RawPayload, open_printer, parse_status
from drivers.printers import preview as preview_driver
from drivers.printers.base import STATUS_QUERIES
from receipts.escpos import render_escpos
from receipts.i18n import Lang
from receipts.queue import RenderedJob

PROFILE = "TM-T88V"


def _job(tmp: Path, locale: str, kind: str = "sale", width: int = 80) -> RenderedJob:
    cfg = config(tmp / locale, locale=locale, paper=width)
    doc = build(kind, cfg, Lang(locale, tz=cfg.store.tz))
    return RenderedJob(doc, cfg, profile=PROFILE, paper_mm=width, title=f"{kind} {locale}")


def _dummy_bytes(job: RenderedJob) -> bytes:
    return render_escpos(job.doc, profile=PROFILE, width_mm=job.paper_mm)


@pytest.mark.parametrize("locale", ["en", "ar", "fa"])
def test_tcp_gets_the_dummy_bytes(listener: Listener, tmp_path: Path, locale: str) -> None:
    job = _job(tmp_path, locale)
    printer = open_printer(listener.url + "?status=0", profile=PROFILE, paper_mm=80, timeout_s=3)
    printer.print(job)
    listener.wait_for(1)
    assert listener.received == [_dummy_bytes(job)]


def test_tcp_asks_status_first_then_prints(listener: Listener, tmp_path: Path) -> None:
    job = _job(tmp_path, "en", "voucher")
    printer = open_printer(listener.url, profile=PROFILE, paper_mm=80, timeout_s=3)
    status = printer.status()
    assert status.ready and status.online is True and status.paper_out is False and status.detail == "ready"
    printer.print(job)
    listener.wait_for(2)
    # and once more after the job: its answer says the printer read every byte before it
    assert listener.received[1] == STATUS_QUERIES + _dummy_bytes(job) + b"\x10\x04\x01"
    assert decode(listener.received[1]).status_queries[:3] == [1, 2, 4]


@pytest.mark.parametrize(
    ("answers", "problem"),
    [
        ({1: 0x12 | 0x08, 2: 0x12, 4: 0x12}, "offline"),
        ({1: 0x12 | 0x08, 2: 0x12 | 0x04, 4: 0x12}, "cover open"),
        ({1: 0x12 | 0x08, 2: 0x12 | 0x20, 4: 0x12 | 0x60}, "paper out"),
    ],
)
def test_status_stops_the_job_and_says_why(tmp_path: Path, answers: dict[int, int], problem: str) -> None:
    server = Listener(status=answers).start()
    try:
        printer = open_printer(server.url, profile=PROFILE, paper_mm=80, timeout_s=2)
        assert printer.status().problem() == problem
        with pytest.raises(PrinterError, match=problem):
            printer.print(_job(tmp_path, "en", "voucher"))
        time.sleep(0.1)
        assert all(r in (b"", STATUS_QUERIES) for r in server.received), "no receipt byte after a bad status"
    finally:
        server.stop()


def test_paper_near_end_still_prints() -> None:
    status = parse_status(0x12, 0x12, 0x12 | 0x0C)
    assert status.ready and status.paper_near_end and status.detail == "paper near end"
    assert parse_status(None, None, None).ready  # a printer that says nothing is not stopped


def test_silent_printer_is_printed_to_after_a_short_wait(tmp_path: Path) -> None:
    server = Listener(status=None).start()
    try:
        job = _job(tmp_path, "en", "voucher")
        start = time.monotonic()
        open_printer(server.url, profile=PROFILE, paper_mm=80, timeout_s=2).print(job)
        assert time.monotonic() - start < 1.5
        server.wait_for(1)
        assert server.received[0].endswith(_dummy_bytes(job))
    finally:
        server.stop()


def test_write_times_out_when_the_printer_stops_reading() -> None:
    server = Listener(reading=False).start()
    try:
        printer = open_printer(server.url + "?status=0", profile=PROFILE, paper_mm=80, timeout_s=0.5)
        start = time.monotonic()
        with pytest.raises(PrinterError, match="timed out"):
            printer.print(RawPayload(b"\x00" * (64 << 20)))
        assert time.monotonic() - start < 5
    finally:
        server.stop()


def test_a_printer_that_stops_reading_after_the_status_does_not_count_the_receipt_printed(tmp_path: Path) -> None:
    server = Listener(read_limit=len(STATUS_QUERIES)).start()  # answers the three queries, then hangs
    try:
        printer = open_printer(server.url, profile=PROFILE, paper_mm=80, timeout_s=0.5)
        with pytest.raises(PrinterError, match="did not confirm the whole receipt"):
            printer.print(_job(tmp_path, "en", "voucher"))
        # and from now on its silence is a fault, not a printer that never answers status
        server.reading = False
        with pytest.raises(PrinterError, match="does not answer, though it did before"):
            printer.print(_job(tmp_path, "en", "voucher"))
        server.reading, server.read_limit = True, None
        printer.print(_job(tmp_path, "en", "voucher"))  # back: it prints
    finally:
        server.stop()


def test_printer_switched_off_is_an_error_not_a_hang(tmp_path: Path) -> None:
    from receipt_support import free_port

    printer = open_printer(f"escpos+tcp://127.0.0.1:{free_port()}", profile=PROFILE, paper_mm=80, timeout_s=1)
    with pytest.raises(PrinterError, match="cannot connect"):
        printer.print(_job(tmp_path, "en", "voucher"))


@pytest.mark.parametrize("locale", ["en", "ar"])
def test_serial_over_a_socat_pty_gets_the_dummy_bytes(pty_pair: PtyPair, tmp_path: Path, locale: str) -> None:
    job = _job(tmp_path, locale, width=58)
    expected = _dummy_bytes(job)
    got = bytearray()
    with serial.Serial(pty_pair.device_side, 19200, timeout=0.2) as device:
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set() or device.in_waiting:
                got.extend(device.read(65536))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        url = f"escpos+serial://{pty_pair.printer_side}?baudrate=19200&status=0"
        open_printer(url, profile=PROFILE, paper_mm=58, timeout_s=5).print(job)
        deadline = time.monotonic() + 5
        while len(got) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()
        reader.join(timeout=2)
    assert bytes(got) == expected


def test_file_printer_appends_each_job(tmp_path: Path) -> None:
    out = tmp_path / "lp0.bin"
    job = _job(tmp_path, "fa", "enrolment")
    printer = open_printer(f"file://{out}", profile=PROFILE, paper_mm=80, timeout_s=2)
    printer.print(job)
    printer.print(job)
    assert out.read_bytes() == _dummy_bytes(job) * 2
    assert decode(out.read_bytes()).cuts == 2


def test_file_printer_times_out_on_a_stuck_device(tmp_path: Path) -> None:
    fifo = tmp_path / "stuck"
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader that never reads: the pipe fills up
    try:
        printer = open_printer(f"file://{fifo}", profile=PROFILE, paper_mm=80, timeout_s=0.3)
        with pytest.raises(PrinterError, match="timed out"):
            printer.print(RawPayload(b"x" * (1 << 20)))
    finally:
        os.close(keep)


def test_preview_keeps_the_last_receipt(tmp_path: Path) -> None:
    job = _job(tmp_path, "ar")
    folder = tmp_path / "preview"
    printer = open_printer(f"preview://{folder}", profile=PROFILE, paper_mm=80, timeout_s=1)
    printer.print(job)
    last = preview_driver.last()
    assert last is not None and last.title == "sale ar"
    assert "الإجمالي" in last.text and "لاتيه" in last.text
    assert last.png.startswith(b"\x89PNG")
    assert (folder / "last.txt").read_text(encoding="utf-8") == last.text
    assert (folder / "last.png").read_bytes() == last.png


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(PrinterError) as err:
        open_printer("lpr://printer")
    message = str(err.value)
    for scheme in ("escpos+tcp://", "escpos+serial://", "escpos+usb://", "file://", "preview://"):
        assert scheme in message


def test_bad_urls_are_refused_clearly() -> None:
    with pytest.raises(PrinterError, match="VID:PID"):
        open_printer("escpos+usb://epson")
    with pytest.raises(PrinterError, match="unknown option"):
        open_printer("escpos+tcp://10.0.0.5:9100?speed=9")
    with pytest.raises(PrinterError, match="needs a device"):
        open_printer("escpos+serial://")


TEMPLATES = ("sale", "refund", "z", "voucher", "enrolment")


@pytest.mark.parametrize("locale", ["en", "ar", "fa"])
def test_every_template_over_tcp_and_serial(listener: Listener, pty_pair: PtyPair, tmp_path: Path, locale: str) -> None:
    jobs = [_job(tmp_path / kind, locale, kind) for kind in TEMPLATES]
    expected = [_dummy_bytes(job) for job in jobs]
    tcp = open_printer(listener.url + "?status=0", profile=PROFILE, paper_mm=80, timeout_s=3)
    for job in jobs:
        tcp.print(job)
    listener.wait_for(len(jobs))
    assert listener.received == expected

    got = bytearray()
    with serial.Serial(pty_pair.device_side, 19200, timeout=0.1) as device:
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                got.extend(device.read(65536))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        line = open_printer(f"escpos+serial://{pty_pair.printer_side}?baudrate=19200&status=0", profile=PROFILE,
                            paper_mm=80, timeout_s=5)
        for job in jobs:
            line.print(job)
        deadline = time.monotonic() + 5
        while len(got) < sum(len(e) for e in expected) and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()
        reader.join(timeout=2)
    assert bytes(got) == b"".join(expected)

    for kind, data in zip(TEMPLATES, expected, strict=True):
        d = decode(data)
        assert d.cuts == 1 and d.inits == 1, kind
        if locale != "en":
            assert d.text_bytes == 0 and d.rasters, kind
        if kind == "voucher":
            assert d.barcodes == ["{BCOFFEE-12-AB12CD"]
        if kind in ("sale", "enrolment"):
            assert d.qr and d.qr[0].startswith("LOYALTY:card=uid:04A1B2C3D4E5F6")


@pytest.mark.parametrize("locale", ["en", "ar", "fa"])
def test_every_template_as_png_and_text(tmp_path: Path, locale: str) -> None:
    for kind in TEMPLATES:
        job = _job(tmp_path / kind, locale, kind)
        assert job.png().startswith(b"\x89PNG")
        text = job.text()
        assert text.strip() and ("\u200f" in text) == (locale != "en")


def test_usb_printer_that_is_not_plugged_in_is_a_clear_error() -> None:
    # pyusb and libusb are installed: the driver reaches the USB bus and finds no such printer
    printer = open_printer("escpos+usb://04b8:0e15")
    with pytest.raises(PrinterError, match="not found"):
        printer.status()
    printer.close()


def test_a_printer_that_refuses_the_connection_is_named_in_plain_words(tmp_path: Path) -> None:
    import socket

    from receipt_support import run_cli, write_config

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"escpos+tcp://127.0.0.1:{port}"
    r = run_cli("--config", str(write_config(tmp_path, printer=url, timeout_s=1.0)), "printer", "status")
    assert r.code == 1
    assert r.out.strip() == f"{url}: cannot connect: connection refused: is the printer on, and at this address and port?"
    assert "Device not found" not in r.out and r.out.count(url) == 1
