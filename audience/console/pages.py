"""The console's pages: sign-in, home (runs and warnings), customers (search and card).

Pages read what the API reads: run results (small JSON files), the current run's serving
store for customers and their timelines, and the list routes' DuckDB query for text search.
Nothing here scans the data per request beyond that search.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from audience.api.auth import ROLES, Principal
from audience.api.routes import lists
from audience.api.routes.customers import _customer_bytes
from audience.api.server import RunView, Server
from audience.console import search
from audience.console.access import (
    CSRF_FIELD,
    console_state,
    csrf_token,
    new_session,
    page_user,
    require_page_role,
    safe_next,
    server_of,
    templates,
)
from audience.console.users import SESSION_COOKIE, SESSION_MAX_AGE_S
from audience.runs import Run, RunError

router = APIRouter(include_in_schema=False)

RUNS_SHOWN = 10
RESULTS_SHOWN = 50
TIMELINE_PAGE = 50
# Pages named in the navigation that later work fills in.


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    user = getattr(request.state, "principal", None)
    token = csrf_token(request) if user else ""
    # Plain forms that post put {{ csrf_input }} inside; htmx sends the header from <body>.
    csrf_input = Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{token}">')
    context = {"user": user, "csrf_token": token, "csrf_input": csrf_input, **context}
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _view(server: Server) -> RunView | None:
    try:
        return server.view()
    except RunError:
        return None


# -- signing in and out ------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    api_key: str = Form(""),
    next: str = Form("/"),
) -> Response:
    state = console_state(request)
    session: dict[str, str] | None = None
    if api_key.strip():
        principal = server_of(request).keys.verify(api_key.strip())
        if principal is not None:
            session = new_session({"key": principal.key_id})
        error = "That API key is not valid (or was revoked)."
    else:
        principal = state.users.verify(username, password) if username.strip() else None
        if principal is not None:
            session = new_session({"user": principal.name})
        error = "Wrong user name or password."
    if session is None:
        context = {"next": safe_next(next), "error": error, "username": username}
        return render(request, "login.html", context, status_code=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        state.sessions.dump(session),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",  # a form on another site cannot post with it: no cross-site writes
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# -- home --------------------------------------------------------------------------------------
def _stage_rows(run: Run) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "status": stage.get("status"),
            "seconds": stage.get("seconds"),
            "rows": stage.get("rows") or {},
            "error": stage.get("error"),
        }
        for name, stage in run.results.get("stages", {}).items()
    ]


def _run_row(run: Run, current: str | None) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "current": run.id == current,
        "started": run.results.get("started"),
        "seconds": run.results.get("seconds"),
        "stages": _stage_rows(run),
    }


def run_warnings(run: Run) -> list[str]:
    """What a run's results say needs a look: quarantined rows, stage warnings (giant
    clusters cut, among others), activities that matched no customer, failed stages."""
    stages = run.results.get("stages", {})
    out: list[str] = []
    for table, landed in stages.get("ingest", {}).get("detail", {}).items():
        if isinstance(landed, dict) and landed.get("rows_quarantined"):
            out.append(
                f"{table}: {landed['rows_quarantined']} of {landed.get('rows_in', '?')} rows "
                "quarantined (they failed the table's checks)"
            )
    for name, stage in stages.items():
        detail = stage.get("detail") or {}
        out.extend(f"{name}: {w}" for w in detail.get("warnings") or [] if isinstance(w, str))
        if stage.get("status") == "failed":
            out.append(f"{name} failed: {stage.get('error') or 'no message'}")
    for name, act in stages.get("activities", {}).get("detail", {}).items():
        if isinstance(act, dict) and act.get("unresolved"):
            reason = f" (e.g. {act['example_reason']})" if act.get("example_reason") else ""
            out.append(
                f"activities {name}: {act['unresolved']} of "
                f"{act.get('resolved', 0) + act['unresolved']} matched no customer{reason}"
            )
    return out


def _counts(server: Server, run: Run | None) -> dict[str, Any]:
    project = server.project
    stages = run.results.get("stages", {}) if run else {}
    unify = stages.get("unify", {})
    customers = unify.get("detail", {}).get("statistics", {}).get("customers")
    if customers is None:
        customers = (unify.get("rows") or {}).get("CustomerProfile")
    return {
        "sources": len(project.sources),
        "tables": len(project.table_refs()),
        "customers": customers,
        "segments": len(project.segments),
        "measures": len(project.measures),
    }


@router.get("/")
def home(request: Request, user: Principal = Depends(page_user)) -> HTMLResponse:
    server = server_of(request)
    workspace = server.workspace
    current_id = workspace.current_id()
    runs = workspace.runs()[:RUNS_SHOWN]
    current = next((r for r in runs if r.id == current_id), None)
    if current is None and current_id is not None:
        try:
            current = workspace.load(current_id)
        except RunError:
            current = None
    context = {
        "project": server.project,
        "runs": [_run_row(r, current_id) for r in runs],
        "current": current,
        "counts": _counts(server, current),
        "warnings": run_warnings(current) if current else [],
        "refresh": server.runs.status(),
        "can_run": ROLES.index(user.role) >= ROLES.index("contributor"),
    }
    if current is not None and not search.search_path(current).exists():
        view = _view(server)  # the first page after signing in: make it ready to search
        if view is not None and view.serving.available:
            search.build_soon(server, view)
    return render(request, "home.html", context)


@router.post("/runs/start")
def start_run(
    request: Request, user: Principal = Depends(require_page_role("contributor"))
) -> HTMLResponse:
    """Start a run (as POST /api/v1/runs does); the fragment then polls until it is done."""
    from audience.api.runner import RunInProgress
    from audience.project import ProjectError

    server = server_of(request)
    error = None
    try:
        server.runs.trigger(user)
        server.audit.record(user, "run.start", "runs", {"from": "console"})
    except RunInProgress as e:
        error = str(e)
    except ProjectError as e:
        error = f"the project file is not valid: {e}"
    return _refresh_fragment(request, error)


@router.get("/runs/progress")
def run_progress(request: Request, user: Principal = Depends(page_user)) -> HTMLResponse:
    """The refresh card; when the run it watched has finished, the whole page reloads."""
    response = _refresh_fragment(request, None)
    if request.query_params.get("watching") and not server_of(request).runs.status()["running"]:
        response.headers["HX-Refresh"] = "true"
    return response


def _refresh_fragment(request: Request, error: str | None) -> HTMLResponse:
    user = request.state.principal
    context = {
        "refresh": server_of(request).runs.status(),
        "can_run": ROLES.index(user.role) >= ROLES.index("contributor"),
        "run_error": error,
    }
    return render(request, "_refresh.html", context)


# -- customers ---------------------------------------------------------------------------------
def _summary(customer: dict[str, Any]) -> dict[str, Any]:
    profile = customer.get("profile", {})
    name = profile.get("FullName") or " ".join(
        p for p in (profile.get("FirstName"), profile.get("LastName")) if p
    )
    return {
        "CustomerId": customer["CustomerId"],
        "name": name or None,
        "email": profile.get("Email"),
        "phone": profile.get("Phone"),
        "city": profile.get("City"),
        "keys": customer.get("keys", []),
    }


def _exact_ids(server: Server, view: RunView, q: str) -> list[str]:
    """Customers the serving store finds for `q` as an id, e-mail, phone or source key."""
    store = view.serving
    found: list[str] = []
    if store.customer_json(q) is not None:
        found.append(q)
    if "@" in q:
        found += store.by_email(q)
    if len(re.sub(r"\D", "", q)) >= 7:
        found += store.by_phone(q)
    for ref in server.project.table_refs():
        customer_id = store.by_key(ref.source.name, ref.table.name, q)
        if customer_id:
            found.append(customer_id)
    return list(dict.fromkeys(found))


def _text_search(server: Server, view: RunView, q: str) -> tuple[int, list[dict[str, Any]]]:
    """Customers with `q` in a name, e-mail, phone, city or CustomerId (search.SEARCH_FIELDS),
    ignoring case: the run's search column finds them, the serving store has their fields."""
    total, ids = search.search(lists.run_database(server, view), q, RESULTS_SHOWN)
    found = []
    for customer_id in ids:
        raw = _customer_bytes(server, view, customer_id)
        if raw is not None:
            found.append(_summary(json.loads(raw)) | {"keys": None})
    return total, found


