"""The customer search's text: one column per customer, written once per run.

A search for text (a name, part of an address) looks in SEARCH_FIELDS of CustomerProfile,
ignoring case. Lower-casing six columns of 1M customers on every search cost ~500 ms; the run's
`console/search-text.parquet` holds (CustomerId, the other fields lower-cased and joined by
SEPARATOR), so a search scans one column. SEPARATOR is a control character no one types, so a
search never matches across two fields, exactly as one test per field. The file is not
compressed: decoding Snappy took over half of a search's time (a scan of 1M rows: ~0.6 s
compressed, ~0.25 s not, on 2 busy cores). CustomerIds (lower-case hex and dashes) are
searched only for text that could be part of one.

The file is the console's, made from the run's profile the first time a worker needs it (the
home and customers pages start it in the background) and kept in the run folder, so it goes
when the run is pruned. It is written to a temporary name and renamed: workers that build it
at once each write their own, and a reader never sees half a file.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from pathlib import Path

from audience.api.routes import lists
from audience.api.server import RunView, Server
from audience.runs import Run

SEARCH_FIELDS = ("CustomerId", "FullName", "FirstName", "LastName", "Email", "Phone", "City")
SEPARATOR = "\x1f"  # ASCII unit separator
SEARCH_FILE = Path("console") / "search-text.parquet"

_build_lock = threading.Lock()  # held while writing: one build per process at a time
_lock = threading.Lock()  # guards _building only, so a page never waits for a build
_building: set[str] = set()


def search_path(run: Run) -> Path:
    return run.path / SEARCH_FILE


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def build(db: lists.RunDatabase) -> Path:
    """The run's search file, written now unless it exists."""
    path = search_path(db.run)
    if path.exists():
        return path
    with _build_lock:  # other processes may build theirs at once: the same content
        if path.exists():
            return path
        present = db.table("CustomerProfile").columns
        columns = [c for c in SEARCH_FIELDS if c in present and c != "CustomerId"]
        text = ", ".join(f"lower({_quote(c)})" for c in columns) or "NULL"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        cursor = db.backend.con.cursor()
        try:
            cursor.execute(
                f"COPY (SELECT CustomerId, concat_ws({_literal(SEPARATOR)}, {text}) AS text "
                f'FROM "CustomerProfile" WHERE CustomerId IS NOT NULL) TO {_literal(str(tmp))} '
                "(FORMAT parquet, COMPRESSION uncompressed)"
            )
            os.replace(tmp, path)
        finally:
            cursor.close()
            tmp.unlink(missing_ok=True)
    return path


def build_soon(server: Server, view: RunView) -> None:
    """Start writing the current run's search file in the background if it is missing (the
    per-run database too is made there: a page calling this never waits)."""
    if search_path(view.run).exists() or "CustomerProfile" not in view.run.tables:
        return
    key = str(view.run.path)
    with _lock:
        if key in _building:
            return
        _building.add(key)

    def work() -> None:
        try:
            build(lists.run_database(server, view))
        except Exception:  # noqa: BLE001 - the next search builds it again and says what failed
            pass
        finally:
            with _lock:
                _building.discard(key)

    # Not a daemon: DuckDB aborts the process ("terminate called") when the interpreter
    # exits under a query still running; exiting waits for the write instead (~1 s at 1M).
    threading.Thread(target=work, name="console-search-file").start()


def search(db: lists.RunDatabase, q: str, limit: int) -> tuple[int, list[str]]:
    """How many customers have `q` in one of SEARCH_FIELDS (ignoring case), and the first
    `limit` of their CustomerIds in order."""
    needle = q.strip().lower()
    if not needle or SEPARATOR in needle or not db.has("CustomerProfile"):
        return 0, []
    path = build(db)
    found = "contains(text, $needle)"
    if "CustomerId" in SEARCH_FIELDS and re.fullmatch(r"[0-9a-f-]+", needle):
        found += " OR contains(lower(CustomerId), $needle)"
    cursor = db.backend.con.cursor()
    try:
        rows = cursor.execute(
            f"SELECT CustomerId, count(*) OVER () FROM read_parquet($path) WHERE {found} "
            "ORDER BY CustomerId LIMIT $limit",
            {"path": str(path), "needle": needle, "limit": limit},
        ).fetchall()
    finally:
        cursor.close()
    return (rows[0][1] if rows else 0), [r[0] for r in rows]
