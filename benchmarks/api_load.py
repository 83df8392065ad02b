"""API load benchmark: customer lookups over HTTP on 1M customers, against a hello-world route
of the same server.

Generates (once, cached in benchmarks/data/api_<customers>_<activities>/<hash>/) the Parquet
tables a run has, in DuckDB SQL: CustomerProfile (15 columns), AlternateKey (a crm key for
every customer, a web key for 60%), CustomerAttributes (12 measures), SegmentMembership,
Enrichment (30%), Prediction (50%) and UnifiedActivity. Then:
1. builds the serving store (`audience.serving.build_store`) into a run of a scratch workspace,
   in a child process (time, peak RSS, store size);
2. optionally (--compare-sqlite) times in-process point reads of the same customer JSON from
   the LMDB store and from an indexed SQLite table (one connection, no HTTP);
3. starts the API as `audience serve` does (uvicorn, the `audience.api.app:app_from_env`
   factory, --workers processes, no schedule) plus GET /hello, returning {"hello": "world"},
   and a copy of the by-id route with its checks declared as FastAPI dependencies (to show
   what resolving them costs); the app is `bench_app` below. The access log is off (uvicorn's
   default logs every request; --access-log turns it on);
4. runs a load generator in its own process: --clients keep-alive HTTP/1.1 connections, each
   sending its next request when the previous answer is complete (asyncio protocols on uvloop,
   no HTTP library: it does little more than write and scan bytes). Each lookup asks for a
   random existing customer with an API key (viewer): by CustomerId (GET
   /api/v1/customers/{id}) and by source key (GET /api/v1/customers/lookup?source=crm&
   table=contacts&key=C<n>), both answering the full customer. Scenarios alternate within
   each of --rounds rounds of --seconds each (after a 1 s warm-up per scenario that is not
   counted). A "null server" round (a bare asyncio server answering a fixed response)
   measures what the generator itself can do on this machine.

Reports requests/s (median of rounds), p50/p99 latency (all rounds' requests), errors (non-200
answers and failed connections), CPU use of the generator and the server's workers, and each
worker's RSS (anonymous memory vs mapped file pages: the store is mapped, shared between
workers through the page cache). Targets: each lookup at least half the hello-world rate of
the same run, p99 under 15 ms, no errors.

    .venv/bin/python benchmarks/api_load.py [--customers 1000000] [--activities 5000000]
        [--seconds 10] [--rounds 3] [--clients 50] [--workers 2] [--compare-sqlite]
        [--write-results] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hashlib
import json
import os
import random
import re
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# FastAPI reads the benchmark routes' annotations from this module's globals.
from fastapi import Depends, Request
from machine import code_version

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "RESULTS.md"
SEED = 20261128
TARGET_RATIO, TARGET_P99_MS = 0.5, 15.0
TABLES = (
    "CustomerProfile",
    "AlternateKey",
    "CustomerAttributes",
    "SegmentMembership",
    "Enrichment",
    "Prediction",
    "UnifiedActivity",
)
SCENARIOS = {
    "hello": "hello-world route (same server, no key check)",
    "by_id": "customer by CustomerId",
    "by_key": "customer by source key (crm.contacts)",
    "by_id_depends": "customer by CustomerId, checks as FastAPI dependencies (benchmark only)",
}
TARGETED = ("by_id", "by_key")  # the API's routes


# -- data --------------------------------------------------------------------------------------
def _word(words: str, expr: str) -> str:
    """SQL picking one of `words` by a deterministic integer expression."""
    items = words.split()
    quoted = ", ".join(f"'{w}'" for w in items)
    return f"[{quoted}][1 + (({expr}) % {len(items)})]"


def customer_id_sql(i: str) -> str:
    """SQL for customer i's CustomerId: a UUID-shaped md5 (see customer_id)."""
    h = f"md5('cust' || {i})"
    return (
        f"substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-' || substr({h}, 13, 4) || '-' || "
        f"substr({h}, 17, 4) || '-' || substr({h}, 21, 12)"
    )


