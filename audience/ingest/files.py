"""File connectors: CSV, Parquet, JSON / JSON Lines, read with DuckDB.

Each `read_*` loads the raw rows into a DuckDB temp table with `_row` (line or record number)
and reports the rows it could not parse, or, for one CSV or Parquet file, hands landing a
`Stream` over the file that loads them so only when needed; `describe_*` returns the column
names cheaply (for `audience validate`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from audience.ingest.landing import RawRead, SourceError, Stream, quarantine_record, sql_str
from audience.project import CsvOptions, Project, TableRef


def resolve_file(
    project: Project, ref: TableRef, config_path: str, must_be_file: bool = True
) -> Path:
    path = project.resolve(ref.table.path)
    if not path.exists():
        raise SourceError(
            f"{config_path}.path: file not found: {ref.table.path} (looked at {path})"
        )
    if must_be_file and path.is_dir():
        raise SourceError(f"{config_path}.path: {ref.table.path} is a folder, expected a file")
    if path.is_file() and path.stat().st_size == 0:
        raise SourceError(f"{config_path}.path: {ref.table.path} is empty")
    return path


def csv_options_sql(options: CsvOptions) -> str:
    parts = [
        f"delim={sql_str(options.delimiter)}",
        f"quote={sql_str(options.quote)}",
        f"header={'true' if options.header else 'false'}",
        f"encoding={sql_str(options.encoding)}",
        "nullstr=[" + ", ".join(sql_str(v) for v in options.null_values) + "]",
        "all_varchar=true",
        # A quoted empty field ("") is an empty string, not a missing value.
        "allow_quoted_nulls=false",
    ]
    if options.escape:
        parts.append(f"escape={sql_str(options.escape)}")
    return ", ".join(parts)


def sniff_csv_types(
    con: duckdb.DuckDBPyConnection, path: str, options: CsvOptions
) -> dict[str, str]:
    """DuckDB's sniffer's guess of each column's type, from a sample (a hint for landing)."""
    sql_options = csv_options_sql(options).replace("all_varchar=true", "ignore_errors=true")
    rows = con.execute(f"DESCRIBE SELECT * FROM read_csv({sql_str(path)}, {sql_options})")
    return {r[0]: r[1] for r in rows.fetchall()}


def read_csv_files(
    con: duckdb.DuckDBPyConnection, pattern: str, options: CsvOptions, relation: str, label: str
) -> list[dict]:
    """Load one CSV file into `relation`; returns the rejected lines.

    Every value is read as text; landing infers types from all values afterwards, so a bad
    value late in a file is not mistaken for a different type by a sampling sniffer.
    """
    _drop_rejects(con)
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {relation} AS SELECT row_number() OVER () "
            f"+ {1 if options.header else 0} AS _row, * FROM {_csv_source(pattern, options)}"
        )
    except duckdb.Error as e:
        raise SourceError(f"{label}: cannot read CSV: {e}") from None
    rejects = _rejected_lines(con)
    if rejects:
        # _row counts good records only; shift it to the real line number past rejected lines.
        lines = sorted({r["row"] for r in rejects})
        _shift_rows_past_rejects(con, relation, lines)
    return rejects


def _csv_source(pattern: str, options: CsvOptions) -> str:
    """DuckDB's reader for the file, every value as text, rejected lines kept aside."""
    return f"read_csv({sql_str(pattern)}, {csv_options_sql(options)}, store_rejects=true)"


