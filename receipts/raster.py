"""Lines of text as pixels: how Arabic and Persian reach a thermal printer.

Printers have no Arabic shaping and no right-to-left layout in text mode, so
right-to-left documents are drawn here and sent as raster images. A line is
split by the Unicode bidi algorithm (python-bidi) into directional runs, and
by font into script runs (Noto Sans Arabic has no Latin letters, and Pillow
has no font fallback); runs are placed in visual order and each is shaped by
libraqm (HarfBuzz + FriBiDi). Without raqm, arabic-reshaper gives the joined
presentation forms and the run is reversed by hand: readable, not as good.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from bidi import algorithm as bidi_algorithm
from PIL import Image, ImageDraw, ImageFont, features

from .model import Row, Rule, Stamps, Text

Script = Literal["arabic", "latin"]
FONT_DIRS = ("/usr/share/fonts/truetype/noto", "/usr/share/fonts/opentype/noto", "/usr/local/share/fonts")
FONT_FILES: dict[tuple[Script, bool], str] = {
    ("arabic", False): "NotoSansArabic-Regular.ttf",
    ("arabic", True): "NotoSansArabic-Bold.ttf",
    ("latin", False): "NotoSans-Regular.ttf",
    ("latin", True): "NotoSans-Bold.ttf",
}
BASE_PX = 24  # normal text height in dots: 12-dot columns, as the printer's own font A
SCALE: dict[Script, float] = {"arabic": 1.0, "latin": 0.92}


class FontMissing(RuntimeError):
    pass


def raqm_available() -> bool:
    return bool(features.check("raqm"))


def engine() -> Literal["raqm", "basic"]:
    """The layout engine in use: raqm unless missing or turned off by $LOYALTY_RTL_ENGINE=basic."""
    if os.environ.get("LOYALTY_RTL_ENGINE", "").lower() == "basic" or not raqm_available():
        return "basic"
    return "raqm"


def _font_path(name: str) -> str:
    dirs = [os.environ["LOYALTY_FONT_DIR"]] if os.environ.get("LOYALTY_FONT_DIR") else []
    for folder in [*dirs, *FONT_DIRS]:
        path = Path(folder) / name
        if path.exists():
            return str(path)
    raise FontMissing(f"font {name} not found in {', '.join(FONT_DIRS)} (Debian: apt-get install fonts-noto-core)")


@lru_cache(maxsize=32)
def font(script: Script, bold: bool, px: int, layout: str) -> ImageFont.FreeTypeFont:
    engine_id = ImageFont.Layout.RAQM if layout == "raqm" else ImageFont.Layout.BASIC
    return ImageFont.truetype(_font_path(FONT_FILES[(script, bold)]), round(px * SCALE[script]), layout_engine=engine_id)


def _is_arabic(ch: str) -> bool:
    o = ord(ch)
    return 0x0600 <= o <= 0x06FF or 0x0750 <= o <= 0x077F or 0x08A0 <= o <= 0x08FF or 0xFB50 <= o <= 0xFDFF or 0xFE70 <= o <= 0xFEFF


# Characters both fonts draw: they join whichever run they stand in.
_SHARED = frozenset(" 0123456789.,:-!\u200c\u200d\u200e\u200f\u061c")


def has_rtl(text: str) -> bool:
    return any(_is_arabic(ch) for ch in text)


@dataclass(frozen=True, slots=True)
class Run:
    text: str  # logical order
    rtl: bool
    script: Script


def _levels(text: str, base_level: int) -> list[tuple[str, int]]:
    storage = bidi_algorithm.get_empty_storage()
    storage["base_level"] = base_level
    storage["base_dir"] = ("L", "R")[base_level]
    bidi_algorithm.get_embedding_levels(text, storage)
    bidi_algorithm.explicit_embed_and_overrides(storage)
    bidi_algorithm.resolve_weak_types(storage)
    bidi_algorithm.resolve_neutral_types(storage, False)
    bidi_algorithm.resolve_implicit_levels(storage, False)
    resolved = storage["chars"]
    # Rule X9 took out the zero-width (non-)joiners, which Persian spells with (می‌شود): they go back
    # in where they stood, at their neighbour's level, for the shaper to see
    out: list[tuple[str, int]] = []
    j = 0
    for ch in text:
        if j < len(resolved) and resolved[j]["ch"] == ch:
            out.append((ch, int(resolved[j]["level"])))
            j += 1
        elif ch in _JOINERS:
            out.append((ch, out[-1][1] if out else base_level))
    return out


_JOINERS = frozenset("\u200c\u200d")


def _scripts(text: str) -> list[Script]:
    out: list[Script | None] = [("arabic" if _is_arabic(ch) else None if ch in _SHARED else "latin") for ch in text]
    last: Script | None = None
    for i, s in enumerate(out):
        if s is None:
            out[i] = last
        else:
            last = s
    nxt: Script = "latin"
    for i in range(len(out) - 1, -1, -1):
        s = out[i]
        if s is None:
            out[i] = nxt
        else:
            nxt = s
    return [s or "latin" for s in out]


def runs(text: str, rtl_base: bool) -> list[Run]:
    """`text` cut into runs of one direction and one font, in visual order (left to right)."""
    if not text:
        return []
    if not rtl_base and not has_rtl(text):
        # Latin-only lines need no bidi; most English receipts take this path.
        return [Run(text, False, "latin")]
    chars = _levels(text, 1 if rtl_base else 0)
    scripts = _scripts("".join(ch for ch, _ in chars))
    logical: list[tuple[str, int, Script]] = []
    for (ch, level), script in zip(chars, scripts, strict=True):
        if logical and logical[-1][1] == level and logical[-1][2] == script:
            prev = logical[-1]
            logical[-1] = (prev[0] + ch, level, script)
        else:
            logical.append((ch, level, script))
    # Rule L2 of the bidi algorithm, on whole runs: reverse every sequence at or above each odd level.
    order = list(range(len(logical)))
    top = max(level for _, level, _ in logical)
    lowest_odd = min((level for _, level, _ in logical if level % 2), default=top + 1)
    for level in range(top, lowest_odd - 1, -1):
        i = 0
        while i < len(order):
            if logical[order[i]][1] >= level:
                j = i
                while j < len(order) and logical[order[j]][1] >= level:
                    j += 1
                order[i:j] = reversed(order[i:j])
                i = j
            else:
                i += 1
    return [Run(logical[k][0], bool(logical[k][1] % 2), logical[k][2]) for k in order]


# Bidi marks steer the order; without raqm nothing hides them, so they are dropped before drawing.
_NO_MARKS = str.maketrans("", "", "\u200e\u200f\u061c")


def _basic_text(run: Run) -> str:
    """Without raqm: joined presentation forms (arabic-reshaper) in display order (python-bidi)."""
    if not run.rtl:
        return run.text.translate(_NO_MARKS)
    import arabic_reshaper
    from bidi import get_display

    return str(get_display(arabic_reshaper.reshape(run.text), base_dir="R")).translate(_NO_MARKS)


@dataclass(frozen=True, slots=True)
class Glyphs:
    """One run, shaped and rasterized: its coverage mask, where the mask sits, how far the pen moves."""

    mask: Any
    offset: tuple[int, int]
    advance: float


@lru_cache(maxsize=4096)
def shaped(text: str, rtl: bool, script: Script, bold: bool, px: int, layout: str, lang: str, mode: str) -> Glyphs:
    """Shape and draw one run once; receipts repeat their labels on every sale, so this is cached."""
    f = font(script, bold, px, layout)
    language = lang if script == "arabic" else None
    with _FREETYPE:
        return _shape(f, text, rtl, script, layout, language, mode)


# One FreeType face is shared by every thread that prints or previews; FreeType faces are not thread-safe.
_FREETYPE = threading.Lock()


def _shape(f: ImageFont.FreeTypeFont, text: str, rtl: bool, script: Script, layout: str, language: str | None, mode: str) -> Glyphs:
    if layout == "raqm":
        direction = "rtl" if rtl else "ltr"
        advance = f.getlength(text, mode, direction=direction, language=language)
        mask, offset = f.getmask2(text, mode, direction, None, language, 0, "ls", 0, (0.0, 0.0))
    else:
        drawn = _basic_text(Run(text, rtl, script))
        advance = f.getlength(drawn, mode)
        mask, offset = f.getmask2(drawn, mode, None, None, None, 0, "ls", 0, (0.0, 0.0))
    return Glyphs(mask, (int(offset[0]), int(offset[1])), advance)


@dataclass(slots=True)
class LaidOut:
    runs: list[Run]
    glyphs: list[Glyphs]
    layout: str

    @property
    def width(self) -> float:
        return sum(g.advance for g in self.glyphs)


def lay_out(text: str, *, rtl_base: bool, bold: bool = False, px: int = BASE_PX, lang: str = "ar", mode: str = "1") -> LaidOut:
    """`text` as shaped runs in visual order.

    Each call into the shaper costs far more than its glyphs do, so a line in a
    single font goes to raqm whole (it runs the bidi algorithm itself); only
    lines mixing Arabic and Latin letters are cut into runs.
    """
    layout = engine()
    parts = runs(text, rtl_base)
    if rtl_base and len(parts) > 1 and len({r.script for r in parts}) == 1:
        parts = [Run(text, True, parts[0].script)]
    return LaidOut(parts, [shaped(r.text, r.rtl, r.script, bold, px, layout, lang, mode) for r in parts], layout)


def draw_laid_out(draw: ImageDraw.ImageDraw, x: float, baseline: float, line: LaidOut, fill: int = 0) -> None:
    pen = float(x)
    for glyphs in line.glyphs:
        if glyphs.mask.size[0] and glyphs.mask.size[1]:
            draw.draw.draw_bitmap((round(pen) + glyphs.offset[0], int(baseline) + glyphs.offset[1]), glyphs.mask, fill)
        pen += glyphs.advance


def line_height(size: int) -> int:
    # Noto Sans Arabic reaches far below the baseline (yeh, meem): give it room.
    return int(BASE_PX * size * 1.55)


def _baseline(size: int) -> int:
    return int(BASE_PX * size * 1.1)


TextBlock = Text | Row | Rule | Stamps


def _block_height(block: TextBlock, width: int, rtl: bool, lang: str) -> int:
    if isinstance(block, Rule):
        return 10 if block.char == " " else 14
    if isinstance(block, Stamps):
        caption = lay_out(block.caption, rtl_base=rtl, bold=True, lang=lang)
        per_row = _stamps_per_row(block, width, caption.width)
        return ((block.total + per_row - 1) // per_row) * 30 + 6
    return line_height(block.size) * len(_wrap_lines(block, width, rtl, lang))


def _wrap_lines(block: Text | Row, width: int, rtl: bool, lang: str, mode: str = "1") -> list[tuple[LaidOut | None, LaidOut | None]]:
    """The block's lines: (text at the reading start, text at the end) each; words wrap, nothing is cut."""
    px = BASE_PX * block.size
    if isinstance(block, Row):
        end = lay_out(block.end, rtl_base=rtl, bold=block.bold, px=px, lang=lang, mode=mode)
        starts = _words(block.start, width, rtl=rtl, bold=block.bold, px=px, lang=lang, mode=mode)
        if starts[-1].width + end.width + 12 <= width:
            return [(line, None) for line in starts[:-1]] + [(starts[-1], end)]
        return [(line, None) for line in starts] + [(None, end)]
    return [(line, None) for line in _words(block.text, width, rtl=rtl, bold=block.bold, px=px, lang=lang, mode=mode)]


