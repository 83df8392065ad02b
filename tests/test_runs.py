"""Runs: folders, run_results.json, the atomic current pointer, failed and killed runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from audience.ingest import SourceError
from audience.pipeline import Stage, run_pipeline, stage_order
from audience.runs import RunError, Workspace
from conftest import make_project


def csv_source(path: str = "crm.csv") -> dict:
    return {
        "name": "crm",
        "kind": "csv",
        "tables": [{"name": "contacts", "path": path, "primary_key": "id"}],
    }


def test_successful_run_becomes_current_with_results(tmp_path):
    (tmp_path / "crm.csv").write_text("id,name\n1,Ann\n2,Bob\n2,Dup\n")
    project = make_project(tmp_path, [csv_source()])
    run = run_pipeline(project)
    ws = Workspace(project.workspace_path)
    assert ws.current_id() == run.id and run.status == "succeeded"
    results = json.loads((run.path / "run_results.json").read_text())
    assert results["status"] == "succeeded" and results["engine"] == "duckdb"
    ingest = results["stages"]["ingest"]
    assert ingest["status"] == "ok" and ingest["seconds"] >= 0
    assert ingest["rows"] == {"crm_contacts": 2, "Quarantine": 1}
    assert ingest["detail"]["crm_contacts"]["rows_in"] == 3
    assert results["stages"]["profile"]["rows"] == {"SourceProfile": 2}
    assert set(results["tables"]) == {"crm_contacts", "Quarantine", "SourceProfile"}
    path = ws.current().table_path("crm_contacts")
    assert duckdb.sql(f"SELECT count(*) FROM '{path}'").fetchone()[0] == 2


def test_failed_run_leaves_last_good_run_current(tmp_path):
    (tmp_path / "crm.csv").write_text("id,name\n1,Ann\n")
    project = make_project(tmp_path, [csv_source()])
    good = run_pipeline(project)
    (tmp_path / "crm.csv").unlink()
    with pytest.raises(SourceError, match="file not found"):
        run_pipeline(project)
    ws = Workspace(project.workspace_path)
    assert ws.current_id() == good.id
    failed = ws.runs()[0]
    assert failed.id != good.id and failed.status == "failed"
    assert "stage 'ingest' failed" in failed.results["error"]
    assert failed.results["stages"]["ingest"]["status"] == "failed"
    assert failed.results["stages"]["profile"]["status"] == "pending"
    # the good run's tables are untouched
    assert ws.current().table_path("crm_contacts").exists()


def test_killed_run_is_reported_and_current_unchanged(tmp_path):
    (tmp_path / "crm.csv").write_text("id,name\n1,Ann\n")
    project = make_project(tmp_path, [csv_source()])
    good = run_pipeline(project)
    # A run process that hangs inside a stage, then is killed.
    script = textwrap.dedent(f"""
        import time
        from audience import pipeline
        from conftest import make_project
        from pathlib import Path
        project = make_project(Path({str(tmp_path)!r}), [{csv_source()!r}])
        pipeline.STAGES.append(pipeline.Stage("hang", lambda ctx, r: time.sleep(60), ("profile",)))
        pipeline.run_pipeline(project)
    """)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(__file__)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    ws = Workspace(project.workspace_path)
    deadline = time.time() + 60
    while time.time() < deadline:
        runs = ws.runs()
        if (
            runs
            and runs[0].id != good.id
            and runs[0].results["stages"].get("hang", {}).get("status") == "pending"
            and runs[0].results["stages"]["profile"]["status"] == "ok"
        ):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    newest = ws.runs()[0]
    assert newest.id != good.id and newest.status == "killed"
    assert ws.current_id() == good.id


def test_keep_runs_prunes_old_runs(tmp_path):
    (tmp_path / "crm.csv").write_text("id\n1\n")
    project = make_project(tmp_path, [csv_source()], keep_runs=2)
    ids = [run_pipeline(project).id for _ in range(3)]
    assert [r.id for r in Workspace(project.workspace_path).runs()] == ids[:0:-1]


def test_unknown_table_and_no_runs(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(RunError, match="no finished run yet"):
        ws.current()
    (tmp_path / "crm.csv").write_text("id\n1\n")
    run = run_pipeline(make_project(tmp_path, [csv_source()]))
    with pytest.raises(RunError, match="has no table 'Nope'; tables are: Quarantine"):
        run.table_path("Nope")


def test_stage_order_follows_needs():
    def noop(ctx, result):
        return None

    stages = [Stage("c", noop, ("b",)), Stage("a", noop), Stage("b", noop, ("a",))]
    assert [s.name for s in stage_order(stages)] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="circular"):
        stage_order([Stage("x", noop, ("y",)), Stage("y", noop, ("x",))])
