"""The `audience` command line: typer commands over the project, pipeline and runs modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TimeElapsedColumn
from rich.table import Table

from audience.engine import Engine, EngineError
from audience.ingest import SourceError, ingest_table, landing_connection
from audience.pipeline import run_pipeline
from audience.profile import profile_table
from audience.project import Project, ProjectError, load_project
from audience.runs import RunError, StageResult, Workspace
from audience.starter import write_starter
from audience.validate import validate_project

app = typer.Typer(
    help="Audience: connect customer data sources, unify them into customer profiles, and "
    "publish the results. Commands read the project file audience.yaml in the current folder "
    "(or the one given with --project).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

ProjectOption = Annotated[Path, typer.Option("--project", "-p", help="Project file or its folder.")]
EngineOption = Annotated[
    str | None,
    typer.Option("--engine", "-e", help="Override the project's engine: duckdb or spark."),
]
USER_ERRORS = (ProjectError, SourceError, RunError, EngineError)


def _load(path: Path) -> Project:
    try:
        return load_project(path)
    except ProjectError as e:
        _fail(f"{e.file} is not valid:", *e.problems, code=2)


def _fail(*lines: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {lines[0]}", highlight=False)
    for line in lines[1:]:
        err.print(f"  {line}", highlight=False, markup=False)
    raise typer.Exit(code)


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Folder for the new project.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite an existing audience.yaml.")] = False,
) -> None:
    """Write a commented starter project (audience.yaml and a small sample CSV)."""
    try:
        written = write_starter(folder, force=force)
    except FileExistsError as e:
        _fail(str(e), "use --force to overwrite it")
    for path in written:
        console.print(f"wrote {path}")
    console.print(
        "next: edit audience.yaml, then run [bold]audience validate[/] and [bold]audience run[/]"
    )


@app.command()
def validate(project_file: ProjectOption = Path("audience.yaml")) -> None:
    """Check the project file: its structure, and that every table and column it names exists."""
    project = _load(project_file)
    problems = validate_project(project)
    if problems:
        _fail(f"{len(problems)} problem(s) in {project_file}:", *problems, code=2)
    tables = project.table_refs()
    console.print(f"[green]ok[/]: {len(project.sources)} source(s), {len(tables)} table(s)")


class _ProgressReporter:
    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def stage_started(self, name: str, steps: int) -> None:
        self.tasks[name] = self.progress.add_task(name, total=max(steps, 1))

    def step_done(self, name: str, label: str) -> None:
        self.progress.update(self.tasks[name], advance=1, description=f"{name}: {label}")

    def stage_finished(self, result: StageResult) -> None:
        task = self.tasks[result.name]
        mark = {"ok": "[green]✓[/]", "skipped": "[dim]–[/]"}.get(result.status, "[red]✗[/]")
        self.progress.update(
            task,
            completed=self.progress.tasks[task].total,
            description=f"{mark} {result.name} ({result.seconds:.1f}s)",
        )


@app.command()
def run(project_file: ProjectOption = Path("audience.yaml"), engine: EngineOption = None) -> None:
    """Run the pipeline into a new run folder; it becomes current only if every stage succeeds."""
    project = _load(project_file)
    progress = Progress(
        SpinnerColumn(),
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    from audience.api.runner import RunInProgress, run_lock

    try:
        with run_lock(project.workspace_path), progress:
            result = run_pipeline(project, engine_kind=engine, reporter=_ProgressReporter(progress))
    except RunInProgress as e:
        _fail(str(e), "wait for it to finish; 'audience status' shows the runs")
    except USER_ERRORS as e:
        _fail("the run failed; the last good run stays current.", *str(e).splitlines())
    _print_summary(result.results)


def _print_summary(results: dict) -> None:
    table = Table(title=f"run {results['run_id']} ({results['engine']}, {results['seconds']}s)")
    for col in ("table", "rows in", "loaded", "quarantined", "columns"):
        table.add_column(col, justify="left" if col == "table" else "right")
    detail = results["stages"].get("ingest", {}).get("detail", {})
    for name, t in detail.items():
        style = "yellow" if t["rows_quarantined"] else None
        table.add_row(
            name,
            f"{t['rows_in']:,}",
            f"{t['rows_loaded']:,}",
            f"{t['rows_quarantined']:,}",
            str(len(t["columns"])),
            style=style,
        )
    console.print(table)
    unify = results["stages"].get("unify", {})
    stats = unify.get("detail", {}).get("statistics")
    if stats:
        tables = ", ".join(
            f"{t['table']} {t['records']:,} ({t['duplicates']:,} duplicates, "
            f"{t['matched']:,} matched)"
            for t in stats["tables"]
        )
        console.print(
            f"[bold]{stats['customers']:,} customers[/] from {stats['records']:,} records: "
            f"{tables}",
            highlight=False,
        )
        for warning in unify.get("detail", {}).get("warnings", []):
            console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    _print_analytics(results["stages"])
    quarantined = sum(t["rows_quarantined"] for t in detail.values())
    if quarantined:
        console.print(
            f"[yellow]{quarantined} row(s) quarantined[/]: see them with "
            "[bold]audience export Quarantine --to quarantine.csv[/]"
        )


def _print_analytics(stages: dict) -> None:
    activities = stages.get("activities", {})
    if activities.get("status") == "ok":
        detail = activities["detail"]
        resolved = sum(a["resolved"] for a in detail.values())
        aside = sum(a["unresolved"] for a in detail.values())
        note = f", {aside:,} kept aside (see ActivityUnresolved)" if aside else ""
        console.print(
            f"[bold]{resolved:,} activities[/] in {len(detail)} kinds{note}", highlight=False
        )
    measures = stages.get("measures", {})
    if measures.get("status") == "ok":
        tables = [t for t in measures["rows"] if t.startswith("Measure_")]
        console.print(
            f"measures: customer attributes for {measures['rows']['CustomerAttributes']:,} "
            f"customers, {len(tables)} measure table(s)",
            highlight=False,
        )
    predictions = stages.get("predictions", {})
    if predictions.get("status") == "ok":
        detail = predictions["detail"]
        graded = [
            f"{name} {d['grade'] or '-'}"
            for name, d in detail.items()
            if isinstance(d, dict) and "grade" in d
        ]
        console.print(
            f"predictions: {', '.join(graded) or 'none trained'} (grades: audience predictions)",
            highlight=False,
        )
        for warning in detail.get("warnings", []):
            console.print(f"[yellow]{warning}[/]", highlight=False)
    segments = stages.get("segments", {})
    sizes = segments.get("detail", {}).get("sizes", {})
    if sizes:
        shown = ", ".join(f"{name} {size:,}" for name, size in sizes.items())
        console.print(f"segments: {shown}", highlight=False)


@app.command()
def status(
    project_file: ProjectOption = Path("audience.yaml"),
    last: Annotated[int, typer.Option("--last", "-n", help="How many runs to show.")] = 10,
) -> None:
    """Show the last runs: status, duration, and each stage's time and rows."""
    project = _load(project_file)
    workspace = Workspace(project.workspace_path, project.keep_runs)
    current = workspace.current_id()
    runs = workspace.runs()[:last]
    if not runs:
        console.print("no runs yet; start one with [bold]audience run[/]")
        return
    table = Table(title=f"runs in {workspace.root}")
    for col in ("run", "status", "engine", "started", "seconds", "stages"):
        table.add_column(col)
    for r in runs:
        stages = ", ".join(
            f"{s['name']} {s['status']}" + (f" {s['seconds']}s" if s.get("seconds") else "")
            for s in r.results["stages"].values()
        )
        colour = {"succeeded": "green", "failed": "red", "killed": "red"}.get(r.status, "yellow")
        name = r.id + (" (current)" if r.id == current else "")
        table.add_row(
            name,
            f"[{colour}]{r.status}[/]",
            r.results.get("engine", ""),
            r.results.get("started", ""),
            str(r.results.get("seconds", "")),
            stages,
        )
    console.print(table)
    for r in runs:
        if r.results.get("error"):
            console.print(f"[red]{r.id}[/]: {r.results['error']}", markup=True, highlight=False)
            break


