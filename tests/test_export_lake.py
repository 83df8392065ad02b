"""Lake export: a run's output tables as a CDM folder, read back by Audience's own CDM
connector and loaded by the CDM object model SDK (offline); partition splitting; a failed
export leaves the previous one readable; a new run's export replaces the old one."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from analytics_helpers import shop_project
from unify_helpers import run

from audience.export import ExportError, run_export
from audience.export import lake as lake_module
from audience.export.config import LakeExport
from audience.export.lake import MANIFEST, export_lake
from audience.ingest import ingest_table, landing_connection
from audience.outputs import PUBLISHED
from audience.project import Project, parse_project
from audience.runs import Run, Workspace

MEASURES = [{"name": "ttv", "template": "total_transaction_value"}]
SEGMENTS = [
    {"name": "big", "rules": ["ttv > 100"]},
    {"name": "ann_or_bob", "rules": ["FirstName = 'Ann'", "FirstName = 'Bob'"]},
]
LAKE = {"kind": "lake", "name": "lake", "path": "lake"}
# A key per table for landing (unique and never empty).
KEYS = {
    "CustomerProfile": "CustomerId",
    "AlternateKey": "AlternateKeyId",
    "UnifiedActivity": "UnifiedActivityId",
    "CustomerMeasure": "CustomerMeasureId",
    "Enrichment": "EnrichmentId",
    "Prediction": "PredictionId",
    "SegmentMembership": "SegmentMembershipId",
    "Typed": "id",
    "Big": "id",
}
FAKE_RUN = "20260101T000000.000Z-abcd"


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Project, Run]:
    """One shop run (exports to 'lake' as its last stage), shared by the tests that only
    export it again elsewhere."""
    root = tmp_path_factory.mktemp("shop")
    project = shop_project(root, MEASURES, SEGMENTS, exports=[LAKE])
    return project, run(project)


def lake_config(path: str = "lake", **settings: Any) -> LakeExport:
    return LakeExport(kind="lake", name="lake", path=path, **settings)


def manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


def partitions(folder: Path) -> dict[str, list[str]]:
    """Entity -> partition locations, from the manifest."""
    return {
        e["entityName"]: [p["location"] for p in e["dataPartitions"]]
        for e in manifest(folder)["entities"]
    }


def sorted_rows(relation: duckdb.DuckDBPyRelation) -> list[tuple]:
    return sorted(relation.fetchall(), key=lambda r: tuple((v is None, str(v)) for v in r))


def source_table(path: Path) -> tuple[dict[str, str], list[tuple]]:
    """(column -> DuckDB type, sorted rows) of a run table (a file or a folder of parts)."""
    pattern = f"{path}/*.parquet" if path.is_dir() else str(path)
    con = duckdb.connect()
    relation = con.sql(f"SELECT * FROM read_parquet('{pattern}')")
    return dict(zip(relation.columns, map(str, relation.types), strict=True)), sorted_rows(relation)


def read_back(folder: Path, tmp: Path, tables: list[str]) -> dict[str, tuple[dict, list, int]]:
    """Land each entity of the CDM folder with Audience's CDM connector, as a second project
    would: table -> (column types, sorted rows, rows quarantined)."""
    root = tmp / "reader"
    root.mkdir(exist_ok=True)
    spec = {
        "name": "reader",
        "sources": [
            {
                "name": "lake",
                "kind": "cdm",
                "path": str(folder),
                "tables": [{"name": t, "primary_key": KEYS[t]} for t in tables],
            }
        ],
    }
    project = parse_project(spec, root / "audience.yaml", root)
    con = landing_connection(project, root / "tmp")
    out = {}
    try:
        for ref in project.table_refs():
            landed = ingest_table(con, project, ref, root / "run")
            types, rows = source_table(landed.path)
            assert types == landed.columns
            out[ref.table.name] = (landed.columns, rows, landed.rows_quarantined)
    finally:
        con.close()
    return out


def assert_round_trip(run_: Run, folder: Path, tmp: Path, tables: list[str]) -> None:
    back = read_back(folder, tmp, tables)
    assert sorted(back) == sorted(tables)
    for name in tables:
        types, rows = source_table(run_.table_path(name))
        got_types, got_rows, quarantined = back[name]
        assert quarantined == 0, name
        assert got_types == types, name
        assert got_rows == rows, name


# ---- round trips -------------------------------------------------------------------------


def test_pipeline_export_round_trip(shop, tmp_path):
    project, shop_run = shop
    folder = project.resolve("lake")
    summary = shop_run.results["stages"]["exports"]["detail"]["lake"]
    assert summary["path"] == str(folder)
    assert summary["manifest"] == MANIFEST
    assert summary["format"] == "parquet"
    assert list(summary["tables"]) == PUBLISHED
    assert summary["tables"]["CustomerProfile"] == {"rows": 4, "partitions": 1}
    assert summary["tables"]["UnifiedActivity"] == {"rows": 20, "partitions": 1}
    assert summary["tables"]["Enrichment"] == {"rows": 0, "partitions": 1}
    # Ann and Bob are in both segments: one membership row each.
    assert summary["tables"]["SegmentMembership"] == {"rows": 2, "partitions": 1}

    doc = manifest(folder)
    assert doc["jsonSchemaSemanticVersion"] == "1.0.0"
    assert doc["manifestName"] == "lake"
    assert [e["entityName"] for e in doc["entities"]] == PUBLISHED
    profile = doc["entities"][0]
    assert profile["type"] == "LocalEntity"
    assert profile["entityPath"] == f"{shop_run.id}/CustomerProfile.cdm.json/CustomerProfile"
    assert profile["dataPartitions"] == [
        {
            "location": f"{shop_run.id}/CustomerProfile/part-00000.parquet",
            "exhibitsTraits": [{"traitReference": "is.partition.format.parquet"}],
        }
    ]
    entity_doc = json.loads((folder / shop_run.id / "UnifiedActivity.cdm.json").read_text())
    formats = {a["name"]: a["dataFormat"] for a in entity_doc["definitions"][0]["hasAttributes"]}
    assert formats["ActivityTimeStamp"] == "DateTime"
    assert formats["UnifiedActivityId"] == "Guid"  # the seed's 'Unique identifier'
    assert formats["Title"] == "String"
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, shop_run.id])

    assert_round_trip(shop_run, folder, tmp_path, PUBLISHED)


def test_csv_round_trip(shop, tmp_path):
    project, shop_run = shop
    config = lake_config(str(tmp_path / "csv_lake"), format="csv")
    summary = export_lake(project, shop_run, config)
    folder = tmp_path / "csv_lake"
    assert summary["format"] == "csv"
    assert summary["tables"]["AlternateKey"] == {"rows": 4, "partitions": 1}
    entity = manifest(folder)["entities"][1]
    assert entity["dataPartitions"][0]["location"] == f"{shop_run.id}/AlternateKey/part-00000.csv"
    trait = entity["dataPartitions"][0]["exhibitsTraits"][0]
    assert trait["traitReference"] == "is.partition.format.CSV"
    args = {a["name"]: a["value"] for a in trait["arguments"]}
    assert (args["columnHeaders"], args["delimiter"]) == ("true", ",")
    header = (folder / shop_run.id / "AlternateKey" / "part-00000.csv").read_text().splitlines()[0]
    assert header.split(",")[:2] == ['"DataSourceName"', '"EntityName"']
    # Empty tables are a header line, so the columns are there to read.
    assert (folder / shop_run.id / "Prediction" / "part-00000.csv").read_text().count("\n") == 1

    assert_round_trip(shop_run, folder, tmp_path, PUBLISHED)


def fake_run(root: Path, tables: dict[str, pa.Table], spark_style: tuple[str, ...] = ()) -> Run:
    """A run whose catalogue holds these tables; those in spark_style are folders of part
    files (as the Spark engine writes them), the others single Parquet files."""
    workspace = Workspace(root / "ws")
    run_ = Run(workspace, FAKE_RUN, {"tables": {}})
    for name, table in tables.items():
        if name in spark_style:
            folder = run_.path / "tables" / name
            folder.mkdir(parents=True)
            half = table.num_rows // 2
            pq.write_table(table.slice(0, half), folder / "part-00000-x.snappy.parquet")
            pq.write_table(table.slice(half), folder / "part-00001-x.snappy.parquet")
            (folder / "_SUCCESS").write_text("")
            (folder / ".part-00000-x.snappy.parquet.crc").write_bytes(b"\0")
            run_.add_table(name, f"tables/{name}")
        else:
            (run_.path / "tables").mkdir(parents=True, exist_ok=True)
            pq.write_table(table, run_.path / "tables" / f"{name}.parquet")
            run_.add_table(name, f"tables/{name}.parquet")
    return run_


TYPED = pa.table(
    {
        "id": pa.array(["a", "b", "c"]),
        "small": pa.array([1, None, -3], pa.int32()),
        "big": pa.array([2**40, 0, None], pa.int64()),
        "ratio": pa.array([0.25, None, -1.5], pa.float64()),
        "flag": pa.array([True, False, None]),
        "born": pa.array([date(1980, 2, 29), None, date(2001, 12, 31)]),
        "seen": pa.array([datetime(2026, 1, 30, 10, 0, 0, 123456), None, datetime(1999, 1, 1)]),
        "amount": pa.array(
            [Decimal("12.5"), Decimal("-0.0000000001"), None], pa.decimal128(38, 10)
        ),
        "text": pa.array(['comma, and "quote"', "line\nbreak", None]),
    }
)

TYPED_FORMATS = [
    ("id", "String"),
    ("small", "Int32"),
    ("big", "Int64"),
    ("ratio", "Double"),
    ("flag", "Boolean"),
    ("born", "Date"),
    ("seen", "DateTime"),
    ("amount", "Decimal"),
    ("text", "String"),
]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_types_survive_the_round_trip(tmp_path, fmt):
    project = shop_project(tmp_path)
    typed_run = fake_run(tmp_path, {"Typed": TYPED})
    export_lake(project, typed_run, lake_config(format=fmt, tables=["Typed"]))
    folder = tmp_path / "lake"
    doc = json.loads((folder / FAKE_RUN / "Typed.cdm.json").read_text())
    attributes = doc["definitions"][0]["hasAttributes"]
    assert [(a["name"], a["dataFormat"]) for a in attributes] == TYPED_FORMATS
    types, rows, _ = read_back(folder, tmp_path, ["Typed"])["Typed"]
    assert types == {
        "id": "VARCHAR",
        "small": "INTEGER",
        "big": "BIGINT",
        "ratio": "DOUBLE",
        "flag": "BOOLEAN",
        "born": "DATE",
        "seen": "TIMESTAMP",
        "amount": "DECIMAL(38,10)",
        "text": "VARCHAR",
    }
    assert rows == sorted_rows(duckdb.connect().sql("SELECT * FROM TYPED"))
    assert rows[0] == (
        "a",
        1,
        2**40,
        0.25,
        True,
        date(1980, 2, 29),
        datetime(2026, 1, 30, 10, 0, 0, 123456),
        Decimal("12.5"),
        'comma, and "quote"',
    )


def test_data_formats():
    cases = {
        pa.string(): "String",
        pa.large_string(): "String",
        pa.int8(): "Int16",
        pa.int16(): "Int16",
        pa.uint16(): "Int32",
        pa.int32(): "Int32",
        pa.uint32(): "Int64",
        pa.int64(): "Int64",
        pa.uint64(): "Decimal",
        pa.float32(): "Float",
        pa.float64(): "Double",
        pa.decimal128(10, 2): "Decimal",
        pa.bool_(): "Boolean",
        pa.date32(): "Date",
        pa.time64("us"): "Time",
        pa.timestamp("us"): "DateTime",
        pa.timestamp("us", tz="UTC"): "DateTimeOffset",
        pa.dictionary(pa.int32(), pa.string()): "String",
        pa.list_(pa.string()): None,
        pa.binary(): None,
    }
    assert {t: lake_module.cdm_data_format(t) for t in cases} == cases


def test_unsupported_column_type_names_the_column(tmp_path):
    project = shop_project(tmp_path)
    bad = fake_run(tmp_path, {"Typed": pa.table({"id": ["a"], "tags": [["x", "y"]]})})
    with pytest.raises(ExportError, match=r"exports\.lake: Typed: column tags is list<"):
        export_lake(project, bad, lake_config(tables=["Typed"]))
    assert not (tmp_path / "lake" / FAKE_RUN).exists()


# ---- partitions --------------------------------------------------------------------------


def big_table(rows: int) -> pa.Table:
    start = datetime(2020, 1, 1)
    return pa.table(
        {
            "id": pa.array([f"id-{i:07d}" for i in range(rows)]),
            "n": pa.array(range(rows), pa.int64()),
            "name": pa.array([f"customer number {i * 7919 % 100003}" for i in range(rows)]),
            "at": pa.array([start + timedelta(minutes=i) for i in range(rows)]),
        }
    )


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_large_table_is_split_into_partitions(tmp_path, fmt):
    project = shop_project(tmp_path)
    big = big_table(120_000)
    big_run = fake_run(tmp_path, {"Big": big}, spark_style=("Big",))
    summary = export_lake(
        project, big_run, lake_config(format=fmt, max_partition_mb=1, tables=["Big"])
    )
    folder = tmp_path / "lake"
    locations = partitions(folder)["Big"]
    assert summary["tables"]["Big"] == {"rows": 120_000, "partitions": len(locations)}
    assert len(locations) > 1
    assert locations == [f"{FAKE_RUN}/Big/part-{i:05d}.{fmt}" for i in range(len(locations))]
    sizes = [(folder / loc).stat().st_size for loc in locations]
    assert max(sizes) < 1.25 * 1024 * 1024
    assert min(sizes[:-1]) >= 1024 * 1024  # all but the last are filled up to the limit
    assert sorted(os.listdir(folder / FAKE_RUN / "Big")) == [
        loc.split("/")[-1] for loc in locations
    ]

    _, rows, _ = read_back(folder, tmp_path, ["Big"])["Big"]
    assert rows == sorted_rows(duckdb.connect().sql("SELECT * FROM big"))


def test_small_limit_on_run_tables(shop, tmp_path, monkeypatch):
    """The shop's tables split too when the unit is made tiny (1 'MB' = 1 KB)."""
    project, shop_run = shop
    monkeypatch.setattr(lake_module, "MB", 1024)
    config = lake_config(str(tmp_path / "lake"), format="csv", max_partition_mb=1)
    summary = export_lake(project, shop_run, config)
    assert summary["tables"]["UnifiedActivity"]["rows"] == 20
    assert summary["tables"]["UnifiedActivity"]["partitions"] > 1
    assert (
        len(partitions(tmp_path / "lake")["UnifiedActivity"])
        == (summary["tables"]["UnifiedActivity"]["partitions"])
    )
    assert_round_trip(shop_run, tmp_path / "lake", tmp_path, ["UnifiedActivity", "AlternateKey"])


