"""Segment exports: one segment's members, with chosen fields, to a file, a table or HTTP.

    mode full       every member of the segment in the run
    mode changes    who entered (with fields) and who left (CustomerId only) since this
                    export last delivered successfully; the first time, everyone enters

What an export last delivered is kept in `<workspace>/exports/<name>/delivered.parquet` (the
CustomerIds of the segment at that delivery). It is replaced only after a delivery fully
succeeded, so a failed delivery is sent again next time and a successful one never is.

Targets:
    file    a .csv or .parquet file, replaced atomically
    sql     a table in PostgreSQL, SQLite or DuckDB, replaced in one transaction
    http    JSON batches POSTed with retries and an Idempotency-Key per batch

The members are selected with embedded DuckDB over the run's Parquet tables (SegmentMembers,
CustomerProfile, CustomerAttributes), which works the same for DuckDB and Spark runs.
"""

from __future__ import annotations

import difflib
import email.utils
import http.client
import json
import math
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from audience.export import ExportError
from audience.export.config import SegmentExport
from audience.project import Project
from audience.runs import Run, RunError

# HTTP retries wait BACKOFF_BASE_S * 2**attempt (jittered), at most MAX_WAIT_S; a Retry-After
# header is obeyed up to MAX_WAIT_S too, so one slow receiver cannot stall a run for hours.
BACKOFF_BASE_S = 0.5
MAX_WAIT_S = 60.0
# After this many batches in a row fail for good the receiver is taken to be down and the
# remaining batches are not tried (each would otherwise wait through all its retries).
MAX_FAILED_IN_A_ROW = 3
SQL_BATCH_ROWS = 5000
CONNECT_TIMEOUT_S = 10

Sleep = Callable[[float], None]


class SegmentExportError(ExportError):
    """A delivery that did not fully succeed; `report` says what was delivered and what not."""

    def __init__(self, message: str, report: dict[str, Any]):
        super().__init__(message)
        self.report = report


def state_path(project: Project, name: str) -> Path:
    """The CustomerIds an export delivered last time it succeeded."""
    return project.workspace_path / "exports" / name / "delivered.parquet"


