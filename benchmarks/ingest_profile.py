"""Ingest + profile benchmark (issue 3): audience vs DuckDB reading the same file directly.

Generates a customer table of N rows (cached in benchmarks/data/ as CSV and twice as Parquet:
with DuckDB's row groups, and in one row group), then
times for each format, median of --repeat runs, each in a fresh child process that also
reports its peak RSS (results to stdout and to this benchmark's section of RESULTS.md):
- audience: `run_pipeline` (ingest + profile) on a one-table project in a fresh folder;
- duckdb: `CREATE TABLE t AS SELECT * FROM read_csv/read_parquet(file)`, then `SUMMARIZE t`.
Targets: audience's total under 10 s; its ingest (file -> typed table + quarantine, as
Parquet) within 2x of DuckDB's read, its ingest + profile within 2x of DuckDB's read +
SUMMARIZE (the run's total, with one-time imports and the other stages, is shown too). The
ratios are taken per run (audience and DuckDB back to back), then their median: the machine
is shared, and its load drifts between runs more than within one.

    .venv/bin/python benchmarks/ingest_profile.py [--rows 1000000] [--repeat 3] [--keep-data]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from machine import code_version, describe

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "RESULTS.md"
# name -> (file suffix, DuckDB COPY options). "parquet" is laid out as landing writes files
# (122,880-row row groups), so landing copies it; "parquet-1rg" holds one row group of all rows,
# as pyarrow writes 1M rows by default, so landing rewrites it: both paths are measured.
FILES = {
    "csv": (".csv", "FORMAT CSV, HEADER"),
    "parquet": (".parquet", "FORMAT PARQUET"),
    "parquet-1rg": (".1rg.parquet", "FORMAT PARQUET, ROW_GROUP_SIZE 1048576"),
}
FORMATS = tuple(FILES)
TARGET_SECONDS, TARGET_RATIO = 10.0, 2.0
LOAD = os.getloadavg()[0]  # other work on the machine skews the timings: reported with them

WORDS = {
    "first": "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David "
    "Barbara Richard Susan Joseph Carlos Maria Wei Li Aisha Omar Priya Raj Yuki Olga Ivan Sofia",
    "last": "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Lopez "
    "Wilson Anderson Thomas Taylor Moore Lee Perez White Harris Clark Nguyen Hill Chen",
    "street": "Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Sunset Lincoln Ridge",
    "suffix": "St Ave Rd Blvd Ln Dr Ct Way",
    "city": "Springfield Riverside Franklin Greenville Bristol Clinton Fairview Salem Madison "
    "Georgetown Arlington Ashland Dover Oxford Jackson Burlington Manchester Milton Auburn",
    "domain": "gmail.com yahoo.com outlook.com hotmail.com icloud.com example.org mail.com",
}

# r(i, salt, n): a fixed pseudo-random integer in [0, n) per row; the same for every run.
GENERATE_SQL = """
CREATE MACRO r(i, k, n) AS (hash(i, k) % n)::BIGINT;
CREATE MACRO pick(xs, i, k) AS xs[1 + r(i, k, len(xs))];
CREATE TABLE customers AS
SELECT i AS id, f AS first_name, l AS last_name,
  CASE WHEN r(i, 'en', 50) > 0
    THEN lower(f || '.' || l || i::VARCHAR || '@' || pick($domain, i, 'd')) END AS email,
  CASE WHEN r(i, 'pf', 10) < 6 THEN printf('(%03d) %03d-%04d', a, b, c)
       WHEN r(i, 'pf', 10) < 8 THEN printf('%03d-%03d-%04d', a, b, c)
       WHEN r(i, 'pf', 10) < 9 THEN printf('+1 %03d %03d %04d', a, b, c) END AS phone,
  (1 + r(i, 'sn', 9999))::VARCHAR || ' ' || pick($street, i, 's') || ' '
    || pick($suffix, i, 'x') AS street,
  pick($city, i, 'c') AS city,
  lpad(r(i, 'z', 100000)::VARCHAR, 5, '0') AS zip,
  CASE WHEN r(i, 'bn', 30) > 0 THEN DATE '1940-01-01' + r(i, 'b', 23000)::INTEGER END
    AS birth_date,
  TIMESTAMP '2015-01-01' + to_seconds(r(i, 'su', 10 * 365 * 86400)) AS signup_at,
  round(pow(r(i, 'am', 1000000) / 1000.0, 1.5) / 10, 2)::DOUBLE AS amount,
  r(i, 'pt', 50000)::INTEGER AS points,
  r(i, 'o', 100) < 35 AS is_subscribed
FROM (SELECT range + 1 AS i, pick($first, range + 1, 'f') AS f, pick($last, range + 1, 'l') AS l,
        200 + r(range + 1, 'pa', 800) AS a, r(range + 1, 'pe', 1000) AS b,
        r(range + 1, 'pl', 10000) AS c FROM range($rows))
