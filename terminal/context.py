"""What every CLI handler gets: the config, the ledger and the clock, opened on first use."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ledger import clock
from ledger.config import Config, load
from ledger.service import Loyalty


@dataclass
class Output:
    data: Any = None  # JSON-able, printed with --json
    text: str | None = None  # printed otherwise
    exit_code: int = 0
    # a command that did its work but reports a failure (exit 1): (code, message), the one line on stderr
    problem: tuple[str, str] | None = None


class Context:
    def __init__(self, *, config_path: str, now_text: str | None, as_json: bool):
        self.config_path = Path(config_path)
        self.now_text = now_text
        self.as_json = as_json
        self._config: Config | None = None
        self._service: Loyalty | None = None

    def stderr_line(self, kind: str, code: str, message: str) -> str:
        """The one stderr line of an error or warning ("loyalty: ..."; with --json the object {kind: code, "message"}),
        which it also returns."""
        one_line = " ".join(message.split())
        line = json.dumps({kind: code, "message": one_line}, ensure_ascii=False) if self.as_json else f"loyalty: {one_line}"
        print(line, file=sys.stderr)
        return line

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load(self.config_path)
        return self._config

    @property
    def loaded_config(self) -> Config | None:
        """The config if a command has loaded it (an error path must not load it just to word a message)."""
        return self._config

    @property
    def now(self) -> datetime:
        return clock.parse_now(self.now_text, self.config.store.tz)

    @property
    def today(self) -> date:
        return clock.business_day(self.now, self.config.store.tz)

    @property
    def service(self) -> Loyalty:
        if self._service is None:
            self._service = Loyalty.open(self.config)
        return self._service

    @property
    def begun_ledger(self) -> bool:
        """Whether this command began a new ledger (none was at the configured path)."""
        return self._service is not None and self._service.ledger.begun

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None
