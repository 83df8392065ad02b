"""Starting runs, changing the project file, API keys and the audit log.

Config writes take an item as JSON, in the same shape as in audience.yaml. The whole project
file, with the change, is validated exactly as `audience validate` loads it; only then is it
written (comments and layout kept), and the server reloads it. Problems are 422 with the
config paths; an unknown item is 404.

Who may do what: viewers read the run status and the config; contributors start runs and
change measures, segments, activities and relationships; administrators change sources,
unify rules, exports and the schedule, manage keys and read the audit log. Every write and
administrative action is recorded in the audit log with the key that made it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response
from pydantic import BaseModel, Field

from audience import project_edit
from audience.api.auth import Principal
from audience.api.deps import administrator, contributor, get_server, viewer
from audience.api.runner import RunInProgress
from audience.api.server import Server
from audience.project import ProjectError

router = APIRouter()

# Section -> the role needed to change it.
ITEM_SECTIONS: dict[str, Callable[..., Principal]] = {
    "measures": contributor,
    "segments": contributor,
    "activities": contributor,
    "sources": administrator,
    "exports": administrator,
}
_PASSWORD_IN_URL = re.compile(r"(://[^/:@\s]*:)([^@/\s]+)(@)")
_SECRET_IN_QUERY = re.compile(
    r"([?&](?:[\w.-]*(?:token|key|secret|password|passwd|pwd|sig|signature|auth)[\w.-]*)=)"
    r"([^&#\s]+)",
    re.IGNORECASE,
)


def _mask_text(text: str) -> str:
    def password(m: re.Match[str]) -> str:
        return m[0] if m[2].startswith("${") else f"{m[1]}***{m[3]}"

    def query(m: re.Match[str]) -> str:
        return m[0] if m[2].startswith("${") else f"{m[1]}***"

    return _SECRET_IN_QUERY.sub(query, _PASSWORD_IN_URL.sub(password, text))


def mask_secrets(value: Any) -> Any:
    """Secrets written into the file masked: passwords in connection URLs
    (scheme://user:password@host), secret-looking URL parameters (?token=...) and HTTP
    header values. ${VARS} are left as written, so their values never leave the server."""
    if isinstance(value, dict):
        return {
            k: _mask_headers(v) if k == "headers" else mask_secrets(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return _mask_text(value)
    return value


def _mask_headers(headers: Any) -> Any:
    if not isinstance(headers, dict):
        return mask_secrets(headers)
    return {k: v if isinstance(v, str) and "${" in v else "***" for k, v in headers.items()}


def _unmask(new: Any, old: Any) -> Any:
    """`new` with the masked values a client got from GET /config and sent back unchanged
    replaced by the real ones, so reading, editing and writing back an item keeps its
    secrets."""
    return _restore(new, old, mask_secrets(old))


def _restore(new: Any, old: Any, masked: Any) -> Any:
    if new == masked and new != old:
        return old
    if isinstance(new, dict) and isinstance(old, dict) and isinstance(masked, dict):
        return {k: _restore(v, old[k], masked[k]) if k in old else v for k, v in new.items()}
    if isinstance(new, list) and isinstance(old, list) and isinstance(masked, list):
        return [_restore(v, old[i], masked[i]) if i < len(old) else v for i, v in enumerate(new)]
    return new


def _json_safe(value: Any) -> Any:
    """NaN and infinities as the YAML file spells them: JSON has no such numbers."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return value


def _finite(value: Any, where: str) -> None:
    """Reject NaN and Infinity in a body (Python's JSON reader takes them; JSON has none)."""
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, f"{where}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise HTTPException(422, [f"{where}: {value} is not a number JSON allows"])


# --- runs ------------------------------------------------------------------------------


@router.post("/runs", status_code=202, tags=["runs"])
def start_run(
    principal: Principal = Depends(contributor), server: Server = Depends(get_server)
) -> dict[str, Any]:
    """Start a run of the pipeline in the background; 409 while another run is going. Reads
    keep coming from the current run until the new one has finished."""
    try:
        started = server.runs.trigger(principal)
    except RunInProgress as e:
        raise HTTPException(409, str(e)) from None
    except ProjectError as e:
        raise HTTPException(422, _problems(e)) from None
    server.audit.record(principal, "run.start", "runs", started)
    return started


@router.get("/runs/status", tags=["runs"])
def run_status(
    _principal: Principal = Depends(viewer), server: Server = Depends(get_server)
) -> dict[str, Any]:
    """Whether a run is going and who started it, the last finished run, and the schedule."""
    return server.runs.status()


# --- the project file ------------------------------------------------------------------


@router.get("/config", tags=["config"])
def get_config(
    _principal: Principal = Depends(viewer), server: Server = Depends(get_server)
) -> dict[str, Any]:
    """The project file as JSON, as written: ${VARS} are not replaced, and passwords in
    connection URLs are masked."""
    try:
        return _json_safe(mask_secrets(project_edit.get_path(server.project_file)))
    except ProjectError as e:
        raise HTTPException(422, _problems(e)) from None


def _apply(
    server: Server,
    principal: Principal,
    action: str,
    target: str,
    change: Callable[[], Any],
    detail: dict[str, Any],
) -> Any:
    """Make a change to the project file, reload it, and record who did it."""
    try:
        result = change()
    except ProjectError as e:
        raise HTTPException(422, _problems(e)) from None
    except project_edit.ItemNotFound as e:
        raise HTTPException(404, str(e)) from None
    server.reload_project()
    if isinstance(result, str):  # upsert says whether it created or updated
        detail = {"result": result, **detail}
    server.audit.record(principal, action, target, mask_secrets(detail))
    return result


def _with_identity(section: str, item: dict[str, Any], wanted: dict[str, str]) -> dict[str, Any]:
    """The item with the fields the URL names it by (first, as people write them). The body
    may repeat them, but not name another item."""
    for field, value in wanted.items():
        given = item.get(field, value)
        if given != value:
            raise HTTPException(
                422, [f"{section}.{field}: the body says {given!r} but the URL says {value!r}"]
            )
    return {**wanted, **item}


def _current_item(server: Server, section: str, wanted: dict[str, str]) -> Any:
    try:
        items = project_edit.get_path(server.project_file, [section])
    except (project_edit.ItemNotFound, ProjectError):
        return None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items()):
            return item
    return None


