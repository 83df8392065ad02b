"""Measures + segments benchmark: Audience's twelve templates and a three-condition segment
against hand-written DuckDB SQL computing the same numbers from the same Parquet files.

Generates (once, cached in benchmarks/data/measures_<customers>_<activities>/<hash>/, see
measures/generate.py) a 1M-customer profile and 10M activity rows shaped as a run's
`Activity_<name>` tables: 5M orders (`amount`), 3M loyalty entries (`points`), 2M web visits.
Then, in this one process, --repeat times (alternating which side goes first):
- templates: Audience (`MeasureBuilder.compute()` on the files, ingest and unify bypassed, the
  CustomerAttributes table written to Parquet with `Engine.write`) vs one SQL query (two
  group-bys left joined to the profile, `COPY ... TO` Parquet); both from the files to the
  written file, one row per customer with all twelve numbers;
- segment (total_transaction_value > 500, time_since_last_purchase <= 90 and at least 2 web
  visits in the last 30 days): Audience (`SegmentBuilder` over the profile and the attributes
  file, `SegmentBuilder.members_table`, written) vs one SQL query over the attributes file;
and checks that both sides give the same value for every customer and template (doubles to a
relative 1e-9) and the same members. Reports medians, every run and CPU seconds; then runs each
step on each side once more in a fresh process for its peak RSS; and the targets: templates
under 30 s, segment under 1 s, each within 1.5x of the SQL. Timings are wall-clock and noisy
when other work shares the machine: the section records the load average before the run.

    .venv/bin/python benchmarks/measures_segments.py [--customers 1000000]
        [--activities 10000000] [--quick] [--repeat 3] [--threads 2] [--write-results]
        [--show-sql]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
from machine import code_version, describe
from measures import audience_side, generate, sql

from audience.project import Project

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "RESULTS.md"
TARGETS = {"templates": 30.0, "segment": 1.0}  # seconds
TARGET_RATIO = 1.5
STEPS = ("templates", "segment")
SIDES = ("audience", "sql")


def data_for(customers: int, activities: int) -> tuple[Path, dict]:
    """The generated files: data/measures_<c>_<a>/<generator hash>/, made once (under a lock,
    so concurrent runs neither generate twice nor read half-written files)."""
    digest = hashlib.sha1((HERE / "measures" / "generate.py").read_bytes()).hexdigest()[:12]
    out = DATA / f"measures_{customers}_{activities}" / digest
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        meta_path = out / "meta.json"
        if meta_path.exists():
            return out, json.loads(meta_path.read_text())
        shutil.rmtree(out, ignore_errors=True)  # a generation that did not finish
        t0 = time.perf_counter()
        rows = generate.generate(customers, activities, out)
        meta = {"rows": rows, "generator": digest, "seed": generate.SEED}
        meta["seconds"] = round(time.perf_counter() - t0, 1)
        meta_path.write_text(json.dumps(meta))
    print(f"generated {rows} in {meta['seconds']} s: {out}")
    return out, meta


# -- measuring ---------------------------------------------------------------------------------
def _cpu_seconds() -> float:  # user + system, all threads of this process
    return sum(resource.getrusage(resource.RUSAGE_SELF)[:2])


def step_call(
    side: str, step: str, project: Project, data: Path, work: Path, tag: str, threads: int
) -> Callable[[], dict[str, float]]:
    """One step on one side, reading work/<side>_templates_0.parquet for the segment and
    writing work/<side>_<step>_<tag>.parquet."""
    out = work / f"{side}_{step}_{tag}.parquet"
    attributes = work / f"{side}_templates_{'0' if tag == 'rss' else tag}.parquet"
    if side == "audience" and step == "templates":
        return lambda: audience_side.templates(project, data, out)
    if side == "audience":
        return lambda: audience_side.segment(project, data, attributes, out)
    if step == "templates":
        return lambda: sql.templates(data, out, threads)
    return lambda: sql.segment(data, attributes, out, threads)


def measured(call: Callable[[], dict[str, float]]) -> dict[str, float]:
    cpu0 = _cpu_seconds()
    result = call()
    return result | {"cpu": _cpu_seconds() - cpu0}


def run_once(i: int, project: Project, data: Path, work: Path, threads: int) -> dict[str, dict]:
    """One repetition of both steps on both sides, in this process."""
    order = SIDES if i % 2 == 0 else SIDES[::-1]  # alternate who runs first (warm caches)
    return {
        f"{side}_{step}": measured(step_call(side, step, project, data, work, str(i), threads))
        for step in STEPS
        for side in order
    }


def child(side: str, step: str, data: str, work: str, threads: str) -> None:
    """In a fresh process: one step, printed as JSON with the process's peak RSS."""
    project = audience_side.build_project(Path(data), Path(work) / f"ws-{step}", int(threads))
    call = step_call(side, step, project, Path(data), Path(work), "rss", int(threads))
    result = measured(call)
    # Peak RSS of this process (VmHWM): unlike ru_maxrss, it does not start from the parent's
    # RSS at fork (Linux carries ru_maxrss over fork and exec).
    status = Path("/proc/self/status").read_text()
    result["rss"] = int(re.search(r"^VmHWM:\s*(\d+) kB", status, re.M).group(1)) / 1024
    print(json.dumps(result))