ORDER BY id
"""


def generate(rows: int) -> dict[str, Path]:
    """The CSV and Parquet files of `rows` customers, generated once and cached."""
    tag = hashlib.sha1(f"{GENERATE_SQL}{WORDS}".encode()).hexdigest()[:8]  # new data, new name
    paths = {fmt: DATA / f"customers_{rows}_{tag}{FILES[fmt][0]}" for fmt in FORMATS}
    if all(p.exists() for p in paths.values()):
        return paths
    DATA.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute(GENERATE_SQL, {"rows": rows, **{k: v.split() for k, v in WORDS.items()}})
    for fmt, path in paths.items():
        tmp = path.with_name(f".{path.name}.tmp")
        con.execute(f"COPY customers TO '{tmp}' ({FILES[fmt][1]})")
        os.replace(tmp, path)
    con.close()
    print(f"generated {rows:,} rows in {time.perf_counter() - t0:.1f} s: {DATA}")
    return paths


def measure_audience(fmt: str, path: str, work: Path) -> dict:
    from audience.pipeline import run_pipeline
    from audience.project import parse_project

    table = {"name": "customers", "path": path, "primary_key": "id"}
    kind = fmt.split("-")[0]
    raw = {"name": "bench", "sources": [{"name": "bench", "kind": kind, "tables": [table]}]}
    project = parse_project(raw, file=work / "audience.yaml", root=work)
    stage_cpu = StageCpu()
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    run = run_pipeline(project, reporter=stage_cpu)
    total, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    stages = run.results["stages"]
    detail = stages["ingest"]["detail"]["bench_customers"]
    out = {k: stages[k]["seconds"] for k in ("ingest", "profile")} | {"total": total, "cpu": cpu}
    out |= {f"{k}_cpu": stage_cpu.seconds[k] for k in ("ingest", "profile")}
    return out | {k: detail[k] for k in ("rows_loaded", "columns")}


class StageCpu:
    """A pipeline reporter that notes each stage's CPU seconds (DuckDB's threads included)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = 0.0

    def stage_started(self, name: str, steps: int) -> None:
        self._start = cpu_seconds()

    def step_done(self, name: str, label: str) -> None:
        pass

    def stage_finished(self, result) -> None:
        self.seconds[result.name] = cpu_seconds() - self._start


def cpu_seconds() -> float:  # user + system time of all threads of this process
    return sum(resource.getrusage(resource.RUSAGE_SELF)[:2])


def measure_duckdb(fmt: str, path: str) -> dict:
    con = duckdb.connect()
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_{fmt.split('-')[0]}('{path}')")
    read, read_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    con.execute("SUMMARIZE t").fetchall()
    summarize, summarize_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    return {
        "read": read,
        "read_cpu": read_cpu,
        "read_summarize": summarize,
        "read_summarize_cpu": summarize_cpu,
    }