def customer_id(i: int) -> str:
    """Customer i's CustomerId, as customer_id_sql makes it (so the generator needs no list)."""
    h = hashlib.md5(f"cust{i}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def generate(customers: int, activities: int, out: Path) -> dict[str, int]:
    """The run's tables as Parquet files in `out`; returns their row counts."""
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    cid = customer_id_sql("i")
    r = "(i * 2654435761)"  # a cheap deterministic scramble of the customer number
    first = "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Wei"
    last = "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Lee Perez Nguyen"
    city = "Springfield Riverside Franklin Greenville Bristol Clinton Fairview Salem Madison"
    queries = {
        "CustomerProfile": f"""
            SELECT {cid} AS CustomerId, NULL::VARCHAR AS PreviousCustomerId,
                {_word(first, r)} AS FirstName, {_word(last, f"{r} // 7")} AS LastName,
                FirstName || ' ' || LastName AS FullName,
                CASE WHEN i % 10 <> 0 THEN lower(FirstName) || '.' || lower(LastName) || i
                    || '@' || {_word("gmail.com yahoo.com outlook.com example.org", "i")} END
                    AS Email,
                CASE i % 3 WHEN 0 THEN '+1 (555) ' ELSE '555-' END
                    || lpad(((i // 10000) % 1000)::VARCHAR, 3, '0') || '-'
                    || lpad((i % 10000)::VARCHAR, 4, '0') AS Phone,
                ({r} % 9000 + 100)::VARCHAR || ' ' || {_word("Main Oak Pine Maple Elm", r)}
                    || ' St' AS Address,
                {_word(city, f"{r} // 3")} AS City, {_word("CA NY TX WA IL MA OR", r)} AS State,
                lpad(({r} % 99999)::VARCHAR, 5, '0') AS PostalCode,
                DATE '1950-01-01' + ({r} % 20000)::INTEGER AS BirthDate,
                {_word("female male other", f"{r} // 11")} AS Gender,
                'C' || i AS crm_contacts_contact_id,
                CASE WHEN i % 5 < 3 THEN 'W' || i END AS web_accounts_account_id
            FROM range({customers}) t(i)""",
        "AlternateKey": f"""
            SELECT s AS DataSourceName, e AS EntityName, v AS AlternateValue,
                '[]' AS KeyRing, {cid} AS CustomerId, md5(s || v) AS AlternateKeyId,
                s || '|' || e || '|' || v AS Identifier
            FROM (SELECT i, 'crm' AS s, 'contacts' AS e, 'C' || i AS v FROM range({customers}) t(i)
                  UNION ALL
                  SELECT i, 'web', 'accounts', 'W' || i FROM range({customers}) t(i)
                  WHERE i % 5 < 3)""",
        "CustomerAttributes": f"""
            SELECT {cid} AS CustomerId,
                round(({r} % 500000) / 100.0, 2) AS total_transaction_value,
                round(({r} % 40000) / 100.0, 2) AS average_transaction_value,
                ({r} % 60)::BIGINT AS number_of_transactions,
                ({r} % 720)::BIGINT AS time_since_last_purchase,
                ({r} % 5000)::BIGINT AS loyalty_points_earned,
                ({r} % 2000)::BIGINT AS loyalty_points_redeemed,
                ({r} % 3000)::BIGINT AS loyalty_points_balance,
                ({r} % 90)::BIGINT AS web_visits_30d,
                round(({r} % 1000) / 1000.0, 3) AS return_rate,
                ({r} % 12)::BIGINT AS categories_bought,
                round(({r} % 300000) / 100.0, 2) AS transaction_value_365d,
                ({r} % 365)::BIGINT AS days_since_last_visit
            FROM range({customers}) t(i)""",
        "SegmentMembership": f"""
            SELECT {cid} AS CustomerId, 'Audience' AS SegmentProvider,
                'Customer' AS SegmentMembershipType,
                to_json(list_filter(['big_spenders', 'loyal', 'lapsed', 'web_fans', 'vip',
                    'new', 'churn_risk', 'newsletter'], (s, n) -> ({r} >> n) % 3 = 0))::VARCHAR
                    AS Segments,
                {cid} || '|Audience|Customer|bench' AS Identifier,
                md5({cid}) AS SegmentMembershipId
            FROM range({customers}) t(i)""",
        "Enrichment": f"""
            SELECT {cid} AS CustomerId, 'geo' AS EnrichmentProvider, 'region' AS EnrichmentType,
                json_object('region', {_word("west east north south", r)})::VARCHAR
                    AS "Values", md5('e' || i) AS EnrichmentId, {cid} || '|geo' AS Identifier
            FROM range({customers}) t(i) WHERE i % 10 < 3""",
        "Prediction": f"""
            SELECT {cid} AS CustomerId, 'Audience' AS ModelProvider, 'churn' AS Model,
                json_object('score', round(({r} % 1000) / 1000.0, 3))::VARCHAR AS "Values",
                md5('p' || i) AS PredictionId, {cid} || '|churn' AS Identifier
            FROM range({customers}) t(i) WHERE i % 2 = 0""",
        "UnifiedActivity": f"""
            SELECT {customer_id_sql(f"(j * 7919) % {customers}")} AS CustomerId,
                t || '|' || j AS ActivityId, 'shop.' || lower(t) AS SourceEntityName,
                j::VARCHAR AS SourceActivityId, t AS ActivityType,
                TIMESTAMP '2026-01-31 12:00:00' - INTERVAL (j * 7 % 94608000) SECOND
                    AS ActivityTimeStamp,
                CASE t WHEN 'SalesOrder' THEN 'Order ' || j END AS Title,
                NULL::VARCHAR AS Description,
                CASE t WHEN 'WebVisit' THEN 'https://shop.example/p/' || j % 5000 END AS URL,
                CASE t WHEN 'SalesOrder' THEN json_object('amount', (j % 50000) / 100.0)
                    WHEN 'Loyalty' THEN json_object('points', j % 500)
                    ELSE json_object('page', 'product') END::VARCHAR AS SemanticData,
                epoch(ActivityTimeStamp)::BIGINT::VARCHAR AS RangeIndex,
                md5('a' || j) AS UnifiedActivityId
            FROM (SELECT j, ['SalesOrder', 'SalesOrder', 'Loyalty', 'WebVisit', 'WebVisit']
                  [1 + j % 5] AS t FROM range({activities}) t(j))""",
    }
    rows = {}
    for name, sql in queries.items():
        path = out / f"{name}.parquet"
        con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
        rows[name] = con.execute(f"SELECT count(*) FROM '{path}'").fetchone()[0]
    con.close()
    return rows


def data_for(customers: int, activities: int) -> tuple[Path, dict]:
    """The generated tables, made once (under a lock, so concurrent runs wait)."""
    code = (generate.__code__.co_code, generate.__code__.co_consts, customer_id_sql("i"))
    digest = hashlib.sha1(repr(code).encode()).hexdigest()[:12]
    out = DATA / f"api_{customers}_{activities}" / digest
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        meta_path = out / "meta.json"
        if meta_path.exists():
            return out, json.loads(meta_path.read_text())
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        rows = generate(customers, activities, out)
        meta = {"rows": rows, "generator": digest, "seconds": round(time.perf_counter() - t0, 1)}
        meta_path.write_text(json.dumps(meta))
    print(f"generated {rows} in {meta['seconds']} s: {out}", flush=True)
    return out, meta


# -- the store and the workspace ---------------------------------------------------------------
def make_workspace(work: Path) -> Path:
    """A project file whose workspace has one finished, current run (no tables yet)."""
    from audience.project import load_project
    from audience.runs import Workspace

    project_file = work / "audience.yaml"
    project_file.write_text("name: api_bench\nsources: []\n", encoding="utf-8")
    project = load_project(project_file)
    workspace = Workspace(project.workspace_path, project.keep_runs)
    run = workspace.start_run(["serving"], "duckdb", project.name)
    run.finish()
    return project_file


def build_child(data: str, project_file: str) -> None:
    """Build the store into the current run's folder; print timings and peak RSS as JSON."""
    from audience.project import load_project
    from audience.runs import Workspace
    from audience.serving import SERVING_DIR, build_store

    project = load_project(Path(project_file))
    run = Workspace(project.workspace_path).current()
    tables = {name: Path(data) / f"{name}.parquet" for name in TABLES}
    t0 = time.perf_counter()
    cpu0 = _cpu()
    built = build_store(run.path / SERVING_DIR, tables)
    built["wall"] = round(time.perf_counter() - t0, 2)
    built["cpu"] = round(_cpu() - cpu0, 1)
    built["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(built))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def compare_sqlite(project_file: Path, customers: int, reads: int = 200_000) -> dict[str, Any]:
    """In-process point reads of random customers' JSON: LMDB store vs an indexed SQLite table
    holding the same bytes (WITHOUT ROWID, key = CustomerId). Microseconds per read."""
    from audience.project import load_project
    from audience.runs import Workspace
    from audience.serving import ServingStore

    run = Workspace(load_project(project_file).workspace_path).current()
    store = ServingStore.open(run)
    path = run.path / "compare.sqlite"
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customer (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")
    t0 = time.perf_counter()
    # The store's own environment: LMDB allows one per file and process.
    env = store._env
    assert env is not None
    with env.begin(db=store._dbs["customer"]) as txn:
        batch = []
        for k, v in txn.cursor():
            batch.append((k.decode(), v))
            if len(batch) == 100_000:
                con.executemany("INSERT INTO customer VALUES (?, ?)", batch)
                batch = []
        con.executemany("INSERT INTO customer VALUES (?, ?)", batch)
    con.commit()
    load = time.perf_counter() - t0
    rng = random.Random(SEED)
    ids = [customer_id(rng.randrange(customers)) for _ in range(reads)]
    out: dict[str, Any] = {"reads": reads, "sqlite_load_s": round(load, 1)}
    for name, read in (
        ("lmdb", store.customer_json),
        ("sqlite", lambda c: con.execute("SELECT v FROM customer WHERE k = ?", (c,)).fetchone()),
    ):
        for c in ids[:10_000]:  # warm the page cache and the statement cache
            read(c)
        t0 = time.perf_counter()
        missing = sum(read(c) is None for c in ids)
        out[f"{name}_us"] = round((time.perf_counter() - t0) / reads * 1e6, 2)
        out[f"{name}_missing"] = missing
    con.close()
    store.close()
    out["sqlite_mb"] = round(path.stat().st_size / 2**20)
    path.unlink()
    return out


# -- the server --------------------------------------------------------------------------------
def bench_app() -> Any:
    """The API exactly as `audience serve` builds it, plus GET /hello on the same server, and
    the by-id lookup with its checks declared as FastAPI dependencies."""
    from audience.api import deps
    from audience.api.app import app_from_env
    from audience.api.routes import customers

    app = app_from_env()

    @app.get("/hello", include_in_schema=False)
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    # What FastAPI's dependency resolution costs: the by-id handler behind deps.py's key check
    # and run view declared as dependencies (the API's lookups call them directly).
    @app.get("/bench/depends/customers/{customer_id}", include_in_schema=False)
    async def by_id_depends(
        customer_id: str,
        request: Request,
        _principal: Any = Depends(deps.viewer),
        view: Any = Depends(deps.get_view),
    ) -> Any:
        return customers.customer_response(request.app.state.server, view, customer_id)

    # Routes are matched in order, each match costing a few microseconds: these two go first,
    # as the customer routes are first among the API's.
    for _ in range(2):
        app.router.routes.insert(0, app.router.routes.pop())
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(project_file: Path, port: int, workers: int, access_log: bool) -> Any:
    # The access log is written at level info: that level with it, warning without.
    level = "info" if access_log else "warning"
    code = (
        "import uvicorn; uvicorn.run('api_load:bench_app', factory=True, host='127.0.0.1', "
        f"port={port}, workers={workers}, log_level={level!r}, access_log={access_log}, "
        f"app_dir={str(HERE)!r})"
    )
    env = {**os.environ, "AUDIENCE_PROJECT": str(project_file), "AUDIENCE_SCHEDULE": "0"}
    # uvicorn writes its access log to stdout (to /dev/null here); errors go to stderr.
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("the API server did not start")
    # Every worker must be up before measuring: each answers /hello once it is.
    time.sleep(2)
    return process


def workers_of(pid: int) -> list[int]:
    """uvicorn's worker processes: children of its supervisor (not multiprocessing's
    resource tracker, which spawn may start too)."""
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if b"resource_tracker" not in _cmdline(c)]


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all processes), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    out = {}
    for field in ("VmRSS", "RssAnon", "RssFile"):
        found = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
        out[field] = round(int(found.group(1)) / 1024, 1) if found else 0.0
    return out


# -- the load generator ------------------------------------------------------------------------
class _Client(asyncio.Protocol):
    """One keep-alive connection: a request, its complete answer, the next request."""

    def __init__(self, load: _Load):
        self.load = load
        self.buffer = b""
        self.need = -1
        self.status = 0
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        if self.load.stopping:
            assert self.transport is not None
            self.transport.close()
            return
        self.sent = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.load.request())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            self.status = int(head[9:12])
            at = head.find(b"content-length:")
            if at < 0:
                self.load.failed += 1
                assert self.transport is not None
                self.transport.close()
                return
            eol = head.find(b"\r\n", at)
            length = int(head[at + 15 : eol if eol >= 0 else None])
            self.need = end + 4 + length
        if len(self.buffer) < self.need:
            return
        self.load.done(self.status, time.perf_counter() - self.sent)
        self.buffer = self.buffer[self.need :]
        self.need = -1
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.load.stopping:
            self.load.failed += 1
        self.load.closed += 1


