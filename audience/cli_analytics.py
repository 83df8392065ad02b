"""`audience measures` and `audience segments`: look at and work with the current run's
measures and segments from the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from audience import expr
from audience.analytics.paths import AnalyticsError
from audience.cli import USER_ERRORS, ProjectOption, _fail, _load, app, console
from audience.engine import Engine
from audience.expr import ExprError
from audience.project import Project
from audience.runs import Run, Workspace

ERRORS = (*USER_ERRORS, AnalyticsError, ExprError)
measures_app = typer.Typer(help="Measures of the current run.", no_args_is_help=False)
segments_app = typer.Typer(help="Segments: sizes, quick segments, overlap, refresh.")
app.add_typer(measures_app, name="measures")
app.add_typer(segments_app, name="segments")


def _as_of(project: Project, run: Run) -> datetime:
    stamp = run.results.get("as_of")
    if stamp:
        return datetime.fromisoformat(stamp)
    return project.as_of or datetime.now(UTC).replace(tzinfo=None)


def _current(project: Project) -> Run:
    try:
        return Workspace(project.workspace_path).current()
    except USER_ERRORS as e:
        _fail(str(e))


@measures_app.callback(invoke_without_command=True)
def measures(project_file: ProjectOption = Path("audience.yaml")) -> None:
    """Each measure with its kind, and for customer attributes how many customers have a
    value, and the smallest, average and largest value."""
    project = _load(project_file)
    run = _current(project)
    table = Table(title=f"measures of run {run.id}")
    table.add_column("measure", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for col in ("customers", "min", "average", "max"):
        table.add_column(col, justify="right", no_wrap=True)

    try:
        with Engine.connect(project) as engine:
            stats = _attribute_stats(engine, run)
    except ERRORS as e:
        _fail(str(e))
    for m in project.measures:
        s = stats.get(m.name, {})
        table.add_row(
            m.name,
            {"customer_attribute": "attribute", "customer_measure": "per customer"}.get(
                m.kind, "business"
            ),
            f"{s['count']:,}" if s else "",
            _fmt(s.get("min")),
            _fmt(s.get("mean")),
            _fmt(s.get("max")),
        )
    console.print(table)


def _attribute_stats(engine: Engine, run: Run) -> dict[str, dict]:
    attributes = engine.read(run.table_path("CustomerAttributes"))
    aggs = {}
    names = [c for c in attributes.columns if c != "CustomerId"]
    for i, name in enumerate(names):
        column = attributes[name]
        aggs[f"n{i}"] = column.count()
        if column.type().is_numeric():
            aggs[f"lo{i}"] = column.min().cast("float64")
            aggs[f"mean{i}"] = column.mean()
            aggs[f"hi{i}"] = column.max().cast("float64")
    if not aggs:
        return {}
    row = attributes.aggregate(**aggs).to_pyarrow().to_pylist()[0]
    return {
        name: {
            "count": row[f"n{i}"],
            "min": row.get(f"lo{i}"),
            "mean": row.get(f"mean{i}"),
            "max": row.get(f"hi{i}"),
        }
        for i, name in enumerate(names)
    }


def _cell(value: object) -> str:
    if value is None:
        return ""
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 1000 or float(value).is_integer() else f"{value:,.2f}"


@segments_app.callback(invoke_without_command=True)
def segments(ctx: typer.Context, project_file: ProjectOption = Path("audience.yaml")) -> None:
    """Each segment with its size and the change since the run before."""
    if ctx.invoked_subcommand:
        return
    project = _load(project_file)
    run = _current(project)
    history: dict[str, list[int]] = {}
    try:
        with Engine.connect(project) as engine:
            rows = engine.read(run.table_path("SegmentHistory")).order_by("AsOf").to_pyarrow()
    except ERRORS as e:
        _fail(str(e))
    for row in rows.to_pylist():
        history.setdefault(row["Segment"], []).append(row["Size"])
    table = Table(title=f"segments of run {run.id}")
    for col in ("segment", "kind", "size", "change", "description"):
        table.add_column(col, justify="right" if col in ("size", "change") else "left")
    for s in project.segments:
        sizes = history.get(s.name, [])
        change = f"{sizes[-1] - sizes[-2]:+,}" if len(sizes) > 1 else ""
        table.add_row(
            s.name, s.kind, f"{sizes[-1]:,}" if sizes else "", change, s.description or ""
        )
    console.print(table)


@segments_app.command()
def quick(
    condition: Annotated[str, typer.Argument(help='A condition, e.g. "total_spend > 500".')],
    limit: Annotated[int, typer.Option(help="Customers to show.")] = 10,
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """Count and preview the customers that meet one condition (a segment not saved)."""
    from audience.analytics.stage import open_segments

    project = _load(project_file)
    run = _current(project)
    try:
        with Engine.connect(project) as engine:
            found = open_segments(project, engine, run, _as_of(project, run)).quick(condition)
            count = int(found.count().to_pyarrow().as_py())
            preview = found.order_by("CustomerId").limit(limit).to_pyarrow().to_pylist()
    except ERRORS as e:
        _fail(str(e))
    console.print(f"[bold]{count:,}[/] customers meet {condition!r}", highlight=False)
    if preview:
        # The customer, who they are, and the fields the condition used.
        used = sorted(expr.field_names(expr.parse(condition)))
        usual = ["CustomerId", "FullName", "Email", "City"]
        columns = [c for c in dict.fromkeys(usual + used) if c in preview[0]][:7]
        table = Table()
        for c in columns:
            table.add_column(c, overflow="fold")
        for row in preview:
            table.add_row(*(_cell(row[c]) for c in columns))
        console.print(table)


@segments_app.command("overlap")
def overlap_command(
    a: Annotated[str, typer.Argument(help="First segment.")],
    b: Annotated[str, typer.Argument(help="Second segment.")],
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """How many customers two segments share, and the fields that differ most between them."""
    from audience.analytics.overlap import overlap
    from audience.analytics.stage import open_segments

    project = _load(project_file)
    run = _current(project)
    try:
        with Engine.connect(project) as engine:
            result = overlap(open_segments(project, engine, run, _as_of(project, run)), a, b)
    except ERRORS as e:
        _fail(str(e))
    s = result["sizes"]
    console.print(
        f"{a} only: [bold]{s['a_only']:,}[/]   both: [bold]{s['both']:,}[/]   "
        f"{b} only: [bold]{s['b_only']:,}[/]   (Jaccard {s['jaccard']:.2f})",
        highlight=False,
    )
    table = Table(title="fields that differ most")
    for col in ("field", a, b, "difference"):
        table.add_column(col)
    for d in result["differences"]:
        shown = (
            [_fmt(d["a"]), _fmt(d["b"])] if d["kind"] == "number" else [str(d["a"]), str(d["b"])]
        )
        table.add_row(d["field"], *shown, f"{d['score']:.2f}")
    console.print(table)


@segments_app.command()
def refresh(
    names: Annotated[list[str], typer.Argument(help="Static segments to recompute.")],
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """Recompute static segments on the current run (the next run publishes them)."""
    from audience.analytics.stage import refresh_static

    project = _load(project_file)
    run = _current(project)
    try:
        with Engine.connect(project) as engine:
            sizes = refresh_static(project, engine, names, _as_of(project, run))
    except ERRORS as e:
        _fail(str(e))
    for name, size in sizes.items():
        console.print(f"{name}: [bold]{size:,}[/] members; published by the next run")