# ---- the CDM object model SDK --------------------------------------------------------------


def load_with_sdk(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """What the CDM SDK sees in the folder, and the warnings and errors it reported.

    Entity -> {'attributes': [(name, dataFormat)] of the resolved entity, 'format_traits':
    the is.dataFormat.* traits resolution gave each attribute, 'partitions': [(file,
    {trait: arguments})]}. Resolving needs the trait definitions of cdm:/foundations.cdm.json:
    without them every dataFormat resolves to 'Unknown', with no traits, and errors.
    """
    from cdm.enums import CdmStatusLevel
    from cdm.objectmodel import CdmCorpusDefinition
    from cdm.storage import CdmStandardsAdapter, LocalAdapter

    async def load() -> tuple[dict[str, Any], list[str]]:
        corpus = CdmCorpusDefinition()
        messages: list[str] = []
        corpus.set_event_callback(lambda level, text: messages.append(text), CdmStatusLevel.WARNING)
        corpus.storage.mount("local", LocalAdapter(str(folder)))
        # The foundations documents ship with the SDK (commondatamodel-objectmodel-cdmstandards).
        corpus.storage.mount("cdm", CdmStandardsAdapter())
        corpus.storage.default_namespace = "local"
        loaded = await corpus.fetch_object_async(f"local:/{MANIFEST}")
        seen: dict[str, Any] = {"_type": type(loaded).__name__}
        # In memory only: nothing is saved unless asked to.
        resolved = await loaded.create_resolved_manifest_async("resolved", None)
        for declaration, resolved_declaration in zip(
            loaded.entities, resolved.entities, strict=True
        ):
            entity = await corpus.fetch_object_async(resolved_declaration.entity_path, resolved)
            files = []
            for partition in declaration.data_partitions:
                corpus_path = corpus.storage.create_absolute_corpus_path(partition.location, loaded)
                traits = {
                    t.fetch_object_definition_name(): {a.name: a.value for a in t.arguments}
                    for t in partition.exhibits_traits
                }
                files.append((corpus.storage.corpus_path_to_adapter_path(corpus_path), traits))
            seen[declaration.entity_name] = {
                "attributes": [(a.name, a.data_format.value) for a in entity.attributes],
                "format_traits": [
                    [
                        t.fetch_object_definition_name()
                        for t in a.applied_traits
                        if t.fetch_object_definition_name().startswith("is.dataFormat.")
                    ]
                    for a in entity.attributes
                ],
                "partitions": files,
            }
        return seen, messages

    return asyncio.run(load())


# The SDK warns about its own use of deprecated properties.
sdk_warnings = pytest.mark.filterwarnings(
    "ignore:This property is likely to be removed soon:DeprecationWarning"
)


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network access in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@sdk_warnings
def test_cdm_sdk_loads_the_export(shop, tmp_path, offline):
    project, shop_run = shop
    folder = project.resolve("lake")
    before = snapshot(folder)
    seen, messages = load_with_sdk(folder)
    assert messages == []
    assert seen.pop("_type") == "CdmManifestDefinition"
    assert list(seen) == PUBLISHED
    assert snapshot(folder) == before
    for name in PUBLISHED:
        schema = pq.read_schema(shop_run.table_path(name))
        declared = json.loads((folder / shop_run.id / f"{name}.cdm.json").read_text())
        assert seen[name]["attributes"] == [
            (a["name"], a["dataFormat"]) for a in declared["definitions"][0]["hasAttributes"]
        ]
        assert [a for a, _ in seen[name]["attributes"]] == schema.names
        assert all(seen[name]["format_traits"])
        [(file, traits)] = seen[name]["partitions"]
        assert Path(file) == folder / shop_run.id / name / "part-00000.parquet"
        assert Path(file).is_file()
        assert traits == {"is.partition.format.parquet": {}}
    activity = seen["UnifiedActivity"]
    attributes = dict(activity["attributes"])
    assert attributes["ActivityTimeStamp"] == "DateTime"
    assert attributes["UnifiedActivityId"] == "Guid"
    assert attributes["CustomerId"] == "String"
    traits = dict(zip(attributes, activity["format_traits"], strict=True))
    assert "is.dataFormat.date" in traits["ActivityTimeStamp"]
    assert "is.dataFormat.guid" in traits["UnifiedActivityId"]


@sdk_warnings
def test_cdm_sdk_loads_split_csv_partitions(tmp_path, offline):
    project = shop_project(tmp_path)
    typed_run = fake_run(tmp_path, {"Typed": TYPED, "Big": big_table(60_000)})
    export_lake(
        project, typed_run, lake_config(format="csv", max_partition_mb=1, tables=["Typed", "Big"])
    )
    folder = tmp_path / "lake"
    seen, messages = load_with_sdk(folder)
    assert messages == []
    assert seen.pop("_type") == "CdmManifestDefinition"
    assert list(seen) == ["Typed", "Big"]
    assert seen["Typed"]["attributes"] == TYPED_FORMATS
    assert all(seen["Typed"]["format_traits"])
    files = [Path(f) for f, _ in seen["Big"]["partitions"]]
    assert len(files) > 1 and all(f.is_file() for f in files)
    assert files == sorted((folder / FAKE_RUN / "Big").iterdir())
    _, traits = seen["Big"]["partitions"][0]
    assert traits["is.partition.format.CSV"]["columnHeaders"] == "true"
    assert traits["is.partition.format.CSV"]["delimiter"] == ","


# ---- atomicity, failures, replacing the previous export -----------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_failure_mid_export_keeps_the_previous_export(shop, tmp_path, monkeypatch):
    project, shop_run = shop
    folder = tmp_path / "lake"
    config = lake_config(str(folder))
    export_lake(project, shop_run, config)
    before = snapshot(folder)

    real = lake_module.write_partitions
    calls = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1].name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(lake_module, "write_partitions", failing)
    with pytest.raises(
        ExportError,
        match=r"^exports\.lake: UnifiedActivity: cannot export the table to .*No space left",
    ):
        export_lake(project, shop_run, config)
    assert calls == PUBLISHED[:3]
    # Same manifest, same partitions, and nothing of the failed attempt left behind.
    assert snapshot(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, shop_run.id])
    monkeypatch.setattr(lake_module, "write_partitions", real)
    assert_round_trip(shop_run, folder, tmp_path, ["CustomerProfile", "UnifiedActivity"])


