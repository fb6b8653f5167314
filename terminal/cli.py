"""The `loyalty` command: global options, sub-commands, output and errors.

Each feature registers its sub-commands from a module in `terminal/commands/`
(see COMMAND_MODULES). A handler returns an `Output`: the JSON object for
--json and the text for people. Errors are one line on stderr (or
`{"error": CODE, "message": ...}` on stdout with --json) and a non-zero exit.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from ledger.errors import LoyaltyError

    from .context import Context, Output

COMMAND_MODULES = (
    "terminal.commands.core",
    "terminal.commands.cards",
    "terminal.commands.readers",
    "terminal.commands.printing",
    "terminal.commands.syncing",
    "terminal.commands.ui",
)

# which module registers each command, so a command loads only its own module (and what that imports):
# `loyalty run` then starts without the printing, reader and sync modules; tests/ui/test_cli.py keeps this in step
COMMANDS = {
    "init": "terminal.commands.core",
    "sale": "terminal.commands.core",
    "refund": "terminal.commands.core",
    "receipt": "terminal.commands.core",
    "ledger": "terminal.commands.core",
    "check-config": "terminal.commands.core",
    "card": "terminal.commands.cards",
    "reader": "terminal.commands.readers",
    "printer": "terminal.commands.printing",
    "print-queue": "terminal.commands.printing",
    "sync": "terminal.commands.syncing",
    "report": "terminal.commands.syncing",
    "server": "terminal.commands.syncing",
    "demo": "terminal.commands.ui",
    "run": "terminal.commands.ui",
}
_VALUED = ("--config", "--now")
# the cashier app builds its long-lived objects at startup; collecting while it imports and builds them only
# delays its first frame, so the collector waits until the app has drawn (LoyaltyApp re-enables it)
_UI_COMMANDS = ("demo", "run")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3


def command_of(argv: Sequence[str]) -> str | None:
    """The command a command line names, None when it asks for help before naming one (or names none)."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif arg.startswith("-"):
            if arg in ("-h", "--help"):
                return None
        else:
            return arg
    return None


def modules_for(argv: Sequence[str] | None) -> tuple[str, ...]:
    """The command modules a command line needs: its command's alone, or all of them (help, usage errors)."""
    module = COMMANDS.get(command_of(argv) or "") if argv is not None else None
    return (module,) if module else COMMAND_MODULES


