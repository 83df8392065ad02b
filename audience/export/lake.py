"""Data lake export: a run's output tables as a Common Data Model (CDM) folder.

    <path>/
        default.manifest.cdm.json       the manifest: one LocalEntity per table, with the
                                        locations of its partitions (relative to the manifest)
        <run id>/                       everything one export wrote ('<run id>-2', -3, ... when
                                        the same run is exported again)
            <Table>.cdm.json            the entity's definition: attribute names, dataFormats
            <Table>/part-00000.parquet  its data, split so no partition is much larger than
            <Table>/part-00001.parquet  max_partition_mb (.csv with a header row for csv)

The manifest is named `<name>.manifest.cdm.json` because the CDM object model recognises a
manifest by that suffix: a bare `manifest.cdm.json` loads as a plain document. Audience's own
CDM connector reads the folder either way (it takes the one `*.manifest.cdm.json` there).

A new export is written into a folder of its own that no manifest names yet, then the manifest
is replaced with one rename, so a reader sees the previous export or the new one, never a
mix. The entity documents live beside their partitions for the same reason: a schema that
changed between runs switches together with the data. Folders of earlier exports are deleted
only after the new manifest is in place. A failure removes the new folder and leaves the
previous manifest, and everything it names, as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from audience.export import ExportError
from audience.outputs import OutputError, output_schemas, published_tables
from audience.runs import RunError

if TYPE_CHECKING:
    from audience.export.config import LakeExport
    from audience.project import Project
    from audience.runs import Run

log = logging.getLogger(__name__)

MANIFEST = "default.manifest.cdm.json"
SCHEMA_VERSION = "1.0.0"
FOUNDATIONS = "cdm:/foundations.cdm.json"
MB = 1024 * 1024  # bytes in max_partition_mb's unit
MAX_BATCH_ROWS = 65_536
# A folder this export owns: a run id (runs.Workspace.start_run), maybe with a repeat suffix.
EXPORT_FOLDER = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]+(-\d+)?$")
CSV_TRAIT = {
    "traitReference": "is.partition.format.CSV",
    "arguments": [
        {"name": "columnHeaders", "value": "true"},
        {"name": "delimiter", "value": ","},
        {"name": "encoding", "value": "UTF-8"},
    ],
}
PARQUET_TRAIT = {"traitReference": "is.partition.format.parquet"}


@dataclass
class TableExport:
    name: str
    attributes: list[tuple[str, str]]  # (column, CDM dataFormat)
    partitions: list[str] = field(default_factory=list)  # locations relative to the manifest
    rows: int = 0


def export_lake(project: Project, run: Run, config: LakeExport) -> dict[str, Any]:
    """Write `run`'s output tables to the CDM folder of `config`; returns what was written."""
    where = f"exports.{config.name}"
    folder = project.resolve(config.path)
    try:
        sources = published_tables(run, config.tables)
    except (OutputError, RunError) as e:
        raise ExportError(f"{where}: {e}") from None
    seed = output_schemas()
    workspace = project.workspace_path.resolve()
    if folder.resolve() == workspace or workspace in folder.resolve().parents:
        # Earlier exports are deleted by folder name, which run folders share.
        raise ExportError(f"{where}.path: {config.path} is inside the workspace; export elsewhere")

    try:
        folder.mkdir(parents=True, exist_ok=True)
        export_dir = _new_export_dir(folder, run.id)
    except OSError as e:
        raise ExportError(f"{where}: cannot create the export folder {folder}: {e}") from None

    exported: list[TableExport] = []
    try:
        for name, source in sources.items():
            exported.append(
                _export_table(
                    name, source, export_dir, config, seed.get(name, {}), f"{where}: {name}"
                )
            )
        manifest = _manifest(config, run, export_dir.name, exported)
        try:
            _write_json_atomic(folder / MANIFEST, manifest)
        except OSError as e:
            raise ExportError(f"{where}: cannot write {folder / MANIFEST}: {e}") from None
    except BaseException:
        shutil.rmtree(export_dir, ignore_errors=True)
        raise

    _remove_earlier_exports(folder, keep=export_dir.name)
    return {
        "path": str(folder),
        "manifest": MANIFEST,
        "format": config.format,
        "tables": {t.name: {"rows": t.rows, "partitions": len(t.partitions)} for t in exported},
    }


