"""`loyalty sync`, `loyalty report z`, `loyalty server ...`: the chain's central server and the till's sync."""

from __future__ import annotations

import argparse
import os
import re
import sys
import urllib.parse
from datetime import date
from pathlib import Path
from typing import Any

from ledger.errors import LoyaltyError
from ledger.settings import ID_PATTERN

from ..context import Context, Output
from . import bounded

DEFAULT_SERVER_DB = "sqlite:///var/server.db"


def register(sub: Any) -> None:
    p = sub.add_parser("sync", help="push this till's events to the server and pull the chain's cards",
                       description="Push this till's events to the server and pull the chain's cards. A server that does not answer"
                                   " is tried again for [sync] retry_for_s (15 s) before the sync says offline.")
    p.add_argument("--end-of-day", action="store_true", help="also close the business day, expire due points and print the Z report")
    p.add_argument("--day", metavar="DATE", help="the business day to close (default: today; after midnight, while today has no event at this till, the day of its last"
                        " event if still open)")
    p.add_argument("--server", metavar="URL", help="override [sync] server")
    p.add_argument("--new-server", action="store_true",
                   help="the chain's server was set up anew from nothing: take it as this till's server (it is refused as"
                        " another chain's otherwise)")
    p.set_defaults(handler=cmd_sync)

    p = sub.add_parser("report", help="reports from this till's ledger")
    rsub = p.add_subparsers(dest="report_command", metavar="REPORT", required=True)
    z = rsub.add_parser("z", help="the Z report: the day's totals and the server's ack of the chain head")
    z.add_argument("--day", metavar="DATE", help="business day (default: today)")
    z.set_defaults(handler=cmd_report_z)

    p = sub.add_parser("server", help="the chain's central server (SQLite by default, postgresql://... in production)")
    _db_arg(p, DEFAULT_SERVER_DB)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for the tills)")
    p.add_argument("--port", type=bounded(1, 65_535), default=8765, help="port (default 8765)")
    p.set_defaults(handler=cmd_server)
    ssub = p.add_subparsers(dest="server_command", metavar="ACTION")
    a = ssub.add_parser("add-terminal", help="register a till; prints its one-time token (only its hash is kept)")
    _db_arg(a, argparse.SUPPRESS)
    a.add_argument("--store", required=True)
    a.add_argument("--terminal", required=True)
    a.add_argument("--rotate", action="store_true", help="issue a new token for a registered till (the old one stops working)")
    a.add_argument("--token-file", metavar="PATH", help="also write the token to PATH (the till's [sync] token_file)")
    a.set_defaults(handler=cmd_add_terminal)
    r = ssub.add_parser("report", help="the manager's list: overdrafts, tamper flags, tills not synced for a day")
    _db_arg(r, argparse.SUPPRESS)
    r.set_defaults(handler=cmd_server_report)


def _db_arg(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--db", metavar="URL", default=default,
                   help="sqlite:///PATH (relative to the working directory; sqlite:////ABS/PATH) or postgresql://USER@HOST:PORT/DB"
                        " (default: $LOYALTY_SERVER_DB, else sqlite:///var/server.db)")


def _db_url(args: argparse.Namespace) -> str:
    given = getattr(args, "db", None)
    if given and given != DEFAULT_SERVER_DB:
        return str(given)
    return os.environ.get("LOYALTY_SERVER_DB") or DEFAULT_SERVER_DB


def _day(ctx: Context, text: str | None) -> date:
    if text is None:
        return ctx.today
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise LoyaltyError("bad_day", f"--day {text!r} is not a date such as 2026-11-22") from None
    if day.year < 2000:
        raise LoyaltyError("bad_day", f"--day {text} is before any day this till kept")
    if day > ctx.today:  # closing a day still to come would refuse its sales when it comes
        raise LoyaltyError("bad_day", f"--day {text} has not begun yet (today is {ctx.today.isoformat()} at this store)")
    return day


