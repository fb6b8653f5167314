"""Byte-stream parsers for serial readers: RDM6300/EM4100 frames and text lines.

Both are fed whatever bytes arrived (any split, any garbage) and return what
completed. They never raise: garbled RDM6300 frames are skipped and counted
(radio noise is common), a text line with no usable number comes back as a
`BadLine` for the reader to report.
"""

from __future__ import annotations

from dataclasses import dataclass

STX, ETX = 0x02, 0x03
FRAME_LEN = 14  # STX + 10 hex (version + 32-bit id) + 2 hex XOR checksum + ETX
_HEX = frozenset(b"0123456789ABCDEFabcdef")


@dataclass(frozen=True, slots=True)
class EmFrame:
    version: int
    number: int

    @property
    def card_id(self) -> str:
        return f"em:{self.version:02X}{self.number:08X}"


def em_frame(version: int, number: int) -> bytes:
    """The 14 bytes an RDM6300 sends for a fob (used by tests, the bench and `reader test`)."""
    data = bytes([version]) + number.to_bytes(4, "big")
    check = 0
    for b in data:
        check ^= b
    return bytes([STX]) + (data.hex().upper() + f"{check:02X}").encode() + bytes([ETX])


class Rdm6300Parser:
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.bad_frames = 0  # a whole frame whose checksum did not match
        self.skipped = 0  # bytes dropped while looking for a frame

    def feed(self, data: bytes) -> list[EmFrame]:
        self.buffer += data
        out: list[EmFrame] = []
        while True:
            start = self.buffer.find(STX)
            if start < 0:
                self.skipped += len(self.buffer)
                self.buffer.clear()
                return out
            if start:
                self.skipped += start
                del self.buffer[:start]
            if len(self.buffer) < FRAME_LEN:
                # A frame can only be this long: a later STX inside a short tail
                # that is not hex means the head was garbage.
                body = self.buffer[1:]
                if all(b in _HEX for b in body):
                    return out
                self._drop_head()
                continue
            frame = self._decode(bytes(self.buffer[:FRAME_LEN]))
            if frame is None:
                self._drop_head()
                continue
            del self.buffer[:FRAME_LEN]
            out.append(frame)

    def _drop_head(self) -> None:
        # Resync on the next STX after this one: a garbled frame may hide a good one.
        self.skipped += 1
        del self.buffer[:1]

    def _decode(self, raw: bytes) -> EmFrame | None:
        if raw[0] != STX or raw[-1] != ETX or not all(b in _HEX for b in raw[1:-1]):
            return None
        data = bytes.fromhex(raw[1:11].decode())
        check = int(raw[11:13].decode(), 16)
        x = 0
        for b in data:
            x ^= b
        if x != check:
            self.bad_frames += 1
            return None
        return EmFrame(data[0], int.from_bytes(data[1:], "big"))


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that arrived but holds no usable number: said, never dropped in silence."""

    reason: str


class LineParser:
    """Readers that send the id then CR and/or LF. Over-long lines are garbage.

    A scanner set to frame its codes with STX ... ETX (a common setting) is read
    without the frame.
    """

    def __init__(self, max_len: int = 256) -> None:
        self.max_len = max_len
        self.buffer = bytearray()
        self.overflowed = False
        self.dropped_lines = 0

    def feed(self, data: bytes) -> list[str | BadLine]:
        out: list[str | BadLine] = []
        for byte in data:
            if byte in (0x0A, 0x0D):
                if self.overflowed:
                    self.dropped_lines += 1
                    out.append(BadLine(f"a line longer than {self.max_len} bytes"))
                elif self.buffer:
                    line = self._line(bytes(self.buffer))
                    if isinstance(line, BadLine):
                        self.dropped_lines += 1
                    if line:
                        out.append(line)
                self.buffer.clear()
                self.overflowed = False
            elif not self.overflowed:
                self.buffer.append(byte)
                if len(self.buffer) > self.max_len:
                    self.buffer.clear()
                    self.overflowed = True
        return out

    @staticmethod
    def _line(raw: bytes) -> str | BadLine:
        raw = raw.strip()
        if raw[:1] == bytes([STX]) and raw[-1:] == bytes([ETX]):
            raw = raw[1:-1].strip()
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            return BadLine(f"bytes that are not UTF-8 text (byte {exc.start})")
        hidden = next((c for c in text if not c.isprintable()), None)
        if hidden is not None:
            return BadLine(f"a line with a control or invisible character (U+{ord(hidden):04X})")
        return text
