"""ESC/POS bytes: golden files per template and paper width, and what a customer reads off them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from escpos_decode import decode
from receipt_support import GOLDEN, KINDS, build, config, frozen

from receipts.escpos import paper, render_escpos
from receipts.i18n import Lang
from receipts.templates import qr_payload

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
PROFILE = "TM-T88V"


def _bytes(kind: str, locale: str, width: int, tmp: Path, *, copy: bool = False) -> bytes:
    cfg = config(tmp, locale=locale, paper=width)
    return render_escpos(build(kind, cfg, Lang(locale, tz=cfg.store.tz), copy=copy), profile=PROFILE, width_mm=width)


def _check_golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(data)
    assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1 once and review it"
    assert data == path.read_bytes(), f"{name} changed; decode both to see how"


@pytest.mark.parametrize("width", [58, 80])
@pytest.mark.parametrize("kind", KINDS)
def test_golden_bytes_english(kind: str, width: int, tmp_path: Path) -> None:
    _check_golden(f"{kind}-en-{width}.bin", _bytes(kind, "en", width, tmp_path))


@pytest.mark.parametrize("width", [58, 80])
@pytest.mark.parametrize("locale", ["ar", "fa"])
def test_golden_raster_rtl(locale: str, width: int, tmp_path: Path) -> None:
    # Raster bytes are large: their SHA-256 is the golden file.
    digest = hashlib.sha256(_bytes("sale", locale, width, tmp_path)).hexdigest()
    path = GOLDEN / f"sale-{locale}-{width}.sha256"
    if UPDATE:
        path.write_text(digest + "\n")
    assert path.read_text().strip() == digest


@pytest.mark.parametrize("width", [58, 80])
def test_english_sale_reads_right(width: int, tmp_path: Path) -> None:
    d = decode(_bytes("sale", "en", width, tmp_path))
    sale = frozen()["sale"]
    columns = paper(PROFILE, width).columns
    text = d.text
    assert d.inits == 1 and d.cuts == 1
    for expected in ("Salmiya Coffee House", "Latte", "Beans 250 g", "Date cake", "KWD 7.950", "KWD 6.133",
                     "Coffee card", "8 more to a free coffee", "Rewards ready", "Birthday bonus", "+100",
                     "191 pts", "40 pts valid until 2026-12-14", "Tier", "Silver", "KWD 129.948 more to Gold",
                     "Receipt till-1-000014", "#14 · 1b8b4ed3c168", "Thank you!"):
        assert expected in text, expected
    assert "2026-11-20 09:30" in text and "06:30" not in text  # store time (UTC+3), not the ledger's UTC
    total = next(line for line in d.lines if line.startswith("TOTAL"))
    assert total.endswith("KWD 6.133") and len(total) <= columns // 2  # double width: half the columns
    assert all(len(line) <= columns for line in d.lines)
    assert d.qr == [qr_payload(sale["card"], "till-1-000014", 14, "1b8b4ed3c168")]
    # one small raster: the stamp card's dots (no code page has ● and ○)
    assert len(d.rasters) == 1 and d.rasters[0].width == paper(PROFILE, width).dots
    assert 0.02 < d.rasters[0].ink() < 0.5
    assert "TOTAL" in " ".join(d.bold_lines)


@pytest.mark.parametrize("locale", ["ar", "fa"])
def test_rtl_receipts_are_raster_only(locale: str, tmp_path: Path) -> None:
    d = decode(_bytes("sale", locale, 80, tmp_path))
    sale = frozen()["sale"]
    assert d.text_bytes == 0, "right-to-left receipts never use text mode"
    assert not d.code_pages
    assert len(d.rasters) >= 2 and all(r.width == paper(PROFILE, 80).dots for r in d.rasters)
    assert sum(r.height for r in d.rasters) > 1000
    assert all(0.01 < r.ink() < 0.3 for r in d.rasters), [round(r.ink(), 3) for r in d.rasters]
    assert d.qr == [qr_payload(sale["card"], "till-1-000014", 14, "1b8b4ed3c168")]
    assert d.cuts == 1


def test_copy_is_marked(tmp_path: Path) -> None:
    original = decode(_bytes("sale", "en", 80, tmp_path))
    again = decode(_bytes("sale", "en", 80, tmp_path, copy=True))
    assert "COPY" not in original.text
    assert "*** COPY ***" in again.text


def test_other_templates_read_right(tmp_path: Path) -> None:
    z = decode(_bytes("z", "en", 80, tmp_path)).text
    assert "Z REPORT" in z and "2026-11-20" in z and "KWD 6.133" in z and "Refunds" in z
    voucher = decode(_bytes("voucher", "en", 80, tmp_path))
    assert "REWARD VOUCHER" in voucher.text and "One free coffee" in voucher.text
    assert voucher.barcodes == ["{BCOFFEE-12-AB12CD"]
    enrolment = decode(_bytes("enrolment", "en", 80, tmp_path))
    assert "Welcome!" in enrolment.text and "50 pts" in enrolment.text
    assert enrolment.qr == ["LOYALTY:card=uid:04A1B2C3D4E5F6"]
    refund = decode(_bytes("refund", "en", 80, tmp_path)).text
    assert "REFUND" in refund and "code:5551234" in refund


def test_live_ledger_answers_render(make_store, tmp_path: Path) -> None:
    """The frozen answers must not drift from what the ledger says today."""
    from receipt_support import make_documents

    store = make_store()
    live = make_documents(store)
    data = {"sale": live.sale, "refund": live.refund, "z": live.z, "voucher": live.voucher, "enrolment": live.enrolment}
    for kind in KINDS:
        doc = build(kind, store.cfg, Lang("en", tz=store.cfg.store.tz), data)
        assert decode(render_escpos(doc, profile=PROFILE, width_mm=80)).cuts == 1
    assert set(frozen()["sale"]) <= set(live.sale) | {"refunded"}


def test_an_image_block_is_sent_as_raster(tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    from receipts.model import Cut, Document, Feed, Text
    from receipts.model import Image as ImageBlock
    from receipts.png import render_png

    logo = Image.new("1", (128, 40), 1)
    ImageDraw.Draw(logo).rectangle((0, 0, 63, 39), fill=0)  # left half black
    doc = Document("test").add(ImageBlock(logo), Feed(2), Text("after the logo"), Cut(partial=True))
    d = decode(render_escpos(doc, profile=PROFILE, width_mm=80))
    [raster] = d.rasters
    assert (raster.width, raster.height) == (128, 40) and abs(raster.ink() - 0.5) < 0.01
    assert "after the logo" in d.text and d.cuts == 1
    page = render_png(doc, paper(PROFILE, 80))
    assert page.width == paper(PROFILE, 80).dots + 32


def test_a_control_character_in_a_line_never_reaches_the_printer_as_a_command() -> None:
    from receipts.escpos import render_escpos
    from receipts.model import Document, Row, Text

    doc = Document(kind="enrolment").add(Text("Welcome"), Row("Name", "Ali\x1b@\x1dV\x00"))
    data = render_escpos(doc)
    assert b"Welcome" in data  # plain lines still go as text
    assert b"Ali\x1b@" not in data and b"\x1dV\x00" not in data  # that line is drawn as an image instead
    assert Row("Name", "Ali\x1b@").end == "Ali\ufffd@"


def test_a_day_still_open_prints_an_x_report_not_a_z(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    data = frozen()
    closed = decode(render_escpos(build("z", cfg, Lang("en", tz=cfg.store.tz), data), profile=PROFILE, width_mm=80)).text
    data["z"] = dict(data["z"], closed_at=None)  # `loyalty report z` during the day
    reading = decode(render_escpos(build("z", cfg, Lang("en", tz=cfg.store.tz), data), profile=PROFILE, width_mm=80)).text
    assert "Z REPORT" in closed and "X REPORT" not in closed
    assert "X REPORT" in reading and "Z REPORT" not in reading and "not closed" in reading
