"""The serving store: what the API answers point lookups from.

A run's tables are Parquet, made for scans; the API needs a customer, or one customer's
newest activities, in well under a millisecond. After the outputs stage, `serving_stage`
writes `runs/<id>/serving/`, an LMDB environment (a memory-mapped B+tree: uvicorn's worker
processes share its pages through the page cache, and a read is a few microseconds with no
copy into a per-process cache) with these sub-databases:

    customer   CustomerId -> the customer's whole JSON response, ready to send
    key        source NUL table NUL key -> CustomerId
    email      lower-cased, trimmed e-mail -> JSON list of CustomerIds (a family may share one)
    phone      digits only (a NANP number without its leading 1) -> JSON list of CustomerIds
    activity   CustomerId NUL inverted timestamp (8 bytes, big-endian) ActivityId
                   -> ActivityType NUL the activity's JSON

Inverting the timestamp makes a customer's newest activity sort first, so a timeline page is
one range scan from the customer's prefix (or from the `end` of a time window).

DuckDB builds every value, JSON included, in SQL, sorted by key; Python only moves batches
of ready bytes into LMDB with append-mode puts (no B-tree search per key, full pages).
The store is written once and then only read, so readers open it read-only without locks.
"""

from __future__ import annotations

import json
import shutil
import struct
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb as _duckdb
import lmdb

from audience.runs import Run, StageResult

if TYPE_CHECKING:
    from audience.pipeline import Context

SERVING_DIR = "serving"
DATABASES = ("customer", "key", "email", "phone", "activity")
TABLES = (
    "CustomerProfile",
    "AlternateKey",
    "CustomerAttributes",
    "SegmentMembership",
    "Enrichment",
    "Prediction",
    "UnifiedActivity",
    "MatchRecords",
)
BATCH_ROWS = 100_000
SEP = b"\x00"
_NEWEST = 2**63 - 1  # inverted timestamp = _NEWEST - microseconds since 1970
_NO_TIME = b"\xff" * 8  # activities without a timestamp sort after every dated one
_EPOCH = datetime(1970, 1, 1)
_WHITESPACE = " \t\r\n"


class ServingError(Exception):
    pass


# -- normalising lookup values (the same rules in Python here and in SQL below) ----------------
def normalize_email(value: str) -> str:
    return value.strip(_WHITESPACE).lower()


def normalize_phone(value: str) -> str:
    digits = "".join(c for c in value if "0" <= c <= "9")
    # +1 555 123 4567 and (555) 123-4567 are the same North American number.
    return digits[1:] if len(digits) == 11 and digits[0] == "1" else digits


def _email_sql(column: str) -> str:
    return f"lower(trim({column}, ' \t\r\n'))"


def _phone_sql(column: str) -> str:
    digits = f"regexp_replace({column}, '[^0-9]', '', 'g')"
    return (
        f"CASE WHEN length({digits}) = 11 AND {digits}[1] = '1' THEN {digits}[2:] ELSE {digits} END"
    )


def _micros(moment: datetime) -> int:
    """Microseconds since 1970 of a naive-UTC (as runs store them) or aware datetime."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def inverted(moment: datetime) -> bytes:
    """The 8 key bytes of a time: later times give smaller bytes."""
    return struct.pack(">Q", _NEWEST - _micros(moment))


def parse_time(text: str | None) -> datetime | None:
    """An activity's ISO timestamp as a naive-UTC datetime (None when absent or unreadable)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


