"""Hypothesis: the NDEF parser, serial frame parsers and APDU handling never raise anything but their own errors."""

from __future__ import annotations

import contextlib

import ndef
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.readers.apdu import (
    CardProtocolError,
    command,
    read_type2_ndef,
    read_type4_ndef,
    read_uid,
)
from drivers.readers.common import present_from_ndef
from drivers.readers.frames import STX, BadLine, EmFrame, LineParser, Rdm6300Parser, em_frame
from drivers.readers.ndefparse import NdefError, decode_message, type2_needed, type2_tlv_message

from .vcard import CardSpec, VirtualCard, text_record_message, type2_memory

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ NDEF


@FUZZ
@given(st.binary(max_size=600))
def test_ndef_decoder_raises_only_ndef_error(data: bytes) -> None:
    try:
        records = decode_message(data)
    except NdefError:
        return
    for kind, value in records:
        assert kind in ("text", "uri", "other") and isinstance(value, str)


@pytest.mark.parametrize(("body", "encoding"), [("424242".encode("utf-16-be"), "no byte order mark: big-endian"),
                                              ("424242".encode("utf-16"), "a byte order mark"),
                                              (b"\xfe\xff" + "424242".encode("utf-16-be"), "a big-endian mark")])
def test_a_utf16_text_record_reads_as_the_nfc_forum_says(body: bytes, encoding: str) -> None:
    payload = bytes([0x80 | 2]) + b"en" + body
    data = b"".join(ndef.message_encoder([ndef.Record("urn:nfc:wkt:T", "", payload)]))
    assert decode_message(data) == (("text", "424242"),), encoding


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=80).map(lambda t: ndef.TextRecord(t)),
                          st.text("abcXYZ0129-._~%/", max_size=60).map(lambda t: ndef.UriRecord("https://x.example/c/" + t))),
                min_size=1, max_size=4))
def test_ndef_decoder_round_trip(records: list[ndef.Record]) -> None:
    data = b"".join(ndef.message_encoder(records))
    decoded = decode_message(data)
    assert len(decoded) == len(records)
    for (kind, value), rec in zip(decoded, records, strict=True):
        if isinstance(rec, ndef.TextRecord):
            assert (kind, value) == ("text", rec.text)
        else:
            assert kind == "uri"


@FUZZ
@given(st.binary(max_size=300))
def test_type2_tlv_parser_raises_only_ndef_error(memory: bytes) -> None:
    needed = type2_needed(memory)
    assert needed >= 0
    try:
        message = type2_tlv_message(memory)
    except NdefError:
        return
    assert message is None or len(message) <= len(memory)


@FUZZ
@given(st.lists(st.tuples(st.text(max_size=40), st.text(max_size=40)), max_size=4), st.binary(min_size=4, max_size=10))
def test_card_from_any_records_is_an_id_or_a_typed_error(records: list[tuple[str, str]], uid: bytes) -> None:
    ev = present_from_ndef(tuple(records), reader="r", technology="t", uid=uid)
    assert ev.card_id.split(":", 1)[0] in ("ndef", "uid", "code")


# ---------------------------------------------------------------- serial


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


frames = st.tuples(st.integers(0, 255), st.integers(0, 2**32 - 1))


@FUZZ
@given(st.lists(st.tuples(st.binary(max_size=30), frames), max_size=6), st.binary(max_size=30),
       st.lists(st.integers(0, 10_000), max_size=12))
def test_rdm6300_parser_finds_every_frame_through_garbage_and_splits(
    parts: list[tuple[bytes, tuple[int, int]]], tail: bytes, cuts: list[int]
) -> None:
    stream = b"".join(garbage + em_frame(v, n) for garbage, (v, n) in parts) + tail
    parser = Rdm6300Parser()
    found: list[EmFrame] = []
    for chunk in _chunks(stream, cuts):
        found += parser.feed(chunk)
    want = [EmFrame(v, n) for _, (v, n) in parts]
    it = iter(found)
    assert all(any(f == w for f in it) for w in want), (want, found)  # in order, none lost
    assert len(parser.buffer) < 14


@FUZZ
@given(st.binary(max_size=400))
def test_rdm6300_parser_never_raises_on_noise(data: bytes) -> None:
    parser = Rdm6300Parser()
    for frame in parser.feed(data):
        assert em_frame(frame.version, frame.number) in data


def test_rdm6300_bad_checksum_is_counted_not_reported() -> None:
    bad = bytearray(em_frame(1, 2))
    bad[11] = ord("F") if bad[11] != ord("F") else ord("E")
    parser = Rdm6300Parser()
    assert parser.feed(bytes(bad)) == [] and parser.bad_frames == 1
    assert parser.feed(bytes([STX]) + em_frame(3, 4)) == [EmFrame(3, 4)]


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(0, 10_000), max_size=8))
def test_line_parser_never_raises(data: bytes, cuts: list[int]) -> None:
    parser = LineParser(max_len=64)
    for chunk in _chunks(data, cuts):
        for line in parser.feed(chunk):
            if isinstance(line, BadLine):  # said, as a reader error: not a card
                assert line.reason
                continue
            assert line and "\n" not in line and "\r" not in line and len(line) <= 64 and line.isprintable()


# ------------------------------------------------------------------ APDU


@FUZZ
@given(st.data())
def test_apdu_handling_raises_only_card_protocol_error(data: st.DataObject) -> None:
    responses = st.one_of(
        st.binary(max_size=40),
        st.binary(max_size=20).map(lambda b: b + b"\x90\x00"),
        st.sampled_from([b"\x61\x05", b"\x6c\x02", b"\x6a\x82", b"\x90\x00", b"\x00\x0f\x20\x00\x3b\x00\x34\x04\x06\xe1\x04\x08\x00\x00\x00\x90\x00"]),
    )
    calls = 0

    def transmit(apdu: bytes) -> bytes:
        nonlocal calls
        calls += 1
        assert calls < 500, "no end to the exchanges"
        return data.draw(responses)

    for fn in (read_uid, read_type4_ndef, read_type2_ndef, lambda t: command(t, b"\x00\xa4\x04\x00\x00")):
        with contextlib.suppress(CardProtocolError):
            fn(transmit)


@FUZZ
@given(st.text(min_size=1, max_size=300), st.integers(0x0F, 0xFF))
def test_type4_read_returns_exactly_the_message(text: str, mle: int) -> None:
    message = text_record_message(text)
    card = VirtualCard(CardSpec(ndef=message, mle=mle))
    assert read_type4_ndef(card.answer) == message


@FUZZ
@given(st.text(min_size=1, max_size=200))
def test_type2_read_returns_exactly_the_message(text: str) -> None:
    message = text_record_message(text)
    card = VirtualCard(CardSpec(type2=type2_memory(message, bytes(7))))
    assert read_type2_ndef(card.answer) == message
