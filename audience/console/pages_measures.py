"""The console's measure pages: the list with each attribute's values in the current run, one
measure with its distribution (or its rows over time), and the builder with the templates and a
live preview computed on the current run.

Every number is aggregated in DuckDB; only aggregates (a row of statistics, a few dozen bins,
at most CHART_ROWS rows of a business measure) reach Python, so a page costs the same few
queries at 1M customers as at 300. Reads go through the list routes' per-run in-memory DuckDB
(views over the run's Parquet). The preview opens a throwaway in-memory engine over the same
files, as the segment builder does, so it never takes the engine database a running pipeline
holds.

Saving validates the new measure exactly as the project file is validated (the whole project
with the item appended, through `parse_project`), builds it against the run's fields, and only
then writes it with `project_edit.upsert` (comments and order kept).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from io import StringIO
from typing import Any

import duckdb
import ibis
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from ibis.common.exceptions import IbisError
from ruamel.yaml import YAML

from audience import expr, project_edit
from audience.analytics.config import FUNCTIONS, Measure
from audience.analytics.measures import MeasureBuilder
from audience.analytics.paths import AnalyticsError
from audience.analytics.stage import run_tables
from audience.analytics.templates import TEMPLATES
from audience.api.auth import Principal
from audience.api.routes import lists
from audience.api.server import RunView, Server
from audience.console.access import page_user, require_page_role, server_of
from audience.console.cache import file_cached
from audience.console.engines import run_engine
from audience.console.measure_charts import (
    attribute_overview,
    business_view,
    customer_view,
    db_fetch,
    dimensions,
    expr_text,
    summarize,
    type_name,
    value_text,
)
from audience.console.pages import render
from audience.engine import Engine, EngineError
from audience.project import Project, ProjectError, parse_project
from audience.runs import RunError

router = APIRouter(include_in_schema=False)

PREVIEW_NAME = "_preview"  # the builder's measure while it has no (valid, free) name yet
RESERVED = {"new"}  # /measures/new is the builder
FUNCTION_WORDS = {
    "sum": "sum",
    "average": "average",
    "count": "count of rows",
    "count_distinct": "number of distinct values",
    "min": "smallest",
    "max": "largest",
    "first": "first (earliest row)",
    "last": "last (latest row)",
    "argmax": "value at the largest 'by'",
    "argmin": "value at the smallest 'by'",
}
assert set(FUNCTION_WORDS) == set(FUNCTIONS)
WINDOWS = {"": "all time", "last_days": "the last N days", "last_months": "the last N months"}
# What a builder error can be: a bad expression, a field the rows lack, a query DuckDB refused.
BUILDER_ERRORS = (expr.ExprError, AnalyticsError, EngineError, lists.QueryError, duckdb.Error)
BUILDER_ERRORS += (IbisError,)


class FormError(ValueError):
    """A builder field that cannot become part of a measure (a window that is not a number)."""


# -- words -------------------------------------------------------------------------------------
def describe(m: Measure) -> str:
    """How a measure is computed, in words: 'sum of amount over orders, last 365 days'."""
    if m.template:
        t = TEMPLATES.get(m.template)
        core = f"template {m.template}" + (f": {t.description}" if t else "")
        core += f" ({t.activity_type} activities)" if t else ""
    elif m.expression is not None:
        core = f"= {expr_text(m.expression)}"
    else:
        rows = m.activity or m.table or ""
        of = expr_text(m.of) if m.of is not None else ""
        by = expr_text(m.by) if m.by is not None else ""
        if m.function == "count":
            core = f"count of {rows}" + (f" with {of}" if of else "")
        elif m.function == "count_distinct":
            core = f"distinct {of} in {rows}"
        elif m.function in ("argmax", "argmin"):
            most = "largest" if m.function == "argmax" else "smallest"
            core = f"{of} at the {most} {by} in {rows}"
        elif m.function in ("first", "last"):
            core = f"{m.function} {of} in {rows}" + (f" by {by}" if by else " by time")
        else:
            core = f"{m.function} of {of} over {rows}"
    parts = [core]
    if m.where is not None:
        parts.append(f"where {expr_text(m.where)}")
    if m.window is not None:
        parts.append(m.window.describe())
    if m.dimensions:
        parts.append("by " + ", ".join(name for name, _ in dimensions(m)))
    if m.default is not None:
        default = _as_written(m.default)
        shown = str(default).lower() if isinstance(default, bool) else repr(default)
        parts.append(f"default {shown}")
    return ", ".join(parts)


def definition_text(m: Measure) -> str:
    """The measure as it would be written in audience.yaml (defaults left out)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.width = 4096
    out = StringIO()
    data = m.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
    if "default" in data:
        data["default"] = _as_written(data["default"])
    yaml.dump(data, out)
    return out.getvalue()


