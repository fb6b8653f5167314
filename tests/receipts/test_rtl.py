"""Arabic and Persian: shaped by raqm, laid out right to left, numbers and Latin in the right order."""

from __future__ import annotations

from pathlib import Path

import arabic_reshaper
import pytest
from bidi import get_display
from PIL import Image, ImageChops, ImageDraw, ImageFont, features
from receipt_support import build, config

from receipts import raster
from receipts.i18n import Lang
from receipts.model import Document, Row, Text
from receipts.png import render_png
from receipts.text import render_text

PAPER_DOTS = 576


def _draw(line: raster.LaidOut) -> Image.Image:
    im = Image.new("L", (PAPER_DOTS, 60), 255)
    raster.draw_laid_out(ImageDraw.Draw(im), 8, 42, line)
    return im


def _reference(text: str) -> Image.Image:
    """The same words shaped and ordered by arabic-reshaper + python-bidi, drawn without raqm."""
    f = ImageFont.truetype(raster._font_path("NotoSansArabic-Regular.ttf"), raster.BASE_PX, layout_engine=ImageFont.Layout.BASIC)
    im = Image.new("L", (PAPER_DOTS, 60), 255)
    ImageDraw.Draw(im).text((8, 42), text, font=f, fill=0, anchor="ls")
    return im


def _ink(im: Image.Image) -> Image.Image:
    """Black pixels only, cropped to the ink."""
    bw = im.point(lambda v: 255 if v < 128 else 0)
    box = bw.getbbox()
    assert box is not None, "nothing was drawn"
    return bw.crop(box)


def overlap(a: Image.Image, b: Image.Image) -> float:
    """Intersection over union of the ink of two renderings (1.0: the same pixels)."""
    x, y = _ink(a), _ink(b)
    w, h = max(x.width, y.width), max(x.height, y.height)
    X, Y = Image.new("L", (w, h), 0), Image.new("L", (w, h), 0)
    X.paste(x, (0, 0))
    Y.paste(y, (0, 0))
    inter = ImageChops.logical_and(X.convert("1"), Y.convert("1"))
    union = ImageChops.logical_or(X.convert("1"), Y.convert("1"))
    return sum(1 for v in inter.get_flattened_data() if v) / max(1, sum(1 for v in union.get_flattened_data() if v))


def test_the_raqm_path_is_used() -> None:
    assert features.check("raqm")
    assert raster.engine() == "raqm"
    assert raster.font("arabic", False, raster.BASE_PX, "raqm").layout_engine == ImageFont.Layout.RAQM
    line = raster.lay_out("بطاقة القهوة", rtl_base=True, lang="ar", mode="L")
    assert line.layout == "raqm"


@pytest.mark.parametrize(("word", "lang"), [("بطاقة القهوة", "ar"), ("کارت قهوه", "fa"), ("الإجمالي", "ar")])
def test_joined_forms_match_the_reference_and_differ_from_isolated_letters(word: str, lang: str) -> None:
    shaped = _draw(raster.lay_out(word, rtl_base=True, lang=lang, mode="L"))
    reference = _reference(get_display(arabic_reshaper.reshape(word)))
    isolated = _reference(word[::-1])  # right to left but unshaped: every letter in its isolated form
    assert overlap(shaped, reference) > 0.9
    assert overlap(shaped, isolated) < 0.6


def test_persian_letters_have_glyphs() -> None:
    notdef = raster.shaped("\uffff", False, "arabic", False, raster.BASE_PX, "raqm", "fa", "L")
    for letter in "پچژگکی۰۱۲۳":
        glyphs = raster.shaped(letter, True, "arabic", False, raster.BASE_PX, "raqm", "fa", "L")
        assert glyphs.advance > 0
        assert glyphs.mask.size != notdef.mask.size or bytes(glyphs.mask) != bytes(notdef.mask), letter


def _visual(text: str) -> list[tuple[str, bool]]:
    return [(r.text, r.rtl) for r in raster.runs(text, rtl_base=True)]


