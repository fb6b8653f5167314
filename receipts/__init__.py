"""Receipt documents and their renderers.

`render_sale(result, cfg, fmt, copy)` is the entry point the CLI and the UI
use: `result` is a sale's JSON (what `loyalty sale --json` prints, stored in
the ledger), `fmt` one of FORMATS.
"""

from __future__ import annotations

from typing import Any

from ledger.config import Config

FORMATS: tuple[str, ...] = ("text",)


def render_sale(result: dict[str, Any], cfg: Config, fmt: str = "text", *, copy: bool = False) -> bytes:
    if fmt == "text":
        from .text import render_sale_text

        return render_sale_text(result, cfg, copy=copy).encode("utf-8")
    raise ValueError(f"unknown receipt format {fmt!r}; known: {', '.join(FORMATS)}")
