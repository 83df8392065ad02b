"""CSV, Parquet and JSON connectors through landing: types, quarantine, and no lost rows."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience.ingest import SourceError, ingest_table, landing_connection
from audience.validate import validate_project
from conftest import make_project


def land_all(project, tmp_path: Path):
    con = landing_connection(project, tmp_path / "tmp")
    return {
        ref.id: ingest_table(con, project, ref, tmp_path / "run") for ref in project.table_refs()
    }


def rows(path: Path) -> list[tuple]:
    return duckdb.sql(f"SELECT * FROM '{path}'").fetchall()


def quarantine(path: Path) -> list[dict]:
    return duckdb.sql(f"SELECT * FROM '{path}' ORDER BY row").df().to_dict("records")


def csv_project(tmp_path, text: str, table: dict | None = None, encoding="utf-8", **options):
    (tmp_path / "crm.csv").write_bytes(text.encode(encoding))
    table = {"name": "contacts", "path": "crm.csv", "primary_key": "id", **(table or {})}
    source = {"name": "crm", "kind": "csv", "tables": [table]}
    if options or encoding != "utf-8":
        source["options"] = {**options, **({"encoding": encoding} if encoding != "utf-8" else {})}
    return make_project(tmp_path, [source])


def test_csv_types_inferred_from_all_values(tmp_path):
    text = "id,name,zip,amount,born,seen,vip\n"
    text += "1,Ann,01234,3.5,1990-01-02,2024-01-01 10:00:00,true\n"
    text += '2,"Smith, Bob",10115,4,1985-12-31,2024-02-01 11:30:00,false\n'
    landed = land_all(csv_project(tmp_path, text), tmp_path)["crm_contacts"]
    assert landed.columns == {
        "id": "BIGINT",
        "name": "VARCHAR",
        "zip": "VARCHAR",
        "amount": "DOUBLE",
        "born": "DATE",
        "seen": "TIMESTAMP",
        "vip": "BOOLEAN",
    }
    got = rows(landed.path)
    assert got[1][1] == "Smith, Bob" and got[0][2] == "01234"  # leading zero kept: a code
    assert (landed.rows_in, landed.rows_loaded, landed.rows_quarantined) == (2, 2, 0)


def test_csv_late_bad_value_keeps_text_type_instead_of_losing_rows(tmp_path):
    body = "".join(f"{i},{i * 10}\n" for i in range(1, 30000)) + "30000,n/a\n"
    landed = land_all(csv_project(tmp_path, "id,score\n" + body), tmp_path)["crm_contacts"]
    assert landed.columns["score"] == "VARCHAR"  # a sampling sniffer would have said BIGINT
    assert landed.rows_loaded == 30000


def test_csv_wrong_type_under_override_is_quarantined(tmp_path):
    text = "id,amount,born\n1,3.5,01/02/1990\n2,x,02/03/1991\n3,4,31/12/1999\n"
    table = {"types": {"amount": "double", "born": {"type": "date", "format": "%m/%d/%Y"}}}
    landed = land_all(csv_project(tmp_path, text, table), tmp_path)["crm_contacts"]
    assert landed.columns["born"] == "DATE"
    assert [r[0] for r in rows(landed.path)] == [1]
    q = quarantine(landed.quarantine_path)
    assert [(r["row"], r["column"]) for r in q] == [(3, "amount"), (4, "born")]
    assert q[0]["reason"] == "column amount: x is not a valid double"
    assert q[1]["reason"] == "column born: 31/12/1999 is not a date in the format %m/%d/%Y"
    assert json.loads(q[0]["raw"]) == {"id": "2", "amount": "x", "born": "02/03/1991"}
    assert q[0]["file"] == "crm.csv"
    assert landed.rows_in == 3 == landed.rows_loaded + landed.rows_quarantined


def test_ragged_rows_quarantined_with_line_numbers(tmp_path):
    text = (
        "id,name,city\n1,Ann,Oslo\n2,Bob\n3,Cy,Rome,extra\n4,Dee,Paris\n"
        '5,"multi\nline",Bonn\n6,Eve,Lima\n'
    )
    landed = land_all(csv_project(tmp_path, text), tmp_path)["crm_contacts"]
    q = quarantine(landed.quarantine_path)
    assert [r["row"] for r in q] == [3, 4]
    assert "MISSING COLUMNS" in q[0]["reason"] and q[0]["raw"] == "2,Bob"
    assert "TOO MANY COLUMNS" in q[1]["reason"] and q[1]["raw"] == "3,Cy,Rome,extra"
    assert [r[0] for r in rows(landed.path)] == [1, 4, 5, 6]
    assert rows(landed.path)[2][1] == "multi\nline"
    assert landed.rows_in == 6 == landed.rows_loaded + landed.rows_quarantined


def test_null_and_duplicate_keys_go_to_quarantine(tmp_path):
    text = "id,name\nA1,Ann\nA2,Bob\nA1,Ann again\n,No key\n  ,Blank key\nA3,Cy\n"
    landed = land_all(csv_project(tmp_path, text), tmp_path)["crm_contacts"]
    assert rows(landed.path) == [("A1", "Ann"), ("A2", "Bob"), ("A3", "Cy")]
    q = quarantine(landed.quarantine_path)
    assert [(r["row"], r["column"], r["reason"]) for r in q] == [
        (4, "id", "duplicate primary key 'id' = A1 (first at row 2)"),
        (5, "id", "primary key 'id' is empty"),
        (6, "id", "primary key 'id' is empty"),
    ]
    assert landed.rows_in == 6 == landed.rows_loaded + landed.rows_quarantined


def test_duplicate_key_row_numbers_count_rejected_lines(tmp_path):
    text = "id,name\n1,a\n2\n3,c,x\n1,d\n"
    landed = land_all(csv_project(tmp_path, text), tmp_path)["crm_contacts"]
    assert [(r["row"], r["reason"][:9]) for r in quarantine(landed.quarantine_path)] == [
        (3, "MISSING C"),
        (4, "TOO MANY "),
        (5, "duplicate"),
    ]


def test_csv_options_delimiter_quote_encoding_no_header(tmp_path):
    text = "1;'Müller; Jörg';München\n2;'Ødegård';Bergen\n"
    table = {"primary_key": "column0"}
    project = csv_project(
        tmp_path, text, table, encoding="latin-1", delimiter=";", quote="'", header=False
    )
    landed = land_all(project, tmp_path)["crm_contacts"]
    assert rows(landed.path) == [(1, "Müller; Jörg", "München"), (2, "Ødegård", "Bergen")]
    assert landed.rows_quarantined == 0


def test_missing_file_and_bad_key_column_name_the_config_path(tmp_path):
    project = make_project(
        tmp_path,
        [
            {
                "name": "crm",
                "kind": "csv",
                "tables": [{"name": "contacts", "path": "nope.csv", "primary_key": "id"}],
            }
        ],
    )
    with pytest.raises(
        SourceError, match=r"sources\[0\]\.tables\[0\]\.path: file not found: nope.csv"
    ):
        land_all(project, tmp_path)
    (tmp_path / "crm.csv").write_text("contact_id,name\n1,a\n")
    project = csv_project(tmp_path, "contact_id,name\n1,a\n")
    expected = (
        "sources[0].tables[0].primary_key: column 'id' not in crm.csv; columns are contact_id, name"
    )
    with pytest.raises(SourceError) as info:
        land_all(project, tmp_path)
    assert str(info.value) == expected
    assert validate_project(project) == [expected]


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="crm.csv is empty"):
        land_all(csv_project(tmp_path, ""), tmp_path)


def test_parquet_file_and_folder(tmp_path):
    table = pa.table(
        {
            "id": [1, 2, 2, None],
            "name": ["a", "b", "c", "d"],
            "ts": pa.array([0, 1, 2, 3], pa.timestamp("us")),
        }
    )
    pq.write_table(table, tmp_path / "one.parquet")
    (tmp_path / "parts").mkdir()
    pq.write_table(table.slice(0, 2), tmp_path / "parts" / "a.parquet")
    pq.write_table(table.slice(2, 2), tmp_path / "parts" / "b.parquet")
    project = make_project(
        tmp_path,
        [
            {
                "name": "shop",
                "kind": "parquet",
                "tables": [
                    {"name": "one", "path": "one.parquet", "primary_key": "id"},
                    {"name": "parts", "path": "parts", "primary_key": "id"},
                ],
            }
        ],
    )
    landed = land_all(project, tmp_path)
    for name in ("shop_one", "shop_parts"):
        t = landed[name]
        assert t.columns == {"id": "BIGINT", "name": "VARCHAR", "ts": "TIMESTAMP"}
        assert [r[:2] for r in rows(t.path)] == [(1, "a"), (2, "b")]
        assert (t.rows_in, t.rows_quarantined) == (4, 2)
    q = quarantine(landed["shop_parts"].quarantine_path)
    assert [(r["file"].rsplit("/", 1)[-1], r["row"]) for r in q] == [
        ("b.parquet", 1),
        ("b.parquet", 2),
    ]


def test_json_lines_with_bad_lines(tmp_path):
    lines = [
        '{"id": "L1", "name": "Zoë", "points": 10, "joined": "2020-01-31"}',
        "",
        '{"id": "L2", "name": "Bob", "points": ',
        "[1, 2]",
        '{"id": "L3", "name": "Cy", "points": null, "extra": {"a": 1}}',
    ]
    (tmp_path / "members.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    project = make_project(
        tmp_path,
        [
            {
                "name": "loyalty",
                "kind": "json",
                "tables": [{"name": "members", "path": "members.jsonl", "primary_key": "id"}],
            }
        ],
    )
    landed = land_all(project, tmp_path)["loyalty_members"]
    got = rows(landed.path)
    assert [r[:3] for r in got] == [("L1", "Zoë", 10), ("L3", "Cy", None)]
    assert landed.columns["joined"] == "DATE"
    q = quarantine(landed.quarantine_path)
    assert [(r["row"], r["reason"].split(":")[0]) for r in q] == [
        (3, "not valid JSON"),
        (4, "line is not a JSON object"),
    ]
    assert q[0]["raw"] == '{"id": "L2", "name": "Bob", "points": '
    assert landed.rows_in == 4 == landed.rows_loaded + landed.rows_quarantined


def test_json_array_file(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps([{"id": 1, "n": "a"}, 5, {"id": 2, "n": "b"}]))
    project = make_project(
        tmp_path,
        [
            {
                "name": "l",
                "kind": "json",
                "tables": [{"name": "m", "path": "m.json", "primary_key": "id"}],
            }
        ],
    )
    landed = land_all(project, tmp_path)["l_m"]
    assert rows(landed.path) == [(1, "a"), (2, "b")]
    assert quarantine(landed.quarantine_path)[0]["reason"] == "array element is not a JSON object"


def test_broken_json_array_is_an_error_with_position(tmp_path):
    (tmp_path / "m.json").write_text('[{"id": 1},\n {"id": 2,,}]')
    project = make_project(
        tmp_path,
        [
            {
                "name": "l",
                "kind": "json",
                "tables": [{"name": "m", "path": "m.json", "primary_key": "id"}],
            }
        ],
    )
    with pytest.raises(
        SourceError,
        match=r"sources\[0\]\.tables\[0\]\.path: m.json is not valid "
        r"JSON: .* at line 2",
    ):
        land_all(project, tmp_path)


def test_text_timestamps_with_offsets_become_utc(tmp_path):
    text = "id,seen\n1,2024-01-01T10:00:00+02:00\n2,2024-01-01 10:00:00\n3,2024-06-01T23:30:00Z\n"
    landed = land_all(csv_project(tmp_path, text), tmp_path)["crm_contacts"]
    assert landed.columns["seen"] == "TIMESTAMP"
    assert [str(r[1]) for r in rows(landed.path)] == [
        "2024-01-01 08:00:00",
        "2024-01-01 10:00:00",
        "2024-06-01 23:30:00",
    ]


def test_typed_parquet_strings_are_not_reinferred(tmp_path):
    pq.write_table(pa.table({"id": ["1", "2"], "zip": ["12345", "54321"]}), tmp_path / "a.parquet")
    project = make_project(
        tmp_path,
        [
            {
                "name": "s",
                "kind": "parquet",
                "tables": [{"name": "a", "path": "a.parquet", "primary_key": "id"}],
            }
        ],
    )
    assert land_all(project, tmp_path)["s_a"].columns == {"id": "VARCHAR", "zip": "VARCHAR"}