def _as_written(value: Any) -> Any:
    # The model reads `default: 0` as 0.0 (float comes first in its union): show the 0.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def candidate_project(server: Server, item: dict[str, Any]) -> Project:
    """The project with `item` appended to its measures, validated as the file would be."""
    path = project_edit.project_path(server.project_file)
    # Parsed once per version of the file (a round-trip YAML parse took ~190 ms a preview);
    # the cached data is shared, so the new list goes into a copy of the top level.
    raw = dict(file_cached(path, ("as_written",), lambda: project_edit.get_path(path)))
    raw["measures"] = [*(raw.get("measures") or []), item]
    return parse_project(raw, path, server.project.root)


@contextmanager
def measure_values(
    server: Server, db: lists.RunDatabase, item: dict[str, Any]
) -> Iterator[tuple[Engine, ibis.Table]]:
    """The measure `item` (a customer attribute) for every customer of the current run, as a
    table (CustomerId, value) on the console's engine over the run (`engines.run_engine`),
    for this request until the block ends.

    Only this measure is computed: it is checked and built by MeasureBuilder exactly as a run
    would, with the run's reference time."""
    project = candidate_project(server, item)
    index = len(project.measures) - 1
    alone = project.model_copy(update={"measures": [project.measures[index]]})
    with run_engine(server.project, db.run) as engine:
        try:
            out = run_tables(alone, engine, db.run)
            builder = MeasureBuilder(out.row_sources(), out.read("CustomerProfile"), db.as_of)
            attributes = builder.compute().attributes
        except (expr.ExprError, AnalyticsError) as e:
            # Built alone it is measures[0]; in the file it is measures[index].
            raise AnalyticsError(str(e).replace("measures[0]", f"measures[{index}]")) from None
        yield engine, attributes.select("CustomerId", value=attributes[item["name"]])


def _engine_fetch(query: ibis.Table) -> list[dict[str, Any]]:
    return query.to_pyarrow().to_pylist()


def preview(server: Server, db: lists.RunDatabase, item: dict[str, Any]) -> dict[str, Any]:
    """What the builder shows: summarize() of the measure computed once into a temp table."""
    with measure_values(server, db, item) as (engine, values):
        stored = engine.checkpoint(values, "preview")
        return summarize(_engine_fetch, stored, "value")


@dataclass
class BuilderForm:
    name: str = ""
    description: str = ""
    mode: str = "template"  # or "custom"
    template: str = ""
    activity: str = ""
    function: str = "sum"
    of: str = ""
    by: str = ""
    where: str = ""
    window: str = ""  # "", last_days or last_months
    window_n: str = ""
    default: str = ""


async def builder_form(request: Request) -> BuilderForm:
    """The builder's fields as posted (a field not sent keeps its default)."""
    posted = await request.form()  # parsed once per request: the CSRF check reads it too
    known = {f.name for f in fields(BuilderForm)}
    return BuilderForm(**{k: str(v).strip() for k, v in posted.items() if k in known})


def _default_value(text: str) -> Any:
    """A default as typed: a number, true/false, or text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def form_item(form: BuilderForm, path: str, name: str | None = None) -> dict[str, Any]:
    """The builder's fields as a measures: item, shaped as in audience.yaml."""
    item: dict[str, Any] = {"name": name or form.name}
    if form.description:
        item["description"] = form.description
    if form.mode == "custom":
        if not form.activity:
            raise FormError(f"{path}.activity: choose an activity")
        item |= {"activity": form.activity, "function": form.function}
        if form.function != "count" and form.of:  # counting rows needs no value
            item["of"] = form.of
        if form.function in ("argmax", "argmin") and form.by:
            item["by"] = form.by
        if form.where:
            item["where"] = form.where
    else:
        if not form.template:
            raise FormError(f"{path}.template: choose a template")
        item["template"] = form.template
    if form.window in ("last_days", "last_months"):
        unit = "days" if form.window == "last_days" else "months"
        try:
            item["window"] = {form.window: int(form.window_n)}
        except ValueError:
            raise FormError(
                f"{path}.window.{form.window}: {form.window_n!r} is not a whole number of {unit}"
            ) from None
    if form.default:
        item["default"] = _default_value(form.default)
    return item