@router.get("/customers")
def customers(
    request: Request,
    q: str = Query("", max_length=200),
    user: Principal = Depends(page_user),
) -> HTMLResponse:
    server = server_of(request)
    view = _view(server)
    q = q.strip()
    results: list[dict[str, Any]] = []
    total = 0
    how = None
    if view is not None and q and view.serving.available:
        ids = _exact_ids(server, view, q)
        if ids:
            how = "exact"
            for customer_id in ids:
                raw = _customer_bytes(server, view, customer_id)
                if raw is not None:
                    results.append(_summary(json.loads(raw)))
            total = len(results)
        else:
            how = "text"
            total, results = _text_search(server, view, q)
    elif view is not None and view.serving.available:
        search.build_soon(server, view)  # ready when a search comes
    context = {
        "q": q,
        "results": results,
        "total": total,
        "how": how,
        "no_run": view is None,
        "missing": view.serving.missing if view is not None else None,
    }
    return render(request, "customers.html", context)


def _source_key_columns(server: Server, profile: dict[str, Any]) -> set[str]:
    """Profile columns holding a source record's key ('crm_contacts_contact_id')."""
    prefixes = tuple(f"{ref.id}_" for ref in server.project.table_refs())
    return {name for name in profile if name.startswith(prefixes)}


