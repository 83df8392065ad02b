"""The console's data-source pages: the list of source tables, one table (schema, column
profile, first rows, quarantine), and adding a source (a form per connector kind, a
connection test, saving into audience.yaml).

Counts and types come from the current run's run_results.json (already in memory), the
profile from its SourceProfile table and the first rows from the landed Parquet with a LIMIT,
through the list routes' per-run DuckDB: no page scans a source or customer table.

A new source is built from the form as the item audience.yaml would hold, validated with the
project models in the whole project (so errors carry config paths such as
`sources[9].tables[0].primary_key`), checked against the data as `audience validate` does,
and written with `project_edit.upsert`, which keeps the file's comments and order.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from audience import project_edit
from audience.api.auth import Principal
from audience.api.routes import lists
from audience.api.routes.admin import mask_secrets
from audience.api.server import RunView, Server
from audience.console.access import page_user, require_page_role, server_of
from audience.console.pages import render
from audience.ingest import SourceError, _connector, describe_table, landing_connection
from audience.ingest import delta as delta_connector
from audience.ingest import files as file_connector
from audience.ingest import incremental as incremental_connector
from audience.ingest import sql as sql_connector
from audience.ingest.landing import column_problems, sql_str
from audience.project import (
    SOURCE_KINDS,
    CsvOptions,
    Project,
    ProjectError,
    Source,
    TableRef,
    format_loc,
    interpolate_env,
    parse_project,
)
from audience.runs import Run, RunError

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

PREVIEW_ROWS = 20
SAMPLE_ROWS = 5
QUARANTINE_ROWS = 20
REASONS_SCANNED = 50_000  # reasons are grouped over this many quarantined rows at most
KIND_LABELS = {
    "csv": "CSV file",
    "parquet": "Parquet file or folder",
    "json": "JSON or JSON Lines file",
    "cdm": "CDM folder (model.json or manifest)",
    "delta": "Delta table",
    "sql": "SQL database (SQLAlchemy)",
    "incremental": "Incremental folder (full load + hourly changes)",
}
FILE_KINDS = ("csv", "parquet", "json", "delta", "incremental")
FORM_FIELDS = (
    "name", "kind", "description", "table", "path", "primary_key", "timestamp_column", "types",
    "url", "sql_table", "query", "cdm_path", "entity", "format", "delimiter", "quote", "escape",
    "encoding", "header", "null_values", "unchecked",
)  # fmt: skip
FORMATS = {"json": ("auto", "lines", "array"), "incremental": ("csv", "parquet")}
ENCODINGS = ("utf-8", "utf-16", "latin-1")
_SOURCE = TypeAdapter(Source)
_raw_cache: dict[Path, tuple[tuple[int, int, int], dict[str, dict[str, Any]]]] = {}


class FormError(ValueError):
    """A form value that cannot become part of the item (named by its config path)."""


# -- shared ------------------------------------------------------------------------------------
def _view_or_none(server: Server) -> RunView | None:
    try:
        return server.view()
    except RunError:
        return None


def _landed(run: Run | None, ref: TableRef) -> dict[str, Any] | None:
    """What the run's ingest stage recorded for the table (rows, columns and types)."""
    if run is None or ref.id not in run.tables:
        return None
    detail = run.results.get("stages", {}).get("ingest", {}).get("detail", {}).get(ref.id)
    return detail if isinstance(detail, dict) else None


def _raw_sources(server: Server) -> dict[str, dict[str, Any]]:
    """Sources as written in the file, by name: their ${VARS} not replaced, so masking never
    shows a secret that came from the environment."""
    path = project_edit.project_path(server.project_file)
    try:
        stat = path.stat()
    except OSError:
        return {}
    # Edits replace the file (os.replace): a new inode even within one mtime tick.
    stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _raw_cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]  # a round-trip YAML parse costs ~40 ms: once per change of the file
    try:
        items = project_edit.get_path(path, ["sources"]) or []
    except (project_edit.ItemNotFound, ProjectError):
        items = []
    found = {s["name"]: s for s in items if isinstance(s, dict) and isinstance(s.get("name"), str)}
    _raw_cache[path] = (stamp, found)
    return found


