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
