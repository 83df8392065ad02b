"""Incremental folders: full load, hourly Upserts/Deletes, the current state."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience.ingest import describe_table, incremental, ingest_table, landing_connection
from audience.ingest.landing import SourceError
from audience.project import parse_project

NOW = datetime(2024, 1, 1, 14, 30, tzinfo=UTC)  # hour 14 has not ended yet


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch):
    # ingest_table calls incremental.read(con, ref, project, config_path): fix its clock.
    monkeypatch.setattr(incremental, "read", functools.partial(incremental.read, now=NOW))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def hour(folder: Path, stamp: str, kind: str, name: str = "part-0.csv") -> Path:
    """IncrementalData/<stamp>/<kind>/<name>, stamp like '2024/01/01/10'."""
    return folder / "IncrementalData" / stamp / kind / name


def project_for(tmp_path: Path, table: dict, fmt: str = "csv"):
    raw = {
        "name": "t",
        "sources": [{"name": "crm", "kind": "incremental", "format": fmt, "tables": [table]}],
    }
    return parse_project(raw, file=tmp_path / "audience.yaml", root=tmp_path)


def land(tmp_path: Path, project):
    con = landing_connection(project, tmp_path / "tmp")
    (ref,) = project.table_refs()
    return ingest_table(con, project, ref, tmp_path / "run")


def read_direct(tmp_path: Path, project, now: datetime = NOW):
    """Call the connector itself, for its counts."""
    con = landing_connection(project, tmp_path / "tmp2")
    (ref,) = project.table_refs()
    result = incremental.read(con, ref, project, ref.config_path(project), now=now)
    state = con.sql("SELECT * FROM _raw ORDER BY _file, _row").fetchall()
    return result, state


def rows(path: Path, order: str) -> list[tuple]:
    return duckdb.sql(f"SELECT * FROM '{path}' ORDER BY {order}").fetchall()


def quarantine(table) -> list[tuple]:
    return duckdb.sql(
        f"SELECT file, row, \"column\", reason FROM '{table.quarantine_path}' ORDER BY file, row"
    ).fetchall()


def basic_layout(folder: Path) -> None:
    write(
        folder / "FullData" / "contacts.csv",
        "ContactId,Name,City\n1,Ann,Oslo\n2,Bob,Rome\n3,Cy,Pisa\n4,Di,Nice\n",
    )
    write(
        hour(folder, "2024/01/01/10", "Upserts"), "ContactId,Name,City\n2,Bob,Milan\n5,Eve,Lyon\n"
    )
    write(hour(folder, "2024/01/01/11", "Deletes"), "ContactId\n3\n5\n")
    write(hour(folder, "2024/01/01/12", "Upserts"), "ContactId,Name,City\n3,Cy,Bari\n")
    # Same hour, no timestamp column: Deletes win over Upserts.
    write(hour(folder, "2024/01/01/13", "Upserts"), "ContactId,Name,City\n4,Di,Lille\n")
    write(hour(folder, "2024/01/01/13", "Deletes"), "ContactId\n4\n")
    # Hour 14 is still running at NOW: not read yet.
    write(hour(folder, "2024/01/01/14", "Upserts"), "ContactId,Name,City\n1,Ann,Paris\n")
    write(hour(folder, "2024/01/01/14", "Deletes"), "ContactId\n2\n")
    write(folder / "FullData" / "_SUCCESS", "")  # a marker, ignored


def test_full_load_with_upserts_and_deletes(tmp_path):
    basic_layout(tmp_path / "contacts")
    project = project_for(
        tmp_path, {"name": "contacts", "path": "contacts", "primary_key": "ContactId"}
    )
    landed = land(tmp_path, project)
    assert rows(landed.path, "ContactId") == [
        (1, "Ann", "Oslo"),  # full load; the hour-14 update is not read yet
        (2, "Bob", "Milan"),  # upserted in hour 10
        (3, "Cy", "Bari"),  # deleted in hour 11, upserted again in hour 12
        # 4: upserted and deleted in hour 13, the delete wins; 5: upserted, then deleted
    ]
    assert (landed.rows_in, landed.rows_loaded, landed.rows_quarantined) == (3, 3, 0)

    result, state = read_direct(tmp_path, project)
    assert [(f, r) for r, f, *_ in state] == [
        ("contacts/FullData/contacts.csv", 2),  # _row is the file's line number
        ("contacts/IncrementalData/2024/01/01/10/Upserts/part-0.csv", 2),
        ("contacts/IncrementalData/2024/01/01/12/Upserts/part-0.csv", 2),
    ]
    assert result.hours_read == [datetime(2024, 1, 1, h, tzinfo=UTC) for h in (10, 11, 12, 13)]
    assert result.hours_pending == [datetime(2024, 1, 1, 14, tzinfo=UTC)]
    assert result.delete_records == 3
    assert result.deleted_keys == 2  # 4 and 5
    assert result.deleted_rows == 3  # 4 (full load and hour 13) and 5 (hour 10)
    assert result.superseded_rows == 2  # 2 and 3 of the full load


def test_hour_read_once_it_has_ended(tmp_path):
    basic_layout(tmp_path / "contacts")
    project = project_for(
        tmp_path, {"name": "contacts", "path": "contacts", "primary_key": "ContactId"}
    )
    result, state = read_direct(tmp_path, project, now=datetime(2024, 1, 1, 15, 0, tzinfo=UTC))
    assert result.hours_pending == []
    assert sorted((k, city) for _, _, k, _, city in state) == [("1", "Paris"), ("3", "Bari")]


def test_timestamp_column_decides(tmp_path):
    folder = tmp_path / "contacts"
    write(
        folder / "FullData" / "a.csv",
        "ContactId,Name,ModifiedOn\n"
        "1,Ann,2024-01-01T08:00:00Z\n2,Bob,2024-01-01T08:00:00Z\n3,Cy,2024-01-01T08:00:00Z\n",
    )
    write(
        hour(folder, "2024/01/01/10", "Upserts"),
        "ContactId,Name,ModifiedOn\n"
        "1,Ann B,2024-01-01T10:20:00Z\n2,Bob B,2024-01-01T10:40:00Z\n4,Di,yesterday\n",
    )
    # Deletes carry only the key and the timestamp.
    write(
        hour(folder, "2024/01/01/10", "Deletes"),
        "ContactId,ModifiedOn\n"
        "1,2024-01-01T10:30:00Z\n2,2024-01-01T10:30:00Z\n,2024-01-01T10:30:00Z\n",
    )
    # A later hour, but an older change (09:30+02:00 is 07:30 UTC): the full load's 3 stays.
    write(
        hour(folder, "2024/01/01/11", "Upserts"),
        "ContactId,Name,ModifiedOn\n3,Cy C,2024-01-01T09:30:00+02:00\n",
    )
    project = project_for(
        tmp_path,
        {
            "name": "contacts",
            "path": "contacts",
            "primary_key": "ContactId",
            "timestamp_column": "ModifiedOn",
        },
    )
    landed = land(tmp_path, project)
    assert [(k, n) for k, n, _ in rows(landed.path, "ContactId")] == [(2, "Bob B"), (3, "Cy")]
    assert landed.columns["ModifiedOn"] == "TIMESTAMP"
    h10 = "contacts/IncrementalData/2024/01/01/10"
    assert quarantine(landed) == [
        (f"{h10}/Deletes/part-0.csv", 4, "ContactId", "Deletes row has no primary key 'ContactId'"),
        (
            f"{h10}/Upserts/part-0.csv",
            4,
            "ModifiedOn",
            "ModifiedOn: 'yesterday' is not a timestamp, so this change cannot be ordered",
        ),
    ]
    assert (landed.rows_in, landed.rows_loaded, landed.rows_quarantined) == (4, 2, 2)


def test_deletes_file_without_the_timestamp_column(tmp_path):
    folder = tmp_path / "contacts"
    write(folder / "FullData" / "a.csv", "ContactId,ModifiedOn\n1,2024-01-01T08:00:00Z\n")
    write(hour(folder, "2024/01/01/10", "Deletes"), "ContactId\n1\n")
    project = project_for(
        tmp_path,
        {
            "name": "contacts",
            "path": "contacts",
            "primary_key": "ContactId",
            "timestamp_column": "ModifiedOn",
        },
    )
    landed = land(tmp_path, project)
    assert landed.rows_loaded == 1
    assert quarantine(landed) == [
        (
            "contacts/IncrementalData/2024/01/01/10/Deletes/part-0.csv",
            2,
            "ModifiedOn",
            "Deletes file has no column 'ModifiedOn'",
        ),
    ]


def test_bad_lines_and_duplicate_versions_are_reported(tmp_path):
    folder = tmp_path / "contacts"
    # Key 7 twice in the full load: neither is newer, so landing reports the duplicate.
    write(folder / "FullData" / "a.csv", "ContactId,Name\n7,Gus\n7,Gus again\n8,Hal\n")
    write(hour(folder, "2024/01/01/10", "Upserts"), "ContactId,Name\n9,Ida\n10,Jo,extra\n")
    project = project_for(
        tmp_path, {"name": "contacts", "path": "contacts", "primary_key": "ContactId"}
    )
    landed = land(tmp_path, project)
    assert [k for k, _ in rows(landed.path, "ContactId")] == [7, 8, 9]
    problems = quarantine(landed)
    assert problems[0][:3] == ("contacts/FullData/a.csv", 3, "ContactId")
    assert problems[0][3].startswith("duplicate primary key 'ContactId' = 7")
    assert problems[1][:2] == ("contacts/IncrementalData/2024/01/01/10/Upserts/part-0.csv", 3)
    assert problems[1][3].startswith("TOO MANY COLUMNS")
    assert (landed.rows_in, landed.rows_loaded, landed.rows_quarantined) == (5, 3, 2)


def write_parquet(path: Path, columns: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def test_parquet_format(tmp_path):
    folder = tmp_path / "orders"
    write_parquet(
        folder / "FullData" / "part-0.parquet",
        {"OrderId": pa.array([1, 2, 3], pa.int64()), "Total": pa.array([10.0, 20.0, 30.0])},
    )
    write_parquet(
        hour(folder, "2024/01/01/09", "Upserts", "a.parquet"),
        {"OrderId": pa.array([2, 4], pa.int64()), "Total": pa.array([25.0, 40.0])},
    )
    write_parquet(
        hour(folder, "2024/01/01/10", "Deletes", "a.parquet"),
        {"OrderId": pa.array([3], pa.int64())},
    )
    write(hour(folder, "2024/01/01/10", "Upserts", "broken.parquet"), "not parquet at all")
    write(hour(folder, "2024/01/01/10", "Upserts", "notes.json"), "{}")
    project = project_for(
        tmp_path, {"name": "orders", "path": "orders", "primary_key": "OrderId"}, fmt="parquet"
    )
    landed = land(tmp_path, project)
    assert landed.columns == {"OrderId": "BIGINT", "Total": "DOUBLE"}
    assert rows(landed.path, "OrderId") == [(1, 10.0), (2, 25.0), (4, 40.0)]
    h10 = "orders/IncrementalData/2024/01/01/10/Upserts"
    problems = quarantine(landed)
    assert [(f, r) for f, r, _, _ in problems] == [
        (f"{h10}/broken.parquet", None),
        (f"{h10}/notes.json", None),
    ]
    assert problems[0][3].startswith("cannot read parquet file")
    assert problems[1][3] == f"{h10}/notes.json is not a parquet file (.parquet); not read"
    assert (landed.rows_in, landed.rows_loaded, landed.rows_quarantined) == (5, 3, 2)
    assert describe_table(project, project.table_refs()[0]) == ["OrderId", "Total"]


@pytest.mark.parametrize("stamp", ["2026/13/01/25", "2026/01/32/00", "2026/01/01/24"])
def test_malformed_hour_folder(tmp_path, stamp):
    folder = tmp_path / "contacts"
    write(folder / "FullData" / "a.csv", "ContactId\n1\n")
    write(hour(folder, stamp, "Upserts"), "ContactId\n2\n")
    project = project_for(
        tmp_path, {"name": "contacts", "path": "contacts", "primary_key": "ContactId"}
    )
    with pytest.raises(SourceError) as err:
        land(tmp_path, project)
    assert str(err.value).startswith(
        f"sources[0].tables[0].path: IncrementalData/{stamp} is not a UTC hour folder"
    )


def test_folder_that_is_not_an_hour(tmp_path):
    folder = tmp_path / "contacts"
    write(folder / "IncrementalData" / "2024" / "Upserts" / "a.csv", "ContactId\n2\n")
    project = project_for(
        tmp_path, {"name": "contacts", "path": "contacts", "primary_key": "ContactId"}
    )
    with pytest.raises(SourceError, match=r"IncrementalData/2024/Upserts is not a UTC hour"):
        land(tmp_path, project)


def test_only_pending_hours_give_an_empty_table(tmp_path):
    write(hour(tmp_path / "c", "2024/01/01/14", "Upserts"), "ContactId,Name\n1,Ann\n")
    project = project_for(tmp_path, {"name": "c", "path": "c", "primary_key": "ContactId"})
    landed = land(tmp_path, project)
    assert (landed.rows_in, landed.rows_loaded) == (0, 0)


def test_no_data_at_all(tmp_path):
    (tmp_path / "c").mkdir()
    project = project_for(tmp_path, {"name": "c", "path": "c", "primary_key": "ContactId"})
    with pytest.raises(SourceError, match=r"^sources\[0\]\.tables\[0\]\.path: no data in c"):
        land(tmp_path, project)
