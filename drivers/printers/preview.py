"""`preview://[DIR]`: a printer without paper, for the cashier UI, the demo and tests.

It keeps the last receipt in memory, where the UI reads it with `last()`
(text and PNG are rendered when first looked at), and, given a directory,
also writes `last.txt` and `last.png` there (replaced atomically) so another
process can show it.
"""

from __future__ import annotations

import builtins
import os
import threading

from . import PrinterUrl
from .base import Payload, PrinterError, PrinterStatus


class Preview:
    """The last receipt; its text and PNG are rendered on first look, once."""

    def __init__(self, payload: Payload, count: int):
        self.title = payload.title
        self.count = count  # receipts previewed in this process
        self._payload = payload
        self._text: str | None = None
        self._png: bytes | None = None
        self._lock = threading.Lock()

    @property
    def text(self) -> str:
        with self._lock:
            if self._text is None:
                self._text = self._payload.text()
            return self._text

    @property
    def png(self) -> bytes:
        with self._lock:
            if self._png is None:
                self._png = self._payload.png()
            return self._png


_lock = threading.Lock()
_last: Preview | None = None
_count = 0


def last() -> Preview | None:
    """The most recent receipt any preview printer took in this process."""
    with _lock:
        return _last


class PreviewPrinter:
    def __init__(self, url: PrinterUrl, *, profile: str, paper_mm: int, timeout_s: float):
        url.check_known(("png",))
        self.url = url.raw
        self.profile = profile
        self.paper_mm = paper_mm
        self.folder = url.target or None
        self.with_png = url.flag("png", True)
        self.last: Preview | None = None

    def status(self) -> PrinterStatus:
        return PrinterStatus(online=True, cover_open=False, paper_out=False, paper_near_end=False, error=False, detail="preview")

    def print(self, payload: Payload) -> None:
        global _last, _count
        with _lock:
            _count += 1
            preview = Preview(payload, _count)
            self.last = _last = preview
        if self.folder:
            try:
                os.makedirs(self.folder, exist_ok=True)
                _replace(os.path.join(self.folder, "last.txt"), preview.text.encode("utf-8"))
                if self.with_png:
                    _replace(os.path.join(self.folder, "last.png"), preview.png)
            except OSError as exc:
                raise PrinterError(f"{self.url}: cannot write the preview: {exc.strerror}") from None

    def close(self) -> None:
        """Nothing to release."""


def _replace(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with builtins.open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def open(url: PrinterUrl, *, profile: str, paper_mm: int, timeout_s: float) -> PreviewPrinter:
    return PreviewPrinter(url, profile=profile, paper_mm=paper_mm, timeout_s=timeout_s)
