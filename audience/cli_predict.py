"""`audience predictions`: each model of the current run, its quality against its baseline
and its grade (or why it was not trained)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from rich.table import Table

from audience.cli import ProjectOption, _fail, _load, app, console
from audience.cli_analytics import _current


@app.command()
def predictions(project_file: ProjectOption = Path("audience.yaml")) -> None:
    """Each prediction model: what it was measured on, against which baseline, its grade."""
    project = _load(project_file)
    run = _current(project)
    if "PredictionQuality" not in run.tables:
        _fail(f"run {run.id} has no predictions (a predictions: section in {project_file})")
    rows = pq.read_table(run.table_path("PredictionQuality")).to_pylist()
    table = Table(title=f"predictions of run {run.id}")
    for column in ("model", "metric", "value", "baseline", "baseline value", "grade", "on"):
        right = column in ("value", "baseline value", "on")
        table.add_column(column, justify="right" if right else "left")
    for row in rows:
        detail = json.loads(row["Detail"] or "{}")
        if row["Status"] != "trained":
            table.add_row(
                row["Model"],
                row["Kind"],
                "[yellow]not trained[/]",
                "",
                detail.get("reason", ""),
                "",
                "",
            )
            continue
        value, base = row["Value"], row["BaselineValue"]
        table.add_row(
            row["Model"],
            row["Metric"],
            f"{value:.3f}" if value is not None and value < 10 else f"{value:,.0f}",
            row["Baseline"] or "",
            "" if base is None else f"{base:.3f}",
            row["Grade"] or "-",
            f"{row['EvaluatedOn']:,}",
        )
    console.print(table)
