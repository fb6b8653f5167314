"""A long item name is wrapped between words on every output, never cut at the paper's edge."""

from __future__ import annotations

import pytest

from receipts.model import Row
from receipts.raster import line_height, render_blocks
from receipts.text import row

NAME = "Spanish latte with condensed milk, extra shot and a very long description of oat milk"


@pytest.mark.parametrize("columns", [32, 42])
def test_text_rows_wrap_long_labels_and_keep_the_amount(columns: int) -> None:
    lines = row(NAME, "12.500", columns)
    assert len(lines) > 1 and all(len(line) <= columns for line in lines)
    assert " ".join(" ".join(lines).split()).replace(" 12.500", "") == NAME  # every word kept, in order
    assert lines[-1].endswith("12.500")


@pytest.mark.parametrize(("rtl", "lang", "label"), [(False, "en", NAME), (True, "ar", "لاتيه إسباني بالحليب المكثف مع جرعة إضافية ووصف طويل جدا مع حليب الشوفان")])
def test_raster_rows_wrap_long_labels(rtl: bool, lang: str, label: str) -> None:
    width = 384  # 58 mm
    one = render_blocks([Row("Latte", "1.250")], width, rtl=rtl, lang=lang)
    long = render_blocks([Row(label, "1.250")], width, rtl=rtl, lang=lang)
    assert long.width == one.width == width
    # more lines, not a line cut at the edge
    assert long.height >= one.height + 2 * line_height(1)  # the label alone takes three lines at 58 mm


@pytest.mark.parametrize("columns", [32, 42, 48])
def test_text_qr_and_barcode_stand_ins_fit_the_paper(columns: int) -> None:
    from receipts.model import QR, Barcode, Document
    from receipts.text import render_text

    data = "LOYALTY:card=uid:04A1B2C3D4E5F6;receipt=till-1-000016;seq=16;h=0210b4e2348c"
    doc = Document(kind="sale")
    doc.add(QR(data), Barcode("X" * 60))
    lines = render_text(doc, columns).splitlines()
    assert all(len(line) <= columns for line in lines)
    text = "".join("".join(line.split()) for line in lines)
    assert text == f"[QR{data}][CODE128{'X' * 60}]"  # nothing lost
    assert any(line.endswith(";") for line in lines)  # fields break after their ';'
    assert not any(line.strip().startswith(";") for line in lines)
