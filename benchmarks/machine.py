"""The machine a benchmark ran on, for benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import duckdb


def describe(extra: str = "") -> str:
    """'2 cores (nproc), 23.5 GiB RAM, <CPU>; Python x, DuckDB y' plus `extra`."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    kib = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return (
        f"{len(os.sched_getaffinity(0))} cores (nproc), {kib / 1024**2:.1f} GiB RAM, "
        f"{model.group(1) if model else platform.processor() or 'unknown CPU'}; "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}{extra}"
    )


RESULTS = Path(__file__).parent / "RESULTS.md"


def write_section(section: str) -> None:
    """Replace the RESULTS.md section with this heading (its first line), or append it."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    heading = section.splitlines()[0]
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.M | re.S)
    text, found = pattern.subn(lambda _: section.rstrip("\n") + "\n\n", text)
    if not found:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def git(*args: str) -> str:
    """A git command's output, run in the repository root."""
    root = Path(__file__).parent.parent
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout


def code_version() -> str:
    """'commit abc1234', plus a mark when audience/ has uncommitted changes."""
    dirty = (
        " (+ uncommitted changes to audience/)" if git("status", "--porcelain", "audience") else ""
    )
    return f"commit {git('rev-parse', '--short', 'HEAD').strip()}{dirty}"
