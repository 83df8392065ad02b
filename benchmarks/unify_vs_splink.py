"""Unify benchmark (issue 4): Audience vs Splink 5 on the same generated customer data.

For each --records N: generates 3 sources with known true persons (cached in
benchmarks/data/unify_N/, see unify/generate.py), then runs, each in a fresh child process that
reports its own wall time and peak RSS:
- Audience through `run_audience` (a hook, below);
- Splink 5 with DuckDB, its documented probabilistic setup (unify/splink_runner.py), clusters at
  match probability 0.9 plus a sweep of thresholds on the same predictions;
- an exact-rules baseline in plain DuckDB (same email OR phone OR first+last+birth date).
Scores pairwise and cluster precision/recall/F1 (unify/metrics.py) and writes its section of
RESULTS.md, one subsection per size (other sizes and other sections are kept).

    .venv/bin/python benchmarks/unify_vs_splink.py --records 100000 [--records 1000000]
        [--skip-audience] [--skip-splink]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from machine import describe
from unify import generate, metrics, prepare, splink_runner

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "RESULTS.md"
HEADING = "## Unify vs Splink (issue 4)"
TARGET_F1, TARGET_RATIO = 0.98, 0.5


def run_audience(data_dir: Path, work_dir: Path) -> pa.Table:
    """HOOK for the lead: Audience from ingest to published profiles on the generated data.

    data_dir holds crm.csv (key column contact_id), shop.parquet (account_id) and loyalty.csv
    (member_no); work_dir is an empty folder for the Audience project and its workspace. Return
    one row per input record: source ("crm" | "shop" | "loyalty"), key (the record's id as a
    string) and cluster_id (the customer it was unified into; any type). Records left out
    count as singletons. The caller times this call in a fresh process and reads its peak RSS.
    """
    from unify import audience_runner

    return audience_runner.run(data_dir, work_dir)


def child(tool: str, data_dir: Path, work_dir: Path) -> dict:
    """Runs in a fresh process; writes work_dir/<tool>.parquet (source, key, cluster_id)."""
    if tool == "splink":
        return splink_runner.run(data_dir, work_dir)
    t0, cpu0 = time.perf_counter(), splink_runner.cpu_s()
    if tool == "audience":
        table = run_audience(data_dir, work_dir)
    else:
        table = prepare.exact_rules(data_dir)
    wall, cpu = time.perf_counter() - t0, splink_runner.cpu_s() - cpu0
    result = {"wall": wall, "cpu": cpu, "rss_mb": splink_runner.rss_mb()}
    pq.write_table(table.select(["source", "key", "cluster_id"]), work_dir / f"{tool}.parquet")
    return result


def run_child(tool: str, data_dir: Path, work_dir: Path) -> dict:
    print(f"  {tool} ...", flush=True)
    args = [sys.executable, __file__, "--child", tool, str(data_dir), str(work_dir)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        hint = " (use --skip-audience until run_audience is wired)" if tool == "audience" else ""
        sys.exit(f"{tool} failed{hint}:\n{done.stderr[-5000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"  {tool}: {result['wall']:.1f} s ({result['cpu']:.1f} s CPU), "
        f"peak RSS {result['rss_mb']:.0f} MB",
        flush=True,
    )
    return result


def data_for(n: int) -> tuple[Path, dict]:
    """The generated data set of n records: data/unify_<n>/<generator hash>/, made once (under a
    lock, so concurrent runs neither generate twice nor delete data another run is reading)."""
    src = [HERE / "unify" / f for f in ("generate.py", "formats.py", "names.py")]
    digest = hashlib.sha1(b"".join(p.read_bytes() for p in src)).hexdigest()[:12]
    out = DATA / f"unify_{n}" / digest
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        meta_path = out / "meta.json"
        if meta_path.exists():
            return out, json.loads(meta_path.read_text())
        shutil.rmtree(out, ignore_errors=True)  # a generation that did not finish
        t0 = time.perf_counter()
        meta = generate.generate(n, out) | {"generator": digest, "seed": generate.SEED}
        meta["seconds"] = round(time.perf_counter() - t0, 1)
        meta_path.write_text(json.dumps(meta))
    print(f"generated {n:,} records ({meta['persons']:,} persons) in {meta['seconds']} s: {out}")
    return out, meta


def machine() -> str:
    import splink

    return describe(f", Splink {splink.__version__}")


def commit() -> str:
    git = ["git", "-C", str(HERE.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "audience"], capture_output=True)
    return f"commit {head.stdout.strip()}" + (
        " + uncommitted audience/ changes" * bool(dirty.stdout)
    )


def fmt_row(name: str, run: dict | None, m: dict | None, note: str = "") -> str:
    if m is None:
        return f"| {name} | {note or 'not run'} |" + " |" * 9
    cells = [f"{run['wall']:.1f}", f"{run['cpu']:.1f}", f"{run['rss_mb']:.0f}"] if run else [""] * 3
    keys = ("pair_p", "pair_r", "pair_f1", "cluster_p", "cluster_r", "cluster_f1")
    cells += [f"{m[k]:.4f}" for k in keys] + [note]
    return f"| {name} | " + " | ".join(cells) + " |"


def subsection(n: int, meta: dict, command: str, load: str, rows: list[str], notes: list[str]):
    head = ["tool", "wall s", "CPU s", "peak RSS MB", "pair P", "pair R", "pair F1", "cluster P",
            "cluster R", "cluster F1", "note"]  # fmt: skip
    return "\n".join([
        f"### {n:,} records", "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; code: {commit()}; "
        f"load average before the run: {load}",
        f"- Machine: {machine()}",
        f"- Command: `{command}`",
        f"- Data: {meta['records']:,} records of {meta['persons']:,} true persons "
        f"(generator {meta['generator']}, seed {meta['seed']}, {meta['seconds']} s to generate)",
        "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows, "", *notes, "",
    ])  # fmt: skip


INTRO = f"""{HEADING}

