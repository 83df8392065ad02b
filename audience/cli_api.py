"""`audience keys` (API keys) and `audience serve` (the REST API)."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from audience.api.auth import AUDIT_FILE, KEYS_FILE, ROLES, AuditLog, KeyStore
from audience.cli import ProjectOption, _fail, _load, app, console, err
from audience.project import PROJECT_FILE

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _stores(project_file: Path) -> tuple[KeyStore, AuditLog]:
    workspace = _load(project_file).workspace_path
    return KeyStore(workspace / KEYS_FILE), AuditLog(workspace / AUDIT_FILE)


def _via() -> dict[str, str]:
    # Keys made at the command line have no key behind them: say which account made them.
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"via": "command line", "user": user}


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key, e.g. 'crm-sync'.")],
    role: Annotated[
        str, typer.Option(help=f"One of {', '.join(ROLES)}.", case_sensitive=False)
    ] = "viewer",
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """Create an API key and print its token (shown this once only)."""
    role = role.lower()
    if role not in ROLES:
        _fail(f"unknown role '{role}'; roles are {', '.join(ROLES)}", code=2)
    keys, audit = _stores(project_file)
    try:
        principal, token = keys.create(name, role)
    except ValueError as e:
        _fail(str(e), code=2)
    audit.record(None, "key.create", principal.key_id, {"name": name, "role": role, **_via()})
    console.print(f"key [bold]{principal.key_id}[/] ({principal.name}, {principal.role}):")
    # Plain print: rich would wrap a long token, and it must be copied whole.
    print(token)
    err.print(
        "[yellow]warning:[/] the token is not shown again; store it now. "
        "Send it as 'Authorization: Bearer <token>'."
    )


@keys_app.command("list")
def keys_list(project_file: ProjectOption = Path("audience.yaml")) -> None:
    """List the API keys (never their secrets)."""
    keys, _audit = _stores(project_file)
    rows = keys.list()
    if not rows:
        console.print("no keys yet; create one with [bold]audience keys create NAME --role ...[/]")
        return
    table = Table(title=f"API keys in {keys.path}")
    for col in ("id", "name", "role", "created", "last used", "revoked"):
        table.add_column(col)
    for k in rows:
        style = "dim" if k["revoked"] else None
        table.add_row(
            k["id"],
            k["name"],
            k["role"],
            k["created"],
            k["last_used"] or "",
            k["revoked"] or "",
            style=style,
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see 'audience keys list').")],
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """Revoke an API key; a running server stops accepting it within a second."""
    keys, audit = _stores(project_file)
    try:
        newly = keys.revoke(key_id)
    except KeyError:
        _fail(f"no key '{key_id}'; see 'audience keys list'", code=2)
    if newly:
        audit.record(None, "key.revoke", key_id, _via())
        console.print(f"revoked key {key_id}")
    else:
        console.print(f"key {key_id} was already revoked")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    schedule: Annotated[
        bool,
        typer.Option("--schedule/--no-schedule", help="Run the project's scheduled refreshes."),
    ] = True,
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """Serve the REST API (/api/v1, docs at /api/v1/docs) over the current run."""
    import uvicorn

    project = _load(project_file)
    path = project_file / PROJECT_FILE if project_file.is_dir() else project_file
    keys = KeyStore(project.workspace_path / KEYS_FILE)
    if not any(k["revoked"] is None for k in keys.list()):
        err.print(
            "[yellow]note:[/] no API keys yet; every request will get 401 until you create one "
            "with [bold]audience keys create NAME --role administrator[/]"
        )
    # Each worker builds its own app from these (uvicorn's factory), in its own process.
    os.environ["AUDIENCE_PROJECT"] = str(path.resolve())
    os.environ["AUDIENCE_SCHEDULE"] = "1" if schedule else "0"
    console.print(f"serving {project.name} on http://{host}:{port}/api/v1 (docs: /api/v1/docs)")
    uvicorn.run(
        "audience.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
    )
