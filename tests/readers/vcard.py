"""A contactless card emulated over vpcd's socket: what a tag on an ACR122U looks like to pcscd.

vpcd (the pcscd driver from vsmartcard) listens on 127.0.0.1:35963 for reader
"Virtual PCD 00 00". Connecting is putting a card on the reader, closing is
taking it away. Messages both ways are a 2-byte big-endian length + payload;
a 1-byte payload from vpcd is a control code (0 off, 1 on, 2 reset, 4 send ATR),
anything longer an APDU, answered with data + SW1 SW2.

The card answers what a PC/SC contactless reader would: `FF CA 00 00 00` (UID),
an NFC Forum Type 4 NDEF application, or Type 2 memory through `FF B0`.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

VPCD_PORT = 35963
NDEF_AID = bytes.fromhex("D2760000850101")
CC_FILE = bytes.fromhex("E103")
NDEF_FILE = bytes.fromhex("E104")
OK = b"\x90\x00"


def atr_with(historical: bytes) -> bytes:
    """An ATR offering T=1 with these historical bytes, TCK included."""
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes([tck])


# PC/SC part 3 storage-card ATRs (RID A0 00 00 03 06, standard 03 = ISO 14443 A part 3).
ATR_ULTRALIGHT = atr_with(bytes.fromhex("804F0CA00000030603000300000000"))
ATR_ISO14443_4 = atr_with(bytes.fromhex("00000000000000"))


def text_record_message(text: str, lang: str = "en") -> bytes:
    payload = bytes([len(lang)]) + lang.encode() + text.encode()
    if len(payload) < 256:
        return bytes([0xD1, 0x01, len(payload)]) + b"T" + payload
    return bytes([0xC1, 0x01]) + len(payload).to_bytes(4, "big") + b"T" + payload


def type2_memory(message: bytes, uid: bytes) -> bytes:
    """NTAG213-like memory: UID pages, CC in page 3, the NDEF TLV from page 4."""
    tlv = b"\x03" + (bytes([len(message)]) if len(message) < 255 else b"\xff" + len(message).to_bytes(2, "big"))
    body = tlv + message + b"\xfe"
    size = max(0x12, min(0xFF, (len(body) + 7) // 8))  # CC byte 2: data area in 8-byte units
    header = uid[:3] + b"\x00" + uid[3:7] + b"\x00\x00\x00\x00" + bytes([0xE1, 0x10, size, 0x00])
    memory = header + body
    return memory + b"\x00" * (-len(memory) % 16 + 16)


@dataclass
class CardSpec:
    uid: bytes = bytes.fromhex("04A1B2C3D4E5F6")
    atr: bytes = ATR_ISO14443_4
    ndef: bytes | None = None  # NDEF message for a Type 4 tag
    type2: bytes | None = None  # whole memory for a Type 2 tag (ATR_ULTRALIGHT)
    mle: int = 0x3B  # most bytes one READ BINARY answers (announced in the CC file)
    silent_after: int | None = None  # answer this many APDUs, then never again
    vanish_after: int | None = None  # close the socket on this APDU (card pulled mid-read)
    apdus: list[bytes] = field(default_factory=list)


class VirtualCard:
    def __init__(self, spec: CardSpec, port: int = VPCD_PORT):
        self.spec = spec
        self.port = port
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.inserted_at = 0.0  # time.monotonic() of connect
        self.powered_at: float | None = None  # when pcscd first asked for the ATR
        self.selected: bytes = b""
        self.done = threading.Event()

    # ------------------------------------------------------------- physical

    def insert(self, timeout: float = 5.0) -> None:
        """Put the card on the reader (retrying while pcscd restarts)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inserted_at = time.monotonic()
        self.powered_at = None
        self.sock = sock
        self.done.clear()
        self.thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self.thread.start()

    def remove(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self.thread is not None:
            self.thread.join(5)

    # ------------------------------------------------------------- protocol

    def _serve(self, sock: socket.socket) -> None:
        answered = 0
        try:
            while True:
                head = _recv_exact(sock, 2)
                if head is None:
                    return
                (size,) = struct.unpack(">H", head)
                payload = _recv_exact(sock, size)
                if payload is None:
                    return
                if size == 1:
                    if payload[0] == 4:
                        if self.powered_at is None:
                            self.powered_at = time.monotonic()
                        self._send(sock, self.spec.atr)
                    continue
                self.spec.apdus.append(payload)
                if self.spec.vanish_after is not None and answered >= self.spec.vanish_after:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                    return
                if self.spec.silent_after is not None and answered >= self.spec.silent_after:
                    continue  # a silent card: vpcd waits for ever
                self._send(sock, self.answer(payload))
                answered += 1
        except OSError:
            return
        finally:
            self.done.set()

    def _send(self, sock: socket.socket, data: bytes) -> None:
        sock.sendall(struct.pack(">H", len(data)) + data)

    def answer(self, apdu: bytes) -> bytes:
        spec = self.spec
        cla, ins, p1, p2 = apdu[:4]
        if apdu[:5] == b"\xff\xca\x00\x00\x00":
            return spec.uid + OK
        if cla == 0xFF and ins == 0xB0 and spec.type2 is not None:
            page, n = p2, apdu[4] or 16
            chunk = spec.type2[page * 4 : page * 4 + n]
            return chunk + OK if len(chunk) == n else b"\x6a\x82"
        if ins == 0xA4 and spec.ndef is not None:
            lc = apdu[4]
            target = apdu[5 : 5 + lc]
            if p1 == 0x04 and target == NDEF_AID:
                self.selected = NDEF_AID
                return OK
            if p1 == 0x00 and self.selected and target in (CC_FILE, NDEF_FILE):
                self.selected = target
                return OK
            return b"\x6a\x82"
        if ins == 0xB0 and cla == 0x00 and spec.ndef is not None:
            offset = (p1 << 8) | p2
            le = apdu[4] if len(apdu) > 4 else 0
            if self.selected == CC_FILE:
                data = bytes.fromhex("000F20") + spec.mle.to_bytes(2, "big") + bytes.fromhex("00340406E10408000000")
            elif self.selected == NDEF_FILE:
                data = len(spec.ndef).to_bytes(2, "big") + spec.ndef + b"\x00" * 64
                if le > spec.mle:
                    return b"\x67\x00"  # wrong length: a reader must respect MLe
            else:
                return b"\x69\x86"
            return data[offset : offset + le] + OK
        return b"\x6d\x00"


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        _quickack(sock)
        if not part:
            return None
        buf += part
    return buf


def _quickack(sock: socket.socket) -> None:
    # Delayed ACKs would cost ~40 ms per APDU (measured); quick-ack is one-shot, so re-arm it.
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def main() -> None:
    """A card in its own process (the bench: no GIL shared with the reader).

    Inserts at once, prints "inserted <time.monotonic()>", removes when stdin closes.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=VPCD_PORT)
    parser.add_argument("--ndef", default="")
    args = parser.parse_args()
    card = VirtualCard(CardSpec(ndef=text_record_message(args.ndef) if args.ndef else None), args.port)
    card.insert()
    print(f"inserted {card.inserted_at!r}", flush=True)
    sys.stdin.read()
    card.remove()


if __name__ == "__main__":
    main()
