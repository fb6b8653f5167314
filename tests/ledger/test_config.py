"""config.toml validation: one clear message naming file, key, line and a hint."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from ledger_store import STORE, run_cli

from ledger.config import ConfigError, load

ROOT = Path(__file__).resolve().parents[2]

# (name, old text -> new text, expected dotted key, whether the line is known, words in the message);
# the expected line is where the changed text stands in the file.
BAD = [
    ("syntax", ('name = "Latte"', 'name = "Latte'), "", True, ["not valid TOML", "column"]),
    ("unknown_key", ('stamps_per_reward = 10', 'stamps_per_rewrd = 10'), "program[0].stamps_per_rewrd", True, ["unknown key", "did you mean 'stamps_per_reward'"]),
    ("unknown_section_key", ('currency = "KWD"', 'currency = "KWD"\ncurrencey = "EUR"'), "store.currencey", True, ["unknown key", "did you mean 'currency'"]),
    ("wrong_type", ('stamps_per_reward = 10', 'stamps_per_reward = "ten"'), "program[0].stamps_per_reward", True, ["whole number"]),
    ("float_price", ('price = "0.750"', "price = 0.75"), "catalog[0].price", True, ["decimal string"]),
    ("too_many_digits", ('price = "0.750"', 'price = "0.7505"'), "catalog[0].price", True, ["more than 3 decimal digit"]),
    ("unknown_currency", ('currency = "KWD"', 'currency = "KWX"'), "store.currency", True, ["unknown currency", "did you mean 'KWD'"]),
    ("bad_locale", ('locale = "en"', 'locale = "fr"'), "store.locale", True, ["one of en, ar, fa"]),
    ("bad_timezone", ('timezone = "Asia/Kuwait"', 'timezone = "Asia/Kuwiat"'), "store.timezone", True, ["unknown time zone", "did you mean 'Asia/Kuwait'"]),
    ("unknown_category", ('eligible = { categories = ["coffee"] }', 'eligible = { categories = ["cofee"] }'), "program[0].eligible.categories", True, ["no catalog item has category 'cofee'", "did you mean 'coffee'"]),
    ("duplicate_sku", ('sku = "LAT"', 'sku = "ESP"'), "catalog[1].sku", True, ["appears twice"]),
    ("missing_required", ('stamps_per_reward = 10\n', ""), "program[0].stamps_per_reward", True, ["is required"]),
    ("bad_kind", ('kind = "stamps"', 'kind = "stamp"'), "program[0].kind", True, ["did you mean 'stamps'"]),
    ("negative_price", ('price = "0.750"', 'price = "-0.750"'), "catalog[0].price", True, ["must not be negative"]),
    ("step_value_zero", ('step_value = "0.500"', 'step_value = "0.000"'), "program[1].redeem.step_value", True, ["more than zero"]),
    ("no_store", ('[store]', '[stor]'), "stor", True, ["unknown key", "did you mean 'store'"]),
    ("sync_server_not_a_url", ('timezone = "Asia/Kuwait"', 'timezone = "Asia/Kuwait"\n\n[sync]\nserver = "notaurl"'), "sync.server", True,
     ["http:// or https:// URL", "'notaurl'"]),
    ("promotion_date_and_time", ('expiring_notice_days = 10', 'expiring_notice_days = 10\n\n[[promotion]]\nid = "p"\nmultiplier = 2\nfrom = 2027-03-20T10:00:00'),
     "promotion[0].from", True, ["must be a date such as", "not a date and time"]),
    ("promotion_end_date_and_time", ('expiring_notice_days = 10', 'expiring_notice_days = 10\n\n[[promotion]]\nid = "p"\nmultiplier = 2\nto = 2027-04-10T00:00:00'),
     "promotion[0].to", True, ["not a date and time"]),
    ("promotion_time_of_day", ('expiring_notice_days = 10', 'expiring_notice_days = 10\n\n[[promotion]]\nid = "p"\nmultiplier = 2\nfrom = 10:00:00'),
     "promotion[0].from", True, ["not a time of day (10:00:00)"]),
    ("duplicate_promotion", ('expiring_notice_days = 10', 'expiring_notice_days = 10\n\n[[promotion]]\nmultiplier = 2\nid = "p"\n\n[[promotion]]\nmultiplier = 3\nid = "p"'),
     "promotion[1].id", True, ["promotion id 'p' appears twice"]),
    ("sku_differs_only_in_case", ('sku = "LAT"', 'sku = "esp"'), "catalog[1].sku", True, ["appears twice", "as 'ESP'", "whatever their case"]),
    ("tiers_out_of_order", ('expiring_notice_days = 10', 'expiring_notice_days = 10\n\n[tiers]\n[[tiers.level]]\nid = "gold"\nmin_spend = "50.000"'
                                                        '\n[[tiers.level]]\nid = "silver"\nmin_spend = "20.000"'),
     "tiers.level[1].min_spend", True, ["ascending order of min_spend", "'silver' after 'gold'"]),
    ("tiers_equal_spend", ('expiring_notice_days = 10', 'expiring_notice_days = 10\n\n[tiers]\n[[tiers.level]]\nid = "silver"\nmin_spend = "20.000"'
                                                       '\n[[tiers.level]]\nid = "gold"\nmin_spend = "20.000"'),
     "tiers.level[1].min_spend", True, ["ascending order of min_spend"]),
    ("min_points_not_whole_steps", ('redeem = { step_points = 100, step_value = "0.500" }', 'redeem = { step_points = 100, step_value = "0.500", min_points = 150 }'),
     "program[1].redeem.min_points", True, ["whole number of steps (100 points)", "150"]),
    ("stamps_past_any_card", ('stamps_per_reward = 10', 'stamps_per_reward = 99999999999999999999'), "program[0].stamps_per_reward", True, ["at most 1000"]),
    ("price_past_any_sum", ('price = "0.750"', 'price = "99999999999.000"'), "catalog[0].price", True, ["largest amount this till takes"]),
    ("expiry_past_any_date", ('expire_after_days = 30', 'expire_after_days = 100000000'), "program[1].expire_after_days", True, ["at most 3660"]),
    ("terminal_id_with_a_space", ('terminal = "till-9"', 'terminal = "till 9"'), "store.terminal", True, ["letters, digits", "receipt numbers"]),
    ("sku_with_a_star", ('sku = "LAT"', 'sku = "LAT*2"'), "catalog[1].sku", True, ["may not hold '*'"]),
    ("barcode_is_another_sku", ('sku = "LAT"', 'sku = "LAT"\nbarcode = "esp"'), "catalog[1].barcode", True, ["is item 'ESP''s SKU"]),
    ("multiplier_inf", ("category_multipliers = { retail = 2 }", "category_multipliers = { retail = inf }"),
     "program[1].earn.category_multipliers.retail", True, ["must be a number", "inf"]),
    ("multiplier_past_any_rule", ("category_multipliers = { retail = 2 }", "category_multipliers = { retail = 1e12 }"),
     "program[1].earn.category_multipliers.retail", True, ["between 0 and 100"]),
    ("printer_timeout_negative", ('timezone = "Asia/Kuwait"', 'timezone = "Asia/Kuwait"\n\n[printer]\ntimeout_s = -1'), "printer.timeout_s", True,
     ["more than 0", "not -1"]),
    ("sync_timeout_nan", ('timezone = "Asia/Kuwait"', 'timezone = "Asia/Kuwait"\n\n[sync]\ntimeout_s = nan'), "sync.timeout_s", True,
     ["more than 0", "not nan"]),
    ("sync_server_port_past_any", ('timezone = "Asia/Kuwait"', 'timezone = "Asia/Kuwait"\n\n[sync]\nserver = "http://10.0.0.2:87650"'),
     "sync.server", True, ["Port out of range"]),
    ("graduated_out_of_order", ('expiring_notice_days = 10', 'expiring_notice_days = 10\n\n[[program]]\nid = "card"\nkind = "discount"'
                                                             '\n[[program.graduated]]\nfrom = "50.000"\npercent = 10'
                                                             '\n[[program.graduated]]\nfrom = "20.000"'),
     "program[2].graduated[1].from", True, ["ascending order of `from`"]),
    ("membership_benefit_of_nothing", ('expiring_notice_days = 10', 'expiring_notice_days = 10\n\n[[program]]\nid = "vip"\nkind = "membership"'
                                                                    '\nsku = "VIP"\nbenefit = { }'),
     "program[2].benefit", True, ["gives nothing", "discount_percent above 0"]),
    ("duplicate_tier", ('expiring_notice_days = 10', 'expiring_notice_days = 10\n\n[tiers]\n[[tiers.level]]\nmin_spend = "20.000"\nid = "silver"'
                                                     '\n[[tiers.level]]\nmin_spend = "50.000"\nid = "silver"'),
     "tiers.level[1].id", True, ["tier id 'silver' appears twice"]),
    # `names` beside it is no misspelt `name`: the missing name is the fault
    ("name_missing_beside_names", ('name = "Latte"\n', 'names = { fa = "لاته" }\n'), "catalog[1].name", False, ["is required"]),
    ("sync_server_ftp", ('timezone = "Asia/Kuwait"', 'timezone = "Asia/Kuwait"\n\n[sync]\nserver = "ftp://10.0.0.2"'), "sync.server", True,
     ["http:// or https:// URL"]),
]


@pytest.mark.parametrize(("name", "change", "key", "line", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_gives_one_clear_message(tmp_path, name, change, key, line, words):
    old, new = change
    assert old in STORE
    path = tmp_path / f"{name}.toml"
    text = STORE.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    # the changed line: the last line of the new text, or the enclosing table when a key was removed
    at = STORE.index(old) + (new.rfind("\n") + 1 if new else 0)
    if not new:
        at = STORE.index("[[program]]\nid = \"coffee\"")
    expected = text.count("\n", 0, at) + 1
    with pytest.raises(ConfigError) as err:
        load(path)
    message = str(err.value)
    assert err.value.file == str(path)
    assert err.value.key == key
    if line:
        assert err.value.line == expected, message
        assert f"{path}:{expected}:" in message
    for word in words:
        assert word in message


def test_check_config_reports_the_error_on_one_line_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(STORE.replace("stamps_per_reward = 10", "stamps_per_rewrd = 10"), encoding="utf-8")
    result = run_cli("--config", str(path), "check-config")
    assert result.code == 3
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1
    assert "stamps_per_rewrd" in result.err and "did you mean" in result.err
    assert list(tmp_path.iterdir()) == [path]


def _check_config(tmp_path, table: str, setting: str):
    """check-config on the test store plus `[table]` with `setting`: its result, and the `file:line:` it should name."""
    path = tmp_path / "store.toml"
    path.write_text(STORE + f"\n[{table}]\n{setting}\n", encoding="utf-8")
    line = path.read_text(encoding="utf-8").splitlines().index(setting) + 1
    return run_cli("--config", str(path), "check-config"), f"{path}:{line}:"


@pytest.mark.parametrize(("url", "words"), [("bogus://x", "unknown printer URL scheme 'bogus'"),
                                             ("escpos+tcp://h:notaport", "port 'notaport' is not a number"),
                                             ("escpos+tcp://10.0.0.5:9100?foo=1", "unknown option 'foo'")])
def test_check_config_opens_the_printer_url_without_connecting(tmp_path, url, words):
    result, where = _check_config(tmp_path, "printer", f'url = "{url}"')
    assert result.code == 3 and result.out == ""
    assert result.err.strip() == result.err.strip().splitlines()[0]
    assert f"{where} printer.url: " in result.err and words in result.err


def test_check_config_knows_the_printer_profiles(tmp_path):
    result, where = _check_config(tmp_path, "printer", 'profile = "TM-T88X"')
    assert result.code == 3 and f"{where} printer.profile: unknown printer profile 'TM-T88X' (did you mean 'TM-T88V'?)" in result.err
    assert _check_config(tmp_path, "printer", 'profile = "TM-T88V"')[0].code == 0


def test_check_config_knows_the_reader_schemes(tmp_path):
    result, where = _check_config(tmp_path, "reader", 'url = "pcscc://"')
    assert result.code == 3 and f"{where} reader.url: unknown reader scheme 'pcscc'" in result.err


def test_a_sale_on_a_config_that_names_no_printer_is_refused_before_it_commits(tmp_path):
    path = tmp_path / "store.toml"
    path.write_text(STORE + '\n[printer]\nurl = "escpos+usbb://04b8:0e15"\n', encoding="utf-8")
    result = run_cli("--config", str(path), "--json", "sale", "--card", "code:1", "--item", "LAT")
    assert result.code == 3 and result.json["error"] == "config" and "printer.url" in result.json["message"]
    assert not (tmp_path / "ledger.db").exists() or sqlite3.connect(tmp_path / "ledger.db").execute(
        "SELECT COUNT(*) FROM sales").fetchone()[0] == 0


def test_a_byte_order_mark_is_not_content(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + STORE.encode("utf-8"))
    assert load(path).store.id == "kw-test-01"


def test_missing_config_file(tmp_path):
    result = run_cli("--config", str(tmp_path / "none.toml"), "--json", "check-config")
    assert result.code == 3
    assert result.json["error"] == "config"
    assert "no such config file" in result.json["message"]


def test_the_repository_config_is_valid_and_matches_the_demo_store():
    repo = load(ROOT / "config.toml")
    demo = load(ROOT / "terminal" / "demo_store.toml")
    assert repo.rules_version == demo.rules_version
    kinds = {p.kind for p in repo.programs.values()}
    assert kinds == {"stamps", "points", "discount", "membership"}
    assert repo.tiers.levels and repo.promotions and repo.bonuses.welcome
    assert repo.currency.digits == 3


def test_every_config_key_is_documented():
    doc = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    import tomllib

    free_maps = {"names", "category_multipliers"}  # their keys are languages and categories, not settings

    def keys(value, prefix=""):
        if isinstance(value, dict):
            for k, v in value.items():
                yield f"{prefix}{k}"
                if k not in free_maps:
                    yield from keys(v, f"{prefix}{k}.")
        elif isinstance(value, list):
            for v in value:
                yield from keys(v, prefix)

    data = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    def documented(key: str) -> bool:
        last = re.escape(key.rsplit(".", 1)[-1])
        return re.search(rf"[`\[\.]{last}[`\] =]", doc) is not None

    missing = sorted(k for k in set(keys(data)) if not documented(k))
    assert not missing, f"undocumented keys: {missing}"


@pytest.mark.parametrize(("setting", "key", "words"), [
    ('url = "sim://?bogus=1"', "reader.url", "unknown option 'bogus' in reader URL sim"),
    ('url = "pcsc://?timeout_ms=abc"', "reader.url", "timeout_ms='abc' must be a number"),
    ('url = "nfc:udp:127.0.0.1"', "reader.url", "nfc:udp needs HOST:PORT"),
    ('public_keys = ["ed25519:not-a-key"]', "reader.public_keys", "ed25519:not-a-key"),
    ('require_signed = "require"', "reader.require_signed", "needs at least one reader.public_keys entry"),
])
def test_check_config_reads_the_reader_options_and_keys_as_the_reader_will(tmp_path, setting, key, words):
    result, where = _check_config(tmp_path, "reader", setting)
    assert result.code == 3 and result.out == ""
    assert f"{where} {key}: " in result.err and words in result.err, result.err


def test_check_config_accepts_a_reader_url_with_its_documented_options(tmp_path):
    assert _check_config(tmp_path, "reader", 'url = "pcsc://ACS ACR122U?timeout_ms=300&poll_ms=100"')[0].code == 0
    assert _check_config(tmp_path, "reader", 'url = "serial:///dev/ttyUSB9?protocol=rdm6300&baudrate=9600"')[0].code == 0


def test_skus_in_the_rules_match_the_catalog_whatever_their_case(tmp_path):
    path = tmp_path / "store.toml"
    path.write_text(STORE.replace('eligible = { categories = ["coffee"] }', 'eligible = { skus = ["lat", "Esp"] }'), encoding="utf-8")
    program = load(path).programs["coffee"]
    assert program.eligible.skus == frozenset({"LAT", "ESP"})
