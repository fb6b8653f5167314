"""Right-to-left slips on a terminal that is not: Arabic and Persian text in the order and letter forms it shows.

A terminal draws characters left to right, one per cell, in the order it gets
them, and does not join Arabic letters. A slip in the store's language (as
printed) would show its words backwards and its letters apart. Each line is
given its joined letter forms (arabic-reshaper), laid out on the slip's width
and put in visual order (python-bidi's Unicode bidi algorithm, right to left
as the paper): the label on the right, the amount on the left, as on paper.
"""

from __future__ import annotations

import os

import arabic_reshaper
from bidi.algorithm import get_display
from rich.cells import cell_len


def for_terminal(text: str, rtl: bool) -> str:
    """`text` (a slip rendered as text, in logical order) as a left-to-right terminal must be given it.

    LOYALTY_TERMINAL_BIDI=1 leaves it in logical order, for a terminal that lays
    out right-to-left text itself (it would turn the lines back again).
    """
    if not rtl or os.environ.get("LOYALTY_TERMINAL_BIDI") == "1":
        return text
    reshaper = arabic_reshaper.ArabicReshaper(configuration={"delete_harakat": False})
    lines = [reshaper.reshape(line) for line in text.split("\n")]
    width = max((cell_len(line) for line in lines), default=0)
    # every line filled to the slip's width first: a short line then lands at the right, as a right-to-left
    # paragraph does, and a centred one stays centred
    return "\n".join(get_display(line + " " * (width - cell_len(line)), base_dir="R").rstrip() for line in lines)
