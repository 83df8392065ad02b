"""One-pass landing of a CSV or Parquet file (landing.land_stream) gives what the careful way
(rows loaded with row numbers, types verified, then landed) gives, and falls back to it."""

from __future__ import annotations

import filecmp
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience.ingest import files, ingest_table, landing_connection
from audience.ingest.landing import land
from conftest import make_project


def project_with(tmp_path: Path, kind: str, path: str, **table):
    table = {"name": "t", "path": path, "primary_key": "id", **table}
    return make_project(tmp_path, [{"name": "s", "kind": kind, "tables": [table]}])


def rows(path: Path) -> list[tuple]:
    return duckdb.sql(f"SELECT * FROM '{path}'").fetchall()


def both_ways(project, tmp_path: Path, monkeypatch) -> tuple:
    """(one pass, careful way) landings of the project's one table; the first must not load."""
    ref = project.table_refs()[0]
    con = landing_connection(project, tmp_path / "tmp")
    stream = files.read_csv if ref.source.kind == "csv" else files.read_parquet
    with monkeypatch.context() as m:
        m.setattr("audience.ingest.land", lambda *a: pytest.fail("not landed in one pass"))
        fast = ingest_table(con, project, ref, tmp_path / "fast")
    raw = stream(con, ref, project, "t").load()
    out = tmp_path / "careful"
    careful = land(con, raw, ref, "t", out / "t.parquet", out / "q.parquet")
    return fast, careful


CSV = (
    "id,n,x,d,ts,b,name\n"
    "1,5,1.5,2024-01-02,2024-01-01 10:00:00,true,Ann\n"
    "2,-0,0.25,2024-1-5,2024-01-01T10:00:00+02:00,FALSE,Bob\n"
    "3, 7 ,-3,2024-03-04 ,2024-06-01 23:30:00Z,True,Cy\n"
    "4,0,.5,,2024-01-01 10:00,,\n"
    "5,-12,1e3,2023-12-31,2024-02-29 08:15:30.25,false,Dee\n"
)


def test_csv_one_pass_agrees_with_the_careful_way(tmp_path, monkeypatch):
    (tmp_path / "a.csv").write_text(CSV)
    fast, careful = both_ways(project_with(tmp_path, "csv", "a.csv"), tmp_path, monkeypatch)
    assert (
        fast.columns
        == careful.columns
        == {
            "id": "BIGINT",
            "n": "BIGINT",
            "x": "DOUBLE",
            "d": "DATE",
            "ts": "TIMESTAMP",
            "b": "BOOLEAN",
            "name": "VARCHAR",
        }
    )
    assert rows(fast.path) == rows(careful.path)
    assert [str(r[4]) for r in rows(fast.path)][:3] == [
        "2024-01-01 10:00:00",
        "2024-01-01 08:00:00",  # the offset converted to UTC
        "2024-06-01 23:30:00",
    ]
    assert (fast.rows_in, fast.rows_loaded, fast.rows_quarantined) == (5, 5, 0)


def test_csv_one_pass_keeps_rejected_lines(tmp_path, monkeypatch):
    (tmp_path / "a.csv").write_text("id,name\n1,a\n2\n3,c,x\n4,d\n")
    fast, careful = both_ways(project_with(tmp_path, "csv", "a.csv"), tmp_path, monkeypatch)
    assert rows(fast.path) == rows(careful.path) == [(1, "a"), (4, "d")]
    assert rows(fast.quarantine_path) == rows(careful.quarantine_path)
    assert [r[3] for r in rows(fast.quarantine_path)] == [3, 4]  # file line numbers
    assert fast.rows_in == 4 == fast.rows_loaded + fast.rows_quarantined


@pytest.mark.parametrize(
    ("late", "kind"),
    [("0042", "VARCHAR"), ("+42", "VARCHAR"), ("4.5", "DOUBLE"), ("n/a", "VARCHAR")],
)
def test_a_late_value_that_does_not_fit_falls_back_to_the_careful_way(tmp_path, late, kind):
    # The sniffer sees integers; the last value makes the column a code, a double or text.
    body = "".join(f"{i},{i * 10}\n" for i in range(1, 30000)) + f"30000,{late}\n"
    (tmp_path / "a.csv").write_text("id,score\n" + body)
    project = project_with(tmp_path, "csv", "a.csv")
    con = landing_connection(project, tmp_path / "tmp")
    landed = ingest_table(con, project, project.table_refs()[0], tmp_path / "run")
    assert landed.columns["score"] == kind
    assert landed.rows_loaded == 30000 and rows(landed.path)[-1][1] in (late, 4.5)


def test_csv_duplicate_key_and_override_failures_fall_back(tmp_path):
    (tmp_path / "a.csv").write_text("id,amount\n1,3\n2,x\n1,4\n")
    project = project_with(tmp_path, "csv", "a.csv", types={"amount": "double"})
    con = landing_connection(project, tmp_path / "tmp")
    landed = ingest_table(con, project, project.table_refs()[0], tmp_path / "run")
    assert rows(landed.path) == [(1, 3.0)]
    reasons = [r[5] for r in rows(landed.quarantine_path)]
    assert reasons == ["column amount: x is not a valid double", reasons[1]]
    assert reasons[1].startswith("duplicate primary key 'id' = 1 (first at row 2)")


def test_landed_parquet_file_is_copied_as_it_is(tmp_path, monkeypatch):
    table = pa.table(
        {"id": [3, 1, 2], "name": ["c", "a", None], "n": pa.array([1, 2, 3], pa.int32())}
    )
    pq.write_table(table, tmp_path / "a.parquet")
    fast, careful = both_ways(project_with(tmp_path, "parquet", "a.parquet"), tmp_path, monkeypatch)
    assert filecmp.cmp(tmp_path / "a.parquet", fast.path, shallow=False)
    assert rows(fast.path) == rows(careful.path) == [(3, "c", 1), (1, "a", 2), (2, None, 3)]
    assert fast.columns == careful.columns == {"id": "BIGINT", "name": "VARCHAR", "n": "INTEGER"}
    assert (fast.rows_loaded, fast.rows_quarantined) == (3, 0)


def test_parquet_is_rewritten_when_a_type_changes_or_the_layout_differs(tmp_path, monkeypatch):
    table = pa.table({"id": ["1", "2"], "born": ["2024-01-02", "2024-02-03"]})
    pq.write_table(table, tmp_path / "a.parquet")
    project = project_with(tmp_path, "parquet", "a.parquet", types={"born": "date"})
    fast, careful = both_ways(project, tmp_path, monkeypatch)
    assert not filecmp.cmp(tmp_path / "a.parquet", fast.path, shallow=False)
    assert rows(fast.path) == rows(careful.path)
    assert fast.columns == {"id": "VARCHAR", "born": "DATE"}
    # One row group of 300,000 rows would be read by one thread: not landed as it is.
    big = pa.table({"id": pa.array(range(300_000), pa.int64())})
    pq.write_table(big, tmp_path / "big.parquet", row_group_size=300_000)
    assert not files._as_landed(tmp_path / "big.parquet", ["id"])
    pq.write_table(big, tmp_path / "big.parquet", row_group_size=100_000)
    assert files._as_landed(tmp_path / "big.parquet", ["id"])