class _Bar:
    """A one-line progress bar on stderr, when a person is watching."""

    def __init__(self, enabled: bool, talk: bool = False):
        self.enabled = enabled  # the bar itself: only on a terminal
        self.talk = talk or enabled  # why it waits: also in a log (not with --json)
        self.shown = False

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        if p.total:
            width = 30
            filled = int(width * p.done / p.total)
            text = f"\r{p.phase:<5} [{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total}"
        else:
            text = f"\r{p.phase:<5} page {p.done}" + " " * 30
        sys.stderr.write(text)
        sys.stderr.flush()
        self.shown = True

    def retrying(self, why: str, delay: float) -> None:
        if not self.talk:
            return
        # on a line of its own: the progress line above it stays readable
        said = f"no answer from the sync server ({why}); trying again in {delay:.1f} s"
        if self.enabled:
            sys.stderr.write(("\n" if self.shown else "") + said)
            self.shown = True
        else:
            sys.stderr.write(said + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _client(ctx: Context, args: argparse.Namespace, bar: _Bar) -> Any:
    from sync.client import SyncClient, read_token

    cfg = ctx.config
    server = getattr(args, "server", None) or cfg.sync.server
    if not server:
        raise LoyaltyError("no_server", "[sync] server is not set in the config")
    from ledger.config import server_url_problem

    problem = server_url_problem(server)
    if problem:
        raise LoyaltyError("bad_url", f"sync server: {problem}")
    return SyncClient(
        ctx.service.conn, server=server, token=read_token(cfg.sync.token_file), store_id=cfg.store.id,
        # a server that does not answer is tried again for [sync] retry_for_s: long enough to ride out its restart
        terminal_id=cfg.store.terminal, timeout_s=cfg.sync.timeout_s, attempts=100, give_up_s=cfg.sync.retry_for_s,
        progress=bar, on_retry=bar.retrying,
        clock=(lambda: ctx.now) if ctx.now_text else None,
    )


def cmd_sync(args: argparse.Namespace, ctx: Context) -> Output:
    from sync.endofday import end_of_day

    bar = _Bar(not ctx.as_json and sys.stderr.isatty(), talk=not ctx.as_json)
    if args.new_server:  # the chain id of the server it synced with is forgotten: the next answer gives the new one
        conn = ctx.service.conn
        conn.execute("DELETE FROM sync_state WHERE key='chain_id'")
    if args.end_of_day:
        from sync.client import Offline

        # a till with no server set up still closes its day and prints its Z report, marked not synced
        try:
            client: Any = _client(ctx, args, bar)
        except LoyaltyError as exc:
            client = Offline(exc.message)
    else:
        client = _client(ctx, args, bar)
    try:
        # no --day: today, or after midnight the day that just ended (Loyalty.day_to_close)
        day = _day(ctx, args.day) if args.day is not None else None
        result = end_of_day(ctx.service, client, ctx.now, day, tolerate_offline=True) if args.end_of_day else client.sync()
    finally:
        bar.done()
        if not isinstance(client, Exception):
            client.close()
    push, pull = result["push"], result["pull"]
    lines = [
        f"pushed {push['sent']} event(s) in {push['requests']} request(s); server holds seq {push['acked_seq']} of {push['head_seq']}",
        f"pulled {pull['members']} member snapshot(s) in {pull['pages']} page(s): {pull['new_members']} new member(s), "
        f"{pull['new_cards']} new card(s), {pull['hotlisted']} newly blocked",
    ]
    for c in pull.get("conflicts", []):
        lines.append(f"CARD CONFLICT {c['card']}: this till enrolled it as a new member, the chain has it for member"
                     f" {c['member_chain']} (flagged for the manager: loyalty server report; docs/sync.md says how to settle it)")
    for od in push["overdrafts"]:
        held = [str(r[0]) for r in ctx.service.conn.execute(  # what the cashier can find the customer by
            "SELECT id FROM cards WHERE member_id=? AND status != 'replaced' ORDER BY id", (od["member_id"],))]
        card = f" (card {', '.join(held)})" if held else ""
        lines.append(f"OVERDRAFT member {od['member_id']}{card} {od['program_id']}/{od['account']}: {od['balance']}"
                     " (flagged for the manager)")
    if result.get("warning"):
        lines.append("warning: " + result["warning"])
    exit_code = 0
    problem = None
    if args.end_of_day:
        lines.insert(0, f"business day {result['day']} closed at {result['closed_at']}; {result['expired_points']} points expired")
        if result.get("offline") and not ctx.config.sync.server:
            lines[1:3] = ["stand-alone till: no sync server in the config, nothing to sync"]
        elif result.get("offline"):
            lines[1:3] = [f"NOT SYNCED: {result['offline']}"]
            exit_code = 1
            problem = ("offline", f"business day {result['day']} closed, Z report NOT SYNCED: {result['offline']}")
        lines.append("")
        lines.append(_z_text(ctx, result["z"]))
        from .printing import after_end_of_day

        after_end_of_day(ctx, str(result["day"]))
    return Output(result, "\n".join(lines), exit_code=exit_code, problem=problem)


def cmd_report_z(args: argparse.Namespace, ctx: Context) -> Output:
    from sync.endofday import z_report

    z = z_report(ctx.service.conn, ctx.config, _day(ctx, args.day))
    return Output(z, _z_text(ctx, z))


def _z_text(ctx: Context, z: dict[str, Any]) -> str:
    """The Z report as the printer gets it, in the store's language: one document on paper, on screen and here."""
    from receipts import render
    from receipts.templates import z_report as paper

    text = render(paper(z, ctx.config), "text", ctx.config).decode("utf-8").rstrip("\n")
    chain = z["chain"]
    if not chain.get("standalone") and not chain.get("in_sync"):
        text += "\nNOT SYNCED: loyalty sync sends this till's events to the server"
    return text


def cmd_server(args: argparse.Namespace, ctx: Context) -> Output:
    import uvicorn


    url = _db_url(args)
    _check_listen(args.host, args.port)
    from sync.app import create_app

    app = create_app(_open_store(url))  # a database it cannot open is one server_db line, as for the other commands
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"loyalty server on http://{host}:{args.port} (store {shown_db_url(url)}); API docs at /docs", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return Output(None, None)


def _open_store(url: str, *, existing: bool = False) -> Any:
    """The server's store, or one error line naming the URL (its password hidden). `existing`: a report reads a
    database that is there; a mistyped SQLite path must not make an empty one that reports no problem."""
    from sync.store import ServerStore

    if url.startswith("sqlite:") and not url.removeprefix("sqlite:").lstrip("/"):
        raise LoyaltyError("server_db", f"{url} names no database file (such as sqlite:///var/server.db)")
    if existing and url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise LoyaltyError("server_db", f"no server database at {url.removeprefix('sqlite:///')} (check --db or $LOYALTY_SERVER_DB)")
    scheme = url.partition(":")[0].partition("+")[0].lower()
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise LoyaltyError("server_db", f"{shown_db_url(url)}: the server keeps its data in SQLite (sqlite:///FILE) or"
                                        " PostgreSQL (postgresql://...), no other database")
    try:
        return ServerStore(url)  # it creates or checks its schema: a database it cannot reach fails here
    except Exception as exc:
        what = " ".join(str(exc).split()).split(" (Background on this error")[0] or type(exc).__name__
        raise LoyaltyError("server_db", f"cannot open the server database {shown_db_url(url)}: {hide_secrets(what[:300], url)}") from None


def shown_db_url(url: str) -> str:
    """The database URL as printed: no user or password (whatever their spelling: `@` in a password, a slash
    missing after the scheme), no `password=` option."""
    head, sep, tail = url.rpartition("@")
    if sep:
        scheme = re.match(r"[A-Za-z0-9+.-]*:/{0,2}", head)
        url = f"{scheme.group(0) if scheme else ''}***@{tail}"
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)


