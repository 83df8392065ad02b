"""The engine layer: the only module that connects Ibis to a backend.

Stages are functions from Ibis tables to Ibis tables; they never read files, write files or
materialise on their own. They ask the engine:
- `read(path)`: a Parquet file or folder of part files as an Ibis table;
- `write(expr, path)`: run an expression and store it as Parquet;
- `checkpoint(expr, name)`: materialise an intermediate result so a long chain of expressions
  (an iterative algorithm) does not grow without bound. On DuckDB this is a temp table; on
  Spark a Parquet round-trip, because Spark keeps the whole lineage behind `.cache()` and slows
  down exponentially in loops (engine-notes.md, section 2).
- `to_arrow(expr)`: small results (profiles, summaries) into Python.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.parquet as pq

from audience.project import Project

ENGINES = ("duckdb", "spark")


def strip_whitespace(value: ibis.StringValue) -> ibis.StringValue:
    """`value` without leading and trailing whitespace, the same on every engine.

    Ibis 12's `.strip()` compiles for PySpark to TRIM(' \\t\\n\\r\\v\\f' FROM x), and Spark
    reads '\\v' and '\\f' in a string literal as the letters v and f: "victoria@x.com"
    lost its first letter. A regular expression says the same thing on DuckDB and Spark.
    """
    return value.re_replace(r"^\s+|\s+$", "")


class EngineError(Exception):
    pass


def _local_cores(master: str) -> str | None:
    """'local[4]' -> '4', 'local[*]' -> the CPU count, a cluster URL -> None."""
    if not master.startswith("local"):
        return None
    inside = master[master.find("[") + 1 : master.find("]")] if "[" in master else "1"
    return str(os.cpu_count() or 2) if inside == "*" else inside.split(",")[0]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@ibis.udf.scalar.builtin(name="jaro_winkler_similarity")
def _duckdb_jaro_winkler(a: str, b: str) -> float:  # type: ignore[empty-body]
    """DuckDB's built-in Jaro-Winkler."""


@ibis.udf.scalar.python
def _jaro_winkler(a: str, b: str) -> float:
    from rapidfuzz.distance import JaroWinkler

    return JaroWinkler.similarity(a, b) if a and b else 0.0


