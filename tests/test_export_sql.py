"""SQL exports (PostgreSQL, SQLite, DuckDB) and links written back to SQL sources.

The PostgreSQL tests need the test server (AUDIENCE_TEST_POSTGRES_URL, default below) and are
skipped, saying why, when it cannot be reached; each works in a schema of its own, dropped
after. Two runs of the hand-made shop are shared: the second drops contact C4 and adds C5 and
C6, so every customer table changes between them.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from analytics_helpers import CONTACTS, UNIFY, shop_project
from sqlalchemy.pool import NullPool
from unify_helpers import customer_of, rows, run, write_data

from audience.export import ExportError, sqldb
from audience.export.config import LinkExport, SqlExport
from audience.export.links import write_links
from audience.export.sqldb import export_sql
from audience.project import Project
from audience.runs import Run
from conftest import make_project

ENV, DEFAULT_URL = "AUDIENCE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PUBLISHED = [
    "CustomerProfile", "AlternateKey", "UnifiedActivity", "CustomerMeasure", "Enrichment",
    "Prediction", "SegmentMembership",
]  # fmt: skip
PRIMARY_KEYS = {
    "CustomerProfile": "CustomerId", "AlternateKey": "Identifier",
    "UnifiedActivity": "ActivityId", "CustomerMeasure": "CustomerId",
    "Enrichment": "Identifier", "Prediction": "Identifier", "SegmentMembership": "Identifier",
}  # fmt: skip
SECOND_INDEX = {
    "AlternateKey": "CustomerId", "UnifiedActivity": "CustomerId",
    "CustomerMeasure": "Identifier", "Enrichment": "CustomerId", "Prediction": "CustomerId",
    "SegmentMembership": "CustomerId",
}  # fmt: skip
MEASURES = [{"name": "ttv", "template": "total_transaction_value"}]
SEGMENTS = [{"name": "big", "rules": ["ttv > 100"]}]
NEW_CONTACTS = [
    {"contact_id": "C5", "first_name": "Eve", "last_name": "Ng", "email": "eve@x.com"},
    {"contact_id": "C6", "first_name": "Fay", "last_name": "Oz", "email": None},
]


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Run, Run]:
    """The shop project and its two runs (C1-C4; then C1-C3, C5, C6)."""
    project = shop_project(tmp_path_factory.mktemp("shop_a"), MEASURES, SEGMENTS)
    first = run(project)
    root = tmp_path_factory.mktemp("shop_b")
    changed = shop_project(root, MEASURES, SEGMENTS)
    write_data(root, {"crm_contacts": CONTACTS[:3] + NEW_CONTACTS})
    return project, first, run(changed)


def masked(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def server_engine() -> tuple[str, sa.Engine]:
    url = os.environ.get(ENV, DEFAULT_URL)
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except Exception as e:  # any failure to reach it: skip, saying which server and why
        engine.dispose()
        reason = " ".join(str(getattr(e, "orig", None) or e).split())
        pytest.skip(f"{ENV}: cannot reach {masked(url)}: {reason}")
    return url, engine


@pytest.fixture
def pg() -> Iterator[tuple[str, str, sa.Engine]]:
    """(url, schema, engine): a schema of this test's own on the server, dropped after."""
    url, engine = server_engine()
    schema = f"audience_test_{uuid.uuid4().hex[:8]}"
    try:
        yield url, schema, engine
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


def config(url: str, schema: str | None = None, **extra: Any) -> SqlExport:
    return SqlExport(kind="sql", name="warehouse", url=url, db_schema=schema, prefix="aud_",
                     **extra)  # fmt: skip


def parquet_rows(run: Run, name: str) -> list[dict[str, Any]]:
    return rows(run, name, order=f'"{PRIMARY_KEYS[name]}"')


def pg_rows(engine: sa.Engine, schema: str, name: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.exec_driver_sql(
            f'SELECT * FROM "{schema}"."aud_{name}" ORDER BY "{PRIMARY_KEYS[name]}" COLLATE "C"'
        )
        return [dict(r._mapping) for r in result]


def pg_tables(engine: sa.Engine, schema: str) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names(schema))


def counts(run: Run) -> dict[str, int]:
    return {name: len(rows(run, name)) for name in PUBLISHED}


