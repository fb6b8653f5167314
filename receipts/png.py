"""PNG rendering: the receipt as the customer would see it on paper (UI preview, docs)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw

from . import raster
from .model import QR, Barcode, Cut, Document, Feed, Paper, Row, Rule, Stamps, Text
from .model import Image as ImageBlock

MARGIN = 16


def _qr_image(data: str, module: int) -> Image.Image:
    import qrcode

    code = qrcode.QRCode(border=1, box_size=module, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(data)
    code.make(fit=True)
    img: Any = code.make_image()
    out: Image.Image = img.get_image().convert("L")
    return out


def _barcode_image(data: str, height: int, module: int) -> Image.Image:
    import barcode

    pattern = barcode.get_barcode_class("code128")(data).build()[0]
    im = Image.new("L", (len(pattern) * module, height), 255)
    draw = ImageDraw.Draw(im)
    for i, bit in enumerate(pattern):
        if bit == "1":
            draw.rectangle((i * module, 0, i * module + module - 1, height - 1), fill=0)
    return im


def render_png(doc: Document, geometry: Paper) -> Image.Image:
    width = geometry.dots
    parts: list[tuple[Image.Image, str]] = []
    pending: list[Any] = []

    def flush() -> None:
        if pending:
            parts.append((raster.render_blocks(pending, width, rtl=doc.rtl, lang=doc.locale, mode="L"), "start"))
            pending.clear()

    for block in doc.blocks:
        if isinstance(block, (Text, Row, Rule, Stamps)):
            pending.append(block)
            continue
        flush()
        if isinstance(block, QR):
            parts.append((_qr_image(block.data, block.size), "center"))
        elif isinstance(block, Barcode):
            parts.append((_barcode_image(block.data, block.height, 2 if width < 512 else 3), "center"))
        elif isinstance(block, ImageBlock):
            parts.append((block.image.convert("L"), block.align))
        elif isinstance(block, Feed):
            parts.append((Image.new("L", (width, raster.line_height(1) * block.lines), 255), "start"))
        elif isinstance(block, Cut):
            cut = Image.new("L", (width, 24), 255)
            d = ImageDraw.Draw(cut)
            for x in range(0, width, 16):
                d.line((x, 12, x + 8, 12), fill=128, width=1)
            parts.append((cut, "start"))
    flush()
    total = sum(p.height for p, _ in parts) + 2 * MARGIN
    page = Image.new("L", (width + 2 * MARGIN, total), 255)
    y = MARGIN
    for part, align in parts:
        if align == "center":
            x = MARGIN + (width - part.width) // 2
        elif (align == "end") != doc.rtl:
            x = MARGIN + width - part.width
        else:
            x = MARGIN
        page.paste(part, (max(0, x), y))
        y += part.height
    return page


def render_png_bytes(doc: Document, geometry: Paper) -> bytes:
    buf = io.BytesIO()
    render_png(doc, geometry).save(buf, format="PNG", optimize=False)
    return buf.getvalue()