def _drop_rejects(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")


def _rejected_lines(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The lines the last read with store_rejects could not parse, one record per line."""
    rejects = con.execute(
        "SELECT line, first(column_name ORDER BY column_idx), "
        "first(error_type || ': ' || error_message ORDER BY column_idx), first(csv_line) "
        "FROM reject_errors "
        "GROUP BY line ORDER BY line"
    ).fetchall()
    _drop_rejects(con)
    return [
        quarantine_record(reason, row=line, column=column, raw=csv_line)
        for line, column, reason, csv_line in rejects
    ]


def _shift_rows_past_rejects(
    con: duckdb.DuckDBPyConnection, relation: str, lines: list[int]
) -> None:
    """Turn good-record numbers into file line numbers (`lines`: the rejected ones, sorted).

    The i-th rejected line (1-based, in line order) at line L sits before every good record
    whose provisional line number is above L - i; each such reject pushes the record down one.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE _reject_slots (slot BIGINT)")
    con.executemany(
        "INSERT INTO _reject_slots VALUES (?)", [(line - i,) for i, line in enumerate(lines, 1)]
    )
    con.execute(
        f"UPDATE {relation} SET _row = _row + "
        f"(SELECT count(*) FROM _reject_slots WHERE slot < {relation}._row)"
    )
    con.execute("DROP TABLE _reject_slots")


def read_csv(
    con: duckdb.DuckDBPyConnection, ref: TableRef, project: Project, config_path: str
) -> Stream | RawRead:
    path, options = str(resolve_file(project, ref, config_path)), ref.source.options

    def load() -> RawRead:
        rejects = read_csv_files(con, path, options, "_raw", f"{config_path}.path")
        hints = sniff_csv_types(con, path, options)
        return RawRead("_raw", ref.table.path, rejects, type_hints=hints)

    try:
        hints = sniff_csv_types(con, path, options)
    except duckdb.Error:
        return load()  # which says what is wrong with the file
    _drop_rejects(con)
    return Stream(
        source=_csv_source(path, options),
        schema=dict.fromkeys(hints, "VARCHAR"),
        file=ref.table.path,
        rejects=lambda: _rejected_lines(con),
        load=load,
        type_hints=hints,
    )


def describe_csv(ref: TableRef, project: Project, config_path: str) -> list[str]:
    path = resolve_file(project, ref, config_path)
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"DESCRIBE SELECT * FROM read_csv({sql_str(str(path))}, "
            f"{csv_options_sql(ref.source.options)}, ignore_errors=true)"
        ).fetchall()
    except duckdb.Error as e:
        raise SourceError(f"{config_path}.path: cannot read CSV {ref.table.path}: {e}") from None
    finally:
        con.close()
    return [r[0] for r in rows]


def _parquet_pattern(path: Path) -> str:
    return str(path / "**" / "*.parquet") if path.is_dir() else str(path)


def read_parquet(
    con: duckdb.DuckDBPyConnection, ref: TableRef, project: Project, config_path: str
) -> Stream | RawRead:
    path = resolve_file(project, ref, config_path, must_be_file=False)
    pattern = sql_str(_parquet_pattern(path))

    def load() -> RawRead:
        # A folder of part files: name each row's file so quarantine rows can point to it.
        filename = ", filename='_file'" if path.is_dir() else ""
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _raw AS SELECT file_row_number + 1 AS _row, "
                f"* EXCLUDE (file_row_number) FROM read_parquet({pattern}, "
                f"file_row_number=true, union_by_name=true{filename})"
            )
        except duckdb.Error as e:
            raise SourceError(
                f"{config_path}.path: cannot read Parquet {ref.table.path}: {e}"
            ) from None
        return RawRead("_raw", ref.table.path, infer_types=False)

    if path.is_dir():
        return load()  # several files: their order and `_file` need the loaded rows
    try:
        schema = con.execute(f"DESCRIBE SELECT * FROM read_parquet({pattern})").fetchall()
    except duckdb.Error:
        return load()
    return Stream(
        source=f"read_parquet({pattern})",
        schema={r[0]: r[1] for r in schema},
        file=ref.table.path,
        rejects=list,
        load=load,
        infer_types=False,
        as_landed=path if _as_landed(path, [r[0] for r in schema]) else None,
    )


def describe_parquet(ref: TableRef, project: Project, config_path: str) -> list[str]:
    path = resolve_file(project, ref, config_path, must_be_file=False)
    con = duckdb.connect()
    try:
        pattern = sql_str(_parquet_pattern(path))
        rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({pattern})").fetchall()
    except duckdb.Error as e:
        raise SourceError(
            f"{config_path}.path: cannot read Parquet {ref.table.path}: {e}"
        ) from None
    finally:
        con.close()
    return [r[0] for r in rows]


# Row groups are the unit the engines read in parallel: DuckDB writes 122,880 rows to one. A
# file of bigger ones would be read by fewer threads in every later stage, one of many tiny
# ones with more overhead; both are landed anew.
LANDED_ROW_GROUP_ROWS = (16_384, 262_144)  # at least on average, at most
LANDED_CODECS = ("UNCOMPRESSED", "SNAPPY", "GZIP", "ZSTD")  # which both engines read


