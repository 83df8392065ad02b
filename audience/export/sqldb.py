"""A run's output tables in a SQL database (PostgreSQL, SQLite or a DuckDB file), replaced
atomically: readers see every table of the previous export or every table of this one, never
a half-loaded table, a missing one or a mix of two runs.

- PostgreSQL and SQLite: each table is loaded into `<table>__new` (a leftover of a killed
  export is dropped first) and its primary key and indexes are built; then ONE transaction
  drops every old table and renames every new one. Both have transactional DDL, so a query
  that arrives during the swap waits for the lock (milliseconds) and then reads the new table.
  The load is committed before the swap so that a reader whose snapshot predates the swap
  still sees the new table's rows once it gets the lock.
- DuckDB: one process writes a file at a time and its DDL is transactional, but a table with
  an index cannot be renamed, so the old tables are dropped and the new ones created under
  their own names in one transaction.
If anything fails before the swap, the `__new` tables are dropped and the old ones are as they
were.

Loading: PostgreSQL through COPY FROM STDIN in CSV, which Arrow writes from the run's Parquet
batch by batch (memory stays flat; the server parses while Arrow formats the next batch), with
the primary key and indexes built after the rows are in (a bulk sort instead of a b-tree
insert per row) on columns declared COLLATE "C" (identifiers, compared byte by byte).
SQLite: `executemany` in batches. DuckDB: CREATE TABLE AS from read_parquet.

PostgreSQL specifics: a table's grants are copied to its replacement; a view on an exported
table stops the swap (DROP TABLE refuses), and the error says so (SQLite and DuckDB views refer
to tables by name and keep working); the swap waits at most SWAP_LOCK_TIMEOUT at a time for
long queries on the old tables and tries again, so readers are not queued behind it for long;
and two exports to the same tables take turns (an advisory lock).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from audience.export import ExportError
from audience.outputs import OutputError, published_tables

if TYPE_CHECKING:
    from audience.export.config import SqlExport
    from audience.project import Project
    from audience.runs import Run

# The natural key of each published table; CustomerId and Identifier are indexed besides.
KEYS = {
    "CustomerProfile": "CustomerId",
    "AlternateKey": "Identifier",
    "UnifiedActivity": "ActivityId",
    "CustomerMeasure": "CustomerId",
    "Enrichment": "Identifier",
    "Prediction": "Identifier",
    "SegmentMembership": "Identifier",
}
INDEXED = ("CustomerId", "Identifier")
NEW = "__new"
BATCH_ROWS = 65_536
CONNECT_TIMEOUT = 10  # seconds: an unreachable server fails the export instead of hanging it
PG_NAME_BYTES = 63  # longer identifiers are truncated by PostgreSQL, which could collide
# While the swap waits for a long query to release an old table, every new query on it queues
# behind the swap: so it waits at most SWAP_LOCK_TIMEOUT at a time, and tries again (readers
# get through in between) for up to SWAP_WAIT_S.
SWAP_LOCK_TIMEOUT = "2s"
SWAP_WAIT_S = 120.0
DRIVER_ERRORS = (psycopg.Error, sqlite3.Error, duckdb.Error)


@dataclass
class TableLoad:
    """One table to (re)place: its rows, where it goes, and its key and indexes."""

    name: str  # in the database, without the schema
    schema: str | None
    data: ds.Dataset
    key: str | None = None
    not_null: tuple[str, ...] = ()
    indexes: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)

    @property
    def shown(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def export_sql(project: Project, run: Run, config: SqlExport) -> dict[str, Any]:
    """Replace the run's published output tables (or `config.tables`) in the database."""
    where = f"exports.{config.name}"
    try:
        paths = published_tables(run, config.tables)
    except OutputError as e:
        raise ExportError(f"{where}.tables: {e}") from None
    loads = []
    for name, path in paths.items():
        data = ds.dataset(path, format="parquet")
        names = data.schema.names
        key = KEYS.get(name) if KEYS.get(name) in names else None
        loads.append(
            TableLoad(
                name=config.prefix + name,
                schema=config.db_schema,
                data=data,
                key=key,
                indexes=tuple(c for c in INDEXED if c in names and c != key),
            )
        )
    db = connect(config.url, project, where, create=True)
    try:
        rows = db.replace(loads)
    finally:
        db.close()
    return {"url": db.masked, "tables": dict(zip(paths, rows, strict=True))}