def cdm_data_format(data_type: pa.DataType) -> str | None:
    """The CDM dataFormat of an Arrow type (None: no CDM format holds it)."""
    t = data_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "String"
    if pa.types.is_null(t):  # a column of only NULLs
        return "String"
    if pa.types.is_boolean(t):
        return "Boolean"
    if pa.types.is_integer(t):
        # Unsigned types need the next width up; a uint64 fits none of CDM's integers.
        bits = t.bit_width * (2 if pa.types.is_unsigned_integer(t) else 1)
        for width, name in ((16, "Int16"), (32, "Int32"), (64, "Int64")):
            if bits <= width:
                return name
        return "Decimal"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "Float"
    if pa.types.is_float64(t):
        return "Double"
    if pa.types.is_decimal(t):
        return "Decimal"
    if pa.types.is_date(t):
        return "Date"
    if pa.types.is_time(t):
        return "Time"
    if pa.types.is_timestamp(t):
        return "DateTimeOffset" if t.tz else "DateTime"
    return None


def _attributes(schema: pa.Schema, seed_types: dict[str, str], where: str) -> list[tuple[str, str]]:
    attributes = []
    for f in schema:
        data_format = cdm_data_format(f.type)
        if data_format is None:
            raise ExportError(
                f"{where}: column {f.name} is {f.type}, which has no CDM data format "
                "(export text, numbers, booleans, dates or timestamps)"
            )
        # The seed's 'Unique identifier' columns are GUIDs held as text: CDM says so directly.
        if data_format == "String" and seed_types.get(f.name) == "Unique identifier":
            data_format = "Guid"
        attributes.append((f.name, data_format))
    return attributes


def _export_table(
    name: str,
    source: Path,
    export_dir: Path,
    config: LakeExport,
    seed_types: dict[str, str],
    where: str,
) -> TableExport:
    """One table's entity document and partitions, written under `export_dir`."""
    data = SourceTable.open(source, where)
    table = TableExport(name, _attributes(data.schema, seed_types, where))
    table_dir = export_dir / name
    try:
        table_dir.mkdir()
        parts = write_partitions(data, table_dir, config.format, config.max_partition_mb * MB)
    except (OSError, pa.ArrowException) as e:
        raise ExportError(f"{where}: cannot export the table to {table_dir}: {e}") from None
    for path, rows in parts:
        table.partitions.append(path.relative_to(export_dir.parent).as_posix())
        table.rows += rows
    document = {
        "jsonSchemaSemanticVersion": SCHEMA_VERSION,
        "imports": [{"corpusPath": FOUNDATIONS}],
        "definitions": [
            {
                "entityName": name,
                "hasAttributes": [{"name": c, "dataFormat": f} for c, f in table.attributes],
            }
        ],
    }
    path = export_dir / f"{name}.cdm.json"
    try:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        raise ExportError(f"{where}: cannot write {path}: {e}") from None
    return table