def location(ref: TableRef, raw: dict[str, Any] | None = None) -> str:
    """Where a table is read from, secrets masked: a path, a CDM entity or a database URL."""
    source, table = ref.source, ref.table
    if source.kind == "sql":
        url = (raw or {}).get("url") or source.url
        return f"{mask_secrets(url)} · " + (f"table {table.table}" if table.table else "query")
    if source.kind == "cdm":
        return f"{source.path} · entity {table.entity or table.name}"
    return table.path


def _ref_or_404(server: Server, source: str, table: str) -> TableRef:
    for ref in server.project.table_refs():
        if (ref.source.name, ref.table.name) == (source, table):
            return ref
    known = ", ".join(r.label for r in server.project.table_refs()) or "none"
    raise HTTPException(404, f"no source table '{source}.{table}'; tables: {known}")


# -- the list ----------------------------------------------------------------------------------
@router.get("/sources")
def sources_page(request: Request, user: Principal = Depends(page_user)) -> HTMLResponse:
    server = server_of(request)
    view = _view_or_none(server)
    run = view.run if view else None
    project = server.project
    raw = _raw_sources(server) if any(s.kind == "sql" for s in project.sources) else {}
    rows = []
    for ref in project.table_refs():
        landed = _landed(run, ref)
        rows.append(
            {
                "ref": ref,
                "location": location(ref, raw.get(ref.source.name)),
                "loaded": landed.get("rows_loaded") if landed else None,
                "quarantined": landed.get("rows_quarantined") if landed else None,
                "columns": len(landed.get("columns") or {}) if landed else None,
            }
        )
    context = {"active": "sources", "rows": rows, "run": run, "sources": len(project.sources)}
    return render(request, "sources/list.html", context)


# -- adding a source ---------------------------------------------------------------------------
def _form(values: Any) -> dict[str, str]:
    """The form's fields as text (absent ones empty); an unknown kind is csv."""
    form = {f: str(values.get(f) or "").strip() for f in FORM_FIELDS}
    form["kind"] = form["kind"] if form["kind"] in SOURCE_KINDS else "csv"
    if form["format"] not in FORMATS.get(form["kind"], ()):
        form["format"] = FORMATS.get(form["kind"], ("",))[0]
    form["encoding"] = form["encoding"] if form["encoding"] in ENCODINGS else "utf-8"
    form["header"] = "no" if form["header"] == "no" else "yes"
    return form


async def _posted(request: Request) -> dict[str, str]:
    """A dependency: the posted form (read once; the CSRF check may have read it already)."""
    return _form(await request.form())


def _csv_options(form: dict[str, str]) -> dict[str, Any]:
    """CSV options that differ from the defaults (the file stays as short as it can)."""
    options: dict[str, Any] = {}
    delimiter = {"\\t": "\t", "tab": "\t"}.get(form["delimiter"].lower(), form["delimiter"])
    if delimiter and delimiter != ",":
        options["delimiter"] = delimiter
    if form["quote"] and form["quote"] != '"':
        options["quote"] = form["quote"]
    if form["escape"]:
        options["escape"] = form["escape"]
    if form["encoding"] != "utf-8":
        options["encoding"] = form["encoding"]
    if form["header"] == "no":
        options["header"] = False
    extra = [v.strip() for v in form["null_values"].split(",") if v.strip()]
    if extra:
        options["null_values"] = ["", *extra]  # an empty field stays a missing value
    return options


def _types(text: str, where: str) -> dict[str, Any]:
    """Type overrides, one `column: type [strptime format]` a line."""
    out: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        column, colon, rest = line.partition(":")
        kind, _, fmt = rest.strip().partition(" ")
        if not colon or not column.strip() or not kind:
            raise FormError(
                f"{where}.types: line {number} ({line!r}): write 'column: type', e.g. "
                "'postal_code: string' or 'birthday: date %m/%d/%Y'"
            )
        out[column.strip()] = {"type": kind, "format": fmt.strip()} if fmt.strip() else kind
    return out