# ------------------------------------------------------------------------------- connecting


def connect(
    url_text: str, project: Project, where: str, create: bool, url_where: str | None = None
) -> Database:
    """A connection to the database at `url_text`; relative file paths are the project's.
    `create`: a missing SQLite or DuckDB file is created (exports), else it is an error.
    Errors start with `where`, those about the URL itself with `url_where` (default
    `<where>.url`)."""
    url_where = url_where or f"{where}.url"
    try:
        url = make_url(url_text)
    except sa.exc.ArgumentError:
        raise ExportError(
            f"{url_where}: not a valid database URL (expected e.g. "
            "postgresql+psycopg://user:${DB_PASSWORD}@host:5432/db, sqlite:///out.db or "
            "duckdb:///out.duckdb)"
        ) from None
    backend = url.get_backend_name()
    masked = url.render_as_string(hide_password=True)
    kinds = {"postgresql": Postgres, "sqlite": Sqlite, "duckdb": DuckDB}
    if backend not in kinds:
        raise ExportError(
            f"{url_where}: {backend} databases are not supported here; "
            "use PostgreSQL, SQLite or DuckDB"
        )
    try:
        if backend == "postgresql":
            return Postgres(url, masked, where)
        path = _file_path(url, project, where, create)
        return kinds[backend](path, masked, where)
    except DRIVER_ERRORS as e:
        raise ExportError(f"{where}: cannot connect to {masked}: {reason(e, url)}") from None


def _file_path(url: URL, project: Project, where: str, create: bool) -> str:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return database or ":memory:"
    path = project.resolve(database)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.is_file():
        raise ExportError(f"{where}: database file not found: {database} (looked at {path})")
    return str(path)


def reason(error: BaseException, url: URL | None = None) -> str:
    """The driver's message on one line, the password masked."""
    text = " ".join(str(error).split()) or type(error).__name__
    if url is not None and url.password:
        text = text.replace(str(url.password), "***")
    return text


def quote(name: str) -> str:
    # Always quoted: output tables and columns are mixed case (CustomerId), which PostgreSQL
    # would fold to lower case unquoted. PostgreSQL, SQLite and DuckDB all quote this way.
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str | None, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def _pg_name(name: str) -> str:
    """`name`, shortened with a hash of it when PostgreSQL would truncate it."""
    if len(name.encode()) <= PG_NAME_BYTES:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    cut = name.encode()[: PG_NAME_BYTES - 9].decode(errors="ignore")
    return f"{cut}_{digest}"


# ------------------------------------------------------------------------------- databases


