"""CDM connector: model.json and manifest.cdm.json folders (fixtures in tests/data)."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from audience.ingest import describe_table, ingest_table, landing_connection
from audience.ingest.cdm import _glob_regex, _local_path
from audience.ingest.landing import SourceError
from audience.project import parse_project

DATA = Path(__file__).parent / "data"


def make_project(tmp_path: Path, folder: str, tables: list[dict], root: Path = DATA):
    raw = {
        "name": "t",
        "sources": [
            {
                "name": "other",
                "kind": "csv",
                "tables": [{"name": "x", "path": "x.csv", "primary_key": "id"}],
            },
            {"name": "crm", "kind": "cdm", "path": folder, "tables": tables},
        ],
    }
    return parse_project(raw, file=tmp_path / "audience.yaml", root=root)


def land(tmp_path: Path, project) -> dict:
    con = landing_connection(project, tmp_path / "tmp")
    refs = [r for r in project.table_refs() if r.source.kind == "cdm"]
    return {r.table.name: ingest_table(con, project, r, tmp_path / "run") for r in refs}


def rows(path: Path, order: str) -> list[dict]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # TIMESTAMPTZ needs pytz to reach Python: compare those as text.
    cols = [
        f'CAST("{name}" AS VARCHAR) AS "{name}"'
        if kind == "TIMESTAMP WITH TIME ZONE"
        else f'"{name}"'
        for name, kind, *_ in con.sql(f"DESCRIBE SELECT * FROM '{path}'").fetchall()
    ]
    rel = con.sql(f"SELECT {', '.join(cols)} FROM '{path}' ORDER BY {order}")
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def quarantine(table) -> list[tuple]:
    return [
        (r["file"], r["row"], r["column"], r["reason"])
        for r in rows(table.quarantine_path, "file, row")
    ]


TABLES = [
    {"name": "Contact", "primary_key": "ContactId"},
    {"name": "Order", "primary_key": "OrderId"},
]


def test_model_json_folder(tmp_path):
    landed = land(tmp_path, make_project(tmp_path, "cdm_model_json", TABLES))
    contact = landed["Contact"]
    assert contact.columns == {
        "ContactId": "VARCHAR",
        "FirstName": "VARCHAR",
        "LastName": "VARCHAR",
        "Email": "VARCHAR",
        "Birthdate": "DATE",
        "CreditLimit": "DECIMAL(38,10)",
        "IsActive": "BOOLEAN",
        "ModifiedOn": "TIMESTAMP",
        "LoyaltyPoints": "BIGINT",
    }
    got = rows(contact.path, "ContactId")
    # C005 and C006 come from the partition whose location is an https URL.
    assert [r["ContactId"] for r in got] == ["C001", "C003", "C005", "C006"]
    ann, cara, _, finn = got
    assert ann["Birthdate"] == date(1985, 4, 12)
    assert ann["CreditLimit"] == Decimal("1500.5")
    assert ann["IsActive"] is True
    assert ann["LoyaltyPoints"] == 120
    assert cara["CreditLimit"] is None
    # '2024-03-03T11:30:00+02:00' is converted to UTC, not cut to 11:30.
    assert cara["ModifiedOn"] == datetime(2024, 3, 3, 9, 30)
    assert finn["Email"] is None and finn["LoyaltyPoints"] is None

    part1 = "cdm_model_json/Contact/Contact-part1.csv"
    problems = quarantine(contact)
    assert problems[0] == (
        part1,
        2,
        "Birthdate",
        "Birthdate: '1990-13-45' is not a date as declared in model.json",
    )
    file, row, column, reason = problems[1]
    assert (file, row, column) == (part1, 4, "Birthdate")  # first missing attribute
    assert reason.startswith("MISSING COLUMNS")
    assert len(problems) == 2
    q = rows(contact.quarantine_path, "row")
    assert json.loads(q[0]["raw"])["FirstName"] == "Bob, Jr."
    assert q[1]["raw"] == "C004,Dan,Evans,dan.evans@example.com"
    assert (contact.rows_in, contact.rows_loaded, contact.rows_quarantined) == (6, 4, 2)

    order = landed["Order"]
    assert order.columns["OrderDate"] == "TIMESTAMP"
    assert order.columns["Quantity"] == "BIGINT"
    assert [(r["OrderId"], r["Quantity"]) for r in rows(order.path, "OrderId")] == [
        ("O-1001", 2),
        ("O-1002", 1),
        ("O-1003", 3),
    ]
    assert (order.rows_in, order.rows_loaded, order.rows_quarantined) == (3, 3, 0)


def test_manifest_folder(tmp_path):
    landed = land(tmp_path, make_project(tmp_path, "cdm_manifest", TABLES))
    contact = landed["Contact"]
    assert contact.columns == {
        "ContactId": "VARCHAR",
        "FullName": "VARCHAR",
        "Email": "VARCHAR",
        "Birthdate": "DATE",
        "LoyaltyPoints": "INTEGER",
        "CreditLimit": "DECIMAL(38,10)",
        "IsActive": "BOOLEAN",
        "CreatedOn": "TIMESTAMP",
        "ModifiedOn": "TIMESTAMP WITH TIME ZONE",
    }
    got = rows(contact.path, "FullName")
    assert [r["FullName"] for r in got] == ["Ann Lee", "Cara Diaz"]
    assert got[0]["ContactId"] == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    assert got[0]["ModifiedOn"] == "2024-03-01 08:15:00+00"
    assert got[0]["CreatedOn"] == datetime(2023, 1, 5, 10, 0)

    csv = "cdm_manifest/Contact/Contact-1.csv"  # has a header: line numbers start at 2
    problems = quarantine(contact)
    assert problems[0] == (
        csv,
        3,
        "LoyaltyPoints",
        "LoyaltyPoints: 'forty' is not an Int32 as declared in manifest.cdm.json",
    )
    assert problems[1][:3] == (csv, 5, "IsActive")
    assert problems[1][3].startswith("MISSING COLUMNS")
    assert problems[2] == (
        csv,
        6,
        "ContactId",
        "ContactId: 'not-a-guid' is not a Guid as declared in manifest.cdm.json",
    )
    assert (contact.rows_in, contact.rows_loaded, contact.rows_quarantined) == (5, 2, 3)

    # Order: a Parquet partition found by a dataPartitionPattern; int32 widened to Int64.
    order = landed["Order"]
    assert order.columns == {
        "OrderId": "VARCHAR",
        "ContactId": "VARCHAR",
        "OrderDate": "TIMESTAMP",
        "Total": "DOUBLE",
        "Quantity": "BIGINT",
    }
    got = rows(order.path, "OrderId")
    assert [(r["OrderId"], r["Total"], r["Quantity"]) for r in got] == [
        ("O-1001", 59.9, 2),
        ("O-1002", 120.0, 1),
        ("O-1003", 15.5, 3),
    ]
    assert got[1]["OrderDate"] == datetime(2024, 3, 11, 9, 30)
    assert (order.rows_in, order.rows_loaded, order.rows_quarantined) == (3, 3, 0)


@pytest.mark.parametrize("folder", ["cdm_model_json", "cdm_manifest"])
def test_describe_gives_declared_attributes(tmp_path, folder):
    project = make_project(tmp_path, folder, TABLES)
    refs = [r for r in project.table_refs() if r.source.kind == "cdm"]
    assert describe_table(project, refs[1]) == [
        "OrderId",
        "ContactId",
        "OrderDate",
        "Total",
        "Quantity",
    ]


def test_entity_name_differs_from_table_name(tmp_path):
    project = make_project(
        tmp_path, "cdm_manifest", [{"name": "orders", "entity": "Order", "primary_key": "OrderId"}]
    )
    assert land(tmp_path, project)["orders"].rows_loaded == 3


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        (
            "cdm_manifest",
            "sources[1].tables[0].entity: entity 'Customer' not in manifest.cdm.json; "
            "entities are Contact, Order",
        ),
        (
            "cdm_model_json",
            "sources[1].tables[0].entity: entity 'Customer' not in model.json; "
            "entities are Contact, Order",
        ),
        ("no_such_folder", "sources[1].path: folder not found: no_such_folder"),
    ],
)
def test_unknown_entity_or_folder(tmp_path, folder, message):
    project = make_project(
        tmp_path, folder, [{"name": "c", "entity": "Customer", "primary_key": "ContactId"}]
    )
    with pytest.raises(SourceError) as err:
        land(tmp_path, project)
    assert str(err.value).startswith(message)


def write_model(folder: Path, attributes: list[str], location: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model = {
        "name": "m",
        "version": "1.0",
        "entities": [
            {
                "$type": "LocalEntity",
                "name": "Thing",
                "attributes": [{"name": a, "dataType": "int64"} for a in attributes],
                "partitions": [{"name": "p", "location": location}],
            }
        ],
    }
    (folder / "model.json").write_text(json.dumps(model))


def test_partition_written_before_attributes_were_added(tmp_path):
    # A headerless partition with fewer columns than attributes: the trailing ones are NULL.
    write_model(tmp_path / "lake", ["Id", "A", "B"], "Thing/old.csv")
    (tmp_path / "lake" / "Thing").mkdir()
    (tmp_path / "lake" / "Thing" / "old.csv").write_text("1,10\n2,20\n")
    project = make_project(
        tmp_path, "lake", [{"name": "Thing", "primary_key": "Id"}], root=tmp_path
    )
    thing = land(tmp_path, project)["Thing"]
    assert rows(thing.path, "Id") == [{"Id": 1, "A": 10, "B": None}, {"Id": 2, "A": 20, "B": None}]


def test_partition_with_more_columns_than_attributes(tmp_path):
    write_model(tmp_path / "lake", ["Id"], "Thing/wide.csv")
    (tmp_path / "lake" / "Thing").mkdir()
    (tmp_path / "lake" / "Thing" / "wide.csv").write_text("1,10\n")
    project = make_project(
        tmp_path, "lake", [{"name": "Thing", "primary_key": "Id"}], root=tmp_path
    )
    with pytest.raises(
        SourceError,
        match=r"^sources\[1\]\.path: partition lake/Thing/wide.csv: "
        "has 2 columns but model.json declares 1",
    ):
        land(tmp_path, project)


def test_missing_partition_file(tmp_path):
    write_model(tmp_path / "lake", ["Id"], "https://acct.dfs.core.windows.net/c/lake/Thing/x.csv")
    project = make_project(
        tmp_path, "lake", [{"name": "Thing", "primary_key": "Id"}], root=tmp_path
    )
    with pytest.raises(SourceError, match=r"^sources\[1\]\.path: location https://acct.*not found"):
        land(tmp_path, project)


def test_location_mapping(tmp_path):
    (tmp_path / "Contact").mkdir()
    (tmp_path / "Contact" / "p1.csv").write_text("x")
    (tmp_path / "p1.csv").write_text("x")
    url = "https://acct.dfs.core.windows.net/container/crm/Contact/p1.csv"
    # The longest trailing part that exists wins: Contact/p1.csv, not the p1.csv beside it.
    assert _local_path(url, tmp_path, "w") == tmp_path / "Contact" / "p1.csv"
    abfss = "abfss://container@acct.dfs.core.windows.net/crm/Contact/p1.csv"
    assert _local_path(abfss, tmp_path, "w") == tmp_path / "Contact" / "p1.csv"
    assert _local_path("adls:/crm/Contact/p1.csv", tmp_path, "w") == tmp_path / "Contact" / "p1.csv"
    assert _local_path("local:/p1.csv", tmp_path, "w") == tmp_path / "p1.csv"
    assert _local_path("Contact/p1.csv", tmp_path, "w") == tmp_path / "Contact" / "p1.csv"
    encoded = "https://acct.dfs.core.windows.net/c/My%20Folder/q.csv"
    (tmp_path / "My Folder").mkdir()
    (tmp_path / "My Folder" / "q.csv").write_text("x")
    assert _local_path(encoded, tmp_path, "w") == tmp_path / "My Folder" / "q.csv"
    with pytest.raises(SourceError, match="^w: location Contact/p2.csv not found"):
        _local_path("Contact/p2.csv", tmp_path, "w")


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("*.csv", "/a.csv", True),
        ("*.csv", "/2024/a.csv", True),
        ("/*.csv", "/2024/a.csv", False),
        ("/**/*.csv", "/a.csv", True),
        ("/**/*.csv", "/2024/01/a.csv", True),
        ("/2024/*.parquet", "/2024/a.parquet", True),
        ("/2024/*.parquet", "/2024/a.csv", False),
    ],
)
def test_partition_pattern_glob(glob, path, matches):
    assert bool(re.fullmatch(_glob_regex(glob), path)) is matches


def test_sub_manifest_and_regular_expression_pattern(tmp_path):
    lake = tmp_path / "lake"
    (lake / "sales" / "Visit" / "2024").mkdir(parents=True)
    (lake / "manifest.cdm.json").write_text(
        json.dumps(
            {
                "manifestName": "root",
                "entities": [],
                "subManifests": [
                    {"manifestName": "sales", "definition": "sales/sales.manifest.cdm.json"}
                ],
            }
        )
    )
    (lake / "sales" / "sales.manifest.cdm.json").write_text(
        json.dumps(
            {
                "manifestName": "sales",
                "entities": [
                    {
                        "type": "LocalEntity",
                        "entityName": "Visit",
                        "entityPath": "Visit.cdm.json/Visit",
                        "dataPartitionPatterns": [
                            {
                                "rootLocation": "Visit",
                                "regularExpression": "/(\\d{4})/visits-.+\\.csv",
                                "exhibitsTraits": [
                                    {
                                        "traitReference": "is.partition.format.CSV",
                                        "arguments": [
                                            {"name": "columnHeaders", "value": "true"},
                                            {"name": "delimiter", "value": ";"},
                                        ],
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    )
    (lake / "sales" / "Visit.cdm.json").write_text(
        json.dumps(
            {
                "definitions": [
                    {
                        "entityName": "Visit",
                        "hasAttributes": [
                            {"name": "VisitId", "dataFormat": "Int64"},
                            {"name": "VisitedOn", "dataFormat": "Date"},
                        ],
                    }
                ]
            }
        )
    )
    visits = lake / "sales" / "Visit" / "2024"
    (visits / "visits-01.csv").write_text("VisitId;VisitedOn\n1;2024-01-02\n")
    (visits / "visits-02.csv").write_text("VisitId;VisitedOn\n2;2024-02-03\n")
    (visits / "other.csv").write_text("VisitId;VisitedOn\n3;2024-02-03\n")  # not matched
    project = make_project(
        tmp_path, "lake", [{"name": "Visit", "primary_key": "VisitId"}], root=tmp_path
    )
    visit = land(tmp_path, project)["Visit"]
    assert rows(visit.path, "VisitId") == [
        {"VisitId": 1, "VisitedOn": date(2024, 1, 2)},
        {"VisitId": 2, "VisitedOn": date(2024, 2, 3)},
    ]
