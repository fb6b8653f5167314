"""NDEF from untrusted tags: messages (ndeflib) and Type 2 tag memory (TLVs).

Only text, URI and smart poster records are decoded; anything else is kept as
its type name. Every failure is an `NdefError`, whatever the tag holds.
"""

from __future__ import annotations

import struct
from typing import Any

MAX_MESSAGE = 8192  # larger than any tag a loyalty card would use


class NdefError(Exception):
    """The tag's NDEF data cannot be decoded."""


Record = tuple[str, str]  # ("text" | "uri" | "other", value)


def _known_types() -> dict[str, Any]:
    import ndef

    # text records are decoded here (`_text`), not by ndeflib: it reads UTF-16 without a byte order mark as
    # little-endian, where the NFC Forum's Text RTD (as RFC 2781) means big-endian
    return {"urn:nfc:wkt:U": ndef.UriRecord, "urn:nfc:wkt:Sp": ndef.SmartposterRecord}


def warm() -> None:
    """Import ndeflib now, so the first tap does not pay for it (~10 ms)."""
    _known_types()


def decode_message(data: bytes) -> tuple[Record, ...]:
    """The records of an NDEF message; an empty message has none."""
    import ndef

    if not data:
        return ()
    if len(data) > MAX_MESSAGE:
        raise NdefError(f"NDEF message of {len(data)} bytes is too long")
    try:
        records = list(ndef.message_decoder(data, errors="relax", known_types=_known_types()))
    except (ndef.DecodeError, ValueError, LookupError, TypeError, struct.error, UnicodeError) as exc:
        raise NdefError(f"bad NDEF message: {exc}") from None
    out: list[Record] = []
    for rec in records:
        out.extend(_flatten(rec))
    return tuple(out)


def _flatten(rec: Any) -> list[Record]:
    import ndef

    if isinstance(rec, ndef.TextRecord):
        return [("text", str(rec.text))]
    if getattr(rec, "type", None) == "urn:nfc:wkt:T":
        return [("text", _text(bytes(rec.data)))]
    if isinstance(rec, ndef.UriRecord):
        return [("uri", str(rec.iri))]
    if isinstance(rec, ndef.SmartposterRecord):
        found: list[Record] = []
        if rec.resource is not None:
            found.append(("uri", str(rec.resource.iri)))
        return found
    return [("other", str(rec.type))]


def _text(payload: bytes) -> str:
    """A Text record's payload: status byte (bit 7 UTF-16, bits 0-5 the language code's length), language, text."""
    if not payload:
        raise NdefError("empty text record")
    status = payload[0]
    body = payload[1 + (status & 0x3F):]
    encoding = "utf-8"
    if status & 0x80:
        encoding = "utf-16" if body[:2] in (b"\xfe\xff", b"\xff\xfe") else "utf-16-be"
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise NdefError(f"text record is not {encoding.upper()}: {exc.reason}") from None


def type2_tlv_message(memory: bytes, *, whole: bool = False) -> bytes | None:
    """The NDEF message in Type 2 tag memory from page 4 (TLV area), or None if the tag has none.

    Raises NdefError when the TLVs run past the memory read: a caller that read
    too little reads more and tries again (see `type2_needed`). With `whole`, the
    memory is the tag's entire data area: TLVs that end with it (a blank tag is
    all NULL TLVs) and hold no NDEF message mean the tag has none.
    """
    i = 0
    while i < len(memory):
        tag = memory[i]
        if tag == 0x00:  # NULL TLV
            i += 1
            continue
        if tag == 0xFE:  # terminator
            return None
        if i + 1 >= len(memory):
            raise NdefError("TLV header cut short")
        length = memory[i + 1]
        head = 2
        if length == 0xFF:
            if i + 3 >= len(memory):
                raise NdefError("TLV length cut short")
            length = int.from_bytes(memory[i + 2 : i + 4], "big")
            head = 4
        end = i + head + length
        if end > len(memory):
            raise NdefError(f"TLV of {length} bytes runs past the {len(memory)} bytes read")
        if tag == 0x03:
            return bytes(memory[i + head : end])
        i = end
    if whole:
        return None
    raise NdefError("no terminator TLV in the bytes read")


def type2_needed(memory: bytes) -> int:
    """How many bytes from page 4 hold the NDEF TLV, as far as the first bytes tell (>= len when unknown)."""
    i = 0
    while i + 1 < len(memory):
        tag = memory[i]
        if tag == 0x00:
            i += 1
            continue
        if tag == 0xFE:
            return i + 1
        length = memory[i + 1]
        head = 2
        if length == 0xFF:
            if i + 3 >= len(memory):
                return len(memory) + 2
            length = int.from_bytes(memory[i + 2 : i + 4], "big")
            head = 4
        if tag == 0x03:
            return i + head + length
        i += head + length
    return len(memory) + 1
