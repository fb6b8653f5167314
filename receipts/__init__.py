"""Receipt documents and their renderers.

`render_sale(result, cfg, fmt, copy)` is the entry point the CLI and the UI
use: `result` is a sale's JSON (what `loyalty sale --json` prints, stored in
the ledger), `fmt` one of FORMATS. `render(doc, fmt, cfg)` renders any
document (Z report, voucher, enrolment slip) the same way.
"""

from __future__ import annotations

from typing import Any

from ledger.config import Config

from .model import Document

FORMATS: tuple[str, ...] = ("text", "escpos", "png")


def render(doc: Document, fmt: str, cfg: Config, *, width_mm: int | None = None) -> bytes:
    """`doc` as bytes in `fmt`, for the configured printer's profile and paper."""
    from .escpos import paper_for

    geometry = paper_for(cfg, width_mm)
    if fmt == "text":
        from .text import render_text

        return render_text(doc, geometry.columns).encode("utf-8")
    if fmt == "escpos":
        from .escpos import render_escpos

        return render_escpos(doc, profile=cfg.printer.profile, width_mm=geometry.width_mm)
    if fmt == "png":
        from .png import render_png_bytes

        return render_png_bytes(doc, geometry)
    raise ValueError(f"unknown receipt format {fmt!r}; known: {', '.join(FORMATS)}")


def render_sale(result: dict[str, Any], cfg: Config, fmt: str = "text", *, copy: bool = False) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"unknown receipt format {fmt!r}; known: {', '.join(FORMATS)}")
    from .templates import sale_receipt

    return render(sale_receipt(result, cfg, copy=copy), fmt, cfg)
