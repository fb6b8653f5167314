"""Every text a receipt template asks for is translated in Arabic and Persian."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from receipts import templates
from receipts.i18n import catalog

SOURCE = Path(templates.__file__).read_text(encoding="utf-8")


def _asked() -> set[str]:
    asked = set(re.findall(r'lang\._\("((?:[^"\\]|\\.)*)"', SOURCE))
    asked |= {label for label in templates.BONUS_LABELS.values()}
    return asked


@pytest.mark.parametrize("locale", ["ar", "fa"])
def test_every_receipt_text_is_translated(locale: str) -> None:
    translated = catalog(locale)
    missing = sorted(msg for msg in _asked() if not translated.get(msg))
    assert missing == []
    # a translation keeps every placeholder of its English text
    for msgid in _asked():
        assert set(re.findall(r"{\w+}", translated[msgid])) == set(re.findall(r"{\w+}", msgid)), msgid
