"""The member panel: Rich text shown as ready-made lines (Textual's line API).

A tap changes nothing on screen but this panel, and the cashier waits for it.
A `Static` lays its text out again on every repaint through Textual's generic
content pipeline (wrapping, style resolution per span), which measured ~40 % of
a tap's frame. The panel's text is a few short lines, each built from pieces
with one style (`render.py`), so its segments are cut straight from the text's
spans once per update; only a line wider than the panel goes through Rich's
wrapping.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget


class Panel(Widget):
    """Shows a Rich `Text` as lines; as tall as the tallest text it has shown, so a tap rarely needs a new layout."""

    DEFAULT_CSS = "Panel { height: auto; }"

    def __init__(self, text: Text, *, id: str | None = None):
        super().__init__(id=id)
        self.text = text
        self._height = 0
        self._lines = _split(text)
        self._widest = _widest(self._lines)
        self._wrapped: tuple[int, list[list[Segment]]] | None = None
        self._strips: list[Strip] | None = None
        self._built_for = 0  # the width the strips were cut for
        self._blank = Strip.blank(0)

    def render(self) -> Text:  # what the panel says, for tests and anyone reading it as text
        return self.text

    def show(self, text: Text) -> None:
        """Show `text`; the panel grows to fit it and never shrinks (shorter text leaves blank lines)."""
        self.text = text
        self._lines = _split(text)
        self._widest = _widest(self._lines)
        self._wrapped = None
        self._strips = None
        height = len(self._fit(max(1, self.content_region.width or self.size.width)))
        grows = height > self._height
        self._height = max(height, self._height)
        self.refresh(layout=grows)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(self._height, len(self._fit(width)))

    def notify_style_update(self) -> None:
        self._strips = None  # new colours (the refused class, a theme): cut the lines again
        super().notify_style_update()

    def render_line(self, y: int) -> Strip:
        width = self.content_region.width or self.size.width
        if self._strips is None or self._built_for != width:
            # the widget's style walks every ancestor: once per text, not once per line
            base = self.rich_style
            self._strips = [
                Strip([Segment(seg.text, base + seg.style if seg.style else base) for seg in line]).crop_extend(0, width, base)
                for line in self._fit(width)
            ]
            self._blank = Strip.blank(width, base)
            self._built_for = width
        return self._strips[y] if y < len(self._strips) else self._blank

    def _fit(self, width: int) -> list[list[Segment]]:
        """The lines at `width`: as they are, or wrapped by Rich when one is too wide (a long name or message)."""
        if self._widest <= width:
            return self._lines
        if self._wrapped is not None and self._wrapped[0] == width:
            return self._wrapped[1]
        console = _plain_console(width)
        wrapped: list[list[Segment]] = []
        for line in self.text.split("\n", allow_blank=True):
            for part in line.wrap(console, width) if line.cell_len > width else [line]:
                wrapped += _split(part)
        if wrapped and not wrapped[-1] and self.text.plain.endswith("\n"):
            wrapped.pop()
        self._wrapped = (width, wrapped)
        return wrapped


def _widest(lines: list[list[Segment]]) -> int:
    return max((sum(cell_len(seg.text) for seg in line) for line in lines), default=0)


def _plain_console(width: int) -> Console:
    """A console that only measures and wraps (no terminal behind it)."""
    return Console(width=width, color_system=None, force_terminal=False, legacy_windows=False)


def _split(text: Text) -> list[list[Segment]]:
    """The text's lines as segments, one per run of one style (spans may not overlap: `render.py` appends, never nests)."""
    plain = text.plain
    spans = sorted(text.spans, key=lambda s: s.start)
    own = Style.parse(text.style) if isinstance(text.style, str) else text.style
    pieces: list[tuple[int, int, Style]] = []
    at = 0
    for span in spans:
        if span.start < at:  # nested styles: let Rich combine them
            return _by_rich(text)
        if span.start > at:
            pieces.append((at, span.start, own))
        style = Style.parse(span.style) if isinstance(span.style, str) else span.style
        pieces.append((span.start, span.end, own + style))
        at = span.end
    if at < len(plain):
        pieces.append((at, len(plain), own))
    lines: list[list[Segment]] = [[]]
    for start, end, style in pieces:
        for i, part in enumerate(plain[start:end].split("\n")):
            if i:
                lines.append([])
            if part:
                lines[-1].append(Segment(part, style))
    if not lines[-1] and plain.endswith("\n"):
        lines.pop()  # the text's last newline ends its last line; it does not start another
    return lines


def _by_rich(text: Text) -> list[list[Segment]]:
    console = _plain_console(10_000)
    out: list[list[Segment]] = []
    for line in Segment.split_lines(text.render(console)):
        out.append([s for s in line if s.text])
    if out and not out[-1] and text.plain.endswith("\n"):
        out.pop()
    return out