def peak_rss(data: Path, work: Path, threads: int) -> dict[str, dict]:
    """Each step on each side once more, in a fresh process: its wall time and peak RSS."""
    out = {}
    for step in STEPS:
        for side in SIDES:
            args = [sys.executable, __file__, "--child", side, step, str(data), str(work)]
            done = subprocess.run([*args, str(threads)], capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{side} {step} failed in a child process:\n{done.stderr[-5000:]}")
            out[f"{side}_{step}"] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def check(work: Path, repeat: int) -> dict:
    """Audience against SQL, every repetition: differing values per template, members."""
    columns = list(audience_side.TEMPLATES)
    differing: dict[str, int] = {}
    sizes = set()
    members_differ = 0
    for i in range(repeat):
        diff = sql.compare(
            work / f"audience_templates_{i}.parquet", work / f"sql_templates_{i}.parquet", columns
        )
        for key, n in diff.items():
            differing[key] = differing.get(key, 0) + n
        a, s, d = sql.same_members(
            work / f"audience_segment_{i}.parquet", work / f"sql_segment_{i}.parquet"
        )
        sizes.add((a, s))
        members_differ += d
    types = [
        {f.name: str(f.type) for f in pq.read_schema(work / f"{side}_templates_0.parquet")}
        for side in SIDES
    ]
    retyped = [
        f"{c} {types[0][c]} (SQL: {types[1][c]})" for c in columns if types[0][c] != types[1][c]
    ]
    return {
        "differing": differing,
        "sizes": sorted(sizes),
        "members_differ": members_differ,
        "types": retyped,
    }


# -- reporting ---------------------------------------------------------------------------------
def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n:,}"