# ------------------------------------------------------------------------------ PostgreSQL


@pytest.mark.postgres
def test_postgres_tables_columns_keys_indexes_and_values(
    runs: tuple[Project, Run, Run], pg: tuple[str, str, sa.Engine]
) -> None:
    project, first, _ = runs
    url, schema, engine = pg
    summary = export_sql(project, first, config(url, schema))
    assert summary == {"url": masked(url), "tables": counts(first)}
    assert summary["tables"]["CustomerProfile"] == 4 and summary["tables"]["SegmentMembership"]
    assert pg_tables(engine, schema) == {f"aud_{n}" for n in PUBLISHED}  # no __new left over
    with engine.connect() as conn:
        columns = conn.exec_driver_sql(
            "SELECT table_name, column_name, data_type, is_nullable, collation_name "
            "FROM information_schema.columns WHERE table_schema = %s "
            "ORDER BY table_name, ordinal_position",
            (schema,),
        ).fetchall()
        keys = conn.exec_driver_sql(
            "SELECT tc.table_name, k.column_name FROM information_schema.table_constraints tc "
            "JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name) "
            "WHERE tc.table_schema = %s AND tc.constraint_type = 'PRIMARY KEY'",
            (schema,),
        ).fetchall()
        indexes = conn.exec_driver_sql(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %s",
            (schema,),
        ).fetchall()
    by_table: dict[str, list[tuple[str, str, str]]] = {}
    collations = {}
    for table, column, data_type, nullable, collation in columns:
        by_table.setdefault(table, []).append((column, data_type, nullable))
        collations[table[4:], column] = collation
    # Keys and indexed columns compare bytes (faster index builds); other text is as is.
    assert collations["AlternateKey", "Identifier"] == "C"
    assert collations["AlternateKey", "CustomerId"] == "C"
    assert collations["AlternateKey", "KeyRing"] is None
    profile = [c for c, _, _ in by_table["aud_CustomerProfile"]]
    assert profile == list(rows(first, "CustomerProfile")[0])
    activity = {c: t for c, t, _ in by_table["aud_UnifiedActivity"]}
    assert activity["ActivityTimeStamp"] == "timestamp without time zone"
    assert {t for c, t in activity.items() if c != "ActivityTimeStamp"} == {"text"}
    assert ("CustomerId", "text", "NO") in by_table["aud_CustomerProfile"]
    assert dict(keys) == {f"aud_{t}": c for t, c in PRIMARY_KEYS.items()}
    names = {(t, i) for t, i, _ in indexes}
    assert names == {(f"aud_{t}", f"aud_{t}_pkey") for t in PUBLISHED} | {
        (f"aud_{t}", f"aud_{t}_{c}_idx") for t, c in SECOND_INDEX.items()
    }
    assert all(f'("{i.split("_")[-2]}")' in d for _, i, d in indexes if i.endswith("_idx"))
    for name in ("CustomerProfile", "AlternateKey", "UnifiedActivity", "SegmentMembership"):
        assert pg_rows(engine, schema, name) == parquet_rows(first, name), name
    stamps = {
        r["ActivityId"]: r["ActivityTimeStamp"] for r in pg_rows(engine, schema, "UnifiedActivity")
    }
    assert stamps["points|1"] == dt.datetime(2025, 6, 1)
    assert stamps["lines|1"] == dt.datetime(2026, 1, 30, 10)