class Database:
    """A connection to the target database; one subclass per kind."""

    def __init__(self, masked: str, where: str):
        self.masked = masked
        self.where = where

    def replace(self, loads: list[TableLoad]) -> list[int]:
        """Load every table beside its old one, then swap them all in one transaction;
        returns the rows loaded per table."""
        rows = []
        try:
            for load in loads:
                try:
                    rows.append(self.load_new(load))
                except DRIVER_ERRORS as e:
                    raise self.failed(f"table {load.shown}", e) from None
            try:
                self.swap(loads)
            except DRIVER_ERRORS as e:
                raise self.failed("swapping in the new tables", e) from None
        except BaseException:
            self.discard(loads)
            raise
        return rows

    def failed(self, what: str, error: BaseException) -> ExportError:
        text = reason(error)
        if "depend on it" in text:
            text += " (drop the views on the exported tables, or export to another schema)"
        elif "lock timeout" in text:
            text += f" (queries kept the old tables busy for {SWAP_WAIT_S:g} s)"
        return ExportError(f"{self.where}: {what}: {text}; the previous tables are unchanged")

    def load_new(self, load: TableLoad) -> int:
        raise NotImplementedError

    def swap(self, loads: list[TableLoad]) -> None:
        raise NotImplementedError

    def discard(self, loads: list[TableLoad]) -> None:
        """Drop the `__new` tables of a failed export (best effort: the next one drops any
        leftover before loading)."""

    def update_column(
        self, schema: str | None, table: str, key: str, column: str, links: pa.Table
    ) -> tuple[int, int]:
        """Set `column` of the table to the customer id linked to each row's `key` (NULL
        where none), adding the column (TEXT) if missing, in one transaction; `links` has
        source_key and customer_id. Returns (rows changed, rows with a customer id)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _update_sql(target: str, key: str, column: str, links: str, distinct: str) -> str:
    # One statement; a correlated lookup gives NULL to the rows without a link. Only rows
    # whose value changes are written, so a re-export touches few rows.
    linked = (
        f"(SELECT l.customer_id FROM {links} l "
        f"WHERE l.source_key = CAST({target}.{quote(key)} AS TEXT))"
    )
    column = quote(column)
    return f"UPDATE {target} SET {column} = {linked} WHERE {column} {distinct} {linked}"


def _batches(data: ds.Dataset) -> Iterator[pa.RecordBatch]:
    yield from data.to_batches(batch_size=BATCH_ROWS)


def _sql_types(schema: pa.Schema, types: dict[str, str], where: str) -> list[str]:
    out = []
    for field in schema:
        t = field.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
            kind = "text"
        elif pa.types.is_boolean(t):
            kind = "bool"
        elif pa.types.is_uint64(t):
            kind = "uint64"
        elif t in (pa.int8(), pa.int16(), pa.uint8()):
            kind = "int16"
        elif t in (pa.int32(), pa.uint16()):
            kind = "int32"
        elif pa.types.is_integer(t):
            kind = "int64"
        elif pa.types.is_float16(t) or pa.types.is_float32(t):
            kind = "float32"
        elif pa.types.is_float64(t):
            kind = "float64"
        elif pa.types.is_decimal(t):
            kind = "decimal"
        elif pa.types.is_date(t):
            kind = "date"
        elif pa.types.is_timestamp(t):
            kind = "timestamptz" if t.tz else "timestamp"
        elif pa.types.is_time(t):
            kind = "time"
        else:
            raise ExportError(f"{where}: column {field.name} has type {t}, which SQL cannot hold")
        sql = types[kind]
        if kind == "decimal":
            sql = sql.format(p=t.precision, s=t.scale)
        out.append(sql)
    return out


# ------------------------------------------------------------------------------ PostgreSQL


class _CopySink:
    """A file-like object that Arrow's CSV writer writes into, feeding a COPY."""

    closed = False

    def __init__(self, copy: psycopg.Copy):
        self.copy = copy

    def write(self, data: Any) -> int:
        self.copy.write(bytes(data))  # Arrow reuses its buffer: psycopg gets its own bytes
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def write_csv(copy: psycopg.Copy, data: ds.Dataset) -> None:
    """Stream the rows into a `COPY ... FROM STDIN (FORMAT csv)`: Arrow quotes every text
    value and writes NULL unquoted-empty, which is how PostgreSQL's CSV tells them apart."""
    options = pacsv.WriteOptions(include_header=False, batch_size=BATCH_ROWS)
    with pacsv.CSVWriter(_CopySink(copy), data.schema, write_options=options) as writer:
        for batch in _batches(data):
            writer.write_batch(batch)