class _Load:
    def __init__(self, scenario: str, customers: int, token: str):
        self.scenario = scenario
        self.customers = customers
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self.rng = random.Random(SEED)
        self.stopping = False
        self.counting = False
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.failed = 0
        self.closed = 0

    def request(self) -> bytes:
        if self.scenario == "hello":
            path = b"/hello"
        elif self.scenario == "null":
            path = b"/"
        else:
            i = self.rng.randrange(self.customers)
            if self.scenario == "by_id":
                path = f"/api/v1/customers/{customer_id(i)}".encode()
            elif self.scenario == "by_id_depends":
                path = f"/bench/depends/customers/{customer_id(i)}".encode()
            else:
                path = f"/api/v1/customers/lookup?source=crm&table=contacts&key=C{i}".encode()
        return b"GET " + path + b" HTTP/1.1\r\nHost: bench\r\n" + self.auth + b"\r\n"

    def done(self, status: int, seconds: float) -> None:
        if self.counting:
            self.latencies.append(seconds)
            self.statuses[status] = self.statuses.get(status, 0) + 1


async def _drive(
    port: int, load: _Load, clients: int, seconds: float, server: list[int]
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    transports = []
    for _ in range(clients):
        transport, _protocol = await loop.create_connection(
            lambda: _Client(load), "127.0.0.1", port
        )
        transports.append(transport)
        # Clients arrive over time, not all in one burst: a burst is accepted mostly by
        # whichever worker wakes first, and stays there (keep-alive).
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)  # warm-up, not counted
    load.counting = True
    cpu0, t0 = _cpu(), time.perf_counter()
    server0 = [process_cpu(p) for p in server]
    busy0 = machine_busy()
    await asyncio.sleep(seconds)
    busy = machine_busy() - busy0
    load.counting = False
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    server_cpu = [process_cpu(p) - c for p, c in zip(server, server0, strict=True)]
    load.stopping = True
    await asyncio.sleep(0.2)
    for transport in transports:
        transport.close()
    return {
        "requests": len(load.latencies),
        "seconds": wall,
        "rps": len(load.latencies) / wall,
        "latencies_ms": [round(x * 1000, 3) for x in load.latencies],
        "statuses": load.statuses,
        "failed": load.failed,
        "generator_cpu": cpu / wall,  # 1.0 = one core busy all the time
        "server_cpu": sum(server_cpu) / wall,
        "worker_cpu": [round(c / wall, 2) for c in server_cpu],
        # Everything else the machine did meanwhile (other programs: a disturbed measurement).
        "other_cpu": max(0.0, (busy - sum(server_cpu) - cpu) / wall),
    }