def check_name(server: Server, db: lists.RunDatabase, name: str, path: str) -> None:
    """A new measure's name: not taken by a measure, nor by a customer field it would sit
    beside in CustomerDimension and segment conditions (DuckDB names ignore case)."""
    if not name:
        raise FormError(f"{path}.name: give the measure a name")
    taken = [
        (i, m.name) for i, m in enumerate(server.project.measures) if m.name.lower() == name.lower()
    ]
    if taken:
        raise FormError(
            f"{path}.name: measures[{taken[0][0]}] is already called '{taken[0][1]}'; "
            "choose another name"
        )
    if name in RESERVED:
        raise FormError(f"{path}.name: '{name}' is reserved by the console; choose another name")
    for table in ("CustomerProfile", "EnrichmentAttributes", "PredictionAttributes"):
        if db.has(table) and name.lower() in {c.lower() for c in db.table(table).columns}:
            raise FormError(f"{path}.name: '{name}' is already a field of {table}")


def template_choices(project: Project) -> list[dict[str, Any]]:
    """The twelve templates, each with whether this project's activities can feed it."""
    out = []
    for name, t in TEMPLATES.items():
        typed = [a for a in project.activities if a.type == t.activity_type]
        missing = None
        if not typed:
            missing = f"needs a {t.activity_type} activity"
        elif t.field and not all(t.field in a.fields for a in typed):
            missing = f"needs the field '{t.field}' on {t.activity_type} activities"
        reads = t.activity_type + (f" · {t.field}" if t.field else "")
        out.append({"name": name, "description": t.description, "reads": reads, "missing": missing})
    return out


def activity_fields(
    project: Project, db: lists.RunDatabase, activity: str
) -> list[tuple[str, str]]:
    """(field, type) an activity's rows offer `of` and `by`: its semantic fields first, then the
    time and the source columns (as the run's Activity_<name> table has them)."""
    declared = {a.name: a for a in project.activities}
    same_type = [a for a in project.activities if a.type == activity]
    if activity in declared:
        act, names = declared[activity], list(declared[activity].fields)
    elif same_type:  # all activities of a type share only the fields each of them has
        act = same_type[0]
        names = [f for f in act.fields if all(f in a.fields for a in same_type)]
    else:
        return []
    table = f"Activity_{act.name}"
    if not db.has(table):  # the run predates this activity
        return [(n, "?") for n in names]
    schema = db.table(table).schema()
    if activity in declared:
        names += ["ActivityTimeStamp", *schema.names]
    else:
        names += ["ActivityTimeStamp", "ActivityId"]
    return [
        (n, type_name(schema[n])) for n in dict.fromkeys(names) if n in schema and n != "CustomerId"
    ]


# -- pages -------------------------------------------------------------------------------------
def _view_or_none(server: Server) -> RunView | None:
    try:
        return server.view()
    except RunError:
        return None


def _database(server: Server) -> lists.RunDatabase:
    view = _view_or_none(server)
    if view is None:
        raise HTTPException(404, "no run has finished yet: run 'audience run'")
    return lists.run_database(server, view)


def _measure_or_404(server: Server, name: str) -> Measure:
    measure = next((m for m in server.project.measures if m.name == name), None)
    if measure is None:
        known = ", ".join(m.name for m in server.project.measures) or "none"
        raise HTTPException(404, f"no measure '{name}'; measures: {known}")
    return measure


@router.get("/measures")
def measures_page(request: Request, user: Principal = Depends(page_user)) -> HTMLResponse:
    server = server_of(request)
    view = _view_or_none(server)
    db = lists.run_database(server, view) if view is not None else None
    overview: dict[str, Any] = {"customers": None, "attributes": {}}
    table_rows: dict[str, int] = {}
    if db is not None:
        if db.has("CustomerAttributes"):
            overview = attribute_overview(db)
        # Rows of Measure_<name> as the run counted them: no query needed.
        stage = db.run.results.get("stages", {}).get("measures", {})
        table_rows = stage.get("rows") or {}
    items = [
        {
            "name": m.name,
            "kind": m.kind,
            "words": describe(m),
            "description": m.description,
            "stats": overview["attributes"].get(m.name),
            "rows": table_rows.get(f"Measure_{m.name}"),
        }
        for m in server.project.measures
    ]
    context = {
        "active": "measures",
        "items": items,
        "customers": overview["customers"],
        "no_run": view is None,
        "run": db.run if db is not None else None,
        "value_text": value_text,
    }
    return render(request, "measures/list.html", context)


