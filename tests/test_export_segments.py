"""Segment exports on the hand-made shop (tests/analytics_helpers.py): files, SQL tables, HTTP
batches with retries against a local receiver, changes across runs, and errors."""

from __future__ import annotations

import csv
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from analytics_helpers import ORDERS, shop_project
from sqlalchemy.pool import NullPool
from unify_helpers import rows, run, write_data

from audience.export import ExportError
from audience.export.config import SegmentExport
from audience.export.segments import SegmentExportError, export_segment, state_path
from audience.project import Project
from audience.runs import Run

MEASURES = [{"name": "ttv", "template": "total_transaction_value"}]
SEGMENTS = [
    {"name": "big", "rules": ["ttv > 100"]},  # C1 (ttv 180) and C2 (ttv 200)
    {"name": "everyone", "rules": ["ttv >= 0"]},  # C1-C4
]
FIELDS = ["FirstName", "Email", "ttv"]
PIPELINE_EXPORT = {
    "name": "big_csv",
    "kind": "segment",
    "segment": "big",
    "fields": FIELDS,
    "file": {"path": "out/big.csv"},
}
POSTGRES_URL = os.environ.get(
    "AUDIENCE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def segment_export(**settings: Any) -> SegmentExport:
    return SegmentExport(**{"kind": "segment", "when": "manual", **settings})


def customer_ids(shop_run: Run) -> dict[str, str]:
    """CRM contact id (C1...) -> CustomerId."""
    return {r["AlternateValue"]: r["CustomerId"] for r in rows(shop_run, "AlternateKey")}


def expected_big(shop_run: Run) -> list[dict[str, Any]]:
    ids = customer_ids(shop_run)
    found = [
        {"CustomerId": ids["C1"], "FirstName": "Ann", "Email": "ann@x.com", "ttv": 180.0},
        {"CustomerId": ids["C2"], "FirstName": "Bob", "Email": "bob@x.com", "ttv": 200.0},
    ]
    return sorted(found, key=lambda r: r["CustomerId"])


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Run]:
    root = tmp_path_factory.mktemp("export_segments")
    project = shop_project(root, MEASURES, SEGMENTS, exports=[PIPELINE_EXPORT])
    return project, run(project)


# ---------------------------------------------------------------------------------- file


def test_csv_export_runs_in_the_pipeline_and_reports(shop: tuple[Project, Run]) -> None:
    project, first = shop
    with (project.root / "out" / "big.csv").open(encoding="utf-8", newline="") as f:
        lines = list(csv.reader(f))
    ids = customer_ids(first)
    assert lines == [["CustomerId", "FirstName", "Email", "ttv"]] + sorted(
        [[ids["C1"], "Ann", "ann@x.com", "180.0"], [ids["C2"], "Bob", "bob@x.com", "200.0"]]
    )
    saved = json.loads((first.path / "run_results.json").read_text(encoding="utf-8"))
    report = saved["stages"]["exports"]["detail"]["big_csv"]
    assert report == first.results["stages"]["exports"]["detail"]["big_csv"]
    assert report.pop("seconds") >= 0
    assert report == {
        "segment": "big",
        "mode": "full",
        "members": 2,
        "entered": 2,
        "left": 0,
        "target": "file out/big.csv",
        "batches": 1,
        "sent": 2,
        "failed_batches": [],
    }
    assert sorted(os.listdir(project.root / "out")) == ["big.csv"]  # no temporary files left
    delivered = pq.read_table(state_path(project, "big_csv")).column("CustomerId").to_pylist()
    assert delivered == [r["CustomerId"] for r in expected_big(first)]


def test_parquet_export_keeps_types(shop: tuple[Project, Run]) -> None:
    project, first = shop
    config = segment_export(
        name="big_parquet", segment="big", fields=FIELDS, file={"path": "out/big.parquet"}
    )
    report = export_segment(project, first, config)
    table = pq.read_table(project.root / "out" / "big.parquet")
    assert table.column_names == ["CustomerId", *FIELDS]
    assert table.to_pylist() == expected_big(first)
    assert (report["members"], report["sent"], report["target"]) == (2, 2, "file out/big.parquet")


