"""pcsc:// against a real pcscd + vsmartcard-vpcd, with cards emulated over the vpcd socket."""

from __future__ import annotations

import time
from typing import Any

import pytest

from drivers import identity
from drivers.readers import (
    CardError,
    CardPresent,
    CardRemoved,
    ReaderConnected,
    ReaderDisconnected,
    open_reader,
)

from .vcard import ATR_ULTRALIGHT, text_record_message, type2_memory

pytestmark = pytest.mark.pcsc

READER = "Virtual PCD 00 00"
UID = bytes.fromhex("04A1B2C3D4E5F6")
SEEN = 3.0  # pcscd polls vpcd every 400 ms: a change is seen within one poll; the rest is slack for a busy machine


def _watch(stream: Any, url: str = f"pcsc://{READER}?timeout_ms=300", **kw: Any) -> Any:
    s = stream(open_reader(url, **kw))
    assert s.wait_for(ReaderConnected).reader == READER
    return s


def test_uid_read_and_removal(pcscd: Any, stream: Any, cards: Any) -> None:
    s = _watch(stream)
    card = cards()
    card.insert()
    ev = s.wait_for(CardPresent, SEEN)
    assert (ev.card_id, ev.uid, ev.reader, ev.technology) == ("uid:04A1B2C3D4E5F6", UID, READER, "pcsc")
    assert ev.atr == card.spec.atr and ev.ndef == ()
    assert card.spec.apdus[0] == bytes.fromhex("FFCA000000")
    card.remove()
    assert isinstance(s.next(SEEN), CardRemoved)


def test_type4_ndef_number(pcscd: Any, stream: Any, cards: Any) -> None:
    s = _watch(stream)
    cards(ndef=text_record_message("100200300")).insert()
    ev = s.wait_for(CardPresent, SEEN)
    assert (ev.card_id, ev.uid, ev.ndef) == ("ndef:100200300", UID, ("100200300",))


def test_type2_ndef_number(pcscd: Any, stream: Any, cards: Any) -> None:
    s = _watch(stream)
    long_number = "7" * 60  # spans several 16-byte reads
    cards(atr=ATR_ULTRALIGHT, type2=type2_memory(text_record_message(long_number), UID)).insert()
    ev = s.wait_for(CardPresent, SEEN)
    assert ev.card_id == f"ndef:{long_number}"


def test_a_blank_type2_tag_is_known_by_its_uid(pcscd: Any, stream: Any, cards: Any) -> None:
    s = _watch(stream)
    blank = type2_memory(b"", UID)[:16] + b"\x00" * 176  # NTAG213-like: CC in page 3, a data area of NULL TLVs, no NDEF TLV
    cards(atr=ATR_ULTRALIGHT, type2=blank).insert()
    ev = s.wait_for(CardPresent, SEEN)
    assert (ev.card_id, ev.ndef) == ("uid:04A1B2C3D4E5F6", ())


def test_signed_ndef_number_under_require(pcscd: Any, stream: Any, cards: Any) -> None:
    key = identity.load_private("33" * 32)
    pub = identity.public_text(key.public_key())
    s = _watch(stream, require_signed="require", public_keys=[pub])
    good = cards(ndef=text_record_message(identity.sign("4455", key)))
    good.insert()
    ev = s.wait_for(CardPresent, SEEN)
    assert (ev.card_id, ev.signature, ev.refused) == ("ndef:4455", "valid", False)
    good.remove()
    s.wait_for(CardRemoved, SEEN)
    forged = identity.sign("4455", key).replace("4455", "4456", 1)
    cards(ndef=text_record_message(forged)).insert()
    refused = s.wait_for(CardPresent, SEEN)
    assert (refused.card_id, refused.signature, refused.refused) == ("ndef:4456", "invalid", True)
    assert "forged" in refused.warnings[0]


def test_card_left_on_reader_is_one_tap_and_reinsert_is_another(pcscd: Any, stream: Any, cards: Any) -> None:
    s = _watch(stream)
    card = cards(ndef=text_record_message("1"))
    card.insert()
    s.wait_for(CardPresent, SEEN)
    assert s.quiet(1.2) == []  # three polls later: still one tap
    card.remove()
    assert isinstance(s.next(SEEN), CardRemoved)
    card.insert()
    assert s.wait_for(CardPresent, SEEN).card_id == "ndef:1"