@app.command()
def profile(
    source: Annotated[str, typer.Argument(help="A source ('crm') or table ('crm.contacts').")],
    project_file: ProjectOption = Path("audience.yaml"),
    engine: EngineOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Read a source now and profile every column: type, nulls, distinct, min/max, top values."""
    project = _load(project_file)
    try:
        refs = project.find_tables(source)
    except KeyError as e:
        _fail(str(e.args[0]), code=2)
    scratch = project.workspace_path / "tmp" / "profile"
    try:
        with Engine.connect(project, engine) as eng:
            con = landing_connection(project, eng.scratch / "landing")
            out = []
            for ref in refs:
                landed = ingest_table(con, project, ref, scratch)
                table = eng.read(landed.path)
                prof = profile_table(table, ref.id, unique=[ref.table.primary_key]).to_pylist()
                out.append((landed, prof))
            con.close()
    except USER_ERRORS as e:
        _fail(*str(e).splitlines())
    if as_json:
        console.print_json(json.dumps([p for _, prof in out for p in prof], default=str))
        return
    for landed, prof in out:
        _print_profile(landed, prof)


def _print_profile(landed, prof: list[dict]) -> None:  # noqa: ANN001
    title = (
        f"{landed.ref.label}: {landed.rows_loaded:,} rows loaded, "
        f"{landed.rows_quarantined:,} quarantined"
    )
    table = Table(title=title)
    for col in ("column", "type", "nulls", "distinct", "min", "max", "top values"):
        table.add_column(col, overflow="fold")
    for p in prof:
        tops = ", ".join(f"{v} ({n})" for v, n in json.loads(p["top_values"])[:3])
        nulls = f"{p['nulls']:,} ({p['nulls'] / p['count']:.0%})" if p["count"] else "0"
        table.add_row(
            p["column"],
            p["type"],
            nulls,
            f"{p['distinct'] or 0:,}",
            p["min"] or "",
            p["max"] or "",
            tops,
        )
    console.print(table)


@app.command()
def export(
    table: Annotated[str, typer.Argument(help="Table of the current run, e.g. crm_contacts.")],
    to: Annotated[Path, typer.Option("--to", help="File to write (.parquet or .csv).")],
    project_file: ProjectOption = Path("audience.yaml"),
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="parquet or csv (default: by the file's extension)."),
    ] = None,
) -> None:
    """Write a table of the current run to a Parquet or CSV file."""
    project = _load(project_file)
    fmt = fmt or to.suffix.lstrip(".").lower()
    if fmt not in ("parquet", "csv"):
        _fail(f"cannot tell the format of {to}; use --format parquet or --format csv", code=2)
    try:
        current = Workspace(project.workspace_path).current()
        path = current.table_path(table)
        with Engine.connect(project, "duckdb") as eng:
            rows = eng.export(eng.read(path), to, fmt)
    except USER_ERRORS as e:
        _fail(str(e))
    console.print(f"wrote {rows:,} rows of {table} (run {current.id}) to {to}")


def _current_tables(project: Project) -> dict[str, Path]:
    run = Workspace(project.workspace_path).current()
    return {name: run.table_path(name) for name in run.tables}


@app.command()
def explain(
    customer: Annotated[
        str,
        typer.Argument(
            help="A CustomerId, an Identifier 'crm|contacts|C000123' or 'crm.contacts:C000123'."
        ),
    ],
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """Show why records are one customer: every link, its rule, each condition's values."""
    from audience.unify.explain import ExplainError
    from audience.unify.explain import explain as explain_customer

    project = _load(project_file)
    if project.unify is None:
        _fail("the project has no unify: section", code=2)
    try:
        result = explain_customer(project, _current_tables(project), customer)
    except (ExplainError, *USER_ERRORS) as e:
        _fail(str(e))
    console.print(f"[bold]customer {result.customer_id}[/]")
    if result.previous_ids:
        console.print(f"previously: {', '.join(result.previous_ids)}")
    # Fields as rows, records as columns: a customer has a few records and many fields.
    table = Table(title=f"{len(result.records)} record(s)")
    table.add_column("field")
    for record in result.records:
        table.add_column(record["Identifier"], overflow="fold")
    fields = sorted({k for r in result.records for k in r if k != "Identifier"})
    for name in fields:
        table.add_row(name.replace("_", "."), *(str(r.get(name, "")) for r in result.records))
    console.print(table)
    if not result.links:
        console.print("a single record: nothing links it to others")
    for link in result.links:
        console.print(
            f"[bold]{link.left}[/] ~ [bold]{link.right}[/]: {link.kind} rule "
            f"[cyan]{link.rule}[/] (score {link.score:.3f})",
            highlight=False,
        )
        for c in link.conditions:
            mark = "=" if c["precision"] >= 1 else f"{c['method']} >= {c['precision']}"
            console.print(
                f"    {c['field']}: {c['left']!r} ~ {c['right']!r}  normalised "
                f"{c['left_normalized']!r} ~ {c['right_normalized']!r}  [{mark}] "
                f"score {c['score']}",
                highlight=False,
                markup=False,
            )


@app.command()
def unify(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compare with the current run; publish nothing.")
    ] = False,
    project_file: ProjectOption = Path("audience.yaml"),
    engine: EngineOption = None,
) -> None:
    """Run the pipeline; with --dry-run, run only ingest and unify, show which customers
    would merge, split or change ID, and publish (or export) nothing."""
    from audience.unify.explain import compare_runs

    project = _load(project_file)
    if not dry_run:
        run(project_file, engine)
        return
    try:
        current = _current_tables(project)
        result = run_pipeline(project, engine_kind=engine, publish=False, stages=("unify",))
    except USER_ERRORS as e:
        _fail(str(e))
    new_keys = result.table_path("AlternateKey")
    diff = compare_runs(current["AlternateKey"], new_keys)
    console.print(f"dry run {result.id} compared with the current run (nothing published):")
    console.print(
        f"  {diff.unchanged_customers:,} customers unchanged, {diff.new_customers:,} new, "
        f"{diff.removed_customers:,} gone, {len(diff.merged):,} merging, "
        f"{len(diff.split):,} splitting; {diff.changed_id:,} record(s) change CustomerId"
    )
    for m in diff.merged:
        console.print(f"  merge: {', '.join(m['from_customers'])} -> {m['customer']}")
    for s in diff.split:
        console.print(f"  split: {s['customer']} -> {', '.join(s['into_customers'])}")


