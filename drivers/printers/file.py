"""`file://PATH`: ESC/POS bytes appended to a file or a character device (/dev/usb/lp0).

Writes go through a non-blocking descriptor and `select`, so a printer
device that stops taking bytes fails the job after the timeout instead of
hanging the till.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import time

from . import PrinterUrl
from .base import Payload, PrinterError, PrinterStatus


class FilePrinter:
    def __init__(self, url: PrinterUrl, *, profile: str, paper_mm: int, timeout_s: float):
        url.check_known(("timeout",))
        if not url.target:
            raise PrinterError(f"printer URL {url.raw!r} needs a path, such as file:///dev/usb/lp0")
        self.url = url.raw
        self.path = url.target if url.target.startswith("/") else os.path.abspath(url.target)
        self.profile = profile
        self.paper_mm = paper_mm
        self.timeout_s = url.number("timeout", timeout_s)

    def status(self) -> PrinterStatus:
        # A file or lp device answers nothing: we only know whether it can be opened.
        folder = os.path.dirname(self.path) or "."
        ok = os.access(self.path if os.path.exists(self.path) else folder, os.W_OK)
        return PrinterStatus(online=ok, detail="writable" if ok else "cannot write")

    def print(self, payload: Payload) -> None:
        data = payload.escpos()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            raise PrinterError(f"{self.url}: cannot open: {exc.strerror}") from None
        try:
            view = memoryview(data)
            deadline = time.monotonic() + self.timeout_s
            while view:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PrinterError(f"{self.url}: write timed out after {self.timeout_s:g} s")
                _, ready, _ = select.select([], [fd], [], left)
                if not ready:
                    continue
                try:
                    n = os.write(fd, view)
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                        continue
                    raise PrinterError(f"{self.url}: write failed: {exc.strerror}") from None
                view = view[n:]
            with contextlib.suppress(OSError):  # character devices do not sync
                os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Nothing stays open between jobs."""


def open(url: PrinterUrl, *, profile: str, paper_mm: int, timeout_s: float) -> FilePrinter:
    return FilePrinter(url, profile=profile, paper_mm=paper_mm, timeout_s=timeout_s)