def load_child(
    port: str, scenario: str, seconds: str, clients: str, customers: str, server: str
) -> None:
    import uvloop

    token = sys.stdin.readline().strip()
    load = _Load(scenario, int(customers), token)
    pids = [int(p) for p in server.split(",") if p]
    result = uvloop.run(_drive(int(port), load, int(clients), float(seconds), pids))
    json.dump(result, sys.stdout)


def run_load(
    port: int,
    scenario: str,
    args: argparse.Namespace,
    token: str,
    server: list[int] | None = None,
) -> dict[str, Any]:
    """The generator in its own process; its result as a dict. `server`: processes whose CPU
    time it measures while counting."""
    pids = ",".join(str(p) for p in server or [])
    args = [str(port), scenario, str(args.seconds), str(args.clients), str(args.customers), pids]
    done = subprocess.run(
        [sys.executable, __file__, "--child", "load", *args],
        input=token + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


class _NullServer(asyncio.Protocol):
    """Answers every request with a fixed response: the generator's ceiling on this machine."""

    ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 17\r\ncontent-type: application/json\r\n\r\n"
    BODY = b'{"hello":"world"}'

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            self.buffer = self.buffer[end + 4 :]
            self.transport.write(self.ANSWER + self.BODY)  # type: ignore[attr-defined]


def null_server_child(port: str) -> None:
    import uvloop

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_NullServer, "127.0.0.1", int(port))
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


