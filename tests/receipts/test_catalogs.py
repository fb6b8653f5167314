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


@pytest.mark.parametrize(("locale", "said"), [("en", "8 more to a free flat white"), ("fa", "فلت وایت"), ("ar", "فلات وايت")])
def test_a_reward_named_in_the_config_is_called_so_on_the_receipt(tmp_path: Path, locale: str, said: str) -> None:
    from receipt_support import build, frozen, write_config

    from ledger.config import load
    from receipts import render
    from receipts.i18n import Lang

    path = write_config(tmp_path, locale=locale)
    text = path.read_text(encoding="utf-8")
    old = 'reward = { kind = "free_item", categories = ["coffee"], max_value = "1.500" }'
    assert old in text
    path.write_text(text.replace(old, old[:-2] + ', name = "flat white", names = { fa = "فلت وایت", ar = "فلات وايت" } }'),
                    encoding="utf-8")
    cfg = load(path)
    shown = render(build("sale", cfg, Lang(locale, tz=cfg.store.tz), frozen()), "text", cfg).decode("utf-8")
    assert said in shown and "free coffee" not in shown, shown


def test_a_reward_with_translations_but_no_english_name_is_refused(tmp_path: Path) -> None:
    from receipt_support import write_config

    from ledger.config import ConfigError, load

    path = write_config(tmp_path)
    text = path.read_text(encoding="utf-8")
    old = 'max_value = "1.500" }'
    path.write_text(text.replace(old, 'max_value = "1.500", names = { fa = "فلت وایت" } }', 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"reward\.name: is required beside names"):
        load(path)


def test_a_refund_slip_copy_lists_its_lines_as_the_original(tmp_path: Path) -> None:
    from receipt_support import frozen, write_config

    from ledger.config import load
    from receipts import render

    cfg = load(write_config(tmp_path))
    refund = frozen()["refund"]
    made = dict(refund, reversed={"coffee": {"stamps": -2, "rewards": 1}, "points": {"points": -12}})  # as the till made it
    read_back = dict(refund, reversed={"coffee": {"rewards": 1, "stamps": -2}, "points": {"points": -12}})  # keys sorted
    first = render(templates.refund_slip(made, cfg), "text", cfg).decode("utf-8")
    copy = render(templates.refund_slip(read_back, cfg), "text", cfg).decode("utf-8")
    assert first == copy and first.index("stamps") < first.index("rewards"), first