def test_missing_table_and_unwritable_folder(shop, tmp_path):
    project, shop_run = shop
    folder = tmp_path / "lake"
    export_lake(project, shop_run, lake_config(str(folder)))
    before = snapshot(folder)

    with pytest.raises(ExportError, match=r"^exports\.lake: run .* has no table Nope"):
        export_lake(project, shop_run, lake_config(str(folder), tables=["CustomerProfile", "Nope"]))

    # A table in the catalogue whose file is gone (a pruned or damaged run).
    broken = fake_run(tmp_path, {"Typed": TYPED, "Big": big_table(10)})
    (broken.table_path("Big")).unlink()
    with pytest.raises(ExportError, match=r"^exports\.lake: Big: the run's table is missing"):
        export_lake(project, broken, lake_config(str(folder), tables=["Typed", "Big"]))
    assert snapshot(folder) == before

    # Run folders share the names of export folders: exporting among them could delete runs.
    with pytest.raises(ExportError, match=r"^exports\.lake\.path: \.audience/runs is inside"):
        export_lake(project, shop_run, lake_config(".audience/runs"))
    assert shop_run.path.is_dir()

    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(ExportError, match=r"^exports\.lake: cannot create the export folder"):
        export_lake(project, shop_run, lake_config(str(tmp_path / "a_file" / "lake")))

    # run_export (the exports stage's entry point) dispatches here.
    summary = run_export(project, shop_run, lake_config(str(folder), tables=["AlternateKey"]))
    assert summary["tables"] == {"AlternateKey": {"rows": 4, "partitions": 1}}
    assert list(partitions(folder)) == ["AlternateKey"]


