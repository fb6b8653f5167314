"""Line numbers for dotted keys of a TOML file.

`tomllib` gives values but not where they came from; a config error that says
"line 23" saves a store manager a search. This is a line scanner, not a
parser: it knows table headers, arrays of tables and `key =` lines, which is
all a config error needs. Keys inside inline tables map to the line of the
inline table.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=")


def _split_key(raw: str) -> list[str]:
    parts = []
    for part in raw.split("."):
        part = part.strip().strip('"').strip("'")
        if part:
            parts.append(part)
    return parts


def key_lines(text: str) -> dict[str, int]:
    """Map each dotted key (arrays of tables as `name[i]`) to its 1-based line."""
    lines: dict[str, int] = {}
    counts: dict[str, int] = {}
    prefix = ""
    in_multiline = False
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                in_multiline = False
            continue
        header = _HEADER.match(line)
        if header:
            parts = _split_key(header.group(2))
            if header.group(1) == "[[":
                parent = _resolve_table([*parts[:-1], ""], counts)[:-1] if len(parts) > 1 else ""
                base = f"{parent}.{parts[-1]}" if parent else parts[-1]
                index = counts.get(base, 0)
                counts[base] = index + 1
                prefix = f"{base}[{index}]"
            else:
                prefix = _resolve_table(parts, counts)
            lines.setdefault(prefix, number)
            continue
        key = _KEY.match(line)
        if key:
            dotted = ".".join(_split_key(key.group(1)))
            full = f"{prefix}.{dotted}" if prefix else dotted
            lines.setdefault(full, number)
            if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                in_multiline = True
    return lines


def _resolve_table(parts: list[str], counts: dict[str, int]) -> str:
    # `[a.b]` or `[[a.b]]` under `[[a]]` belongs to the latest element of `a`.
    cur = ""
    for i, part in enumerate(parts):
        cur = f"{cur}.{part}" if cur else part
        if cur in counts and i < len(parts) - 1:
            cur = f"{cur}[{counts[cur] - 1}]"
    return cur


def line_of(lines: dict[str, int], dotted: str) -> int | None:
    """The line of `dotted`, or of its nearest enclosing key that has one."""
    key = dotted
    while key:
        if key in lines:
            return lines[key]
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""
    return None
