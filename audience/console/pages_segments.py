"""The console's segment pages: the list with sizes over runs, one segment with its members
(and a CSV export), the builder with a live count, and the overlap of two segments.

Sizes, history and members come from the list routes' per-run DuckDB (what /api/v1/segments
reads). Counting a condition and comparing two segments need a `SegmentBuilder`; it is opened
per request on an in-memory DuckDB over the current run's files, so it never takes the
workspace's engine database that a run in progress holds.

The builder turns each row (field, operator, value) into an expression node and writes the
condition with the expression language's own printer: values become quoted literals of the
field's type, and nothing typed reaches SQL as text.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from audience import expr, project_edit
from audience.analytics.overlap import customer_tables, differences, member_flags, segment_flags
from audience.analytics.overlap import sizes as sizes_of
from audience.analytics.paths import AnalyticsError
from audience.analytics.segments import SegmentBuilder
from audience.analytics.stage import open_segments
from audience.api.auth import Principal
from audience.api.routes import lists
from audience.api.server import RunView, Server
from audience.console.access import page_user, require_page_role, server_of
from audience.console.cache import run_cached
from audience.console.engines import run_engine
from audience.console.pages import render
from audience.engine import Engine, EngineError
from audience.expr.nodes import Call, Field, Literal, Node, Op, parse_date, parse_timestamp
from audience.project import ProjectError
from audience.runs import RunError

router = APIRouter(include_in_schema=False)

PREVIEW = 50
MEMBER_FIELDS = ("FirstName", "LastName", "Email")
MAX_ROWS = 20
# Builder operators -> how the row is written (a binary operator, a function, or a test).
OPERATORS: dict[str, str] = {
    "=": "equals",
    "!=": "does not equal",
    ">": "greater than",
    ">=": "at least",
    "<": "less than",
    "<=": "at most",
    "contains": "contains",
    "starts_with": "starts with",
    "is null": "is empty",
    "is not null": "is not empty",
}
NO_VALUE = ("is null", "is not null")
TEXT_ONLY = ("contains", "starts_with")
BUILDER_ERRORS = (expr.ExprError, AnalyticsError, EngineError, lists.QueryError)


class RowError(ValueError):
    """A builder row that cannot become a condition (unknown field, value of the wrong type)."""


# -- shared ------------------------------------------------------------------------------------
def _view_or_none(server: Server) -> RunView | None:
    try:
        return server.view()
    except RunError:
        return None


def _database(server: Server) -> tuple[RunView, lists.RunDatabase]:
    view = _view_or_none(server)
    if view is None:
        raise HTTPException(404, "no run has finished yet: run 'audience run'")
    return view, lists.run_database(server, view)


@contextmanager
def open_builder(server: Server, db: lists.RunDatabase) -> Iterator[SegmentBuilder]:
    """A segment builder over the current run, on its own in-memory DuckDB (closed after)."""
    scratch = Path(tempfile.mkdtemp(prefix="audience-console-"))
    engine = Engine("duckdb", ibis.duckdb.connect(), scratch)
    try:
        # The run's reference time, as GET /api/v1/customers?filter= uses.
        yield open_segments(server.project, engine, db.run, db.as_of)
    finally:
        engine.close()


def customer_fields(db: lists.RunDatabase) -> dict[str, dt.DataType]:
    """What conditions may read: profile columns, then customer attributes."""
    fields: dict[str, dt.DataType] = {}
    for table in ("CustomerProfile", "CustomerAttributes"):
        if db.has(table):
            fields |= {k: v for k, v in db.table(table).schema().items() if k not in fields}
    return fields


def _type_name(dtype: dt.DataType) -> str:
    if dtype.is_boolean():
        return "boolean"
    if dtype.is_numeric():
        return "number"
    if dtype.is_timestamp():
        return "timestamp"
    if dtype.is_date():
        return "date"
    return "text"


# -- readable rules ----------------------------------------------------------------------------
def _window_text(within: dict[str, Any] | None) -> str:
    if not within:
        return ""
    if within.get("last_days"):
        return f" in the last {within['last_days']} days"
    if within.get("last_months"):
        return f" in the last {within['last_months']} months"
    start, end = within.get("start"), within.get("end")
    return f" from {start or 'the start'} to {end or 'now'}"


def rule_text(rule: Any) -> str:
    """A rule of a segment definition (its JSON form) as a sentence-like line."""
    if isinstance(rule, str):
        return rule
    if not isinstance(rule, dict):
        return str(rule)
    if "all" in rule:
        return "all of (" + "; ".join(rule_text(r) for r in rule["all"]) + ")"
    if "any" in rule:
        return "any of (" + "; ".join(rule_text(r) for r in rule["any"]) + ")"
    if "not" in rule:
        return f"not ({rule_text(rule['not'])})"
    if "segment" in rule:
        return f"in segment {rule['segment']}"
    if "activity" in rule:
        where = f" where {rule['where']}" if rule.get("where") else ""
        count = rule.get("count", ">= 1").strip()
        return f"{rule['activity']} activities{where}{_window_text(rule.get('within'))}: {count}"
    return str(rule)


COMBINE_TEXT = {
    "union": "a customer meeting any rule",
    "intersect": "a customer meeting every rule",
    "except": "the first rule, minus customers meeting any other",
}


# -- list and one segment ----------------------------------------------------------------------
def _chart_points(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"x": str(h.get("AsOf"))[:16], "y": h.get("Size")} for h in history]


@router.get("/segments")
def segments_page(request: Request, user: Principal = Depends(page_user)) -> HTMLResponse:
    server = server_of(request)
    view = _view_or_none(server)
    items: list[dict[str, Any]] = []
    if view is not None:
        db = lists.run_database(server, view)
        items = lists.list_segments(server=server, db=db)["items"]
        for item in items:
            item["points"] = _chart_points(item["history"])
    context = {"active": "segments", "segments": items, "no_run": view is None}
    return render(request, "segments/list.html", context)


def _member_fields(db: lists.RunDatabase) -> str:
    columns = db.table("CustomerDimension").columns
    return ",".join(c for c in MEMBER_FIELDS if c in columns)


def _members(server: Server, db: lists.RunDatabase, name: str, limit: int, offset: int) -> Any:
    return lists.segment_members(
        name, fields=_member_fields(db), limit=limit, offset=offset, server=server, db=db
    )


@router.get("/segments/new")
def builder_page(
    request: Request, user: Principal = Depends(require_page_role("contributor"))
) -> HTMLResponse:
    server = server_of(request)
    _view, db = _database(server)
    return _builder_form(request, db, {"name": "", "description": "", "combine": "and"}, [])


@router.get("/segments/overlap")
def overlap_page(
    request: Request,
    a: str = Query("", max_length=200),
    b: str = Query("", max_length=200),
    user: Principal = Depends(page_user),
) -> HTMLResponse:
    """The sizes at once; the fields that differ load afterwards (`overlap_differences`)."""
    server = server_of(request)
    _view, db = _database(server)
    names = lists._segment_names(server.project, db.run)
    sizes = None
    error = None
    if a and b:
        unknown = [n for n in (a, b) if n not in names]
        if unknown:
            error = f"no segment {', '.join(unknown)}; segments: {', '.join(names)}"
        else:
            try:
                sizes = overlap_sizes(db, a, b)
            except BUILDER_ERRORS as e:
                error = str(e)
    context = {"active": "segments", "names": names, "a": a, "b": b, "sizes": sizes}
    return render(request, "segments/overlap.html", context | {"error": error})


def overlap_sizes(db: lists.RunDatabase, a: str, b: str) -> dict[str, Any]:
    """Members in a only, both, b only and neither, from SegmentMembers alone (~60 ms at 1M
    customers, where joining every customer's fields for the differences takes seconds)."""
    customers = int(db.scalar(db.table("CustomerProfile").count()))
    if not db.has("SegmentMembers"):
        return {"a_only": 0, "b_only": 0, "both": 0, "neither": customers, "jaccard": 0.0}
    members = db.table("SegmentMembers")

    def of(name: str) -> ibis.Table:
        return members.filter(members.Segment == ibis.literal(name, type="string"))

    return sizes_of(member_flags(of(a), of(b)), customers, fetch=db.rows)


@router.get("/segments/overlap/differences")
def overlap_differences(
    request: Request,
    a: str = Query(..., max_length=200),
    b: str = Query(..., max_length=200),
    user: Principal = Depends(page_user),
) -> HTMLResponse:
    """The fields that differ most between two segments' members (an htmx fragment the
    overlap page loads): seconds at 1M customers, so computed once per run and pair."""
    server = server_of(request)
    _view, db = _database(server)

    def compute() -> list[dict[str, Any]]:
        with open_builder(server, db) as builder:
            return differences(customer_tables(builder), segment_flags(builder, a, b))

    context: dict[str, Any] = {"a": a, "b": b, "differences": None, "error": None}
    try:
        context["differences"] = run_cached(db.run, ("overlap", a, b), compute)
    except BUILDER_ERRORS as e:
        context["error"] = str(e)
    return render(request, "segments/_differences.html", context)


@router.get("/segments/{name}")
def segment_page(request: Request, name: str, user: Principal = Depends(page_user)) -> HTMLResponse:
    server = server_of(request)
    _view, db = _database(server)
    segment = lists.get_segment(name, server=server, db=db)
    definition = segment["definition"] or {}
    members = _members(server, db, name, PREVIEW, 0)
    context = {
        "active": "segments",
        "segment": segment,
        "rules": [rule_text(r) for r in definition.get("rules", [])],
        "combine": COMBINE_TEXT.get(definition.get("combine", "union"), ""),
        "points": _chart_points(segment["history"]),
        "members": members,
    }
    return render(request, "segments/segment.html", context)


@router.get("/segments/{name}/members.csv")
def segment_csv(request: Request, name: str, user: Principal = Depends(page_user)) -> Response:
    """Every member of the segment in the current run: CustomerId, FirstName, LastName, Email."""
    server = server_of(request)
    _view, db = _database(server)
    out = io.StringIO()
    writer: csv.DictWriter | None = None
    offset = 0
    while True:
        page = _members(server, db, name, lists.MAX_LIMIT, offset)
        for row in page["items"]:
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow(row)
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            break
    if writer is None:
        out.write(",".join(("CustomerId", *MEMBER_FIELDS)) + "\n")
    filename = f"{name}.csv".replace('"', "")
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


# -- the builder -------------------------------------------------------------------------------
def _literal(raw: str, dtype: dt.DataType, where: str) -> Literal:
    text = raw.strip()
    kind = _type_name(dtype)
    try:
        if kind == "number":
            number = float(text)
            return Literal(
                int(number) if dtype.is_integer() and number.is_integer() else number, "number"
            )
        if kind == "boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return Literal(text.lower() == "true", "boolean")
        if kind == "date":
            return Literal(parse_date(text), "date")
        if kind == "timestamp":
            return Literal(parse_timestamp(text), "timestamp")
    except ValueError:
        raise RowError(f"{where}: {raw!r} is not a {kind}") from None
    return Literal(raw, "string")


def row_node(field: str, op: str, value: str, fields: dict[str, dt.DataType], where: str) -> Node:
    """One builder row as an expression node (checked against the run's fields)."""
    if field not in fields:
        raise RowError(f"{where}.field: unknown field {field!r}")
    if op not in OPERATORS:
        raise RowError(f"{where}.operator: unknown operator {op!r}")
    column = Field(field)
    if op in NO_VALUE:
        return Op(op, (column,))
    dtype = fields[field]
    if op in TEXT_ONLY:
        if not dtype.is_string():
            raise RowError(f"{where}.operator: '{OPERATORS[op]}' needs a text field")
        return Call(op, (column, Literal(value, "string")))
    if not value.strip() and not dtype.is_string():
        raise RowError(f"{where}.value: a value is needed")
    return Op(op, (column, _literal(value, dtype, f"{where}.value")))


def condition_text(
    rows: list[tuple[str, str, str]], combine: str, fields: dict[str, dt.DataType]
) -> str | None:
    """The rows (empty ones skipped) joined by AND or OR, as expression-language text."""
    nodes = [row_node(f, o, v, fields, f"conditions[{i}]") for i, (f, o, v) in enumerate(rows) if f]
    if not nodes:
        return None
    if len(nodes) == 1:
        return expr.to_text(nodes[0])
    return expr.to_text(Op("or" if combine == "or" else "and", tuple(nodes)))


def _rows(field: list[str], op: list[str], value: list[str]) -> list[tuple[str, str, str]]:
    width = max(len(field), len(op), len(value))

    def at(items: list[str], i: int) -> str:
        return items[i] if i < len(items) else ""

    return [(at(field, i).strip(), at(op, i), at(value, i)) for i in range(width)][:MAX_ROWS]


def count_condition(server: Server, db: lists.RunDatabase, condition: str) -> int:
    """The live count, on the console's engine over the run (`engines.run_engine`): opening
    a builder on a new engine read the schemas of a dozen tables first (~240 ms at 1M)."""
    with run_engine(server.project, db.run) as engine:
        return open_segments(server.project, engine, db.run, db.as_of).count(condition)


def _builder_form(
    request: Request,
    db: lists.RunDatabase,
    form: dict[str, str],
    rows: list[tuple[str, str, str]],
    errors: list[str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    fields = customer_fields(db)
    context = {
        "active": "segments",
        "form": form,
        "rows": rows or [("", "=", "")],
        "fields": [(name, _type_name(t)) for name, t in fields.items() if name != "CustomerId"],
        "operators": OPERATORS,
        "errors": errors or [],
    }
    return render(request, "segments/builder.html", context, status_code=status_code)


@router.get("/segments/new/row")
def builder_row(
    request: Request, user: Principal = Depends(require_page_role("contributor"))
) -> HTMLResponse:
    """One more empty condition row (htmx appends it to the form)."""
    server = server_of(request)
    _view, db = _database(server)
    fields = [(n, _type_name(t)) for n, t in customer_fields(db).items() if n != "CustomerId"]
    context = {"row": ("", "=", ""), "fields": fields, "operators": OPERATORS}
    return render(request, "segments/_row.html", context)


@router.post("/segments/new/count")
def builder_count(
    request: Request,
    field: list[str] = Form([]),
    op: list[str] = Form([]),
    value: list[str] = Form([]),
    combine: str = Form("and"),
    user: Principal = Depends(require_page_role("contributor")),
) -> HTMLResponse:
    """The live count: customers meeting the condition built so far (an htmx fragment)."""
    server = server_of(request)
    _view, db = _database(server)
    context: dict[str, Any] = {"condition": None, "count": None, "error": None}
    try:
        condition = condition_text(_rows(field, op, value), combine, customer_fields(db))
        context["condition"] = condition
        if condition is not None:
            context["count"] = count_condition(server, db, condition)
    except (RowError, *BUILDER_ERRORS) as e:
        context["error"] = str(e)
    return render(request, "segments/_count.html", context)


def _segment_index(server: Server, name: str) -> int:
    names = [s.name for s in server.project.segments]
    return names.index(name) if name in names else len(names)


@router.post("/segments/new")
def builder_save(
    request: Request,
    name: str = Form(""),
    description: str = Form(""),
    field: list[str] = Form([]),
    op: list[str] = Form([]),
    value: list[str] = Form([]),
    combine: str = Form("and"),
    user: Principal = Depends(require_page_role("contributor")),
) -> Response:
    """Write the segment into the project file (validated, comments kept), audit, reload."""
    server = server_of(request)
    _view, db = _database(server)
    rows = _rows(field, op, value)
    form = {"name": name.strip(), "description": description.strip(), "combine": combine}
    path = f"segments[{_segment_index(server, form['name'])}]"
    try:
        condition = condition_text(rows, combine, customer_fields(db))
        if condition is None:
            raise RowError(f"{path}.rules: add at least one condition")
        # Evaluate it once on the run: a condition the data cannot answer is not written.
        with open_builder(server, db) as builder:
            base = builder.base
            builder.condition(condition, f"{path}.rules[0]", base)
        item: dict[str, Any] = {"name": form["name"]}
        if form["description"]:
            item["description"] = form["description"]
        item["rules"] = [condition]
        result = project_edit.upsert(server.project_file, "segments", item)
    except (RowError, *BUILDER_ERRORS) as e:
        return _builder_form(request, db, form, rows, [str(e)], status_code=422)
    except ProjectError as e:
        problems = [p.removeprefix("(top level): ") for p in e.problems]
        return _builder_form(request, db, form, rows, problems, status_code=422)
    server.reload_project()
    server.audit.record(
        user, "config.put", f"segments/{form['name']}", {"result": result, "item": item}
    )
    return RedirectResponse(f"/segments/{form['name']}?saved={result}", status_code=303)