# -- measuring ---------------------------------------------------------------------------------
def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def check_answers(port: int, token: str, customers: int) -> int:
    """Lookups by id and by key give the same, right customer (a sample); mismatches."""
    import httpx

    rng = random.Random(SEED + 1)
    wrong = 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=headers) as client:
        for _ in range(200):
            i = rng.randrange(customers)
            by_id = client.get(f"/customers/{customer_id(i)}")
            by_key = client.get(
                "/customers/lookup", params={"source": "crm", "table": "contacts", "key": f"C{i}"}
            )
            ok = by_id.status_code == by_key.status_code == 200 and by_id.json() == by_key.json()
            ok = ok and by_id.json()["profile"]["crm_contacts_contact_id"] == f"C{i}"
            wrong += not ok
    return wrong


def measure(args: argparse.Namespace, project_file: Path) -> dict[str, Any]:
    from audience.api.auth import KeyStore
    from audience.project import load_project

    workspace = load_project(project_file).workspace_path
    _principal, token = KeyStore(workspace / "api_keys.sqlite").create("bench", "viewer")
    results: dict[str, Any] = {"rounds": {s: [] for s in ["null", *SCENARIOS]}}

    null_port = free_port()
    null = subprocess.Popen([sys.executable, __file__, "--child", "null", str(null_port)])
    time.sleep(1.0)
    try:
        got = run_load(null_port, "null", args, token, [null.pid])
        results["rounds"]["null"].append(got)
        print(f"null server: {got['rps']:,.0f} req/s", flush=True)
    finally:
        null.terminate()
        null.wait()

    port = free_port()
    server = start_server(project_file, port, args.workers, args.access_log)
    try:
        workers = workers_of(server.pid)
        results["wrong_answers"] = check_answers(port, token, args.customers)
        for r in range(args.rounds):
            order = list(SCENARIOS) if r % 2 == 0 else list(SCENARIOS)[::-1]
            for scenario in order:
                got = run_load(port, scenario, args, token, workers)
                results["rounds"][scenario].append(got)
                p99 = percentile(sorted(got["latencies_ms"]), 99)
                print(
                    f"round {r + 1} {scenario}: {got['rps']:,.0f} req/s, p99 {p99:.2f} ms, "
                    f"statuses {got['statuses']}, failed {got['failed']}, "
                    f"CPU per worker {got['worker_cpu']}, other programs {got['other_cpu']:.2f}",
                    flush=True,
                )
        results["memory"] = {p: memory(p) for p in workers}
        results["workers"] = len(workers)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


