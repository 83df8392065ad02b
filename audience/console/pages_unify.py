"""The console's unify pages: the overview (match statistics, cluster sizes, giant clusters),
the semantic mapping with `audience suggest`'s proposals, merge policies, "explain this
customer" and the dry run. The rules page, and the helpers these pages share, are in
pages_unify_rules.py (its router is included here).

What a page reads from a run is aggregated in DuckDB over the run's Parquet (cluster sizes
are one GROUP BY over AlternateKey) and cached per run id: a run's files never change. Every
change goes through project_edit: the whole file is validated as a project file and written
with its comments; problems are shown with their config path and nothing is written.
"""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import duckdb
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from audience import project_edit
from audience.api.auth import Principal
from audience.api.runner import RunInProgress, run_lock
from audience.api.server import Server
from audience.console.access import page_user, require_page_role, server_of
from audience.console.pages import render, run_warnings
from audience.console.pages_unify_rules import (
    ADMIN,
    current_run,
    field_choices,
    is_admin,
    problems_of,
    run_cached,
    run_rule_counts,
    scratch_engine,
    sql_path,
    unify_config,
    write_config,
)
from audience.console.pages_unify_rules import router as rules_router
from audience.engine import Engine, EngineError
from audience.pipeline import Context, SilentReporter, ingest_stage, unify_stage
from audience.project import Project, ProjectError, TableRef
from audience.runs import Run, RunError, StageResult
from audience.unify.config import UnifyConfig
from audience.unify.explain import ExplainError, compare_runs, explain
from audience.unify.merge import profile_columns
from audience.unify.prepare import Prepared, table_infos
from audience.unify.suggest import MIN_CONFIDENCE, Suggestion, suggest_for_project

router = APIRouter(include_in_schema=False)
router.include_router(rules_router)

MERGE_POLICIES = ("importance", "most_recent", "least_recent", "most_frequent")
GROUP_POLICIES = ("importance", "most_recent", "least_recent")
DRY_RUN = "console_dry_run"  # the key a console dry run leaves in its run_results.json
DIFF_SHOWN = 20


# -- overview ----------------------------------------------------------------------------------
def run_statistics(run: Run) -> dict[str, Any]:
    """The run's UnifyStatistics (name -> JSON value); run_results.json's copy without the
    giant clusters if the table is missing."""

    def compute() -> dict[str, Any]:
        try:
            path = run.table_path("UnifyStatistics")
        except RunError:
            detail = run.results.get("stages", {}).get("unify", {}).get("detail") or {}
            return dict(detail.get("statistics") or {})
        rows = duckdb.connect().execute(f"SELECT name, value FROM read_parquet({sql_path(path)})")
        return {name: json.loads(value) for name, value in rows.fetchall()}

    return run_cached(run, ("statistics",), compute)


BINS = ((11, 20), (21, 50), (51, 100), (101, None))  # above 10 records: wider bars