class Postgres(Database):
    TYPES = {
        "text": "TEXT", "bool": "BOOLEAN", "int16": "SMALLINT", "int32": "INTEGER",
        "int64": "BIGINT", "uint64": "NUMERIC(20)", "float32": "REAL",
        "float64": "DOUBLE PRECISION", "decimal": "NUMERIC({p},{s})", "date": "DATE",
        "timestamp": "TIMESTAMP", "timestamptz": "TIMESTAMPTZ", "time": "TIME",
    }  # fmt: skip

    def __init__(self, url: URL, masked: str, where: str):
        super().__init__(masked, where)
        args: dict[str, Any] = {
            k: v[-1] if isinstance(v, tuple) else v for k, v in url.query.items()
        }
        for key, value in (
            ("host", url.host), ("port", url.port), ("user", url.username),
            ("password", url.password), ("dbname", url.database),
        ):  # fmt: skip
            if value is not None:
                args[key] = value
        args.setdefault("connect_timeout", CONNECT_TIMEOUT)
        # psycopg 3 whatever driver the URL names: COPY is what makes the load fast.
        self.conn = psycopg.connect(autocommit=True, **args)
        self.schemas_checked: set[str] = set()

    def replace(self, loads: list[TableLoad]) -> list[int]:
        # Two exports to the same tables at once would drop each other's `__new` tables: the
        # second waits for the first (a session lock, released however this one ends).
        key = "audience export: " + ", ".join(sorted(load.shown for load in loads))
        self.conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [key])
        try:
            return super().replace(loads)
        finally:
            # If the connection is gone, so is the lock.
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])

    def _ensure_schema(self, schema: str | None) -> None:
        if not schema or schema in self.schemas_checked:
            return
        # CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema exists.
        found = self.conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        if found.fetchone() is None:
            self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        self.schemas_checked.add(schema)

    def _names(self, load: TableLoad, name: str) -> tuple[str, list[tuple[str, str]]]:
        """The primary key constraint and the (column, index) names of table `name`."""
        pkey = _pg_name(f"{name}_pkey")
        return pkey, [(c, _pg_name(f"{name}_{c}_idx")) for c in load.indexes]

    def load_new(self, load: TableLoad) -> int:
        self._ensure_schema(load.schema)
        new = qualified(load.schema, load.name + NEW)
        types = _sql_types(load.data.schema, self.TYPES, f"{self.where}: table {load.shown}")
        # Keys and indexed columns are identifiers: compared byte by byte (collation "C"),
        # which builds their indexes about twice as fast as a language's collation; equality
        # is the same, and joins with other text columns still work.
        ids = {load.key, *load.indexes}
        columns = ", ".join(
            f"{quote(f.name)} {t}"
            + (' COLLATE "C"' if f.name in ids and t == "TEXT" else "")
            + (" NOT NULL" if f.name in load.not_null else "")
            for f, t in zip(load.data.schema, types, strict=True)
        )
        pkey, indexes = self._names(load, load.name + NEW)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {new}")
            cur.execute(f"CREATE TABLE {new} ({columns})")
            # FREEZE (allowed as the table is new in this transaction): the rows are written
            # frozen, so the first reader does not rewrite every page to set hint bits.
            with cur.copy(f"COPY {new} FROM STDIN (FORMAT csv, FREEZE)") as copy:
                write_csv(copy, load.data)
            rows = cur.rowcount
            if load.key:
                key = quote(load.key)
                cur.execute(f"ALTER TABLE {new} ADD CONSTRAINT {quote(pkey)} PRIMARY KEY ({key})")
            for column, index in indexes:
                cur.execute(f"CREATE INDEX {quote(index)} ON {new} ({quote(column)})")
            cur.execute(f"ANALYZE {new}")  # the planner's statistics, ready for the first reader
        return rows

    def swap(self, loads: list[TableLoad]) -> None:
        deadline = time.monotonic() + SWAP_WAIT_S
        pause = 0.1
        while True:
            try:
                return self._swap_once(loads)
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _swap_once(self, loads: list[TableLoad]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
            for load in loads:
                target = load.qualified
                grants = cur.execute(
                    "SELECT a.privilege_type, a.grantee::regrole::text, a.is_grantable "
                    "FROM pg_class c, aclexplode(c.relacl) a "
                    "WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner",
                    [target],
                ).fetchall()
                cur.execute(f"DROP TABLE IF EXISTS {target}")
                cur.execute(
                    f"ALTER TABLE {qualified(load.schema, load.name + NEW)} "
                    f"RENAME TO {quote(load.name)}"
                )
                old_pkey, old_indexes = self._names(load, load.name + NEW)
                pkey, indexes = self._names(load, load.name)
                if load.key:
                    cur.execute(
                        f"ALTER TABLE {target} RENAME CONSTRAINT {quote(old_pkey)} TO {quote(pkey)}"
                    )
                for (_, old), (_, index) in zip(old_indexes, indexes, strict=True):
                    cur.execute(
                        f"ALTER INDEX {qualified(load.schema, old)} RENAME TO {quote(index)}"
                    )
                for privilege, grantee, grantable in grants:
                    # A grantee OID of 0 is PUBLIC, which regrole shows as '-'.
                    to = "PUBLIC" if grantee == "-" else grantee
                    option = " WITH GRANT OPTION" if grantable else ""
                    cur.execute(f"GRANT {privilege} ON {target} TO {to}{option}")

    def discard(self, loads: list[TableLoad]) -> None:
        try:
            if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                self.conn.rollback()
            for load in loads:
                self.conn.execute(f"DROP TABLE IF EXISTS {qualified(load.schema, load.name + NEW)}")
        except psycopg.Error:
            pass

    def update_column(
        self, schema: str | None, table: str, key: str, column: str, links: pa.Table
    ) -> tuple[int, int]:
        target = qualified(schema, table)
        with self.conn.transaction(), self.conn.cursor() as cur:
            found = cur.execute(
                "SELECT to_regclass(%s) IS NOT NULL, EXISTS (SELECT 1 FROM pg_attribute "
                "WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped)",
                [target, target, column],
            ).fetchone()
            if not found or not found[0]:
                raise psycopg.errors.UndefinedTable(f'relation "{table}" does not exist')
            # Checked first: ALTER TABLE locks the app's table even when the column exists.
            if not found[1]:
                cur.execute(f"ALTER TABLE {target} ADD COLUMN {quote(column)} TEXT")
            cur.execute(
                "CREATE TEMP TABLE _audience_links (source_key TEXT PRIMARY KEY, "
                "customer_id TEXT NOT NULL) ON COMMIT DROP"
            )
            with cur.copy("COPY _audience_links FROM STDIN (FORMAT csv)") as copy:
                write_csv(copy, ds.dataset(links))
            cur.execute("ANALYZE _audience_links")  # temp tables get no autovacuum statistics
            cur.execute(_update_sql(target, key, column, "_audience_links", "IS DISTINCT FROM"))
            updated = cur.rowcount
            linked = cur.execute(f"SELECT count({quote(column)}) FROM {target}").fetchone()
        return updated, linked[0] if linked else 0

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------------- SQLite


def _python_columns(batch: pa.RecordBatch) -> list[list[Any]]:
    """A batch's columns as values sqlite3 stores: dates and times as ISO text (what
    SQLAlchemy and apps read back), booleans as 0/1, decimals as floats."""
    out = []
    for column in batch.columns:
        t = column.type
        if pa.types.is_dictionary(t):
            column, t = column.dictionary_decode(), t.value_type
        if pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_time(t):
            column = column.cast(pa.string())
        elif pa.types.is_boolean(t):
            column = column.cast(pa.int8())
        elif pa.types.is_decimal(t):
            column = column.cast(pa.float64())
        out.append(column.to_pylist())
    return out


class Sqlite(Database):
    TYPES = {
        "text": "TEXT", "bool": "BOOLEAN", "int16": "INTEGER", "int32": "INTEGER",
        "int64": "INTEGER", "uint64": "INTEGER", "float32": "REAL", "float64": "REAL",
        "decimal": "NUMERIC", "date": "DATE", "timestamp": "TIMESTAMP",
        "timestamptz": "TIMESTAMP", "time": "TIME",
    }  # fmt: skip

    def __init__(self, path: str, masked: str, where: str):
        super().__init__(masked, where)
        # isolation_level=None: transactions are begun and ended here, DDL included (the
        # module's own handling would commit DDL on its own).
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        # Without it, renaming a table checks every view and fails on a view of a table that
        # the same transaction dropped: the very table being swapped in.
        self.conn.execute("PRAGMA legacy_alter_table = ON")
        # Index names are global in a database and survive a rename: each export's are new.
        self.token = secrets.token_hex(4)

    def _check_schema(self, load: TableLoad) -> None:
        if load.schema not in (None, "main"):
            raise ExportError(
                f"{self.where}.db_schema: SQLite has no schemas (got '{load.schema}')"
            )

    def load_new(self, load: TableLoad) -> int:
        self._check_schema(load)
        new = quote(load.name + NEW)
        fields = load.data.schema
        types = _sql_types(fields, self.TYPES, f"{self.where}: table {load.shown}")
        columns = [
            f"{quote(f.name)} {t}"
            + (" NOT NULL" if f.name in load.not_null or f.name == load.key else "")
            for f, t in zip(fields, types, strict=True)
        ]
        if load.key:
            columns.append(f"PRIMARY KEY ({quote(load.key)})")
        insert = f"INSERT INTO {new} VALUES ({', '.join('?' * len(fields))})"
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.execute(f"DROP TABLE IF EXISTS {new}")
            cur.execute(f"CREATE TABLE {new} ({', '.join(columns)})")
            rows = 0
            for batch in _batches(load.data):
                cur.executemany(insert, zip(*_python_columns(batch), strict=True))
                rows += batch.num_rows
            for column in load.indexes:
                index = quote(f"{load.name}_{column}_{self.token}")
                cur.execute(f"CREATE INDEX {index} ON {new} ({quote(column)})")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return rows

    def swap(self, loads: list[TableLoad]) -> None:
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for load in loads:
                cur.execute(f"DROP TABLE IF EXISTS {quote(load.name)}")
                cur.execute(f"ALTER TABLE {quote(load.name + NEW)} RENAME TO {quote(load.name)}")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def discard(self, loads: list[TableLoad]) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            for load in loads:
                if load.schema in (None, "main"):
                    self.conn.execute(f"DROP TABLE IF EXISTS {quote(load.name + NEW)}")
        except sqlite3.Error:
            pass

    def update_column(
        self, schema: str | None, table: str, key: str, column: str, links: pa.Table
    ) -> tuple[int, int]:
        target = qualified(schema, table)
        info = f"table_info({quote(table)})"
        pragma = f"{quote(schema)}.{info}" if schema else info
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            existing = [r[1] for r in cur.execute(f"PRAGMA {pragma}").fetchall()]
            if not existing:
                raise sqlite3.OperationalError(f"no such table: {table}")
            if column not in existing:
                cur.execute(f"ALTER TABLE {target} ADD COLUMN {quote(column)} TEXT")
            cur.execute(
                "CREATE TEMP TABLE _audience_links (source_key TEXT PRIMARY KEY, "
                "customer_id TEXT NOT NULL)"
            )
            for batch in links.to_batches(BATCH_ROWS):
                cur.executemany(
                    "INSERT INTO _audience_links VALUES (?, ?)",
                    zip(*_python_columns(batch.select([0, 1])), strict=True),
                )
            cur.execute(_update_sql(target, key, column, "temp._audience_links", "IS NOT"))
            updated = cur.rowcount
            cur.execute("DROP TABLE temp._audience_links")
            linked = cur.execute(f"SELECT count({quote(column)}) FROM {target}").fetchone()[0]
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return updated, linked

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------------- DuckDB


class DuckDB(Database):
    def __init__(self, path: str, masked: str, where: str):
        super().__init__(masked, where)
        self.conn = duckdb.connect(path)

    def replace(self, loads: list[TableLoad]) -> list[int]:
        rows = []
        self.conn.execute("BEGIN TRANSACTION")
        load = None
        try:
            for load in loads:
                rows.append(self._create(load))
            load = None
            self.conn.execute("COMMIT")
        except DRIVER_ERRORS as e:
            self.conn.execute("ROLLBACK")
            raise self.failed(f"table {load.shown}" if load else "commit", e) from None
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return rows

    def _create(self, load: TableLoad) -> int:
        if load.schema:
            self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(load.schema)}")
        target = load.qualified
        self.conn.execute(f"DROP TABLE IF EXISTS {target}")
        if isinstance(load.data, ds.FileSystemDataset):
            files = ", ".join("'" + f.replace("'", "''") + "'" for f in load.data.files)
            source = f"read_parquet([{files}])" if load.data.files else None
        else:
            source = None
        if source is None:
            self.conn.register("_audience_rows", load.data.to_table())
            source = "_audience_rows"
        try:
            counted = self.conn.execute(f"CREATE TABLE {target} AS SELECT * FROM {source}")
            rows = int(counted.fetchone()[0])
        finally:
            if source == "_audience_rows":
                self.conn.unregister("_audience_rows")
        for column in load.not_null:
            self.conn.execute(f"ALTER TABLE {target} ALTER COLUMN {quote(column)} SET NOT NULL")
        if load.key:
            self.conn.execute(f"ALTER TABLE {target} ADD PRIMARY KEY ({quote(load.key)})")
        for column in load.indexes:
            index = quote(f"{load.name}_{column}_idx")
            self.conn.execute(f"CREATE INDEX {index} ON {target} ({quote(column)})")
        return rows

    def update_column(
        self, schema: str | None, table: str, key: str, column: str, links: pa.Table
    ) -> tuple[int, int]:
        target = qualified(schema, table)
        self.conn.execute("BEGIN TRANSACTION")
        try:
            self.conn.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {quote(column)} TEXT")
            self.conn.register("_audience_links", links)
            self.conn.execute(
                "CREATE TEMP TABLE _audience_link_rows AS SELECT * FROM _audience_links"
            )
            self.conn.unregister("_audience_links")
            update = _update_sql(target, key, column, "_audience_link_rows", "IS DISTINCT FROM")
            updated = int(self.conn.execute(update).fetchone()[0])
            self.conn.execute("DROP TABLE _audience_link_rows")
            linked = self.conn.execute(f"SELECT count({quote(column)}) FROM {target}").fetchone()[0]
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return updated, int(linked)

    def close(self) -> None:
        self.conn.close()