def hide_secrets(text: str, url: str) -> str:
    """`text` (a driver's message, which may quote pieces of the URL) without any piece of the URL's password."""
    head, sep, _ = url.rpartition("@")
    userinfo = re.sub(r"^[A-Za-z0-9+.-]*:/{0,2}", "", head) if sep else ""
    password = userinfo.partition(":")[2]
    found = [password, *password.split("@"), *re.findall(r"(?i)password=([^&]*)", url)]
    for secret in sorted({f for f in found if len(f) >= 3}, key=len, reverse=True):
        text = text.replace(secret, "***").replace(urllib.parse.quote(secret, safe=""), "***")
    return text


_ID = re.compile(ID_PATTERN)


def _check_listen(host: str, port: int) -> None:
    """The address the server is to listen on can be taken: one error line instead of the web server's log."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise LoyaltyError("server", f"cannot listen on {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise LoyaltyError("server", f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def cmd_add_terminal(args: argparse.Namespace, ctx: Context) -> Output:
    from sync.store import Conflict, NotRegistered, make_tid

    for name in ("store", "terminal"):
        value = getattr(args, name)
        if not _ID.fullmatch(value):
            raise LoyaltyError("usage", f"--{name} {value!r}: letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit")
    out, path, fresh = None, None, None
    if args.token_file:
        # a new file beside the token file is opened before the till is registered (a token nobody could
        # write down would lock the till out) and takes its place only once the server has the till:
        # a refused registration leaves the token file there was
        path = Path(args.token_file)
        fresh = path.with_name(path.name + ".new")
        if path.exists() and not path.is_dir() and not args.rotate:
            # likely another till's token (a slip in the path): overwriting it would lock that till out
            raise LoyaltyError("token_file", f"{path} already exists: give a new file for a new till (--rotate replaces this"
                                             " till's own token; remove a stale file first)")
        try:
            if path.is_dir():
                raise IsADirectoryError(21, "Is a directory")
            path.parent.mkdir(parents=True, exist_ok=True)
            out = fresh.open("w", encoding="utf-8")
            fresh.chmod(0o600)
        except OSError as exc:
            raise LoyaltyError("token_file", f"cannot write the token file {path}: {exc.strerror or exc}") from None
    try:
        store = _open_store(_db_url(args))
        try:
            if args.rotate and path is not None and path.is_file():
                # --rotate may replace this till's own token, never another till's (that till would be locked out)
                try:
                    owner = store.token_owner(path.read_text(encoding="utf-8").strip())
                except (OSError, UnicodeDecodeError):
                    owner = None
                if owner is not None and owner != make_tid(args.store, args.terminal):
                    raise LoyaltyError("token_file", f"{path} holds the token of {owner}, not of {make_tid(args.store, args.terminal)}:"
                                                     " give this till's token file")
            tid, token = store.add_terminal(args.store, args.terminal, rotate=args.rotate)
        except (Conflict, NotRegistered) as exc:
            raise LoyaltyError(exc.code, exc.message) from None
        finally:
            store.close()
        if out is not None and path is not None and fresh is not None:
            try:
                out.write(token + "\n")
                out.close()
                os.replace(fresh, path)
            except OSError as exc:
                raise LoyaltyError("token_file", f"terminal {tid} is registered but its token could not be written to"
                                                 f" {path} ({exc.strerror or exc}); issue a new one with --rotate") from None
    finally:
        if out is not None and not out.closed:
            out.close()
        if fresh is not None:
            fresh.unlink(missing_ok=True)
    done = f"terminal {tid} has a new token; its old one no longer works" if args.rotate else f"terminal {tid} registered"
    text = (f"{done}; its token is in {args.token_file} (mode 0600): that file is the till's [sync] token_file"
            if args.token_file else f"{done}. Its token (shown once; put it in the till's [sync] token_file):\n{token}")
    return Output({"tid": tid, "token": token, "token_file": args.token_file}, text)


def cmd_server_report(args: argparse.Namespace, ctx: Context) -> Output:
    from zoneinfo import ZoneInfo

    from ledger import clock

    # the server has no store of its own: a naive --now is UTC here
    now = clock.parse_now(ctx.now_text, ZoneInfo("UTC")) if ctx.now_text else None
    store = _open_store(_db_url(args), existing=True)
    try:
        rep = store.reports(now=now)
    finally:
        store.close()
    lines = [f"overdrafts: {len(rep['overdrafts'])}"]
    for o in rep["overdrafts"]:
        held = f" (card {', '.join(o['cards'])})" if o["cards"] else ""
        lines.append(f"  {o['at'][:19]} member {o['member_id']}{held} {o['program_id']}/{o['account']} {o['balance']}"
                     f" (now {o['current']}) by {o['tid']}")
    lines.append(f"flags: {len(rep['flags'])}")
    for f in rep["flags"]:
        lines.append(f"  {f['at'][:19]} {f['kind']} {f['tid']}: {f['detail']}")
    lines.append(f"terminals not synced for more than a day: {len(rep['stale_terminals'])}")
    for t in rep["stale_terminals"]:
        lines.append(f"  {t['tid']} last seen {t['last_seen_at'] or 'never'}, last push {t['last_push_at'] or 'never'} (seq {t['last_seq']})")
    return Output(rep, "\n".join(lines))
