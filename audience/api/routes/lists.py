"""Read-only lists over the current run: customers (filtered, searched, sorted, paged),
segments and their members, measures and their values, sources with profiles and previews,
and the runs. Every route needs a viewer key.

Queries run on a per-worker in-memory DuckDB with a view per table of the current run
(`audience.warehouse.create_views`), rebuilt when the run changes. Filters are the project's
expression language, checked against the columns and built with Ibis: what a caller types
reaches SQL only as Ibis literals. Each query runs on its own cursor, so requests of one
worker do not wait for each other.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import threading
import weakref
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb
import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa
from fastapi import APIRouter, Depends, HTTPException, Query
from starlette.convertors import Convertor, register_url_convertor

from audience import expr
from audience.api.deps import get_server, get_view, viewer
from audience.api.server import RunView, Server
from audience.project import Project, TableRef
from audience.runs import Run
from audience.warehouse import create_views

router = APIRouter(dependencies=[Depends(viewer)])

MAX_LIMIT = 1000
MAX_OFFSET = 2**40
JSON_COLUMNS = ("Segments", "Predictions")  # CustomerDimension columns holding JSON text
TOP_VALUES = 10


class RunIdConvertor(Convertor[str]):
    """Run ids as runs.py makes them, so `/runs/status` (another router's) is not a run id."""

    regex = r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("run_id", RunIdConvertor())


class QueryError(Exception):
    """A caller's expression that checked but could not be evaluated on the data."""


class RunDatabase:
    """An in-memory DuckDB with a view per table of one run, queried through Ibis."""

    def __init__(self, run: Run):
        self.run = run
        self.backend = ibis.duckdb.connect()
        create_views(self.backend.con, run)
        self._tables: dict[str, ibis.Table] = {}
        self._lock = threading.Lock()
        as_of = run.results.get("as_of")
        # Filters use the run's reference time, as its measures and segments did.
        self.as_of = datetime.fromisoformat(as_of) if as_of else datetime.now(UTC)

    def has(self, name: str) -> bool:
        return name in self.run.tables or (
            name == "CustomerDimension" and "CustomerProfile" in self.run.tables
        )

    def table(self, name: str) -> ibis.Table:
        if not self.has(name):
            raise HTTPException(404, f"the current run ({self.run.id}) has no table {name}")
        with self._lock:  # the schema lookup runs on the shared connection
            if name not in self._tables:
                self._tables[name] = self.backend.table(name)
            return self._tables[name]

    def arrow(self, query: ibis.Table) -> pa.Table:
        sql = self.backend.compile(query)
        cursor = self.backend.con.cursor()
        try:
            return cursor.execute(sql).fetch_arrow_table()
        except duckdb.Error as e:
            raise QueryError(str(e).split("\n")[0]) from None
        finally:
            cursor.close()

    def rows(self, query: ibis.Table) -> list[dict[str, Any]]:
        return [_jsonable_row(r) for r in self.arrow(query).to_pylist()]

    def scalar(self, query: ibis.Scalar) -> Any:
        return self.arrow(query.name("value").as_table()).column(0)[0].as_py()


_databases: weakref.WeakKeyDictionary[Server, RunDatabase] = weakref.WeakKeyDictionary()
_databases_lock = threading.Lock()


def run_database(server: Server, view: RunView) -> RunDatabase:
    """This worker's database over the current run (made again when the run changed)."""
    db = _databases.get(server)
    if db is not None and db.run.id == view.run.id:
        return db
    with _databases_lock:
        db = _databases.get(server)
        if db is None or db.run.id != view.run.id:
            db = RunDatabase(view.run)
            _databases[server] = db
        return db


def database(
    server: Server = Depends(get_server), view: RunView = Depends(get_view)
) -> RunDatabase:
    return run_database(server, view)


# -- values and parameters ----------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: _jsonable(v) for k, v in row.items()}
    for column in JSON_COLUMNS:
        if isinstance(out.get(column), str):
            with contextlib.suppress(ValueError):  # not JSON after all: shown as text
                out[column] = json.loads(out[column])
    return out


def _unknown(what: str, name: str, known: Iterable[str]) -> HTTPException:
    """400 naming an unknown field and the closest known ones."""
    known = sorted(known, key=str.lower)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    folded = [k for k in known if k.lower() == name.lower()]
    hint = f" Did you mean '{(folded or close)[0]}'?" if folded or close else ""
    listed = ", ".join(known[:40]) + (f" (and {len(known) - 40} more)" if len(known) > 40 else "")
    return HTTPException(400, f"unknown {what} '{name}'.{hint} Known: {listed}")


def _fields(table: ibis.Table, fields: str | None) -> list[str]:
    """The columns asked for ('a,b'), CustomerId first when the table has it."""
    columns = table.columns
    if not fields:
        return list(columns)
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    for name in wanted:
        if name not in columns:
            raise _unknown("field", name, columns)
    if "CustomerId" in columns and "CustomerId" not in wanted:
        wanted.insert(0, "CustomerId")
    return list(dict.fromkeys(wanted))


def _order(table: ibis.Table, order: str | None, default: list[str]) -> list[Any]:
    """`field` or `-field` (descending), then the default columns so pages are stable."""
    keys: list[Any] = []
    name = None
    if order and order.strip():
        descending = order.strip().startswith("-")
        name = order.strip().lstrip("-+").strip()
        if name not in table.columns:
            raise _unknown("order field", name, table.columns)
        keys.append(ibis.desc(table[name]) if descending else ibis.asc(table[name]))
    return keys + [table[c] for c in default if c in table.columns and c != name]


def _where(db: RunDatabase, table: ibis.Table, filter_text: str | None) -> ibis.Table:
    if not filter_text or not filter_text.strip():
        return table
    fields = dict(table.schema().items())
    try:
        node = expr.parse(filter_text, path="filter")
        expr.check_condition(node, fields, path="filter", text=filter_text)
        condition = expr.build(node, table, now=db.as_of)
    except expr.ExprError as e:
        raise HTTPException(400, str(e)) from None
    return table.filter(ibis.coalesce(condition, False))


def _search(table: ibis.Table, q: str | None, within: list[str] | None = None) -> ibis.Table:
    """Rows where any text column (of `within`, if given) contains `q`, ignoring case."""
    if not q or not q.strip():
        return table
    needle = ibis.literal(q.strip().lower(), type="string")
    # Not the JSON columns: lower-casing every customer's Predictions document cost 5.5 of
    # the 7.2 s of a search at 1M customers, and their keys ("IsChurn") are not customer text.
    texts = [c for c, t in table.schema().items() if t.is_string() and c not in JSON_COLUMNS]
    texts = [c for c in texts if within is None or c in within]
    if not texts:
        return table.filter(ibis.literal(False))
    found = [table[c].lower().contains(needle).fill_null(False) for c in texts]
    return table.filter(ibis.or_(*found))


def _page(
    db: RunDatabase, table: ibis.Table, columns: list[str], keys: list[Any], limit: int, offset: int
) -> dict[str, Any]:
    try:
        total = int(db.scalar(table.count()))
        items = db.rows(table.order_by(keys).select(*columns).limit(limit, offset=offset))
    except QueryError as e:
        raise HTTPException(400, f"the query could not be evaluated on the data: {e}") from None
    return {"total": total, "limit": limit, "offset": offset, "items": items}


Limit = Query(50, ge=1, le=MAX_LIMIT, description="Rows per page (1 to 1000).")
Offset = Query(0, ge=0, le=MAX_OFFSET, description="Rows skipped.")
Fields = Query(None, max_length=10_000, description="Columns, comma-separated (default: all).")


# -- customers ----------------------------------------------------------------------------


@router.get("/customers", tags=["customers"])
def list_customers(
    filter: str | None = Query(
        None,
        max_length=10_000,
        description="A condition in the expression language, e.g. `ttv > 100 and "
        "Email like '%@x.com'`.",
    ),
    q: str | None = Query(None, max_length=200, description="Text any text column contains."),
    fields: str | None = Fields,
    order: str | None = Query(
        None, max_length=200, description="A column; `-column` for descending."
    ),
    limit: int = Limit,
    offset: int = Offset,
    db: RunDatabase = Depends(database),
) -> dict[str, Any]:
    """Customers of the current run (profile and customer attributes), filtered and paged."""
    table = db.table("CustomerDimension")
    columns = _fields(table, fields)
    keys = _order(table, order, ["CustomerId"])
    table = _search(_where(db, table, filter), q)
    return _page(db, table, columns, keys, limit, offset)


# -- segments -----------------------------------------------------------------------------


def _segment_sizes(run: Run) -> dict[str, int]:
    return dict(
        run.results.get("stages", {}).get("segments", {}).get("detail", {}).get("sizes", {})
    )


def _history(db: RunDatabase) -> dict[str, list[dict[str, Any]]]:
    if not db.has("SegmentHistory"):
        return {}
    table = db.table("SegmentHistory")
    history: dict[str, list[dict[str, Any]]] = {}
    for row in db.rows(table.order_by(["Segment", "AsOf", "RunId"])):
        history.setdefault(row.pop("Segment"), []).append(row)
    return history


def _segment_names(project: Project, run: Run) -> list[str]:
    names = [s.name for s in project.segments]
    return names + sorted(set(_segment_sizes(run)) - set(names))


def _segment(project: Project, run: Run, name: str, history: list[Any]) -> dict[str, Any]:
    definition = next((s for s in project.segments if s.name == name), None)
    sizes = _segment_sizes(run)
    return {
        "name": name,
        "kind": definition.kind if definition else (history[-1]["Kind"] if history else None),
        "description": definition.description if definition else None,
        "definition": (
            definition.model_dump(mode="json", by_alias=True, exclude_none=True)
            if definition
            else None
        ),
        "size": sizes.get(name),
        "in_current_run": name in sizes,
        "history": history,
    }


@router.get("/segments", tags=["segments"])
def list_segments(
    server: Server = Depends(get_server), db: RunDatabase = Depends(database)
) -> dict[str, Any]:
    """Every segment: definition, kind, size in the current run and size over past runs."""
    history = _history(db)
    items = [
        _segment(server.project, db.run, name, history.get(name, []))
        for name in _segment_names(server.project, db.run)
    ]
    return {"total": len(items), "items": items}


def _known_segment(server: Server, db: RunDatabase, name: str) -> None:
    names = _segment_names(server.project, db.run)
    if name not in names:
        known = ", ".join(names) or "none"
        raise HTTPException(404, f"no segment '{name}'; segments: {known}")


@router.get("/segments/{name}", tags=["segments"])
def get_segment(
    name: str, server: Server = Depends(get_server), db: RunDatabase = Depends(database)
) -> dict[str, Any]:
    _known_segment(server, db, name)
    return _segment(server.project, db.run, name, _history(db).get(name, []))


@router.get("/segments/{name}/members", tags=["segments"])
def segment_members(
    name: str,
    fields: str | None = Fields,
    limit: int = Limit,
    offset: int = Offset,
    server: Server = Depends(get_server),
    db: RunDatabase = Depends(database),
) -> dict[str, Any]:
    """The segment's customers in the current run, paged, with the fields asked for."""
    _known_segment(server, db, name)
    customers = db.table("CustomerDimension")
    columns = _fields(customers, fields)
    profile = db.table("CustomerProfile")
    if set(columns) <= set(profile.columns):
        # The dimension joins measures and aggregates every customer's predictions: 0.4 s a
        # query at 1M customers that profile fields alone do not need.
        customers = profile
    if not db.has("SegmentMembers"):
        return {"total": 0, "limit": limit, "offset": offset, "items": []}
    members = db.table("SegmentMembers")
    chosen = members.filter(members.Segment == ibis.literal(name, type="string"))
    table = customers.semi_join(chosen, customers.CustomerId == chosen.CustomerId)
    return _page(db, table, columns, [table.CustomerId], limit, offset)


# -- measures -----------------------------------------------------------------------------


def _measure_info(measure: Any, db: RunDatabase) -> dict[str, Any]:
    if measure.kind == "customer_attribute":
        table = "CustomerAttributes"
        available = db.has(table) and measure.name in db.table(table).columns
    else:
        table = f"Measure_{measure.name}"
        available = db.has(table)
    return {
        "name": measure.name,
        "kind": measure.kind,
        "description": measure.description,
        "definition": measure.model_dump(mode="json", exclude_none=True),
        "table": table,
        "in_current_run": available,
    }


@router.get("/measures", tags=["measures"])
def list_measures(
    server: Server = Depends(get_server), db: RunDatabase = Depends(database)
) -> dict[str, Any]:
    items = [_measure_info(m, db) for m in server.project.measures]
    return {"total": len(items), "items": items}


def _summary(db: RunDatabase, name: str) -> dict[str, Any]:
    """Summary statistics of one customer attribute over all customers."""
    table = db.table("CustomerAttributes")
    column = table[name]
    dtype = column.type()
    stats: dict[str, Any] = {
        "customers": table.count(),
        "values": column.count(),
        "distinct": column.nunique(),
    }
    if dtype.is_numeric() or dtype.is_temporal():
        stats |= {"min": column.min(), "max": column.max()}
    if dtype.is_numeric() and not dtype.is_boolean():
        stats |= {"mean": column.cast(dt.float64).mean(), "sum": column.sum()}
    summary = db.rows(table.aggregate(**stats))[0]
    if not dtype.is_numeric() or dtype.is_boolean():
        top = (
            table.filter(column.notnull())
            .group_by(value=column)
            .aggregate(customers=ibis._.count())
            .order_by([ibis.desc("customers"), "value"])
            .limit(TOP_VALUES)
        )
        summary["top_values"] = db.rows(top)
    summary["nulls"] = summary["customers"] - summary["values"]
    return summary


@router.get("/measures/{name}", tags=["measures"])
def get_measure(
    name: str,
    limit: int = Limit,
    offset: int = Offset,
    server: Server = Depends(get_server),
    db: RunDatabase = Depends(database),
) -> dict[str, Any]:
    """A measure's definition; the values of customer and business measures (paged), the
    summary statistics of a customer attribute."""
    measure = next((m for m in server.project.measures if m.name == name), None)
    if measure is None:
        known = ", ".join(m.name for m in server.project.measures) or "none"
        raise HTTPException(404, f"no measure '{name}'; measures: {known}")
    info = _measure_info(measure, db)
    if not info["in_current_run"]:
        return info | {"values": None, "note": "the current run predates this measure"}
    if measure.kind == "customer_attribute":
        return info | {"summary": _summary(db, name)}
    table = db.table(info["table"])
    keys = [table[c] for c in table.columns if c != name] + [table[name]]
    return info | {"values": _page(db, table, table.columns, keys, limit, offset)}


# -- sources ------------------------------------------------------------------------------


def _ref(project: Project, source: str, table: str) -> TableRef:
    for ref in project.table_refs():
        if ref.source.name == source and ref.table.name == table:
            return ref
    known = ", ".join(r.label for r in project.table_refs()) or "none"
    raise HTTPException(404, f"no source table '{source}.{table}'; tables: {known}")


def _source_info(ref: TableRef, run: Run) -> dict[str, Any]:
    landed = run.results.get("stages", {}).get("ingest", {}).get("detail", {}).get(ref.id, {})
    return {
        "source": ref.source.name,
        "table": ref.table.name,
        "label": ref.label,
        "id": ref.id,
        "kind": ref.source.kind,
        "primary_key": ref.table.primary_key,
        "columns": [{"name": c, "type": t} for c, t in landed.get("columns", {}).items()],
        "rows_in": landed.get("rows_in"),
        "rows_loaded": landed.get("rows_loaded"),
        "rows_quarantined": landed.get("rows_quarantined"),
        "in_current_run": ref.id in run.tables,
    }


@router.get("/sources", tags=["sources"])
def list_sources(
    server: Server = Depends(get_server), db: RunDatabase = Depends(database)
) -> dict[str, Any]:
    """Every source table: its kind, columns and types as landed, rows loaded and
    quarantined in the current run."""
    items = [_source_info(ref, db.run) for ref in server.project.table_refs()]
    return {"total": len(items), "items": items}


@router.get("/sources/{source}/{table}", tags=["sources"])
def get_source(
    source: str,
    table: str,
    server: Server = Depends(get_server),
    db: RunDatabase = Depends(database),
) -> dict[str, Any]:
    """One source table with its column profile (counts, distinct values, top values,
    histograms) from the current run."""
    ref = _ref(server.project, source, table)
    info = _source_info(ref, db.run)
    profile: list[dict[str, Any]] = []
    if db.has("SourceProfile"):
        profiles = db.table("SourceProfile")
        for row in db.rows(profiles.filter(profiles.table == ibis.literal(ref.id, "string"))):
            for key in ("top_values", "histogram"):
                if isinstance(row.get(key), str):
                    row[key] = json.loads(row[key])
            profile.append(row)
    return info | {"profile": profile}


@router.get("/sources/{source}/{table}/preview", tags=["sources"])
def preview_source(
    source: str,
    table: str,
    limit: int = Query(20, ge=1, le=MAX_LIMIT),
    server: Server = Depends(get_server),
    db: RunDatabase = Depends(database),
) -> dict[str, Any]:
    """The first rows of a source table as the current run landed them."""
    ref = _ref(server.project, source, table)
    if ref.id not in db.run.tables:
        raise HTTPException(404, f"the current run has not landed {ref.label}")
    rows = db.rows(db.table(ref.id).limit(limit))
    return {"source": ref.source.name, "table": ref.table.name, "rows": rows}


# -- runs ---------------------------------------------------------------------------------


def _run_summary(run: Run, current: str | None) -> dict[str, Any]:
    results = run.results
    return {
        "id": run.id,
        "status": run.status,
        "current": run.id == current,
        "published": results.get("published"),
        "engine": results.get("engine"),
        "started": results.get("started"),
        "finished": results.get("finished"),
        "seconds": results.get("seconds"),
        "as_of": results.get("as_of"),
        "error": results.get("error"),
        "stages": [
            {
                "name": name,
                "status": stage.get("status"),
                "seconds": stage.get("seconds"),
                "rows": stage.get("rows", {}),
            }
            for name, stage in results.get("stages", {}).items()
        ],
    }


@router.get("/runs", tags=["runs"])
def list_runs(
    limit: int = Query(20, ge=1, le=100), server: Server = Depends(get_server)
) -> dict[str, Any]:
    """Recent runs, newest first, with each stage's status, time and rows."""
    workspace = server.workspace
    current = workspace.current_id()
    runs = workspace.runs()
    return {"total": len(runs), "items": [_run_summary(r, current) for r in runs[:limit]]}


@router.get("/runs/{run_id:run_id}", tags=["runs"])
def get_run(run_id: str, server: Server = Depends(get_server)) -> dict[str, Any]:
    """One run: the summary, each stage's detail and the tables it wrote."""
    from audience.runs import RunError

    workspace = server.workspace
    try:
        run = workspace.load(run_id)
    except RunError:
        raise HTTPException(404, f"no run '{run_id}' (GET /runs lists them)") from None
    summary = _run_summary(run, workspace.current_id())
    summary["stages"] = [
        {"name": name, **{k: v for k, v in stage.items() if k != "name"}}
        for name, stage in run.results.get("stages", {}).items()
    ]
    summary["warnings"] = run.results.get("warnings", [])
    summary["tables"] = sorted(run.tables)
    return _jsonable(summary)