class Engine:
    """An open connection to DuckDB or Spark, with a scratch folder for checkpoints."""

    def __init__(self, kind: str, backend: Any, scratch: Path, spark: Any = None):
        self.kind = kind
        self.backend = backend
        self.scratch = scratch
        self._spark = spark
        self._counter = itertools.count()
        self._lookups: dict[str, ibis.Table] = {}

    # -- connecting ---------------------------------------------------------------------
    @classmethod
    def connect(cls, project: Project, kind: str | None = None) -> Engine:
        kind = kind or project.engine
        scratch = project.workspace_path / "tmp" / f"engine-{os.getpid()}"
        scratch.mkdir(parents=True, exist_ok=True)
        if kind == "duckdb":
            return cls._connect_duckdb(project, scratch)
        if kind == "spark":
            return cls._connect_spark(project, scratch)
        raise EngineError(f"engine: unknown engine '{kind}'; expected one of {', '.join(ENGINES)}")

    @classmethod
    def _connect_duckdb(cls, project: Project, scratch: Path) -> Engine:
        database = project.workspace_path / "engine.duckdb"
        config: dict[str, Any] = {"temp_directory": str(scratch)}
        if project.duckdb.threads:
            config["threads"] = project.duckdb.threads
        if project.duckdb.memory_limit:
            config["memory_limit"] = project.duckdb.memory_limit
        try:
            backend = ibis.duckdb.connect(str(database), **config)
        except Exception as e:  # duckdb.IOException when another process holds the lock
            raise EngineError(
                f"cannot open the engine database {database}: {e}. Is another 'audience' "
                "command running on this workspace?"
            ) from None
        return cls("duckdb", backend, scratch)

    @classmethod
    def _connect_spark(cls, project: Project, scratch: Path) -> Engine:
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise EngineError(
                "engine: spark needs PySpark: pip install 'audience[spark]' (and Java 17)"
            ) from None
        # Spark's Python workers must use this interpreter, or UDFs miss our packages.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        conf = {
            # The default of 200 shuffle partitions is wasteful below a cluster's scale; in
            # local mode one per core keeps the many small unify queries cheap.
            "spark.sql.shuffle.partitions": _local_cores(project.spark.master) or "8",
            "spark.sql.session.timeZone": "UTC",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
            **project.spark.conf,
        }
        builder = SparkSession.builder.master(project.spark.master).appName(
            f"audience-{project.name}"
        )
        for key, value in conf.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        return cls("spark", ibis.pyspark.connect(session), scratch, spark=session)

    def close(self) -> None:
        # The Spark session is shared per process (getOrCreate); stopping it here would make
        # the next connect pay the start-up again, so only the DuckDB connection is closed.
        if self.kind == "duckdb":
            self.backend.disconnect()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tables -------------------------------------------------------------------------
    def read(self, path: Path, name: str | None = None) -> ibis.Table:
        """A Parquet file, or a folder of Parquet part files, as a table."""
        if not path.exists():
            raise EngineError(f"no table at {path}")
        source = str(path / "*.parquet") if path.is_dir() and self.kind == "duckdb" else str(path)
        return self.backend.read_parquet(source, table_name=name or self._name("read"))

    def write(self, expr: ibis.Table, path: Path, row_group_rows: int | None = None) -> None:
        """Run `expr` and store the result at `path` (a file on DuckDB, a folder on Spark).

        `row_group_rows`: Parquet row groups of this many rows (DuckDB; Spark sizes them in
        bytes). Smaller groups of a sorted table make a look-up of one key read less: each
        row group read is decoded whole."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        if self.kind == "duckdb":
            self._duckdb_parquet(expr, path, row_group_rows)
        else:
            self.backend.to_parquet(expr, str(path))

    def _duckdb_parquet(self, expr: ibis.Table, path: Path, row_group_rows: int | None) -> None:
        options = {"row_group_size": row_group_rows} if row_group_rows else {}
        # DuckDB sums integers into HUGEINT, which its Parquet writer stores as DOUBLE, while
        # Ibis calls the column int64 (and drops a cast to int64 as a no-op): cast in SQL.
        ints = {c: t for c, t in expr.schema().items() if t.is_integer()}
        if not ints:
            self.backend.to_parquet(expr, str(path), **options)
            return
        names = {8: "TINYINT", 16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}
        casts = ", ".join(
            f"CAST({_quote(c)} AS {'U' if t.is_unsigned_integer() else ''}{names[t.nbytes * 8]})"
            f" AS {_quote(c)}"
            for c, t in ints.items()
        )
        self.backend._run_pre_execute_hooks(expr)  # registers in-memory tables, as to_parquet does
        sql = self.backend.compile(expr)
        target = str(path).replace("'", "''")
        extra = f", ROW_GROUP_SIZE {int(row_group_rows)}" if row_group_rows else ""
        self.backend.raw_sql(
            f"COPY (SELECT * REPLACE ({casts}) FROM ({sql})) TO '{target}' (FORMAT parquet{extra})"
        )

    def checkpoint(self, expr: ibis.Table, name: str) -> ibis.Table:
        """Materialise `expr` and return a table that reads the stored result."""
        if self.kind == "duckdb":
            return self.backend.create_table(self._name(name), expr, temp=True)
        path = self.scratch / f"{self._name(name)}.parquet"
        self.write(expr, path)
        # Spark writes literals with its own types (1.0 as decimal(2,1), 2 as int): cast back
        # to the expression's schema so unions with other tables still line up.
        return self.read(path).cast(expr.schema())

    def write_arrow(self, table: pa.Table, path: Path) -> None:
        """Store a small result computed in Python (a profile, a summary) as Parquet."""
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)

    def export(self, expr: ibis.Table, path: Path, fmt: str) -> int:
        """Write a table to a single Parquet or CSV file outside the workspace; returns rows."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        if fmt == "csv":
            self.backend.to_csv(expr, str(tmp))
        else:
            self.backend.to_parquet(expr, str(tmp))
        os.replace(tmp, path)  # a reader never sees half a file
        return int(expr.count().execute())

    def to_arrow(self, expr: ibis.Expr) -> pa.Table:
        return expr.to_pyarrow()

    def register_arrow(self, table: pa.Table, name: str) -> ibis.Table:
        """A small in-memory table (a lookup list, a configuration table) in the engine."""
        if self.kind == "duckdb":
            return self.backend.create_table(self._name(name), table, temp=True)
        # Through Parquet, not pandas: pandas turns null floats into NaN, which Spark keeps.
        # Spark skips files whose names start with "_" as hidden: no leading underscore.
        path = self.scratch / f"arrow{self._name(name)}.parquet"
        self.write_arrow(table, path)
        return self.read(path)

    def lookup_table(self, name: str, build: Callable[[], pa.Table]) -> ibis.Table:
        """A fixed lookup list (such as nickname pairs) registered once per engine, and again
        if someone dropped it (the console drops the temp tables a request made)."""
        table = self._lookups.get(name)
        if table is None or (self.kind == "duckdb" and not self._temp_table_exists(table)):
            table = self._lookups[name] = self.register_arrow(build(), name)
        return table

    def _temp_table_exists(self, table: ibis.Table) -> bool:
        found = self.backend.raw_sql(
            "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?",
            parameters=[table.op().name],
        ).fetchone()
        return bool(found and found[0])

    def jaro_winkler(self, a: ibis.Value, b: ibis.Value) -> ibis.Value:
        """Jaro-Winkler similarity of two strings (0 when either is missing or empty).

        DuckDB has it built in; Spark does not, so there rapidfuzz runs as a Python UDF on the
        candidate pairs. The two agreed to the last digit on 21,000 name pairs."""
        if self.kind == "duckdb":
            both = a.notnull() & b.notnull() & (a.length() > 0) & (b.length() > 0)
            return ibis.ifelse(both, _duckdb_jaro_winkler(a, b), 0.0)
        return _jaro_winkler(a, b)

    def _name(self, prefix: str) -> str:
        return f"_{prefix}_{next(self._counter)}"
