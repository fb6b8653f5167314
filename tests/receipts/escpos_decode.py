"""A small ESC/POS decoder: what a customer would read off the paper.

It knows the commands our receipts use and refuses anything else, so a
stray byte sequence fails the test instead of printing garbage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CODE_PAGES = {0: "cp437", 2: "cp850", 16: "cp1252", 19: "cp858"}


@dataclass
class Raster:
    width: int  # dots
    height: int
    data: bytes

    def black(self) -> int:
        return sum(bin(b).count("1") for b in self.data)

    def ink(self) -> float:
        """Share of the dots printed black: a text line is mostly paper."""
        return self.black() / max(1, self.width * self.height)


@dataclass
class Decoded:
    lines: list[str] = field(default_factory=list)
    qr: list[str] = field(default_factory=list)
    barcodes: list[str] = field(default_factory=list)
    rasters: list[Raster] = field(default_factory=list)
    cuts: int = 0
    inits: int = 0
    status_queries: list[int] = field(default_factory=list)
    bold_lines: list[str] = field(default_factory=list)
    code_pages: set[int] = field(default_factory=set)
    text_bytes: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class DecodeError(ValueError):
    pass


def decode(data: bytes) -> Decoded:
    out = Decoded()
    i, n = 0, len(data)
    line = bytearray()
    codec = "cp437"
    bold = False
    line_bold = False

    def need(k: int) -> None:
        if i + k > n:
            raise DecodeError(f"truncated command at {i}: {data[i:i + 8]!r}")

    def end_line() -> None:
        nonlocal line_bold
        text = line.decode(codec)
        out.lines.append(text)
        if line_bold and text.strip():
            out.bold_lines.append(text)
        line.clear()
        line_bold = bold

    while i < n:
        b = data[i]
        if b == 0x0A:
            end_line()
            i += 1
        elif b == 0x1B:  # ESC
            need(2)
            c = data[i + 1]
            if c == 0x40:
                out.inits += 1
                i += 2
            elif c in (0x21, 0x2D, 0x61, 0x4D, 0x7B, 0x64, 0x4A, 0x33):
                need(3)
                if c == 0x64:
                    for _ in range(data[i + 2]):
                        end_line()
                i += 3
            elif c == 0x45:  # bold
                need(3)
                bold = bool(data[i + 2])
                line_bold = line_bold or bold
                i += 3
            elif c == 0x74:  # code page
                need(3)
                if data[i + 2] not in CODE_PAGES:
                    raise DecodeError(f"code page {data[i + 2]} is not one the receipts use")
                codec = CODE_PAGES[data[i + 2]]
                out.code_pages.add(data[i + 2])
                i += 3
            elif c == 0x32:
                i += 2
            else:
                raise DecodeError(f"unknown ESC command {data[i:i + 4]!r} at {i}")
        elif b == 0x1D:  # GS
            need(2)
            c = data[i + 1]
            if c in (0x21, 0x42, 0x62, 0x68, 0x77, 0x48, 0x66):
                i += 3
            elif c == 0x56:  # cut
                need(3)
                out.cuts += 1
                i += 4 if data[i + 2] in (65, 66) else 3
            elif c == 0x76:  # GS v 0 m xL xH yL yH
                need(8)
                width_bytes = int.from_bytes(data[i + 4:i + 6], "little")
                height = int.from_bytes(data[i + 6:i + 8], "little")
                size = width_bytes * height
                need(8 + size)
                out.rasters.append(Raster(width_bytes * 8, height, data[i + 8:i + 8 + size]))
                i += 8 + size
            elif c == 0x28 and data[i + 2] == 0x6B:  # GS ( k pL pH cn fn ...
                need(5)
                length = int.from_bytes(data[i + 3:i + 5], "little")
                body = data[i + 5:i + 5 + length]
                if body[1] == 80:  # store the symbol's data (cn fn m data)
                    out.qr.append(body[3:].decode("utf-8"))
                i += 5 + length
            elif c == 0x6B:  # GS k m ...
                m = data[i + 2]
                if m <= 6:
                    end = data.index(0, i + 3)
                    out.barcodes.append(data[i + 3:end].decode("ascii"))
                    i = end + 1
                else:
                    length = data[i + 3]
                    out.barcodes.append(data[i + 4:i + 4 + length].decode("ascii"))
                    i += 4 + length
            else:
                raise DecodeError(f"unknown GS command {data[i:i + 4]!r} at {i}")
        elif b == 0x10:  # DLE EOT n
            need(3)
            if data[i + 1] != 0x04:
                raise DecodeError(f"unknown DLE command {data[i:i + 3]!r}")
            out.status_queries.append(data[i + 2])
            i += 3
        elif b < 0x20:
            raise DecodeError(f"unexpected control byte {b:#04x} at {i}")
        else:
            line.append(b)
            out.text_bytes += 1
            i += 1
    if line:
        end_line()
    return out