def export_segment(
    project: Project, run: Run, config: SegmentExport, *, sleep: Sleep = time.sleep
) -> dict[str, Any]:
    """Deliver `config.segment`'s members in `run` to the export's target.

    Returns the report stored in run_results.json: segment, mode, members (segment size),
    entered and left (since the last successful delivery), target, batches, sent (rows
    delivered), failed_batches and seconds. Raises ExportError for a configuration the data
    cannot satisfy (nothing is sent), and SegmentExportError (with `.report`) when the
    delivery failed in part or in full; the delivered-state is then left as it was.
    `sleep` is how HTTP retries wait (tests pass a fake).
    """
    started = time.perf_counter()
    where = f"exports.{config.name}"
    target = _describe_target(config, where)
    selection = _select(project, run, config, where)
    rows = selection.changes if config.mode == "changes" else selection.members

    if config.file is not None:
        delivery = _write_file(project.resolve(config.file.path), rows)
    elif config.sql is not None:
        delivery = _write_sql(project, config, rows)
    else:
        delivery = _post_batches(run, config, rows, sleep)

    report = {
        "segment": config.segment,
        "mode": config.mode,
        "members": selection.members.num_rows,
        "entered": selection.entered,
        "left": selection.left,
        "target": target,
        "batches": delivery.batches,
        "sent": delivery.sent,
        "failed_batches": delivery.failed,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if delivery.failed:
        raise SegmentExportError(_failure_message(where, target, rows.num_rows, delivery), report)
    _save_state(state_path(project, config.name), selection.members.select(["CustomerId"]))
    return report


# ----------------------------------------------------------------------------- selection


@dataclass
class Selection:
    members: pa.Table  # CustomerId + fields, every member, ordered by CustomerId
    changes: pa.Table  # CustomerId, change, fields: entered then left
    entered: int
    left: int


def _dataset(run: Run, name: str, where: str) -> pads.Dataset:
    try:
        # A Parquet file on DuckDB, a folder of part files on Spark.
        return pads.dataset(run.table_path(name), format="parquet")
    except RunError as e:
        raise ExportError(f"{where}: {e} (did the segments stage run?)") from None


def _resolve_fields(
    config: SegmentExport, where: str, profile: pa.Schema, attributes: pa.Schema
) -> list[tuple[str, str]]:
    """(table alias, column) for each requested field, profile fields before measures."""
    known: dict[str, str] = {}
    for alias, schema in (("a", attributes), ("p", profile)):
        known.update({n: alias for n in schema.names if n != "CustomerId"})
    resolved: list[tuple[str, str]] = []
    for name in config.fields:
        if name == "CustomerId" or (known.get(name), name) in resolved:
            continue  # always sent first; a repeat adds nothing
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ExportError(
                f"{where}.fields: unknown field '{name}'{hint} Known fields: "
                f"{', '.join(sorted(known, key=str.lower)) or 'none'}"
            )
        if name == "change" and config.mode == "changes":
            raise ExportError(f"{where}.fields: 'change' is the column that says entered or left")
        resolved.append((known[name], name))
    return resolved


def _select(project: Project, run: Run, config: SegmentExport, where: str) -> Selection:
    sizes = run.results.get("stages", {}).get("segments", {}).get("detail", {}).get("sizes")
    if isinstance(sizes, dict) and config.segment not in sizes:
        raise ExportError(
            f"{where}: run {run.id} has no segment '{config.segment}'; it has "
            f"{', '.join(sorted(sizes)) or 'none'}"
        )
    members = _dataset(run, "SegmentMembers", where)
    profile = _dataset(run, "CustomerProfile", where)
    attributes = _dataset(run, "CustomerAttributes", where)
    fields = _resolve_fields(config, where, profile.schema, attributes.schema)
    columns = "".join(f", {alias}.{_quote(name)}" for alias, name in fields)
    joins = "".join(
        f" LEFT JOIN {table} {alias} ON {alias}.CustomerId = m.CustomerId"
        for table, alias in (("profile", "p"), ("attributes", "a"))
        if any(a == alias for a, _ in fields)
    )
    state = state_path(project, config.name)
    con = duckdb.connect()
    try:
        con.register("segment_members", members)
        con.register("profile", profile)
        con.register("attributes", attributes)
        con.execute(
            f"CREATE TEMP TABLE current_members AS SELECT m.CustomerId{columns} "
            f"FROM segment_members m{joins} WHERE m.Segment = $1",
            [config.segment],
        )
        if state.exists():
            con.execute(
                "CREATE TEMP TABLE previous AS SELECT DISTINCT CustomerId FROM read_parquet($1)",
                [str(state)],
            )
        else:
            con.execute("CREATE TEMP TABLE previous (CustomerId VARCHAR)")
        selected = con.sql("SELECT * FROM current_members ORDER BY CustomerId").fetch_arrow_table()
        changes = con.sql(
            "SELECT * FROM ("
            " SELECT CustomerId, 'entered' AS change, * EXCLUDE (CustomerId)"
            " FROM current_members ANTI JOIN previous USING (CustomerId)"
            " UNION ALL BY NAME"
            " SELECT CustomerId, 'left' AS change"
            " FROM previous ANTI JOIN current_members USING (CustomerId)"
            ") ORDER BY change, CustomerId"
        ).fetch_arrow_table()
    except duckdb.Error as e:
        raise ExportError(f"{where}: cannot select the members of '{config.segment}': {e}") from e
    finally:
        con.close()
    kinds = changes.column("change").to_pylist()
    return Selection(selected, changes, kinds.count("entered"), kinds.count("left"))


def _save_state(path: Path, customer_ids: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(customer_ids, tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- delivery


@dataclass
class Delivery:
    batches: int = 0
    sent: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)


def _describe_target(config: SegmentExport, where: str) -> str:
    """The target for reports and messages (no passwords, no query strings); checks it."""
    if config.file is not None:
        if Path(config.file.path).suffix.lower() not in (".csv", ".parquet"):
            raise ExportError(f"{where}.file.path: must end in .csv or .parquet")
        return f"file {config.file.path}"
    if config.sql is not None:
        url = _sql_url(config.sql.url, f"{where}.sql.url")
        table = ".".join(p for p in (config.sql.db_schema, config.sql.table) if p)
        return f"sql {url.render_as_string(hide_password=True)} table {table}"
    assert config.http is not None
    parts = urllib.parse.urlsplit(config.http.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ExportError(f"{where}.http.url: not an http(s) URL: {config.http.url}")
    port = f":{parts.port}" if parts.port else ""
    return f"http {parts.scheme}://{parts.hostname}{port}{parts.path}"


def _failure_message(where: str, target: str, total: int, delivery: Delivery) -> str:
    failures = "; ".join(
        f"batch {f['batch']}"
        + (f" after {f['attempts']} attempts" if f["attempts"] > 1 else "")
        + f": {f['error']}"
        for f in delivery.failed
    )
    return (
        f"{where}: delivered {delivery.sent} of {total} rows to {target}; "
        f"{len(delivery.failed)} of {delivery.batches} batches failed: {failures}. "
        "The next export sends them again."
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _write_file(path: Path, rows: pa.Table) -> Delivery:
    fmt = "csv, HEADER" if path.suffix.lower() == ".csv" else "parquet"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    con = duckdb.connect()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con.register("rows_out", rows)
        con.execute(f"COPY rows_out TO '{str(tmp).replace(chr(39), chr(39) * 2)}' (FORMAT {fmt})")
        os.replace(tmp, path)
    except (OSError, duckdb.Error) as e:
        tmp.unlink(missing_ok=True)
        return Delivery(1, 0, [{"batch": 1, "error": str(e), "attempts": 1}])
    finally:
        con.close()
    return Delivery(1, rows.num_rows)


# --------------------------------------------------------------------------------- SQL


def _sql_url(text: str, where: str) -> sa.URL:
    try:
        return sa.make_url(text)
    except sa.exc.ArgumentError:
        raise ExportError(f"{where}: not a database URL: {text}") from None


def _sql_type(kind: pa.DataType) -> sa.types.TypeEngine[Any]:
    if pa.types.is_boolean(kind):
        return sa.Boolean()
    if pa.types.is_integer(kind):
        return sa.BigInteger()
    if pa.types.is_floating(kind):
        return sa.Double()
    if pa.types.is_decimal(kind):
        return sa.Numeric(kind.precision, kind.scale)
    if pa.types.is_date(kind):
        return sa.Date()
    if pa.types.is_timestamp(kind):
        return sa.DateTime(timezone=kind.tz is not None)
    return sa.Text()


def _write_sql(project: Project, config: SegmentExport, rows: pa.Table) -> Delivery:
    assert config.sql is not None
    url = _sql_url(config.sql.url, "")
    database = url.database or ""
    local = url.get_backend_name() in ("sqlite", "duckdb")
    if local and database not in ("", ":memory:") and not database.startswith("file:"):
        # Relative to the project, like every other path in the project file.
        url = url.set(database=str(project.resolve(database)))
    batches = max(1, math.ceil(rows.num_rows / SQL_BATCH_ROWS))
    try:
        if url.get_backend_name() == "duckdb":
            _replace_duckdb_table(url, config.sql.db_schema, config.sql.table, rows)
        else:
            _replace_sql_table(url, config.sql.db_schema, config.sql.table, rows)
    except (sa.exc.SQLAlchemyError, duckdb.Error, ImportError, OSError) as e:
        reason = " ".join(str(getattr(e, "orig", None) or e).split())
        if url.password:
            reason = reason.replace(url.password, "***")
        return Delivery(batches, 0, [{"batch": 1, "error": reason, "attempts": 1}])
    return Delivery(batches, rows.num_rows)


def _replace_duckdb_table(url: sa.URL, schema: str | None, table: str, rows: pa.Table) -> None:
    # Written with duckdb itself: its SQLAlchemy dialect is a separate package we don't need.
    con = duckdb.connect(url.database or ":memory:")
    try:
        con.register("rows_out", rows)
        con.execute("BEGIN")
        name = _quote(table)
        if schema:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
            name = f"{_quote(schema)}.{name}"
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM rows_out")
        con.execute("COMMIT")
    finally:
        con.close()


def _replace_sql_table(url: sa.URL, schema: str | None, table: str, rows: pa.Table) -> None:
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() in ("postgresql", "mysql", "mariadb"):
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        # pysqlite runs DDL outside transactions unless told not to, which would make the
        # drop-and-rename swap non-atomic: let SQLAlchemy emit BEGIN itself.
        @sa.event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN")

    meta = sa.MetaData(schema=schema)
    staging = sa.Table(
        f"{table}__new", meta, *(sa.Column(f.name, _sql_type(f.type)) for f in rows.schema)
    )
    old = sa.Table(table, meta)
    try:
        with engine.begin() as conn:
            staging.drop(conn, checkfirst=True)  # left over from an interrupted export
            staging.create(conn)
            for batch in rows.to_batches(SQL_BATCH_ROWS):
                conn.execute(staging.insert(), batch.to_pylist())
        with engine.begin() as conn:
            old.drop(conn, checkfirst=True)
            preparer = conn.dialect.identifier_preparer
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(staging)} RENAME TO {preparer.quote(table)}"
            )
    finally:
        engine.dispose()


# -------------------------------------------------------------------------------- HTTP


class _Retryable(Exception):
    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.wait = wait  # what the server asked for (Retry-After), if anything


class _Rejected(Exception):
    pass


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as e:
        reason = f"HTTP {e.code} {e.reason}"
        if e.code == 429 or e.code >= 500:
            raise _Retryable(reason, _retry_after(e.headers.get("Retry-After"))) from None
        raise _Rejected(reason) from None
    except urllib.error.URLError as e:
        raise _Retryable(f"cannot connect: {e.reason}") from None
    except TimeoutError:
        raise _Retryable(f"no answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as e:
        raise _Retryable(f"connection failed: {type(e).__name__}: {e}".rstrip(": ")) from None


def _backoff(attempt: int) -> float:
    delay = min(MAX_WAIT_S, BACKOFF_BASE_S * 2**attempt)
    return random.uniform(delay / 2, delay)


def _post_batches(run: Run, config: SegmentExport, rows: pa.Table, sleep: Sleep) -> Delivery:
    target = config.http
    assert target is not None
    # A full export always sends at least one batch, so an empty segment reaches the receiver
    # as an empty list; a changes export with no changes sends nothing.
    batches = math.ceil(rows.num_rows / target.batch_size)
    if config.mode == "full":
        batches = max(batches, 1)
    delivery = Delivery(batches)
    failed_in_a_row = 0
    for index in range(1, batches + 1):
        if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
            delivery.failed.append(
                {
                    "batch": index,
                    "error": f"not sent: the {MAX_FAILED_IN_A_ROW} batches before it failed",
                    "attempts": 0,
                }
            )
            continue
        chunk = rows.slice((index - 1) * target.batch_size, target.batch_size).to_pylist()
        members = [{k: _json_value(v) for k, v in row.items()} for row in chunk]
        body = {
            "export": config.name,
            "segment": config.segment,
            "run_id": run.id,
            "mode": config.mode,
            "batch": index,
            "batches": batches,
            "members": members,
        }
        headers = {
            "Content-Type": "application/json",
            **target.headers,
            # The same batch of the same run always has the same key, so a receiver can drop
            # the copies that retries (or a re-sent failed export) deliver.
            "Idempotency-Key": f"{run.id}-{config.name}-{index}",
        }
        data = json.dumps(body, allow_nan=False).encode("utf-8")
        error, attempts = None, 0
        while True:
            attempts += 1
            try:
                _post(target.url, data, headers, target.timeout_s)
                error = None
                break
            except _Rejected as e:
                error = str(e)
                break
            except _Retryable as e:
                error = str(e)
                if attempts > target.retries:
                    break
                wait = _backoff(attempts - 1) if e.wait is None else min(e.wait, MAX_WAIT_S)
                sleep(wait)
        if error is None:
            delivery.sent += len(members)
            failed_in_a_row = 0
        else:
            delivery.failed.append({"batch": index, "error": error, "attempts": attempts})
            failed_in_a_row += 1
    return delivery
