"""Export benchmark: 1M customer profiles to PostgreSQL and to a CDM folder.

Generates a CustomerProfile-like Parquet file (CustomerId as a UUID text plus 14 profile
columns: names, email, phone, address, dates; some nulls), cached in benchmarks/data/, puts it
in a run of a scratch workspace as the run's CustomerProfile table, and times, median of
--repeat rounds (the steps alternate within a round, one process):
- audience SQL export: `export_sql` to PostgreSQL (load into `<table>__new` via COPY, primary
  key, ANALYZE, swap in one transaction);
- plain COPY (the baseline): the same Parquet file streamed as CSV by pyarrow.csv into
  `COPY ... FROM STDIN (FORMAT csv)` of an existing empty table with the same columns and no
  key, in one transaction; and the same followed by the primary key and ANALYZE, to show where
  the export's extra time goes;
- audience SQL export to a SQLite file and to a DuckDB file, for reference (no target);
- audience lake export: `export_lake` to a CDM folder (Parquet partitions), with a plain
  pyarrow read + write of the same file for reference.
Targets: each export under 30 s (on 2 cores), and the SQL export within 2x of the plain COPY.

    .venv/bin/python benchmarks/export.py [--rows 1000000] [--repeat 3] [--write-results]
        [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa
from machine import code_version, describe

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "RESULTS.md"
DEFAULT_URL = os.environ.get(
    "AUDIENCE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SCHEMA = "audience_bench_export"
TARGET_SECONDS, TARGET_RATIO = 30.0, 2.0
SEED = 20261127

WORDS = {
    "first": "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David "
    "Barbara Richard Susan Joseph Carlos Maria Wei Li Aisha Omar Priya Raj Yuki Olga Ivan Sofia",
    "last": "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Lopez "
    "Wilson Anderson Thomas Taylor Moore Lee Perez White Harris Clark Nguyen Hill Chen",
    "street": "Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Sunset Lincoln Ridge",
    "suffix": "St Ave Rd Blvd Ln Dr Ct Way",
    "city": "Springfield Riverside Franklin Greenville Bristol Clinton Fairview Salem Madison "
    "Georgetown Arlington Ashland Dover Oxford Jackson Burlington Manchester Milton Auburn",
    "state": "AL AK AZ CA CO CT FL GA IL IN MA MI MN NY NC OH OR PA TX VA WA WI",
    "domain": "gmail.com yahoo.com outlook.com hotmail.com icloud.com example.org mail.com",
    "gender": "female male other",
}


# -- data --------------------------------------------------------------------------------------
def _profiles(rows: int) -> pa.Table:
    rng = np.random.default_rng(SEED)

    def pick(kind: str, nulls: float = 0.0) -> pa.Array:
        words = pa.array(WORDS[kind].split())
        return _nulls(words.take(pa.array(rng.integers(0, len(words), rows))), nulls)

    def _nulls(values: pa.Array, share: float) -> pa.Array:
        if not share:
            return values
        return pc.if_else(pa.array(rng.random(rows) < share), None, values)

    def digits(low: int, high: int, width: int) -> pa.Array:
        text = pa.array(rng.integers(low, high, rows)).cast(pa.string())
        return pc.utf8_lpad(text, width=width, padding="0")

    def join(*parts: Any) -> pa.Array:
        return pc.binary_join_element_wise(*parts, "")

    # UUID text from random bytes, formatted without a Python loop.
    hex_pairs = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")
    raw = hex_pairs[rng.integers(0, 256, size=(rows, 16), dtype=np.uint8)]
    hexes = pa.array(raw.view("S32").ravel()).cast(pa.string())
    cuts = [(0, 8), (8, 12), (12, 16), (16, 20), (20, 32)]
    pieces = [pc.utf8_slice_codeunits(hexes, a, b) for a, b in cuts]
    customer_id = pc.binary_join_element_wise(*pieces, "-")

    first, last = pick("first"), pick("last")
    number = pa.array(np.arange(1, rows + 1)).cast(pa.string())
    email = pc.utf8_lower(join(first, ".", last, number, "@", pick("domain")))
    phone = join("(", digits(200, 1000, 3), ") ", digits(0, 1000, 3), "-", digits(0, 10000, 4))
    street = join(digits(1, 10000, 1), " ", pick("street"), " ", pick("suffix"))
    birth = pa.array(rng.integers(-10957, 12784, rows).astype("int32")).cast(pa.date32())
    seconds = 1_420_070_400 + rng.integers(0, 10 * 365 * 86400, rows)  # 2015-2024
    created = pa.array(seconds * 1_000_000).cast(pa.timestamp("us"))
    return pa.table(
        {
            "CustomerId": customer_id,
            "PreviousCustomerId": _nulls(customer_id, 0.97),
            "FirstName": first,
            "LastName": last,
            "FullName": join(first, " ", last),
            "Email": _nulls(email, 0.05),
            "Phone": _nulls(phone, 0.2),
            "Address": _nulls(street, 0.1),
            "City": pick("city", 0.1),
            "State": pick("state", 0.1),
            "PostalCode": _nulls(digits(0, 100000, 5), 0.1),
            "BirthDate": _nulls(birth, 0.3),
            "Gender": pick("gender", 0.4),
            "CreatedOn": created,
            "crm_contacts_contact_id": join("C", number),
        }
    )


def generate(rows: int) -> tuple[Path, float]:
    """The Parquet file of `rows` profiles (generated once, cached) and seconds to generate."""
    tag = hashlib.sha1(f"{inspect.getsource(_profiles)}{WORDS}{SEED}".encode()).hexdigest()[:8]
    path = DATA / f"profiles_{rows}_{tag}.parquet"
    if path.exists():
        return path, 0.0
    DATA.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(_profiles(rows), tmp)
    os.replace(tmp, path)
    seconds = time.perf_counter() - t0
    print(f"generated {rows:,} profiles in {seconds:.1f} s: {path}", flush=True)
    return path, seconds


# -- the steps ---------------------------------------------------------------------------------
def pg_connect(url: str) -> psycopg.Connection:
    u = sa.make_url(url)
    args = {"host": u.host, "port": u.port, "user": u.username, "password": u.password,
            "dbname": u.database}  # fmt: skip
    return psycopg.connect(autocommit=True, **{k: v for k, v in args.items() if v is not None})


PG_STEPS = ("sql_export", "plain_copy", "plain_copy_keyed")
PG_TYPES = {"string": "TEXT", "date32[day]": "DATE", "timestamp[us]": "TIMESTAMP"}


def plain_copy(conn: psycopg.Connection, path: Path, keyed: bool) -> tuple[float, int]:
    """The baseline: CSV text from pyarrow into COPY of an existing table (created untimed)."""
    schema = pq.read_schema(path)
    columns = ", ".join(f'"{f.name}" {PG_TYPES[str(f.type)]}' for f in schema)
    conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.plain")
    conn.execute(f"CREATE TABLE {SCHEMA}.plain ({columns})")
    t0 = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(f"COPY {SCHEMA}.plain FROM STDIN (FORMAT csv)") as copy:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
                buffer = io.BytesIO()
                pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False))
                copy.write(buffer.getbuffer())
        rows = cur.rowcount
        if keyed:
            cur.execute(f'ALTER TABLE {SCHEMA}.plain ADD PRIMARY KEY ("CustomerId")')
            cur.execute(f"ANALYZE {SCHEMA}.plain")
    return time.perf_counter() - t0, rows


def sql_export(project: Any, run: Any, url: str, schema: str | None) -> tuple[float, int]:
    from audience.export.config import SqlExport
    from audience.export.sqldb import export_sql

    config = SqlExport(kind="sql", name="bench", url=url, db_schema=schema,
                       tables=["CustomerProfile"])  # fmt: skip
    t0 = time.perf_counter()
    summary = export_sql(project, run, config)
    return time.perf_counter() - t0, summary["tables"]["CustomerProfile"]


def lake_export(project: Any, run: Any, folder: Path) -> tuple[float, int]:
    from audience.export.config import LakeExport
    from audience.export.lake import export_lake

    config = LakeExport(kind="lake", name="lake", path=str(folder), tables=["CustomerProfile"])
    t0 = time.perf_counter()
    export_lake(project, run, config)
    seconds = time.perf_counter() - t0
    parts = list(folder.rglob("*.parquet"))
    return seconds, sum(pq.ParquetFile(p).metadata.num_rows for p in parts)


def plain_rewrite(path: Path, out: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    table = pq.read_table(path)
    pq.write_table(table, out)
    return time.perf_counter() - t0, table.num_rows


def check_postgres(conn: psycopg.Connection, path: Path) -> str:
    """The exported table has every row once and the same text as the Parquet file."""
    table = pq.read_table(path, columns=["CustomerId", "Email", "BirthDate"])
    expected = (
        table.num_rows,
        pc.count_distinct(table["CustomerId"]).as_py(),
        pc.sum(pc.utf8_length(table["Email"])).as_py(),
        table["BirthDate"].null_count,
    )
    got = conn.execute(
        f'SELECT count(*), count(DISTINCT "CustomerId"), sum(length("Email")), '
        f'count(*) - count("BirthDate") FROM {SCHEMA}."CustomerProfile"'
    ).fetchone()
    same = tuple(got or ()) == expected
    verdict = "same" if same else "DIFFERENT"
    return f"{verdict} (rows, distinct ids, email chars, null dates) = {got}"


# -- reporting ---------------------------------------------------------------------------------
def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n:,}"


def report(args: argparse.Namespace, meta: dict[str, Any], runs: dict[str, list[float]]) -> str:
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = med["sql_export"] / med["plain_copy"]
    verdicts = {
        "SQL export": med["sql_export"] < TARGET_SECONDS,
        "SQL export vs plain COPY": ratio <= TARGET_RATIO,
    }
    names = {
        "sql_export": "audience `export_sql` to PostgreSQL",
        "plain_copy": "plain COPY (pyarrow CSV -> COPY FROM STDIN), baseline",
        "plain_copy_keyed": "plain COPY + primary key + ANALYZE",
        "sqlite_export": "audience `export_sql` to a SQLite file (no target)",
        "duckdb_export": "audience `export_sql` to a DuckDB file (no target)",
        "lake_export": "audience `export_lake` to a CDM folder (Parquet)",
        "plain_rewrite": "plain pyarrow read + write of the Parquet file",
    }
    lines = ["| step | median s | vs plain COPY | runs s |", "|---|---|---|---|"]
    for key, name in names.items():
        if key in runs:
            versus = f"{med[key] / med['plain_copy']:.2f}x" if key in PG_STEPS else ""
            cells = [name, f"{med[key]:.2f}", versus,
                     ", ".join(f"{s:.2f}" for s in runs[key])]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    if "lake_export" in med:
        verdicts["lake export"] = med["lake_export"] < TARGET_SECONDS
    lake_note = (
        ""
        if "lake_export" in runs
        else f" The CDM folder export was not measured: {meta['lake_missing']}."
    )
    return "\n".join([
        f"## Exports, {label(args.rows)} profiles to PostgreSQL and a CDM folder",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; code: {code_version()}; load "
        f"average before the run: {meta['load']}",
        f"- Machine: {describe(f', PyArrow {pa.__version__}, psycopg {psycopg.__version__}')}; "
        f"{meta['server']} on the same machine ({meta['settings']})",
        f"- Command: `{args.command}`",
        f"- Data: {args.rows:,} CustomerProfile rows, {meta['columns']} columns (CustomerId as "
        f"UUID text; names, email, phone, address, state, zip, gender as text, some null; a "
        f"birth date and a created timestamp), {meta['mb']:.0f} MB of Parquet "
        f"({meta['generated']}).",
        f"- Medians of {args.repeat} rounds in one process; the steps alternate within a round. "
        "The export's time is everything `export_sql` does: connect, load `CustomerProfile__new` "
        "by COPY, primary key, ANALYZE, and the swap (drop the old table, rename, in one "
        "transaction). The plain COPY's table is created before its clock starts. The export "
        'declares its key COLLATE "C" (identifiers: byte order, a faster index build); the '
        "keyed plain COPY keeps the database's default collation.",
        "",
        *lines,
        "",
        f"Targets (SQL export under {TARGET_SECONDS:g} s and within {TARGET_RATIO:g}x of the "
        f"plain COPY; lake export under {TARGET_SECONDS:g} s): "
        + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in verdicts.items())
        + f". SQL export / plain COPY = {ratio:.2f}x.{lake_note}",
        "",
        f"Checked after the last export: {meta['check']}.",
        "",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL (SQLAlchemy URL)")
    parser.add_argument("--write-results", action="store_true", help="into RESULTS.md")
    args = parser.parse_args()
    args.command = " ".join([".venv/bin/python", "benchmarks/export.py", *sys.argv[1:]])
    sys.path.insert(0, str(HERE.parent))
    from audience.project import parse_project
    from audience.runs import Workspace

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    path, seconds = generate(args.rows)
    conn = pg_connect(args.url)
    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    conn.execute(f"CREATE SCHEMA {SCHEMA}")
    server = conn.execute("SHOW server_version").fetchone()
    settings = ", ".join(
        f"{name} {conn.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
        for name in ("shared_buffers", "maintenance_work_mem", "max_parallel_maintenance_workers")
    )
    work = Path(tempfile.mkdtemp(prefix="work-export-", dir=DATA))
    try:
        project = parse_project({"name": "bench"}, file=work / "audience.yaml", root=work)
        run = Workspace(work / ".audience").start_run(["exports"], "duckdb", "bench")
        (run.path / "tables").mkdir()
        shutil.copy(path, run.path / "tables" / "CustomerProfile.parquet")
        run.add_table("CustomerProfile", "tables/CustomerProfile.parquet")
        run.save()
        try:
            import audience.export.lake  # noqa: F401

            lake_missing = ""
        except ImportError as e:
            lake_missing = f"audience.export.lake cannot be imported ({e})"
        runs: dict[str, list[float]] = {}
        for i in range(args.repeat):
            steps: dict[str, tuple[float, int]] = {
                "plain_copy": plain_copy(conn, path, keyed=False),
                "sql_export": sql_export(project, run, args.url, SCHEMA),
                "plain_copy_keyed": plain_copy(conn, path, keyed=True),
            }
            for kind in ("sqlite", "duckdb"):
                url = f"{kind}:///{work / f'out.{kind}'}"
                steps[f"{kind}_export"] = sql_export(project, run, url, None)
            if not lake_missing:
                shutil.rmtree(work / "cdm", ignore_errors=True)
                steps["lake_export"] = lake_export(project, run, work / "cdm")
                steps["plain_rewrite"] = plain_rewrite(path, work / "rewrite.parquet")
            for key, (s, rows) in steps.items():
                if rows != args.rows:
                    sys.exit(f"{key} wrote {rows:,} rows, expected {args.rows:,}")
                runs.setdefault(key, []).append(s)
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[0]:.2f} s" for k, v in steps.items()),
                  flush=True)  # fmt: skip
        meta = {
            "load": load, "server": f"PostgreSQL {server[0] if server else '?'}",
            "settings": settings, "columns": pq.read_schema(path).names.__len__(),
            "mb": path.stat().st_size / 2**20,
            "generated": f"{seconds:.1f} s to generate" if seconds else "cached",
            "check": check_postgres(conn, path), "lake_missing": lake_missing,
        }  # fmt: skip
    finally:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.close()
        shutil.rmtree(work, ignore_errors=True)
    section = report(args, meta, runs)
    print("\n" + section)
    if args.write_results:
        from machine import write_section

        write_section(section)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