@dataclass
class SourceTable:
    """A run's table: one Parquet file (DuckDB) or a folder of part files (Spark)."""

    files: list[Path]
    schema: pa.Schema
    rows: int
    bytes: int

    @classmethod
    def open(cls, path: Path, where: str) -> SourceTable:
        if path.is_dir():
            # Spark's _SUCCESS and .crc files are not data.
            files = sorted(p for p in path.glob("*.parquet") if not p.name.startswith((".", "_")))
            if not files:
                raise ExportError(f"{where}: no Parquet part files in the run's table {path}")
        elif path.is_file():
            files = [path]
        else:
            raise ExportError(f"{where}: the run's table is missing ({path})")
        try:
            schema = pq.read_schema(files[0])  # with Arrow's own types, as batches come
            rows = sum(pq.read_metadata(f).num_rows for f in files)
        except (OSError, pa.ArrowException) as e:
            raise ExportError(f"{where}: cannot read the run's table {path}: {e}") from None
        return cls(files, schema, rows, sum(f.stat().st_size for f in files))

    def batches(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        for path in self.files:
            # Pre-buffering reads whole files ahead: memory would grow with the table.
            with pq.ParquetFile(path, pre_buffer=False) as parquet:
                for batch in parquet.iter_batches(batch_size=batch_rows):
                    yield batch if batch.schema == self.schema else batch.cast(self.schema)


def write_partitions(
    source: SourceTable, folder: Path, fmt: str, max_bytes: int
) -> list[tuple[Path, int]]:
    """Stream `source` into part-00000.<fmt>, part-00001.<fmt>, ... under `folder`.

    A partition is closed once its file reaches `max_bytes`, measured after each batch, so
    it exceeds the limit by at most one batch; batches are sized from the source's bytes per
    row to be a small fraction of the limit. An empty table still gets one (empty) partition
    that carries the columns. Returns (path, rows) per partition.
    """
    # CSV text is a few times larger than compressed Parquet.
    bytes_per_row = max(1.0, source.bytes / max(source.rows, 1)) * (3 if fmt == "csv" else 1)
    batch_rows = int(min(MAX_BATCH_ROWS, max(1, max_bytes / bytes_per_row / 8)))
    parts: list[tuple[Path, int]] = []
    writer: _PartWriter | None = None
    try:
        for batch in source.batches(batch_rows):
            if batch.num_rows == 0:
                continue
            if writer is None:
                writer = _PartWriter(folder / f"part-{len(parts):05d}.{fmt}", fmt, source.schema)
            writer.write(batch)
            if writer.size >= max_bytes:
                parts.append(writer.close())
                writer = None
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    if writer is not None:
        parts.append(writer.close())
    if not parts:
        writer = _PartWriter(folder / f"part-00000.{fmt}", fmt, source.schema)
        parts.append(writer.close())
    return parts


class _PartWriter:
    """One partition file being written; `size` is the bytes written so far."""

    def __init__(self, path: Path, fmt: str, schema: pa.Schema):
        self.path = path
        self.rows = 0
        self._sink = pa.OSFile(str(path), "wb")
        self._writer: pq.ParquetWriter | pacsv.CSVWriter
        try:
            if fmt == "csv":
                self._writer = pacsv.CSVWriter(self._sink, schema)
            else:
                self._writer = pq.ParquetWriter(self._sink, schema)
        except BaseException:
            self._sink.close()
            raise

    @property
    def size(self) -> int:
        return self._sink.tell()

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> tuple[Path, int]:
        self._writer.close()
        self._sink.close()
        return self.path, self.rows

    def discard(self) -> None:
        """Close after a failure; the caller removes the half-written file's folder."""
        with contextlib.suppress(OSError, pa.ArrowException):
            self._writer.close()
        self._sink.close()


def _manifest(
    config: LakeExport, run: Run, export_id: str, tables: list[TableExport]
) -> dict[str, Any]:
    trait = CSV_TRAIT if config.format == "csv" else PARQUET_TRAIT
    return {
        "jsonSchemaSemanticVersion": SCHEMA_VERSION,
        "imports": [{"corpusPath": FOUNDATIONS}],
        "manifestName": config.name,
        "explanation": f"Output tables of Audience run {run.id} (export {config.name}).",
        "entities": [
            {
                "type": "LocalEntity",
                "entityName": t.name,
                "entityPath": f"{export_id}/{t.name}.cdm.json/{t.name}",
                "dataPartitions": [
                    {"location": location, "exhibitsTraits": [trait]} for location in t.partitions
                ],
            }
            for t in tables
        ],
    }


def _new_export_dir(folder: Path, run_id: str) -> Path:
    """A fresh folder for this export: the run id, or the run id with a suffix when that run
    was exported before (the manifest may still name the first folder)."""
    candidate, n = folder / run_id, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = folder / f"{run_id}-{n}"


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_earlier_exports(folder: Path, keep: str) -> None:
    """Delete the folders of earlier exports (and of failed ones); other files are the
    user's and stay."""
    for entry in folder.iterdir():
        if entry.name != keep and entry.is_dir() and EXPORT_FOLDER.match(entry.name):
            try:
                shutil.rmtree(entry)
            except OSError as e:
                # The new export is in place; a leftover folder is untidy, not a failure.
                log.warning("could not remove the earlier export %s: %s", entry, e)
