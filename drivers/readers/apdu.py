"""The APDUs a contactless PC/SC reader and NFC Forum tags answer, over any `transmit`.

`transmit(apdu) -> response bytes (data + SW1 SW2)` is supplied by the driver
(with its deadline). Every failure here is a `CardProtocolError`, whatever the
card answers: the fuzz tests feed these functions random responses.
"""

from __future__ import annotations

from collections.abc import Callable

from .ndefparse import MAX_MESSAGE, NdefError, type2_needed, type2_tlv_message

Transmit = Callable[[bytes], bytes]

GET_UID = bytes.fromhex("FFCA000000")
NDEF_AID = bytes.fromhex("D2760000850101")
CC_FILE_ID = bytes.fromhex("E103")
SW_OK = 0x9000
SW_NOT_FOUND = (0x6A82, 0x6A81, 0x6D00, 0x6E00, 0x6A86, 0x6986, 0x6700)
PCSC_RID = bytes.fromhex("A000000306")


class CardProtocolError(Exception):
    """A card answer that makes no sense (or a status word meaning failure)."""

    def __init__(self, message: str, sw: int | None = None):
        super().__init__(message)
        self.sw = sw


def split_response(resp: bytes) -> tuple[bytes, int]:
    if len(resp) < 2:
        raise CardProtocolError(f"response of {len(resp)} bytes has no status word")
    return bytes(resp[:-2]), (resp[-2] << 8) | resp[-1]


def command(transmit: Transmit, apdu: bytes, *, max_chain: int = 16) -> tuple[bytes, int]:
    """Send `apdu`, following 61xx (GET RESPONSE) and 6Cxx (wrong Le) as ISO 7816-4 says."""
    data, sw = split_response(transmit(apdu))
    if sw >> 8 == 0x6C and len(apdu) >= 5:
        data, sw = split_response(transmit(apdu[:4] + bytes([sw & 0xFF])))
    out = bytearray(data)
    rounds = 0
    while sw >> 8 == 0x61:
        rounds += 1
        if rounds > max_chain:
            raise CardProtocolError("card keeps asking for GET RESPONSE")
        more, sw = split_response(transmit(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF])))
        out += more
    return bytes(out), sw


def expect_ok(transmit: Transmit, apdu: bytes, what: str) -> bytes:
    data, sw = command(transmit, apdu)
    if sw != SW_OK:
        raise CardProtocolError(f"{what}: card answered {sw:04X}", sw)
    return data


def read_uid(transmit: Transmit) -> bytes:
    uid = expect_ok(transmit, GET_UID, "get UID")
    if not 4 <= len(uid) <= 10:
        raise CardProtocolError(f"get UID: {len(uid)}-byte UID")
    return uid


def is_type2_atr(atr: bytes) -> bool:
    """PC/SC part 3 storage-card ATR for an ISO 14443 A part 3 card named Ultralight/NTAG (0x0003)."""
    at = atr.find(PCSC_RID)
    if at < 0 or len(atr) < at + 8:
        return False
    standard, name = atr[at + 5], atr[at + 6 : at + 8]
    return standard == 0x03 and name == b"\x00\x03"


def is_storage_atr(atr: bytes) -> bool:
    return PCSC_RID in atr


def read_type4_ndef(transmit: Transmit) -> bytes | None:
    """The NDEF message of a Type 4 tag, or None if the card has no NDEF application."""
    _data, sw = command(transmit, bytes([0x00, 0xA4, 0x04, 0x00, len(NDEF_AID)]) + NDEF_AID + b"\x00")
    if sw in SW_NOT_FOUND:
        return None
    if sw != SW_OK:
        raise CardProtocolError(f"select NDEF application: card answered {sw:04X}", sw)
    expect_ok(transmit, bytes([0x00, 0xA4, 0x00, 0x0C, 0x02]) + CC_FILE_ID, "select CC file")
    cc = expect_ok(transmit, bytes([0x00, 0xB0, 0x00, 0x00, 0x0F]), "read CC file")
    if len(cc) < 15:
        raise CardProtocolError(f"CC file of {len(cc)} bytes")
    mle = int.from_bytes(cc[3:5], "big")
    if mle < 0x0F:
        raise CardProtocolError(f"CC file: MLe of {mle} (the Type 4 minimum is 15)")
    mle = min(mle, 0xFF)
    if cc[7] != 0x04 or cc[8] < 6:
        raise CardProtocolError("CC file has no NDEF file control TLV")
    file_id = cc[9:11]
    max_size = int.from_bytes(cc[11:13], "big")
    if cc[13] != 0x00:
        raise CardProtocolError(f"NDEF file is not readable (access {cc[13]:02X})")
    expect_ok(transmit, bytes([0x00, 0xA4, 0x00, 0x0C, 0x02]) + file_id, "select NDEF file")
    head = expect_ok(transmit, bytes([0x00, 0xB0, 0x00, 0x00, 0x02]), "read NDEF length")
    if len(head) != 2:
        raise CardProtocolError(f"NDEF length of {len(head)} bytes")
    nlen = int.from_bytes(head, "big")
    if nlen == 0:
        return b""
    if nlen > min(MAX_MESSAGE, max(max_size - 2, 0)):
        raise CardProtocolError(f"NDEF length {nlen} exceeds the file ({max_size}) or the limit")
    out = bytearray()
    offset = 2
    while len(out) < nlen:
        want = min(mle, nlen - len(out))
        if offset > 0x7FFF:
            raise CardProtocolError("NDEF file offset out of range")
        chunk = expect_ok(transmit, bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, want]), "read NDEF")
        if not chunk:
            raise CardProtocolError("read NDEF: card sent no data")
        chunk = chunk[:want]
        out += chunk
        offset += len(chunk)
    return bytes(out)


def read_type2_ndef(transmit: Transmit, max_bytes: int = 1024) -> bytes | None:
    """The NDEF message of a Type 2 tag through the reader's READ BINARY (`FF B0`, 16 bytes = 4 pages)."""
    head = expect_ok(transmit, bytes([0xFF, 0xB0, 0x00, 0x03, 0x10]), "read CC page")
    if len(head) < 4:
        raise CardProtocolError(f"CC read of {len(head)} bytes")
    if head[0] != 0xE1:
        return None  # not NDEF formatted
    size = min(head[2] * 8, max_bytes)
    memory = bytearray(head[4:16])
    page = 7
    while True:
        try:
            needed = type2_needed(bytes(memory))
            if needed <= len(memory):
                return type2_tlv_message(bytes(memory))
        except NdefError as exc:
            raise CardProtocolError(str(exc)) from None
        if len(memory) >= size:
            try:  # the whole data area read: a blank tag (NULL TLVs to the end) has no NDEF, and is known by its UID
                return type2_tlv_message(bytes(memory[:size]), whole=True)
            except NdefError:
                raise CardProtocolError(f"NDEF TLV runs past the tag's {size}-byte data area") from None
        if page > 0xFF:
            raise CardProtocolError("Type 2 page out of range")
        chunk = expect_ok(transmit, bytes([0xFF, 0xB0, 0x00, page, 0x10]), f"read page {page}")
        if len(chunk) != 16:
            raise CardProtocolError(f"read page {page}: {len(chunk)} bytes")
        memory += chunk
        page += 4