def _binned(sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """(records per customer, customers) -> chart bars: one per size up to 10, then bins."""
    bars: dict[str, dict[str, Any]] = {}
    for size, customers in sorted(sizes):
        low, high = next(
            ((lo, hi) for lo, hi in BINS if lo <= size and (hi is None or size <= hi)),
            (size, size),
        )
        label = str(size) if low == size == high else f"{low}–{high}" if high else f"{low}+"
        bar = bars.setdefault(label, {"label": label, "customers": 0, "largest": 0})
        bar["customers"] += customers
        bar["largest"] = max(bar["largest"], size)
    return list(bars.values())


def cluster_histogram(run: Run) -> list[dict[str, Any]]:
    """Customers by how many source records they have. The run records this distribution in
    UnifyStatistics (cluster_sizes, computed in its engine); runs without it are counted here
    in DuckDB over AlternateKey (one GROUP BY; ~0.5 s at 1.5M records, cached per run)."""
    recorded = run_statistics(run).get("cluster_sizes")
    if recorded:
        return _binned([(s["size"], s["customers"]) for s in recorded])

    def compute() -> list[dict[str, Any]]:
        path = run.table_path("AlternateKey")
        rows = duckdb.connect().execute(
            "SELECT n, count(*) FROM (SELECT count(*) AS n FROM read_parquet("
            f"{sql_path(path)}) GROUP BY CustomerId) GROUP BY n"
        )
        return _binned(rows.fetchall())

    return run_cached(run, ("histogram",), compute)


@router.get("/unify")
def overview(request: Request, user: Principal = Depends(page_user)) -> HTMLResponse:
    server = server_of(request)
    run = current_run(server)
    config = server.project.unify
    context: dict[str, Any] = {"active": "unify", "run": run, "config": config}
    if run is not None and "AlternateKey" in run.tables:
        stats = run_statistics(run)
        counts = run_rule_counts(run).items()
        pairs = [{"left": a, "right": b, "kind": k, "rule": r, **v} for (a, b, k, r), v in counts]
        pairs.sort(key=lambda p: (p["kind"], p["left"], p["right"], p["rule"]))
        context |= {
            "stats": stats,
            "pairs": pairs,
            "histogram": cluster_histogram(run),
            "giants": stats.get("giant_clusters") or [],
            "warnings": [w for w in run_warnings(run) if w.startswith("unify")],
            "max_size": config.cluster.max_size if config else None,
        }
        giant = context["max_size"] or 10**9
        context["colors"] = [
            "#b42318" if b["largest"] > giant else "#2458c6" for b in context["histogram"]
        ]
    return render(request, "unify/overview.html", context)


# -- mapping -----------------------------------------------------------------------------------
def landed_columns(run: Run, ref: TableRef) -> dict[str, str] | None:
    """The source table's columns and types as the run landed it, or None if it did not."""
    if ref.id not in run.tables:
        return None

    def compute() -> dict[str, str]:
        path = run.path / run.tables[ref.id]
        source = path / "*.parquet" if path.is_dir() else path  # Spark writes folders
        rows = duckdb.connect().execute(f"DESCRIBE SELECT * FROM read_parquet({sql_path(source)})")
        return {name: kind.lower() for name, kind, *_ in rows.fetchall()}

    return run_cached(run, ("columns", ref.id), compute)


def table_suggestions(project: Project, run: Run, ref: TableRef) -> dict[str, Suggestion]:
    """`audience suggest` on the table as the run landed it (1,000 values per column)."""

    def compute() -> dict[str, Suggestion]:
        landed = {ref.label: run.path / run.tables[ref.id]}
        with scratch_engine(project) as engine:
            found = suggest_for_project(engine, project, landed, [ref.label])
        return {s.column: s for s in found}

    return run_cached(run, ("suggest", ref.id), compute)


def mapping_rows(server: Server, index: int) -> tuple[str, list[dict[str, Any]]]:
    """One unified table's columns: type in the data, mapping, suggestion and confidence."""
    project = server.project
    config = unify_config(server)
    if not 0 <= index < len(config.tables):
        raise HTTPException(404, f"no unify.tables[{index}]")
    table = config.tables[index]
    ref = project.table_ref(table.table)
    run = current_run(server)
    columns = landed_columns(run, ref) if run is not None else None
    suggestions = table_suggestions(project, run, ref) if columns is not None else {}
    names = list(columns or {}) + [c for c in table.fields if c not in (columns or {})]
    rows = []
    for column in names:
        s = suggestions.get(column)
        mapped = table.fields.get(column)
        rows.append(
            {
                "column": column,
                "type": (columns or {}).get(column),
                "missing": columns is not None and column not in columns,
                "mapped": mapped,
                "suggestion": s.semantic if s else None,
                "confidence": s.confidence if s else None,
                "reasons": "; ".join(s.reasons) if s else "",
                "key": column == ref.table.primary_key,
                # Worth a look: a type proposed for an unmapped column, or another than mapped.
                "proposal": bool(s and s.semantic and s.semantic != mapped),
                "weak": bool(s and s.confidence < MIN_CONFIDENCE),
            }
        )
    return table.table, rows


@router.get("/unify/mapping")
def mapping_page(request: Request, user: Principal = Depends(page_user)) -> HTMLResponse:
    server = server_of(request)
    config = unify_config(server)
    context = {
        "active": "unify",
        "tables": [(i, t.table) for i, t in enumerate(config.tables)],
        "run": current_run(server),
    }
    return render(request, "unify/mapping.html", context)


def _mapping_fragment(
    request: Request,
    user: Principal,
    index: int,
    saved: str | None = None,
    error: str | None = None,
    only: str | None = None,
) -> HTMLResponse:
    server = server_of(request)
    label, rows = mapping_rows(server, index)
    if only is not None:
        rows = [r for r in rows if r["column"] == only]
    context = {
        "index": index,
        "label": label,
        "rows": rows,
        "types": field_choices(unify_config(server)),
        "admin": is_admin(user),
        "saved": saved,
        "error": error,
        "single": only is not None,
    }
    return render(request, "unify/_mapping_rows.html", context)


@router.get("/unify/mapping/{index}")
def mapping_table(
    request: Request, index: int, user: Principal = Depends(page_user)
) -> HTMLResponse:
    """A table's rows with suggestions (loaded after the page: suggesting samples the data)."""
    return _mapping_fragment(request, user, index)


@router.post("/unify/mapping")
def save_mapping(
    request: Request,
    table: int = Form(...),
    column: str = Form(..., max_length=300),
    semantic: str = Form("", max_length=100),
    user: Principal = Depends(require_page_role(ADMIN)),
) -> HTMLResponse:
    """Map a column to a type (Accept, or the select), or unmap it; answers with the row."""
    server = server_of(request)
    current_run(server)  # picks up a project file changed elsewhere
    config = unify_config(server)
    if not 0 <= table < len(config.tables):
        raise HTTPException(404, f"no unify.tables[{table}]")
    fields = config.tables[table].fields
    where = f"unify.tables[{table}].fields.{column}"
    _label, rows = mapping_rows(server, table)
    semantic = semantic.strip()
    error = None
    if column not in {r["column"] for r in rows}:
        error = f"{where}: {config.tables[table].table} has no column '{column}'"
    elif semantic and (taken := [c for c, s in fields.items() if s == semantic and c != column]):
        error = f"{where}: {semantic} is already given to '{taken[0]}'; map one column per type"
    elif semantic != (fields.get(column) or ""):
        path: list[str | int] = ["unify", "tables", table, "fields", column]
        if semantic:
            change = partial(project_edit.set_path, server.project_file, path, semantic)
        else:
            change = partial(project_edit.remove_path, server.project_file, path)
        try:
            write_config(
                server, user, "/".join(map(str, path)), change, {"value": semantic or None}
            )
        except ProjectError as e:
            error = "; ".join(problems_of(e))
    # 200 with the error in the row: htmx does not swap error statuses in.
    saved = None if error else (semantic or "not mapped")
    return _mapping_fragment(request, user, table, saved, error, only=column)


# -- merge -------------------------------------------------------------------------------------
def merge_rows(project: Project, config: UnifyConfig) -> list[dict[str, Any]]:
    """Every profile column with its policy: configured in unify.merge.fields, or the default
    (a column per mapped type, named after it, importance in unify.tables order)."""
    infos = table_infos(project, config)
    mapped = sorted({s for info in infos for s in info.columns})
    prepared = Prepared(None, infos, mapped)  # type: ignore[arg-type]  # only the mapping is read
    every = profile_columns(prepared, config.merge.model_copy(update={"exclude": []}))
    configured = {f.field: i for i, f in enumerate(config.merge.fields)}
    in_group = {name: g.name for g in config.merge.groups for name in g.fields}

    def row(c: Any, unmapped: bool = False) -> dict[str, Any]:
        at = configured.get(c.field)
        return {
            "name": c.name,
            "field": c.field,
            "policy": c.policy,
            "ranking": c.ranking,
            "where": None if at is None else f"unify.merge.fields[{at}]",
            "excluded": c.name in config.merge.exclude,
            "group": in_group.get(c.name),
            "unmapped": unmapped,  # configured, but no table maps its type
        }

    rows = [row(c) for c in every]
    rows += [row(f, True) for f in config.merge.fields if f.field not in mapped]
    return rows


def _merge_page(
    request: Request,
    user: Principal,
    errors: list[str] | None = None,
    status_code: int = 200,
    saved: str | None = None,
) -> HTMLResponse:
    server = server_of(request)
    project = server.project
    config = unify_config(server)
    try:
        rows = merge_rows(project, config)
    except ValueError as e:  # two columns of a table mapped to one type
        rows, errors = [], [*(errors or []), str(e)]
    context = {
        "active": "unify",
        "rows": rows,
        "groups": [
            {**g.model_dump(), "where": f"unify.merge.groups[{i}]"}
            for i, g in enumerate(config.merge.groups)
        ],
        "tables": [
            (t.table, project.table_ref(t.table).table.timestamp_column) for t in config.tables
        ],
        "policies": MERGE_POLICIES,
        "group_policies": GROUP_POLICIES,
        "errors": errors or [],
        "saved": saved,
        "admin": is_admin(user),
    }
    return render(request, "unify/merge.html", context, status_code=status_code)


@router.get("/unify/merge")
def merge_page(
    request: Request,
    saved: str = Query("", max_length=200),
    user: Principal = Depends(page_user),
) -> HTMLResponse:
    return _merge_page(request, user, saved=saved or None)


def _ranking(text: str, config: UnifyConfig, where: str) -> list[str]:
    ranking = [t.strip() for t in text.split(",") if t.strip()]
    tables = [t.table for t in config.tables]
    unknown = [t for t in ranking if t not in tables]
    if unknown:
        raise ValueError(
            f"{where}.ranking: {', '.join(unknown)} not in unify.tables ({', '.join(tables)})"
        )
    return ranking


def _written_merge(server: Server) -> dict[str, Any]:
    try:
        merge = project_edit.get_path(server.project_file, ["unify", "merge"])
    except project_edit.ItemNotFound:
        return {}
    return dict(merge) if isinstance(merge, dict) else {}


def _save_merge(
    request: Request, user: Principal, merge: dict[str, Any], saved: str, detail: dict
) -> Response:
    server = server_of(request)
    try:
        write_config(
            server,
            user,
            "unify/merge",
            lambda: project_edit.set_path(server.project_file, ["unify", "merge"], merge),
            detail,
        )
    except ProjectError as e:
        return _merge_page(request, user, problems_of(e), status_code=422)
    return RedirectResponse(f"/unify/merge?saved={quote(saved)}", status_code=303)


@router.post("/unify/merge/field")
def save_merge_field(
    request: Request,
    field: str = Form(..., max_length=100),
    name: str = Form("", max_length=100),
    policy: str = Form("importance", max_length=40),
    ranking: str = Form("", max_length=2000),
    exclude: str = Form(""),
    user: Principal = Depends(require_page_role(ADMIN)),
) -> Response:
    """A profile column's name, policy and ranking, and whether it is left out. A rename
    follows into unify.merge.exclude and the groups."""
    server = server_of(request)
    config = unify_config(server)
    merge = _written_merge(server)
    fields = [dict(f) for f in merge.get("fields") or []]
    at = next((i for i, f in enumerate(fields) if f.get("field") == field), len(fields))
    where = f"unify.merge.fields[{at}]"
    current = {r["field"]: r["name"] for r in merge_rows(server.project, config)}
    old = current.get(field)
    name = name.strip() or (old or "")
    try:
        if old is None:
            raise ValueError(f"{where}.field: no table maps a column to {field}")
        clash = next((f for f, n in current.items() if n == name and f != field), None)
        if clash:
            raise ValueError(f"{where}.name: '{name}' is already the column of {clash}")
        entry: dict[str, Any] = {"name": name, "field": field, "policy": policy}
        if ranked := _ranking(ranking, config, where):
            entry["ranking"] = ranked
    except ValueError as e:
        return _merge_page(request, user, [str(e)], status_code=422)
    fields[at : at + 1] = [entry]
    merge["fields"] = fields
    excluded = [n for n in merge.get("exclude") or [] if n not in (old, name)]
    if exclude:
        excluded.append(name)
    if excluded or "exclude" in merge:
        merge["exclude"] = excluded
    if old != name and merge.get("groups"):
        merge["groups"] = [
            {**g, "fields": [name if f == old else f for f in g.get("fields", [])]}
            for g in merge["groups"]
        ]
    return _save_merge(request, user, merge, name, {"field": entry, "excluded": bool(exclude)})


@router.post("/unify/merge/group")
def save_merge_group(
    request: Request,
    original: str = Form("", max_length=100),
    name: str = Form("", max_length=100),
    fields: str = Form("", max_length=2000),
    policy: str = Form("importance", max_length=40),
    ranking: str = Form("", max_length=2000),
    delete: str = Form(""),
    user: Principal = Depends(require_page_role(ADMIN)),
) -> Response:
    """Add, change or remove a group of columns that win together (from one record)."""
    server = server_of(request)
    config = unify_config(server)
    merge = _written_merge(server)
    groups = [dict(g) for g in merge.get("groups") or []]
    at = next((i for i, g in enumerate(groups) if g.get("name") == original), None)
    where = f"unify.merge.groups[{len(groups) if at is None else at}]"
    if delete:
        if at is None:
            raise HTTPException(404, f"no group '{original}'")
        del groups[at]
        merge["groups"] = groups
        return _save_merge(request, user, merge, original, {"deleted_group": original})
    columns = {r["name"] for r in merge_rows(server.project, config)}
    members = [f.strip() for f in fields.split(",") if f.strip()]
    try:
        unknown = [f for f in members if f not in columns]
        if unknown:
            raise ValueError(f"{where}.fields: no profile column {', '.join(unknown)}")
        group: dict[str, Any] = {"name": name.strip(), "fields": members, "policy": policy}
        if ranked := _ranking(ranking, config, where):
            group["ranking"] = ranked
    except ValueError as e:
        return _merge_page(request, user, [str(e)], status_code=422)
    if at is None:
        groups.append(group)
    else:
        groups[at] = group
    merge["groups"] = groups
    return _save_merge(request, user, merge, group["name"], {"group": group})


# -- explain -----------------------------------------------------------------------------------
@router.get("/unify/explain")
def explain_page(
    request: Request,
    customer: str = Query("", max_length=300),
    user: Principal = Depends(page_user),
) -> HTMLResponse:
    """Why records are one customer: the records, and every link with its rule and scores."""
    server = server_of(request)
    try:
        view = server.view()
    except RunError:
        view = None
    context: dict[str, Any] = {"active": "unify", "customer": customer.strip(), "result": None}
    context["error"] = None if view else "no run has finished yet: run 'audience run' first"
    if view is not None and context["customer"]:
        tables = {name: view.run.table_path(name) for name in view.run.tables}
        try:
            # The run's serving store knows the customer's records: no scan of AlternateKey.
            result = explain(server.project, tables, context["customer"], view.serving)
        except (ExplainError, KeyError, duckdb.Error) as e:
            context["error"] = str(e).strip("'\"")
        else:
            fields = sorted({k for r in result.records for k in r if k != "Identifier"})
            context |= {
                "result": result,
                "fields": [(f, f.replace("_", ".", 1)) for f in fields],
            }
    return render(request, "unify/explain.html", context)


# -- dry run -----------------------------------------------------------------------------------
def merge_split_counts(current_keys: Any, new_keys: Any) -> tuple[int, int]:
    """How many new customers take records of several current ones (merges), and how many
    current customers spread over several new ones (splits); compare_runs lists a few."""
    row = (
        duckdb.connect()
        .execute(
            "WITH j AS (SELECT o.CustomerId AS old_id, n.CustomerId AS new_id "
            f"FROM read_parquet({sql_path(current_keys)}) o "
            f"JOIN read_parquet({sql_path(new_keys)}) n USING (Identifier)) "
            "SELECT (SELECT count(*) FROM (SELECT new_id FROM j GROUP BY new_id "
            "HAVING count(DISTINCT old_id) > 1)), "
            "(SELECT count(*) FROM (SELECT old_id FROM j GROUP BY old_id "
            "HAVING count(DISTINCT new_id) > 1))"
        )
        .fetchone()
    )
    return int(row[0]), int(row[1])


def latest_dry_run(server: Server) -> Run | None:
    return next((r for r in server.workspace.runs() if DRY_RUN in r.results), None)


def start_dry_run(server: Server, user: Principal) -> Run:
    """Ingest and unify into a run folder that is never published, in a background thread
    holding the workspace's run lock (one run at a time, whoever starts it). The RunManager
    always publishes, so it is not used. Raises RunInProgress or RunError."""
    project = server.reload_project()
    if project.unify is None:
        raise RunError("the project file has no unify: section")
    workspace = server.workspace
    current = workspace.current()
    lock = ExitStack()
    lock.enter_context(run_lock(project.workspace_path, by=f"{user.name} (console dry run)"))
    try:
        engine = Engine.connect(project)
        run = workspace.start_run(["ingest", "unify"], engine.kind, project.name)
    except BaseException:
        lock.close()
        raise
    run.results[DRY_RUN] = {"by": user.name, "against": current.id}
    run.save()
    # Only the unified tables: the diff needs nothing else.
    refs = [project.table_ref(t.table) for t in project.unify.tables]
    thread = threading.Thread(
        target=_dry_run, args=(project, engine, run, current, refs, lock), daemon=True
    )
    thread.start()
    return run


def _dry_run(
    project: Project, engine: Engine, run: Run, current: Run, refs: list[TableRef], lock: ExitStack
) -> None:
    try:
        as_of = project.as_of or datetime.now(UTC)  # as run_pipeline sets it
        as_of = as_of.astimezone(UTC).replace(tzinfo=None) if as_of.tzinfo else as_of
        ctx = Context(project, engine, run, SilentReporter(), refs, as_of)
        for name, stage in (("ingest", ingest_stage), ("unify", unify_stage)):
            result = StageResult(name, status="running")
            result.started = datetime.now(UTC).isoformat(timespec="seconds")
            try:
                stage(ctx, result)
            except Exception as e:
                result.status, result.error = "failed", str(e) or type(e).__name__
                run.record_stage(result)
                raise
            result.status = "ok" if result.status == "running" else result.status
            run.record_stage(result)
        old_keys, new_keys = current.table_path("AlternateKey"), run.table_path("AlternateKey")
        diff = compare_runs(old_keys, new_keys, limit=DIFF_SHOWN)
        merges, splits = merge_split_counts(old_keys, new_keys)
        before = run_statistics(current)
        after = run.results["stages"]["unify"]["detail"].get("statistics", {})
        run.results[DRY_RUN]["diff"] = {
            "merged": diff.merged,
            "split": diff.split,
            "merges": merges,
            "splits": splits,
            "changed_id": diff.changed_id,
            "new_customers": diff.new_customers,
            "removed_customers": diff.removed_customers,
            "unchanged_customers": diff.unchanged_customers,
            "customers": [before.get("customers"), after.get("customers")],
            "records": [before.get("records"), after.get("records")],
        }
        run.finish(publish=False)
    except Exception as e:  # the page shows it; the run folder keeps what was done
        run.fail(str(e) or type(e).__name__)
    finally:
        engine.close()
        lock.close()


def _dry_run_context(server: Server) -> dict[str, Any]:
    run = latest_dry_run(server)
    info = run.results.get(DRY_RUN, {}) if run else {}
    return {
        "dry": run,
        "info": info,
        "diff": info.get("diff"),
        "current_id": server.workspace.current_id(),
    }


@router.get("/unify/dry-run")
def dry_run_page(
    request: Request, user: Principal = Depends(require_page_role(ADMIN))
) -> HTMLResponse:
    server = server_of(request)
    context = {"active": "unify", "error": None, **_dry_run_context(server)}
    return render(request, "unify/dry_run.html", context)


@router.get("/unify/dry-run/status")
def dry_run_status(
    request: Request, user: Principal = Depends(require_page_role(ADMIN))
) -> HTMLResponse:
    """The result panel alone: polled by htmx while the dry run is going."""
    return render(request, "unify/_dry_run.html", _dry_run_context(server_of(request)))


@router.post("/unify/dry-run")
def dry_run_start(
    request: Request, user: Principal = Depends(require_page_role(ADMIN))
) -> Response:
    server = server_of(request)
    try:
        run = start_dry_run(server, user)
    except (RunInProgress, RunError, ProjectError, EngineError) as e:
        context = {"active": "unify", "error": str(e), **_dry_run_context(server)}
        return render(request, "unify/dry_run.html", context, status_code=409)
    server.audit.record(user, "run.dry_run", "unify", {"run_id": run.id})
    return RedirectResponse("/unify/dry-run", status_code=303)