def test_second_run_replaces_the_export(tmp_path):
    project = shop_project(tmp_path, MEASURES, SEGMENTS, exports=[LAKE])
    first = run(project)
    folder = tmp_path / "lake"
    (folder / "README.txt").write_text("the user's own file stays")
    assert {loc.split("/")[0] for locs in partitions(folder).values() for loc in locs} == {first.id}

    second = run(project)
    locations = [loc for locs in partitions(folder).values() for loc in locs]
    assert {loc.split("/")[0] for loc in locations} == {second.id}
    assert all(e["entityPath"].startswith(f"{second.id}/") for e in manifest(folder)["entities"])
    assert not (folder / first.id).exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, "README.txt", second.id])
    assert_round_trip(second, folder, tmp_path, PUBLISHED)

    # Exporting the same run again writes a new folder: the manifest's stays until replaced.
    export_lake(project, second, lake_config())
    again = f"{second.id}-2"
    assert {loc.split("/")[0] for locs in partitions(folder).values() for loc in locs} == {again}
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, "README.txt", again])


def test_leftovers_of_a_killed_export_are_removed(shop, tmp_path):
    project, shop_run = shop
    folder = tmp_path / "lake"
    leftover = folder / "20250101T000000.000Z-dead" / "CustomerProfile"
    leftover.mkdir(parents=True)
    (leftover / "part-00000.parquet").write_bytes(b"half")
    (folder / "not_a_run").mkdir()
    export_lake(project, shop_run, lake_config(str(folder)))
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, "not_a_run", shop_run.id])
