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
    return scheme.lower(), urllib.parse.unquote(target), dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