def report(
    args: argparse.Namespace, meta: dict, runs: list[dict], rss: dict, checked: dict, load: str
) -> tuple[str, bool]:
    """The RESULTS.md section, and whether every target was met."""
    med = {k: {m: statistics.median(r[k][m] for r in runs) for m in runs[0][k]} for k in runs[0]}
    size = checked["sizes"][0][0]
    head = ["step", "Audience s", "SQL s", "ratio", "Audience CPU s", "SQL CPU s",
            "Audience peak RSS MB", "SQL peak RSS MB", "target", "met"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdicts = []
    names = {
        "templates": f"twelve templates ({meta['rows']['profile']:,} customers written)",
        "segment": f"three-condition segment ({size:,} members written)",
    }
    for step in STEPS:
        a, s = med[f"audience_{step}"], med[f"sql_{step}"]
        ratio = a["total"] / s["total"]
        fast, close = a["total"] < TARGETS[step], ratio <= TARGET_RATIO
        verdicts += [fast, close]
        peaks = [rss[f"{side}_{step}"]["rss"] for side in SIDES]
        cells = [
            names[step], f"{a['total']:.2f}", f"{s['total']:.2f}", f"{ratio:.2f}x",
            f"{a['cpu']:.1f}", f"{s['cpu']:.1f}", f"{peaks[0]:.0f}", f"{peaks[1]:.0f}",
            f"< {TARGETS[step]:g} s, <= {TARGET_RATIO:g}x",
            f"{'yes' if fast else 'no'}, {'yes' if close else 'no'}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")

    def listed(key: str, what: str = "total") -> str:
        return "[" + ", ".join(f"{r[key][what]:.2f}" for r in runs) + "]"

    every = "; ".join(f"{k.replace('_', ' ')} {listed(k)}" for k in runs[0])
    builds = ", ".join(
        f"{step} {statistics.median(r[f'audience_{step}']['build'] for r in runs):.2f} s"
        for step in STEPS
    )
    differing = sum(checked["differing"].values())
    cells = meta["rows"]["profile"] * len(audience_side.TEMPLATES) * len(runs)
    rows = meta["rows"]
    activities = rows["orders"] + rows["loyalty"] + rows["visits"]
    text = "\n".join([
        f"## Measures + segments, {label(rows['profile'])} customers, "
        f"{label(activities)} activities",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; code: {code_version()}; load "
        f"average before the run: {load}",
        f"- Machine: {describe()}",
        f"- Command: `{args.command}`",
        f"- Data (`benchmarks/measures/generate.py`, generator {meta['generator']}, seed "
        f"{meta['seed']}, {meta['seconds']} s to generate): {rows['profile']:,} customers; "
        f"{rows['orders']:,} orders, {rows['loyalty']:,} loyalty entries, {rows['visits']:,} "
        "web visits over 3 years, as `Activity_<name>` Parquet files.",
        f"- Medians of {len(runs)} runs in one process, DuckDB {args.threads} threads on both "
        "sides; each side from the Parquet files to its result written as Parquet. Audience: "
        "`MeasureBuilder.compute()` + `Engine.write`; "
        "`SegmentBuilder.members_table` + `Engine.write` (ingest and unify bypassed). SQL: "
        "`benchmarks/measures/sql.py`. Peak RSS: one more run of each step on each side, "
        "each in a fresh process (its VmHWM, about 130 MB of which is Python with Ibis "
        "and DuckDB imported).",
        "",
        *lines,
        "",
        f"Targets (templates under {TARGETS['templates']:g} s, within {TARGET_RATIO:g}x; "
        f"segment under {TARGETS['segment']:g} s, within {TARGET_RATIO:g}x): "
        + ", ".join("met" if v else "not met" for v in verdicts) + ".",
        "",
        f"Same numbers: {differing:,} of {cells:,} template values differ between Audience and "
        f"SQL ({len(runs)} runs); segment sizes (Audience, SQL) {checked['sizes']}, "
        f"{checked['members_differ']} customers in one but not the other."
        + (
            " Parquet types that differ (values compared as numbers): "
            + ", ".join(checked["types"]) + "."
            if checked["types"]
            else ""
        ),
        "",
        f"Individual runs (s): {every}. Audience's share spent building the Ibis expressions "
        f"in Python (median): {builds}. The fresh-process runs for peak RSS took (s): "
        + ", ".join(f"{k.replace('_', ' ')} {v['total']:.2f}" for k, v in rss.items()) + ".",
        "",
    ])  # fmt: skip
    return text, all(verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="100k customers, 1M activities")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads, both sides")
    parser.add_argument("--write-results", action="store_true", help="into RESULTS.md")
    parser.add_argument("--show-sql", action="store_true", help="print the SQL Ibis generates")
    parser.add_argument("--keep", action="store_true", help="keep the outputs (work folder)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    if args.quick:
        args.customers, args.activities = 100_000, 1_000_000
    args.command = " ".join([".venv/bin/python", "benchmarks/measures_segments.py", *sys.argv[1:]])
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])

    data, meta = data_for(args.customers, args.activities)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=data))
    project = audience_side.build_project(data, work / "workspace", args.threads)
    runs = []
    for i in range(args.repeat):
        runs.append(run_once(i, project, data, work, args.threads))
        print(
            f"run {i + 1}: "
            + ", ".join(f"{k.replace('_', ' ')} {v['total']:.2f} s" for k, v in runs[-1].items()),
            flush=True,
        )
    if args.show_sql:
        generated = audience_side.generated_sql(
            project, data, work / "audience_templates_0.parquet"
        )
        for step, text in generated.items():
            print(f"\n-- Ibis SQL, {step}:\n{text}")
    checked = check(work, args.repeat)
    rss = peak_rss(data, work, args.threads)
    section, met = report(args, meta, runs, rss, checked, load)
    print("\n" + section)
    if any(checked["differing"].values()) or checked["members_differ"]:
        print(f"MISMATCH: {checked}")
    if args.write_results:
        from machine import write_section

        write_section(section)
        print(f"written to {RESULTS}")
    if args.keep:
        print(f"outputs kept in {work}")
    else:
        shutil.rmtree(work)
    if not met:
        print("not every target was met")


if __name__ == "__main__":
    main()
