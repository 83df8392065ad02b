"""Real-time writes: activities and profile field updates posted through the API between runs.

The modelled system keeps such writes for hours and never lets measures or segments see them;
here nothing posted is lost and batch and real-time agree after the next run:

- `RealtimeStore` (`<workspace>/realtime.sqlite`, WAL, synchronous=FULL) keeps every write for
  good, one transaction per write, so a write is durable and visible to every process (each
  uvicorn worker, the pipeline) once the call returns.
- Every run's `realtime` stage (after unify) takes a snapshot of the store: the activities
  become `RealtimeActivity` (UnifiedActivity columns), which the activities stage adds to
  UnifiedActivity; the latest value of each profile field is written over the merged
  CustomerProfile, so measures, segments and exports see it. Real-time values win over the
  sources until they are updated again through the API. Runs rebuild everything from their
  sources, so every run folds in every write, not only the new ones; a write is in a run at
  most once (its ActivityId is unique in the store).
- The snapshot is a high-water mark per kind (the largest sequence number of activities and
  of profile updates it saw), kept in the store's `fold` table and the stage's detail. Reads
  (`activities`, `profile_fields`, `has_updates`) return only what the *current* run has not
  folded yet, so a failed or unpublished run hides nothing and a published one takes over
  exactly what it folded.
- Customers may merge between writes and runs: each run maps the customer a write was posted
  for to a customer of its own (the same ID; else the one the previous run mapped it to; else
  the customer listing it in PreviousCustomerId) and keeps that map as `RealtimeCustomer`
  for the next run. Writes whose customer is gone are reported in ActivityUnresolved and
  stay in the store.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from audience.runs import Run, StageResult, Workspace
from audience.unify.ids import python_uuid5

if TYPE_CHECKING:
    from audience.pipeline import Context
    from audience.project import Project

STORE_FILE = "realtime.sqlite"
SOURCE = "realtime"  # SourceEntityName of posted activities, and their ActivityId prefix
ACTIVITY_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MAX_TEXT = 10_000
MAX_DATA_BYTES = 65_536
MAX_SOURCE_ID = 200
# Profile columns that the run owns: the customer's identity and its source keys.
SYSTEM_COLUMNS = ("CustomerId", "PreviousCustomerId")
_EPOCH = datetime(1970, 1, 1)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS activity (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    activity_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    type TEXT NOT NULL,
    ts INTEGER NOT NULL,            -- microseconds since 1970-01-01 UTC
    title TEXT,
    description TEXT,
    url TEXT,
    data TEXT NOT NULL,             -- JSON object
    source_id TEXT,
    posted TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_customer ON activity (customer_id, seq);
CREATE TABLE IF NOT EXISTS profile_update (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,            -- JSON
    posted TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS profile_customer ON profile_update (customer_id, field, seq);
CREATE TABLE IF NOT EXISTS fold (
    run_id TEXT PRIMARY KEY,
    activity_seq INTEGER NOT NULL,  -- the run holds activities up to this seq
    profile_seq INTEGER NOT NULL,   -- and profile updates up to this one
    activities INTEGER NOT NULL,
    profile_fields INTEGER NOT NULL,
    recorded TEXT NOT NULL
);
"""

UNIFIED_SCHEMA = pa.schema(
    [
        ("CustomerId", pa.string()),
        ("ActivityId", pa.string()),
        ("SourceEntityName", pa.string()),
        ("SourceActivityId", pa.string()),
        ("ActivityType", pa.string()),
        ("ActivityTimeStamp", pa.timestamp("us")),
        ("Title", pa.string()),
        ("Description", pa.string()),
        ("URL", pa.string()),
        ("SemanticData", pa.string()),
        ("RangeIndex", pa.string()),
        ("UnifiedActivityId", pa.string()),
    ]
)
# RealtimeActivity: UnifiedActivity's columns, the customer it was posted for, and why a row
# could not be placed (null when it could).
STAGE_SCHEMA = pa.schema(
    [*UNIFIED_SCHEMA, ("PostedCustomerId", pa.string()), ("Reason", pa.string())]
)
CUSTOMER_MAP_SCHEMA = pa.schema([("StoreCustomerId", pa.string()), ("CustomerId", pa.string())])


class RealtimeError(ValueError):
    """A write that cannot be stored as sent; the message is for the caller."""


