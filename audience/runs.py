"""Run folders in the workspace and the atomic "current" pointer.

    <workspace>/runs/<run id>/          everything one run wrote
        run_results.json                status, stage timings, row counts, table catalogue
        sources/ quarantine/ tables/    landed sources, rejected rows, output tables
    <workspace>/current                 the id of the last good run (replaced atomically)

A run writes only inside its own folder. It becomes current when it has finished, by writing
the new id to a temporary file and renaming it over `current` (atomic on POSIX), so readers
see the old run or the new one, never a mix, and a failed or killed run leaves the last good
run current.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class RunError(Exception):
    pass


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class StageResult:
    name: str
    status: str = "pending"  # pending, running, ok, failed, skipped
    started: str | None = None
    seconds: float | None = None
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows written
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Run:
    """One run's folder; stages record their results here."""

    def __init__(self, workspace: Workspace, run_id: str, results: dict[str, Any]):
        self.workspace = workspace
        self.id = run_id
        self.results = results

    @property
    def path(self) -> Path:
        return self.workspace.runs_dir / self.id

    @property
    def status(self) -> str:
        status = self.results.get("status", "unknown")
        if status == "running" and not pid_alive(int(self.results.get("pid", 0))):
            return "killed"
        return status

    # Tables of a run are named in the catalogue: name -> path relative to the run folder.
    @property
    def tables(self) -> dict[str, str]:
        return self.results.setdefault("tables", {})

    def table_path(self, name: str) -> Path:
        if name not in self.tables:
            known = ", ".join(sorted(self.tables)) or "none"
            raise RunError(f"run {self.id} has no table '{name}'; tables are: {known}")
        return self.path / self.tables[name]

    def add_table(self, name: str, relative_path: str) -> None:
        self.tables[name] = relative_path

    def stage(self, name: str) -> StageResult:
        return StageResult(**self.results["stages"][name])

    def record_stage(self, stage: StageResult) -> None:
        self.results["stages"][stage.name] = stage.__dict__.copy()
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path / "run_results.json", self.results)

    def finish(self, publish: bool = True) -> None:
        """Mark the run succeeded and, unless it is a dry run, make it current."""
        self.results["status"] = "succeeded"
        self.results["published"] = publish
        self.results["finished"] = utc_now()
        self.results["seconds"] = round(time.time() - self.results["started_unix"], 3)
        self.save()
        if publish:
            self.workspace.set_current(self.id)
        self.workspace.prune()

    def fail(self, error: str) -> None:
        self.results["status"] = "failed"
        self.results["finished"] = utc_now()
        self.results["seconds"] = round(time.time() - self.results["started_unix"], 3)
        self.results["error"] = error
        self.save()


class Workspace:
    def __init__(self, root: Path, keep_runs: int = 10):
        self.root = root
        self.keep_runs = keep_runs

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def start_run(self, stages: list[str], engine: str, project_name: str) -> Run:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        # Sortable by time (to the microsecond), unique across processes.
        now = datetime.now(UTC)
        run_id = f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z-{secrets.token_hex(2)}"
        results = {
            "run_id": run_id,
            "project": project_name,
            "engine": engine,
            "status": "running",
            "pid": os.getpid(),
            "started": utc_now(),
            "started_unix": time.time(),
            "stages": {s: StageResult(s).__dict__.copy() for s in stages},
            "tables": {},
        }
        run = Run(self, run_id, results)
        run.path.mkdir(parents=True)
        run.save()
        return run

    def set_current(self, run_id: str) -> None:
        tmp = self.root / f".current.{os.getpid()}.tmp"
        tmp.write_text(run_id + "\n", encoding="utf-8")
        os.replace(tmp, self.root / "current")

    def current_id(self) -> str | None:
        try:
            return (self.root / "current").read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def load(self, run_id: str) -> Run:
        path = self.runs_dir / run_id / "run_results.json"
        try:
            return Run(self, run_id, json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise RunError(f"no run '{run_id}' in {self.runs_dir}") from None

    def current(self) -> Run:
        run_id = self.current_id()
        if run_id is None:
            raise RunError(f"no finished run yet in {self.root}; start one with 'audience run'")
        return self.load(run_id)

    def runs(self) -> list[Run]:
        """All runs, newest first."""
        if not self.runs_dir.exists():
            return []
        runs = [
            self.load(folder.name)
            for folder in self.runs_dir.iterdir()
            if (folder / "run_results.json").exists()
        ]
        return sorted(runs, key=lambda r: (r.results.get("started_unix", 0), r.id), reverse=True)

    def prune(self) -> None:
        """Keep the newest `keep_runs` finished runs (and always the current one)."""
        current = self.current_id()
        finished = [r for r in self.runs() if r.status != "running"]
        for run in finished[self.keep_runs :]:
            if run.id != current:
                shutil.rmtree(run.path, ignore_errors=True)