def test_card_pulled_mid_exchange_gives_no_tap(pcscd: Any, stream: Any, cards: Any) -> None:
    s = _watch(stream)
    pulled = cards(ndef=text_record_message("999"), vanish_after=3)  # gone during the NDEF read
    pulled.insert()
    deadline = time.monotonic() + SEEN
    while len(pulled.spec.apdus) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pulled.spec.apdus) == 4, "the card was never read up to the point it left"
    events = s.quiet(0.8)
    assert not [e for e in s.seen if isinstance(e, (CardPresent, CardRemoved, CardError))], events
    pulled.remove()
    cards(ndef=text_record_message("1000")).insert()
    assert s.wait_for(CardPresent, SEEN).card_id == "ndef:1000"


def test_silent_card_hits_the_deadline_and_other_readers_go_on(pcscd: Any, stream: Any, cards: Any) -> None:
    s = stream(open_reader("pcsc://Virtual PCD?timeout_ms=300"))  # both virtual readers
    assert {s.wait_for(ReaderConnected).reader for _ in range(2)} == {READER, "Virtual PCD 00 01"}
    silent = cards(silent_after=1)  # answers the UID, then never again
    silent.insert()
    err = s.wait_for(CardError, SEEN)
    assert err.reader == READER and "deadline" in err.reason
    assert not [e for e in s.seen if isinstance(e, CardPresent)]
    other = cards(port=35964, ndef=text_record_message("2"))
    other.insert()  # the silent card is still on the first reader
    ev = s.wait_for(CardPresent, SEEN)
    assert (ev.reader, ev.card_id) == ("Virtual PCD 00 01", "ndef:2")
    silent.remove()
    cards(ndef=text_record_message("3")).insert()
    ev = s.wait_for(CardPresent, SEEN)
    assert (ev.reader, ev.card_id) == (READER, "ndef:3")


def test_pcscd_killed_and_restarted_reader_comes_back(pcscd: Any, stream: Any, cards: Any) -> None:
    s = _watch(stream)
    card = cards(ndef=text_record_message("5"))
    card.insert()
    s.wait_for(CardPresent, SEEN)
    pcscd.kill()
    down = s.wait_for(ReaderDisconnected, 3)
    assert down.reader == READER
    assert any(isinstance(e, CardRemoved) for e in s.seen)
    card.remove()
    time.sleep(0.3)  # the app keeps running with no service
    pcscd.start()
    assert s.wait_for(ReaderConnected, 3).reader == READER
    card.insert()  # vpcd's socket is new: the card is presented again
    assert s.wait_for(CardPresent, SEEN).card_id == "ndef:5"


def test_no_matching_reader_is_reported(pcscd: Any, stream: Any) -> None:
    s = stream(open_reader("pcsc://ACS ACR122U"))
    down = s.wait_for(ReaderDisconnected)
    assert "ACS ACR122U" in down.reason


def test_reader_test_cli_prints_a_pcsc_tap_as_json(pcscd: Any, cards: Any) -> None:
    import json
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "terminal.cli", "--config", "/nonexistent/config.toml", "reader", "test", "--json",
         "--url", f"pcsc://{READER}", "--count", "1", "--timeout", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert (first["event"], first["reader"]) == ("connected", READER)
        cards(ndef=text_record_message("6060")).insert()
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    tap = json.loads(out.splitlines()[-1])
    assert tap["event"] == "card" and tap["card"] == "ndef:6060" and tap["uid"] == UID.hex().upper()
    assert tap["reader"] == READER and tap["driver_ms"] < 1000 and tap["atr"]


def test_started_before_pcscd_the_reader_comes_up_when_it_does(pcscd: Any, stream: Any, cards: Any) -> None:
    pcscd.kill()
    s = stream(open_reader(f"pcsc://{READER}?retry_ms=50"))
    down = s.wait_for(ReaderDisconnected)
    assert "service not available" in down.reason.lower()
    pcscd.start()
    assert s.wait_for(ReaderConnected, 3).reader == READER
    cards(ndef=text_record_message("7070")).insert()
    assert s.wait_for(CardPresent, SEEN).card_id == "ndef:7070"


def test_reader_list_names_the_pcsc_readers_with_their_urls(pcscd: Any) -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "terminal.cli", "--config", "/nonexistent/config.toml", "reader", "list",
                          "--json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)["readers"]
    assert {"kind": "pcsc", "name": READER, "url": f"pcsc://{READER}"} in found
    assert not [p for p in json.loads(out.stdout)["problems"] if p.startswith("pcsc")]