# -- reporting ---------------------------------------------------------------------------------
def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n:,}"


def summarise(rounds: list[dict]) -> dict[str, Any]:
    latencies = sorted(x for r in rounds for x in r["latencies_ms"])
    errors = sum(r["failed"] for r in rounds) + sum(
        n for r in rounds for status, n in r["statuses"].items() if int(status) != 200
    )
    return {
        "rps": statistics.median(r["rps"] for r in rounds),
        "each": [r["rps"] for r in rounds],
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] if latencies else float("nan"),
        "requests": len(latencies),
        "errors": errors,
        "generator_cpu": statistics.median(r["generator_cpu"] for r in rounds),
        "server_cpu": statistics.median(r["server_cpu"] for r in rounds),
        "other_cpu": max(r["other_cpu"] for r in rounds),
    }


def report(
    args: argparse.Namespace, meta: dict, built: dict, results: dict, compared: dict | None
) -> tuple[str, bool]:
    import lmdb
    import uvicorn
    from machine import describe

    stats = {s: summarise(results["rounds"][s]) for s in results["rounds"]}
    hello = stats["hello"]["rps"]
    head = ["route", "req/s (median)", "vs hello", "p50 ms", "p99 ms", "max ms", "requests",
            "errors", "server CPU (cores)", "server CPU µs per request", "generator CPU (cores)",
            "other programs' CPU (cores, max)", "target", "met"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    missed = []
    for scenario, what in SCENARIOS.items():
        s = stats[scenario]
        ratio = s["rps"] / hello
        target, met = "", ""
        if scenario in TARGETED:
            checks = [ratio >= TARGET_RATIO, s["p99"] < TARGET_P99_MS, s["errors"] == 0]
            missed += [
                f"{scenario} {n}"
                for n, ok in zip(("rate", "p99", "errors"), checks, strict=True)
                if not ok
            ]
            target = f">= {TARGET_RATIO:g}x, p99 < {TARGET_P99_MS:g} ms, 0 errors"
            met = ", ".join("yes" if c else "no" for c in checks)
        cells = [
            what, f"{s['rps']:,.0f}", f"{ratio:.2f}x", f"{s['p50']:.2f}", f"{s['p99']:.2f}",
            f"{s['max']:.1f}", f"{s['requests']:,}", str(s["errors"]), f"{s['server_cpu']:.2f}",
            f"{s['server_cpu'] / s['rps'] * 1e6:.0f}", f"{s['generator_cpu']:.2f}",
            f"{s['other_cpu']:.2f}", target, met,
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    null = stats["null"]
    rows = meta["rows"]
    memory = results["memory"]
    mem = "; ".join(
        f"worker {i + 1}: {m['VmRSS']:.0f} MB ({m['RssAnon']:.0f} MB own memory, "
        f"{m['RssFile']:.0f} MB mapped file pages)"
        for i, m in enumerate(memory.values())
    )
    every = "; ".join(
        f"{s} [" + ", ".join(f"{x:,.0f}" for x in stats[s]["each"]) + "]" for s in SCENARIOS
    )
    entries = ", ".join(f"{k} {v:,}" for k, v in built["entries"].items())
    build_steps = ", ".join(f"{k} {v:.1f} s" for k, v in built["seconds_by_database"].items())
    text = [
        f"## API load, {label(rows['CustomerProfile'])} customers (lookups over HTTP)",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; code: {code_version()}; load "
        f"average before the run: {args.load}",
        f"- Machine: {describe(f', uvicorn {uvicorn.__version__}, LMDB {lmdb.version()}')}",
        f"- Command: `{args.command}`",
        f"- Data (`benchmarks/api_load.py`, generator {meta['generator']}, {meta['seconds']} s "
        f"to generate): {rows['CustomerProfile']:,} customers (15 profile columns, 12 measures, "
        f"segments, 30% with an enrichment, 50% with a prediction), "
        f"{rows['AlternateKey']:,} source keys, {rows['UnifiedActivity']:,} activities.",
        f"- Serving store build (`build_store`, child process): {built['wall']:.1f} s wall, "
        f"{built['cpu']:.1f} s CPU, peak RSS {built['peak_rss_mb']:,} MB; "
        f"{built['bytes'] / 2**20:,.0f} MB on disk; entries: {entries}; by database: "
        f"{build_steps}.",
        f"- Server: the API as `audience serve` runs it (uvicorn, "
        f"`app_from_env` factory, {results['workers']} workers, httptools + uvloop, access log "
        f"{'on' if args.access_log else 'off'}) plus GET /hello (`async def` returning "
        '`{"hello": "world"}`) on the same server. Each lookup: a random one of all customers, '
        "`Authorization: Bearer` with a viewer key, the full customer JSON back (about "
        f"{built['bytes'] / max(1, built['entries']['customer']) / 1024:.1f} KB of store per "
        "customer).",
        f"- Load: one generator process (asyncio protocols on uvloop), {args.clients} keep-alive "
        f"connections with one request in flight each, {args.rounds} rounds of "
        f"{args.seconds:g} s per route (scenario order alternating), 1 s warm-up each. Server "
        "and generator share the machine's cores; \"other programs' CPU\" is what the rest of "
        "the machine used meanwhile (near 0 for an undisturbed measurement). Generator "
        "ceiling: against a bare asyncio "
        f"server with a fixed answer it made {null['rps']:,.0f} req/s using "
        f"{null['generator_cpu']:.2f} cores, so at the rates below it is not the limit.",
        "",
        *lines,
        "",
        f"Targets (each lookup >= {TARGET_RATIO:g}x hello-world's req/s, p99 < "
        f"{TARGET_P99_MS:g} ms, no errors): "
        + ("met" if not missed else "not met: " + ", ".join(missed))
        + ".",
        "",
        "The last row is a route that exists only in this benchmark: the by-CustomerId "
        "handler with deps.py's key check and run view declared as FastAPI dependencies "
        "(`Depends`), as API routes usually have them; the lookups call the same two functions "
        "directly, and the difference to the by-id row is what resolving them costs.",
        "",
        f"Req/s of each round: {every}. Sampled answers checked (by id == by key == the "
        f"customer asked for): {results['wrong_answers']} wrong of 200. Server memory after "
        f"the run: {mem}.",
    ]
    if compared:
        text += [
            "",
            f"In-process point reads of the customer JSON ({compared['reads']:,} random "
            f"customers, one thread, no HTTP): LMDB {compared['lmdb_us']:.1f} µs, "
            f"indexed SQLite (WITHOUT ROWID, {compared['sqlite_mb']:,} MB) "
            f"{compared['sqlite_us']:.1f} µs per read.",
        ]
    return "\n".join(text) + "\n", not missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=5_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--access-log", action="store_true", help="uvicorn's per-request log")
    parser.add_argument("--compare-sqlite", action="store_true")
    parser.add_argument("--write-results", action="store_true", help="into RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the workspace")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        return {"build": build_child, "load": load_child, "null": null_server_child}[kind](*rest)
    args.command = " ".join([".venv/bin/python", "benchmarks/api_load.py", *sys.argv[1:]])
    args.load = " ".join(Path("/proc/loadavg").read_text().split()[:3])

    data, meta = data_for(args.customers, args.activities)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=data))
    try:
        project_file = make_workspace(work)
        done = subprocess.run(
            [sys.executable, __file__, "--child", "build", str(data), str(project_file)],
            capture_output=True,
            text=True,
            check=True,
        )
        built = json.loads(done.stdout)
        print(f"store built in {built['wall']} s: {built['entries']}", flush=True)
        compared = compare_sqlite(project_file, args.customers) if args.compare_sqlite else None
        if compared:
            print(f"in-process reads: {compared}", flush=True)
        results = measure(args, project_file)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    section, met = report(args, meta, built, results, compared)
    print("\n" + section)
    if args.write_results:
        from machine import write_section

        write_section(section)
        print(f"written to {RESULTS}")
    if args.keep:
        print(f"workspace kept in {work}")


if __name__ == "__main__":
    main()
