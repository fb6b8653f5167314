"""The URL registry, the sim:// and keyboard:// readers, and `loyalty reader test`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from drivers.readers import (
    CardError,
    CardPresent,
    CardRemoved,
    ReaderConnected,
    ReaderError,
    open_reader,
)
from drivers.readers.common import parse_url


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(ReaderError) as err:
        open_reader("bluetooth://x")
    for scheme in ("pcsc://", "nfc:usb", "nfc:udp", "serial://", "keyboard://", "sim://"):
        assert scheme in str(err.value)


def test_hardware_libraries_are_imported_only_for_their_scheme() -> None:
    code = (
        "import sys; from drivers.readers import open_reader; open_reader('sim://'); open_reader('keyboard://');"
        "bad = [m for m in ('smartcard', 'nfc', 'serial', 'usb1') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_url_parsing_keeps_reader_names_with_spaces_and_colons() -> None:
    assert parse_url("pcsc://ACS ACR122U PICC Interface 00 00").target == "ACS ACR122U PICC Interface 00 00"
    assert parse_url("pcsc://Virtual%20PCD%2000%2000?timeout_ms=50").options == {"timeout_ms": "50"}
    u = parse_url("serial:///dev/ttyUSB0?protocol=line&baudrate=115200")
    assert (u.scheme, u.target, u.options) == ("serial", "/dev/ttyUSB0", {"protocol": "line", "baudrate": "115200"})
    assert parse_url("nfc:udp:127.0.0.1:54321").target == "udp:127.0.0.1:54321"


@pytest.mark.parametrize(
    "url",
    ["serial:///dev/x?protocol=wiegand", "serial:///dev/x?speed=9600", "sim://?every=soon", "keyboard://?x=1",
     "serial://", "sim://?cards=uid:XYZ",
     # values no reader can work with, and an option given twice
     "serial:///dev/x?baudrate=0", "serial:///dev/x?baudrate=9600.5", "pcsc://?timeout_ms=0", "pcsc://?poll_ms=0",
     "pcsc://?timeout_ms=1e12", "pcsc://?timeout_ms=nan", "sim://?every=0", "sim://?every=1&every=2",
     "nfc:udp:127.0.0.1:99999", "nfc:usb:zzzz:1"],
)
def test_bad_options_are_refused_at_open(url: str) -> None:
    with pytest.raises(ReaderError):
        open_reader(url)


def test_an_nfc_udp_port_that_etc_services_names_is_refused_at_open() -> None:
    # nfcpy looks the port up as a service name and then reads that name as a number
    import socket

    try:
        name = socket.getservbyport(22)
    except OSError:  # a machine without /etc/services: nfcpy keeps the number, and so the port is taken
        open_reader("nfc:udp:127.0.0.1:22").close()
        return
    with pytest.raises(ReaderError, match=rf"nfc:udp port 22 is the '{name}' service of /etc/services"):
        open_reader("nfc:udp:127.0.0.1:22")


def test_sim_tap_left_on_the_reader_is_one_tap(stream: Any) -> None:
    reader = open_reader("sim://")
    s = stream(reader)
    assert isinstance(s.next(), ReaderConnected)
    reader.tap("uid:04a1b2c3d4e5f6")
    reader.tap("uid:04A1B2C3D4E5F6")  # still on the reader
    ev = s.next()
    assert isinstance(ev, CardPresent) and ev.card_id == "uid:04A1B2C3D4E5F6" and ev.uid == bytes.fromhex("04A1B2C3D4E5F6")
    assert s.quiet(0.2) == []
    reader.remove()
    assert isinstance(s.next(), CardRemoved)
    reader.tap("uid:04A1B2C3D4E5F6")
    assert isinstance(s.next(), CardPresent)
    reader.tap("ndef:998877")  # another card replaces it
    assert isinstance(s.next(), CardRemoved)
    ev = s.next()
    assert isinstance(ev, CardPresent) and ev.card_id == "ndef:998877"


def test_sim_script_taps_in_turn(stream: Any) -> None:
    s = stream(open_reader("sim://?cards=uid:04A1B2C3,em:0102030405&every=0.05&hold=0.02"))
    cards = [s.wait_for(CardPresent).card_id for _ in range(3)]
    assert cards == ["uid:04A1B2C3", "em:0102030405", "uid:04A1B2C3"]


def test_keyboard_lines_and_scanner_double_reads(stream: Any) -> None:
    reader = open_reader("keyboard://", debounce_ms=150)
    s = stream(reader)
    assert isinstance(s.next(), ReaderConnected)
    reader.feed("6281000000011\r\n")
    reader.feed("6281000000011\n")  # the scanner read it twice
    ev = s.next()
    assert isinstance(ev, CardPresent) and ev.card_id == "code:6281000000011" and ev.technology == "keyboard"
    assert isinstance(s.next(), CardRemoved)  # silence past the debounce time
    reader.feed("code:4")  # a wedge typing key by key: nothing until Enter
    assert s.quiet(0.1) == []
    reader.feed("2\r\n\nuid:04A1B2C3\n")
    assert s.wait_for(CardPresent).card_id == "code:42"
    assert s.wait_for(CardPresent).card_id == "uid:04A1B2C3"
    reader.feed("x" * 300 + "\n")
    assert "unusable card number" in s.wait_for(CardError).reason


def test_keyboard_feed_is_thread_safe(stream: Any) -> None:
    import threading

    reader = open_reader("keyboard://", debounce_ms=0)
    s = stream(reader)
    s.next()

    def typist(base: int) -> None:
        for i in range(50):
            reader.feed(f"{base + i}\n")

    threads = [threading.Thread(target=typist, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cards = set()
    deadline = time.monotonic() + 5
    while len(cards) < 200 and time.monotonic() < deadline:
        ev = s.next()
        if isinstance(ev, CardPresent):
            cards.add(ev.card_id)
    assert cards == {f"code:{k * 1000 + i}" for k in range(4) for i in range(50)}


def test_only_readers_that_take_typed_ids_offer_feed_or_tap() -> None:
    assert callable(getattr(open_reader("keyboard://"), "feed", None))
    assert callable(getattr(open_reader("sim://"), "tap", None))
    assert getattr(open_reader("keyboard://"), "tap", None) is None
    with pytest.raises(AttributeError, match="keyboard://"):
        open_reader("sim://").feed("1")


def _cli(*args: str, timeout: float = 20, typed: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "terminal.cli", *args], capture_output=True, text=True, timeout=timeout,
                          input=typed)


def test_reader_test_reads_what_a_keyboard_scanner_types(tmp_path: Any) -> None:
    out = _cli("--config", str(tmp_path / "none.toml"), "reader", "test", "--json", "--url", "keyboard://", "--count", "2",
               "--timeout", "10", typed="ABC123\nuld:04a1b2c3\nuid:04a1b2c3\r\n")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["card"] for r in rows if r["event"] == "card"] == ["code:ABC123", "uid:04A1B2C3"]
    assert any(r["event"] == "error" and "did you mean 'uid:'" in r["reason"] for r in rows), rows


def test_reader_test_json_prints_one_object_per_line_and_stops_after_count(tmp_path: Any) -> None:
    out = _cli("--config", str(tmp_path / "none.toml"), "reader", "test", "--json", "--count", "2",
               "--url", "sim://?cards=uid:04A1B2C3,code:55&every=0.05&hold=0.02")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    taps = [r for r in rows if r["event"] == "card"]
    assert [r["card"] for r in taps] == ["uid:04A1B2C3", "code:55"]
    for r in rows:
        assert {"event", "card", "uid", "reader", "t_ms"} <= r.keys()
    assert taps[0]["uid"] == "04A1B2C3" and taps[0]["driver_ms"] is not None


def test_reader_test_unknown_scheme_is_one_error_line(tmp_path: Any) -> None:
    out = _cli("--config", str(tmp_path / "none.toml"), "reader", "test", "--url", "wiegand://0")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "sim://" in out.stderr


def test_reader_test_times_out_with_fewer_taps(tmp_path: Any) -> None:
    out = _cli("--config", str(tmp_path / "none.toml"), "reader", "test", "--url", "keyboard://",
               "--count", "1", "--timeout", "0.3")
    assert out.returncode == 1 and "0 of 1" in out.stderr


def test_reader_list_answers_even_without_pcscd_or_usb(tmp_path: Any) -> None:
    out = _cli("--config", str(tmp_path / "none.toml"), "reader", "list", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert isinstance(data["readers"], list) and isinstance(data["problems"], list)