class RealtimeConflict(RealtimeError):
    """A source_id already stored for another customer."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -- values -------------------------------------------------------------------------------


def _text(value: Any, name: str, limit: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RealtimeError(f"{name}: expected text, got {type(value).__name__}")
    if len(value) > limit:
        raise RealtimeError(f"{name}: at most {limit} characters, got {len(value)}")
    if "\x00" in value:
        # PostgreSQL exports cannot hold NUL characters in text.
        raise RealtimeError(f"{name}: contains a NUL character")
    return value


def _utc(value: Any, name: str) -> datetime:
    """An ISO date-time (or a datetime) as naive UTC; a naive one is taken to be UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RealtimeError(
                f"{name}: '{value[:40]}' is not an ISO date-time (e.g. 2026-01-31T10:00:00Z)"
            ) from None
    else:
        raise RealtimeError(f"{name}: expected an ISO date-time text, got {type(value).__name__}")
    try:
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):  # 0001-01-01 at +05:00 is before year 1 in UTC
        raise RealtimeError(f"{name}: {value} is out of range") from None
    if not 1 < moment.year < 9999:
        raise RealtimeError(f"{name}: {value} is out of range")
    return moment


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _check_json(value: Any, name: str, depth: int = 0) -> None:
    if depth > 20:
        raise RealtimeError(f"{name}: nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            _text(key, f"{name} key", 200)
            _check_json(item, f"{name}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{name}[{i}]", depth + 1)
    elif isinstance(value, str):
        _text(value, name)
    elif value is not None and not isinstance(value, bool | int | float):
        raise RealtimeError(f"{name}: {type(value).__name__} is not a JSON value")


def _activity_row(activity: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of a posted activity, checked; RealtimeError says what is wrong."""
    known = {"type", "timestamp", "title", "description", "url", "data", "source_id"}
    extra = sorted(set(activity) - known)
    if extra:
        raise RealtimeError(
            f"unknown keys {', '.join(extra)}; an activity has {', '.join(sorted(known))}"
        )
    kind = activity.get("type")
    if not isinstance(kind, str) or not ACTIVITY_TYPE.match(kind) or len(kind) > 100:
        raise RealtimeError(
            "type: expected an activity type such as WebVisit or SalesOrder (letters, digits "
            f"and _, starting with a letter), got {kind!r}"
        )
    stamp = activity.get("timestamp")
    moment = datetime.now(UTC).replace(tzinfo=None) if stamp is None else _utc(stamp, "timestamp")
    data = activity.get("data") or {}
    if not isinstance(data, dict):
        raise RealtimeError(f"data: expected a JSON object, got {type(data).__name__}")
    _check_json(data, "data")
    try:
        data_text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise RealtimeError("data: numbers must be finite") from None
    if len(data_text.encode("utf-8")) > MAX_DATA_BYTES:
        raise RealtimeError(f"data: at most {MAX_DATA_BYTES} bytes of JSON")
    source_id = _text(activity.get("source_id"), "source_id", MAX_SOURCE_ID)
    if source_id is not None and (not source_id.strip() or not source_id.isprintable()):
        raise RealtimeError("source_id: expected printable text")
    return {
        "type": kind,
        "ts": _micros(moment),
        "title": _text(activity.get("title"), "title"),
        "description": _text(activity.get("description"), "description"),
        "url": _text(activity.get("url"), "url", 2_000),
        "data": data_text,
        "source_id": source_id,
    }


def _unified(row: sqlite3.Row | dict[str, Any], customer_id: str) -> dict[str, Any]:
    """A stored activity in UnifiedActivity's shape (SemanticData as a dict)."""
    moment = _from_micros(row["ts"])
    return {
        "CustomerId": customer_id,
        "ActivityId": row["activity_id"],
        "SourceEntityName": SOURCE,
        "SourceActivityId": row["activity_id"].removeprefix(f"{SOURCE}|"),
        "ActivityType": row["type"],
        "ActivityTimeStamp": moment.isoformat(),
        "Title": row["title"],
        "Description": row["description"],
        "URL": row["url"],
        "SemanticData": json.loads(row["data"]),
        "RangeIndex": str(int(moment.replace(tzinfo=UTC).timestamp())),
        "UnifiedActivityId": python_uuid5(row["activity_id"]),
    }


def coerce_value(value: Any, dtype: pa.DataType, name: str) -> Any:
    """A JSON value for a profile column of Arrow type `dtype`, as the store keeps it (dates
    and times as ISO text); null clears the field. RealtimeError when it does not fit."""
    if value is None:
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return _text(value, name)
    if pa.types.is_boolean(dtype):
        if isinstance(value, bool):
            return value
        raise RealtimeError(f"{name}: expected true or false, got {value!r}")
    if pa.types.is_integer(dtype):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise RealtimeError(f"{name}: expected a whole number, got {value!r}")
        bits = dtype.bit_width
        low, high = (
            (0, 2**bits - 1)
            if pa.types.is_unsigned_integer(dtype)
            else (
                -(2 ** (bits - 1)),
                2 ** (bits - 1) - 1,
            )
        )
        if not low <= value <= high:
            raise RealtimeError(f"{name}: {value} is out of range for {dtype}")
        return value
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        if not is_number or value != value or value in (float("inf"), float("-inf")):
            raise RealtimeError(f"{name}: expected a number, got {value!r}")
        if pa.types.is_decimal(dtype):
            try:
                pa.array([Decimal(str(value))], dtype)
            except (pa.ArrowInvalid, InvalidOperation):
                raise RealtimeError(f"{name}: {value} does not fit {dtype}") from None
        return value
    if pa.types.is_date(dtype):
        try:
            return date.fromisoformat(str(_text(value, name))).isoformat()
        except ValueError:
            raise RealtimeError(f"{name}: expected a date like 2026-01-31, got {value!r}") from None
    if pa.types.is_timestamp(dtype):
        return _utc(value, name).isoformat()
    raise RealtimeError(f"{name}: a {dtype} field cannot be set through the API")


def _arrow_values(values: list[Any], dtype: pa.DataType) -> pa.Array:
    """Stored JSON values (already coerced for `dtype`) as an Arrow column of that type."""
    if pa.types.is_date(dtype):
        values = [None if v is None else date.fromisoformat(v) for v in values]
    elif pa.types.is_timestamp(dtype):
        values = [None if v is None else datetime.fromisoformat(v) for v in values]
    elif pa.types.is_decimal(dtype):
        values = [None if v is None else Decimal(str(v)) for v in values]
    elif pa.types.is_floating(dtype):
        values = [None if v is None else float(v) for v in values]
    return pa.array(values, dtype)


def editable_columns(schema: pa.Schema, key_columns: set[str]) -> dict[str, pa.DataType]:
    """Profile columns a real-time update may set: all but the IDs and the source keys."""
    return {
        f.name: f.type for f in schema if f.name not in SYSTEM_COLUMNS and f.name not in key_columns
    }


def check_profile_fields(
    fields: Mapping[str, Any], columns: Mapping[str, pa.DataType]
) -> dict[str, Any]:
    """The fields as stored, each checked against its profile column; RealtimeError names a
    field that is unknown or whose value does not fit, and the fields that can be set."""
    if not isinstance(fields, Mapping) or not fields:
        raise RealtimeError('give at least one profile field, e.g. {"FirstName": "Ann"}')
    checked = {}
    for name, value in fields.items():
        if name not in columns:
            known = ", ".join(sorted(columns)) or "none"
            raise RealtimeError(f"unknown profile field '{name}'; fields that can be set: {known}")
        checked[name] = coerce_value(value, columns[name], name)
    return checked


# -- the store ----------------------------------------------------------------------------


@dataclass
class Snapshot:
    """What one run folds in: every activity and the latest update of every profile field
    up to the high-water marks."""

    activity_seq: int = 0
    profile_seq: int = 0
    activities: list[dict[str, Any]] = field(default_factory=list)
    # customer -> field -> (update seq, JSON value)
    profile: dict[str, dict[str, tuple[int, Any]]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.activities and not self.profile


class RealtimeStore:
    """Real-time activities and profile updates in one SQLite file, kept for good.

    `workspace` (default: the file's folder) holds the `current` pointer that decides what
    reads still return. Safe to share between threads; several processes may open the file.
    """

    def __init__(self, path: Path, workspace: Path | None = None):
        self.path = path
        self.workspace = Workspace(workspace or path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection per store, behind a lock: it also watches `PRAGMA data_version`,
        # which only a connection that stays open can compare over time.
        self._con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._con.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=FULL")
            self._con.executescript(_SCHEMA)
        # In memory, per customer: the largest activity and profile-update seq (loaded on the
        # first has_updates), so a customer without real-time data costs a dict lookup.
        self._index_ready = False
        self._version: int | None = None
        self._seen = (0, 0)
        self._activity_max: dict[str, int] = {}
        self._profile_max: dict[str, int] = {}
        self._folds: dict[str, tuple[int, int]] = {}

    def close(self) -> None:
        with self._lock:
            self._con.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            # IMMEDIATE: the write lock up front, so writers from other processes queue.
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    # -- writes ---------------------------------------------------------------------------
    def record_activity(
        self, customer_id: str, activity: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Store an activity; returns it (UnifiedActivity-shaped) and whether it is new. The
        same source_id again returns the stored one (RealtimeConflict for another customer)."""
        row = _activity_row(activity)
        key = row["source_id"] or str(uuid.uuid4())
        activity_id = f"{SOURCE}|{key}"
        with self._write() as con:
            found = con.execute(
                "SELECT * FROM activity WHERE activity_id = ?", (activity_id,)
            ).fetchone()
            if found is not None:
                if found["customer_id"] != customer_id:
                    raise RealtimeConflict(
                        f"source_id '{row['source_id']}' is already stored for another customer"
                    )
                return _unified(found, customer_id), False
            cursor = con.execute(
                "INSERT INTO activity (activity_id, customer_id, type, ts, title, description,"
                " url, data, source_id, posted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    activity_id,
                    customer_id,
                    row["type"],
                    row["ts"],
                    row["title"],
                    row["description"],
                    row["url"],
                    row["data"],
                    row["source_id"],
                    _now(),
                ),
            )
            seq = int(cursor.lastrowid or 0)
        self._bump(self._activity_max, customer_id, seq)
        return _unified({**row, "activity_id": activity_id}, customer_id), True

    def add_activity(self, customer_id: str, activity: Mapping[str, Any]) -> dict[str, Any]:
        """Store an activity (see record_activity) and return it."""
        return self.record_activity(customer_id, activity)[0]

    def update_profile(self, customer_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Store new values of profile fields (checked by the caller against the profile's
        columns with `check_profile_fields`); returns them."""
        if not fields:
            raise RealtimeError("give at least one profile field")
        for name in fields:
            _text(name, "field name", 200)
        posted = _now()
        with self._write() as con:
            seq = 0
            for name, value in fields.items():
                cursor = con.execute(
                    "INSERT INTO profile_update (customer_id, field, value, posted) "
                    "VALUES (?, ?, ?, ?)",
                    (customer_id, name, json.dumps(value, ensure_ascii=False), posted),
                )
                seq = int(cursor.lastrowid or 0)
        self._bump(self._profile_max, customer_id, seq)
        return dict(fields)

    # -- reads ----------------------------------------------------------------------------
    def activities(self, customer_id: str, run: Run | str | None = None) -> list[dict[str, Any]]:
        """Activities of a customer that `run` (default: the current run) has not folded in,
        newest first, UnifiedActivity-shaped."""
        activity_seq, _ = self.folded(run)
        with self._lock:
            rows = self._con.execute(
                "SELECT * FROM activity WHERE customer_id = ? AND seq > ? "
                "ORDER BY ts DESC, seq DESC",
                (customer_id, activity_seq),
            ).fetchall()
        return [_unified(r, customer_id) for r in rows]

    def profile_fields(self, customer_id: str, run: Run | str | None = None) -> dict[str, Any]:
        """The latest value of each profile field updated since `run` (default: the current
        run) took its snapshot; older updates are in that run's CustomerProfile."""
        _, profile_seq = self.folded(run)
        with self._lock:
            rows = self._con.execute(
                "SELECT field, value FROM profile_update p WHERE customer_id = ? AND seq = "
                "(SELECT max(seq) FROM profile_update WHERE customer_id = p.customer_id "
                "AND field = p.field) AND seq > ? ORDER BY field",
                (customer_id, profile_seq),
            ).fetchall()
        return {r["field"]: json.loads(r["value"]) for r in rows}

    def has_updates(self, customer_id: str, run: Run | str | None = None) -> bool:
        """Whether the customer has writes that `run` (default: the current run) lacks.
        A customer who never had a real-time write costs a dictionary lookup after one
        `PRAGMA data_version` (a few microseconds, no disk read)."""
        self._sync()
        activity = self._activity_max.get(customer_id)
        profile = self._profile_max.get(customer_id)
        if activity is None and profile is None:
            return False
        activity_seq, profile_seq = self.folded(run)
        return (activity or 0) > activity_seq or (profile or 0) > profile_seq

    def folded(self, run: Run | str | None = None) -> tuple[int, int]:
        """The high-water marks (activity seq, profile seq) that `run` folded in; the current
        run when None, (0, 0) when there is none or it took no snapshot."""
        if isinstance(run, Run):
            detail = run.results.get("stages", {}).get("realtime", {}).get("detail", {})
            return int(detail.get("activity_seq", 0)), int(detail.get("profile_seq", 0))
        run_id = run if run is not None else self.workspace.current_id()
        if run_id is None:
            return 0, 0
        marks = self._folds.get(run_id)
        if marks is None:
            with self._lock:
                row = self._con.execute(
                    "SELECT activity_seq, profile_seq FROM fold WHERE run_id = ?", (run_id,)
                ).fetchone()
            marks = (row[0], row[1]) if row else (0, 0)
            if run is None:
                # The current run's snapshot was recorded before it was published: final.
                self._folds[run_id] = marks
        return marks

    def counts(self) -> dict[str, int]:
        """How much the store holds: activities, profile updates, customers."""
        with self._lock:
            row = self._con.execute(
                "SELECT (SELECT count(*) FROM activity), (SELECT count(*) FROM profile_update),"
                " (SELECT count(*) FROM (SELECT customer_id FROM activity UNION "
                "SELECT customer_id FROM profile_update))"
            ).fetchone()
        return {"activities": row[0], "profile_updates": row[1], "customers": row[2]}

    # -- the in-memory index --------------------------------------------------------------
    def _bump(self, index: dict[str, int], customer_id: str, seq: int) -> None:
        if self._index_ready:
            with self._lock:
                index[customer_id] = max(index.get(customer_id, 0), seq)

    def _sync(self) -> None:
        """Bring the index up to date with writes of other connections (other workers, the
        pipeline): `data_version` changes exactly when one of them committed."""
        with self._lock:
            version = self._con.execute("PRAGMA data_version").fetchone()[0]
            if self._index_ready and version == self._version:
                return
            # Up to the largest seqs read first: a write landing meanwhile changes
            # data_version again and is read next time.
            top = self._con.execute(
                "SELECT (SELECT coalesce(max(seq), 0) FROM activity), "
                "(SELECT coalesce(max(seq), 0) FROM profile_update)"
            ).fetchone()
            for table, index, seen, last in (
                ("activity", self._activity_max, self._seen[0], top[0]),
                ("profile_update", self._profile_max, self._seen[1], top[1]),
            ):
                rows = self._con.execute(
                    f"SELECT customer_id, max(seq) FROM {table} WHERE seq > ? AND seq <= ? "
                    "GROUP BY customer_id",
                    (seen, last),
                ).fetchall()
                for customer_id, seq in rows:
                    index[customer_id] = max(index.get(customer_id, 0), seq)
            self._seen = (top[0], top[1])
            self._version = version
            self._index_ready = True

    # -- folding into a run ---------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Every activity and the latest update of each profile field, as of now."""
        snap = Snapshot()
        with self._lock:
            self._con.execute("BEGIN")  # one read transaction: rows and marks agree
            try:
                for row in self._con.execute("SELECT * FROM activity ORDER BY seq"):
                    snap.activities.append(dict(row))
                    snap.activity_seq = row["seq"]
                latest = self._con.execute(
                    "SELECT customer_id, field, value, seq FROM profile_update p WHERE seq = "
                    "(SELECT max(seq) FROM profile_update WHERE customer_id = p.customer_id "
                    "AND field = p.field)"
                )
                for customer_id, name, value, seq in latest:
                    snap.profile.setdefault(customer_id, {})[name] = (seq, json.loads(value))
                top = self._con.execute(
                    "SELECT coalesce(max(seq), 0) FROM profile_update"
                ).fetchone()
                snap.profile_seq = top[0]
            finally:
                self._con.execute("COMMIT")
        return snap

    def record_fold(self, run_id: str, snap: Snapshot, profile_fields: int) -> None:
        """Remember that `run_id` holds the snapshot `snap` (hidden from reads once that run
        is the current one)."""
        with self._write() as con:
            con.execute(
                "INSERT OR REPLACE INTO fold VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    snap.activity_seq,
                    snap.profile_seq,
                    len(snap.activities),
                    profile_fields,
                    _now(),
                ),
            )


# -- the run's realtime stage -------------------------------------------------------------


def realtime_stage(ctx: Context, result: StageResult) -> None:
    """Fold the store into this run: RealtimeActivity for the activities stage, the latest
    profile values written over CustomerProfile, RealtimeCustomer for the next run."""
    path = ctx.project.workspace_path / STORE_FILE
    if not path.exists():
        result.status = "skipped"
        result.detail["reason"] = "no real-time writes (nothing was posted through the API)"
        return
    if "CustomerProfile" not in ctx.run.tables:
        result.status = "skipped"
        result.detail["reason"] = "real-time writes need unified customers (a unify: section)"
        return
    store = RealtimeStore(path, ctx.project.workspace_path)
    try:
        snap = store.snapshot()
        if snap.empty:
            result.status = "skipped"
            result.detail["reason"] = "no real-time writes (nothing was posted through the API)"
            return
        posted_for = {a["customer_id"] for a in snap.activities} | set(snap.profile)
        mapping = _map_customers(ctx, posted_for)
        _write_activities(ctx, result, snap, mapping)
        applied = _apply_profile(ctx, result, snap, mapping)
        _write_customer_map(ctx, mapping)
        store.record_fold(ctx.run.id, snap, applied)
        result.detail["activity_seq"] = snap.activity_seq
        result.detail["profile_seq"] = snap.profile_seq
    finally:
        store.close()


def _map_customers(ctx: Context, posted_for: set[str]) -> dict[str, str | None]:
    """Each customer a write was posted for -> this run's customer (None when gone)."""
    import pyarrow.parquet as pq

    from audience.pipeline import previous_table

    previous: dict[str, str] = {}
    earlier = previous_table(ctx, "RealtimeCustomer")
    if earlier is not None:
        table = pq.read_table(earlier, schema=CUSTOMER_MAP_SCHEMA)
        for old, new in zip(*table.to_pydict().values(), strict=True):
            if new is not None:
                previous[old] = new
    candidates = sorted(posted_for | {previous[c] for c in posted_for if c in previous})
    engine = ctx.engine
    ids = engine.register_arrow(pa.table({"Id": pa.array(candidates, pa.string())}), "rt_ids")
    profile = engine.read(ctx.run.table_path("CustomerProfile"))
    present = profile.semi_join(ids, profile.CustomerId == ids.Id).select("CustomerId")
    existing = set(engine.to_arrow(present).column("CustomerId").to_pylist())
    merged: dict[str, str] = {}
    if "PreviousCustomerId" in profile.columns:
        olds = profile.filter(profile.PreviousCustomerId.notnull()).select(
            "CustomerId", Old=profile.PreviousCustomerId.split(";").unnest()
        )
        olds = olds.semi_join(ids, olds.Old == ids.Id)
        for row in engine.to_arrow(olds.order_by("CustomerId")).to_pylist():
            merged.setdefault(row["Old"], row["CustomerId"])  # a tie goes to the smallest ID

    mapping: dict[str, str | None] = {}
    for customer in posted_for:
        before = previous.get(customer)
        if customer in existing:
            mapping[customer] = customer
        elif before in existing:
            mapping[customer] = before
        else:
            mapping[customer] = merged.get(before or "") or merged.get(customer)
    return mapping


def _write_activities(
    ctx: Context, result: StageResult, snap: Snapshot, mapping: dict[str, str | None]
) -> None:
    rows: dict[str, list[Any]] = {name: [] for name in STAGE_SCHEMA.names}
    for activity in snap.activities:
        posted_for = activity["customer_id"]
        customer = mapping.get(posted_for)
        unified = _unified(activity, customer or posted_for)
        unified["SemanticData"] = activity["data"]
        unified["ActivityTimeStamp"] = _from_micros(activity["ts"])
        unified["PostedCustomerId"] = posted_for
        unified["Reason"] = (
            None
            if customer
            else f"customer {posted_for} is not in this run's CustomerProfile (nor merged into "
            "a customer there)"
        )
        for name in STAGE_SCHEMA.names:
            rows[name].append(unified[name])
    table = pa.table(rows, schema=STAGE_SCHEMA)
    ctx.engine.write_arrow(table, ctx.out("tables/RealtimeActivity.parquet"))
    ctx.run.add_table("RealtimeActivity", "tables/RealtimeActivity.parquet")
    unresolved = sum(r is not None for r in rows["Reason"])
    result.rows["RealtimeActivity"] = table.num_rows
    result.detail["activities"] = {"folded": table.num_rows - unresolved, "unresolved": unresolved}
    result.detail["moved_to_merged_customer"] = sum(
        1 for a in snap.activities if mapping.get(a["customer_id"]) not in (None, a["customer_id"])
    )


def key_columns(project: Project) -> set[str]:
    """CustomerProfile's source key columns ('<source>_<table>_<key>'), which runs own."""
    return {f"{r.id}_{r.table.primary_key}" for r in project.table_refs()}


def _apply_profile(
    ctx: Context, result: StageResult, snap: Snapshot, mapping: dict[str, str | None]
) -> int:
    """Write the latest real-time value of each field over CustomerProfile; returns how many
    (customer, field) values were applied."""
    import ibis

    from audience.outputs import read_schema

    if not snap.profile:
        return 0
    path = ctx.run.table_path("CustomerProfile")
    columns = editable_columns(read_schema(path), key_columns(ctx.project))
    # Several posted-for IDs can land on one customer (a merge): the latest update wins.
    latest: dict[str, dict[str, tuple[int, Any]]] = {}
    ignored: dict[str, str] = {}
    unplaced = 0
    for posted_for, fields in snap.profile.items():
        customer = mapping.get(posted_for)
        if customer is None:
            unplaced += len(fields)
            continue
        target = latest.setdefault(customer, {})
        for name, (seq, value) in fields.items():
            if name not in columns:
                ignored[name] = "not a profile field that can be set in this run"
                continue
            try:
                value = coerce_value(value, columns[name], name)
            except RealtimeError as e:
                ignored[name] = str(e)
                continue
            if name not in target or target[name][0] < seq:
                target[name] = (seq, value)
    names = sorted({n for fields in latest.values() for n in fields})
    result.detail["profile"] = {
        "customers": sum(bool(f) for f in latest.values()),
        "values": sum(len(f) for f in latest.values()),
        "fields": names,
        "unplaced": unplaced,
        "ignored": ignored,
    }
    if not names:
        return 0
    customers = sorted(c for c, fields in latest.items() if fields)
    data: dict[str, pa.Array] = {"CustomerId": pa.array(customers, pa.string())}
    for i, name in enumerate(names):
        data[f"_rt_set_{i}"] = pa.array([name in latest[c] for c in customers], pa.bool_())
        values = [latest[c][name][1] if name in latest[c] else None for c in customers]
        data[f"_rt_value_{i}"] = _arrow_values(values, columns[name])
    engine = ctx.engine
    updates = engine.register_arrow(pa.table(data), "rt_profile").rename(_rt_customer="CustomerId")
    profile = engine.read(path)
    joined = profile.left_join(updates, profile.CustomerId == updates._rt_customer)
    position = {name: i for i, name in enumerate(names)}
    rewritten = joined.select(
        *[
            ibis.ifelse(
                joined[f"_rt_set_{position[c]}"].fill_null(False),
                joined[f"_rt_value_{position[c]}"].cast(profile[c].type()),
                joined[c],
            ).name(c)
            if c in position
            else joined[c]
            for c in profile.columns
        ]
    )
    # Materialised first: the new profile replaces the file it is computed from.
    stored = engine.checkpoint(rewritten, "realtime_profile")
    engine.write(stored, path)
    result.rows["CustomerProfile"] = int(engine.read(path).count().to_pyarrow().as_py())
    return result.detail["profile"]["values"]


def _write_customer_map(ctx: Context, mapping: dict[str, str | None]) -> None:
    posted = sorted(mapping)
    table = pa.table(
        {"StoreCustomerId": posted, "CustomerId": [mapping[c] for c in posted]},
        schema=CUSTOMER_MAP_SCHEMA,
    )
    ctx.engine.write_arrow(table, ctx.out("tables/RealtimeCustomer.parquet"))
    ctx.run.add_table("RealtimeCustomer", "tables/RealtimeCustomer.parquet")
