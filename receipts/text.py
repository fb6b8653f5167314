"""Plain-text rendering (preview, CLI, tests).

Right-to-left documents are written in logical order with a right-to-left
mark opening each line, so a bidi-aware viewer lays them out as printed.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from typing import Any

from ledger.config import Config

from .model import QR, Barcode, Cut, Document, Feed, Image, Row, Rule, Stamps, Text
from .templates import lang_for, sale_receipt, stamp_grid

RLM = "\u200f"


def cell_width(text: str) -> int:
    """Columns a string takes in a monospaced terminal (combining marks take none)."""
    return sum(0 if unicodedata.combining(ch) or ch in "\u200c\u200d\u200e\u200f\u061c" else 1 for ch in text)


def row(start: str, end: str, width: int) -> list[str]:
    """A label and a value on one line; a label too long for it wraps between words and the value ends its last line."""
    space = width - cell_width(start) - cell_width(end)
    if space >= 1:
        return [start + " " * space + end]
    lines = textwrap.wrap(start, width, break_long_words=True) or [""]
    last = lines.pop()
    space = width - cell_width(last) - cell_width(end)
    if space >= 1:
        return [*lines, last + " " * space + end]
    return [*lines, last, " " * max(0, width - cell_width(end)) + end]


def _aligned(text: str, align: str, width: int) -> str:
    pad = max(0, width - cell_width(text))
    if align == "center":
        return " " * (pad // 2) + text
    if align == "end":
        return " " * pad + text
    return text


def _code_lines(text: str, width: int) -> list[str]:
    """A QR or barcode's stand-in, centred; a payload wider than the paper breaks after its `;` fields."""
    lines: list[str] = []
    for field in re.findall(r"[^;]*;|[^;]+", text):
        if lines and cell_width(lines[-1]) + cell_width(field) <= width:
            lines[-1] += field
        else:
            lines.extend(textwrap.wrap(field, width, break_long_words=True) or [""])
    return [_aligned(line, "center", width) for line in lines]


def render_text(doc: Document, columns: int = 42) -> str:
    out: list[str] = []
    for block in doc.blocks:
        if isinstance(block, Text):
            for piece in textwrap.wrap(block.text, columns, drop_whitespace=False) or [""]:
                out.append(_aligned(piece.strip() if block.align != "start" else piece.rstrip(), block.align, columns).rstrip())
        elif isinstance(block, Row):
            out.extend(row(block.start, block.end, columns))
        elif isinstance(block, Rule):
            out.append((block.char * columns).rstrip())
        elif isinstance(block, Stamps):
            grid = stamp_grid(block.filled, block.total)
            out.append(grid[: grid.rfind("  ")] + "  " + block.caption)
        elif isinstance(block, QR):
            out.extend(_code_lines(f"[QR {block.data}]", columns))
        elif isinstance(block, Barcode):
            out.extend(_code_lines(f"[{block.kind} {block.data}]", columns))
        elif isinstance(block, Image):
            out.append(_aligned(f"[image {block.image.width}x{block.image.height}]", "center", columns))
        elif isinstance(block, Feed):
            out.extend([""] * block.lines)
        elif isinstance(block, Cut):
            out.append("")
    if doc.rtl:
        out = [RLM + line if line else line for line in out]
    return "\n".join(line.rstrip() for line in out).rstrip("\n") + "\n"


def columns_for(cfg: Config) -> int:
    from .escpos import paper_for

    return paper_for(cfg).columns


def render_sale_text(result: dict[str, Any], cfg: Config, *, copy: bool = False) -> str:
    doc = sale_receipt(result, cfg, copy=copy, lang=lang_for(cfg))
    return render_text(doc, columns_for(cfg))
