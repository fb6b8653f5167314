"""nfc:udp against nfcpy's udp driver, with tags emulated by nfcpy in another process."""

from __future__ import annotations

import time
from typing import Any

import pytest

from drivers import identity
from drivers.readers import CardPresent, CardRemoved, ReaderConnected, ReaderError, open_reader

# How long a test waits for a tap. Discovery takes milliseconds, but nfcpy's udp driver waits a
# hard-coded 1 s for a frame that crossed the emulator's start or a re-activation (a Type 2 tag is
# probed with AUTHENTICATE and activated again): a Type 2 tap usually arrives after one such wait,
# and on a loaded machine one took more than 3 s. The tap's latency is bench/tap.py's to measure.
TAP_S = 8.0


def _watch(stream: Any, tag: Any, targets: str = "212F", **kw: Any) -> Any:
    s = stream(open_reader(f"nfc:udp:127.0.0.1:{tag.port}?targets={targets}", **kw))
    assert isinstance(s.next(), ReaderConnected)
    return s


def test_type3_tag_ndef_number_and_removal(nfc_tag: Any, stream: Any) -> None:
    nfc_tag.put("3300112233")
    time.sleep(0.03)  # the emulator binds right after "ready"
    s = _watch(stream, nfc_tag)
    ev = s.wait_for(CardPresent, TAP_S)
    assert ev.card_id == "ndef:3300112233" and ev.ndef == ("3300112233",)
    assert ev.uid == bytes.fromhex("02FE010203040506") and ev.technology == "nfc/Type3Tag"
    assert s.quiet(0.3) == []  # left on the reader: one tap
    nfc_tag.take()
    assert isinstance(s.next(2), CardRemoved)


def test_type2_tag_ndef_number_and_tap_again(nfc_tag: Any, stream: Any) -> None:
    nfc_tag.put("2200445566", kind="2")
    time.sleep(0.03)
    s = _watch(stream, nfc_tag, targets="106A")
    ev = s.wait_for(CardPresent, TAP_S)
    assert (ev.card_id, ev.uid, ev.technology) == ("ndef:2200445566", bytes.fromhex("04A1B2C3D4E5F6"), "nfc/Type2Tag")
    nfc_tag.take()
    s.wait_for(CardRemoved, 2)
    nfc_tag.put("2200445566", kind="2")
    assert s.wait_for(CardPresent, TAP_S).card_id == "ndef:2200445566"


def test_tag_pulled_mid_read_gives_no_event(nfc_tag: Any, stream: Any) -> None:
    # A long number spans several READs; the tag leaves at the second one.
    nfc_tag.put("9" * 100, kind="2", vanish_after=2)
    time.sleep(0.03)
    s = _watch(stream, nfc_tag, targets="106A")
    deadline = time.monotonic() + 10  # several activations, each up to nfcpy udp's 1 s wait on a busy machine
    while nfc_tag.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert nfc_tag.proc.poll() is not None, "the reader never read far enough for the tag to leave"
    assert s.quiet(0.5) == []  # neither a tap with the UID nor a half-read number
    nfc_tag.take()
    nfc_tag.put("123", kind="2")
    assert s.wait_for(CardPresent, TAP_S).card_id == "ndef:123"


def test_signed_number_on_a_tag(nfc_tag: Any, stream: Any) -> None:
    key = identity.load_private("44" * 32)
    nfc_tag.put(identity.sign("777", key).replace("777", "778", 1))  # forged
    time.sleep(0.03)
    s = _watch(stream, nfc_tag, require_signed="require", public_keys=[identity.public_text(key.public_key())])
    ev = s.wait_for(CardPresent, TAP_S)
    assert (ev.card_id, ev.signature, ev.refused) == ("ndef:778", "invalid", True)


def test_bad_nfc_urls() -> None:
    for url in ("nfc:bluetooth", "nfc:udp:127.0.0.1", "nfc:udp:h:1?targets=999X", "nfc:usb?beep=1"):
        with pytest.raises(ReaderError):
            open_reader(url)


def test_ctrl_c_stops_reader_test_on_an_nfc_reader(nfc_tag: Any, tmp_path: Any) -> None:
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "terminal.cli", "--config", str(tmp_path / "none.toml"), "reader", "test",
                             "--url", f"nfc:udp:127.0.0.1:{nfc_tag.port}?targets=212F"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "connected" in line:
                break
        time.sleep(0.5)  # inside nfcpy's poll, which takes the KeyboardInterrupt for a reader fault
        os.kill(proc.pid, signal.SIGINT)
        out, _err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "disconnected" not in out and "stopped answering" not in out, out