Generated data (`benchmarks/unify/generate.py`): 3 sources with different column names and
formats (crm.csv, shop.parquet, loyalty.csv), about N/2.2 true persons in 1-3 sources (10% twice
in one), with typos, nicknames, phone and address formats, per-source missing values, second
emails and phones, movers, new surnames and households (shared surname, address, sometimes a
landline or family email). Since generator e2eb0e9d1055 each person's mailbox is unique under
Gmail's rule (the generator gave f.s@gmail.com and fs@gmail.com, one mailbox, to two people) and
children's birth dates are folded, not clipped, at the end of the range (the clip gave 4,916
crm records at 1M the birth date 2005-09-16). Each tool runs in a fresh process; wall time and
peak RSS are its own (worker processes included), with whatever else runs on the machine (the
load is given). Splink: DuckDB backend, `unify/splink_runner.py` (timed from reading the files
to the clusters at 0.9; the sweep is on the same predictions, untimed). Exact rules: same
normalised email OR phone digits OR first name + surname + birth date, connected components,
plain DuckDB. Targets at 1M on 2 cores: Audience cluster F1 >= {TARGET_F1} and above Splink's
best threshold, wall time and peak RSS at most {TARGET_RATIO:g}x Splink's.
"""


def write_section(new: dict[int, str]) -> None:
    """Replace this benchmark's subsections for the sizes run (keep other sizes, sections)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.M | re.S)
    old = pattern.search(text)
    subs = {}
    if old:
        for part in re.split(r"^(?=### )", old.group(0), flags=re.M)[1:]:
            size = int(re.match(r"### ([\d,]+) records", part).group(1).replace(",", ""))
            subs[size] = part.rstrip("\n") + "\n"
    for size, part in new.items():
        ran = "| Audience | not run" not in subs.get(size, "| Audience | not run")
        if ran and "| Audience | not run" in part:  # keep a run with Audience in it
            print(f"kept the {size:,} subsection of RESULTS.md: it has Audience results")
        else:
            subs[size] = part
    section = INTRO + "\n" + "\n".join(subs[k] for k in sorted(subs))
    if old:
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def bench(n: int, args: argparse.Namespace, command: str) -> str:
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    data_dir, meta = data_for(n)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=data_dir))  # this run's own
    truth = pq.read_table(data_dir / "truth.parquet")
    score = lambda path: metrics.score(pq.read_table(path), truth)  # noqa: E731
    runs = {t: run_child(t, data_dir, work) for t in ("audience", "splink", "rules")
            if not getattr(args, f"skip_{t}", False)}  # fmt: skip
    rows, notes = [], []
    aud = score(work / "audience.parquet") if "audience" in runs else None
    rows.append(fmt_row("Audience", runs.get("audience"), aud))
    if "splink" in runs:
        s = runs["splink"]
        sweep = {t: score(work / f"splink_{t}.parquet") for t in splink_runner.SWEEP}
        best = max(sweep, key=lambda t: sweep[t]["cluster_f1"])
        rows.append(fmt_row("Splink, threshold 0.9", s, sweep[0.9]))
        rows.append(fmt_row(f"Splink, best threshold {best}", s, sweep[best], "same run"))
        notes.append("Splink cluster F1 by threshold: " + ", ".join(
            f"{t}: {m['cluster_f1']:.4f}" for t, m in sweep.items()) + ".")  # fmt: skip
        notes.append(f"Splink stages (s): {s['stages']}; {s['pairs_scored_at_0.5']:,} pairs "
                     f"above 0.5; DuckDB threads {s['duckdb_threads']}; peak RSS after the "
                     f"sweep {s['rss_mb_after_sweep']:.0f} MB.")  # fmt: skip
        if aud:
            ok = [aud["cluster_f1"] >= TARGET_F1 and aud["cluster_f1"] > sweep[best]["cluster_f1"],
                  runs["audience"]["wall"] <= TARGET_RATIO * s["wall"],
                  runs["audience"]["rss_mb"] <= TARGET_RATIO * s["rss_mb"]]  # fmt: skip
            notes.append("Targets (cluster F1, wall time, peak RSS): " + ", ".join(
                "met" if x else "not met" for x in ok) + ".")  # fmt: skip
    rows.append(fmt_row("Exact rules (DuckDB)", runs.get("rules"),
                        score(work / "rules.parquet") if "rules" in runs else None))  # fmt: skip
    section = subsection(n, meta, command, load, rows, notes)
    shutil.rmtree(work)
    print("\n" + section)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="default: 100000")
    parser.add_argument("--skip-audience", action="store_true")
    parser.add_argument("--skip-splink", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, data_dir, work_dir = args.child
        print(json.dumps(child(tool, Path(data_dir), Path(work_dir))))
        return
    command = " ".join([".venv/bin/python", "benchmarks/unify_vs_splink.py", *sys.argv[1:]])
    sections = {n: bench(n, args, command) for n in args.records or [100_000]}
    write_section(sections)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
