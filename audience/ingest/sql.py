"""SQL databases through SQLAlchemy: a table (optionally 'schema.table') or a query.

Rows are streamed in batches (server-side cursors where the driver has them), turned into Arrow
arrays column by column and appended to a DuckDB temp table, so memory stays flat whatever the
table size. Types come from the values, never from pandas (which turns integers with NULLs into
floats); a table's declared column types seed them, so an all-NULL integer column stays an
integer and numeric(10,2) stays DECIMAL(10,2). When a later batch does not fit the type so far
(SQLite stores anything anywhere), the column is widened: int -> double/decimal, date ->
timestamp, anything else -> text, from which landing infers the type over all values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Connection, Engine, Result, make_url
from sqlalchemy.pool import NullPool

from audience.ingest.landing import INTERNAL_COLUMNS, RawRead, SourceError, quote
from audience.project import Project, TableRef

BATCH_ROWS = 50_000
CONNECT_TIMEOUT = 10  # seconds: an unreachable host should fail the run, not hang it
# Dialects where wrapping a query as `SELECT * FROM (...) LIMIT 0` gives its columns for free.
LIMIT_DIALECTS = ("postgresql", "mysql", "mariadb", "sqlite", "duckdb")


def read(
    con: duckdb.DuckDBPyConnection, ref: TableRef, project: Project, config_path: str
) -> RawRead:
    """Stream the table or query into the temp table `_raw` with a 1-based `_row`."""
    engine, url = _engine(ref, project, config_path)
    table = ref.table
    where = f"{config_path}.{'table' if table.table else 'query'}"
    try:
        with _connect(engine, url, config_path) as conn:
            stmt, declared = _statement(conn, ref, config_path)
            try:
                streamed = conn.execution_options(stream_results=True)
                _load(con, streamed.execute(stmt), declared, where)
            except sa.exc.DBAPIError as e:
                what = f"cannot read '{table.table}'" if table.table else "query failed"
                raise SourceError(f"{where}: {what}: {_reason(e, url)}") from None
    finally:
        engine.dispose()
    # SQLite keeps dates and times as text whatever the declared type: infer those from the
    # values. Other databases declare real types, which are kept as they are.
    return RawRead("_raw", table.table or "query", infer_types=url.get_backend_name() == "sqlite")


def describe(ref: TableRef, project: Project, config_path: str) -> list[str]:
    """Column names: reflected for a table; for a query, from running it with LIMIT 0."""
    engine, url = _engine(ref, project, config_path)
    try:
        with _connect(engine, url, config_path) as conn:
            if ref.table.table:
                return [c["name"] for c in _columns(conn, ref, config_path)]
            query = _query_text(ref.table.query)
            if engine.dialect.name in LIMIT_DIALECTS:
                # The newline keeps a trailing `-- comment` in the query from eating the ')'.
                query = f"SELECT * FROM (\n{query}\n) AS _q LIMIT 0"
            try:
                result = conn.execution_options(stream_results=True).execute(sa.text(query))
                names = list(result.keys())
                result.close()
            except sa.exc.DBAPIError as e:
                raise SourceError(f"{config_path}.query: query failed: {_reason(e, url)}") from None
            return names
    finally:
        engine.dispose()


def _engine(ref: TableRef, project: Project, config_path: str) -> tuple[Engine, URL]:
    where = config_path.rsplit(".tables[", 1)[0] + ".url"
    try:
        url = make_url(ref.source.url)
    except sa.exc.ArgumentError:
        masked = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", ref.source.url)
        raise SourceError(
            f"{where}: not a valid database URL: {masked} "
            "(expected e.g. postgresql+psycopg://user:${DB_PASSWORD}@host:5432/db)"
        ) from None
    backend = url.get_backend_name()
    database = url.database or ""
    if (
        backend == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
    ):
        # Relative like every other path in the project; and SQLite would silently create a
        # missing file, so say it is missing instead.
        path = project.resolve(database)
        if not path.is_file():
            raise SourceError(
                f"{where}: SQLite database file not found: {database} (looked at {path})"
            )
        url = url.set(database=str(path))
    connect_args: dict[str, Any] = {}
    if backend in ("postgresql", "mysql", "mariadb") and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    masked = url.render_as_string(hide_password=True)
    try:
        # NullPool: a run reads each table once; nothing is gained by keeping connections open.
        return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args), url
    except sa.exc.NoSuchModuleError:
        raise SourceError(
            f"{where}: unknown database kind '{url.drivername}' in {masked}"
        ) from None
    except ImportError as e:
        raise SourceError(f"{where}: the driver for {masked} is not installed: {e}") from None


def _connect(engine: Engine, url: URL, config_path: str) -> Connection:
    try:
        return engine.connect()
    except sa.exc.DBAPIError as e:
        where = config_path.rsplit(".tables[", 1)[0] + ".url"
        masked = url.render_as_string(hide_password=True)
        raise SourceError(f"{where}: cannot connect to {masked}: {_reason(e, url)}") from None


def _reason(error: sa.exc.DBAPIError, url: URL) -> str:
    """The driver's message on one line (without SQLAlchemy's SQL echo), password masked."""
    orig = error.orig if error.orig is not None else error
    args = getattr(orig, "args", ())
    # pymysql errors are (code, message) tuples.
    text = str(args[1]) if len(args) == 2 and isinstance(args[0], int) else str(orig)
    # PostgreSQL appends the statement ('LINE 1: DECLARE cursor ...' and a caret): drop it.
    text = " ".join(text.split("\nLINE ")[0].split())
    return text.replace(url.password, "***") if url.password else text


def _query_text(query: str | None) -> str:
    return (query or "").strip().rstrip(";").strip()


def _columns(conn: Connection, ref: TableRef, config_path: str) -> list[dict[str, Any]]:
    schema, _, name = (ref.table.table or "").rpartition(".")
    inspector = sa.inspect(conn)
    try:
        return inspector.get_columns(name, schema=schema or None)
    except sa.exc.NoSuchTableError:
        try:
            known = inspector.get_table_names(schema or None)
            known += inspector.get_view_names(schema or None)
        except sa.exc.DBAPIError:
            known = []  # e.g. the schema itself does not exist
        listed = ", ".join(sorted(known)[:30]) + (", ..." if len(known) > 30 else "")
        if schema and not known:
            listed = f"schema '{schema}' has no tables or does not exist"
        else:
            listed = f"tables{f' in {schema}' if schema else ''} are {listed or 'none'}"
        raise SourceError(
            f"{config_path}.table: table '{ref.table.table}' not found; {listed}"
        ) from None


def _statement(
    conn: Connection, ref: TableRef, config_path: str
) -> tuple[sa.Executable, dict[str, pa.DataType]]:
    """The SELECT to stream and the Arrow types declared for its columns (tables only)."""
    if not ref.table.table:
        return sa.text(_query_text(ref.table.query)), {}
    columns = _columns(conn, ref, config_path)
    schema, _, name = ref.table.table.rpartition(".")
    stmt = sa.select(sa.text("*")).select_from(sa.table(name, schema=schema or None))
    declared = {c["name"]: _declared_type(c["type"]) for c in columns}
    if conn.dialect.name == "sqlite":
        # SQLite declares affinities, not types: a DATE holds text and a NUMERIC(10,2) floats,
        # so only keep what its values can match (BOOLEAN holds 0/1, kept while they are).
        keep = (pa.bool_(), pa.int64())
        return stmt, {n: t for n, t in declared.items() if t in keep}
    return stmt, {n: t for n, t in declared.items() if t is not None}


def _declared_type(col_type: sa.types.TypeEngine) -> pa.DataType | None:
    # MySQL's BOOLEAN is TINYINT(1); _fit keeps it boolean only while values are 0/1.
    if isinstance(col_type, mysql.TINYINT) and col_type.display_width == 1:
        return pa.bool_()
    if isinstance(col_type, sa.Boolean):
        return pa.bool_()
    if isinstance(col_type, sa.Integer):
        return pa.int64()
    if isinstance(col_type, sa.Float):  # before Numeric: Float is a Numeric
        return pa.float64()
    if isinstance(col_type, sa.Numeric) and col_type.precision and col_type.precision <= 38:
        return pa.decimal128(col_type.precision, col_type.scale or 0)
    if isinstance(col_type, sa.DateTime) and not col_type.timezone:
        return pa.timestamp("us")
    if isinstance(col_type, sa.Date):
        return pa.date32()
    if isinstance(col_type, sa.String):
        return pa.string()
    return None


def _load(
    con: duckdb.DuckDBPyConnection, result: Result, declared: dict[str, pa.DataType], where: str
) -> None:
    names = list(result.keys())
    _check_names(names, where)
    types = [declared.get(n, pa.null()) for n in names]
    columns = ", ".join(
        f"{quote(n)} {_duck_type(con, t)}" for n, t in zip(names, types, strict=True)
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _raw (_row BIGINT, {columns})")
    start = 1
    # Fixed-size fetches (FETCH n on a server-side cursor): without yield_per on the result,
    # SQLAlchemy's buffer starts at one row and grows, costing thousands of round trips.
    for rows in result.yield_per(BATCH_ROWS).partitions():
        arrays = [pa.array(range(start, start + len(rows)), pa.int64())]
        for i, values in enumerate(zip(*rows, strict=True)):
            array, fitted = _fit(values, types[i])
            if fitted != types[i] and _duck_type(con, fitted) != _duck_type(con, types[i]):
                # Rows already loaded are cast along: the new type holds every old value.
                new_type = _duck_type(con, fitted)
                con.execute(f"ALTER TABLE _raw ALTER COLUMN {quote(names[i])} TYPE {new_type}")
            types[i] = fitted
            arrays.append(array.cast(pa.string()) if pa.types.is_null(array.type) else array)
        con.register("_sql_batch", pa.Table.from_arrays(arrays, names=["_row", *names]))
        con.execute("INSERT INTO _raw SELECT * FROM _sql_batch")
        con.unregister("_sql_batch")
        start += len(rows)


def _check_names(names: list[str], where: str) -> None:
    # DuckDB column names are case-insensitive: 'Email' and 'email' would collide.
    seen: dict[str, str] = {}
    for name in names:
        if name in INTERNAL_COLUMNS:
            raise SourceError(f"{where}: column name '{name}' is reserved; rename it (AS ...)")
        if name.lower() in seen:
            raise SourceError(
                f"{where}: columns '{seen[name.lower()]}' and '{name}' have the same name "
                "(ignoring case); give each a unique name (AS ...)"
            )
        seen[name.lower()] = name


def _duck_type(con: duckdb.DuckDBPyConnection, arrow_type: pa.DataType) -> str:
    if pa.types.is_null(arrow_type):
        return "VARCHAR"  # all NULL so far: a placeholder, altered once values show up
    return str(con.from_arrow(pa.table({"x": pa.nulls(0, arrow_type)})).types[0])


def _fit(values: Sequence[Any], current: pa.DataType) -> tuple[pa.Array, pa.DataType]:
    """One batch of a column as Arrow, and the column type widened so the batch fits."""
    array = _infer(values)
    target = _widen(current, array)
    if pa.types.is_string(target) and not pa.types.is_string(array.type):
        array = pa.array(_texts(values), pa.string())
    try:
        return array.cast(target), target  # a safe cast: never truncates silently
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array(_texts(values), pa.string()), pa.string()


def _infer(values: Sequence[Any]) -> pa.Array:
    try:
        array = pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return pa.array(_texts(values), pa.string())  # mixed kinds or objects Arrow lacks
    if pa.types.is_nested(array.type) or isinstance(array.type, pa.BaseExtensionType):
        # JSON documents and UUIDs as text: what Spark and the SQL exports can read back.
        return pa.array(_texts(values), pa.string())
    if pa.types.is_decimal(array.type) and array.type.precision > 38:
        return array.cast(pa.float64())  # DuckDB decimals stop at 38 digits
    return array


def _widen(current: pa.DataType, batch: pa.Array) -> pa.DataType:
    new = batch.type
    if current == new or pa.types.is_null(new):
        return current
    if pa.types.is_null(current):
        return new
    if pa.types.is_boolean(current) and pa.types.is_integer(new):
        flags = pc.all(pc.is_in(batch.drop_null(), value_set=pa.array([0, 1]))).as_py()
        return current if flags is not False else pa.int64()
    if pa.types.is_timestamp(current) and pa.types.is_timestamp(new) and current.tz and new.tz:
        return pa.timestamp("us", "UTC")  # e.g. +01:00 and +02:00 across a DST change
    if {str(current), str(new)} == {"date32[day]", "timestamp[us]"}:
        return pa.timestamp("us")
    try:
        merged = (
            pa.unify_schemas(
                [pa.schema([("c", current)]), pa.schema([("c", new)])], promote_options="permissive"
            )
            .field("c")
            .type
        )
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.string()
    if pa.types.is_decimal(merged) and merged.precision > 38:
        return pa.float64()
    return merged


def _texts(values: Iterable[Any]) -> list[str | None]:
    return [
        None if v is None else json.dumps(v, default=str) if isinstance(v, dict | list) else str(v)
        for v in values
    ]
