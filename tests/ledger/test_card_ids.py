"""Card ids: one normalized text per physical card; a mistyped type is refused, other text is a code."""

from __future__ import annotations

import pytest

from ledger.cards import CardIdError, normalize


@pytest.mark.parametrize(("raw", "card"), [
    ("uid:04 a1 b2 c3", "uid:04A1B2C3"),
    ("EM:0102030405", "em:0102030405"),
    ("  12345 ", "code:12345"),
    ("https://shop.example/c/77", "code:https://shop.example/c/77"),  # a URL in a QR code is the code itself
    ("xyz:123", "code:xyz:123"),
    ("code:uld:1", "code:uld:1"),
])
def test_normalized(raw: str, card: str) -> None:
    assert normalize(raw) == card


@pytest.mark.parametrize(("raw", "says"), [
    ("uld:04A1B2C3", "did you mean 'uid:'?"),
    ("nde:55", "did you mean 'ndef:'?"),
    ("cod:ABC", "did you mean 'code:'?"),
    ("uid:XYZ", "4, 7 or 10 bytes of hex"),
    ("", "empty card id"),
])
def test_refused(raw: str, says: str) -> None:
    with pytest.raises(CardIdError) as err:
        normalize(raw)
    assert says in str(err.value)


@pytest.mark.parametrize(("typed", "same_as"), [
    ("ｃｏｄｅ：ＬＯＹ－００１", "code:LOY-001"),  # full-width, as some keyboards and scanners send it
    ("code:Cafe\u0301", "code:Caf\u00e9"),  # decomposed and composed é
    ("code:١٢٣٤٥", "code:12345"),  # Arabic-Indic digits
    ("code:۱۲۳۴۵", "code:12345"),  # Persian digits
])
def test_one_card_has_one_id_however_it_was_typed(typed, same_as):
    assert normalize(typed) == normalize(same_as)


@pytest.mark.parametrize("hidden", ["\u200b", "\u200e", "\u202e", "\ufeff", "\x07"])
def test_an_invisible_character_in_a_card_id_is_refused(hidden):
    for raw in (f"code:{hidden}", f"code:LOY{hidden}001", f"code:LOY001{hidden}"):
        with pytest.raises(CardIdError) as err:
            normalize(raw)
        assert f"U+{ord(hidden):04X}" in str(err.value)


def test_a_line_separator_inside_a_card_id_is_refused():
    with pytest.raises(CardIdError):
        normalize("code:LOY\u2028001")