# -- reading -----------------------------------------------------------------------------------
class ServingStore:
    """A run's serving store, read-only; safe to share between threads and processes."""

    def __init__(self, path: Path, env: lmdb.Environment | None, missing: str | None = None):
        self.path = path
        self.missing = missing  # why there is no store (a run without customers), or None
        self._env = env
        self._dbs: dict[str, Any] = {}
        if env is not None:
            self._dbs = {name: env.open_db(name.encode(), create=False) for name in DATABASES}

    @classmethod
    def open(cls, run: Run) -> ServingStore:
        path = run.path / SERVING_DIR
        if not (path / "data.mdb").exists():
            reason = run.results.get("stages", {}).get("serving", {}).get("detail", {})
            why = reason.get("reason") or "it was made before the API existed"
            return cls(path, None, f"run {run.id} has no serving store: {why}")
        # lock=False: nothing writes a finished store, so readers need no lock table;
        # readahead=False: lookups are random, reading ahead would only evict useful pages.
        env = lmdb.open(
            str(path), readonly=True, lock=False, readahead=False, max_dbs=len(DATABASES)
        )
        return cls(path, env)

    @property
    def available(self) -> bool:
        return self._env is not None

    def _get(self, db: str, key: bytes) -> bytes | None:
        if self._env is None:
            return None
        with self._env.begin(db=self._dbs[db], buffers=False) as txn:
            return txn.get(key)

    def customer_json(self, customer_id: str) -> bytes | None:
        """The customer's response as JSON bytes, as stored (no real-time updates)."""
        return self._get("customer", customer_id.encode("utf-8", "surrogatepass"))

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        raw = self.customer_json(customer_id)
        return json.loads(raw) if raw is not None else None

    def by_key(self, source: str, table: str, key: str) -> str | None:
        """The CustomerId of a source record, e.g. ('crm', 'contacts', 'C123')."""
        raw = self._get(
            "key", SEP.join(s.encode("utf-8", "surrogatepass") for s in (source, table, key))
        )
        return raw.decode() if raw is not None else None

    def by_email(self, email: str) -> list[str]:
        value = normalize_email(email)
        raw = self._get("email", value.encode("utf-8", "surrogatepass")) if value else None
        return json.loads(raw) if raw is not None else []

    def by_phone(self, phone: str) -> list[str]:
        value = normalize_phone(phone)
        raw = self._get("phone", value.encode()) if value else None
        return json.loads(raw) if raw is not None else []

    def activities_json(
        self,
        customer_id: str,
        types: set[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        count: int = 50,
    ) -> list[bytes]:
        """The customer's first `count` activities, newest first, as JSON bytes: those of
        `types` (all when None) with start <= ActivityTimeStamp < end."""
        if self._env is None or count <= 0:
            return []
        prefix = customer_id.encode("utf-8", "surrogatepass") + SEP
        seek = prefix
        if end is not None:
            # The first key at or after inverted(end) + 1 is the newest activity before end.
            bound = _NEWEST - _micros(end) + 1
            if bound > 2**64 - 1:
                return []
            seek = prefix + struct.pack(">Q", max(bound, 0))
        last = prefix + inverted(start) if start is not None else None
        wanted = {t.encode() for t in types} if types is not None else None
        cut = len(prefix) + 8
        out: list[bytes] = []
        with self._env.begin(db=self._dbs["activity"], buffers=False) as txn:
            cursor = txn.cursor()
            if not cursor.set_range(seek):
                return []
            for key, value in cursor.iternext():
                if not key.startswith(prefix) or (last is not None and key[:cut] > last):
                    break
                if end is not None and key[len(prefix) : cut] == _NO_TIME:
                    break  # undated activities (last) are outside any time window
                kind, _, body = value.partition(SEP)
                if wanted is None or kind in wanted:
                    out.append(body)
                    if len(out) >= count:
                        break
        return out

    def timeline(
        self,
        customer_id: str,
        types: set[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """One page of the customer's activities, newest first: {"items", "next_offset"}
        (next_offset is None on the last page)."""
        raw = self.activities_json(customer_id, types, start, end, offset + limit + 1)
        items = [json.loads(r) for r in raw[offset : offset + limit]]
        more = len(raw) > offset + limit
        return {"items": items, "next_offset": offset + limit if more else None}

    def counts(self) -> dict[str, int]:
        """Entries per sub-database."""
        if self._env is None:
            return {}
        with self._env.begin() as txn:
            return {name: txn.stat(db)["entries"] for name, db in self._dbs.items()}

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


# -- building ----------------------------------------------------------------------------------
def serving_stage(ctx: Context, result: StageResult) -> None:
    """Build the run's serving store from its output tables."""
    if "CustomerProfile" not in ctx.run.tables:
        result.status = "skipped"
        result.detail["reason"] = "no customers to serve (no unify: section)"
        return
    tables = {name: ctx.run.table_path(name) for name in TABLES if name in ctx.run.tables}
    emails, phones = ["Email"], ["Phone"]
    if ctx.project.unify is not None:
        for field in ctx.project.unify.merge.fields:
            if field.field == "Identity.Email":
                emails.append(field.name)
            elif field.field == "Identity.Phone":
                phones.append(field.name)
    settings: dict[str, Any] = {"temp_directory": str(ctx.engine.scratch / "serving")}
    if ctx.project.duckdb.threads:
        settings["threads"] = ctx.project.duckdb.threads
    if ctx.project.duckdb.memory_limit:
        settings["memory_limit"] = ctx.project.duckdb.memory_limit
    built = build_store(
        ctx.out(SERVING_DIR), tables, email_columns=emails, phone_columns=phones, duckdb=settings
    )
    result.rows.update({f"serving.{name}": n for name, n in built["entries"].items()})
    result.detail.update({k: v for k, v in built.items() if k != "entries"})


def _source(path: Path) -> str:
    pattern = str(path / "*.parquet") if path.is_dir() else str(path)
    return "read_parquet('" + pattern.replace("'", "''") + "')"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_value(expr: str, kind: str) -> str:
    """A column as a JSON-ready value: ISO timestamps, non-finite numbers as null."""
    if kind.startswith("TIMESTAMP"):
        return _iso(expr)
    if kind in ("DOUBLE", "FLOAT", "REAL"):
        return f"CASE WHEN isfinite({expr}) THEN {expr} END"
    return expr


def _iso(quoted: str) -> str:
    # Like Python's isoformat(): fractions of a second only when there are some.
    return (
        f"CASE WHEN epoch_us({quoted}) % 1000000 = 0 "
        f"THEN strftime({quoted}, '%Y-%m-%dT%H:%M:%S') "
        f"ELSE strftime({quoted}, '%Y-%m-%dT%H:%M:%S.%f') END"
    )


def _embedded_json(column: str) -> str:
    """A column of JSON text as JSON (text that is not JSON stays a string)."""
    q = _quote(column)
    return f"CASE WHEN json_valid({q}) THEN {q}::JSON ELSE to_json({q}) END"


class _Builder:
    def __init__(self, con: _duckdb.DuckDBPyConnection, env: lmdb.Environment):
        self.con = con
        self.env = env
        self.entries: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def columns(self, table: str) -> dict[str, str]:
        rows = self.con.execute(f"DESCRIBE {_quote(table)}").fetchall()
        return {r[0]: r[1] for r in rows}

    def has(self, table: str) -> bool:
        found = self.con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [table]
        ).fetchone()
        return bool(found and found[0])

    def load(self, name: str, sql: str) -> None:
        """Write the (key BLOB, value BLOB) rows of `sql`, sorted by key, into database `name`."""
        t0 = time.perf_counter()
        db = self.env.open_db(name.encode())
        reader = self.con.execute(sql).fetch_record_batch(BATCH_ROWS)
        total = 0
        for batch in reader:
            items = list(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True))
            total += self._put(db, items, name)
        self.entries[name] = total
        self.seconds[name] = round(time.perf_counter() - t0, 3)

    def _put(self, db: Any, items: list[tuple[bytes, bytes]], name: str) -> int:
        while True:
            try:
                with self.env.begin(db=db, write=True) as txn:
                    consumed, added = txn.cursor().putmulti(items, append=True)
                break
            except lmdb.MapFullError:
                # The size estimate was short (many values just over half a page, each
                # taking a whole overflow page): grow the map and write the batch again.
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
        if added != len(items):
            # Append mode skips a key that is not above the last one: our sort is wrong or
            # a key repeats, and the store would silently miss entries.
            raise ServingError(
                f"serving store: {len(items) - added} keys of '{name}' were out of order or "
                "repeated"
            )
        return added


def build_store(
    out: Path,
    tables: dict[str, Path],
    *,
    email_columns: list[str] | tuple[str, ...] = ("Email",),
    phone_columns: list[str] | tuple[str, ...] = ("Phone",),
    duckdb: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the serving store into the folder `out` (replaced) from Parquet tables (a file or
    a folder of part files each; CustomerProfile is required). `email_columns` and
    `phone_columns`: CustomerProfile columns to index when there is no MatchRecords table
    (which has every source record's e-mail and phone, not just the surviving ones);
    `duckdb`: settings of the DuckDB connection that builds it (threads, memory_limit, ...).

    Returns {"entries": {database: n}, "seconds": ..., "bytes": ...}."""
    if "CustomerProfile" not in tables:
        raise ServingError("the serving store needs a CustomerProfile table")
    t0 = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con = _duckdb.connect(config={"preserve_insertion_order": False, **(duckdb or {})})
    env = None
    try:
        for name, path in tables.items():
            con.execute(f"CREATE VIEW {_quote(name)} AS SELECT * FROM {_source(path)}")
        size = sum(_size(p) for p in tables.values())
        # JSON text is several times its Parquet size; the file only grows as pages are
        # written, so a generous map costs address space, not disk.
        env = lmdb.open(
            str(out),
            map_size=max(8 * size, 64 * 2**20),
            max_dbs=len(DATABASES),
            sync=False,
            metasync=False,
            readahead=False,
        )
        builder = _Builder(con, env)
        builder.load("customer", _customer_sql(builder))
        builder.load("key", _key_sql(builder))
        for name, columns, normal in (
            ("email", list(email_columns), _email_sql),
            ("phone", list(phone_columns), _phone_sql),
        ):
            builder.load(name, _contact_sql(builder, name, columns, normal))
        builder.load("activity", _activity_sql(builder))
        env.sync(True)
        stored = (out / "data.mdb").stat().st_size
    finally:
        if env is not None:
            env.close()
        con.close()
    return {
        "entries": builder.entries,
        "seconds": round(time.perf_counter() - t0, 3),
        "seconds_by_database": builder.seconds,
        "bytes": stored,
    }


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.glob("*.parquet"))
    return path.stat().st_size


def _object(columns: dict[str, str], alias: str, skip: str = "CustomerId") -> str:
    pairs = [
        f"{_literal(c)}, {_json_value(f'{alias}.{_quote(c)}', t)}"
        for c, t in columns.items()
        if c != skip
    ]
    return f"json_object({', '.join(pairs)})" if pairs else "json_object()"


def _customer_sql(b: _Builder) -> str:
    """One row per customer: its id and the whole response as JSON bytes."""
    ctes, joins = [], []
    # name -> SQL giving the field's JSON text (never NULL)
    fields = {
        "CustomerId": "to_json(p.CustomerId)",
        "profile": _object(b.columns("CustomerProfile"), "p"),
    }

    def part(name: str, table: str, select: str, empty: str, where: str = "true") -> None:
        if b.has(table):
            ctes.append(
                f"{name} AS (SELECT CustomerId, {select} AS j FROM {_quote(table)} "
                f"WHERE CustomerId IS NOT NULL AND {where} GROUP BY CustomerId)"
            )
            joins.append(f"LEFT JOIN {name} ON {name}.CustomerId = p.CustomerId")
            fields[name] = f"coalesce({name}.j, '{empty}')"
        else:
            fields[name] = f"'{empty}'"

    # Lists are sorted with list_sort on structs (field by field), not list(... ORDER BY):
    # DuckDB's ordered aggregates took 15 s of the 1M-customer build, list_sort 2 s.
    part(
        "keys",
        "AlternateKey",
        "to_json(list_sort(list({'source': DataSourceName, 'table': EntityName, "
        "'key': AlternateValue})))",
        "[]",
    )
    if b.has("CustomerAttributes"):
        measures = _object(b.columns("CustomerAttributes"), "a")
        joins.append('LEFT JOIN "CustomerAttributes" a ON a.CustomerId = p.CustomerId')
        fields["measures"] = f"CASE WHEN a.CustomerId IS NULL THEN '{{}}' ELSE {measures} END"
    else:
        fields["measures"] = "'{}'"
    part(
        "segments",
        "SegmentMembership",
        "to_json(list_sort(list_distinct(flatten(list(from_json(Segments, '[\"VARCHAR\"]'))))))",
        "[]",
        where="json_valid(Segments)",
    )
    part(
        "enrichments",
        "Enrichment",
        "to_json(list_sort(list({'provider': EnrichmentProvider, 'type': EnrichmentType, "
        f"'values': {_embedded_json('Values')}}})))",
        "[]",
    )
    part(
        "predictions",
        "Prediction",
        "to_json(list_sort(list({'provider': ModelProvider, 'model': Model, "
        f"'values': {_embedded_json('Values')}}})))",
        "[]",
    )
    with_ = f"WITH {', '.join(ctes)} " if ctes else ""
    # The document is joined as text: json_object() over JSON values parses them again,
    # which took 5 of the 11 s of the 1M-customer query.
    document = " || ',' || ".join(f"'\"{k}\":' || ({v})::VARCHAR" for k, v in fields.items())
    return (
        f"{with_}SELECT encode(p.CustomerId) AS k, encode('{{' || {document} || '}}') AS v "
        f'FROM "CustomerProfile" p {" ".join(joins)} WHERE p.CustomerId IS NOT NULL '
        "ORDER BY k"
    )


def _key_sql(b: _Builder) -> str:
    if not b.has("AlternateKey"):
        return "SELECT NULL::BLOB AS k, NULL::BLOB AS v WHERE false"
    # A record belongs to one customer; any_value only guards the append against repeats.
    return (
        "SELECT encode(DataSourceName) || '\\x00'::BLOB || encode(EntityName) || '\\x00'::BLOB "
        "|| encode(AlternateValue) AS k, encode(any_value(CustomerId)) AS v "
        'FROM "AlternateKey" WHERE CustomerId IS NOT NULL AND DataSourceName IS NOT NULL '
        "AND EntityName IS NOT NULL AND AlternateValue IS NOT NULL GROUP BY k ORDER BY k"
    )


def _contact_sql(b: _Builder, name: str, profile_columns: list[str], normal: Any) -> str:
    """Normalised e-mail or phone -> the JSON list of customers with it. From MatchRecords
    (every record's value) when the run has it, else from the profile's columns."""
    semantic = {"email": "Identity_Email", "phone": "Identity_Phone"}[name]
    values = []
    if b.has("MatchRecords") and b.has("AlternateKey"):
        if semantic in b.columns("MatchRecords"):
            values.append(
                f'SELECT ak.CustomerId, mr.{semantic} AS v FROM "MatchRecords" mr '
                'JOIN "AlternateKey" ak ON ak.Identifier = mr._rid'
            )
    else:
        present = b.columns("CustomerProfile")
        for column in dict.fromkeys(profile_columns):
            if column in present:
                values.append(f'SELECT CustomerId, {_quote(column)} AS v FROM "CustomerProfile"')
    if not values:
        return "SELECT NULL::BLOB AS k, NULL::BLOB AS v WHERE false"
    return (
        f"WITH raw AS ({' UNION ALL '.join(values)}), "
        f"normal AS (SELECT {normal('v::VARCHAR')} AS n, CustomerId FROM raw "
        "WHERE v IS NOT NULL AND CustomerId IS NOT NULL) "
        "SELECT encode(n) AS k, encode(to_json(list_sort(list_distinct(list(CustomerId)))))"
        " AS v FROM normal WHERE n <> '' GROUP BY n ORDER BY k"
    )


def _activity_sql(b: _Builder) -> str:
    if not b.has("UnifiedActivity"):
        return "SELECT NULL::BLOB AS k, NULL::BLOB AS v WHERE false"
    columns = b.columns("UnifiedActivity")
    text = ["ActivityId", "SourceEntityName", "SourceActivityId", "ActivityType"]
    text += ["Title", "Description", "URL"]
    fields = ["'CustomerId', CustomerId"]
    for c in text:
        fields.append(f"'{c}', {_quote(c) if c in columns else 'NULL'}")
    fields.append(f"'ActivityTimeStamp', {_iso('ActivityTimeStamp')}")
    for c in ("RangeIndex", "UnifiedActivityId"):
        if c in columns:
            fields.append(f"'{c}', {_quote(c)}")
    if "SemanticData" in columns:
        fields.append(f"'SemanticData', {_embedded_json('SemanticData')}")
    else:
        fields.append("'SemanticData', '{}'::JSON")
    inverted = (
        f"CASE WHEN ActivityTimeStamp IS NULL THEN '{_blob(_NO_TIME)}'::BLOB ELSE "
        f"unhex(lpad(to_hex(({_NEWEST}::HUGEINT - epoch_us(ActivityTimeStamp))::UBIGINT), 16, "
        "'0')) END"
    )
    return (
        f"SELECT encode(CustomerId) || '\\x00'::BLOB || {inverted} || encode(ActivityId) AS k, "
        "encode(coalesce(ActivityType, '') || chr(0) || "
        f"json_object({', '.join(fields)})::VARCHAR) AS v "
        'FROM "UnifiedActivity" WHERE CustomerId IS NOT NULL AND ActivityId IS NOT NULL '
        "ORDER BY k"
    )


def _blob(data: bytes) -> str:
    return "".join(f"\\x{c:02X}" for c in data)