def test_unknown_field_names_the_closest_and_sends_nothing(shop: tuple[Project, Run]) -> None:
    project, first = shop
    config = segment_export(
        name="typo", segment="big", fields=["FirstName", "Emial"], file={"path": "out/typo.csv"}
    )
    with pytest.raises(ExportError) as info:
        export_segment(project, first, config)
    message = str(info.value)
    assert message.startswith("exports.typo.fields: unknown field 'Emial'; did you mean 'Email'?")
    assert "Known fields: crm_contacts_contact_id, Email, FirstName, LastName" in message
    assert "ttv" in message
    assert not (project.root / "out" / "typo.csv").exists()
    assert not state_path(project, "typo").exists()


# ----------------------------------------------------------------------------------- SQL


def read_sql(url: str, table: str) -> tuple[list[dict[str, Any]], set[str]]:
    """The table's rows by CustomerId, and the tables in the database."""
    if url.startswith("duckdb"):
        con = duckdb.connect(url.removeprefix("duckdb:///"))
        try:
            rel = con.sql(f'SELECT * FROM "{table}" ORDER BY CustomerId')
            found = [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
            return found, {r[0] for r in con.sql("SHOW TABLES").fetchall()}
        finally:
            con.close()
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text(f'SELECT * FROM "{table}" ORDER BY "CustomerId"'))
            found = [dict(r._mapping) for r in result]
            return found, set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, shop: tuple[Project, Run]) -> Iterator[str]:
    """A database URL (the files relative to the project, as a user would write them)."""
    project, _ = shop
    name = f"members_{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        yield f"sqlite:///{name}.db"
        return
    if request.param == "duckdb":
        yield f"duckdb:///{name}.duckdb"
        return
    engine = sa.create_engine(POSTGRES_URL, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except Exception as e:  # any failure to reach it: skip, saying why
        engine.dispose()
        reason = " ".join(str(getattr(e, "orig", None) or e).split())
        pytest.skip(f"AUDIENCE_TEST_POSTGRES_URL: cannot reach PostgreSQL: {reason}")
    try:
        yield POSTGRES_URL
    finally:
        with engine.begin() as conn:
            for table in ("segment_out", "segment_out__new"):
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()


def test_sql_export_replaces_the_table(shop: tuple[Project, Run], database: str) -> None:
    project, first = shop
    absolute = database
    if not database.startswith("postgresql"):
        scheme, file = database.split(":///")
        absolute = f"{scheme}:///{project.root / file}"
    target = {"url": database, "table": "segment_out"}
    everyone = segment_export(name="sql_all", segment="everyone", sql=target)
    assert export_segment(project, first, everyone)["sent"] == 4
    assert len(read_sql(absolute, "segment_out")[0]) == 4

    # The second export replaces the content: only big's two members, with their fields.
    big = segment_export(name="sql_big", segment="big", fields=FIELDS, sql=target)
    report = export_segment(project, first, big)
    found, tables = read_sql(absolute, "segment_out")
    assert found == expected_big(first)
    assert "segment_out__new" not in tables
    assert (report["sent"], report["batches"], report["failed_batches"]) == (2, 1, [])
    assert report["target"].startswith("sql ") and report["target"].endswith(" table segment_out")


def test_sql_export_failure_keeps_the_state(shop: tuple[Project, Run]) -> None:
    project, first = shop
    config = segment_export(
        name="sql_bad",
        segment="big",
        mode="changes",
        sql={"url": "sqlite:///no/such/folder/x.db", "table": "t"},
    )
    with pytest.raises(SegmentExportError) as info:
        export_segment(project, first, config)
    assert "exports.sql_bad: delivered 0 of 2 rows to sql sqlite:///" in str(info.value)
    assert "unable to open database file" in str(info.value)
    assert info.value.report["failed_batches"][0]["batch"] == 1
    assert not state_path(project, "sql_bad").exists()


# ---------------------------------------------------------------------------------- HTTP


Plan = Callable[[int, int], str]  # (batch, attempt) -> ok | drop | slow | 429 | 5xx code


class Receiver:
    """A receiver that keeps each batch once per Idempotency-Key, as a careful one would."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.lock = threading.Lock()
        self.attempts: dict[int, int] = {}
        self.kept: dict[str, dict[str, Any]] = {}  # Idempotency-Key -> body
        self.headers: list[dict[str, str]] = []
        self.url = ""

    def members(self) -> list[str]:
        return sorted(m["CustomerId"] for body in self.kept.values() for m in body["members"])

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(request.rfile.read(int(request.headers["Content-Length"])))
        with self.lock:
            attempt = self.attempts[body["batch"]] = self.attempts.get(body["batch"], 0) + 1
            self.headers.append(dict(request.headers))
        action = self.plan(body["batch"], attempt)
        if action == "drop":  # the connection closes without an answer
            request.close_connection = True
            return
        if action in ("ok", "slow"):
            with self.lock:
                self.kept.setdefault(request.headers["Idempotency-Key"], body)
            if action == "slow":  # kept, but the answer comes after the sender gave up
                time.sleep(1.2)
            code = 200
        else:
            code = int(action)
        try:
            request.send_response(code)
            if code == 429:
                request.send_header("Retry-After", "0")
            request.send_header("Content-Length", "0")
            request.end_headers()
        except OSError:
            pass  # the sender timed out and left


Start = Callable[[Plan], Receiver]


@pytest.fixture
def receiver() -> Iterator[Start]:
    servers: list[ThreadingHTTPServer] = []

    def start(plan: Plan) -> Receiver:
        state = Receiver(plan)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                state.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.server_address[1]}/members"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_http_retries_deliver_every_member_once(shop: tuple[Project, Run], receiver: Start) -> None:
    project, first = shop
    first_attempt_fails = {1: "drop", 2: "503", 3: "429", 4: "slow"}
    server = receiver(lambda batch, attempt: first_attempt_fails[batch] if attempt == 1 else "ok")
    config = segment_export(
        name="hook",
        segment="everyone",
        fields=["FirstName"],
        http={
            "url": server.url + "?token=secret",
            "headers": {"Authorization": "Bearer t0k"},
            "batch_size": 1,
            "retries": 3,
            "timeout_s": 0.5,
        },
    )
    waits: list[float] = []
    report = export_segment(project, first, config, sleep=waits.append)

    ids = customer_ids(first)
    assert server.members() == sorted(ids.values())  # each member exactly once
    assert server.attempts == {1: 2, 2: 2, 3: 2, 4: 2}  # every batch was retried once
    # Batch 4 was kept on its first attempt and its retry dropped by its key.
    assert len(server.kept) == 4 and len(server.headers) == 8
    keys = sorted({h["Idempotency-Key"] for h in server.headers})
    assert keys == [f"{first.id}-hook-{i}" for i in range(1, 5)]
    assert {h["Authorization"] for h in server.headers} == {"Bearer t0k"}
    body = server.kept[f"{first.id}-hook-2"]
    assert {k: v for k, v in body.items() if k != "members"} == {
        "export": "hook",
        "segment": "everyone",
        "run_id": first.id,
        "mode": "full",
        "batch": 2,
        "batches": 4,
    }
    names = {m["FirstName"] for b in server.kept.values() for m in b["members"]}
    assert names == {"Ann", "Bob", "Cat", "Dan"}
    # Retry-After: 0 on the 429 is obeyed; the others back off 0.25-0.5 s (first retry).
    assert sorted(waits)[0] == 0 and all(0.25 <= w <= 0.5 for w in sorted(waits)[1:])
    assert len(waits) == 4
    assert report["target"] == f"http {server.url}"  # the query string (a token) not shown
    report.pop("seconds")
    assert report == {
        "segment": "everyone",
        "mode": "full",
        "members": 4,
        "entered": 4,
        "left": 0,
        "target": f"http {server.url}",
        "batches": 4,
        "sent": 4,
        "failed_batches": [],
    }


def test_http_failed_batch_is_reported_and_sent_again(
    shop: tuple[Project, Run], receiver: Start
) -> None:
    project, first = shop
    broken = {"on": True}
    server = receiver(lambda batch, attempt: "500" if broken["on"] and batch == 3 else "ok")
    http = {"url": server.url, "batch_size": 1, "retries": 2}
    config = segment_export(name="flaky", segment="everyone", mode="changes", http=http)
    waits: list[float] = []
    with pytest.raises(SegmentExportError) as info:
        export_segment(project, first, config, sleep=waits.append)
    assert str(info.value) == (
        f"exports.flaky: delivered 3 of 4 rows to http {server.url}; 1 of 4 batches failed: "
        "batch 3 after 3 attempts: HTTP 500 Internal Server Error. The next export sends them "
        "again."
    )
    assert isinstance(info.value, ExportError)  # what the exports stage expects
    report = info.value.report
    assert (report["sent"], report["batches"], report["entered"]) == (3, 4, 4)
    assert report["failed_batches"] == [
        {"batch": 3, "error": "HTTP 500 Internal Server Error", "attempts": 3}
    ]
    assert server.attempts == {1: 1, 2: 1, 3: 3, 4: 1} and len(waits) == 2
    assert not state_path(project, "flaky").exists()  # so everyone is sent again

    broken["on"] = False
    report = export_segment(project, first, config, sleep=waits.append)
    assert (report["sent"], report["entered"], report["failed_batches"]) == (4, 4, [])
    assert server.attempts == {1: 2, 2: 2, 3: 4, 4: 2}
    # Same run, same keys: the receiver keeps batch 3 now and drops the repeats.
    assert server.members() == sorted(customer_ids(first).values())
    assert all(m["change"] == "entered" for b in server.kept.values() for m in b["members"])

    report = export_segment(project, first, config, sleep=waits.append)
    assert (report["entered"], report["left"], report["batches"], report["sent"]) == (0, 0, 0, 0)
    assert server.attempts == {1: 2, 2: 2, 3: 4, 4: 2}  # nothing changed, nothing sent


def test_http_receiver_that_rejects_is_not_retried(
    shop: tuple[Project, Run], receiver: Start
) -> None:
    project, first = shop
    server = receiver(lambda batch, attempt: "401")
    http = {"url": server.url, "batch_size": 1, "retries": 5}
    config = segment_export(name="denied", segment="everyone", http=http)
    with pytest.raises(SegmentExportError) as info:
        export_segment(project, first, config, sleep=lambda s: None)
    failed = info.value.report["failed_batches"]
    # Three refusals in a row: the fourth batch is not tried.
    assert [(f["batch"], f["attempts"]) for f in failed] == [(1, 1), (2, 1), (3, 1), (4, 0)]
    assert failed[0]["error"] == "HTTP 401 Unauthorized"
    assert server.attempts == {1: 1, 2: 1, 3: 1}


# ------------------------------------------------------------------------------- changes


def test_changes_across_runs(tmp_path: Path) -> None:
    export = {
        "name": "big_changes",
        "kind": "segment",
        "segment": "big",
        "mode": "changes",
        "fields": ["FirstName"],
        "file": {"path": "out/changes.csv"},
    }
    project = shop_project(tmp_path, MEASURES, SEGMENTS, exports=[export])

    def delivered(shop_run: Run) -> tuple[dict[str, Any], list[list[str]]]:
        report = shop_run.results["stages"]["exports"]["detail"]["big_changes"]
        with (tmp_path / "out" / "changes.csv").open(encoding="utf-8", newline="") as f:
            return report, list(csv.reader(f))

    first = run(project)
    ids = customer_ids(first)
    report, lines = delivered(first)
    assert (report["members"], report["entered"], report["left"], report["sent"]) == (2, 2, 0, 2)
    assert lines == [["CustomerId", "change", "FirstName"]] + sorted(
        [[ids["C1"], "entered", "Ann"], [ids["C2"], "entered", "Bob"]]
    )

    # C2 now spends 50 (leaves), C3 spends 500 (enters).
    orders = [{**o, "amount": "50.00"} if o["order_id"] == 4 else o for o in ORDERS]
    orders.append({**ORDERS[0], "order_id": 9, "contact_id": "C3", "amount": "500.00"})
    write_data(project.root, {"shop_orders": orders})
    second = run(project)
    report, lines = delivered(second)
    assert (report["members"], report["entered"], report["left"], report["sent"]) == (2, 1, 1, 2)
    assert lines == [
        ["CustomerId", "change", "FirstName"],
        [ids["C3"], "entered", "Cat"],
        [ids["C2"], "left", ""],
    ]

    third = run(project)
    report, lines = delivered(third)
    assert (report["members"], report["entered"], report["left"], report["sent"]) == (2, 0, 0, 0)
    assert lines == [["CustomerId", "change", "FirstName"]]
    state = pq.read_table(state_path(project, "big_changes")).column("CustomerId").to_pylist()
    assert state == sorted([ids["C1"], ids["C3"]])