class UsageError(Exception):
    """A command line argparse cannot read: reported like every other error, not as argparse's usage dump."""

    def __init__(self, prog: str, message: str):
        super().__init__(f"{message} (see {prog} --help)")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any):
        # no abbreviations in any command: `--sale` must not quietly become --sale-id on a till
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, message)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`'s command (every command when argv is None)."""
    parser = _Parser(
        prog="loyalty",
        description="Offline-first loyalty terminal for the point of sale.",
        epilog="Every command accepts --json for machine-readable output. Docs: README.md, docs/config.md.",
    )
    _add_globals(parser, None)
    parser.add_argument("--version", action=_Version, nargs=0, help="show the installed version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in modules_for(argv):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # a feature not built yet
            raise
        module.register(sub)
    _globals_everywhere(parser)
    return parser


class _Version(argparse.Action):
    """--version, looked up only when asked: reading the installed metadata costs every command ~40 ms."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("pos-loyalty")
        except PackageNotFoundError:  # run from a checkout that was never installed
            found = "(not installed)"
        print(f"{parser.prog} {found}")
        parser.exit()


def _add_globals(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="config file (default: $LOYALTY_CONFIG, else ./config.toml)",
    )
    parser.add_argument("--now", metavar="ISO-8601", default=default, help="clock override for scripts and tests (naive = store time)")
    parser.add_argument("--json", action="store_true", default=default, help="print JSON instead of text")


def _globals_everywhere(parser: argparse.ArgumentParser) -> None:
    """Let --config/--now/--json stand after the command too (`loyalty sale ... --json`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if not any(a.dest == "now" for a in child._actions):
                    _add_globals(child, argparse.SUPPRESS)
                _globals_everywhere(child)


EXIT_PIPE = 141  # what a shell reports for a process a closed pipe stopped (128 + SIGPIPE)


def _database_problem(ctx: Context, exc: Exception) -> LoyaltyError | None:
    import sqlite3

    from ledger.store import database_error

    if not isinstance(exc, sqlite3.DatabaseError) or ctx.loaded_config is None:
        return None
    problem = database_error(exc, ctx.loaded_config.ledger.path, "the ledger")
    return None if problem.code == "ledger" else problem  # anything else is a bug: reported as one


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader of our output went away (`| head`): what the command committed stays
        # committed; no traceback, and nothing more written to the closed pipe at exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE


def _main(argv: Sequence[str] | None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if command_of(argv) in _UI_COMMANDS:
        gc.disable()
    from ledger.config import ConfigError
    from ledger.errors import LoyaltyError

    from .context import Context, Output

    bad = next((a for a in argv if not _utf8(a)), None)
    if bad is not None:  # bytes the terminal could not decode: nothing downstream could print or store them
        shown = bad.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return _fail(Context(config_path="", now_text=None, as_json="--json" in argv), "usage",
                     f"argument {shown!r} is not UTF-8 text", EXIT_USAGE)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _fail(Context(config_path="", now_text=None, as_json="--json" in argv), "usage", str(exc), EXIT_USAGE)
    args.json = bool(args.json)
    if args.config is not None and not args.config.strip():
        return _fail(Context(config_path="", now_text=None, as_json=args.json), "usage", "--config is empty: give the config file", EXIT_USAGE)
    config_path = args.config or os.environ.get("LOYALTY_CONFIG") or "config.toml"
    ctx = Context(config_path=config_path, now_text=args.now, as_json=args.json)
    try:
        if args.now is not None:  # checked by every command, not only those that read the clock
            from zoneinfo import ZoneInfo

            from ledger import clock

            clock.parse_now(args.now, ZoneInfo("UTC"))
        result = args.handler(args, ctx)
        if ctx.begun_ledger and args.handler.__name__ != "cmd_init" and not (isinstance(result, Output) and result.exit_code):
            # a till that had a ledger and finds none (a disk not mounted, a mistyped path) must not sell on unawares
            ctx.stderr_line("warning", "new_ledger", f"no ledger was at {ctx.config.ledger.path}: a new one was begun. If this"
                                                     " till had one, check [ledger] path and that its disk is mounted")
    except ConfigError as exc:
        return _fail(ctx, "config", str(exc), EXIT_CONFIG)
    except LoyaltyError as exc:  # "usage": a handler's own check of how options go together
        return _fail(ctx, exc.code, exc.message, EXIT_USAGE if exc.code == "usage" else EXIT_ERROR)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # a bug or a case no check foresaw: still one line, never a traceback
        problem = _database_problem(ctx, exc)
        if problem is not None:  # the disk or the file refused (damaged, read-only, busy): say which
            return _fail(ctx, problem.code, problem.message, EXIT_ERROR)
        if os.environ.get("LOYALTY_DEBUG"):
            raise
        what = " ".join(str(exc).split()) or "no detail"
        return _fail(ctx, "internal", f"{type(exc).__name__}: {what} (set LOYALTY_DEBUG=1 to see where)", EXIT_ERROR)
    finally:
        ctx.close()
    if isinstance(result, Output):
        _emit(ctx, result)
        return result.exit_code
    return int(result or 0)


def _utf8(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _emit(ctx: Context, out: Output) -> None:
    if ctx.as_json:
        if out.data is not None:
            print(json.dumps(out.data, ensure_ascii=False, indent=None))
    elif out.text is not None:
        sys.stdout.write(out.text if out.text.endswith("\n") or not out.text else out.text + "\n")
    if out.exit_code and out.problem is not None:
        ctx.stderr_line("error", *out.problem)


def _fail(ctx: Context, code: str, message: str, exit_code: int) -> int:
    line = ctx.stderr_line("error", code, message)
    if ctx.as_json:
        print(line)  # the error object goes to stdout for the caller's parser too
    return exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