def source_item(form: dict[str, str], index: int, for_test: bool = False) -> dict[str, Any]:
    """The source as audience.yaml holds it. For a connection test, the name, the table name
    and the keys may still be missing: placeholders stand in, only the location counts."""
    where, kind = f"sources[{index}]", form["kind"]
    item: dict[str, Any] = {
        "name": form["name"] or ("new_source" if for_test else ""),
        "kind": kind,
    }
    if form["description"]:
        item["description"] = form["description"]
    if kind == "sql":
        item["url"] = form["url"]
    if kind == "cdm":
        item["path"] = form["cdm_path"]
    if kind in FORMATS and form["format"] != FORMATS[kind][0]:
        item["format"] = form["format"]
    if kind in ("csv", "incremental") and (options := _csv_options(form)):
        item["options"] = options
    table: dict[str, Any] = {"name": form["table"] or ("table1" if for_test else "")}
    if kind in FILE_KINDS:
        table["path"] = form["path"]
    elif kind == "cdm" and form["entity"]:
        table["entity"] = form["entity"]
    elif kind == "sql":
        # Neither or both given: the model says "give exactly one of 'table' or 'query'".
        table |= {"table": form["sql_table"]} if form["sql_table"] else {}
        table |= {"query": form["query"]} if form["query"] else {}
    table["primary_key"] = form["primary_key"]
    if form["timestamp_column"]:
        table["timestamp_column"] = form["timestamp_column"]
    if types := _types(form["types"], f"{where}.tables[0]"):
        table["types"] = types
    item["tables"] = [table]
    # Said here, by config path, rather than as a file that cannot be found or a name that
    # does not match a pattern.
    needed = {
        f"{where}.path": kind == "cdm" and not form["cdm_path"],
        f"{where}.url": kind == "sql" and not form["url"],
        f"{where}.tables[0].path": kind in FILE_KINDS and not form["path"],
        f"{where}.name": not for_test and not form["name"],
        f"{where}.tables[0].name": not for_test and not form["table"],
        f"{where}.tables[0].primary_key": not for_test and not form["primary_key"],
    }
    missing = [f"{path}: required" for path, empty in needed.items() if empty]
    if missing:
        raise FormError("; ".join(missing))
    return item


def _candidate(server: Server, item: dict[str, Any]) -> tuple[Project, TableRef]:
    """The project with the item appended, validated as the project file would be."""
    data = project_edit.get_path(server.project_file)
    data["sources"] = [*(data.get("sources") or []), item]
    project = parse_project(data, server.project_file, server.project_file.parent)
    source = project.sources[-1]
    return project, TableRef(source, source.tables[0])


def _test_ref(server: Server, item: dict[str, Any], index: int) -> tuple[Project, TableRef]:
    """The item as a source of the current project, validated on its own (a name used twice
    is for saving to report, not the connection test)."""
    problems: list[str] = []
    data = interpolate_env(item, f"sources[{index}]", problems)
    if problems:
        raise FormError("; ".join(problems))
    try:
        source = _SOURCE.validate_python(data)
    except ValidationError as e:
        raise FormError(
            "; ".join(
                f"{format_loc(('sources', index, *err['loc']))}: "
                + err["msg"].removeprefix("Value error, ")
                for err in e.errors()
            )
        ) from None
    project = server.project.model_copy(update={"sources": [*server.project.sources, source]})
    return project, TableRef(source, source.tables[0])


def _file_query(path: Path, csv: CsvOptions | None) -> str:
    """DuckDB's reader for a CSV file (with the source's options) or Parquet files."""
    if csv is not None:
        options = file_connector.csv_options_sql(csv)
        return f"read_csv({sql_str(str(path))}, {options}, ignore_errors=true)"
    pattern = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
    return f"read_parquet({sql_str(pattern)}, union_by_name=true)"


