"""The Delta Lake connector: latest version after append and delete, types, clear errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from audience.ingest import (
    LandedTable,
    SourceError,
    describe_table,
    ingest_table,
    landing_connection,
)
from audience.project import Project, parse_project

SCHEMA = pa.schema(
    [
        ("contact_id", pa.int64()),
        ("parent_id", pa.int64()),
        ("full_name", pa.string()),
        ("balance", pa.decimal128(10, 2)),
        ("birth_date", pa.date32()),
        ("modified_on", pa.timestamp("us")),
        ("is_active", pa.bool_()),
    ]
)


def contacts(rows: list[tuple[Any, ...]]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows], SCHEMA)


@pytest.fixture
def delta_table(tmp_path: Path) -> Path:
    """Three commits: the first load, an append with a repeated and an empty key, a delete."""
    path = tmp_path / "lake" / "contacts"
    write_deltalake(
        str(path),
        contacts(
            [
                (1, None, "José Núñez", Decimal("1234.50"), dt.date(1980, 2, 29),
                 dt.datetime(2024, 1, 2, 3, 4, 5), True),
                (2, 1, "Zoë Ångström", Decimal("0.99"), None, None, False),
                (3, None, "Renée O'Hara", None, dt.date(1999, 12, 31), None, None),
            ]
        ),
    )  # fmt: skip
    write_deltalake(
        str(path),
        contacts(
            [
                (4, 2, "Björn", Decimal("5.00"), None, dt.datetime(2024, 3, 1), True),
                (4, 3, "Björn again", None, None, None, False),
                (None, 1, "No Key", None, None, None, None),
            ]
        ),
        mode="append",
    )
    DeltaTable(str(path)).delete("contact_id = 2")
    return path


def make_project(tmp_path: Path, table_path: str) -> Project:
    tables = [{"name": "contacts", "primary_key": "contact_id", "path": table_path}]
    data = {"name": "t", "sources": [{"name": "lake", "kind": "delta", "tables": tables}]}
    return parse_project(data, file=tmp_path / "audience.yaml", root=tmp_path)


def ingest(tmp_path: Path, project: Project) -> LandedTable:
    con = landing_connection(project, tmp_path / "tmp")
    try:
        (ref,) = project.table_refs()
        return ingest_table(con, project, ref, tmp_path / "run")
    finally:
        con.close()


def rows(path: Path, order: str) -> list[dict[str, Any]]:
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY {order}")
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def test_reads_latest_version(tmp_path: Path, delta_table: Path) -> None:
    assert DeltaTable(str(delta_table)).version() == 2
    project = make_project(tmp_path, "lake/contacts")  # relative to the project file
    assert describe_table(project, project.table_refs()[0]) == SCHEMA.names
    landed = ingest(tmp_path, project)
    # 6 rows written, 1 deleted; of the 5 left one repeats key 4 and one has no key.
    assert (landed.rows_in, landed.rows_loaded, landed.rows_quarantined) == (5, 3, 2)
    assert landed.columns == {
        "contact_id": "BIGINT",
        "parent_id": "BIGINT",
        "full_name": "VARCHAR",
        "balance": "DECIMAL(10,2)",
        "birth_date": "DATE",
        "modified_on": "TIMESTAMP",
        "is_active": "BOOLEAN",
    }
    got = rows(landed.path, "contact_id")
    assert [r["contact_id"] for r in got] == [1, 3, 4]  # 2 was deleted
    assert [r["parent_id"] for r in got] == [None, None, 2]
    assert got[0]["full_name"] == "José Núñez" and got[1]["full_name"] == "Renée O'Hara"
    assert [r["balance"] for r in got] == [Decimal("1234.50"), None, Decimal("5.00")]
    assert got[0]["birth_date"] == dt.date(1980, 2, 29)
    assert got[0]["modified_on"] == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert [r["is_active"] for r in got] == [True, None, True]

    quarantined = rows(landed.quarantine_path, "row")
    assert {q["file"] for q in quarantined} == {"lake/contacts"}
    reasons = sorted(q["reason"] for q in quarantined)
    assert reasons[0].startswith("duplicate primary key 'contact_id' = 4 (first at row ")
    assert reasons[1] == "primary key 'contact_id' is empty"
    assert "Björn again" in next(q["raw"] for q in quarantined if "duplicate" in q["reason"])
    # _row numbers every row of the version once, from 1.
    assert all(1 <= q["row"] <= 5 for q in quarantined)


def test_missing_folder(tmp_path: Path) -> None:
    project = make_project(tmp_path, "lake/absent")
    with pytest.raises(SourceError) as info:
        ingest(tmp_path, project)
    assert str(info.value).startswith(
        "sources[0].tables[0].path: folder not found: lake/absent (looked at "
    )
    with pytest.raises(SourceError, match=r"^sources\[0\]\.tables\[0\]\.path: folder not found"):
        describe_table(project, project.table_refs()[0])


def test_folder_that_is_not_a_delta_table(tmp_path: Path) -> None:
    (tmp_path / "lake" / "plain").mkdir(parents=True)
    (tmp_path / "lake" / "plain" / "part-0.parquet").write_bytes(b"")
    with pytest.raises(SourceError) as info:
        ingest(tmp_path, make_project(tmp_path, "lake/plain"))
    assert str(info.value).startswith(
        "sources[0].tables[0].path: lake/plain is not a Delta table (no _delta_log folder in "
    )
    (tmp_path / "lake" / "plain" / "_delta_log").mkdir()  # a log with no commits in it
    with pytest.raises(SourceError, match=r"^sources\[0\]\.tables\[0\]\.path: cannot open Delta"):
        ingest(tmp_path, make_project(tmp_path, "lake/plain"))
