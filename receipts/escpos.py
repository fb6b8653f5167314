"""ESC/POS bytes through python-escpos.

Left-to-right text goes in the printer's own text mode (fast, small, sharp).
Right-to-left documents, and any line the printer's code pages cannot carry,
are drawn by `raster` and sent as `GS v 0` images; QR codes, barcodes and the
cut stay native commands. Bytes are produced on python-escpos's `Dummy`, so the
same bytes go to any transport.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from functools import lru_cache
from typing import Any

from PIL import Image as PILImage
from PIL import ImageChops

from ledger.config import Config

from . import raster
from .model import QR, Barcode, Block, Cut, Document, Feed, Image, Paper, Row, Rule, Stamps, Text
from .text import cell_width, row

# python-escpos re-parses its capability file on every import unless it may cache it.
if "ESCPOS_CAPABILITIES_PICKLE_DIR" not in os.environ:
    _cache = os.path.join(tempfile.gettempdir(), f"pos-loyalty-escpos-{os.getuid() if hasattr(os, 'getuid') else 0}")
    try:
        os.makedirs(_cache, exist_ok=True)
        os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = _cache
    except OSError:
        pass

INIT = b"\x1b@"
FRAGMENT_ROWS = 960


@lru_cache(maxsize=16)
def _profile_facts(profile: str) -> tuple[int | None, int | None, int | None]:
    from escpos.capabilities import get_profile

    data: dict[str, Any] = get_profile(profile).profile_data
    media = data.get("media", {})
    width = media.get("width", {})
    mm, px = width.get("mm"), width.get("pixels")
    columns = data.get("fonts", {}).get("0", {}).get("columns")
    return (mm if isinstance(mm, int) else None, px if isinstance(px, int) else None,
            columns if isinstance(columns, int) else None)


def unknown_profile(profile: str) -> str | None:
    """What is wrong with a printer profile name, or None: a typo would print at the wrong width, silently."""
    import difflib

    from escpos.capabilities import CAPABILITIES

    known = sorted(CAPABILITIES["profiles"])
    if profile in known:
        return None
    hint = difflib.get_close_matches(profile, known, n=1)
    return (f"unknown printer profile {profile!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else f"; known: {', '.join(known)}"))


def paper(profile: str, width_mm: int) -> Paper:
    try:
        mm, px, columns = _profile_facts(profile)
    except Exception:  # an unknown profile name: fall back to the roll's standard geometry
        mm = px = columns = None
    return Paper.for_width(width_mm, px, columns, mm)


def paper_for(cfg: Config, width_mm: int | None = None) -> Paper:
    return paper(cfg.printer.profile, width_mm or cfg.printer.paper_width_mm)


def _dummy(profile: str) -> Any:
    from escpos.printer import Dummy

    try:
        return Dummy(profile=profile)
    except Exception:
        return Dummy(profile="default")


def _text_mode_ok(text: str) -> bool:
    if raster.has_rtl(text):
        return False
    try:
        text.encode("cp437")
        return True
    except UnicodeEncodeError:
        return False


def _text_like(block: Block) -> bool:
    return isinstance(block, (Text, Row, Rule, Stamps))


def render_escpos(doc: Document, *, profile: str = "default", width_mm: int = 80) -> bytes:
    """The document as ESC/POS bytes for a printer of `profile` on a roll `width_mm` wide."""
    geometry = paper(profile, width_mm)
    p = _dummy(profile)
    p._raw(INIT)
    pending: list[Any] = []

    def flush_raster() -> None:
        if pending:
            im = raster.render_blocks(pending, geometry.dots, rtl=doc.rtl, lang=doc.locale)
            p.set(align="left")
            raster_image(p, im)
            pending.clear()

    for block in doc.blocks:
        if _text_like(block) and (doc.rtl or isinstance(block, Stamps) or not _fits_text_mode(block)):
            pending.append(block)
            continue
        flush_raster()
        _native(p, block, geometry, doc)
    flush_raster()
    data: bytes = p.output
    return data


def raster_image(p: Any, im: PILImage.Image, fragment_height: int = FRAGMENT_ROWS) -> None:
    """`GS v 0` for an image already in black and white.

    python-escpos's `image()` takes any picture through RGBA, grey and dithering;
    ours are drawn bilevel, so the bits go out as they are, in bands the
    printer's buffer takes.
    """
    bits = ImageChops.invert(im if im.mode == "1" else im.convert("1"))
    width_bytes = (bits.width + 7) // 8
    for top in range(0, bits.height, fragment_height):
        band = bits.crop((0, top, bits.width, min(bits.height, top + fragment_height)))
        p._raw(b"\x1dv0\x00" + width_bytes.to_bytes(2, "little") + band.height.to_bytes(2, "little") + band.tobytes())


def _fits_text_mode(block: Block) -> bool:
    if isinstance(block, Text):
        return _text_mode_ok(block.text)
    if isinstance(block, Row):
        return _text_mode_ok(block.start) and _text_mode_ok(block.end)
    if isinstance(block, Rule):
        return _text_mode_ok(block.char)
    return False


def _textln(p: Any, line: str) -> None:
    # Lines reach here only when CP437 holds them (see _text_mode_ok): one code page
    # selected once, instead of a per-character search for one.
    if getattr(p, "_loyalty_cp", None) != "CP437":
        p.magic.force_encoding("CP437")
        p._loyalty_cp = "CP437"
    p._raw(line.encode("cp437") + b"\n")


def _native(p: Any, block: Block, geometry: Paper, doc: Document) -> None:
    if isinstance(block, Text):
        # A double-size line that would wrap reads better at normal size.
        size = block.size if len(block.text) * block.size <= geometry.columns else 1
        columns = geometry.columns // size
        p.set(align={"start": "left", "center": "center", "end": "right"}[block.align], bold=block.bold or size < block.size,
              double_width=size > 1, double_height=size > 1, normal_textsize=size == 1)
        import textwrap

        for line in textwrap.wrap(block.text, columns) or [""]:
            _textln(p, line)
    elif isinstance(block, Row):
        columns = geometry.columns // block.size
        p.set(align="left", bold=block.bold, double_width=block.size > 1, double_height=block.size > 1,
              normal_textsize=block.size == 1)
        for line in row(block.start, block.end, columns):
            _textln(p, line)
    elif isinstance(block, Rule):
        p.set(align="left", bold=False, normal_textsize=True)
        _textln(p, block.char * geometry.columns if block.char.strip() and cell_width(block.char) == 1 else "")
    elif isinstance(block, QR):
        p.set(align="center", bold=False, normal_textsize=True)
        p.qr(block.data, native=True, size=block.size if geometry.dots >= 512 else max(3, block.size - 1))
        p._raw(b"\n")
    elif isinstance(block, Barcode):
        p.set(align="center", bold=False, normal_textsize=True)
        # python-escpos announces its renderer choice on stdout, which is the CLI's JSON channel.
        with contextlib.redirect_stdout(io.StringIO()):
            p.barcode("{B" + block.data, block.kind, height=block.height, width=2 if geometry.dots < 512 else 3,
                      pos="OFF", function_type="B", check=False)
        p._raw(b"\n")
    elif isinstance(block, Image):
        p.set(align={"start": "left", "center": "center", "end": "right"}[block.align])
        with contextlib.redirect_stdout(io.StringIO()):
            p.image(block.image, impl="bitImageRaster")
    elif isinstance(block, Feed):
        p._raw(b"\n" * block.lines)
    elif isinstance(block, Cut):
        p.cut(mode="PART" if block.partial else "FULL")