def _as_landed(path: Path, columns: list[str]) -> bool:
    """Whether a Parquet file is laid out as landing writes one, so that a copy of it can be
    the landed table: row groups of a size as above, a codec both engines read, no legacy INT96
    timestamps (landing writes microseconds), and the columns DuckDB reads under the names the
    file gives them (none renamed)."""
    try:
        meta = pq.ParquetFile(path).metadata
    except (OSError, pa.ArrowException):
        return False
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    low, high = LANDED_ROW_GROUP_ROWS
    if any(g.num_rows > high for g in groups) or meta.num_rows < low * (len(groups) - 1):
        return False
    chunks = [g.column(j) for g in groups for j in range(g.num_columns)]
    return meta.schema.to_arrow_schema().names == columns and all(
        c.compression in LANDED_CODECS and c.physical_type != "INT96" for c in chunks
    )


def _json_records(
    path: Path, fmt: str, config_path: str
) -> tuple[list[int], list[str], list[dict]]:
    """(line numbers, JSON object texts, rejects) of a JSON Lines or JSON array file."""
    if fmt == "auto":
        fmt = "lines" if path.suffix.lower() in (".jsonl", ".ndjson") else "array"
    rows, texts, rejects = [], [], []
    if fmt == "lines":
        with path.open(encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as e:
                    rejects.append(
                        quarantine_record(
                            f"not valid JSON: {e.msg} at column {e.colno}",
                            row=number,
                            raw=line.rstrip("\n"),
                        )
                    )
                    continue
                if not isinstance(value, dict):
                    rejects.append(
                        quarantine_record(
                            "line is not a JSON object", row=number, raw=line.rstrip("\n")
                        )
                    )
                    continue
                rows.append(number)
                texts.append(line)
        return rows, texts, rejects
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SourceError(
            f"{config_path}.path: {path.name} is not valid JSON: {e.msg} at line {e.lineno} "
            f"column {e.colno} (for one object per line, set format: lines)"
        ) from None
    if not isinstance(data, list):
        raise SourceError(f"{config_path}.path: {path.name} must hold a JSON array of objects")
    for number, value in enumerate(data, start=1):
        if isinstance(value, dict):
            rows.append(number)
            texts.append(json.dumps(value))
        else:
            rejects.append(
                quarantine_record("array element is not a JSON object", row=number, raw=value)
            )
    return rows, texts, rejects


def read_json(
    con: duckdb.DuckDBPyConnection, ref: TableRef, project: Project, config_path: str
) -> RawRead:
    path = resolve_file(project, ref, config_path)
    rows, texts, rejects = _json_records(path, ref.source.format, config_path)
    if not texts:
        raise SourceError(f"{config_path}.path: {ref.table.path} has no readable JSON records")
    # DuckDB parses and types the good records; the line numbers are joined back by position.
    tmp = _scratch_file(con, ".jsonl")
    tmp.write_text("".join(t if t.endswith("\n") else t + "\n" for t in texts), encoding="utf-8")
    con.execute("CREATE OR REPLACE TEMP TABLE _json_rows (_row BIGINT)")
    con.executemany("INSERT INTO _json_rows VALUES (?)", [(r,) for r in rows])
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _raw AS SELECT r._row, j.* FROM "
            "(SELECT _row FROM _json_rows ORDER BY _row) r POSITIONAL JOIN "
            f"read_json({sql_str(str(tmp))}, format='newline_delimited', sample_size=-1) j"
        )
    except duckdb.Error as e:
        raise SourceError(f"{config_path}.path: cannot read JSON {ref.table.path}: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)
        con.execute("DROP TABLE IF EXISTS _json_rows")
    return RawRead("_raw", ref.table.path, rejects)


def describe_json(ref: TableRef, project: Project, config_path: str) -> list[str]:
    path = resolve_file(project, ref, config_path)
    _, texts, _ = _json_records(path, ref.source.format, config_path)
    columns: dict[str, None] = {}
    for text in texts:
        columns.update(dict.fromkeys(json.loads(text)))
    return list(columns)


def _scratch_file(con: duckdb.DuckDBPyConnection, suffix: str) -> Path:
    """A temporary file beside DuckDB's own spill files."""
    folder = con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
    folder_path = Path(folder) if folder else Path(tempfile.gettempdir())
    folder_path.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(suffix=suffix, prefix="audience-", dir=folder_path)
    os.close(handle)
    return Path(name)
