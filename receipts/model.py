"""The receipt document: what to print, independent of how.

A template builds a `Document` from ledger data; a renderer (text, ESC/POS,
PNG) turns it into bytes. Alignment is logical (`start`/`end`), so one
template serves left-to-right and right-to-left languages: in Arabic the
label of a row stands on the right and its amount on the left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from PIL import Image as PILImage

Align = Literal["start", "center", "end"]
Direction = Literal["ltr", "rtl"]

# Text reaches the printer as bytes: a control character there is a command (ESC @ resets it,
# GS V cuts the paper) and the shaper refuses some. Whatever a template is given shows as U+FFFD.
_CONTROLS = {**{c: "\ufffd" for c in range(32)}, 127: "\ufffd"}


def printable(text: str) -> str:
    return text.translate(_CONTROLS) if not text.isprintable() else text


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    align: Align = "start"
    bold: bool = False
    size: int = 1  # 1 normal, 2 double width and height

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", printable(self.text))


@dataclass(frozen=True, slots=True)
class Row:
    """Two columns: a label at the reading start, a value at the end."""

    start: str
    end: str
    bold: bool = False
    size: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", printable(self.start))
        object.__setattr__(self, "end", printable(self.end))


@dataclass(frozen=True, slots=True)
class Rule:
    char: str = "-"


@dataclass(frozen=True, slots=True)
class Stamps:
    """A stamp card: `filled` of `total` shown as dots, then a caption such as 7/10."""

    filled: int
    total: int
    caption: str


@dataclass(frozen=True, slots=True)
class QR:
    data: str
    size: int = 5  # module size in dots


@dataclass(frozen=True, slots=True)
class Barcode:
    data: str
    kind: Literal["CODE128"] = "CODE128"
    height: int = 64


@dataclass(frozen=True, slots=True)
class Image:
    image: PILImage.Image
    align: Align = "center"


@dataclass(frozen=True, slots=True)
class Feed:
    lines: int = 1


@dataclass(frozen=True, slots=True)
class Cut:
    partial: bool = False


Block = Text | Row | Rule | Stamps | QR | Barcode | Image | Feed | Cut


@dataclass(slots=True)
class Document:
    """A receipt: blocks in reading order, in one language and direction."""

    kind: str  # sale, refund, z_report, voucher, enrolment, test
    locale: str = "en"
    direction: Direction = "ltr"
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Document:
        self.blocks.extend(blocks)
        return self

    @property
    def rtl(self) -> bool:
        return self.direction == "rtl"


@dataclass(frozen=True, slots=True)
class Paper:
    """What fits on the roll: printable dots and font-A columns."""

    width_mm: int
    dots: int
    columns: int

    @classmethod
    def for_width(cls, width_mm: int, profile_dots: int | None = None, profile_columns: int | None = None,
                  profile_mm: int | None = None) -> Paper:
        # A profile knows its printable width only for the roll it was made for.
        if profile_mm == width_mm and profile_dots and profile_columns:
            return cls(width_mm, profile_dots, profile_columns)
        if width_mm <= 58:
            return cls(width_mm, 384, 32)
        return cls(width_mm, 576, 48)
