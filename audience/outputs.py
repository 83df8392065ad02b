"""The published output tables (seed 004) and the stage that checks them.

`audience/schema/output_tables.json` is the seed's list of tables, columns and types. The
outputs stage writes the tables whose features have not landed yet (Enrichment, Prediction)
empty with the right columns, and checks every published table against the file, so an
export never sends a table whose shape drifted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from audience.runs import Run, StageResult

if TYPE_CHECKING:
    from audience.pipeline import Context

SCHEMA_FILE = Path(__file__).parent / "schema" / "output_tables.json"
SEED_TYPES = {"Text": pa.string(), "DateTime": pa.timestamp("us"), "Unique identifier": pa.string()}


class OutputError(Exception):
    pass


def output_schemas() -> dict[str, dict[str, str]]:
    """Table -> column -> seed type, in the seed's order."""
    data = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


PUBLISHED = list(output_schemas())


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([(c, SEED_TYPES[t]) for c, t in output_schemas()[table].items()])


def read_schema(path: Path) -> pa.Schema:
    """The schema of a Parquet file or of a folder of part files (Spark)."""
    if path.is_dir():
        parts = sorted(path.glob("*.parquet"))
        if not parts:
            raise OutputError(f"no Parquet part files in {path}")
        path = parts[0]
    return pq.read_schema(path)


def conformance_problems(table: str, schema: pa.Schema) -> list[str]:
    """Where a table's columns and types differ from the seed's."""
    problems = []
    for column, seed_type in output_schemas()[table].items():
        if column not in schema.names:
            problems.append(f"{table}: missing column {column} ({seed_type})")
            continue
        actual = schema.field(column).type
        expected = SEED_TYPES[seed_type]
        same = actual == expected or (
            pa.types.is_timestamp(actual) and pa.types.is_timestamp(expected)
        )
        if not same and not (pa.types.is_large_string(actual) and expected == pa.string()):
            problems.append(f"{table}.{column}: {actual}, expected {seed_type}")
    return problems


def outputs_stage(ctx: Context, result: StageResult) -> None:
    if "CustomerProfile" not in ctx.run.tables:
        result.status = "skipped"
        result.detail["reason"] = "no customers to publish (no unify: section)"
        return
    # Until predictions and enrichments land, their tables exist, empty, with the seed's shape.
    for name in ("Enrichment", "Prediction"):
        if name not in ctx.run.tables:
            relative = f"tables/{name}.parquet"
            ctx.engine.write_arrow(arrow_schema(name).empty_table(), ctx.out(relative))
            ctx.run.add_table(name, relative)
            result.rows[name] = 0
    problems = []
    published = []
    for name in PUBLISHED:
        if name in ctx.run.tables:
            problems += conformance_problems(name, read_schema(ctx.run.table_path(name)))
            published.append(name)
    if problems:
        raise OutputError("output tables differ from seed 004:\n" + "\n".join(problems))
    result.detail["published"] = published


def published_tables(run: Run, names: list[str] | None = None) -> dict[str, Path]:
    """The published output tables of a run (or those named), by name."""
    wanted = names if names is not None else [n for n in PUBLISHED if n in run.tables]
    unknown = [n for n in wanted if n not in run.tables]
    if unknown:
        known = ", ".join(sorted(run.tables))
        raise OutputError(f"run {run.id} has no table {', '.join(unknown)}; tables: {known}")
    return {name: run.table_path(name) for name in wanted}
