"""The SQL connector on SQLite (always) and on the PostgreSQL and MariaDB test servers."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from audience.ingest import (
    LandedTable,
    SourceError,
    describe_table,
    ingest_table,
    landing_connection,
    sql,
)
from audience.project import Project, parse_project

SERVERS = {
    "postgres": ("AUDIENCE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mysql": ("AUDIENCE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}

# contact_id, parent_id, balance, birth_date, modified_on, is_active, full_name, notes.
# Row 4 repeats key 2 and row 5 has no key: both must land in quarantine.
CONTACTS = [
    (1, None, Decimal("1234.50"), dt.date(1980, 2, 29), dt.datetime(2024, 1, 2, 3, 4, 5), True,
     "José Núñez", "VIP; prefers email"),
    (2, 1, Decimal("0.99"), None, dt.datetime(2024, 2, 3, 10, 0), False, "Zoë Ångström", None),
    (3, None, None, dt.date(1999, 12, 31), None, None, "Renée O'Hara", "line one\nline two"),
    (2, 7, Decimal("5.00"), None, None, True, "Duplicate Two", None),
    (None, 3, Decimal("1.00"), None, None, False, "No Key", None),
]  # fmt: skip
ORDERS = [(10, 1, 3), (11, 1, 4), (12, 3, 1)]  # order_id, contact_id, quantity


def make_project(tmp_path: Path, url: str, tables: list[dict[str, Any]]) -> Project:
    data = {"name": "t", "sources": [{"name": "crm", "kind": "sql", "url": url, "tables": tables}]}
    return parse_project(data, file=tmp_path / "audience.yaml", root=tmp_path)


def ingest(tmp_path: Path, project: Project) -> list[LandedTable]:
    con = landing_connection(project, tmp_path / "tmp")
    try:
        return [ingest_table(con, project, ref, tmp_path / "run") for ref in project.table_refs()]
    finally:
        con.close()


def rows(path: Path, order: str = "1") -> list[dict[str, Any]]:
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY {order}")
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def source_error(tmp_path: Path, project: Project) -> str:
    with pytest.raises(SourceError) as info:
        ingest(tmp_path, project)
    return str(info.value)


def check_contacts(landed: LandedTable, types: dict[str, str]) -> None:
    """The CRM table landed with its types, its good rows, and the two bad keys quarantined."""
    assert (landed.rows_in, landed.rows_loaded, landed.rows_quarantined) == (5, 3, 2)
    assert landed.columns == types
    got = rows(landed.path, "contact_id")
    assert [r["contact_id"] for r in got] == [1, 2, 3]
    assert [r["parent_id"] for r in got] == [None, 1, None]
    assert got[0]["full_name"] == "José Núñez" and got[1]["full_name"] == "Zoë Ångström"
    assert got[2]["full_name"] == "Renée O'Hara" and got[2]["notes"] == "line one\nline two"
    assert got[0]["modified_on"] == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert got[0]["birth_date"] == dt.date(1980, 2, 29) and got[1]["birth_date"] is None
    assert [r["balance"] for r in got] == [
        Decimal("1234.50") if types["balance"].startswith("DECIMAL") else 1234.5,
        Decimal("0.99") if types["balance"].startswith("DECIMAL") else 0.99,
        None,
    ]
    reasons = sorted(r["reason"] for r in rows(landed.quarantine_path))
    assert reasons[0].startswith("duplicate primary key 'contact_id' = 2 (first at row")
    assert reasons[1] == "primary key 'contact_id' is empty"


# ----------------------------------------------------------------------------- SQLite


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "crm.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE contacts (contact_id INTEGER, parent_id INTEGER, balance NUMERIC(10,2), "
        "birth_date DATE, modified_on TIMESTAMP, is_active BOOLEAN, full_name VARCHAR(100), "
        "notes TEXT)"
    )
    # SQLite has no decimal, date or boolean storage: floats, ISO text and 0/1, as apps do.
    db.executemany(
        "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (k, p, None if b is None else float(b), d and d.isoformat(),
             m and m.isoformat(sep=" "), None if a is None else int(a), n, t)
            for k, p, b, d, m, a, n, t in CONTACTS
        ],
    )  # fmt: skip
    db.execute("CREATE TABLE orders (order_id INTEGER, contact_id INTEGER, quantity INTEGER)")
    db.executemany("INSERT INTO orders VALUES (?, ?, ?)", ORDERS)
    db.commit()
    db.close()
    return path


SQLITE_TYPES = {
    "contact_id": "BIGINT",
    "parent_id": "BIGINT",
    "balance": "DOUBLE",
    "birth_date": "DATE",  # text in SQLite; landing infers the type from all values
    "modified_on": "TIMESTAMP",
    "is_active": "BOOLEAN",
    "full_name": "VARCHAR",
    "notes": "VARCHAR",
}


def test_sqlite_table_relative_path(tmp_path: Path, sqlite_db: Path) -> None:
    # A relative SQLite path is relative to the project file, like every other path.
    project = make_project(
        tmp_path, "sqlite:///crm.db", [{"name": "contacts", "primary_key": "contact_id",
                                         "table": "contacts"}]
    )  # fmt: skip
    (landed,) = ingest(tmp_path, project)
    check_contacts(landed, SQLITE_TYPES)
    assert rows(landed.path, "contact_id")[1]["is_active"] is False
    assert {r["table"] for r in rows(landed.quarantine_path)} == {"contacts"}


def test_sqlite_query_with_join(tmp_path: Path, sqlite_db: Path) -> None:
    query = """
        SELECT c.contact_id, c.full_name, sum(o.quantity) AS quantity
        FROM contacts c JOIN orders o ON o.contact_id = c.contact_id
        GROUP BY c.contact_id, c.full_name  -- a trailing comment and semicolon are fine
        ;
    """
    tables = [{"name": "buyers", "primary_key": "contact_id", "query": query}]
    project = make_project(tmp_path, f"sqlite:///{sqlite_db}", tables)
    assert describe_table(project, project.table_refs()[0]) == [
        "contact_id", "full_name", "quantity"
    ]  # fmt: skip
    (landed,) = ingest(tmp_path, project)
    assert landed.columns == {"contact_id": "BIGINT", "full_name": "VARCHAR", "quantity": "BIGINT"}
    assert [(r["contact_id"], r["quantity"]) for r in rows(landed.path, "contact_id")] == [
        (1, 7), (3, 1)
    ]  # fmt: skip


def test_types_widen_across_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches of 2 rows: a later batch that does not fit the type so far widens the column
    # instead of truncating (2.25 must not become 2) or failing.
    monkeypatch.setattr(sql, "BATCH_ROWS", 2)
    db = sqlite3.connect(tmp_path / "mixed.db")
    db.execute("CREATE TABLE t (id INTEGER, amount, late, mixed, flag BOOLEAN)")
    db.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
        [(1, 1, None, 1, 0), (2, 2, None, 2, 1), (3, 2.25, None, 2.5, 1),
         (4, 3, 7, 3, None), (5, None, 8, "n/a", 0), (6, 4, None, None, 1)],
    )  # fmt: skip
    db.commit()
    db.close()
    project = make_project(
        tmp_path, "sqlite:///mixed.db", [{"name": "t", "primary_key": "id", "table": "t"}]
    )
    (landed,) = ingest(tmp_path, project)
    assert landed.columns == {
        "id": "BIGINT", "amount": "DOUBLE", "late": "BIGINT", "mixed": "VARCHAR",
        "flag": "BOOLEAN",
    }  # fmt: skip
    got = rows(landed.path, "id")
    assert [r["amount"] for r in got] == [1.0, 2.0, 2.25, 3.0, None, 4.0]
    assert [r["late"] for r in got] == [None, None, None, 7, 8, None]
    assert [r["mixed"] for r in got][2:5] == ["2.5", "3.0", "n/a"]
    assert [r["flag"] for r in got] == [False, True, True, None, False, True]
    assert landed.rows_in == landed.rows_loaded == 6


def test_empty_table_keeps_declared_integers(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "empty.db")
    db.execute("CREATE TABLE t (id INTEGER, name TEXT)")
    db.close()
    project = make_project(
        tmp_path, "sqlite:///empty.db", [{"name": "t", "primary_key": "id", "table": "t"}]
    )
    (landed,) = ingest(tmp_path, project)
    assert (landed.rows_in, landed.columns) == (0, {"id": "BIGINT", "name": "VARCHAR"})


def test_sqlite_errors(tmp_path: Path, sqlite_db: Path) -> None:
    url = f"sqlite:///{sqlite_db}"
    tables = [{"name": "x", "primary_key": "id", "table": "nope"}]
    missing = make_project(tmp_path, url, tables)
    assert source_error(tmp_path, missing) == (
        "sources[0].tables[0].table: table 'nope' not found; tables are contacts, orders"
    )
    with pytest.raises(SourceError, match=r"^sources\[0\].tables\[0\].table: table 'nope'"):
        describe_table(missing, missing.table_refs()[0])
    bad_sql = [{"name": "x", "primary_key": "id", "query": "SELECT nope FROM contacts"}]
    message = source_error(tmp_path, make_project(tmp_path, url, bad_sql))
    assert message.startswith("sources[0].tables[0].query: query failed: no such column: nope")
    clash = [{"name": "x", "primary_key": "id", "query": "SELECT 1 AS id, 2 AS ID"}]
    message = source_error(tmp_path, make_project(tmp_path, url, clash))
    assert "columns 'id' and 'ID' have the same name" in message
    no_file = make_project(tmp_path, "sqlite:///absent.db", tables)
    assert source_error(tmp_path, no_file).startswith(
        "sources[0].url: SQLite database file not found: absent.db"
    )
    assert not (tmp_path / "absent.db").exists()  # and not created by connecting
    not_url = make_project(tmp_path, "crm database", tables)
    assert source_error(tmp_path, not_url).startswith(
        "sources[0].url: not a valid database URL: crm database"
    )


def test_env_var_url(tmp_path: Path, sqlite_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIENCE_TEST_CRM_DB", str(sqlite_db))
    tables = [{"name": "orders", "primary_key": "order_id", "table": "orders"}]
    project = make_project(tmp_path, "sqlite:///${AUDIENCE_TEST_CRM_DB}", tables)
    assert project.sources[0].url == f"sqlite:///{sqlite_db}"
    (landed,) = ingest(tmp_path, project)
    assert landed.rows_loaded == 3


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://audience:${AUDIENCE_TEST_SECRET}@127.0.0.1:1/crm",
        "mysql+pymysql://audience:${AUDIENCE_TEST_SECRET}@127.0.0.1:1/crm",
    ],
)
def test_unreachable_server_fails_fast_with_password_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("AUDIENCE_TEST_SECRET", "s3cr3t-pw")
    tables = [{"name": "contacts", "primary_key": "id", "table": "contacts"}]
    project = make_project(tmp_path, url, tables)
    started = time.monotonic()
    message = source_error(tmp_path, project)
    assert time.monotonic() - started < 15
    shown = url.split("://")[0] + "://audience:***@127.0.0.1:1/crm"
    assert message.startswith(f"sources[0].url: cannot connect to {shown}: ")
    assert "s3cr3t-pw" not in message and "refused" in message.lower()
    with pytest.raises(SourceError) as info:
        describe_table(project, project.table_refs()[0])
    assert "s3cr3t-pw" not in str(info.value)


# ------------------------------------------------------------ PostgreSQL and MariaDB


def masked(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def server(request: pytest.FixtureRequest) -> Any:
    """(url, contacts table, orders table, default schema) on a live server, dropped after."""
    env, default = SERVERS[request.param]
    url = os.environ.get(env, default)
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            schema = sa.inspect(conn).default_schema_name
    except Exception as e:  # any failure to reach it: skip, saying which server and why
        engine.dispose()
        reason = " ".join(str(getattr(e, "orig", None) or e).split())
        pytest.skip(f"{env}: cannot reach {masked(url)}: {reason}")
    suffix = uuid.uuid4().hex[:8]
    meta = sa.MetaData()
    contacts = sa.Table(
        f"crm_contacts_{suffix}",
        meta,
        sa.Column("contact_id", sa.Integer),  # no PRIMARY KEY: the source has bad keys
        sa.Column("parent_id", sa.Integer, nullable=True),
        sa.Column("balance", sa.Numeric(10, 2)),
        sa.Column("birth_date", sa.Date),
        sa.Column("modified_on", sa.DateTime),
        sa.Column("is_active", sa.Boolean),
        sa.Column("full_name", sa.String(100)),
        sa.Column("notes", sa.Text),
    )
    orders = sa.Table(
        f"crm_orders_{suffix}",
        meta,
        sa.Column("order_id", sa.Integer),
        sa.Column("contact_id", sa.Integer),
        sa.Column("quantity", sa.Integer),
    )
    with engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(
            contacts.insert(), [dict(zip(contacts.c.keys(), r, strict=True)) for r in CONTACTS]
        )
        conn.execute(orders.insert(), [dict(zip(orders.c.keys(), r, strict=True)) for r in ORDERS])
    try:
        yield url, contacts.name, orders.name, schema
    finally:
        meta.drop_all(engine)
        engine.dispose()


SERVER_TYPES = {
    "contact_id": "BIGINT",
    "parent_id": "BIGINT",
    "balance": "DECIMAL(10,2)",
    "birth_date": "DATE",
    "modified_on": "TIMESTAMP",
    "is_active": "BOOLEAN",  # MariaDB's BOOLEAN is TINYINT(1) holding 0/1
    "full_name": "VARCHAR",
    "notes": "VARCHAR",
}


def test_server_table(tmp_path: Path, server: Any) -> None:
    url, contacts, _, schema = server
    tables = [
        {"name": "contacts", "primary_key": "contact_id", "table": contacts},
        {"name": "qualified", "primary_key": "contact_id", "table": f"{schema}.{contacts}"},
    ]
    project = make_project(tmp_path, url, tables)
    assert describe_table(project, project.table_refs()[0]) == list(SERVER_TYPES)
    plain, qualified = ingest(tmp_path, project)
    check_contacts(plain, SERVER_TYPES)
    check_contacts(qualified, SERVER_TYPES)
    got = rows(plain.path, "contact_id")
    assert [r["is_active"] for r in got] == [True, False, None]
    quarantined = rows(plain.quarantine_path, "row")
    assert [(q["table"], q["file"], q["column"]) for q in quarantined] == [
        ("contacts", contacts, "contact_id")
    ] * 2


def test_server_query(tmp_path: Path, server: Any) -> None:
    url, contacts, orders, _ = server
    query = (
        f"SELECT c.contact_id, c.full_name, c.balance, o.order_id, o.quantity "
        f"FROM {contacts} c JOIN {orders} o ON o.contact_id = c.contact_id "
        f"WHERE o.quantity > 1 ORDER BY o.order_id"
    )
    project = make_project(tmp_path, url, [{"name": "big_orders", "primary_key": "order_id",
                                            "query": query}])  # fmt: skip
    assert describe_table(project, project.table_refs()[0]) == [
        "contact_id", "full_name", "balance", "order_id", "quantity"
    ]  # fmt: skip
    (landed,) = ingest(tmp_path, project)
    # A query's declared types are not known: a decimal's precision comes from its values.
    assert landed.columns.pop("balance").startswith("DECIMAL(")
    assert landed.columns == {
        "contact_id": "BIGINT", "full_name": "VARCHAR", "order_id": "BIGINT", "quantity": "BIGINT"
    }  # fmt: skip
    got = rows(landed.path, "order_id")
    assert [(r["order_id"], r["full_name"], r["balance"]) for r in got] == [
        (10, "José Núñez", Decimal("1234.50")), (11, "José Núñez", Decimal("1234.50"))
    ]  # fmt: skip


def test_server_errors(tmp_path: Path, server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url, contacts, _, _ = server
    missing = make_project(tmp_path, url, [{"name": "x", "primary_key": "id", "table": "nope"}])
    message = source_error(tmp_path, missing)
    assert message.startswith("sources[0].tables[0].table: table 'nope' not found; tables are ")
    assert contacts in message
    # A wrong user and password, given through the environment: rejected, password masked.
    monkeypatch.setenv("AUDIENCE_TEST_URL", url)
    monkeypatch.setenv("AUDIENCE_TEST_SECRET", "s3cr3t-pw")
    u = sa.make_url(url)
    port = f":{u.port}" if u.port else ""
    bad = f"{u.drivername}://audience_nobody:${{AUDIENCE_TEST_SECRET}}@{u.host}{port}/{u.database}"
    tables = [{"name": "x", "primary_key": "contact_id", "table": contacts}]
    message = source_error(tmp_path, make_project(tmp_path, bad, tables))
    assert message.startswith("sources[0].url: cannot connect to ")
    assert "audience_nobody:***@" in message and "s3cr3t-pw" not in message
    # The whole URL from the environment.
    (landed,) = ingest(tmp_path, make_project(tmp_path, "${AUDIENCE_TEST_URL}", tables))
    assert landed.rows_in == 5
