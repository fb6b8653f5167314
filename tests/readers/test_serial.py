"""serial:// over real socat pty pairs: RDM6300 frames and text lines."""

from __future__ import annotations

import time
from typing import Any

from drivers.readers import CardError, CardPresent, CardRemoved, ReaderConnected, ReaderDisconnected, open_reader
from drivers.readers.frames import em_frame


def _open(pair: Any, stream: Any, query: str = "protocol=rdm6300", debounce_ms: int = 150) -> Any:
    s = stream(open_reader(f"serial://{pair.device}?{query}", debounce_ms=debounce_ms))
    assert isinstance(s.wait_for(ReaderConnected), ReaderConnected)
    return s


def test_good_frame_is_one_tap_while_the_fob_stays(pty_pair: Any, stream: Any) -> None:
    s = _open(pty_pair, stream)
    frame = em_frame(0x1A, 0x00C0FFEE)
    for _ in range(5):  # the reader repeats the frame while the fob is near
        pty_pair.write(frame)
        time.sleep(0.03)
    ev = s.next()
    assert isinstance(ev, CardPresent)
    assert (ev.card_id, ev.technology) == ("em:1A00C0FFEE", "em4100")
    assert ev.reader == f"serial:{pty_pair.device}"
    assert isinstance(s.next(), CardRemoved)  # silence past the debounce time
    pty_pair.write(frame)
    assert s.next().card_id == "em:1A00C0FFEE"  # taken away and back: a new tap


def test_bad_checksum_garbage_and_split_frames(pty_pair: Any, stream: Any) -> None:
    s = _open(pty_pair, stream)
    bad = bytearray(em_frame(0x01, 0x11111111))
    bad[12] ^= 0x01  # flip the checksum's low digit
    pty_pair.write(bytes(bad))
    pty_pair.write(b"\x00\xff\x02garbage\x03\x02\x02")
    good = em_frame(0x02, 0x22222222)
    pty_pair.write(good[:5])
    time.sleep(0.05)
    pty_pair.write(good[5:9])
    time.sleep(0.05)
    pty_pair.write(good[9:])
    ev = s.wait_for(CardPresent)
    assert ev.card_id == "em:0222222222"
    assert [e for e in s.seen if isinstance(e, CardPresent)] == [ev]  # nothing from the bad ones


def test_fob_pulled_mid_frame_gives_nothing(pty_pair: Any, stream: Any) -> None:
    s = _open(pty_pair, stream)
    pty_pair.write(em_frame(0x03, 0x33333333)[:9])
    assert s.quiet(0.4) == []


def test_line_protocol(pty_pair: Any, stream: Any) -> None:
    s = _open(pty_pair, stream, "protocol=line&baudrate=115200")
    pty_pair.write(b"0004567890\r\n")
    ev = s.wait_for(CardPresent)
    assert (ev.card_id, ev.technology) == ("code:0004567890", "serial")
    pty_pair.write(b"\xff\xfe\x01\r\n" + b"7" * 400 + b"\n" + b"uid:04A1B2C3\n")
    assert s.wait_for(CardPresent).card_id == "uid:04A1B2C3"


def test_line_protocol_says_what_it_cannot_use_and_reads_framed_codes(pty_pair: Any, stream: Any) -> None:
    s = _open(pty_pair, stream, "protocol=line")
    pty_pair.write(b"\x02LOY-0042\x03\r\n")  # a scanner set to frame its codes with STX ... ETX
    assert s.wait_for(CardPresent).card_id == "code:LOY-0042"
    for line, words in ((b"LOY\xe2\x80\x8b0042", "U+200B"), (b"\xff\xfe", "not UTF-8"), (b"7" * 300, "longer than"),
                        (b"uld:04A1B2C3", "did you mean 'uid:'")):
        pty_pair.write(line + b"\r\n")
        error = s.wait_for(CardError)
        assert words in error.reason, error.reason
        s.seen.clear()
    assert [e for e in s.quiet(0.3) if isinstance(e, CardPresent)] == []  # none of them became a card


def test_line_protocol_with_em_kind(pty_pair: Any, stream: Any) -> None:
    s = _open(pty_pair, stream, "protocol=line&kind=em")
    pty_pair.write(b"0a1b2c3d4e\n")
    assert s.wait_for(CardPresent).card_id == "em:0A1B2C3D4E"


def test_port_vanishes_and_returns(pty_pair: Any, stream: Any) -> None:
    s = _open(pty_pair, stream)
    pty_pair.write(em_frame(0x04, 0x44444444))
    assert s.wait_for(CardPresent).card_id == "em:0444444444"
    pty_pair.stop()  # the USB adapter is pulled: socat and both ptys are gone
    down = s.wait_for(ReaderDisconnected)
    assert str(pty_pair.device) in down.reason
    assert any(isinstance(e, CardRemoved) for e in s.seen)
    time.sleep(0.3)  # stays down a while: the driver keeps retrying
    pty_pair.start()  # plugged back in (a new pty behind the same path)
    s.wait_for(ReaderConnected, timeout=3)
    pty_pair.write(em_frame(0x05, 0x55555555))
    assert s.wait_for(CardPresent).card_id == "em:0555555555"


def test_missing_device_reports_down_then_comes_up(idle_pty_pair: Any, stream: Any) -> None:
    pair = idle_pty_pair
    s = stream(open_reader(f"serial://{pair.device}"))
    assert isinstance(s.next(), ReaderDisconnected)
    pair.start()
    s.wait_for(ReaderConnected)
    pair.write(em_frame(0x06, 0x66666666))
    assert s.wait_for(CardPresent).card_id == "em:0666666666"
