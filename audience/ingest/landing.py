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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from audience.project import COLUMN_TYPES, ColumnType, TableRef

QUARANTINE_COLUMNS = {
    "source": "VARCHAR",
    "table": "VARCHAR",
    "file": "VARCHAR",
    "row": "BIGINT",
    "column": "VARCHAR",
    "reason": "VARCHAR",
    "raw": "VARCHAR",
}
# Text column inference: the first type whose test every non-null value passes wins. The
# tests are stricter than TRY_CAST alone, which rounds '3.5' to an integer and cuts
# '2024-01-01 10:00' down to a date.
INFERENCE_ORDER = {
    "BIGINT": "regexp_full_match(trim({q}), '[-+]?[0-9]{{1,18}}')",
    "DOUBLE": "(CASE WHEN regexp_matches({q}, '^\\s*[-+]?\\.?[0-9]') "
    "THEN TRY_CAST({q} AS DOUBLE) END) IS NOT NULL",
    "DATE": "(CASE WHEN regexp_full_match(trim({q}), '[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}') "
    "THEN TRY_CAST({q} AS DATE) END) IS NOT NULL",
    "TIMESTAMP": "(CASE WHEN regexp_matches({q}, '^\\s*[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}[ T]') "
    "THEN TRY_CAST({q} AS TIMESTAMP) END) IS NOT NULL",
    "BOOLEAN": "lower(trim({q})) IN ('true', 'false')",
}
INTERNAL_COLUMNS = ("_row", "_file")
INFERENCE_SAMPLE_ROWS = 20_000


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


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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

    inferable = schema if raw.infer_types else {}
    targets = _target_types(con, raw.relation, inferable, table.types, raw.type_hints)
    select_parts, reasons, bad_columns = [], [], []
    for col in data_columns:
        expr, failed = _cast_expr(col, schema[col], targets.get(col), table.types.get(col))
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
    nulls, dupes = con.execute(
        f"SELECT count(*) FILTER (WHERE {key} IS NULL OR trim(CAST({key} AS VARCHAR)) = ''), "
        f"count({key}) - count(DISTINCT {key}) FROM _typed WHERE _bad IS NULL"
    ).fetchone()
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
        con, raw, ref, table.primary_key, data_columns, quarantine_path, typed
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


def _target_types(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    schema: dict[str, str],
    overrides: dict[str, ColumnType],
    hints: dict[str, str] | None = None,
) -> dict[str, str]:
    """Target DuckDB type per column: the override, or the narrowest type all text fits.

    Testing every type on every value is slow (a date test on 1M names costs ~1 s), so the
    candidates are first narrowed: by the reader's hint where there is one, else on a sample.
    Then the best candidate per column is verified on every value; a column whose candidate
    fails somewhere goes on to the next one, and to text when none is left.
    """
    targets = {c: COLUMN_TYPES[o.type] for c, o in overrides.items()}
    text_cols = [
        c
        for c, t in schema.items()
        if t == "VARCHAR" and c not in targets and c not in INTERNAL_COLUMNS
    ]
    if not text_cols:
        return targets
    if hints is not None:
        candidates = {c: _types_from(_hint_type(hints.get(c, "VARCHAR"))) for c in text_cols}
    else:
        sample = f"(SELECT * FROM {relation} LIMIT {INFERENCE_SAMPLE_ROWS})"
        fits = _fitting_types(con, sample, {c: list(INFERENCE_ORDER) for c in text_cols})
        candidates = {c: [t for t in INFERENCE_ORDER if t in fits[c]] for c in text_cols}
    while pending := {c: types[:1] for c, types in candidates.items() if types}:
        fits = _fitting_types(con, relation, pending)
        for col, (type_name,) in pending.items():
            if type_name in fits[col]:
                targets[col] = type_name
                del candidates[col]
            else:
                candidates[col].pop(0)
    return targets


def _hint_type(duckdb_type: str) -> str:
    """A sniffed DuckDB type as one of the inference types (or VARCHAR)."""
    t = duckdb_type.upper()
    if t in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER"):
        return "BIGINT"
    if t in ("DOUBLE", "FLOAT") or t.startswith("DECIMAL"):
        return "DOUBLE"
    if t.startswith("TIMESTAMP"):
        return "TIMESTAMP"
    return t if t in INFERENCE_ORDER else "VARCHAR"