def test_numbers_and_latin_keep_their_order_inside_rtl_lines() -> None:
    # Visual order is left to right: the Arabic label stands at the right end.
    runs = _visual("المجموع 12.500 KWD")
    texts = [t.strip() for t, _ in runs]
    assert texts.index("KWD") < texts.index("12.500") < texts.index("المجموع")
    assert ("12.500", False) in [(t.strip(), rtl) for t, rtl in runs], "digits are never reversed"

    runs = _visual("البطاقة uid:04A1B2C3D4E5F6")
    assert runs[0] == ("uid:04A1B2C3D4E5F6", False) and runs[-1][0].strip() == "البطاقة"

    runs = _visual("إيصال till-1-000014")
    assert runs[0] == ("till-1-000014", False)

    runs = _visual("2 × لاتيه")
    assert runs[-1][0].strip() == "2", "the quantity is read first, at the right"

    runs = _visual("بطاقة VIP (سنة)")
    texts = [t.strip() for t, _ in runs]
    # Noto Sans Arabic has no parentheses: they come from the Latin font, mirrored by raqm in their RTL runs.
    assert texts.index("سنة") < texts.index("VIP") < texts.index("بطاقة")
    assert (")", True) in runs


def test_latin_runs_are_drawn_exactly_as_in_english() -> None:
    line = raster.lay_out("البطاقة uid:04A1B2C3D4E5F6", rtl_base=True, lang="ar", mode="L")
    latin = raster.shaped("uid:04A1B2C3D4E5F6", False, "latin", False, raster.BASE_PX, "raqm", "ar", "L")
    assert line.glyphs[0] is latin


