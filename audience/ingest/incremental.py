"""Incremental folders: a full load plus hourly upserts and deletes, resolved to the current state.

Layout (the modelled system's; times are UTC):
    <path>/FullData/*                                  optional full load
    <path>/IncrementalData/yyyy/mm/dd/hh/Upserts/*     new and changed records
    <path>/IncrementalData/yyyy/mm/dd/hh/Deletes/*     deleted keys (the key, and the
                                                       timestamp column when the table has one)
Files are CSV or Parquet as the source's `format` says; names starting with '.' or '_'
(`_SUCCESS`, `.crc`) are ignored.

Rules:
- An hour folder is read only after its hour has ended (hh:00 + 1 h <= now, UTC): files may
  still be arriving in it. Later hours are left for a later run (logged).
- A folder under IncrementalData that is not a valid yyyy/mm/dd/hh hour is an error.
- For each primary key the latest change wins. Changes are ordered by, in turn:
  1. the table's `timestamp_column`, when set (text with a UTC offset is converted to UTC,
     text without one is taken as UTC; an empty timestamp is older than any other);
  2. the hour folder (the full load is older than every hour);
  3. within one hour, Deletes over Upserts.
  A key whose latest change is a delete is removed; otherwise its latest version is kept.
  Versions that tie on all three (a key twice in the full load, or twice in one hour's
  Upserts with equal timestamps) are all kept, so that landing reports a duplicate key
  instead of this module picking one arbitrarily.
- Rows removed because their key was deleted and older versions replaced by newer ones are
  history, not bad data: they are not quarantined, but counted on `IncrementalRead`
  (`deleted_rows`, `superseded_rows`) and logged.
- Quarantined here: lines the CSV parser rejects; files that cannot be read at all (one
  record naming the file); rows of a file without the key column (or the timestamp column,
  when set); Deletes rows without a key; rows whose timestamp is not one (they cannot be
  ordered). Rows with an empty key that are not deletes go on to landing, which reports them.
So `rows_in` of the landed table counts the current state plus the quarantine, not every
version read.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from audience.ingest.cdm import convert_sql
from audience.ingest.files import csv_options_sql, read_csv_files
from audience.ingest.landing import RawRead, SourceError, quarantine_record, quote, sql_str
from audience.project import Project, TableRef

log = logging.getLogger(__name__)

FULL, UPSERTS, DELETES = "FullData", "Upserts", "Deletes"
KIND_RANK = {"full": 0, "upsert": 1, "delete": 2}  # higher wins a tie in the same hour
EXTENSIONS = {"csv": (".csv", ".csv.gz", ".txt", ".tsv"), "parquet": (".parquet",)}
INTERNAL = ("_row", "_file", "__kind", "__kind_rank", "__hour", "__seq")
_HOUR_NAMES = (r"\d{4}", r"\d{2}", r"\d{2}", r"\d{2}")  # yyyy / mm / dd / hh


@dataclass
class IncrementalRead(RawRead):
    """RawRead plus what the resolution did (not quarantined, so counted here)."""

    hours_read: list[datetime] = field(default_factory=list)
    hours_pending: list[datetime] = field(default_factory=list)  # not ended yet: not read
    delete_records: int = 0  # rows read from Deletes files
    deleted_keys: int = 0  # keys whose latest change is a delete
    deleted_rows: int = 0  # full-load and upsert rows removed by a later delete
    superseded_rows: int = 0  # older versions replaced by a newer upsert

    def read_stats(self) -> dict[str, Any]:
        return {
            "hours_read": len(self.hours_read),
            "hours_pending": len(self.hours_pending),
            "delete_records": self.delete_records,
            "deleted_keys": self.deleted_keys,
            "deleted_rows": self.deleted_rows,
            "superseded_rows": self.superseded_rows,
        }


@dataclass
class _File:
    path: Path
    kind: str  # full | upsert | delete
    hour: datetime | None  # None: the full load


def read(
    con: duckdb.DuckDBPyConnection,
    ref: TableRef,
    project: Project,
    config_path: str,
    now: datetime | None = None,
) -> IncrementalRead:
    """Load the current state of an incremental table into the temp table `_raw`."""
    now = _utc(now or datetime.now(UTC))
    folder, where = _folder(ref, project, config_path)
    files, read_hours, pending = _files(folder, where, ref.source.format, now)
    if not files and not pending:
        raise SourceError(
            f"{where}: no data in {ref.table.path}: expected {FULL}/ files or "
            f"IncrementalData/yyyy/mm/dd/hh/{UPSERTS}|{DELETES}/ folders"
        )
    table = ref.table
    needed = [table.primary_key] + ([table.timestamp_column] if table.timestamp_column else [])
    rejects: list[dict[str, Any]] = []
    parts: list[str] = []
    try:
        for seq, file in enumerate(files):
            part = f"_inc_p{seq}"
            if _load_file(con, file, seq, part, ref, project, needed, rejects):
                parts.append(part)
        result = IncrementalRead(
            "_raw", ref.table.path, rejects, hours_read=read_hours, hours_pending=pending
        )
        if not parts:
            cols = ", ".join(f"{quote(c)} VARCHAR" for c in needed)
            con.execute(f"CREATE OR REPLACE TEMP TABLE _raw (_row BIGINT, _file VARCHAR, {cols})")
            return result
        # Columns come in the order first seen: put the Deletes (key and timestamp only)
        # last so the full load's column order is kept. Order of changes is in __seq.
        deletes = {f"_inc_p{i}" for i, f in enumerate(files) if f.kind == "delete"}
        ordered = sorted(parts, key=lambda p: p in deletes)
        union = " UNION ALL BY NAME ".join(f"SELECT * FROM {p}" for p in ordered)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _inc_all AS {union}")
        _resolve(con, ref, result)
    finally:
        for part in parts:
            con.execute(f"DROP TABLE IF EXISTS {part}")
        con.execute("DROP TABLE IF EXISTS _inc_part; DROP TABLE IF EXISTS _inc_all")
        con.execute("DROP TABLE IF EXISTS _inc_ranked")
    log.info(
        "%s: %d hour(s) read, %d pending; %d delete record(s) removed %d row(s) of %d key(s); "
        "%d older version(s) superseded",
        ref.label,
        len(read_hours),
        len(pending),
        result.delete_records,
        result.deleted_rows,
        result.deleted_keys,
        result.superseded_rows,
    )
    return result


def describe(ref: TableRef, project: Project, config_path: str) -> list[str]:
    """Column names of the full load and the upserts of ended hours, in first-seen order."""
    folder, where = _folder(ref, project, config_path)
    files, _, _ = _files(folder, where, ref.source.format, datetime.now(UTC))
    columns: dict[str, None] = {}
    con = duckdb.connect()
    try:
        for file in files:
            if file.kind == "delete" or not _is_data_file(file.path, ref.source.format):
                continue
            if ref.source.format == "csv":
                opts = csv_options_sql(ref.source.options)
                query = f"read_csv({sql_str(str(file.path))}, {opts})"
            else:
                query = f"read_parquet({sql_str(str(file.path))})"
            try:
                columns.update(
                    dict.fromkeys(
                        r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {query}").fetchall()
                    )
                )
            except duckdb.Error as e:  # quarantined when read; validation goes on
                log.warning("%s: cannot read %s: %s", where, file.path, e)
    finally:
        con.close()
    return list(columns)


def hour_folders(folder: Path, where: str) -> list[tuple[datetime, Path]]:
    """(UTC hour start, folder) of every IncrementalData/yyyy/mm/dd/hh folder, oldest first."""
    base = folder / "IncrementalData"
    found: list[tuple[datetime, Path]] = []
    if not base.is_dir():
        return found

    def walk(current: Path, depth: int) -> None:
        for entry in sorted(current.iterdir()):
            if _ignored(entry):
                continue
            rel = entry.relative_to(folder).as_posix()
            if not entry.is_dir() or not re.fullmatch(_HOUR_NAMES[depth], entry.name):
                raise SourceError(
                    f"{where}: {rel} is not a UTC hour folder IncrementalData/yyyy/mm/dd/hh"
                )
            if depth < 3:
                walk(entry, depth + 1)
                continue
            y, m, d, h = (int(p) for p in entry.relative_to(base).parts)
            try:
                found.append((datetime(y, m, d, h, tzinfo=UTC), entry))
            except ValueError as e:
                raise SourceError(
                    f"{where}: {rel} is not a UTC hour folder IncrementalData/yyyy/mm/dd/hh ({e})"
                ) from None

    walk(base, 0)
    return sorted(found, key=lambda item: item[0])


# ---- finding and loading files -----------------------------------------------------------


def _folder(ref: TableRef, project: Project, config_path: str) -> tuple[Path, str]:
    where = f"{config_path}.path"
    folder = project.resolve(ref.table.path)
    if not folder.is_dir():
        raise SourceError(f"{where}: folder not found: {ref.table.path} (looked at {folder})")
    return folder, where


def _files(
    folder: Path, where: str, fmt: str, now: datetime
) -> tuple[list[_File], list[datetime], list[datetime]]:
    """Files to read in order (full load, then hour by hour Upserts before Deletes), the
    hours read and the hours not ended yet."""
    files = [_File(p, "full", None) for p in _data_files(folder / FULL)]
    read_hours, pending = [], []
    for hour, hour_dir in hour_folders(folder, where):
        if hour + timedelta(hours=1) > now:
            pending.append(hour)
            continue
        read_hours.append(hour)
        subfolders = {p.name.lower(): p for p in hour_dir.iterdir() if not _ignored(p)}
        unknown = set(subfolders) - {UPSERTS.lower(), DELETES.lower()}
        if unknown:
            rel = hour_dir.relative_to(folder).as_posix()
            raise SourceError(
                f"{where}: {rel} holds {', '.join(sorted(unknown))}; an hour folder holds only "
                f"{UPSERTS}/ and {DELETES}/"
            )
        for kind, name in (("upsert", UPSERTS), ("delete", DELETES)):
            if name.lower() in subfolders:
                files += [_File(p, kind, hour) for p in _data_files(subfolders[name.lower()])]
    if pending:
        log.info(
            "%s: hour(s) not ended yet, left for a later run: %s",
            where,
            ", ".join(h.strftime("%Y-%m-%d %H:00") for h in pending),
        )
    return files, read_hours, pending


def _data_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(_ignored(x) for x in p.relative_to(folder).parts)
    )


def _ignored(path: Path | str) -> bool:
    name = path.name if isinstance(path, Path) else path
    return name.startswith((".", "_"))


def _is_data_file(path: Path, fmt: str) -> bool:
    return path.name.lower().endswith(EXTENSIONS[fmt])


def _load_file(
    con: duckdb.DuckDBPyConnection,
    file: _File,
    seq: int,
    part: str,
    ref: TableRef,
    project: Project,
    needed: list[str],
    rejects: list[dict[str, Any]],
) -> bool:
    """Load one file into the temp table `part` with its kind, hour and order; False when
    nothing of it can be used (its rows, or the file itself, are then in `rejects`)."""
    fmt = ref.source.format
    rel = Path(os.path.relpath(file.path, project.root)).as_posix()
    if not _is_data_file(file.path, fmt):
        rejects.append(
            quarantine_record(
                f"{rel} is not a {fmt} file ({', '.join(EXTENSIONS[fmt])}); not read", file=rel
            )
        )
        return False
    if file.path.stat().st_size == 0:
        return False
    try:
        if fmt == "csv":
            found = read_csv_files(con, str(file.path), ref.source.options, "_inc_part", rel)
            rejects += [{**r, "file": rel} for r in found]
        else:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _inc_part AS SELECT file_row_number + 1 AS _row, "
                f"* EXCLUDE (file_row_number) FROM read_parquet({sql_str(str(file.path))}, "
                "file_row_number=true)"
            )
    except (SourceError, duckdb.Error) as e:
        # One bad file must not stop the others: its rows cannot be counted, so the file is
        # quarantined as one record.
        rejects.append(quarantine_record(f"cannot read {fmt} file: {e}", file=rel))
        return False
    columns = [r[0] for r in con.sql("DESCRIBE _inc_part").fetchall() if r[0] != "_row"]
    missing = [c for c in needed if c not in columns]
    if missing:
        record = "{" + ", ".join(f"{sql_str(c)}: {quote(c)}" for c in columns) + "}"
        rows = con.execute(
            f"SELECT _row, CAST(to_json({record}) AS VARCHAR) FROM _inc_part ORDER BY _row"
        ).fetchall()
        name = {"full": FULL, "upsert": UPSERTS, "delete": DELETES}[file.kind]
        reason = f"{name} file has no column {', '.join(repr(c) for c in missing)}"
        rejects += [
            quarantine_record(reason, row=r, column=missing[0], raw=raw, file=rel)
            for r, raw in rows
        ]
        return False
    # Deletes need only the key and timestamp; other columns would add empty data columns.
    keep = ", ".join(quote(c) for c in (needed if file.kind == "delete" else columns))
    hour = f"TIMESTAMP '{file.hour:%Y-%m-%d %H:00:00}'" if file.hour else "CAST(NULL AS TIMESTAMP)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {part} AS SELECT _row, {sql_str(rel)} AS _file, "
        f"'{file.kind}' AS __kind, {KIND_RANK[file.kind]} AS __kind_rank, {hour} AS __hour, "
        f"{seq} AS __seq, {keep} FROM _inc_part"
    )
    return True


# ---- resolution --------------------------------------------------------------------------


def _resolve(con: duckdb.DuckDBPyConnection, ref: TableRef, result: IncrementalRead) -> None:
    """`_inc_all` (every version) -> `_raw` (the current state), filling result's counts."""
    table = ref.table
    key = quote(table.primary_key)
    schema = {r[0]: r[1] for r in con.sql("DESCRIBE _inc_all").fetchall()}
    data_columns = [c for c in schema if c not in INTERNAL]
    empty_key = f"({key} IS NULL OR trim(CAST({key} AS VARCHAR)) = '')"
    order = []
    ts_ok = "true"
    if table.timestamp_column:
        ts = quote(table.timestamp_column)
        ts_value = convert_sql(ts, schema[table.timestamp_column], "TIMESTAMP")
        ts_ok = f"NOT ({ts} IS NOT NULL AND ({ts_value}) IS NULL)"
        order.append("__ts DESC NULLS LAST")
        _quarantine_bad_timestamps(con, table.timestamp_column, ts_ok, data_columns, result)
    else:
        ts_value = "CAST(NULL AS TIMESTAMP)"
    order += ["__hour DESC NULLS LAST", "__kind_rank DESC"]

    deletes_without_key = con.execute(
        f"SELECT _file, _row FROM _inc_all WHERE __kind = 'delete' AND {empty_key} AND {ts_ok} "
        "ORDER BY __seq, _row"
    ).fetchall()
    result.quarantine += [
        quarantine_record(
            f"{DELETES} row has no primary key '{table.primary_key}'",
            row=row,
            column=table.primary_key,
            file=file,
        )
        for file, row in deletes_without_key
    ]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _inc_ranked AS SELECT *, rank() OVER w AS __rank, "
        "first_value(__kind) OVER w AS __winner "
        f"FROM (SELECT *, {ts_value} AS __ts FROM _inc_all WHERE {ts_ok} AND NOT {empty_key}) "
        f"WINDOW w AS (PARTITION BY {key} ORDER BY {', '.join(order)})"
    )
    counts = con.execute(
        "SELECT count(*) FILTER (WHERE __kind = 'delete'), "
        f"count(DISTINCT {key}) FILTER (WHERE __winner = 'delete'), "
        "count(*) FILTER (WHERE __kind <> 'delete' AND __winner = 'delete'), "
        "count(*) FILTER (WHERE __kind <> 'delete' AND __winner <> 'delete' AND __rank > 1) "
        "FROM _inc_ranked"
    ).fetchone()
    result.delete_records, result.deleted_keys, result.deleted_rows, result.superseded_rows = counts
    cols = ", ".join(quote(c) for c in data_columns)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _raw AS SELECT _row, _file, {cols} FROM ("
        f"SELECT __seq, _row, _file, {cols} FROM _inc_ranked "
        "WHERE __rank = 1 AND __kind <> 'delete' "
        f"UNION ALL SELECT __seq, _row, _file, {cols} FROM _inc_all "
        f"WHERE __kind <> 'delete' AND {empty_key} AND {ts_ok}) ORDER BY __seq, _row"
    )


def _quarantine_bad_timestamps(
    con: duckdb.DuckDBPyConnection,
    column: str,
    ts_ok: str,
    data_columns: list[str],
    result: IncrementalRead,
) -> None:
    record = "{" + ", ".join(f"{sql_str(c)}: {quote(c)}" for c in data_columns) + "}"
    rows = con.execute(
        f"SELECT _file, _row, CAST({quote(column)} AS VARCHAR), "
        f"CAST(to_json({record}) AS VARCHAR) FROM _inc_all WHERE NOT ({ts_ok}) "
        "ORDER BY __seq, _row"
    ).fetchall()
    result.quarantine += [
        quarantine_record(
            f"{column}: '{value}' is not a timestamp, so this change cannot be ordered",
            row=row,
            column=column,
            raw=raw,
            file=file,
        )
        for file, row, value, raw in rows
    ]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
