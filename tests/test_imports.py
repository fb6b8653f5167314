"""Layering: nothing outside terminal/ loads Textual; ledger/ loads only stdlib, sqlite-utils and Babel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loaded_after(imports: list[str]) -> set[str]:
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        + "".join(f"import {name}\n" for name in imports)
        + "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    return set(json.loads(out.stdout))


def ledger_modules() -> list[str]:
    return sorted(f"ledger.{p.stem}" for p in (ROOT / "ledger").glob("*.py") if p.stem != "__init__")


def test_ledger_imports_only_stdlib_sqlite_utils_and_babel():
    loaded = loaded_after(ledger_modules())
    top = {name.split(".")[0] for name in loaded}
    stdlib = set(sys.stdlib_module_names) | {"_" + n for n in sys.stdlib_module_names}
    allowed = stdlib | {"ledger", "sqlite_utils", "babel", "tzdata", "zoneinfo"}
    # sqlite-utils brings its own dependencies; they are part of "sqlite-utils"
    allowed |= {"sqlite_fts4", "tabulate", "dateutil", "six", "click", "click_default_group", "pluggy", "_distutils_hack"}
    foreign = sorted(n for n in top - allowed if not n.startswith("_"))
    assert not foreign, f"ledger/ pulls in {foreign}"


def test_nothing_outside_terminal_imports_textual():
    packages = []
    for pkg in ("ledger", "drivers", "receipts", "sync"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            packages.append(".".join(parts))
    loaded = loaded_after(packages)
    assert not any(name == "textual" or name.startswith("textual.") for name in loaded)
    # and no source file outside terminal/ mentions it in an import
    for pkg in ("ledger", "drivers", "receipts", "sync"):
        for path in (ROOT / pkg).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "import textual" not in text and "from textual" not in text, path
