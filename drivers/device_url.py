"""Device URLs (`scheme://target?option=value`) as readers and printers take them.

Split by hand rather than by urllib's host rules: a PC/SC reader name holds
spaces and colons, a printer target may be a device path or HOST:PORT.
"""

from __future__ import annotations

import urllib.parse


def split(url: str) -> tuple[str, str, dict[str, str]] | None:
    """(scheme in lower case, unquoted target, options), or None when there is no scheme."""
    scheme, sep, rest = url.strip().partition(":")
    if not sep or not scheme:
        return None
    target, _, query = rest.removeprefix("//").partition("?")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    options = dict(pairs)
    if len(options) != len(pairs):  # which one would win is not for the reader of the config to guess
        twice = next(name for i, (name, _v) in enumerate(pairs) if any(name == other for other, _w in pairs[:i]))
        raise ValueError(f"option {twice!r} is given twice in {url.strip()!r}")
    return scheme.lower(), urllib.parse.unquote(target), options