def test_an_arabic_row_puts_the_label_right_and_the_amount_left() -> None:
    im = raster.render_blocks([Row("الإجمالي", "6.133 د.ك.")], PAPER_DOTS, rtl=True, lang="ar", mode="L")
    label = _draw(raster.lay_out("الإجمالي", rtl_base=True, lang="ar", mode="L"))
    ink = im.point(lambda v: 255 if v < 128 else 0)
    left, right = ink.crop((0, 0, PAPER_DOTS // 2, im.height)), ink.crop((PAPER_DOTS // 2, 0, PAPER_DOTS, im.height))
    assert left.getbbox() is not None and right.getbbox() is not None
    assert right.getbbox()[2] >= PAPER_DOTS // 2 - 2  # the label reaches the right edge
    assert _ink(label).size == _ink(im.crop((PAPER_DOTS // 2, 0, PAPER_DOTS, im.height))).size


def test_long_arabic_text_wraps_inside_the_paper() -> None:
    seed = ("أصبحت برامج ولاء العملاء جزءًا متوقعًا من تجربة المستهلك، لذلك، فإن وضع إستراتيجيات برنامج ولاءٍ ناجحٍ "
            "وتنفيذه وإدارته، هو أحد أفضل الطرق لجذب العملاء والتفاعل معهم وإسعادهم")
    im = raster.render_blocks([Text(seed)], 384, rtl=True, lang="ar", mode="L")
    assert im.width == 384 and im.height >= 3 * raster.line_height(1)


MARKS = str.maketrans("", "", "\u200e\u200f\u061c")


def test_eastern_digits_option() -> None:
    fa, ar = Lang("fa", digits="native"), Lang("ar", digits="native")
    assert fa.money("12.500", "KWD").translate(MARKS) == "KWD ۱۲٫۵۰۰"
    assert ar.money("12.500", "KWD").translate(MARKS) == "١٢٫٥٠٠ د.ك."
    assert Lang("ar").money("12.500", "KWD").translate(MARKS) == "12.500 د.ك."
    assert fa.num(1234) == "۱٬۲۳۴" and fa.day("2026-12-15").translate(MARKS) == "۲۰۲۶-۱۲-۱۵"
    assert ar.negative("1.250", "KWD").translate(MARKS) == "-١٫٢٥٠ د.ك."
    assert Lang("en").negative("1.250", "KWD") == "-KWD 1.250"
    # nothing taken off has no minus sign (a Z with no refunds said "-KWD 0.000")
    assert Lang("en").negative("0.000", "KWD") == "KWD 0.000"
    assert ar.negative("0.000", "KWD").translate(MARKS) == "٠٫٠٠٠ د.ك."


def test_percent_takes_the_languages_sign_and_digits() -> None:
    assert Lang("fa", digits="native").percent("12.5") == "۱۲٫۵٪"
    assert Lang("fa").percent(5) == "5%"
    assert Lang("ar", digits="native").percent(5).translate(MARKS) == "٥٪"
    assert Lang("ar").percent("7.5").translate(MARKS) == "7.5%"
    assert Lang("en").percent(10) == "10%"
    fa = Lang("fa", digits="native")
    assert fa._("{percent} off", percent=fa.percent(5)) == "۵٪ تخفیف"


def test_dates_and_signs_read_left_to_right_after_arabic_words() -> None:
    ar = Lang("ar")
    runs = _visual(ar._("{points} pts valid until {date}", points=40, date=ar.day("2026-12-15")))
    assert ("2026-12-15", False) in [(t.strip("\u200e "), rtl) for t, rtl in runs]
    runs = _visual(ar.negative("1.250", "KWD"))
    assert ("-1.250", False) in [(t.strip("\u200e "), rtl) for t, rtl in runs]
    assert ("+102", False) in [(t.strip("\u200e "), rtl) for t, rtl in _visual(ar.signed(102))]


@pytest.mark.parametrize("locale", ["ar", "fa"])
def test_native_digit_dates_times_and_signs_keep_their_order(locale: str) -> None:
    lang = Lang(locale, digits="native")

    def seen(text: str) -> str:  # what the paper shows, left to right
        return "".join(r.text for r in raster.runs(text, rtl_base=True)).translate(MARKS)

    digits = lang.localize_digits
    assert digits("2027-01-10") in seen(lang._("{points} pts valid until {date}", points=40, date=lang.day("2027-01-10")))
    assert seen(lang.local_time("2026-12-18T07:00:00Z")).startswith(digits("2026-12-18"))
    assert seen(lang.signed(48)) == "+" + digits("48") and seen(lang.signed(-3)) == "-" + digits("3")


def test_persian_receipt_with_native_digits(tmp_path: Path) -> None:
    cfg = config(tmp_path, locale="fa")
    text = render_text(build("sale", cfg, Lang("fa", digits="native", tz=cfg.store.tz)), 48)
    assert "۶٫۱۳۳" in text and "۱۹۱ امتیاز" in text and "مبلغ کل" in text
    assert "uid:04A1B2C3D4E5F6" in text and "till-1-000014" in text  # identifiers stay as the systems read them
    assert "6.133" not in text


def test_the_digits_variable_chooses_only_when_the_config_does_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from receipts.templates import lang_for

    monkeypatch.setenv("LOYALTY_RECEIPT_DIGITS", "native")
    unset = config(tmp_path / "unset", locale="fa")
    assert unset.store.digits is None and lang_for(unset).digits == "native"
    path = unset.path.read_text(encoding="utf-8").replace('locale = "fa"', 'locale = "fa"\ndigits = "latn"', 1)
    (tmp_path / "set.toml").write_text(path, encoding="utf-8")
    from ledger.config import load

    assert lang_for(load(tmp_path / "set.toml")).digits == "latn"  # the store's own choice wins
    monkeypatch.delenv("LOYALTY_RECEIPT_DIGITS")
    assert lang_for(unset).digits == "latn"


def test_arabic_text_receipt_is_translated_and_marked_rtl(tmp_path: Path) -> None:
    cfg = config(tmp_path, locale="ar")
    text = render_text(build("sale", cfg, Lang("ar", tz=cfg.store.tz)), 48).translate(MARKS)
    for expected in ("الإجمالي", "لاتيه", "بطاقة القهوة", "8 متبقية للحصول على قهوة مجانًا", "40 نقطة صالحة حتى 2026-12-14"):
        assert expected in text, expected
    raw = render_text(build("sale", cfg, Lang("ar", tz=cfg.store.tz)), 48)
    assert all(line.startswith("\u200f") for line in raw.splitlines() if line)


@pytest.mark.parametrize("locale", ["ar", "fa"])
def test_png_receipt(tmp_path: Path, locale: str) -> None:
    cfg = config(tmp_path, locale=locale)
    from receipts.escpos import paper

    im = render_png(build("sale", cfg, Lang(locale, tz=cfg.store.tz)), paper("TM-T88V", 80))
    assert im.width == 512 + 32 and im.height > 1200
    assert im.getextrema() == (0, 255)


def test_fallback_without_raqm_still_joins_letters(monkeypatch: pytest.MonkeyPatch) -> None:
    word = "بطاقة القهوة"
    with_raqm = _draw(raster.lay_out(word, rtl_base=True, lang="ar", mode="L"))
    monkeypatch.setenv("LOYALTY_RTL_ENGINE", "basic")
    assert raster.engine() == "basic"
    line = raster.lay_out(word, rtl_base=True, lang="ar", mode="L")
    assert line.layout == "basic"
    drawn = raster._basic_text(line.runs[0])
    assert any(0xFE70 <= ord(ch) <= 0xFEFF for ch in drawn), "presentation forms from arabic-reshaper"
    assert overlap(_draw(line), with_raqm) > 0.9


def test_documents_know_their_direction(tmp_path: Path) -> None:
    for locale, direction in (("en", "ltr"), ("ar", "rtl"), ("fa", "rtl")):
        cfg = config(tmp_path / locale, locale=locale)
        doc: Document = build("voucher", cfg, Lang(locale, tz=cfg.store.tz))
        assert doc.direction == direction and doc.locale == locale


def test_a_tier_discount_is_named_by_its_tier(tmp_path: Path) -> None:
    from receipts.templates import _source_name

    cfg = config(tmp_path, locale="ar")
    level = cfg.tiers.levels[-1]
    assert _source_name(cfg, f"tier:{level.id}", Lang("en")) == f"Tier {level.name}"
    assert _source_name(cfg, f"tier:{level.id}", Lang("ar")) == f"المستوى {level.names.get('ar', level.name)}"


def test_the_stamp_card_names_the_reward_it_leads_to(tmp_path: Path) -> None:
    from dataclasses import replace

    from ledger.settings import Eligibility
    from receipts.templates import _free_item

    cfg = config(tmp_path, locale="en")
    coffee = next(p for p in cfg.programs.values() if p.kind == "stamps")
    en = Lang("en")
    assert _free_item(cfg, coffee, en) == "coffee"  # one category
    one = replace(coffee, reward_eligible=Eligibility(frozenset(), frozenset({"LAT"})))
    assert _free_item(cfg, one, en) == cfg.catalog["LAT"].name
    two = replace(coffee, reward_eligible=Eligibility(frozenset(), frozenset({"LAT", "ESP"})))
    assert _free_item(cfg, two, en) == f"{cfg.catalog['ESP'].name}/{cfg.catalog['LAT'].name}"
    mixed = replace(coffee, reward_eligible=Eligibility(frozenset({"coffee"}), frozenset({"CRO"})))
    assert _free_item(cfg, mixed, en) == "reward"


def test_persian_zero_width_non_joiners_reach_the_shaper() -> None:
    # the bidi step drops them (rule X9); without them "استفاده‌شده" prints as one misspelt word
    for word in ("استفاده\u200cشده", "جایزه\u200cهای", "می\u200cشود"):
        drawn = "".join(r.text for r in raster.runs(word, rtl_base=True))
        assert drawn == word, drawn.encode("unicode_escape")
