"""One engine per run for the console's previews, instead of one per request.

A preview (a measure in the builder) used to open an in-memory DuckDB and read the schemas of
the run's tables each time: ~8 Parquet files, 15-35 ms each, before anything was computed. A
run's files never change, so one engine over the current run keeps its reads; it is lent to
one request at a time (a DuckDB connection is not for concurrent use, and previews are rare),
and the temp tables a request made are dropped when it gives the engine back. When the current
run changes, the engine of the old one is closed.

It is an in-memory DuckDB with the project's limits: a run in progress holds the workspace's
engine database, so the console never takes it.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis

from audience.engine import Engine
from audience.project import Project
from audience.runs import Run


class ReadOnce(Engine):
    """An engine that reads each file once (the run's files never change)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._reads: dict[Path, ibis.Table] = {}

    def read(self, path: Path, name: str | None = None) -> ibis.Table:
        table = self._reads.get(path)
        if table is None:
            table = self._reads[path] = super().read(path, name)
        return table


def memory_engine(project: Project) -> ReadOnce:
    """An engine on its own in-memory DuckDB with the project's limits, spilling to a temp
    folder (removed when it is closed)."""
    scratch = Path(tempfile.mkdtemp(prefix="audience-console-"))
    config: dict[str, Any] = {"temp_directory": str(scratch)}
    if project.duckdb.threads:
        config["threads"] = project.duckdb.threads
    if project.duckdb.memory_limit:
        config["memory_limit"] = project.duckdb.memory_limit
    return ReadOnce("duckdb", ibis.duckdb.connect(**config), scratch)


@dataclass
class _Lent:
    run: str
    engine: ReadOnce
    lock: threading.Lock = field(default_factory=threading.Lock)


_current: _Lent | None = None
_swap = threading.Lock()


def _temp_tables(engine: Engine) -> set[str]:
    rows = engine.backend.raw_sql("SELECT table_name FROM duckdb_tables() WHERE temporary")
    return {r[0] for r in rows.fetchall()}


@contextmanager
def run_engine(project: Project, run: Run) -> Iterator[Engine]:
    """The engine over `run`, for this request alone until the block ends."""
    global _current
    with _swap:
        lent = _current
        retired = None
        if lent is None or lent.run != str(run.path):
            retired, lent = lent, _Lent(str(run.path), memory_engine(project))
            _current = lent
    if retired is not None:
        with retired.lock:  # after the request using it, if any
            retired.engine.close()
    with lent.lock:
        before = _temp_tables(lent.engine)
        try:
            yield lent.engine
        finally:
            for name in _temp_tables(lent.engine) - before:
                lent.engine.backend.raw_sql(f'DROP TABLE IF EXISTS temp.main."{name}"')