def _types_from(first: str) -> list[str]:
    """The inference types from `first` on (wider fallbacks if `first` fails), or none."""
    order = list(INFERENCE_ORDER)
    return order[order.index(first) :] if first in order else []


def _fitting_types(
    con: duckdb.DuckDBPyConnection, relation: str, candidates: dict[str, list[str]]
) -> dict[str, set[str]]:
    """For each column, the candidate types that every non-null value in `relation` fits."""
    checks = []
    for col, types in candidates.items():
        q = quote(col)
        checks.append(f"count({q})")
        # Leading zeros and '+' mark codes (zip, phone), not numbers.
        checks.append(f"bool_or(regexp_matches({q}, '^\\s*(\\+|0[0-9])'))")
        checks += [
            f"count(*) FILTER (WHERE {q} IS NOT NULL AND {INFERENCE_ORDER[t].format(q=q)})"
            for t in types
        ]
    row = iter(con.execute(f"SELECT {', '.join(checks)} FROM {relation}").fetchone())
    result: dict[str, set[str]] = {}
    for col, types in candidates.items():
        non_null, looks_like_code = next(row), next(row)
        counts = [next(row) for _ in types]
        result[col] = {
            t
            for t, n in zip(types, counts, strict=True)
            if non_null and n == non_null and not (looks_like_code and t in ("BIGINT", "DOUBLE"))
        }
    return result


def _cast_expr(
    col: str, current: str, target: str | None, override: ColumnType | None
) -> tuple[str, str | None]:
    """The select expression for a column and, for overrides, an expression that names a
    failure (NULL when the value fits)."""
    q = quote(col)
    if target is None or target == current:
        return q, None
    if override and override.format and target in ("DATE", "TIMESTAMP"):
        cast = f"CAST(try_strptime(CAST({q} AS VARCHAR), {sql_str(override.format)}) AS {target})"
        expected = f"a {override.type} in the format {override.format}"
    elif target == "TIMESTAMP" and current == "VARCHAR":
        # Text with a UTC offset ('...T10:00+02:00') is converted to UTC, not cut off.
        cast = f"CAST(TRY_CAST({q} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)"
        expected = f"a valid {override.type}" if override else target
    else:
        cast = f"TRY_CAST({q} AS {target})"
        expected = f"a valid {override.type}" if override else target
    if override is None:
        return cast, None  # inferred from all values: every value fits
    failed = (
        f"CASE WHEN {q} IS NOT NULL AND {cast} IS NULL THEN "
        f"'column {_sql_literal_text(col)}: ' || CAST({q} AS VARCHAR) || ' is not "
        f"{_sql_literal_text(expected)}' END"
    )
    return cast, failed


def _json_record(columns: list[str]) -> str:
    struct = "{" + ", ".join(f"{sql_str(c)}: {quote(c)}" for c in columns) + "}"
    return f"CAST(to_json({struct}) AS VARCHAR)"


def _sql_literal_text(text: str) -> str:
    return text.replace("'", "''")


def _write_quarantine(
    con: duckdb.DuckDBPyConnection,
    raw: RawRead,
    ref: TableRef,
    primary_key: str,
    data_columns: list[str],
    path: Path,
    typed: str = "_typed",
) -> int:
    """Read-time rejects plus rows that failed typing or key checks, one row per record."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _quarantine ("
        + ", ".join(f"{quote(c)} {t}" for c, t in QUARANTINE_COLUMNS.items())
        + ")"
    )
    if raw.quarantine:
        rows = [
            (
                ref.source.name,
                ref.table.name,
                q.get("file", raw.file),
                q.get("row"),
                q.get("column"),
                q["reason"],
                q.get("raw"),
            )
            for q in raw.quarantine
        ]
        con.executemany("INSERT INTO _quarantine VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute(
        f"INSERT INTO _quarantine SELECT {sql_str(ref.source.name)}, {sql_str(ref.table.name)}, "
        f"_file, _row, coalesce(_bad_col, {sql_str(primary_key)}), _bad, "
        f"coalesce(_raw_json, {_json_record(data_columns)}) FROM {typed} WHERE _bad IS NOT NULL"
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
