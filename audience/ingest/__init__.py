"""Ingest: read each source table, land it typed as Parquet, quarantine what cannot be used.

Connectors are the boundary to the outside world. Each kind of source has a module with two
functions:
    read(con, ref, project, config_path) -> RawRead   # raw rows into a DuckDB temp table
                                         or Stream    # (one file) rows to land in one pass
    describe(ref, project, config_path) -> list[str]  # column names, cheaply (validate)
Landing (`landing.land`) does typing, key checks and quarantine the same way for all kinds.
Connectors always land through an embedded DuckDB, whatever the engine: the landed Parquet
files are what the DuckDB or Spark engine then reads.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from audience.ingest.landing import LandedTable, RawRead, SourceError, Stream, land, land_stream
from audience.project import Project, TableRef

__all__ = ["LandedTable", "SourceError", "describe_table", "ingest_table", "landing_connection"]

# kind -> (module, read function, describe function)
CONNECTORS: dict[str, tuple[str, str, str]] = {
    "csv": ("files", "read_csv", "describe_csv"),
    "parquet": ("files", "read_parquet", "describe_parquet"),
    "json": ("files", "read_json", "describe_json"),
    "cdm": ("cdm", "read", "describe"),
    "delta": ("delta", "read", "describe"),
    "sql": ("sql", "read", "describe"),
    "incremental": ("incremental", "read", "describe"),
}


def _connector(kind: str, which: int) -> Callable[..., Any]:
    module_name, *functions = CONNECTORS[kind]
    module = importlib.import_module(f"audience.ingest.{module_name}")
    return getattr(module, functions[which])


def landing_connection(project: Project, temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for landing, spilling to the workspace when memory runs short."""
    con = duckdb.connect(":memory:")
    spill = temp_dir or project.workspace_path / "tmp"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = '{spill}'")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET TimeZone = 'UTC'")  # text timestamps without an offset are UTC
    if project.duckdb.threads:
        con.execute(f"SET threads = {project.duckdb.threads}")
    if project.duckdb.memory_limit:
        con.execute(f"SET memory_limit = '{project.duckdb.memory_limit}'")
    return con


def ingest_table(
    con: duckdb.DuckDBPyConnection, project: Project, ref: TableRef, run_dir: Path
) -> LandedTable:
    """Read one source table and land it under run_dir (sources/ and quarantine/)."""
    config_path = ref.config_path(project)
    out = run_dir / "sources" / f"{ref.id}.parquet", run_dir / "quarantine" / f"{ref.id}.parquet"
    raw: RawRead | Stream = _connector(ref.source.kind, 0)(con, ref, project, config_path)
    if isinstance(raw, Stream):
        landed = land_stream(con, raw, ref, config_path, *out)
        if landed is not None:
            return landed
        raw = raw.load()  # something to quarantine: load the rows with their row numbers
    try:
        return land(con, raw, ref, config_path, *out)
    finally:
        kind = con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = ?",
            [raw.relation],
        ).fetchone()
        if kind:
            con.execute(f"DROP {'VIEW' if kind[0] == 'VIEW' else 'TABLE'} {raw.relation}")


def describe_table(project: Project, ref: TableRef) -> list[str]:
    """Column names of a source table, without loading it; raises SourceError."""
    return _connector(ref.source.kind, 1)(ref, project, ref.config_path(project))
