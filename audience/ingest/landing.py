"""Landing: turn the raw rows a connector read into a typed source table and a quarantine.

Every connector loads its rows into a DuckDB relation with a `_row` column (the record's
row or line number in the source) and optionally `_file`. Landing then, the same way for
every connector:
1. infers a type for text columns from all values (not a sample) and applies the project's
   type overrides; a value that does not fit its override sends the row to quarantine;
2. checks the primary key: empty keys and repeated keys (after the first) go to quarantine;
3. writes the typed table and the quarantine as Parquet.
So `rows_in = rows_loaded + rows_quarantined` for every table, and nothing is dropped
silently.

A connector that reads a single file (CSV, Parquet) can instead hand over a `Stream`: landing
first tries the file straight to Parquet in one pass, casting and checking every value on the
way (`land_stream`). Only when that finds something to quarantine (a value that does not fit
its type, an empty or repeated key) are the rows loaded with row numbers and landed as above.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from audience.ingest.inference import (
    cast_expr,
    checked_cast,
    hint_type,
    quote,
    sql_str,
    target_types,
)
from audience.project import COLUMN_TYPES, TableRef

QUARANTINE_COLUMNS = {
    "source": "VARCHAR",
    "table": "VARCHAR",
    "file": "VARCHAR",
    "row": "BIGINT",
    "column": "VARCHAR",
    "reason": "VARCHAR",
    "raw": "VARCHAR",
}
INTERNAL_COLUMNS = ("_row", "_file")
# Types whose values cannot be blank text (a key of these is empty only when NULL).
NOT_TEXT = ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER",
            "USMALLINT", "UTINYINT", "DOUBLE", "FLOAT", "DECIMAL", "DATE", "TIMESTAMP",
            "BOOLEAN")  # fmt: skip


class SourceError(Exception):
    """A source that cannot be read at all; the message names the config path and file."""


@dataclass
class RawRead:
    """What a connector hands to landing."""

    relation: str  # DuckDB table or view with the raw rows, a `_row` and maybe a `_file` column
    file: str  # the file (or table/query) shown in quarantine rows without their own `_file`
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # rows rejected on read
    # Text formats (CSV, JSON) carry no types: landing infers them. Typed sources (Parquet,
    # SQL, Delta, CDM) declare theirs, and a digits-only string column stays a string.
    infer_types: bool = True
    # Types a fast reader guessed from a sample (DuckDB's CSV sniffer): verified on all values
    # instead of testing every type, which is what makes inference cheap on big files.
    type_hints: dict[str, str] | None = None

    def read_stats(self) -> dict[str, Any]:
        """What the connector did beyond rows (e.g. incremental deletes), for run results."""
        return {}


@dataclass
class Stream:
    """A source landing can read in one pass, straight from its file (see `land_stream`)."""

    source: str  # a FROM item yielding the rows in source order, e.g. read_csv(...)
    schema: dict[str, str]  # column -> DuckDB type as `source` yields it
    file: str  # the file shown in quarantine rows
    rejects: Callable[[], list[dict[str, Any]]]  # after the pass: lines the reader rejected
    load: Callable[[], RawRead]  # the rows in a temp table with `_row`, for `land`
    infer_types: bool = True  # as RawRead's
    type_hints: dict[str, str] | None = None  # as RawRead's
    # A typed file laid out as landing would write it: when no value changes type, it is
    # copied as it is instead of being decoded and encoded again.
    as_landed: Path | None = None


@dataclass
class LandedTable:
    ref: TableRef
    path: Path
    quarantine_path: Path
    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    columns: dict[str, str]
    read_stats: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        summary = {
            "table": self.ref.id,
            "rows_in": self.rows_in,
            "rows_loaded": self.rows_loaded,
            "rows_quarantined": self.rows_quarantined,
            "columns": self.columns,
        }
        if self.read_stats:
            summary["read"] = self.read_stats
        return summary


def land(
    con: duckdb.DuckDBPyConnection,
    raw: RawRead,
    ref: TableRef,
    config_path: str,
    out_path: Path,
    quarantine_path: Path,
) -> LandedTable:
    table = ref.table
    schema = {r[0]: r[1] for r in con.sql(f"DESCRIBE {raw.relation}").fetchall()}
    data_columns = [c for c in schema if c not in INTERNAL_COLUMNS]
    problems = column_problems(ref, config_path, data_columns)
    if problems:
        raise SourceError("\n".join(problems))
    file_expr = "_file" if "_file" in schema else sql_str(raw.file)

    inferable = {c: schema[c] for c in data_columns} if raw.infer_types else {}
    targets = target_types(con, raw.relation, inferable, table.types, raw.type_hints)
    select_parts, reasons, bad_columns = [], [], []
    for col in data_columns:
        expr, failed = cast_expr(col, schema[col], targets.get(col), table.types.get(col))
        select_parts.append(f"{expr} AS {quote(col)}")
        if failed:
            reasons.append(failed)
            bad_columns.append(f"CASE WHEN {failed} IS NOT NULL THEN {sql_str(col)} END")
    null = "CAST(NULL AS VARCHAR)"
    bad = f"nullif(concat_ws('; ', {', '.join(reasons)}), '')" if reasons else null
    bad_col = f"coalesce({', '.join(bad_columns)})" if bad_columns else null
    # A row that fails typing is quarantined with its values as they were in the source.
    raw_record = _json_record(data_columns)
    raw_json = f"CASE WHEN {bad} IS NOT NULL THEN {raw_record} END" if reasons else null
    # Without type overrides no row can fail typing: a view is enough, and the big copy of a
    # temp table is saved (the data is then read once for the key check, once for COPY).
    kind = "TABLE" if reasons else "VIEW"
    con.execute(
        f"CREATE OR REPLACE TEMP {kind} _typed AS SELECT _row, {file_expr} AS _file, "
        f"{', '.join(select_parts)}, {bad} AS _bad, {bad_col} AS _bad_col, "
        f"{raw_json} AS _raw_json FROM {raw.relation}"
    )
    typed = "_typed"

    key = quote(table.primary_key)
    pk_problem = (
        f"CASE WHEN {key} IS NULL OR trim(CAST({key} AS VARCHAR)) = '' "
        f"THEN 'primary key ''{table.primary_key}'' is empty' END"
    )
    _, nulls, dupes = _key_problems(con, table.primary_key, "_typed WHERE _bad IS NULL")
    if dupes:
        # Only pay for the window when there are duplicates: keep the first, report the rest.
        typed = "_typed_keys"
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _typed_keys AS SELECT * EXCLUDE "
            f"(_bad, _rank, _first, _first_file), coalesce(_bad, {pk_problem}, "
            f"CASE WHEN _rank > 1 THEN 'duplicate primary key ''{table.primary_key}'' = ' || "
            f"CAST({key} AS VARCHAR) || ' (first at ' || CASE WHEN _first_file <> _file "
            "THEN _first_file || ' ' ELSE '' END || 'row ' || _first || ')' END) AS _bad "
            "FROM (SELECT *, row_number() OVER w AS _rank, first(_row) OVER w AS _first, "
            "first(_file) OVER w AS _first_file FROM _typed "
            f"WINDOW w AS (PARTITION BY {key}, _bad IS NULL ORDER BY _file, _row))"
        )
    elif nulls:
        typed = "_typed_keys"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _typed_keys AS SELECT * EXCLUDE (_bad), "
            f"coalesce(_bad, {pk_problem}) AS _bad FROM _typed"
        )

    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Rows keep the source's order. One file read straight through keeps it by itself
    # (insertion order is preserved); several files or the duplicate-key window need a sort.
    order = "ORDER BY _file, _row" if "_file" in schema or dupes else ""
    cols = ", ".join(quote(c) for c in data_columns)
    con.execute(
        f"COPY (SELECT {cols} FROM {typed} WHERE _bad IS NULL {order}) "
        f"TO {sql_str(str(out_path))} (FORMAT PARQUET)"
    )
    loaded = con.execute(f"SELECT count(*) FROM {typed} WHERE _bad IS NULL").fetchone()[0]
    quarantined = _write_quarantine(
        con, raw.quarantine, raw.file, ref, data_columns, quarantine_path, typed
    )
    types = {r[0]: r[1] for r in con.sql(f"DESCRIBE SELECT {cols} FROM {typed}").fetchall()}
    con.execute("DROP TABLE IF EXISTS _typed_keys")
    con.execute(f"DROP {kind} IF EXISTS _typed")
    return LandedTable(
        ref=ref,
        path=out_path,
        quarantine_path=quarantine_path,
        rows_in=loaded + quarantined,
        rows_loaded=loaded,
        rows_quarantined=quarantined,
        columns=types,
        read_stats=raw.read_stats(),
    )


def land_stream(
    con: duckdb.DuckDBPyConnection,
    stream: Stream,
    ref: TableRef,
    config_path: str,
    out_path: Path,
    quarantine_path: Path,
) -> LandedTable | None:
    """Land `stream` in one pass if nothing in it needs quarantine, else return None (nothing
    landed; `land` the stream's `load()` instead).

    The pass casts each text column to the type the reader's sniffer guessed, checking every
    value as `target_types` would, and raises at the first value that does not fit (or does not
    fit an override); the key is checked on the file written. That is one read of the source
    instead of four (load, verify types, check keys, copy), without row numbers or a copy of
    the rows in memory. A wrong guess costs the start of a pass, usually its first rows.
    A file `as_landed` whose types stay is only read for its key, then copied.
    """
    table = ref.table
    columns = list(stream.schema)
    problems = column_problems(ref, config_path, columns)
    if problems:
        raise SourceError("\n".join(problems))
    hints = stream.type_hints or {}
    targets = {c: hint_type(hints[c]) for c in columns if stream.infer_types and c in hints}
    targets |= {c: COLUMN_TYPES[o.type] for c, o in table.types.items()}
    types = {c: targets.get(c, stream.schema[c]) for c in columns}
    select = ", ".join(
        f"{checked_cast(c, stream.schema[c], types[c], table.types.get(c))} AS {quote(c)}"
        for c in columns
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    text_key = not types[table.primary_key].startswith(NOT_TEXT)
    if stream.as_landed and types == stream.schema:
        rows, empty, repeated = _key_problems(con, table.primary_key, stream.source, text_key)
        if empty or repeated:
            return None
        shutil.copyfile(stream.as_landed, out_path)
    else:
        try:
            con.execute(
                f"COPY (SELECT {select} FROM {stream.source}) TO {sql_str(str(out_path))} "
                "(FORMAT PARQUET)"
            )
        except duckdb.Error:
            return None  # a value to quarantine, or an unreadable file: `land` says which
        landed = f"read_parquet({sql_str(str(out_path))})"
        rows, empty, repeated = _key_problems(con, table.primary_key, landed, text_key)
        if empty or repeated:
            return None
    quarantined = _write_quarantine(
        con, stream.rejects(), stream.file, ref, columns, quarantine_path
    )
    return LandedTable(
        ref=ref,
        path=out_path,
        quarantine_path=quarantine_path,
        rows_in=rows + quarantined,
        rows_loaded=rows,
        rows_quarantined=quarantined,
        columns=types,
    )


def _key_problems(
    con: duckdb.DuckDBPyConnection, key_column: str, rows: str, text: bool = True
) -> tuple[int, int, int]:
    """(rows, empty keys, repeated keys) in `rows` (a FROM clause); only a text key can be
    blank."""
    key = quote(key_column)
    blank = f" OR trim(CAST({key} AS VARCHAR)) = ''" if text else ""
    return con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {key} IS NULL{blank}), "
        f"count({key}) - count(DISTINCT {key}) FROM {rows}"
    ).fetchone()


def column_problems(ref: TableRef, config_path: str, columns: list[str]) -> list[str]:
    """Config keys of a table that name columns the table does not have."""
    table = ref.table
    wanted = [("primary_key", table.primary_key)]
    wanted += [(f"types.{c}", c) for c in table.types]
    if table.timestamp_column:
        wanted.append(("timestamp_column", table.timestamp_column))
    where = getattr(table, "path", None) or ref.label
    return [
        f"{config_path}.{key}: column '{col}' not in {where}; columns are {', '.join(columns)}"
        for key, col in wanted
        if col not in columns
    ]


def _json_record(columns: list[str]) -> str:
    struct = "{" + ", ".join(f"{sql_str(c)}: {quote(c)}" for c in columns) + "}"
    return f"CAST(to_json({struct}) AS VARCHAR)"


def _write_quarantine(
    con: duckdb.DuckDBPyConnection,
    rejects: list[dict[str, Any]],
    file: str,
    ref: TableRef,
    data_columns: list[str],
    path: Path,
    typed: str | None = None,
) -> int:
    """Read-time rejects plus rows of `typed` that failed typing or key checks, one row per
    record."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _quarantine ("
        + ", ".join(f"{quote(c)} {t}" for c, t in QUARANTINE_COLUMNS.items())
        + ")"
    )
    if rejects:
        rows = [
            (
                ref.source.name,
                ref.table.name,
                q.get("file", file),
                q.get("row"),
                q.get("column"),
                q["reason"],
                q.get("raw"),
            )
            for q in rejects
        ]
        con.executemany("INSERT INTO _quarantine VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    if typed:
        con.execute(
            f"INSERT INTO _quarantine SELECT {sql_str(ref.source.name)}, "
            f"{sql_str(ref.table.name)}, _file, _row, "
            f"coalesce(_bad_col, {sql_str(ref.table.primary_key)}), _bad, "
            f"coalesce(_raw_json, {_json_record(data_columns)}) FROM {typed} "
            "WHERE _bad IS NOT NULL"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"COPY (SELECT * FROM _quarantine ORDER BY file, row) TO {sql_str(str(path))} "
        "(FORMAT PARQUET)"
    )
    n = con.execute("SELECT count(*) FROM _quarantine").fetchone()[0]
    con.execute("DROP TABLE _quarantine")
    return n


def quarantine_record(
    reason: str,
    row: int | None = None,
    column: str | None = None,
    raw: Any = None,
    file: str | None = None,
) -> dict[str, Any]:
    """A read-time reject, as connectors report them."""
    record: dict[str, Any] = {"reason": reason, "row": row, "column": column}
    if raw is not None:
        record["raw"] = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    if file is not None:
        record["file"] = file
    return record
