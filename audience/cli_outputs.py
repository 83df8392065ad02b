"""`audience sql`, `audience export-run` and `audience export-segment`: reach the current run's
tables from SQL and send results out on demand."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import duckdb
import typer
from rich.table import Table

from audience.cli import USER_ERRORS, ProjectOption, _fail, _load, app, console
from audience.runs import Workspace
from audience.warehouse import create_views


def _print_relation(relation: duckdb.DuckDBPyRelation, limit: int) -> None:
    rows = relation.limit(limit + 1).fetchall()
    table = Table(show_lines=False)
    for column in relation.columns:
        table.add_column(column, overflow="fold")
    for row in rows[:limit]:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    more = " (more not shown; use --limit)" if len(rows) > limit else ""
    console.print(f"{min(len(rows), limit)} row(s){more}")


@app.command()
def sql(
    command: Annotated[
        str | None, typer.Option("-c", "--command", help="Run this query and exit.")
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="Print the result as CSV.")] = False,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 50,
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """Query the current run's tables with SQL (DuckDB): every table is a view, plus
    CustomerDimension (profile, measures, segments, predictions per customer). Without -c,
    an interactive prompt; end statements with ';'."""
    project = _load(project_file)
    try:
        run = Workspace(project.workspace_path).current()
    except USER_ERRORS as e:
        _fail(str(e))
    con = duckdb.connect()
    views = create_views(con, run)

    def execute(query: str) -> None:
        try:
            relation = con.sql(query)
        except duckdb.Error as e:
            err = str(e).splitlines()
            console.print(f"[red]error:[/] {err[0]}", highlight=False)
            for line in err[1:]:
                console.print(line, highlight=False, markup=False)
            return
        if relation is None:
            return
        if csv:
            import pyarrow.csv as pacsv

            sys.stdout.flush()
            pacsv.write_csv(relation.fetch_arrow_table(), sys.stdout.buffer)
        else:
            _print_relation(relation, limit)

    if command is not None:
        execute(command)
        return
    console.print(f"run {run.id}: {', '.join(views)}. End statements with ';', quit with \\q.")
    buffer: list[str] = []
    while True:
        try:
            line = input("audience> " if not buffer else "     ...> ")
        except EOFError:
            break
        if line.strip() in ("\\q", "quit", "exit") and not buffer:
            break
        buffer.append(line)
        if line.rstrip().endswith(";"):
            execute("\n".join(buffer))
            buffer = []


@app.command("export-run")
def export_run(
    names: Annotated[list[str], typer.Argument(help="Exports (by name) from the project file.")],
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """Carry out exports of the project file on the current run now (any `when`)."""
    from audience.export import ExportError, run_export

    project = _load(project_file)
    by_name = {e.name: e for e in project.exports}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        _fail(f"no export {', '.join(unknown)}; exports: {', '.join(by_name) or 'none'}", code=2)
    try:
        run = Workspace(project.workspace_path).current()
        for name in names:
            summary = run_export(project, run, by_name[name])
            console.print(f"[bold]{name}[/]: {_summary(summary)}", highlight=False)
    except (*USER_ERRORS, ExportError) as e:
        _fail(str(e))


@app.command("export-segment")
def export_segment(
    segment: Annotated[str, typer.Argument(help="A segment of the project.")],
    to: Annotated[Path, typer.Option("--to", help="File to write: .csv or .parquet.")],
    fields: Annotated[
        str, typer.Option(help="Comma-separated profile fields and measures to include.")
    ] = "",
    changes: Annotated[
        bool, typer.Option(help="Only who entered or left since the last such export.")
    ] = False,
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """Write a segment's members (with chosen fields) to a file now. Exports kept in the
    project file run with `audience export-run NAME` or after each run."""
    from audience.export import ExportError, run_export
    from audience.export.config import SegmentExport

    project = _load(project_file)
    if to.suffix.lower() not in (".csv", ".parquet"):
        _fail(f"--to {to}: use a .csv or .parquet file", code=2)
    export = SegmentExport(
        kind="segment",
        name=f"cli_{segment}",
        when="manual",
        segment=segment,
        fields=[f.strip() for f in fields.split(",") if f.strip()],
        mode="changes" if changes else "full",
        file={"path": str(to.resolve())},
    )
    try:
        run = Workspace(project.workspace_path).current()
        summary = run_export(project, run, export)
    except (*USER_ERRORS, ExportError) as e:
        _fail(str(e))
    console.print(f"{segment} -> {to}: {_summary(summary)}", highlight=False)


def _summary(summary: dict) -> str:
    parts = []
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        parts.append(f"{key}: {value}")
    return "; ".join(parts)
