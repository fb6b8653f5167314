"""Signed card numbers: valid, forged, wrong key, truncated, under each policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import ndef
import pytest

from drivers import identity
from drivers.readers import CardPresent, ReaderError, open_reader

KEY = identity.load_private("11" * 32)
OTHER = identity.load_private("22" * 32)
PUB = identity.public_text(KEY.public_key())
OTHER_PUB = identity.public_text(OTHER.public_key())


def _tamper(signed: str) -> str:
    number, kid, sig = signed.split("*")
    return f"{number[:-1]}{(int(number[-1]) + 1) % 10}*{kid}*{sig}"


CASES = {
    "valid": identity.sign("100200300", KEY),
    "forged": _tamper(identity.sign("100200300", KEY)),
    "wrong_key": identity.sign("100200300", OTHER),
    "truncated": identity.sign("100200300", KEY)[:-7],
    "cut_in_kid": identity.sign("100200300", KEY)[:13],
    "unsigned": "100200300",
}


def test_sign_then_check() -> None:
    v = identity.Verifier([PUB])
    assert v.check(CASES["valid"]) == identity.Checked("100200300", "valid")
    assert v.check(CASES["forged"]).signature == "invalid"
    assert "unknown key" in v.check(CASES["wrong_key"]).reason
    assert "truncated" in v.check(CASES["truncated"]).reason
    assert v.check(CASES["cut_in_kid"]).signature == "invalid"
    assert v.check(CASES["unsigned"]) == identity.Checked("100200300", "none")
    sig = CASES["valid"].split("*")[2]
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert v.check(CASES["valid"].rsplit("*", 1)[0] + "*" + flipped).signature == "invalid"


def test_signed_text_fits_qr_alphanumeric_mode() -> None:
    assert set(CASES["valid"]) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


def test_keys_in_every_written_form() -> None:
    raw_hex = PUB.removeprefix("ed25519:")
    import base64

    from cryptography.hazmat.primitives import serialization

    pem = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for text in (PUB, raw_hex, base64.b64encode(bytes.fromhex(raw_hex)).decode(), pem.decode()):
        assert identity.key_id(identity.load_public(text)) == identity.key_id(KEY.public_key())
    with pytest.raises(identity.KeyFormatError):
        identity.load_public("ed25519:abcd")
    with pytest.raises(ValueError):
        identity.sign("12*34", KEY)


EXPECT = {
    # case: the signature seen under (off, warn, require)
    "valid": ("valid", "valid", "valid"),
    "forged": ("invalid", "invalid", "invalid"),
    "wrong_key": ("invalid", "invalid", "invalid"),
    "truncated": ("invalid", "invalid", "invalid"),
    "cut_in_kid": ("invalid", "invalid", "invalid"),
    "unsigned": ("none", "none", "none"),
}


@pytest.mark.parametrize("policy", ["off", "warn", "require"])
@pytest.mark.parametrize("case", list(CASES))
def test_policy_on_a_barcode(stream: Any, policy: str, case: str) -> None:
    reader = open_reader("keyboard://", require_signed=policy, public_keys=[PUB])
    s = stream(reader)
    reader.feed(CASES[case] + "\n")
    want = EXPECT[case][("off", "warn", "require").index(policy)]
    ev = s.wait_for(CardPresent)
    number = CASES[case].split("*")[0]
    assert ev.card_id == f"code:{number}"  # the signature never becomes part of the id
    assert ev.signature == want
    faulty = want != "valid"
    assert ev.refused == (policy == "require" and faulty)
    assert bool(ev.warnings) == (policy != "off" and faulty)
    if ev.refused:
        assert ev.warnings[0].startswith("refused: ")


@pytest.mark.parametrize("policy", ["off", "warn", "require"])
def test_policy_on_an_ndef_tap(stream: Any, policy: str) -> None:
    reader = open_reader("sim://", require_signed=policy, public_keys=[PUB])
    s = stream(reader)
    reader.tap("ndef:" + CASES["valid"])
    ev = s.wait_for(CardPresent)
    assert (ev.card_id, ev.signature) == ("ndef:100200300", "valid")
    reader.tap("ndef:" + CASES["forged"])
    ev = s.wait_for(CardPresent)
    forged_number = CASES["forged"].split("*")[0]
    assert (ev.card_id, ev.signature, ev.refused) == (f"ndef:{forged_number}", "invalid", policy == "require")


def test_policy_without_keys_is_refused() -> None:
    with pytest.raises(ReaderError, match="public_keys"):
        open_reader("sim://", require_signed="require")
    with pytest.raises(ReaderError):
        open_reader("sim://", require_signed="warn", public_keys=["ed25519:00"])


def test_card_issue_cli_makes_a_number_the_reader_accepts(tmp_path: Path, stream: Any) -> None:
    key = tmp_path / "issuer.pem"
    out = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "--config", str(tmp_path / "none.toml"), "card", "issue", "555000111",
         "--new-key", str(key), "--json"],
        capture_output=True, text=True, timeout=20,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (key.stat().st_mode & 0o777) == 0o600
    records = list(ndef.message_decoder(bytes.fromhex(data["ndef_hex"])))
    assert isinstance(records[0], ndef.TextRecord) and records[0].text == data["signed"]
    reader = open_reader("keyboard://", require_signed="require", public_keys=[data["public_key"]])
    s = stream(reader)
    reader.feed(data["signed"] + "\n")
    ev = s.wait_for(CardPresent)
    assert (ev.card_id, ev.signature) == ("code:555000111", "valid")
    again = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "--config", str(tmp_path / "none.toml"), "card", "issue", "--key",
         str(key), "--json"],
        capture_output=True, text=True, timeout=20,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["public_key"] == data["public_key"]


def _issue(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "terminal.cli", "--config", str(tmp_path / "none.toml"), "--json", "card", "issue", *args],
                          capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize(("args", "code", "words"), [
    (("--new-key", "{tmp}/no/such/folder/k.pem"), "key", "cannot write the new key"),
    (("--new-key", "{tmp}/k.pem", "--lang", "x" * 64), "bad_lang", "not a language code"),
    (("--new-key", "{tmp}/k.pem", "--lang", "en US"), "bad_lang", "not a language code"),
    (("--key", "{tmp}/binary.pem"), "key", "is not a private key"),
])
def test_card_issue_refuses_what_it_cannot_use_and_leaves_no_key_behind(tmp_path: Path, args: tuple[str, ...], code: str,
                                                                        words: str) -> None:
    (tmp_path / "binary.pem").write_bytes(b"\xff\xfe\x00\x01")
    result = _issue(tmp_path, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["error"] == code and words in json.loads(result.stdout)["message"]
    assert not (tmp_path / "k.pem").exists()


def test_policy_and_keys_come_from_config_toml(tmp_path: Path) -> None:
    """`loyalty reader test` with the repository's demo config, its [reader] table set to require signatures."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "config.toml").read_text()
    signed = identity.sign("31337", KEY)
    reader_table = (
        "[reader]\n"
        f'url = "sim://?cards=code:12345,ndef:{signed}&every=0.05&hold=0.02"\n'
        'require_signed = "require"\n'
        f'public_keys = ["{PUB}"]\n'
    )
    lines = text.splitlines(keepends=True)
    start = lines.index("[reader]\n")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("["))
    text = "".join([*lines[:start], reader_table, "\n", *lines[end:]])
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "terminal.cli", "--config", str(cfg), "reader", "test", "--json", "--count", "2"],
        capture_output=True, text=True, timeout=20,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    taps = [(r["card"], r["signature"], r["refused"]) for r in rows if r["event"] == "card"]
    assert taps == [("code:12345", "none", True), ("ndef:31337", "valid", False)]


def test_the_example_in_the_readers_guide_verifies_with_the_key_it_shows() -> None:
    import re

    guide = (Path(__file__).resolve().parents[2] / "docs" / "readers.md").read_text(encoding="utf-8")
    signed = re.search(r"^(\d+\*[0-9A-F]{8}\*[A-Z2-7]+)$", guide, re.MULTILINE)
    key = re.search(r'public_keys = \["(ed25519:[0-9a-f]{64})"\]', guide)
    assert signed and key
    checked = identity.Verifier([key.group(1)]).check(signed.group(1))
    assert (checked.number, checked.signature) == ("100200300", "valid")
