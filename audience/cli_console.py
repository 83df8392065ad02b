"""`audience users`: the web console's users (name, role, password stored as argon2 hash)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from audience.api.auth import KEYS_FILE, ROLES
from audience.cli import ProjectOption, _fail, _load, app, console
from audience.console.users import UserStore

users_app = typer.Typer(help="Console users: create, list, delete.", no_args_is_help=True)
app.add_typer(users_app, name="users")


def _users(project_file: Path) -> UserStore:
    return UserStore(_load(project_file).workspace_path / KEYS_FILE)


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="The user's sign-in name.")],
    role: Annotated[
        str, typer.Option(help=f"One of {', '.join(ROLES)}.", case_sensitive=False)
    ] = "viewer",
    password: Annotated[
        str | None,
        typer.Option(help="The password (asked for when not given; prefer that outside demos)."),
    ] = None,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing if the user exists already.")
    ] = False,
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """Create a console user who signs in with a password."""
    role = role.lower()
    if role not in ROLES:
        _fail(f"unknown role '{role}'; roles are {', '.join(ROLES)}", code=2)
    users = _users(project_file)
    if users.get(name.strip()) is not None:
        if if_missing:
            console.print(f"user {name.strip()} exists already")
            return
        _fail(f"a user '{name.strip()}' exists already", code=2)
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        principal = users.create(name, role, password)
    except ValueError as e:
        _fail(str(e), code=2)
    console.print(f"user [bold]{principal.name}[/] ({principal.role}) created")


@users_app.command("list")
def users_list(project_file: ProjectOption = Path("audience.yaml")) -> None:
    """List the console users (never their passwords)."""
    rows = _users(project_file).list()
    if not rows:
        console.print("no users yet; create one with [bold]audience users create NAME[/]")
        return
    table = Table(title="Console users")
    for col in ("name", "role", "created"):
        table.add_column(col)
    for u in rows:
        table.add_row(u["name"], u["role"], u["created"])
    console.print(table)


@users_app.command("delete")
def users_delete(
    name: Annotated[str, typer.Argument(help="The user to delete.")],
    project_file: ProjectOption = Path("audience.yaml"),
) -> None:
    """Delete a console user; their open sessions stop working at once."""
    if not _users(project_file).delete(name):
        _fail(f"no user '{name}'; see 'audience users list'", code=2)
    console.print(f"deleted user {name}")
