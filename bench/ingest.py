"""50 terminals pushing at once into a server over PostgreSQL, against raw batched INSERTs into the same database.

A throwaway PostgreSQL cluster is started in a temp dir (or give --db). Each
terminal's chain is built in memory with the ledger's own hash function; the
terminals push their batches of 500 concurrently over loopback to `loyalty
server` processes (--workers, default 2: a deployment runs one API process per
core, all stateless over the one database, the tills spread across them). The
baseline inserts the same rows, an executemany of 500 rows per transaction,
one connection per till (the same concurrency), into a plain copy of the
events table (same columns and indexes) of the same database: no hash check,
no balances, no change numbers.

    .venv/bin/python bench/ingest.py [--terminals 50] [--events 2000] [--workers 2]

Last line: JSON with `events_per_s` (through the server) and `ratio` (to the raw INSERT rate).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger.store import GENESIS, HASHED, canonical, event_hash  # noqa: E402
from sync.store import ServerStore  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.port = free_port()
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync"])
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
        self._run([str(PG_BIN / "pg_ctl"), "-w", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "start", "-o", opts])
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str]) -> None:
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        try:
            self._run([str(PG_BIN / "pg_ctl"), "-w", "-D", str(self.dir / "data"), "stop", "-m", "fast"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def chain(store_id: str, terminal: str, n: int) -> list[dict[str, Any]]:
    rows, prev = [], GENESIS
    for i in range(n):
        kind, program, account, amount = [("stamp", "coffee", "stamps", 1), ("earn", "points", "points", 12),
                                          ("spend", "member", "spend", 1250), ("sale", None, None, 0)][i % 4]
        ev: dict[str, Any] = {
            "seq": i + 1, "event_id": f"{store_id}-{terminal}-{i}", "terminal_id": terminal, "store_id": store_id,
            "ts": "2026-11-22T17:00:00.000000Z", "business_day": "2026-11-22", "member_id": f"{store_id}-m{i % 200}",
            "card_id": f"code:{store_id}-{i % 200}", "program_id": program, "account": account, "kind": kind, "amount": amount,
            "sale_id": f"{store_id}-sale-{i // 4}", "ref_event_id": None, "rules_version": "bench", "payload": canonical({}),
            "prev_hash": prev,
        }
        ev["hash"] = prev = event_hash(ev)
        rows.append(ev)
    return rows


def start_servers(db: str, n: int) -> list[tuple[subprocess.Popen[bytes], str]]:
    out = []
    for _ in range(n):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "terminal.cli", "server", "--db", db, "--port", str(port)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
        out.append((proc, f"http://127.0.0.1:{port}"))
    for proc, base in out:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("server did not start") from None
                time.sleep(0.05)
    return out


def run_threads(targets: list[threading.Thread]) -> float:
    t0 = time.perf_counter()
    for t in targets:
        t.start()
    for t in targets:
        t.join()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--terminals", type=int, default=50)
    ap.add_argument("--events", type=int, default=2000, help="events per terminal")
    ap.add_argument("--workers", type=int, default=2, help="server processes over the one database")
    ap.add_argument("--db", help="postgresql://... to use instead of a throwaway cluster")
    args = ap.parse_args()
    cluster = None if args.db else Cluster()
    db = args.db or (cluster.url if cluster else "")
    servers: list[tuple[subprocess.Popen[bytes], str]] = []
    try:
        store = ServerStore(db)
        tills = []
        for i in range(args.terminals):
            tid, token = store.add_terminal(f"store-{i:02d}", "till-1")
            tills.append((tid, token, chain(f"store-{i:02d}", "till-1", args.events)))
        total = args.terminals * args.events
        servers = start_servers(db, args.workers)
        errors: list[BaseException] = []

        # the tills are other machines: their JSON encoding is not the server's cost
        bodies = {tid: [json.dumps({"from_seq": k + 1, "events": rows[k:k + 500]}).encode() for k in range(0, len(rows), 500)]
                  for tid, _, rows in tills}

        def push(i: int, tid: str, token: str, rows: list[dict[str, Any]]) -> None:
            try:
                base = servers[i % len(servers)][1]
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
                    for body in bodies[tid]:
                        resp = http.post(f"/v1/terminals/{tid}/events", content=body)
                        resp.raise_for_status()
            except BaseException as exc:
                errors.append(exc)

        api_s = run_threads([threading.Thread(target=push, args=(i, *t)) for i, t in enumerate(tills)])
        if errors:
            raise errors[0]
        assert store.event_count() == total

        import psycopg

        cols = ["tid", *HASHED, "hash"]
        with psycopg.connect(db.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            conn.execute("CREATE TABLE raw_events (LIKE events INCLUDING ALL)")
        sql = f"INSERT INTO raw_events ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"

        def raw(tid: str, rows: list[dict[str, Any]]) -> None:
            try:
                with psycopg.connect(db.replace("postgresql+psycopg://", "postgresql://")) as conn:
                    for k in range(0, len(rows), 500):
                        with conn.cursor() as cur:
                            cur.executemany(sql, [(tid, *[r[c] for c in cols[1:]]) for r in rows[k:k + 500]])
                        conn.commit()
            except BaseException as exc:
                errors.append(exc)

        raw_s = run_threads([threading.Thread(target=raw, args=(tid, rows)) for tid, _, rows in tills])
        if errors:
            raise errors[0]
        store.close()
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait()
        if cluster:
            cluster.stop()

    out = {
        "terminals": args.terminals,
        "events": total,
        "server_processes": args.workers,
        "raw_insert_connections": args.terminals,
        "seconds": round(api_s, 3),
        "events_per_s": round(total / api_s),
        "raw_insert_events_per_s": round(total / raw_s),
        "ratio": round(raw_s / api_s, 3),
    }
    print(f"{args.terminals} terminals pushed {total} events in {api_s:.2f} s through {args.workers} server process(es); "
          f"raw batched INSERT over {args.terminals} connections took {raw_s:.2f} s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
