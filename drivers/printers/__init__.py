"""Receipt printers, chosen by URL like the card readers.

| URL | printer |
| --- | --- |
| `escpos+tcp://HOST[:PORT]` | network printer (raw TCP, port 9100) |
| `escpos+serial:///dev/ttyS0?baudrate=19200` | serial printer |
| `escpos+usb://VID:PID` | USB printer (pyusb + libusb) |
| `file:///dev/usb/lp0` or `file:///path/out.bin` | ESC/POS bytes appended to a device or file |
| `preview://` or `preview:///dir` | no paper: keeps the last receipt as text and PNG (and writes them to dir) |

Driver modules are imported only for the scheme in use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from .. import device_url
from .base import Payload, PrinterError, PrinterStatus, RawPayload, ReceiptPrinter, parse_status

__all__ = [
    "EXAMPLES",
    "SCHEMES",
    "Payload",
    "PrinterError",
    "PrinterStatus",
    "PrinterUrl",
    "RawPayload",
    "ReceiptPrinter",
    "open_printer",
    "parse_status",
    "parse_url",
]

# scheme -> module with `open(url: PrinterUrl, *, profile, paper_mm, timeout_s) -> ReceiptPrinter`
SCHEMES: dict[str, str] = {
    "escpos+tcp": "drivers.printers.escpos_link",
    "escpos+serial": "drivers.printers.escpos_link",
    "escpos+usb": "drivers.printers.escpos_link",
    "file": "drivers.printers.file",
    "preview": "drivers.printers.preview",
}

EXAMPLES: dict[str, str] = {
    "escpos+tcp": "escpos+tcp://10.0.0.5:9100",
    "escpos+serial": "escpos+serial:///dev/ttyS0?baudrate=19200",
    "escpos+usb": "escpos+usb://04b8:0e15",
    "file": "file:///dev/usb/lp0",
    "preview": "preview://",
}


@dataclass(frozen=True, slots=True)
class PrinterUrl:
    raw: str
    scheme: str
    target: str  # after "scheme://", before "?"
    options: dict[str, str] = field(default_factory=dict)

    def number(self, name: str, default: float) -> float:
        value = self.options.get(name)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise PrinterError(f"printer URL option {name}={value!r} must be a number") from None

    def flag(self, name: str, default: bool) -> bool:
        value = self.options.get(name)
        if value is None:
            return default
        return value.lower() not in ("0", "no", "off", "false")

    def check_known(self, known: tuple[str, ...]) -> None:
        for name in self.options:
            if name not in known:
                raise PrinterError(f"unknown option {name!r} in printer URL {self.raw!r}; known: {', '.join(known) or 'none'}")


def parse_url(url: str) -> PrinterUrl:
    try:
        parts = device_url.split(url)
    except ValueError as exc:
        raise PrinterError(f"printer URL: {exc}") from None
    if parts is None:
        raise PrinterError(f"printer URL {url!r} has no scheme; known: {_known()}")
    return PrinterUrl(url.strip(), *parts)


def _known() -> str:
    return ", ".join(EXAMPLES[s] for s in SCHEMES)


def open_printer(url: str, *, profile: str = "default", paper_mm: int = 80, timeout_s: float = 5.0) -> ReceiptPrinter:
    """The printer for `url`; nothing is connected until the first job or status query."""
    parsed = parse_url(url)
    module_name = SCHEMES.get(parsed.scheme)
    if module_name is None:
        raise PrinterError(f"unknown printer URL scheme {parsed.scheme!r} in {url!r}; known: {_known()}")
    module = importlib.import_module(module_name)
    printer: ReceiptPrinter = module.open(parsed, profile=profile, paper_mm=paper_mm, timeout_s=timeout_s)
    return printer
