"""A tag on nfcpy's udp "air": run as a process, it is the card the nfc:udp reader sees.

    python nfctag.py PORT --type 3|2 --text NUMBER [--uid HEX]

Prints "ready" once its UDP port is bound (a reader that sends earlier waits a
fixed 1 s inside nfcpy), then answers until killed: killing it is taking the
tag away. Type 3 uses nfcpy's own emulation; Type 2 (NTAG213-like) answers
READ, GET_VERSION and FAST_READ by hand.
"""

from __future__ import annotations

import argparse
import os
import signal
import struct
import sys

import nfc
import nfc.clf


def ndef_message(text: str) -> bytes:
    payload = b"\x02en" + text.encode()
    if len(payload) < 256:
        return bytes([0xD1, 0x01, len(payload)]) + b"T" + payload
    return bytes([0xC1, 0x01]) + len(payload).to_bytes(4, "big") + b"T" + payload


def ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def type3(clf: nfc.ContactlessFrontend, message: bytes, idm: bytes) -> None:
    blocks = (len(message) + 15) // 16
    attr = bytearray(16)
    attr[0], attr[1], attr[2] = 0x10, 4, 1  # version 1.0, read 4 / write 1 blocks at once
    attr[3:5] = struct.pack(">H", max(blocks, 1))
    attr[9], attr[10] = 0x00, 0x00  # not writing, read only
    attr[11:14] = len(message).to_bytes(3, "big")
    attr[14:16] = struct.pack(">H", sum(attr[:14]))
    data = bytes(attr) + message + b"\x00" * (blocks * 16 - len(message))

    def read(block: int, rb: int, re: int) -> bytes | None:
        start = block * 16
        return data[start : start + 16] if start + 16 <= len(data) else None

    def on_startup(target: nfc.clf.LocalTarget) -> nfc.clf.LocalTarget:
        target.brty = "212F"
        target.sensf_res = bytearray.fromhex("01") + idm + bytearray.fromhex("FFFFFFFFFFFFFFFF12FC")
        return target

    def on_connect(tag: object) -> bool:
        tag.add_service(0x0009, read, None)  # type: ignore[attr-defined]
        tag.add_service(0x000B, read, None)  # type: ignore[attr-defined]
        return True

    ready()
    while True:
        clf.connect(card={"on-startup": on_startup, "on-connect": on_connect})


def type2(clf: nfc.ContactlessFrontend, message: bytes, uid: bytes, vanish_after: int = 0) -> None:
    tlv = b"\x03" + bytes([len(message)]) + message + b"\xfe"
    memory = bytearray(uid[:3] + bytes([0x88 ^ uid[0] ^ uid[1] ^ uid[2]]) + uid[3:7])
    memory.append(uid[3] ^ uid[4] ^ uid[5] ^ uid[6])
    memory += b"\x48\x00\x00"  # internal, lock bytes
    memory += bytes.fromhex("E1101200")  # CC: NDEF 1.0, 144 bytes, read/write
    memory += tlv
    memory += b"\x00" * (45 * 4 - len(memory))  # NTAG213: 45 pages
    version = bytes.fromhex("0004040201000F03")

    target = nfc.clf.LocalTarget("106A")
    target.sens_res = bytearray.fromhex("4400")
    target.sdd_res = bytearray(uid)
    target.sel_res = bytearray.fromhex("00")

    reads: list[int] = []
    cascade1 = b"\x88" + uid[:3]
    cascade2 = uid[3:7]

    def bcc(part: bytes) -> bytes:
        return bytes([part[0] ^ part[1] ^ part[2] ^ part[3]])

    def answer(cmd: bytes) -> bytes | None:
        if not cmd:
            return None
        # nfcpy re-selects the tag after its AUTHENTICATE probe: answer the
        # anticollision frames here too, or the reader waits a second for a new listen.
        if cmd[0] in (0x26, 0x52) and len(cmd) == 1:
            return bytes(target.sens_res)
        if cmd[:2] == b"\x93\x20":
            return cascade1 + bcc(cascade1)
        if cmd[:2] == b"\x95\x20":
            return cascade2 + bcc(cascade2)
        if cmd[:2] == b"\x93\x70":
            return b"\x04"
        if cmd[:2] == b"\x95\x70":
            return b"\x00"
        if cmd[0] == 0x30 and len(cmd) >= 2:  # READ: 4 pages, wrapping
            reads.append(cmd[1])
            if vanish_after and len(reads) >= vanish_after:
                os._exit(0)  # taken away in the middle of the reader's NDEF read
            page = cmd[1]
            if page >= 45:
                return b"\x00"  # NAK
            return bytes(memory[(page * 4 + i) % len(memory)] for i in range(16))
        if cmd[0] == 0x3A and len(cmd) >= 3:  # FAST_READ start..end
            start, end = cmd[1], cmd[2]
            if start > end or end >= 45:
                return b"\x00"
            return bytes(memory[start * 4 : (end + 1) * 4])
        if cmd[0] == 0x60:
            return version
        return None  # anything else (AUTHENTICATE probes): stay silent, as a real NTAG

    ready()
    while True:
        activated = clf.listen(target, 1.0)
        if activated is None:
            continue
        cmd = activated.tt2_cmd
        while True:
            rsp = answer(bytes(cmd)) if cmd is not None else None
            try:
                cmd = clf.exchange(rsp, timeout=1.0)
            except nfc.clf.CommunicationError:
                break
            if cmd is None:
                break


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--type", choices=("2", "3"), default="3")
    parser.add_argument("--text", required=True)
    parser.add_argument("--uid", default="")
    parser.add_argument("--vanish-after", type=int, default=0, help="Type 2: leave at this READ command")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    clf = nfc.ContactlessFrontend(f"udp:127.0.0.1:{args.port}")
    message = ndef_message(args.text)
    if args.type == "3":
        type3(clf, message, bytes.fromhex(args.uid or "02FE010203040506"))
    else:
        type2(clf, message, bytes.fromhex(args.uid or "04A1B2C3D4E5F6"), args.vanish_after)


if __name__ == "__main__":
    main()