def _first_rows(query: str, where: str, what: str) -> tuple[list[str], list[list[Any]]]:
    with duckdb.connect() as con:
        try:
            result = con.execute(f"SELECT * FROM {query} LIMIT {SAMPLE_ROWS}")
        except duckdb.Error as e:
            raise SourceError(f"{where}: cannot read {what}: {e}") from None
        return [d[0] for d in result.description], [list(r) for r in result.fetchall()]


def _sample(project: Project, ref: TableRef, where: str) -> tuple[list[str], list[list[Any]]]:
    """The first rows of a table, read as its connector reads it (bounded where it can be)."""
    kind, source = ref.source.kind, ref.source
    if kind in ("csv", "parquet"):
        path = file_connector.resolve_file(project, ref, where, must_be_file=kind == "csv")
        query = _file_query(path, source.options if kind == "csv" else None)
        return _first_rows(query, f"{where}.path", ref.table.path)
    if kind == "incremental":
        # The first file of the full load (or of the first hour's upserts): resolving the
        # changes needs the primary key, which the form may not have yet.
        folder, at = incremental_connector._folder(ref, project, where)
        files, _, _ = incremental_connector._files(folder, at, source.format, datetime.now(UTC))
        data = [f.path for f in files if f.kind != "delete"]
        data = [p for p in data if incremental_connector._is_data_file(p, source.format)]
        if not data:
            raise SourceError(f"{at}: no {source.format} files in {ref.table.path}")
        query = _file_query(data[0], source.options if source.format == "csv" else None)
        return _first_rows(query, at, str(data[0].relative_to(folder)))
    if kind == "sql":
        return _sql_sample(project, ref, where)
    if kind == "delta":
        head = delta_connector._open(ref, project, where).to_pyarrow_dataset().head(SAMPLE_ROWS)
        return head.column_names, [list(r.values()) for r in head.to_pylist()]
    # JSON and CDM folders: the connector's own read, into a scratch DuckDB.
    scratch = Path(tempfile.mkdtemp(prefix="audience-source-test-"))
    con = landing_connection(project, scratch)
    try:
        _connector(kind, 0)(con, ref, project, where)
        result = con.execute(f"SELECT * EXCLUDE (_row) FROM _raw LIMIT {SAMPLE_ROWS}")
        columns = [d[0] for d in result.description]
        rows = [list(r) for r in result.fetchall()]
        keep = [i for i, c in enumerate(columns) if c != "_file"]
        return [columns[i] for i in keep], [[r[i] for i in keep] for r in rows]
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _sql_sample(project: Project, ref: TableRef, where: str) -> tuple[list[str], list[list[Any]]]:
    engine, url = sql_connector._engine(ref, project, where)
    table = ref.table
    try:
        with sql_connector._connect(engine, url, where) as conn:
            if table.table:
                schema, _, name = table.table.rpartition(".")
                stmt: Any = sa.select(sa.text("*")).select_from(
                    sa.table(name, schema=schema or None)
                )
                stmt = stmt.limit(SAMPLE_ROWS)
            else:
                query = sql_connector._query_text(table.query)
                if engine.dialect.name in sql_connector.LIMIT_DIALECTS:
                    query = f"SELECT * FROM (\n{query}\n) AS _q LIMIT {SAMPLE_ROWS}"
                stmt = sa.text(query)
            try:
                result = conn.execution_options(stream_results=True).execute(stmt)
                rows = [list(r) for r in result.fetchmany(SAMPLE_ROWS)]
                columns = list(result.keys())
                result.close()
            except sa.exc.DBAPIError as e:
                what = f"cannot read '{table.table}'" if table.table else "query failed"
                key = "table" if table.table else "query"
                reason = sql_connector._reason(e, url)
                raise SourceError(f"{where}.{key}: {what}: {reason}") from None
            return columns, rows
    finally:
        engine.dispose()


