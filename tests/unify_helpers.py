"""Helpers for the unify tests: tiny CSV projects written by hand, and their outputs."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from typing import Any

import duckdb

from audience.pipeline import run_pipeline
from audience.project import Project
from audience.runs import Run
from audience.unify.ids import NAMESPACE
from conftest import make_project


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """A CSV file with a header; None is written as an empty field."""
    columns = columns or list(rows[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row[c] for c in columns])


def table_source(
    name: str,
    table: str,
    key: str,
    timestamp: str | None = None,
    types: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One CSV source with one table read from data/<name>_<table>.csv."""
    spec: dict[str, Any] = {"name": table, "path": f"data/{name}_{table}.csv", "primary_key": key}
    if timestamp:
        spec["timestamp_column"] = timestamp
    if types:
        spec["types"] = types
    return {"name": name, "kind": "csv", "tables": [spec]}


def build(
    root: Path,
    data: dict[str, list[dict[str, Any]]],
    sources: list[dict[str, Any]],
    unify: dict[str, Any],
    **settings: Any,
) -> Project:
    """Write the CSVs ({'crm_contacts': rows}) under root/data and parse the project."""
    write_data(root, data)
    return make_project(root, sources, unify=unify, **settings)


def write_data(root: Path, data: dict[str, list[dict[str, Any]]]) -> None:
    for name, rows in data.items():
        write_csv(root / "data" / f"{name}.csv", rows)


def run(project: Project, engine_kind: str = "duckdb") -> Run:
    result = run_pipeline(project, engine_kind=engine_kind)
    assert result.status == "succeeded"
    return result


def rows(run: Run, name: str, order: str = "ALL") -> list[dict[str, Any]]:
    """A run's table as dicts (a Parquet file on DuckDB, a folder on Spark)."""
    path = run.table_path(name)
    pattern = f"{path}/*.parquet" if path.is_dir() else str(path)
    relation = duckdb.sql(f"SELECT * FROM read_parquet('{pattern}') ORDER BY {order}")
    columns = relation.columns
    return [dict(zip(columns, r, strict=True)) for r in relation.fetchall()]


def customer_of(run: Run) -> dict[str, str]:
    """Identifier ('source|table|key') -> CustomerId, from AlternateKey."""
    return {r["Identifier"]: r["CustomerId"] for r in rows(run, "AlternateKey")}


def groups(run: Run) -> set[frozenset[str]]:
    """The customers as sets of record Identifiers."""
    members: dict[str, set[str]] = {}
    for rid, customer in customer_of(run).items():
        members.setdefault(customer, set()).add(rid)
    return {frozenset(m) for m in members.values()}


def together(run: Run, *rids: str) -> bool:
    customers = customer_of(run)
    return len({customers[r] for r in rids}) == 1


def profile_by_key(run: Run, key_column: str) -> dict[Any, dict[str, Any]]:
    """CustomerProfile rows by one of its source key columns."""
    return {r[key_column]: r for r in rows(run, "CustomerProfile") if r[key_column] is not None}


def pairs(run: Run) -> set[tuple[str, str, str]]:
    """ConflationMatchPair as (LeftIdentifier, RightIdentifier, Rule)."""
    return {
        (r["LeftIdentifier"], r["RightIdentifier"], r["Rule"])
        for r in rows(run, "ConflationMatchPair")
    }


def statistics(run: Run) -> dict[str, Any]:
    return {r["name"]: json.loads(r["value"]) for r in rows(run, "UnifyStatistics")}


def uuid5(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))
