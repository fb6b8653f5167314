"""Inputs no check foresaw still get the error contract: one stderr line, the right exit code, no traceback,
nothing written (found by running the CLI on a few thousand generated command lines)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from ledger_store import run_cli

CARD = "uid:04A1B2C3D4E5F6"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(store):
    store.service.close()

    def run(*args: str):
        return run_cli("--config", str(store.path), *args)

    return run


def _one_error(result, code: str, exit_code: int) -> None:
    assert result.code == exit_code, (result.out, result.err)
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert json.loads(result.out)["error"] == code == json.loads(result.err)["error"]


@pytest.mark.parametrize(("args", "code", "exit_code"), [
    (("card", "show", "code:\udcff"), "usage", 2),  # bytes that are not UTF-8, as a shell passes them
    (("--js", "card", "show", CARD), "usage", 2),  # no abbreviations: --js was JSON to the parser, text to errors
    (("--now", "0001-01-01", "card", "show", CARD), "bad_time", 1),
    (("--now", "yesterday", "ledger", "verify"), "bad_time", 1),  # a command that does not read the clock still checks it
    (("--config", "", "card", "show", CARD), "usage", 2),  # not the config.toml of whatever directory this is
    (("--now", "9999-12-31T23:59:59-12:00", "sale", "--card", CARD, "--item", "LAT"), "bad_time", 1),
    (("refund", "\u00b2"), "unknown_sale", 1),  # a digit to isdigit(), no number to int()
    (("sale", "--card", CARD, "--item", "LAT*\u00b2"), "bad_item", 1),
    (("sync", "--server", "http://[::1"), "bad_url", 1),
    (("sync", "--server", "http://127.0.0.1:99999"), "bad_url", 1),  # not "connection refused": no server was asked
    (("sync", "--server", "http://till:SECRETPW@127.0.0.1:9"), "bad_url", 1),  # it would replace the till's token
    (("sync", "--end-of-day", "--day", "9999-12-31"), "bad_day", 1),
    (("print-queue", "retry", "99999999999999999999999"), "usage", 2),
    (("print-queue", "reprint", "--kind", "sale"), "usage", 2),
    (("reader", "test", "--timeout", "inf"), "usage", 2),
    (("server", "report", "--db", "garbage"), "server_db", 1),
    (("server", "report", "--db", "mysql://u@h/d"), "server_db", 1),  # SQLite or PostgreSQL, said so (not "No module MySQLdb")
    (("server", "--port", "99999"), "usage", 2),
    (("card", "adjust", CARD, "--program", "points", "--amount", "1_000", "--reason", "x"), "bad_amount", 1),
    # not whole: refused as the value it is, as sale --redeem points=1.5 is
    (("card", "adjust", CARD, "--program", "points", "--amount", "1.5", "--reason", "x"), "bad_amount", 1),
    (("sale", "--card", CARD, "--item", "LAT", "--redeem", "points=1.5"), "bad_amount", 1),
    (("print-queue", "reprint", "1", "--sale", "18"), "usage", 2),  # two ways to name one receipt
    (("sale", "--card", CARD, "--it", "LAT"), "usage", 2),  # no abbreviations after the command either
    (("card", "show", CARD, "--js"), "usage", 2),
    (("sale", "--card", CARD, "--item", "LAT", "--sale", "abc"), "usage", 2),  # --sale is not --sale-id
    (("sale", "--card", CARD, "--item", "LAT", "--sale-id", "a\nb"), "bad_sale_id", 1),
])
def test_odd_input_gets_one_clear_error_and_writes_nothing(cli, store, args, code, exit_code):
    before = sqlite3.connect(store.cfg.ledger.path).execute("SELECT COUNT(*) FROM events").fetchone()[0]
    _one_error(cli("--json", *args), code, exit_code)
    assert sqlite3.connect(store.cfg.ledger.path).execute("SELECT COUNT(*) FROM events").fetchone()[0] == before


def test_a_ledger_path_that_is_no_ledger(tmp_path: Path, store):
    store.service.close()
    for target in (tmp_path, tmp_path / "junk.db"):
        if target.name == "junk.db":
            target.write_bytes(b"not a database" * 100)
        config = tmp_path / "c.toml"
        config.write_text(store.path.read_text(encoding="utf-8").replace('path = "ledger.db"', f'path = "{target}"'), encoding="utf-8")
        result = run_cli("--config", str(config), "--json", "init")
        _one_error(result, "ledger", 1)
        assert "check [ledger] path" in json.loads(result.out)["message"]


def test_a_config_that_never_ends_is_refused(store):
    store.service.close()
    result = run_cli("--config", "/dev/zero", "check-config")
    assert result.code == 3 and "larger than 4 MB" in result.err and len(result.err.splitlines()) == 1


def test_a_config_that_is_a_named_pipe_is_refused_without_waiting(tmp_path: Path):
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)  # nobody writes to it: opening it to read would wait for ever
    proc = subprocess.run([sys.executable, "-m", "terminal.cli", "--config", str(fifo), "check-config"],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 3 and "named pipe" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_a_token_file_that_cannot_be_written_registers_nothing(tmp_path: Path):
    db = f"sqlite:///{tmp_path / 'server.db'}"
    failed = run_cli("--json", "server", "add-terminal", "--db", db, "--store", "kw", "--terminal", "t1", "--token-file", str(tmp_path))
    _one_error(failed, "token_file", 1)
    token = tmp_path / "t1.token"
    done = run_cli("--json", "server", "add-terminal", "--db", db, "--store", "kw", "--terminal", "t1", "--token-file", str(token))
    assert done.code == 0 and token.read_text().strip() == done.json["token"]  # not "already registered"
    bad = run_cli("--json", "server", "add-terminal", "--db", db, "--store", "", "--terminal", " ")
    _one_error(bad, "usage", 2)


def test_an_unforeseen_failure_is_one_line_not_a_traceback(cli, monkeypatch):
    from ledger.service import Loyalty

    def boom(*_args, **_kw):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(Loyalty, "card", boom)
    result = cli("--json", "card", "show", CARD)
    _one_error(result, "internal", 1)
    assert "RuntimeError: disk on fire second line" in json.loads(result.out)["message"]
    monkeypatch.setenv("LOYALTY_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli("card", "show", CARD)


def test_a_refused_registration_leaves_the_token_file_there_was(tmp_path: Path):
    db = f"sqlite:///{tmp_path / 'server.db'}"
    token = tmp_path / "till.token"
    first = run_cli("--json", "server", "add-terminal", "--db", db, "--store", "kw", "--terminal", "t1", "--token-file", str(token))
    assert first.code == 0 and token.read_text().strip() == first.json["token"]
    again = run_cli("--json", "server", "add-terminal", "--db", db, "--store", "kw", "--terminal", "t1")
    _one_error(again, "exists", 1)
    # another till's registration given this till's token file by a slip: refused before anything is registered
    other = run_cli("--json", "server", "add-terminal", "--db", db, "--store", "kw", "--terminal", "t2", "--token-file", str(token))
    _one_error(other, "token_file", 1)
    assert "already exists" in other.json["message"]
    assert [t["tid"] for t in run_cli("--json", "server", "report", "--db", db).json["stale_terminals"]] == ["kw:t1"]
    # --rotate of another till onto this till's token file: refused, t1 keeps its token
    t2 = tmp_path / "t2.token"
    assert run_cli("--json", "server", "add-terminal", "--db", db, "--store", "kw", "--terminal", "t2", "--token-file", str(t2)).code == 0
    before = token.read_text()
    slip = run_cli("--json", "server", "add-terminal", "--db", db, "--store", "kw", "--terminal", "t2", "--rotate", "--token-file", str(token))
    _one_error(slip, "token_file", 1)
    assert "holds the token of kw:t1" in slip.json["message"] and token.read_text() == before
    assert token.read_text().strip() == first.json["token"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.db", "t2.token", "till.token"]
    rotated = run_cli("--json", "server", "add-terminal", "--db", db, "--store", "kw", "--terminal", "t1", "--rotate",
                      "--token-file", str(token))
    assert rotated.code == 0 and token.read_text().strip() == rotated.json["token"] != first.json["token"]
    said = run_cli("server", "add-terminal", "--db", db, "--store", "kw", "--terminal", "t1", "--rotate", "--token-file", str(token))
    assert said.code == 0 and said.out.startswith("terminal kw:t1 has a new token; its old one no longer works"), said.out
    # the same till typed in other letters is a slip, not a till of its own
    upper = run_cli("--json", "server", "add-terminal", "--db", db, "--store", "KW", "--terminal", "t1")
    _one_error(upper, "exists", 1)
    assert "differs only in case from kw:t1" in upper.json["message"]
    assert sorted(t["tid"] for t in run_cli("--json", "server", "report", "--db", db).json["stale_terminals"]) == ["kw:t1", "kw:t2"]


def _with_ledger(tmp_path: Path, store, target: Path) -> Path:
    config = tmp_path / "c.toml"
    config.write_text(store.path.read_text(encoding="utf-8").replace('path = "ledger.db"', f'path = "{target}"'), encoding="utf-8")
    return config


def test_another_programs_database_is_not_made_into_a_ledger(tmp_path: Path, store):
    store.service.close()
    other = tmp_path / "shop.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE stock (sku TEXT, qty INTEGER)")
        conn.execute("INSERT INTO stock VALUES ('LAT', 3)")
    before = other.read_bytes()
    result = run_cli("--config", str(_with_ledger(tmp_path, store, other)), "--json", "card", "show", CARD)
    _one_error(result, "ledger", 1)
    assert "not a pos-loyalty ledger" in json.loads(result.out)["message"]
    assert other.read_bytes() == before


def test_a_ledger_from_a_newer_version_is_refused(cli, store):
    with sqlite3.connect(store.cfg.ledger.path) as conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('pos-loyalty-ledger', 'm999_future', '')")
    result = cli("--json", "card", "show", CARD)
    _one_error(result, "ledger", 1)
    assert "newer version of pos-loyalty (m999_future)" in json.loads(result.out)["message"]


def test_receipt_out_never_writes_over_the_ledger_or_the_config(cli, store):
    sale = json.loads(cli("--json", "sale", "--card", CARD, "--item", "LAT").out)
    ledger = store.cfg.ledger.path
    for target in (ledger, Path(f"{ledger}-wal"), store.path):
        before = target.read_bytes() if target.exists() else None
        result = cli("--json", "receipt", sale["sale"], "--out", str(target))
        _one_error(result, "io", 1)
        assert (target.read_bytes() if target.exists() else None) == before
    assert json.loads(cli("--json", "ledger", "verify").out)["events"] > 0


def test_reading_commands_do_not_wait_for_another_process_sale(cli, store):
    cli("sale", "--card", CARD, "--item", "LAT")
    writer = sqlite3.connect(store.cfg.ledger.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a sale
    writer.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    try:
        for args in (("card", "show", CARD), ("ledger", "verify"), ("report", "z", "--day", "2026-11-22")):
            result = cli("--json", "--now", "2026-11-22T11:00", *args)
            assert result.code == 0, (args, result.err)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_damaged_page_is_reported_by_verify_and_named_by_every_other_command(cli, store):
    for i in range(40):
        assert cli("sale", "--card", f"code:C{i:03d}", "--item", "LAT").code == 0
    path = store.cfg.ledger.path
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # the first page of the events table: its rows are what every command reads
        [root] = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as fh:
        fh.seek((root - 1) * page_size + 8)
        fh.write(b"\xff" * (page_size - 8))
    report = cli("--json", "ledger", "verify")
    assert report.code == 1 and "Traceback" not in report.err
    data = json.loads(report.out)
    assert data["ok"] is False and data["checks"]["chain"] is False and data["problems"]
    shown = cli("--json", "card", "history", "code:C001")
    _one_error(shown, "ledger_damaged", 1)
    assert "restore the ledger from a backup" in json.loads(shown.out)["message"]


def test_a_read_only_ledger_is_named_as_such(tmp_path: Path):
    from ledger.store import database_error

    path = tmp_path / "ledger.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    ro = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as refused:  # what SQLite says when the file cannot be written
        ro.execute("INSERT INTO t VALUES (1)")
    problem = database_error(refused.value, path, "cannot write the ledger")
    assert problem.code == "ledger_read_only" and "read-only; nothing was written" in problem.message


def test_a_report_on_a_mistyped_server_database_makes_none(tmp_path: Path):
    typo = tmp_path / "srever.db"
    result = run_cli("--json", "server", "report", "--db", f"sqlite:///{typo}")
    _one_error(result, "server_db", 1)
    assert "no server database" in result.json["message"] and not typo.exists()
    _one_error(run_cli("--json", "server", "report", "--db", "sqlite:///"), "server_db", 1)


@pytest.mark.parametrize(("content", "words"), [(b"\xff\xfe\x00binary", "not text"), (b"abc\ndef\n", "line breaks"),
                                               ("t\u00f6ken".encode(), "other characters")])
def test_a_token_file_that_holds_no_token_is_named(tmp_path: Path, store, content: bytes, words: str):
    store.service.close()
    token = tmp_path / "till.token"
    token.write_bytes(content)
    config = tmp_path / "s.toml"
    config.write_text(store.path.read_text(encoding="utf-8") + f'\n[sync]\nserver = "http://127.0.0.1:9"\ntoken_file = "{token}"\n',
                      encoding="utf-8")
    result = run_cli("--config", str(config), "--json", "sync")
    _one_error(result, "no_token", 1)  # not "offline": the server was never asked
    assert words in result.json["message"]


def test_a_local_time_the_clocks_skipped_is_refused(tmp_path: Path, store):
    store.service.close()
    berlin = tmp_path / "berlin.toml"
    berlin.write_text(store.path.read_text(encoding="utf-8").replace('timezone = "Asia/Kuwait"', 'timezone = "Europe/Berlin"'),
                      encoding="utf-8")
    skipped = run_cli("--config", str(berlin), "--json", "--now", "2026-03-29T02:30", "sale", "--card", CARD, "--item", "LAT")
    _one_error(skipped, "bad_time", 1)
    assert "does not exist in Europe/Berlin" in skipped.json["message"]
    # the hour that comes twice in autumn is taken as its first time; an offset says which one
    for when in ("2026-10-25T02:30", "2026-10-25T02:30+01:00", "2026-03-29T03:30"):
        shown = run_cli("--config", str(berlin), "--json", "--now", when, "card", "show", CARD)
        assert shown.json["error"] == "unknown_card"  # the time was taken; the card is simply not enrolled
    assert run_cli("--config", str(berlin), "--json", "ledger", "verify").json["events"] == 0


def test_an_item_is_typed_as_the_cashier_types_it_and_quoted_short(cli):
    both = json.loads(cli("--json", "sale", "--card", CARD, "--item", "3*LAT", "--item", "ESP*2").out)
    assert {(ln["sku"], ln["qty"]) for ln in both["lines"]} == {("LAT", 3), ("ESP", 2)}
    scanned = cli("--json", "sale", "--card", CARD, "--item", "X" * 100_000)
    _one_error(scanned, "unknown_sku", 1)
    assert len(scanned.err) < 300 and "(100000 characters)" in scanned.err


def test_the_cashier_app_without_a_terminal_says_so_instead_of_drawing_into_a_file(cli, tmp_path: Path):
    result = cli("--json", "run")  # stdin and stdout are pipes here
    _one_error(result, "no_terminal", 1)
    assert "needs a terminal" in json.loads(result.out)["message"]
    # the demo shows its walk-through instead, and ends
    demo = run_cli("--now", "2026-11-22T10:00", "demo", "--dir", str(tmp_path / "d"))
    assert demo.code == 0 and "walk-through" in demo.err and "Thank you" in demo.out


@pytest.mark.parametrize("url", [
    "postgresql://loyalty:TOP@SECRET2@127.0.0.1:1/loyalty",  # an @ in the password, not %40
    "postgresql://loyalty@127.0.0.1:1/loyalty?password=SECRETQQ",
    "postgresql//loyalty:SECRET11@127.0.0.1:1/loyalty",  # a slip: no colon after the scheme
    "postgresq://loyalty:SECRET44@127.0.0.1:1/loyalty",  # a slip in the scheme
])
@pytest.mark.parametrize("command", [("server", "report"), ("server", "add-terminal", "--store", "s", "--terminal", "t")])
def test_a_database_password_is_never_printed(url: str, command: tuple[str, ...]):
    result = run_cli("--json", *command, "--db", url)
    _one_error(result, "server_db", 1)
    for secret in ("SECRET2", "SECRETQQ", "SECRET11", "SECRET44"):
        assert secret not in result.out + result.err


def test_the_server_on_a_database_it_cannot_open_says_server_db():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    result = run_cli("--json", "server", "--port", port, "--db", "postgresq://loyalty:SECRET44@127.0.0.1:1/loyalty")
    _one_error(result, "server_db", 1)
    assert "SECRET44" not in result.out + result.err


def test_a_ledger_deleted_or_replaced_under_a_running_till_takes_no_sale(store, tmp_path: Path):
    from ledger.errors import LoyaltyError
    from ledger.service import CheckoutRequest

    service, path = store.service, store.cfg.ledger.path
    now = store.now("2026-11-22T10:00")
    service.checkout(CheckoutRequest.from_cli(CARD, ["LAT"], []), now)
    backup = tmp_path / "backup.db"
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM INTO ?", (str(backup),))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(LoyaltyError) as gone:  # the open connection could still write: into a file nobody will see again
        service.checkout(CheckoutRequest.from_cli(CARD, ["LAT"], []), now)
    assert gone.value.code == "ledger_gone" and "deleted or replaced" in gone.value.message
    assert not path.exists()  # and no empty ledger was made in its place (the print queue opens only what exists)
    from receipts.queue import PrintQueue

    with pytest.raises(LoyaltyError):
        PrintQueue(path, store.cfg)
    assert not path.exists()
    # a file put back in its place is another file to this connection: a restart opens it
    wal = Path(f"{path}-wal")
    service.conn.execute("SELECT 1").fetchone()
    backup.replace(path)
    with pytest.raises(LoyaltyError) as replaced:
        service.enrol("code:NEW", now)
    assert replaced.value.code == "ledger_gone" and "Quit, put the ledger file back" in replaced.value.message
    # nor does anything else in this process open it while the old file is open: SQLite would read the old
    # file's -wal into it
    with pytest.raises(LoyaltyError) as again:
        PrintQueue(path, store.cfg)
    assert again.value.code == "ledger_gone"
    service.close()
    assert not wal.exists() or wal.stat().st_size == 0
    assert run_cli("--config", str(store.path), "--json", "card", "show", CARD).json["programs"]["coffee"]["stamps"] == 1


@pytest.mark.parametrize(("said", "free", "code"), [("database or disk is full", 10**9, "ledger_disk_full"),
                                                    ("disk I/O error", 0, "ledger_disk_full"),
                                                    ("disk I/O error", 10**9, "ledger")])
def test_a_full_disk_is_named_as_such(tmp_path: Path, monkeypatch, said: str, free: int, code: str):
    import shutil

    from ledger import store as store_mod

    monkeypatch.setattr(shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**9, 10**9 - free, free))  # type: ignore[attr-defined]
    problem = store_mod.database_error(sqlite3.OperationalError(said), tmp_path / "ledger.db", "cannot write the ledger")
    assert problem.code == code, problem.message


def test_a_ledger_in_a_read_only_folder_is_named_as_such(store, tmp_path: Path):
    store.sale(CARD, ["LAT"])
    store.service.close()
    folder = store.cfg.ledger.path.parent
    conn = sqlite3.connect(store.cfg.ledger.path)
    conn.execute("PRAGMA journal_mode=DELETE")  # the ledger alone, as a copy of it would be: WAL must make its files
    conn.close()
    if os.geteuid() == 0:  # root writes through file modes: only a read-only mount is read-only to it
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
    else:
        folder.chmod(0o555)
    try:
        assert not os.access(folder, os.W_OK)
        for args in (("sale", "--card", CARD, "--item", "LAT"), ("card", "show", CARD)):
            result = run_cli("--config", str(store.path), "--json", *args)
            _one_error(result, "ledger_read_only", 1)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "--lazy", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_a_backup_put_back_under_a_running_till_is_not_spoilt_by_its_wal(store, tmp_path: Path):
    from ledger.errors import LoyaltyError
    from ledger.service import CheckoutRequest
    from receipts.queue import PrintQueue

    service, path = store.service, store.cfg.ledger.path
    now = store.now("2026-11-22T10:00")
    service.checkout(CheckoutRequest.from_cli(CARD, ["LAT"], []), now)
    backup = tmp_path / "backup.db"
    conn = sqlite3.connect(path)
    conn.execute("VACUUM INTO ?", (str(backup),))
    conn.close()
    for _ in range(5):  # sales after the backup, in the open file's -wal
        service.checkout(CheckoutRequest.from_cli(CARD, ["LAT"], []), now)
    assert Path(f"{path}-wal").stat().st_size > 0
    copy = tmp_path / "copy.db"
    copy.write_bytes(backup.read_bytes())
    copy.replace(path)  # "put the file back" while the till still runs
    for opener in (lambda: PrintQueue(path, store.cfg), lambda: service.checkout(CheckoutRequest.from_cli(CARD, ["CRO"], []), now)):
        with pytest.raises(LoyaltyError) as refused:
            opener()
        assert refused.value.code == "ledger_gone"
    # what the till had (six sales) is saved beside it: the file it wrote is gone from the folder
    [rescued] = path.parent.glob(f"{path.name}.rescued-*")
    assert str(rescued) in refused.value.message
    with sqlite3.connect(rescued) as saved:
        assert saved.execute("SELECT amount FROM balances WHERE account='stamps'").fetchone()[0] == 6
    saved.close()
    # the old file's -wal is off the path already: another program checking the file put back, before the till
    # quits, does not replay it into that file
    assert not Path(f"{path}-wal").exists()
    early = run_cli("--config", str(store.path), "--json", "ledger", "verify")
    kept = sqlite3.connect(backup)
    in_backup = kept.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    kept.close()
    assert early.code == 0 and early.json["events"] == in_backup, early.out
    service.close()  # the till quits
    assert service.ledger.rescued == rescued  # `loyalty run` says where, and exits 1
    verify = run_cli("--config", str(store.path), "--json", "ledger", "verify")
    assert verify.code == 0, verify.out
    assert run_cli("--config", str(store.path), "--json", "card", "show", CARD).json["programs"]["coffee"]["stamps"] == 1


def test_a_write_the_ledger_file_refuses_is_one_named_error_in_process_too(store):
    # the cashier app calls the service directly: what SQLite refuses must reach it as the CLI says it
    from ledger.errors import LoyaltyError
    from ledger.service import CheckoutRequest

    store.service.conn.execute("PRAGMA query_only=ON")  # as a file that cannot be written answers
    with pytest.raises(LoyaltyError) as refused:
        store.service.checkout(CheckoutRequest.from_cli(CARD, ["LAT"], []), store.now("2026-11-22T10:00"))
    assert refused.value.code == "ledger_read_only" and "nothing was written" in refused.value.message
    store.service.conn.execute("PRAGMA query_only=OFF")
    assert store.service.conn.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == 0