def connection_test(project: Project, ref: TableRef, where: str) -> dict[str, Any]:
    """Columns (as `audience validate` reads them), the first rows, and the keys the form
    names that the table lacks. Raises SourceError when the table cannot be read."""
    started = time.perf_counter()
    columns = describe_table(project, ref)
    sample_columns, rows = _sample(project, ref, where)
    problems = [
        p
        for p in column_problems(ref, where, columns)
        if ref.table.primary_key or ".primary_key:" not in p
    ]
    return {
        "columns": columns,
        "sample_columns": sample_columns,
        "rows": [[lists._jsonable(v) for v in row] for row in rows],
        "problems": problems,
        "ms": round((time.perf_counter() - started) * 1000),
    }


def _secret_free(message: str, item: dict[str, Any]) -> str:
    """An error message with connection-URL passwords masked, also those from ${VARS}."""
    text = mask_secrets(message)
    url = item.get("url")
    if isinstance(url, str):
        try:
            password = sa.engine.make_url(interpolate_env(url)).password
        except (sa.exc.ArgumentError, ValueError):
            password = None
        if password:
            text = text.replace(str(password), "***")
    return text


def _new_form(
    request: Request,
    form: dict[str, str],
    errors: list[str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    server = server_of(request)
    context = {
        "active": "sources",
        "form": form,
        "kinds": KIND_LABELS,
        "formats": FORMATS,
        "encodings": ENCODINGS,
        "index": len(server.project.sources),
        "errors": errors or [],
    }
    return render(request, "sources/new.html", context, status_code=status_code)


@router.get("/sources/new")
def new_source_page(
    request: Request, user: Principal = Depends(require_page_role("administrator"))
) -> HTMLResponse:
    return _new_form(request, _form(request.query_params))


@router.get("/sources/new/fields")
def new_source_fields(
    request: Request, user: Principal = Depends(require_page_role("administrator"))
) -> HTMLResponse:
    """The fields of one connector kind (htmx swaps them in when the kind changes)."""
    context = {"form": _form(request.query_params), "formats": FORMATS, "encodings": ENCODINGS}
    return render(request, "sources/_kind_fields.html", context)


@router.post("/sources/new/test")
def new_source_test(
    request: Request,
    form: dict[str, str] = Depends(_posted),
    user: Principal = Depends(require_page_role("administrator")),
) -> HTMLResponse:
    """Read the table the form describes: its columns and first rows, or what went wrong."""
    server = server_of(request)
    index = len(server.project.sources)
    context: dict[str, Any] = {"error": None, "result": None}
    item: dict[str, Any] = {}
    try:
        item = source_item(form, index, for_test=True)
        project, ref = _test_ref(server, item, index)
        context["result"] = connection_test(project, ref, f"sources[{index}].tables[0]")
    except (FormError, SourceError) as e:
        context["error"] = _secret_free(str(e), item)
    except Exception as e:  # a driver's or library's own error: shown, never a 500
        log.warning("connection test failed", exc_info=True)
        context["error"] = _secret_free(f"{type(e).__name__}: {e}", item)
    return render(request, "sources/_test.html", context)


@router.post("/sources/new")
def new_source_save(
    request: Request,
    form: dict[str, str] = Depends(_posted),
    user: Principal = Depends(require_page_role("administrator")),
) -> Response:
    """Validate the source in the whole project and against its data, then append it to
    audience.yaml (comments and order kept), reload, audit, and show its page."""
    server = server_of(request)
    index = len(server.project.sources)
    item: dict[str, Any] = {}
    try:
        item = source_item(form, index)
        project, ref = _candidate(server, item)
        if not form["unchecked"]:
            where = ref.config_path(project)
            problems = column_problems(ref, where, describe_table(project, ref))
            if problems:
                return _new_form(request, form, problems, status_code=422)
        # The checks above ran on the whole file with the source appended; upsert checks it
        # again under the file lock, so a change made meanwhile is validated too.
        result = project_edit.upsert(server.project_file, "sources", item)
    except (FormError, SourceError) as e:
        return _new_form(request, form, [_secret_free(str(e), item)], status_code=422)
    except ProjectError as e:
        problems = [_secret_free(p.removeprefix("(top level): "), item) for p in e.problems]
        return _new_form(request, form, problems, status_code=422)
    server.reload_project()
    server.audit.record(
        user,
        "config.put",
        f"sources/{item['name']}",
        mask_secrets({"result": result, "item": item}),
    )
    table = item["tables"][0]["name"]
    return RedirectResponse(f"/sources/{item['name']}/{table}?saved={result}", status_code=303)


# -- one table ---------------------------------------------------------------------------------
def _profile(server: Server, db: lists.RunDatabase, ref: TableRef) -> list[dict[str, Any]]:
    """The table's SourceProfile rows, with the share of each top value among the rows."""
    info = lists.get_source(ref.source.name, ref.table.name, server=server, db=db)
    for column in info["profile"]:
        total = column.get("count") or 0
        top = column.get("top_values") or []
        column["top"] = [
            {"value": v, "count": n, "share": (n / total) if total else 0} for v, n in top
        ]
        hist = column.get("histogram") or []
        column["histogram"] = hist if len(hist) > 0 else None
    return info["profile"]


def _quarantine(db: lists.RunDatabase, ref: TableRef) -> dict[str, Any]:
    """Quarantined rows of the table: reasons grouped (values taken out) and the first rows."""
    folder = db.run.table_path("Quarantine") if "Quarantine" in db.run.tables else None
    path = folder / f"{ref.id}.parquet" if folder else None
    if path is None or not path.is_file():
        return {"reasons": [], "rows": [], "scanned": 0}
    # Reasons name values ('= C000179', 'column x: 13/45/2020 is not ...'): grouped without.
    kind = (
        "CASE WHEN starts_with(reason, 'duplicate primary key') THEN split_part(reason, ' = ', 1) "
        "WHEN starts_with(reason, 'column ') AND contains(reason, ' is not ') "
        "THEN regexp_replace(reason, ': .* is not ', ': a value is not ') "
        "WHEN strpos(reason, ':') > 0 THEN split_part(reason, ':', 1) ELSE reason END"
    )
    source = f"read_parquet({sql_str(str(path))})"
    cursor = db.backend.con.cursor()
    try:
        reasons = cursor.execute(
            f"SELECT {kind} AS kind, count(*) AS n, min(reason) AS example "
            f"FROM (SELECT reason FROM {source} LIMIT {REASONS_SCANNED}) "
            "GROUP BY kind ORDER BY n DESC, kind LIMIT 20"
        ).fetchall()
        rows = cursor.execute(
            f'SELECT "row", "column", reason, raw FROM {source} LIMIT {QUARANTINE_ROWS}'
        ).fetchall()
    finally:
        cursor.close()
    return {
        "reasons": [{"kind": k, "count": n, "example": e} for k, n, e in reasons],
        "rows": [{"row": r, "column": c, "reason": why, "raw": raw} for r, c, why, raw in rows],
        "scanned": REASONS_SCANNED,
    }


@router.get("/sources/{source}/{table}")
def source_page(
    request: Request, source: str, table: str, user: Principal = Depends(page_user)
) -> HTMLResponse:
    server = server_of(request)
    ref = _ref_or_404(server, source, table)
    view = _view_or_none(server)
    landed = _landed(view.run if view else None, ref)
    raw = _raw_sources(server).get(ref.source.name) if ref.source.kind == "sql" else None
    context: dict[str, Any] = {
        "active": "sources",
        "ref": ref,
        "location": location(ref, raw),
        "landed": landed,
        "run": view.run if view else None,
        "profile": [],
        "preview": None,
        "quarantine": None,
    }
    if view is not None and landed is not None:
        db = lists.run_database(server, view)
        context["profile"] = _profile(server, db, ref)
        preview = lists.preview_source(source, table, limit=PREVIEW_ROWS, server=server, db=db)
        context["preview"] = {"columns": list(landed.get("columns") or {}), "rows": preview["rows"]}
        if landed.get("rows_quarantined"):
            context["quarantine"] = _quarantine(db, ref)
    return render(request, "sources/table.html", context)