def _builder(
    request: Request,
    db: lists.RunDatabase,
    form: BuilderForm,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    project = server_of(request).project
    context = {
        "active": "measures",
        "form": form,
        "templates": template_choices(project),
        "activities": [(a.name, a.type) for a in project.activities],
        "types": sorted({a.type for a in project.activities}),
        "fields": activity_fields(project, db, form.activity),
        "functions": FUNCTION_WORDS,
        "windows": WINDOWS,
        "errors": errors or [],
    }
    return render(request, "measures/builder.html", context, status_code=status_code)


@router.get("/measures/new")
def builder_page(
    request: Request, user: Principal = Depends(require_page_role("contributor"))
) -> HTMLResponse:
    server = server_of(request)
    db = _database(server)
    project = server.project
    usable = [t["name"] for t in template_choices(project) if not t["missing"]]
    form = BuilderForm(
        template=usable[0] if usable else "",
        activity=project.activities[0].name if project.activities else "",
    )
    numbers = [n for n, kind in activity_fields(project, db, form.activity) if kind == "number"]
    form.of = numbers[0] if numbers else ""
    return _builder(request, db, form)


@router.get("/measures/new/fields")
def builder_fields(
    request: Request,
    activity: str = Query("", max_length=200),
    of: str = Query("", max_length=500),
    by: str = Query("", max_length=500),
    user: Principal = Depends(require_page_role("contributor")),
) -> HTMLResponse:
    """The `of` and `by` selects for the activity chosen (htmx swaps them into the form)."""
    server = server_of(request)
    db = _database(server)
    fields = activity_fields(server.project, db, activity)
    form = BuilderForm(activity=activity, of=of, by=by)
    return render(request, "measures/_fields.html", {"fields": fields, "form": form})


@router.post("/measures/new/preview")
def builder_preview(
    request: Request,
    form: BuilderForm = Depends(builder_form),
    user: Principal = Depends(require_page_role("contributor")),
) -> HTMLResponse:
    """The live preview: the measure computed on the current run (an htmx fragment)."""
    server = server_of(request)
    db = _database(server)
    path = f"measures[{len(server.project.measures)}]"
    context: dict[str, Any] = {"summary": None, "error": None, "words": None, "run": db.run}
    try:
        item = form_item(form, path, name=PREVIEW_NAME)
        context["summary"] = preview(server, db, item)
        context["words"] = describe(Measure.model_validate(item))
    except (FormError, *BUILDER_ERRORS) as e:
        context["error"] = str(e)
    except ProjectError as e:
        context["error"] = "\n".join(p.removeprefix("(top level): ") for p in e.problems)
    return render(request, "measures/_preview.html", context | {"value_text": value_text})


@router.post("/measures/new")
def builder_save(
    request: Request,
    form: BuilderForm = Depends(builder_form),
    user: Principal = Depends(require_page_role("contributor")),
) -> Response:
    """Write the measure into the project file (validated, comments kept), audit, reload."""
    server = server_of(request)
    db = _database(server)
    path = f"measures[{len(server.project.measures)}]"
    try:
        item = form_item(form, path)
        check_name(server, db, form.name, path)
        with measure_values(server, db, item):
            pass  # built and checked against the run's rows; computing it is the run's job
        result = project_edit.upsert(server.project_file, "measures", item)
    except (FormError, *BUILDER_ERRORS) as e:
        return _builder(request, db, form, [str(e)], status_code=422)
    except ProjectError as e:
        problems = [p.removeprefix("(top level): ") for p in e.problems]
        return _builder(request, db, form, problems, status_code=422)
    server.reload_project()
    server.audit.record(
        user, "config.put", f"measures/{form.name}", {"result": result, "item": item}
    )
    return RedirectResponse(f"/measures/{form.name}?saved={result}", status_code=303)


@router.get("/measures/{name}")
def measure_page(request: Request, name: str, user: Principal = Depends(page_user)) -> HTMLResponse:
    server = server_of(request)
    measure = _measure_or_404(server, name)
    view = _view_or_none(server)
    db = lists.run_database(server, view) if view is not None else None
    info = lists._measure_info(measure, db) if db is not None else {"in_current_run": False}
    context: dict[str, Any] = {
        "active": "measures",
        "measure": measure,
        "words": describe(measure),
        "definition": definition_text(measure),
        "info": info,
        "run": db.run if db is not None else None,
        "saved": request.query_params.get("saved"),
        "value_text": value_text,
    }
    if db is not None and info["in_current_run"]:
        if measure.kind == "customer_attribute":
            table = db.table("CustomerAttributes")
            context["summary"] = summarize(db_fetch(db), table, measure.name)
        elif measure.kind == "business_measure":
            context["business"] = business_view(db, measure)
        else:
            context["customer"] = customer_view(db, measure)
    return render(request, "measures/measure.html", context)