def _problems(e: ProjectError) -> list[str]:
    # Checks across sections report from the top of the file but name the path themselves.
    return [p.removeprefix("(top level): ") for p in e.problems]


def _put_item(
    server: Server,
    principal: Principal,
    response: Response,
    section: str,
    item: dict[str, Any],
    wanted: dict[str, str],
) -> dict[str, Any]:
    _finite(item, section)
    item = _with_identity(section, item, wanted)
    item = _unmask(item, _current_item(server, section, wanted))
    target = f"{section}/{'/'.join(wanted.values())}"
    result = _apply(
        server,
        principal,
        "config.put",
        target,
        lambda: project_edit.upsert(server.project_file, section, item),
        {"item": item},
    )
    response.status_code = 201 if result == "created" else 200
    return {"status": result, "section": section, "item": mask_secrets(item)}


def _delete_item(
    server: Server, principal: Principal, section: str, wanted: dict[str, str]
) -> dict[str, Any]:
    target = f"{section}/{'/'.join(wanted.values())}"
    _apply(
        server,
        principal,
        "config.delete",
        target,
        lambda: project_edit.delete(server.project_file, section, tuple(wanted.values())),
        {},
    )
    return {"status": "deleted", "section": section, **wanted}


def _item_routes(section: str, role: Callable[..., Principal]) -> None:
    def put(
        name: str,
        response: Response,
        item: dict[str, Any] = Body(..., description=f"One of {section}, as in audience.yaml."),
        principal: Principal = Depends(role),
        server: Server = Depends(get_server),
    ) -> dict[str, Any]:
        return _put_item(server, principal, response, section, item, {"name": name})

    def delete(
        name: str,
        principal: Principal = Depends(role),
        server: Server = Depends(get_server),
    ) -> dict[str, Any]:
        return _delete_item(server, principal, section, {"name": name})

    router.add_api_route(
        f"/config/{section}/{{name}}",
        put,
        methods=["PUT"],
        tags=["config"],
        name=f"put_{section}",
        summary=f"Create or replace one of {section}",
    )
    router.add_api_route(
        f"/config/{section}/{{name}}",
        delete,
        methods=["DELETE"],
        tags=["config"],
        name=f"delete_{section}",
        summary=f"Delete one of {section}",
    )


for _section, _role in ITEM_SECTIONS.items():
    _item_routes(_section, _role)


@router.put("/config/relationships/{table}/{name}", tags=["config"])
def put_relationship(
    table: str,
    name: str,
    response: Response,
    item: dict[str, Any] = Body(..., description="A relationship, as in audience.yaml."),
    principal: Principal = Depends(contributor),
    server: Server = Depends(get_server),
) -> dict[str, Any]:
    """Create or replace the relationship `name` from `table` ('source.table')."""
    wanted = {"table": table, "name": name}
    return _put_item(server, principal, response, "relationships", item, wanted)