def _activity_types(server: Server, run: Run) -> list[str]:
    detail = run.results.get("stages", {}).get("activities", {}).get("detail", {})
    types = {a.get("type") for a in detail.values() if isinstance(a, dict) and a.get("type")}
    types |= {a.type for a in server.project.activities if a.type}
    return sorted(types)


def _timeline(view: RunView, customer_id: str, types: list[str], offset: int) -> dict[str, Any]:
    page = view.serving.timeline(
        customer_id, set(types) if types else None, limit=TIMELINE_PAGE, offset=offset
    )
    return {"page": page, "types": types, "offset": offset}


def _customer_or_404(request: Request, customer_id: str) -> tuple[Server, RunView, dict]:
    server = server_of(request)
    view = _view(server)
    raw = _customer_bytes(server, view, customer_id) if view is not None else None
    if view is None or raw is None:
        raise HTTPException(404, f"no customer with CustomerId '{customer_id}'")
    return server, view, json.loads(raw)


@router.get("/customers/{customer_id}")
def customer_card(
    request: Request,
    customer_id: str,
    type: list[str] = Query([]),
    offset: int = Query(0, ge=0, le=100_000),
    user: Principal = Depends(page_user),
) -> HTMLResponse:
    server, view, customer = _customer_or_404(request, customer_id)
    profile = customer.get("profile", {})
    key_columns = _source_key_columns(server, profile)
    context = {
        "customer": customer,
        "summary": _summary(customer),
        "fields": [(k, v) for k, v in profile.items() if k not in key_columns and v is not None],
        "empty_fields": [k for k, v in profile.items() if k not in key_columns and v is None],
        "key_columns": [(k, profile[k]) for k in sorted(key_columns) if profile[k] is not None],
        "all_types": _activity_types(server, view.run),
        "timeline": _timeline(view, customer_id, type, offset),
        "run": view.run,
    }
    return render(request, "customer.html", context)


@router.get("/customers/{customer_id}/timeline")
def customer_timeline(
    request: Request,
    customer_id: str,
    type: list[str] = Query([]),
    offset: int = Query(0, ge=0, le=100_000),
    user: Principal = Depends(page_user),
) -> HTMLResponse:
    """The timeline alone: what the type filter swaps in without reloading the page."""
    server, view, customer = _customer_or_404(request, customer_id)
    context = {
        "customer": customer,
        "all_types": _activity_types(server, view.run),
        "timeline": _timeline(view, customer_id, type, offset),
    }
    return render(request, "_timeline.html", context)


# -- administration and pages still to come ----------------------------------------------------
@router.get("/admin/users")
def admin_users(
    request: Request, user: Principal = Depends(require_page_role("administrator"))
) -> HTMLResponse:
    """Console users and API keys (read-only here; manage them with `audience users` and
    `audience keys`)."""
    server = server_of(request)
    context = {"users": console_state(request).users.list(), "keys": server.keys.list()}
    return render(request, "admin_users.html", context)
