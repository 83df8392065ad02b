"""The Audience side of the measures + segments benchmark.

A project built in code (`parse_project` on a dict) declares the generated files as one
Parquet source, the profile table as the one unified table, the three activities, the twelve
templates as measures (each named as its template) and one three-condition segment. Ingest and
unify are bypassed: the activity files stand in for a run's `Activity_<name>` tables and the
profile file for `CustomerProfile`, read through the engine (`Engine.read`), then handed to
`MeasureBuilder` and `SegmentBuilder` as the measures and segments stages do.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa

from audience.analytics.measures import MeasureBuilder, RowSources
from audience.analytics.paths import SourceTables
from audience.analytics.segments import SegmentBuilder
from audience.analytics.templates import TEMPLATES
from audience.engine import Engine
from audience.project import Project, parse_project

from .generate import AS_OF

ACTIVITIES = {  # name: (file, type, semantic field)
    "orders": ("orders", "SalesOrder", "amount"),
    "loyalty": ("loyalty", "Loyalty", "points"),
    "visits": ("visits", "WebVisit", "page_type"),
}
SEGMENT: dict[str, Any] = {
    "name": "engaged_big_spenders",
    "description": "spent over 500, bought in the last 90 days, 2+ visits in the last 30 days",
    "rules": [
        {
            "all": [
                "total_transaction_value > 500",
                "time_since_last_purchase <= 90",
                {"activity": "visits", "within": {"last_days": 30}, "count": ">= 2"},
            ]
        }
    ],
}


def build_project(data: Path, workspace: Path, threads: int) -> Project:
    """The benchmark project over the generated files in `data`, its workspace `workspace`."""
    profile = {"name": "customers", "path": str(data / "profile.parquet")}
    tables = [profile | {"primary_key": "CustomerId"}]
    tables += [
        {"name": name, "path": str(data / f"{file}.parquet"), "primary_key": "SourceActivityId"}
        for name, (file, _type, _field) in ACTIVITIES.items()
    ]
    raw = {
        "name": "bench",
        "duckdb": {"threads": threads},
        "workspace": str(workspace),
        "sources": [{"name": "bench", "kind": "parquet", "tables": tables}],
        "unify": {
            "tables": [
                {
                    "table": "bench.customers",
                    "fields": {
                        "FirstName": "Person.FirstName",
                        "LastName": "Person.LastName",
                        "Email": "Identity.Email",
                    },
                }
            ]
        },
        "activities": [
            {
                "name": name,
                "table": f"bench.{name}",
                "type": type_,
                "customer": "bench.customers",
                "timestamp": "ActivityTimeStamp",
                "fields": {field: field},
            }
            for name, (_file, type_, field) in ACTIVITIES.items()
        ],
        "measures": [{"name": name, "template": name} for name in TEMPLATES],
        "segments": [SEGMENT],
        "as_of": AS_OF,
    }
    return parse_project(raw, workspace / "audience.yaml", workspace)


def _row_sources(project: Project, engine: Engine, data: Path) -> RowSources:
    files = {r.label: Path(r.table.path) for r in project.table_refs()}
    tables = SourceTables(project, lambda label: engine.read(files[label]))
    activities = {a.name: engine.read(files[a.table]) for a in project.activities}
    alternate_key = ibis.memtable(
        pa.table(
            {
                c: pa.array([], pa.string())
                for c in ("DataSourceName", "EntityName", "AlternateValue", "CustomerId")
            }
        )
    )  # fmt: skip  (only table-row measures read it; this project has none)
    return RowSources(tables, activities, alternate_key)


def templates(project: Project, data: Path, out: Path) -> dict[str, float]:
    """All twelve templates per customer written to `out`: seconds to build the expressions and
    in all (from the files to the Parquet file written)."""
    with Engine.connect(project) as engine:
        t0 = time.perf_counter()
        sources = _row_sources(project, engine, data)
        profile = engine.read(data / "profile.parquet")
        attributes = MeasureBuilder(sources, profile, AS_OF).compute().attributes
        t1 = time.perf_counter()
        engine.write(attributes, out)
        return {"build": t1 - t0, "total": time.perf_counter() - t0}


def segment(project: Project, data: Path, attributes: Path, out: Path) -> dict[str, float]:
    """The segment's members (CustomerId) written to `out`, from the profile, the customer
    attributes in `attributes` and the visits."""
    with Engine.connect(project) as engine:
        t0 = time.perf_counter()
        sources = _row_sources(project, engine, data)
        profile = engine.read(data / "profile.parquet")
        members = SegmentBuilder(sources, profile, engine.read(attributes), AS_OF).members_table(
            project.segments[0], "segments[0]"
        )
        t1 = time.perf_counter()
        engine.write(members, out)
        return {"build": t1 - t0, "total": time.perf_counter() - t0}


def generated_sql(project: Project, data: Path, attributes: Path | None) -> dict[str, str]:
    """The SQL Ibis generates for the templates (and the segment, given an attributes file)."""
    with Engine.connect(project) as engine:
        sources = _row_sources(project, engine, data)
        profile = engine.read(data / "profile.parquet")
        out = {
            "templates": ibis.to_sql(MeasureBuilder(sources, profile, AS_OF).compute().attributes)
        }
        if attributes is not None:
            members = SegmentBuilder(
                sources, profile, engine.read(attributes), AS_OF
            ).members_table(project.segments[0], "segments[0]")
            out["segment"] = ibis.to_sql(members)
        return out
