"""The logical data warehouse: DuckDB views over a run's Parquet tables.

`<workspace>/warehouse.duckdb` is rebuilt after every published run; a BI tool (or
`duckdb warehouse.duckdb`) opens it and sees every table of the current run as a view,
plus `CustomerDimension`, the enhanced customer dimension: one row per customer with the
profile fields, the customer attributes (measures), the segments and the predictions.
`audience sql` builds the same views in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from audience.runs import Run

WAREHOUSE_FILE = "warehouse.duckdb"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _source(path: Path) -> str:
    pattern = str(path / "*.parquet") if path.is_dir() else str(path)
    return "read_parquet('" + pattern.replace("'", "''") + "')"


def create_views(con: duckdb.DuckDBPyConnection, run: Run) -> list[str]:
    """A view per table of `run`, and CustomerDimension when the run has profiles."""
    names = []
    for name in sorted(run.tables):
        path = run.table_path(name)
        if name == "Quarantine":  # a folder of per-table files with one schema
            path = path / "*.parquet" if path.is_dir() else path
            source = "read_parquet('" + str(path).replace("'", "''") + "', union_by_name=true)"
        else:
            source = _source(path)
        con.execute(f"CREATE OR REPLACE VIEW {_quote(name)} AS SELECT * FROM {source}")
        names.append(name)
    if "CustomerProfile" in run.tables:
        con.execute(_dimension_sql(run))
        names.append("CustomerDimension")
    return names


def _dimension_sql(run: Run) -> str:
    joins, columns = [], ["p.*"]
    if "CustomerAttributes" in run.tables:
        joins.append('LEFT JOIN "CustomerAttributes" a ON a.CustomerId = p.CustomerId')
        columns.append("a.* EXCLUDE (CustomerId)")
    if "SegmentMembership" in run.tables:
        joins.append('LEFT JOIN "SegmentMembership" s ON s.CustomerId = p.CustomerId')
        columns.append("coalesce(s.Segments, '[]') AS Segments")
    if "Prediction" in run.tables:
        # One JSON object per customer: model name -> that model's values.
        joins.append(
            "LEFT JOIN (SELECT CustomerId, '{' || string_agg('\"' || Model || '\":' || \"Values\","
            " ',' ORDER BY Model) || '}' AS Predictions FROM \"Prediction\" GROUP BY CustomerId)"
            " pr ON pr.CustomerId = p.CustomerId"
        )
        columns.append("coalesce(pr.Predictions, '{}') AS Predictions")
    return (
        'CREATE OR REPLACE VIEW "CustomerDimension" AS SELECT '
        + ", ".join(columns)
        + ' FROM "CustomerProfile" p '
        + " ".join(joins)
    )


def build_warehouse(workspace: Path, run: Run) -> Path:
    """Write `<workspace>/warehouse.duckdb` with views over `run`, replacing the old file at
    once (a reader opening it sees the old run's views or the new run's, never a mix)."""
    target = workspace / WAREHOUSE_FILE
    tmp = workspace / f".{WAREHOUSE_FILE}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        create_views(con, run)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, target)
    return target