def child(tool: str, fmt: str, path: str, work: str) -> None:
    """Runs in a fresh process: one measurement, printed as JSON with the peak RSS."""
    audience, path = tool == "audience", str(Path(path).resolve())
    result = measure_audience(fmt, path, Path(work)) if audience else measure_duckdb(fmt, path)
    result["rss_mb" if audience else "duckdb_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: a child's ru_maxrss starts from its
    parent's at fork (800 MB when the parent has just generated the data)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_child(tool: str, fmt: str, path: Path, work: Path) -> dict:
    args = [sys.executable, __file__, "--child", tool, fmt, str(path), str(work)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{tool} on {fmt} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    return describe()


def report(rows: int, command: str, results: dict[str, dict], raw: dict[str, dict]) -> str:
    head = [
        "format", "audience ingest s", "audience profile s", "audience run total s",
        "duckdb read s", "duckdb read+summarize s", "ingest / read",
        "(ingest+profile) / (read+summarize)", "run total / (read+summarize)",
        "the same 3 ratios in CPU s", "audience peak RSS MB", "duckdb peak RSS MB",
        f"total < {TARGET_SECONDS:g} s",
        f"ingest <= {TARGET_RATIO:g}x read", f"ingest+profile <= {TARGET_RATIO:g}x",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fmt, m in results.items():
        cells = [
            fmt, f"{m['ingest']:.2f}", f"{m['profile']:.2f}", f"{m['total']:.2f}",
            f"{m['read']:.2f}", f"{m['read_summarize']:.2f}", f"{m['ingest_ratio']:.2f}x",
            f"{m['work_ratio']:.2f}x", f"{m['total_ratio']:.2f}x",
            f"{m['ingest_cpu_ratio']:.2f}x, {m['work_cpu_ratio']:.2f}x, {m['cpu_ratio']:.2f}x",
            f"{m['rss_mb']:.0f}",
            f"{m['duckdb_rss_mb']:.0f}", met(m["total"] < TARGET_SECONDS),
            met(m["ingest_ratio"] <= TARGET_RATIO), met(m["work_ratio"] <= TARGET_RATIO),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")

    def listed(values: list[float], unit: str = "") -> str:
        return f"[{', '.join(f'{v:.2f}{unit}' for v in values)}]"

    runs = "\n".join(
        f"- {f}: audience ingest {listed(r['ingest'])} (CPU {listed(r['ingest_cpu'])}), profile "
        f"{listed(r['profile'])} (CPU {listed(r['profile_cpu'])}), total {listed(r['total'])} "
        f"(CPU {listed(r['cpu'])}); duckdb read {listed(r['read'])} "
        f"(CPU {listed(r['read_cpu'])}), read+summarize {listed(r['read_summarize'])} "
        f"(CPU {listed(r['read_summarize_cpu'])}); ingest / read {listed(r['ingest_ratio'], 'x')}"
        f", (ingest+profile) / (read+summarize) {listed(r['work_ratio'], 'x')}, run total / "
        f"(read+summarize) {listed(r['total_ratio'], 'x')}; the same in CPU seconds: "
        f"{listed(r['ingest_cpu_ratio'], 'x')}, {listed(r['work_cpu_ratio'], 'x')}, "
        f"{listed(r['cpu_ratio'], 'x')}"
        for f, r in raw.items()
    )
    label = f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows:,}"
    intro = (
        f"## Ingest + profile, {label} rows (issue 3)\n\n"
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n- Machine: {machine()}\n"
        f"- Code: {code_version()}; load average before the run: {LOAD:.1f}, after: "
        f"{os.getloadavg()[0]:.1f}\n"
        f"- Command: `{command}`\n- Medians of {len(raw['csv']['total'])} runs, each in a "
        "fresh process (audience in a fresh project folder); the ratios are per run "
        "(audience and DuckDB back to back), then their median. Targets: audience total "
        f"under {TARGET_SECONDS:g} s, ingest within {TARGET_RATIO:g}x of DuckDB's read, ingest "
        f"+ profile within {TARGET_RATIO:g}x of DuckDB's read + SUMMARIZE.\n- Files: `parquet` as "
        "DuckDB writes it (row groups of 122,880 rows), which landing copies as it is; "
        "`parquet-1rg` the same table in one row group (as pyarrow writes up to 1M rows), "
        "which landing reads and writes anew, as it does any Parquet file with a column to "
        "cast or a key to quarantine.\n\n"
    )
    return intro + "\n".join(lines) + f"\n\nIndividual runs (s):\n\n{runs}\n"


def met(yes: bool) -> str:
    return "yes" if yes else "**no**"


def write_section(section: str) -> None:
    """Replace this benchmark's section of RESULTS.md (or append it), keeping the others."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(section.splitlines()[0])}\n.*?(?=^## |\Z)", re.M | re.S)
    text, found = pattern.subn(lambda _: section + "\n", text)
    if not found:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep-data", action="store_true", help="keep audience's run folders")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    paths = generate(args.rows)
    raw: dict[str, dict[str, list[float]]] = {f: {} for f in FORMATS}
    for i in range(args.repeat):
        for fmt in FORMATS:
            work = Path(tempfile.mkdtemp(prefix=f"run-{fmt}-{i}-", dir=DATA))
            a = run_child("audience", fmt, paths[fmt], work)
            if a["rows_loaded"] != args.rows:
                sys.exit(f"{fmt}: audience loaded {a['rows_loaded']} rows, expected {args.rows}")
            if i == 0:
                print(f"{fmt}: landed types {a['columns']}")
            if not args.keep_data:
                shutil.rmtree(work)
            d = run_child("duckdb", fmt, paths[fmt], work)
            ratios = {
                "ingest_ratio": a["ingest"] / d["read"],
                "work_ratio": (a["ingest"] + a["profile"]) / d["read_summarize"],
                "total_ratio": a["total"] / d["read_summarize"],
                "ingest_cpu_ratio": a["ingest_cpu"] / d["read_cpu"],
                "work_cpu_ratio": (a["ingest_cpu"] + a["profile_cpu"]) / d["read_summarize_cpu"],
                "cpu_ratio": a["cpu"] / d["read_summarize_cpu"],
            }
            for key, value in (a | d | ratios).items():
                if key not in ("rows_loaded", "columns"):
                    raw[fmt].setdefault(key, []).append(value)
            print(
                f"{fmt} run {i + 1}: audience ingest {a['ingest']:.2f} s, total "
                f"{a['total']:.2f} s; duckdb read {d['read']:.2f} s, read+summarize "
                f"{d['read_summarize']:.2f} s"
            )
    results = {fmt: {k: statistics.median(v) for k, v in r.items()} for fmt, r in raw.items()}
    command = " ".join([".venv/bin/python", "benchmarks/ingest_profile.py", *sys.argv[1:]])
    section = report(args.rows, command, results, raw)
    print("\n" + section)
    write_section(section)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
