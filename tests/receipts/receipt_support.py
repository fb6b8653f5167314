"""What the receipts tests share: a store of our own with real sales, frozen ledger
answers, a TCP printer on 127.0.0.1, a socat pseudo-terminal pair, an in-process CLI.

A module of its own (not conftest.py): test directories each have a conftest,
and a name imported from "conftest" could come from another one."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ledger_store import CliResult, run_cli  # noqa: F401  (re-exported for the receipts tests)

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

ROOT = HERE.parents[1]



from ledger import clock  # noqa: E402
from ledger.config import Config, load  # noqa: E402
from ledger.service import CheckoutRequest, Loyalty  # noqa: E402
from receipts import templates  # noqa: E402
from receipts.i18n import Lang  # noqa: E402
from receipts.model import Document  # noqa: E402

CARD = "uid:04A1B2C3D4E5F6"


@dataclass
class Store:
    path: Path
    cfg: Config
    service: Loyalty

    def sale(self, items: list[str], *, redeem: list[str] | None = None, at: str = "2026-11-20T09:30",
             sale_id: str | None = None, card: str = CARD) -> dict[str, Any]:
        req = CheckoutRequest.from_cli(card, items, redeem or [], sale_id)
        return self.service.checkout(req, clock.parse_now(at, self.cfg.store.tz))

    def refund(self, sale_id: str, at: str = "2026-11-20T12:00") -> dict[str, Any]:
        return self.service.refund(sale_id, clock.parse_now(at, self.cfg.store.tz))

    def jobs(self) -> list[dict[str, Any]]:
        rows = self.service.conn.execute("SELECT * FROM print_jobs ORDER BY id").fetchall()
        return [dict(r) for r in rows]


def write_config(folder: Path, *, locale: str = "en", printer: str = "preview://", paper: int = 80,
                 timeout_s: float | None = None) -> Path:
    text = (HERE / "store.toml").read_text(encoding="utf-8")
    text = re.sub(r'^locale = "en"', f'locale = "{locale}"', text, count=1, flags=re.M)
    text = text.replace('url = "preview://"', f'url = "{printer}"', 1)
    text = text.replace("paper_width_mm = 80", f"paper_width_mm = {paper}", 1)
    if timeout_s is not None:
        text = text.replace("paper_width_mm =", f"timeout_s = {timeout_s}\npaper_width_mm =", 1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "store.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Documents:
    """Real ledger answers for every template, made by real sales."""

    sale: dict[str, Any]
    refund: dict[str, Any]
    z: dict[str, Any]
    voucher: dict[str, Any]
    enrolment: dict[str, Any]


def make_documents(store: Store) -> Documents:
    store.sale(["LAT*11", "CRO"], at="2026-11-19T09:30", sale_id="sale-1")
    sale = store.sale(["LAT*2", "BEANS", "DAT"], redeem=["points", "coffee"], at="2026-11-20T09:30", sale_id="sale-2")
    other = store.sale(["ESP"], at="2026-11-20T10:00", sale_id="sale-3", card="code:5551234")
    refund = store.refund(other["sale"])
    from sync.endofday import close_day, z_report

    close_day(store.service.conn, date(2026, 11, 20), clock.parse_now("2026-11-20T18:00", store.cfg.store.tz))  # the Z of a closed day
    z = z_report(store.service.conn, store.cfg, date(2026, 11, 20))
    voucher = {"program": "coffee", "card": CARD, "code": "COFFEE-12-AB12CD", "valid_until": "2026-12-31"}
    enrolment = store.service.card(CARD, clock.parse_now("2026-11-20T10:00", store.cfg.store.tz)) | {"welcome_points": 50}
    return Documents(sale, refund, z, voucher, enrolment)


# ----------------------------------------------------------------- a TCP printer


@dataclass
class Listener:
    """A raw-TCP receipt printer on 127.0.0.1: keeps what each connection sent and answers DLE EOT.

    `status` holds the answers to DLE EOT 1, 2 and 4 (0x12 = all well); None answers nothing.
    `reading` False: accept but never read (a printer whose buffer is full); `read_limit`: read that many bytes of
    each connection, then no more.
    """

    port: int = 0
    status: dict[int, int] | None = field(default_factory=lambda: {1: 0x12, 2: 0x12, 4: 0x12})
    reading: bool = True
    read_limit: int | None = None  # stop reading after this many bytes of a connection (a printer that hangs mid-job)
    received: list[bytes] = field(default_factory=list)
    sock: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Listener:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    @property
    def url(self) -> str:
        return f"escpos+tcp://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        assert self.sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray()
        index = len(self.received)
        self.received.append(b"")
        answered = tail = 0
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                if not self.reading or (self.read_limit is not None and len(buf) >= self.read_limit):
                    time.sleep(0.05)
                    continue
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                self.received[index] = bytes(buf)
                # Status queries come first, one at a time, each waiting for its answer.
                while answered + 3 <= len(buf) and answered < 9 and buf[answered:answered + 2] == b"\x10\x04":
                    n = buf[answered + 2]
                    if self.status is not None and n in self.status:
                        conn.sendall(bytes([self.status[n]]))
                    answered += 3
                # and one after the job, which a printer answers once it has read the job
                if len(buf) > max(answered, tail) + 3 and buf[-3:-1] == b"\x10\x04" and answered >= 3:
                    n = buf[-1]
                    if self.status is not None and n in self.status:
                        conn.sendall(bytes([self.status[n]]))
                    tail = len(buf)

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len([r for r in self.received if r]) >= count:
                time.sleep(0.05)
                return
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        if self.sock is not None:
            self.sock.close()
        for t in self._threads:
            t.join(timeout=2)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------- a serial line


@dataclass
class PtyPair:
    printer_side: str  # the till writes here
    device_side: str  # the "printer" reads here
    process: subprocess.Popen[bytes]



# ----------------------------------------------------------------- frozen answers

GOLDEN = HERE / "golden"
KINDS = ("sale", "refund", "z", "voucher", "enrolment")


def frozen() -> dict[str, Any]:
    """Real sale, refund, Z totals, voucher and card answers, captured once so golden bytes stay put."""
    data: dict[str, Any] = json.loads((GOLDEN / "documents.json").read_text(encoding="utf-8"))
    return data


def config(tmp: Path, **kwargs: Any) -> Config:
    return load(write_config(tmp, **kwargs))


def build(kind: str, cfg: Config, lang: Lang, data: dict[str, Any] | None = None, *, copy: bool = False) -> Document:
    data = data or frozen()
    if kind == "sale":
        return templates.sale_receipt(data["sale"], cfg, copy=copy, lang=lang)
    if kind == "refund":
        return templates.refund_slip(data["refund"], cfg, copy=copy, lang=lang)
    if kind == "z":
        return templates.z_report(data["z"], cfg, copy=copy, lang=lang)
    if kind == "voucher":
        return templates.voucher(data["voucher"], cfg, copy=copy, lang=lang)
    if kind == "enrolment":
        return templates.enrolment_slip(data["enrolment"], cfg, copy=copy, lang=lang)
    raise ValueError(kind)