@pytest.mark.postgres
def test_postgres_reexport_is_atomic_for_a_concurrent_reader(
    runs: tuple[Project, Run, Run], pg: tuple[str, str, sa.Engine]
) -> None:
    project, first, second = runs
    url, schema, engine = pg
    export_sql(project, first, config(url, schema))
    # One statement, one snapshot: profiles, distinct customers, alternate keys, segment rows.
    query = (
        f'SELECT (SELECT count(*) FROM "{schema}"."aud_CustomerProfile"), '
        f'(SELECT count(DISTINCT "CustomerId") FROM "{schema}"."aud_CustomerProfile"), '
        f'(SELECT count(*) FROM "{schema}"."aud_AlternateKey"), '
        f'(SELECT count(*) FROM "{schema}"."aud_SegmentMembership")'
    )
    states = {
        (4, 4, 4, counts(first)["SegmentMembership"]),
        (5, 5, 5, counts(second)["SegmentMembership"]),
    }
    assert len(states) == 2
    seen: list[tuple[int, ...]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                while not stop.is_set():
                    seen.append(tuple(conn.exec_driver_sql(query).one()))
        except BaseException as e:  # noqa: BLE001 - reported by the test below
            errors.append(e)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(7):  # ends with the second run
            time.sleep(0.02)
            export_sql(project, second if i % 2 == 0 else first, config(url, schema))
        time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert errors == []
    assert set(seen) == states, f"{len(seen)} reads saw {set(seen)}"
    assert seen[-1] == max(states)
    # The second run's rows, each once; C4's customer is gone.
    for name in ("CustomerProfile", "AlternateKey", "CustomerMeasure", "SegmentMembership"):
        assert pg_rows(engine, schema, name) == parquet_rows(second, name), name
    gone = customer_of(first)["crm|contacts|C4"]
    assert gone not in {r["CustomerId"] for r in pg_rows(engine, schema, "CustomerProfile")}
    assert pg_tables(engine, schema) == {f"aud_{n}" for n in PUBLISHED}


@pytest.mark.postgres
def test_postgres_swap_waits_for_a_long_reader(
    runs: tuple[Project, Run, Run],
    pg: tuple[str, str, sa.Engine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project, first, second = runs
    url, schema, engine = pg
    monkeypatch.setattr(sqldb, "SWAP_LOCK_TIMEOUT", "100ms")
    monkeypatch.setattr(sqldb, "SWAP_WAIT_S", 0.5)
    export = config(url, schema, tables=["CustomerProfile"])
    export_sql(project, first, export)
    count = f'SELECT count(*) FROM "{schema}"."aud_CustomerProfile"'
    with engine.connect() as blocker:  # its transaction holds the old table until it ends
        assert blocker.exec_driver_sql(count).scalar() == 4
        with pytest.raises(ExportError) as info:
            export_sql(project, second, export)
        blocker.rollback()
    assert str(info.value).startswith("exports.warehouse: swapping in the new tables: ")
    assert "lock timeout" in str(info.value) and str(info.value).endswith("are unchanged")
    assert pg_tables(engine, schema) == {"aud_CustomerProfile"}
    # A reader that finishes within the wait: the swap goes through after it.
    monkeypatch.setattr(sqldb, "SWAP_WAIT_S", 10.0)
    with engine.connect() as blocker:
        blocker.exec_driver_sql(count)
        timer = threading.Timer(0.4, blocker.rollback)
        timer.start()
        assert export_sql(project, second, export)["tables"] == {"CustomerProfile": 5}
        timer.join()
    with engine.connect() as conn:
        assert conn.exec_driver_sql(count).scalar() == 5


@pytest.mark.postgres
def test_postgres_grants_survive_the_swap(
    runs: tuple[Project, Run, Run], pg: tuple[str, str, sa.Engine]
) -> None:
    project, first, second = runs
    url, schema, engine = pg
    role = f"audience_reader_{uuid.uuid4().hex[:8]}"
    export = config(url, schema, tables=["CustomerProfile"])
    export_sql(project, first, export)
    table = f'"{schema}"."aud_CustomerProfile"'
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE ROLE {role}")
            conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
            conn.exec_driver_sql(f"GRANT SELECT ON {table} TO {role}")
    except sa.exc.DBAPIError as e:
        pytest.skip(f"cannot create a role on the test server: {e.orig}")
    try:
        export_sql(project, second, export)
        with engine.connect() as conn:
            can = conn.exec_driver_sql(
                f"SELECT has_table_privilege('{role}', '{table}', 'SELECT'), "
                f"has_table_privilege('{role}', '{table}', 'INSERT')"
            ).one()
        assert tuple(can) == (True, False)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")


# ---------------------------------------------------------------------- SQLite and DuckDB


def file_rows(kind: str, path: Path, name: str) -> list[dict[str, Any]]:
    sql = f'SELECT * FROM "aud_{name}" ORDER BY "{PRIMARY_KEYS[name]}"'
    if kind == "sqlite":
        db = sqlite3.connect(path)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute(sql).fetchall()]
        finally:
            db.close()
    with duckdb.connect(str(path), read_only=True) as con:
        result = con.execute(sql)
        names = [d[0] for d in result.description]
        return [dict(zip(names, r, strict=True)) for r in result.fetchall()]


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_file_databases(runs: tuple[Project, Run, Run], tmp_path: Path, kind: str) -> None:
    project, first, second = runs
    path = tmp_path / "out" / f"audience.{kind}"
    url = f"{kind}:///{path}"
    assert export_sql(project, first, config(url))["tables"] == counts(first)
    if kind == "sqlite":  # a view by name keeps working across swaps
        with sqlite3.connect(path) as db:
            db.execute('CREATE VIEW people AS SELECT count(*) AS n FROM "aud_CustomerProfile"')
    assert export_sql(project, second, config(url))["tables"] == counts(second)
    for name in PUBLISHED:
        got, want = file_rows(kind, path, name), parquet_rows(second, name)
        if kind == "sqlite" and name == "UnifiedActivity":
            for row in got:  # ISO text in SQLite
                row["ActivityTimeStamp"] = dt.datetime.fromisoformat(row["ActivityTimeStamp"])
        assert got == want, name
    if kind == "sqlite":
        db = sqlite3.connect(path)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert db.execute("SELECT n FROM people").fetchone() == (5,)
        info = db.execute('PRAGMA table_info("aud_AlternateKey")').fetchall()
        assert [(r[1], r[2], r[3]) for r in info if r[5]] == [("Identifier", "TEXT", 1)]
        indexed = db.execute('PRAGMA index_list("aud_AlternateKey")').fetchall()
        columns = {db.execute(f'PRAGMA index_info("{r[1]}")').fetchone()[2] for r in indexed}
        db.close()
        assert columns == {"Identifier", "CustomerId"}
    else:
        with duckdb.connect(str(path), read_only=True) as con:
            tables = {
                r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
            keys = con.execute(
                "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                "WHERE constraint_type = 'PRIMARY KEY'"
            ).fetchall()
            indexes = con.execute("SELECT table_name, expressions FROM duckdb_indexes()").fetchall()
        assert dict(keys) == {f"aud_{t}": [c] for t, c in PRIMARY_KEYS.items()}
        assert ("aud_AlternateKey", '["CustomerId"]') in {(t, str(e)) for t, e in indexes} or (
            "aud_AlternateKey", "[CustomerId]") in {(t, str(e)) for t, e in indexes}  # fmt: skip
    assert tables == {f"aud_{n}" for n in PUBLISHED}


def test_export_from_the_pipeline_relative_sqlite_path(tmp_path: Path) -> None:
    exports = [{"kind": "sql", "name": "db", "url": "sqlite:///out/shop.db", "prefix": "x_",
                "tables": ["CustomerProfile", "AlternateKey"]}]  # fmt: skip
    project = shop_project(tmp_path, exports=exports)
    done = run(project)
    detail = done.results["stages"]["exports"]["detail"]["db"]
    assert detail == {"url": "sqlite:///out/shop.db",
                      "tables": {"CustomerProfile": 4, "AlternateKey": 4}}  # fmt: skip
    with sqlite3.connect(tmp_path / "out" / "shop.db") as db:
        got = db.execute('SELECT "FirstName" FROM "x_CustomerProfile" ORDER BY 1').fetchall()
    assert got == [("Ann",), ("Bob",), ("Cat",), ("Dan",)]


# ---------------------------------------------------------------------------------- errors


def test_connection_and_config_errors(
    runs: tuple[Project, Run, Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, first, _ = runs
    monkeypatch.setenv("AUDIENCE_TEST_SECRET", "s3cr3t-pw")
    url = "postgresql+psycopg://audience:s3cr3t-pw@127.0.0.1:1/crm"
    started = time.monotonic()
    with pytest.raises(ExportError) as info:
        export_sql(project, first, config(url))
    assert time.monotonic() - started < 15
    message = str(info.value)
    assert message.startswith(
        "exports.warehouse: cannot connect to postgresql+psycopg://audience:***@127.0.0.1:1/crm: "
    )
    assert "s3cr3t-pw" not in message and "refused" in message.lower()
    with pytest.raises(ExportError, match=r"^exports\.warehouse\.url: mysql databases are not"):
        export_sql(project, first, config("mysql+pymysql://root@127.0.0.1/test"))
    with pytest.raises(ExportError, match=r"^exports\.warehouse\.url: not a valid database URL"):
        export_sql(project, first, config("warehouse please"))
    with pytest.raises(ExportError, match=r"^exports\.warehouse\.tables: run .* has no table Nope"):
        export_sql(project, first, config("sqlite:///x.db", tables=["Nope"]))
    with pytest.raises(ExportError, match=r"^exports\.warehouse\.db_schema: SQLite has no"):
        export_sql(project, first, config("sqlite:///x.db", schema="crm"))


def _duplicate_activities(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Make the load of UnifiedActivity (the third table) fail in the database itself: every
    row twice, so its primary key cannot be built (DuckDB: the table is made to fail)."""
    if kind == "duckdb":
        real_create = sqldb.DuckDB._create

        def create(self: sqldb.DuckDB, load: sqldb.TableLoad) -> int:
            rows = real_create(self, load)
            if load.name.endswith("UnifiedActivity"):
                raise duckdb.ConstraintException("injected: duplicate key")
            return rows

        monkeypatch.setattr(sqldb.DuckDB, "_create", create)
        return
    real = sqldb._batches

    def batches(data: Any) -> Iterator[Any]:
        if "ActivityId" in data.schema.names:
            yield from real(data)
        yield from real(data)

    monkeypatch.setattr(sqldb, "_batches", batches)


@pytest.mark.parametrize(
    "kind", ["sqlite", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_failed_load_leaves_the_previous_tables(
    runs: tuple[Project, Run, Run],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    project, first, second = runs
    if kind == "postgres":
        url, schema, engine = request.getfixturevalue("pg")
        table = f"{schema}.aud_UnifiedActivity"
    else:
        url, schema, table = f"{kind}:///{tmp_path / 'out.db'}", None, "aud_UnifiedActivity"
    export_sql(project, first, config(url, schema))
    with monkeypatch.context() as patch:
        _duplicate_activities(patch, kind)
        with pytest.raises(ExportError) as info:
            export_sql(project, second, config(url, schema))
    message = str(info.value)
    assert message.startswith(f"exports.warehouse: table {table}: ")
    assert message.endswith("; the previous tables are unchanged")
    assert "unique" in message.lower() or "duplicate" in message.lower()
    for name in ("CustomerProfile", "AlternateKey", "UnifiedActivity"):
        if kind == "postgres":
            got = pg_rows(engine, schema, name)
        else:
            got = file_rows(kind, tmp_path / "out.db", name)
        assert len(got) == counts(first)[name], name
    if kind == "postgres":
        assert pg_tables(engine, schema) == {f"aud_{n}" for n in PUBLISHED}
    elif kind == "sqlite":
        with sqlite3.connect(tmp_path / "out.db") as db:
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert names == {f"aud_{n}" for n in PUBLISHED}
    # And the next export goes through.
    assert export_sql(project, second, config(url, schema))["tables"] == counts(second)


# ----------------------------------------------------------------------------------- links


CRM_ROWS = [(c["contact_id"], c["first_name"], c["last_name"], c["email"]) for c in CONTACTS]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, sa.Engine]]:
    """(url, table as the project names it, engine) of a CRM database with a contacts table."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
        engine = sa.create_engine(url, poolclass=NullPool)
        table, schema = "contacts", None
    else:
        url, engine = server_engine()
        schema = f"crm_test_{uuid.uuid4().hex[:8]}"
        table = f"{schema}.contacts"
    with engine.begin() as conn:
        if schema:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        conn.exec_driver_sql(
            f"CREATE TABLE {table} (contact_id TEXT PRIMARY KEY, first_name TEXT, "
            "last_name TEXT, email TEXT)"
        )
        insert = f"INSERT INTO {table} VALUES (?, ?, ?, ?)" if not schema else (
            f"INSERT INTO {table} VALUES (%s, %s, %s, %s)"
        )  # fmt: skip
        conn.exec_driver_sql(insert, CRM_ROWS)
    try:
        yield url, table, engine
    finally:
        if schema:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


def crm_project(root: Path, url: str, table: str, **settings: Any) -> Project:
    contacts = {"name": "contacts", "primary_key": "contact_id", "table": table}
    source = {"name": "crm", "kind": "sql", "url": url, "tables": [contacts]}
    return make_project(root, [source], unify=UNIFY, **settings)


def query(engine: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]


def test_links_back_to_the_crm(tmp_path: Path, crm: tuple[str, str, sa.Engine]) -> None:
    url, table, engine = crm
    exports = [{"kind": "link", "name": "links", "table": "crm.contacts"}]
    project = crm_project(tmp_path, url, table, exports=exports)
    done = run(project)  # the run writes the link table itself (when: run)
    expected = {rid.split("|")[2]: c for rid, c in customer_of(done).items()}
    assert len(expected) == 4
    link = f"{table}_customer_link"
    assert done.results["stages"]["exports"]["detail"]["links"] == {
        "table": link, "mode": "link_table", "rows": 4
    }  # fmt: skip
    got = query(engine, f"SELECT source_key, customer_id, updated_at FROM {link}")
    assert {k: c for k, c, _ in got} == expected
    assert all(u is not None for _, _, u in got)
    with engine.connect() as conn:
        schema, _, name = link.rpartition(".")
        inspector = sa.inspect(conn)
        assert inspector.get_pk_constraint(name, schema or None)["constrained_columns"] == [
            "source_key"
        ]
        columns = {c["name"]: c for c in inspector.get_columns(name, schema or None)}
    assert columns["customer_id"]["nullable"] is False
    assert isinstance(columns["updated_at"]["type"], sa.DateTime)
    # Written again: replaced, not appended to.
    again = write_links(project, done, LinkExport(kind="link", name="links", table="crm.contacts"))
    assert again["rows"] == 4 and len(query(engine, f"SELECT * FROM {link}")) == 4

    # Column mode: a record added since the run, with a stale id, gets NULL.
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO {table} (contact_id, first_name) VALUES ('C9', 'Zed')")
    back = LinkExport(kind="link", name="back", table="crm.contacts", mode="column")
    assert write_links(project, done, back) == {
        "table": table, "mode": "column", "rows": 4, "changed": 4
    }  # fmt: skip
    got = dict(query(engine, f'SELECT contact_id, "CustomerId" FROM {table}'))
    assert got == {**expected, "C9": None}
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {table} SET \"CustomerId\" = 'stale' WHERE contact_id = 'C9'")
    summary = write_links(project, done, back)
    assert (summary["rows"], summary["changed"]) == (4, 1)  # only the stale row is written
    assert dict(query(engine, f'SELECT contact_id, "CustomerId" FROM {table}')) == got
    custom = back.model_copy(update={"column": "audience_customer"})
    assert write_links(project, done, custom)["changed"] == 4
    got = dict(query(engine, f"SELECT contact_id, audience_customer FROM {table}"))
    assert got == {**expected, "C9": None}


def test_link_errors(tmp_path: Path, runs: tuple[Project, Run, Run]) -> None:
    _, first, _ = runs
    db = sqlite3.connect(tmp_path / "crm.db")
    db.execute("CREATE TABLE contacts (contact_id TEXT, first_name TEXT)")
    db.close()
    source = {"name": "crm", "kind": "sql", "url": "sqlite:///crm.db", "tables": [
        {"name": "contacts", "primary_key": "contact_id",
         "query": "SELECT contact_id, first_name FROM contacts"}]}  # fmt: skip
    project = make_project(tmp_path, [source], unify=UNIFY)
    back = LinkExport(kind="link", name="back", table="crm.contacts", mode="column")
    with pytest.raises(ExportError, match=r"^exports\.back\.mode: 'column' needs a table"):
        write_links(project, first, back)
    (tmp_path / "crm.db").unlink()  # a link table beside the query's database: it is gone
    link = LinkExport(kind="link", name="links", table="crm.contacts")
    with pytest.raises(ExportError, match=r"^exports\.links: database file not found: crm\.db"):
        write_links(project, first, link)
    assert not (tmp_path / "crm.db").exists()
