"""Published output tables follow seed 004 (audience/schema/output_tables.json), their GUIDs
are deterministic UUIDv5s of their identifiers, and the warehouse views and `audience sql`
read the current run."""

from __future__ import annotations

import json
import uuid

import duckdb
import pyarrow as pa
import pytest
from analytics_helpers import shop_project
from typer.testing import CliRunner
from unify_helpers import rows, run

from audience.cli import app
from audience.outputs import (
    PUBLISHED,
    conformance_problems,
    output_schemas,
    read_schema,
)
from audience.unify.ids import NAMESPACE

MEASURES = [
    {"name": "ttv", "template": "total_transaction_value"},
    {"name": "n_orders", "template": "number_of_transactions"},
]
SEGMENTS = [{"name": "big", "rules": ["ttv > 100"]}, {"name": "all_known", "rules": ["true"]}]
GUIDS = {  # table -> (GUID column, the text it is the UUIDv5 of)
    "AlternateKey": ("AlternateKeyId", "Identifier"),
    "UnifiedActivity": ("UnifiedActivityId", "ActivityId"),
    "CustomerMeasure": ("CustomerMeasureId", "Identifier"),
    "SegmentMembership": ("SegmentMembershipId", "Identifier"),
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    project = shop_project(tmp_path_factory.mktemp("outputs"), MEASURES, SEGMENTS)
    return project, run(project)


def test_every_published_table_has_the_seed_columns_and_types(shop):
    _project, first = shop
    schemas = output_schemas()
    assert set(PUBLISHED) == {
        "CustomerProfile", "AlternateKey", "UnifiedActivity", "CustomerMeasure", "Enrichment",
        "Prediction", "SegmentMembership",
    }  # fmt: skip
    for name in PUBLISHED:
        schema = read_schema(first.table_path(name))
        assert conformance_problems(name, schema) == [], name
        if name != "CustomerProfile":  # its columns depend on the unified fields
            assert schema.names == list(schemas[name]), name
    assert first.results["stages"]["outputs"]["detail"]["published"] == PUBLISHED
    assert rows(first, "Enrichment") == [] and rows(first, "Prediction") == []


def test_a_drifted_table_is_reported():
    wrong = pa.schema([("CustomerId", pa.string()), ("Measures", pa.int64())])
    assert conformance_problems("CustomerMeasure", wrong) == [
        "CustomerMeasure.Measures: int64, expected Text",
        "CustomerMeasure: missing column Identifier (Text)",
        "CustomerMeasure: missing column CustomerMeasureId (Unique identifier)",
    ]


def test_guids_are_uuid5_of_their_identifiers_and_the_same_on_a_second_run(shop, tmp_path):
    _project, first = shop
    again = run(shop_project(tmp_path, MEASURES, SEGMENTS))  # same input, new workspace
    for table, (guid, text) in GUIDS.items():
        found = {r[text]: r[guid] for r in rows(first, table)}
        assert found, table
        for name, value in found.items():
            assert value == str(uuid.uuid5(NAMESPACE, name)), (table, name)
        assert found == {r[text]: r[guid] for r in rows(again, table)}, table
    membership = rows(first, "SegmentMembership")[0]
    assert membership["Identifier"].endswith("|Audience|Customer|test")


def test_warehouse_file_and_customer_dimension(shop):
    project, first = shop
    con = duckdb.connect(str(project.workspace_path / "warehouse.duckdb"), read_only=True)
    views = {r[0] for r in con.sql("SHOW TABLES").fetchall()}
    assert {"CustomerDimension", "CustomerProfile", "UnifiedActivity", "crm_contacts"} <= views
    dimension = con.sql(
        "SELECT FirstName, ttv, n_orders, Segments, Predictions FROM CustomerDimension "
        "ORDER BY FirstName"
    ).fetchall()
    con.close()
    assert [(r[0], r[1], r[2]) for r in dimension] == [
        ("Ann", 180.0, 3), ("Bob", 200.0, 2), ("Cat", 0.0, 0), ("Dan", 0.0, 0)
    ]  # fmt: skip
    assert json.loads(dimension[0][3]) == ["all_known", "big"]
    assert json.loads(dimension[2][3]) == ["all_known"]
    assert dimension[0][4] == "{}"  # no predictions yet


def test_sql_command(shop):
    project, _first = shop
    runner = CliRunner()
    args = ["sql", "-p", str(project.root), "--csv", "-c"]
    result = runner.invoke(app, [*args, "SELECT count(*) AS n FROM CustomerDimension"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == ['"n"', "4"]
    result = runner.invoke(app, [*args, "SELECT nope FROM CustomerProfile"])
    assert result.exit_code == 0 and 'column "nope" not found' in result.output