def _words(text: str, width: int, *, rtl: bool, bold: bool, px: int, lang: str, mode: str) -> list[LaidOut]:
    """`text` laid out in as many lines as its width needs, broken between words (a long item name, a long message)."""
    laid = lay_out(text, rtl_base=rtl, bold=bold, px=px, lang=lang, mode=mode)
    if laid.width <= width:
        return [laid]
    lines: list[LaidOut] = []
    current = ""
    for word in text.split(" "):
        trial = f"{current} {word}".strip()
        if current and lay_out(trial, rtl_base=rtl, bold=bold, px=px, lang=lang, mode=mode).width > width:
            lines.append(lay_out(current, rtl_base=rtl, bold=bold, px=px, lang=lang, mode=mode))
            current = word
        else:
            current = trial
    if current:
        lines.append(lay_out(current, rtl_base=rtl, bold=bold, px=px, lang=lang, mode=mode))
    return lines


def render_blocks(blocks: Sequence[TextBlock], width: int, *, rtl: bool, lang: str = "ar", mode: str = "1") -> Image.Image:
    """Text-like blocks drawn on one image `width` dots wide (black on white)."""
    prepared: list[tuple[TextBlock, list[tuple[LaidOut | None, LaidOut | None]]]] = []
    height = 0
    for block in blocks:
        lines = _wrap_lines(block, width, rtl, lang, mode) if isinstance(block, (Text, Row)) else []
        prepared.append((block, lines))
        height += line_height(block.size) * len(lines) if isinstance(block, (Text, Row)) else _block_height(block, width, rtl, lang)
    im = Image.new(mode, (width, max(1, height)), 255)
    draw = ImageDraw.Draw(im)
    draw.fontmode = "1" if mode == "1" else "L"
    y = 0
    for block, lines in prepared:
        if isinstance(block, Rule):
            h = _block_height(block, width, rtl, lang)
            if block.char == "=":
                draw.line((0, y + 5, width, y + 5), fill=0, width=2)
                draw.line((0, y + 9, width, y + 9), fill=0, width=2)
            elif block.char != " ":
                for dash in range(0, width, 12):
                    draw.line((dash, y + 7, dash + 6, y + 7), fill=0, width=2)
            y += h
        elif isinstance(block, Stamps):
            y = _draw_stamps(draw, block, width, y, rtl, lang, mode)
        else:
            size = block.size
            for start, end in lines:
                base = y + _baseline(size)
                align = block.align if isinstance(block, Text) else "start"
                if start is not None:
                    x: float
                    if align == "center":
                        x = (width - start.width) / 2
                    elif (align == "start") != rtl:
                        x = 0
                    else:
                        x = width - start.width
                    draw_laid_out(draw, x, base, start)
                if end is not None:
                    draw_laid_out(draw, width - end.width if not rtl else 0, base, end)
                y += line_height(size)
    return im


def _stamps_per_row(block: Stamps, width: int, caption_width: float) -> int:
    return max(1, min(block.total, int(width - caption_width - 20) // 30))


def _draw_stamps(draw: ImageDraw.ImageDraw, block: Stamps, width: int, y: int, rtl: bool, lang: str, mode: str) -> int:
    diameter, pitch = 24, 30
    caption = lay_out(block.caption, rtl_base=rtl, bold=True, lang=lang, mode=mode)
    per_row = _stamps_per_row(block, width, caption.width)
    rows = (block.total + per_row - 1) // per_row
    for i in range(block.total):
        r, c = divmod(i, per_row)
        left = width - (c + 1) * pitch if rtl else c * pitch
        top = y + 3 + r * pitch
        box = (left + 2, top, left + 2 + diameter, top + diameter)
        if i < block.filled:
            draw.ellipse(box, fill=0)
        else:
            draw.ellipse(box, outline=0, width=2)
    grid_width = min(block.total, per_row) * pitch
    x = grid_width + 16 if not rtl else width - grid_width - 16 - caption.width
    draw_laid_out(draw, x, y + 3 + diameter - 3, caption)
    return y + rows * pitch + 6