@router.delete("/config/relationships/{table}/{name}", tags=["config"])
def delete_relationship(
    table: str,
    name: str,
    principal: Principal = Depends(contributor),
    server: Server = Depends(get_server),
) -> dict[str, Any]:
    """Delete the relationship `name` from `table`."""
    return _delete_item(server, principal, "relationships", {"table": table, "name": name})


def _steps(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path.strip("/").split("/") if p]


@router.put("/config/unify", tags=["config"])
def put_unify(
    value: dict[str, Any] = Body(..., description="The whole unify section."),
    principal: Principal = Depends(administrator),
    server: Server = Depends(get_server),
) -> dict[str, Any]:
    """Replace the unify section (tables, match rules, merge, ...)."""
    _finite(value, "unify")
    _apply(
        server,
        principal,
        "config.put",
        "unify",
        lambda: project_edit.set_path(server.project_file, ["unify"], value),
        {"value": value},
    )
    return {"status": "updated", "path": "unify"}


@router.put("/config/unify/{path:path}", tags=["config"])
def put_unify_path(
    path: str,
    value: Any = Body(..., description="The new value at that place."),
    principal: Principal = Depends(administrator),
    server: Server = Depends(get_server),
) -> dict[str, Any]:
    """Set one part of the unify section: `match/0/rules` is the rules of the first match
    pair; list positions count from 0."""
    steps: list[str | int] = ["unify", *_steps(path)]
    target = "/".join(str(s) for s in steps)
    _finite(value, target.replace("/", "."))
    _apply(
        server,
        principal,
        "config.put",
        target,
        lambda: project_edit.set_path(server.project_file, steps, value),
        {"value": value},
    )
    return {"status": "updated", "path": target}


class ScheduleBody(BaseModel):
    cron: str = Field(description="Five-field cron expression, e.g. '0 3 * * *'.")
    timezone: str = Field("UTC", description="IANA time zone, e.g. 'Europe/Paris'.")


@router.put("/config/schedule", tags=["config"])
def put_schedule(
    body: ScheduleBody,
    principal: Principal = Depends(administrator),
    server: Server = Depends(get_server),
) -> dict[str, Any]:
    """Set the scheduled refresh; the serving process that runs the schedule picks it up
    within a minute."""
    value = body.model_dump()
    _apply(
        server,
        principal,
        "config.put",
        "schedule",
        lambda: project_edit.set_path(server.project_file, ["schedule"], value),
        {"value": value},
    )
    return {"status": "updated", "schedule": value}


@router.delete("/config/schedule", tags=["config"])
def delete_schedule(
    principal: Principal = Depends(administrator), server: Server = Depends(get_server)
) -> dict[str, Any]:
    """Stop scheduled refreshes."""
    _apply(
        server,
        principal,
        "config.delete",
        "schedule",
        lambda: project_edit.remove_path(server.project_file, ["schedule"]),
        {},
    )
    return {"status": "deleted", "path": "schedule"}


# --- keys and the audit log ------------------------------------------------------------


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="Who or what uses the key.")
    role: Literal["viewer", "contributor", "administrator"]


@router.post("/keys", status_code=201, tags=["keys"])
def create_key(
    body: NewKey,
    principal: Principal = Depends(administrator),
    server: Server = Depends(get_server),
) -> dict[str, Any]:
    """A new API key. The token is in this response only: store it now."""
    try:
        key, token = server.keys.create(body.name, body.role)
    except ValueError as e:
        raise HTTPException(422, [str(e)]) from None
    server.audit.record(principal, "key.create", key.key_id, {"name": key.name, "role": key.role})
    return {
        "id": key.key_id,
        "name": key.name,
        "role": key.role,
        "token": token,
        "warning": "this token is not shown again; store it now",
    }


@router.get("/keys", tags=["keys"])
def list_keys(
    _principal: Principal = Depends(administrator), server: Server = Depends(get_server)
) -> list[dict[str, Any]]:
    """Every key (never its secret): id, name, role, created, revoked, last used."""
    return server.keys.list()


@router.delete("/keys/{key_id}", tags=["keys"])
def revoke_key(
    key_id: str,
    principal: Principal = Depends(administrator),
    server: Server = Depends(get_server),
) -> dict[str, Any]:
    """Revoke a key; it stops working at once here, and within a second in other workers."""
    try:
        newly = server.keys.revoke(key_id)
    except KeyError:
        raise HTTPException(404, f"no key '{key_id}'") from None
    if newly:
        server.audit.record(principal, "key.revoke", key_id)
    return {"id": key_id, "revoked": True, "already_revoked": not newly}


@router.get("/audit", tags=["keys"])
def audit_log(
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=2**40),
    _principal: Principal = Depends(administrator),
    server: Server = Depends(get_server),
) -> list[dict[str, Any]]:
    """Who did what and when, newest first."""
    return server.audit.entries(limit, offset)
