"""The real `loyalty demo` in a real terminal (tmux): what a cashier sees, key by key."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ledger import config as config_mod
from ledger.service import Loyalty

LOYALTY = Path(sys.executable).parent / "loyalty"


class Tmux:
    def __init__(self, name: str):
        self.name = name

    def run(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.name, *args], capture_output=True, text=True, timeout=30)
        return out.stdout

    def pane(self) -> str:
        return self.run("capture-pane", "-p")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", *keys)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pane = self.pane()
            if text in pane:
                return pane
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{self.pane()}")


def test_demo_sale_in_tmux(tmp_path: Path) -> None:
    assert shutil.which("tmux"), "tmux is part of the test setup (scripts/setup.sh)"
    workdir = tmp_path / "demo"
    tmux = Tmux(f"loyalty-ui-{os.getpid()}")
    command = f"{LOYALTY} demo --dir {workdir} --now 2026-11-22T10:00"
    tmux.run("new-session", "-d", "-x", "100", "-y", "30", command)
    try:
        tmux.wait_for("reader ● sim")
        tmux.keys("F2")
        tmux.wait_for("Tap a card")
        tmux.keys("1")
        tmux.wait_for("uid:04A1B2C3D4E5F6  since")  # the member panel (the tap dialog lists names too)
        # as a scanner sends them: two codes in one write, each ended by its Enter
        tmux.keys("-l", "LAT*2\rCRO\r")
        tmux.wait_for("Latte")
        tmux.wait_for("Croissant")
        tmux.wait_for("TOTAL KWD 3.007")
        tmux.keys("F9")
        pane = tmux.wait_for("Paid:")
        pane = tmux.wait_for("printed on preview://")
        number = re.search(r"Paid: KWD 3\.007, receipt (till-1-\d{6})", pane)
        assert number, pane
        # the receipt is on screen, whole lines of it, beside the cleared cart
        assert "Salmiya Coffee House" in pane
        assert re.search(r"2 x Latte\s+KWD 2\.500", pane), pane
        assert re.search(r"TOTAL\s+KWD 3\.007", pane), pane
        assert number.group(1) in pane.split("Paid:")[0]
        tmux.keys("C-q")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and tmux.run("list-sessions"):
            time.sleep(0.1)
    finally:
        tmux.run("kill-server")
    # and the ledger holds that very sale
    service = Loyalty.open(config_mod.load(workdir / "config.toml"))
    try:
        row = service.conn.execute(
            "SELECT result FROM sales WHERE json_extract(result, '$.receipt.number') = ?", (number.group(1),)
        ).fetchone()
        assert row is not None
        assert '"total":"3.007"' in row[0]
    finally:
        service.close()