@app.command()
def suggest(
    table: Annotated[
        str | None,
        typer.Argument(help="A source or table ('crm', 'crm.contacts'); all if omitted."),
    ] = None,
    project_file: ProjectOption = Path("audience.yaml"),
    as_yaml: Annotated[
        bool, typer.Option("--yaml", help="Print the unify.tables fields block to paste.")
    ] = False,
    min_confidence: Annotated[
        float, typer.Option(help="Suggestions below this are not put in the YAML.")
    ] = 0.6,
) -> None:
    """Propose a semantic type for each column (Person.FirstName, Identity.Email, ...), from
    column names and values, and say how sure it is."""
    from audience.unify.suggest import as_yaml_fields, as_yaml_text, suggest_for_project

    project = _load(project_file)
    try:
        refs = project.find_tables(table) if table else project.table_refs()
    except KeyError as e:
        _fail(str(e.args[0]), code=2)
    scratch = project.workspace_path / "tmp" / "suggest"
    try:
        with Engine.connect(project) as eng:
            con = landing_connection(project, eng.scratch / "landing")
            landed = {ref.label: ingest_table(con, project, ref, scratch).path for ref in refs}
            con.close()
            suggestions = suggest_for_project(eng, project, landed, [r.label for r in refs])
    except USER_ERRORS as e:
        _fail(*str(e).splitlines())
    if as_yaml:
        typer.echo(as_yaml_text(as_yaml_fields(suggestions, min_confidence)), nl=False)
        return
    out = Table(title="suggested semantic types")
    for col in ("table", "column", "type", "confidence", "why"):
        out.add_column(col, overflow="fold")
    for s in suggestions:
        style = None if s.semantic and s.confidence >= min_confidence else "dim"
        out.add_row(
            s.table,
            s.column,
            s.semantic or "—",
            f"{s.confidence:.2f}",
            "; ".join(s.reasons),
            style=style,
        )
    console.print(out)


@app.command(hidden=True)
def schema(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of audience.yaml."""
    from audience.project import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if out:
        out.write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)


if __name__ == "__main__":
    app()


# More commands live in their own modules; importing them registers them.
from audience import (  # noqa: E402, F401
    cli_analytics,
    cli_api,
    cli_console,
    cli_outputs,
    cli_predict,
)
