"""Delta Lake tables, read with the `deltalake` package (delta-rs) into DuckDB through Arrow.

DuckDB's own delta extension is not used: it is downloaded on first use, and the machines this
runs on may have no internet (engine-notes). delta-rs resolves the transaction log (appends,
deletes, overwrites) to the files of the latest version; DuckDB then copies the Arrow batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from audience.ingest.landing import INTERNAL_COLUMNS, RawRead, SourceError
from audience.project import Project, TableRef


def read(
    con: duckdb.DuckDBPyConnection, ref: TableRef, project: Project, config_path: str
) -> RawRead:
    """Load the latest version of the Delta table into the temp table `_raw` with `_row`."""
    table = _open(ref, project, config_path)
    try:
        dataset = table.to_pyarrow_dataset()
    except DeltaError as e:
        # e.g. deletion vectors or column mapping written by another engine
        raise SourceError(
            f"{config_path}.path: cannot read Delta table {ref.table.path}: {e}"
        ) from None
    reserved = [n for n in dataset.schema.names if n in INTERNAL_COLUMNS]
    if reserved:
        raise SourceError(
            f"{config_path}.path: column name '{reserved[0]}' in {ref.table.path} is reserved"
        )
    schema = pa.schema([pa.field("_row", pa.int64()), *dataset.schema])

    def numbered() -> Iterator[pa.RecordBatch]:
        # Numbered in Python, in the order delta-rs lists the files: the same version always
        # gives the same _row, however many threads DuckDB uses to copy the batches.
        start = 1
        for batch in dataset.to_batches():
            rows = pa.array(range(start, start + batch.num_rows), pa.int64())
            yield pa.RecordBatch.from_arrays([rows, *batch.columns], schema=schema)
            start += batch.num_rows

    con.register("_delta_batches", pa.RecordBatchReader.from_batches(schema, numbered()))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _raw AS SELECT * FROM _delta_batches")
    finally:
        con.unregister("_delta_batches")
    return RawRead("_raw", ref.table.path, infer_types=False)


def describe(ref: TableRef, project: Project, config_path: str) -> list[str]:
    """Column names from the table's schema in the transaction log (no data files read)."""
    return [field.name for field in _open(ref, project, config_path).schema().fields]


def _open(ref: TableRef, project: Project, config_path: str) -> DeltaTable:
    path = project.resolve(ref.table.path)
    where = f"{config_path}.path"
    if not path.exists():
        raise SourceError(f"{where}: folder not found: {ref.table.path} (looked at {path})")
    if not (path / "_delta_log").is_dir():
        raise SourceError(
            f"{where}: {ref.table.path} is not a Delta table (no _delta_log folder in {path})"
        )
    try:
        return DeltaTable(str(path))
    except (DeltaError, OSError) as e:
        raise SourceError(f"{where}: cannot open Delta table {ref.table.path}: {e}") from None
