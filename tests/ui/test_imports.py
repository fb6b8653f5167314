"""Textual stays in terminal/: the core packages, the CLI and the app's non-UI parts load without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    return set(json.loads(out.stdout))


def textual_in(loaded: set[str]) -> list[str]:
    return sorted(n for n in loaded if n == "textual" or n.startswith("textual."))


def every_module(package: str) -> list[str]:
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__":
            names.append(".".join(parts))
    return names


def test_core_packages_do_not_load_textual() -> None:
    names = [n for pkg in ("ledger", "drivers", "receipts", "sync") for n in every_module(pkg)]
    assert names, "no modules found"
    code = "import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names)
    assert textual_in(modules_after(code)) == []


def test_cli_and_app_plumbing_do_not_load_textual() -> None:
    # the CLI answers `loyalty sale` without paying for the UI toolkit; the app's ledger and device seams are plain Python
    code = (
        "from terminal import cli\n"
        "cli.build_parser()\n"
        "import terminal.demo, terminal.app.gate, terminal.app.ports, terminal.app.cart\n"
    )
    assert textual_in(modules_after(code)) == []


def test_the_app_does_load_textual() -> None:
    # the check above would pass vacuously if the probe could not see Textual at all
    assert "textual.app" in textual_in(modules_after("from terminal.app import build_app"))


def test_each_command_is_mapped_to_the_module_that_registers_it() -> None:
    import argparse
    import importlib

    from terminal import cli

    registered: dict[str, str] = {}
    for name in cli.COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(name).register(sub)
        registered |= dict.fromkeys(sub.choices, name)
    assert registered == cli.COMMANDS


def test_loyalty_run_loads_neither_other_commands_nor_receipts_nor_sync_before_its_first_frame() -> None:
    # what `loyalty run` imports before drawing: its own command module, the app, Textual; the rest loads later
    loaded = modules_after(
        "from terminal import cli\n"
        "cli.build_parser(['--config', 'config.toml', '--now', '2026-11-22T10:00', 'run'])\n"
        "from terminal.app import build_app\n"
    )
    assert sorted(n for n in loaded if n.startswith("terminal.commands.")) == ["terminal.commands.ui"]
    heavy = {"PIL", "httpx", "receipts", "sync", "sqlite_utils"}
    assert sorted(n for n in loaded if n.split(".")[0] in heavy) == []


def test_help_still_lists_every_command() -> None:
    from terminal import cli

    for argv in (None, ["--help"], ["--config", "run"], ["no-such-command"]):
        sub = next(a for a in cli.build_parser(argv)._actions if a.dest == "command")
        assert set(sub.choices) == set(cli.COMMANDS), argv
