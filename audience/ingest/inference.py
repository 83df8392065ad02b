"""Types of text columns: inferred from every value (not a sample), or the project's overrides.

A text column gets the first type in INFERENCE_ORDER that all its non-null values fit, else it
stays text. The tests (`fits`) are stricter than TRY_CAST alone, which rounds '3.5' to an
integer and cuts '2024-01-01 10:00' down to a date; and a leading zero or '+' in any value
marks a column of codes (zip, phone), not numbers.

Landing uses them two ways:
- `target_types` verifies candidate types with aggregates over rows loaded as text;
- `checked_cast` casts and checks in the same pass that writes the landed file, raising on a
  value that does not fit (landing then takes the first way; see landing.land_stream).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from audience.project import COLUMN_TYPES, ColumnType

NUMBERS = ("BIGINT", "DOUBLE")
INFERENCE_SAMPLE_ROWS = 20_000
DATE = "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _matches(pattern: str) -> Callable[[str], str]:
    return lambda q: f"regexp_full_match({q}, '{pattern}')"


def _trimmed_matches(pattern: str) -> Callable[[str], str]:
    # As regexp_full_match(trim(q), pattern), but the value is trimmed only when it does not
    # match as it is (the patterns have no spaces at either end, so the answer is the same):
    # trimming every value cost as much as the match itself. DuckDB's OR skips the second
    # test for rows the first one passed.
    return lambda q: f"({_matches(pattern)(q)} OR regexp_full_match(trim({q}), '{pattern}'))"


@dataclass(frozen=True)
class _Test:
    """When a text value fits a type: its `shape` holds and its `cast` (if any) is not NULL.
    `usual`: a cheaper test of the usual form of such values (as DuckDB prints them), which
    implies the shape and that the value does not look like a code; checked_cast tries it
    first."""

    shape: Callable[[str], str]
    cast: Callable[[str], str] | None
    usual: Callable[[str], str]


# A date and a time and nothing else: no zone, so the plain cast gives the UTC time.
_plain_timestamp = _matches(f"\\s*{DATE}[ T][0-9:. ]*")
TESTS = {
    "BIGINT": _Test(_trimmed_matches("[-+]?[0-9]{1,18}"), None, _matches("-?[1-9][0-9]{0,17}")),
    "DOUBLE": _Test(
        lambda q: f"regexp_matches({q}, '^\\s*[-+]?\\.?[0-9]')",
        lambda q: f"TRY_CAST({q} AS DOUBLE)",
        lambda q: f"({q} >= '1' AND {q} < ':')",  # starts with 1-9 (':' comes after '9')
    ),
    "DATE": _Test(_trimmed_matches(DATE), lambda q: f"TRY_CAST({q} AS DATE)", _matches(DATE)),
    "TIMESTAMP": _Test(
        lambda q: f"regexp_matches({q}, '^\\s*{DATE}[ T]')",
        lambda q: f"TRY_CAST({q} AS TIMESTAMP)",
        _plain_timestamp,
    ),
    "BOOLEAN": _Test(
        lambda q: f"lower(trim({q})) IN ('true', 'false')",
        None,
        lambda q: f"{q} IN ('true', 'false')",
    ),
}
INFERENCE_ORDER = tuple(TESTS)


def fits(type_name: str, q: str) -> str:
    """SQL that is true when the text value `q` (not NULL) fits `type_name`."""
    test = TESTS[type_name]
    if test.cast is None:
        return test.shape(q)
    return f"(CASE WHEN {test.shape(q)} THEN {test.cast(q)} END) IS NOT NULL"


def looks_like_code(q: str) -> str:
    """Leading zeros and '+' mark codes (zip, phone), not numbers."""
    return f"regexp_matches({q}, '^\\s*(\\+|0[0-9])')"


def target_types(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    schema: dict[str, str],
    overrides: dict[str, ColumnType],
    hints: dict[str, str] | None = None,
) -> dict[str, str]:
    """Target DuckDB type per column of `schema` (data columns whose types may be inferred):
    the override, or the narrowest type all text fits.

    Testing every type on every value is slow (a date test on 1M names costs ~1 s), so the
    candidates are first narrowed: by the reader's hint where there is one, else on a sample.
    Then the best candidate per column is verified on every value; a column whose candidate
    fails somewhere goes on to the next one, and to text when none is left.
    """
    targets = {c: COLUMN_TYPES[o.type] for c, o in overrides.items()}
    text_cols = [c for c, t in schema.items() if t == "VARCHAR" and c not in targets]
    if not text_cols:
        return targets
    if hints is not None:
        candidates = {c: types_from(hint_type(hints.get(c, "VARCHAR"))) for c in text_cols}
    else:
        sample = f"(SELECT * FROM {relation} LIMIT {INFERENCE_SAMPLE_ROWS})"
        found = _fitting_types(con, sample, {c: list(INFERENCE_ORDER) for c in text_cols})
        candidates = {c: [t for t in INFERENCE_ORDER if t in found[c]] for c in text_cols}
    while pending := {c: types[:1] for c, types in candidates.items() if types}:
        found = _fitting_types(con, relation, pending)
        for col, (type_name,) in pending.items():
            if type_name in found[col]:
                targets[col] = type_name
                del candidates[col]
            else:
                candidates[col].pop(0)
    return targets


def hint_type(duckdb_type: str) -> str:
    """A sniffed DuckDB type as one of the inference types (or VARCHAR)."""
    t = duckdb_type.upper()
    if t in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER"):
        return "BIGINT"
    if t in ("DOUBLE", "FLOAT") or t.startswith("DECIMAL"):
        return "DOUBLE"
    if t.startswith("TIMESTAMP"):
        return "TIMESTAMP"
    return t if t in INFERENCE_ORDER else "VARCHAR"


def types_from(first: str) -> list[str]:
    """The inference types from `first` on (wider fallbacks if `first` fails), or none."""
    return list(INFERENCE_ORDER[INFERENCE_ORDER.index(first) :]) if first in INFERENCE_ORDER else []


def _fitting_types(
    con: duckdb.DuckDBPyConnection, relation: str, candidates: dict[str, list[str]]
) -> dict[str, set[str]]:
    """For each column, the candidate types that every non-null value in `relation` fits."""
    checks = []
    for col, types in candidates.items():
        q = quote(col)
        checks.append(f"count({q})")
        checks.append(f"bool_or({looks_like_code(q)})")
        checks += [f"count(*) FILTER (WHERE {q} IS NOT NULL AND {fits(t, q)})" for t in types]
    row = iter(con.execute(f"SELECT {', '.join(checks)} FROM {relation}").fetchone())
    result: dict[str, set[str]] = {}
    for col, types in candidates.items():
        non_null, code = next(row), next(row)
        counts = [next(row) for _ in types]
        result[col] = {
            t
            for t, n in zip(types, counts, strict=True)
            if non_null and n == non_null and not (code and t in NUMBERS)
        }
    return result


def cast_expr(
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
        # Text with a UTC offset ('...T10:00+02:00') is converted to UTC, not cut off. Text
        # with nothing after the time cannot name a zone and casts the same without the
        # time zone cast, which cost 5x the plain one.
        cast = (
            f"CASE WHEN {_plain_timestamp(q)} THEN TRY_CAST({q} AS TIMESTAMP) "
            f"ELSE CAST(TRY_CAST({q} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP) END"
        )
        expected = f"a valid {override.type}" if override else target
    else:
        cast = f"TRY_CAST({q} AS {target})"
        expected = f"a valid {override.type}" if override else target
    if override is None:
        return cast, None  # inferred from all values: every value fits
    failed = (
        f"CASE WHEN {q} IS NOT NULL AND ({cast}) IS NULL THEN "
        f"'column {_literal_text(col)}: ' || CAST({q} AS VARCHAR) || ' is not "
        f"{_literal_text(expected)}' END"
    )
    return cast, failed


def checked_cast(col: str, current: str, target: str | None, override: ColumnType | None) -> str:
    """The select expression for a column that also checks, value by value, what `target_types`
    would have verified beforehand: a text value that does not fit its inferred type, or any
    value that does not fit its override, raises an error instead of landing."""
    q = quote(col)
    cast, failed = cast_expr(col, current, target, override)
    if failed is not None:
        return f"CASE WHEN ({failed}) IS NULL THEN {cast} ELSE error({failed}) END"
    if override is not None or target is None or target == current:
        return cast
    test = TESTS[target]
    error = f"error('column {_literal_text(col)}: ' || {q} || ' is not {target}')"
    # The usual form implies the shape and no code, so only the test's cast is left to check;
    # and for such values the column's cast is the test's cast (a timestamp without a zone):
    # one cast, and coalesce evaluates the error only where it is NULL.
    usual_cast = test.cast(q) if test.cast else cast
    full = test.shape(q)
    if target in NUMBERS:
        full += f" AND NOT {looks_like_code(q)}"
    if test.cast:
        full += f" AND {test.cast(q)} IS NOT NULL"
    return (
        f"CASE WHEN {q} IS NULL THEN NULL WHEN {test.usual(q)} THEN coalesce({usual_cast}, "
        f"{error}) WHEN {full} THEN {cast} ELSE {error} END"
    )


def _literal_text(text: str) -> str:
    return text.replace("'", "''")
