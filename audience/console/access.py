"""Who is looking at a console page: the session cookie's user or API key, and role checks.

Pages depend on `page_user` (any signed-in user) or `require_page_role(role)`. Someone not
signed in is sent to /login (and back afterwards); a role too low gets a 403 page.

Writes (any method but GET/HEAD) also need the session's CSRF token, sent by htmx as the
X-CSRF-Token header (base.html sets it on <body>) or by a plain form as the `csrf_token`
field (`{{ csrf_input }}` in a template). The cookie is SameSite=Lax already, which stops
other sites' forms in current browsers; the token also covers older ones and same-site
attackers (another app on a sibling subdomain).
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from fastapi.templating import Jinja2Templates

from audience.api.auth import KEYS_FILE, ROLES, Principal
from audience.api.server import Server
from audience.console.users import SESSION_COOKIE, Sessions, UserStore, principal_of, session_secret

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


@dataclass
class ConsoleState:
    users: UserStore
    sessions: Sessions


_state_lock = threading.Lock()


def console_state(request: Request) -> ConsoleState:
    """The console's user store and cookie signer, made once per app on first use (the
    server, and so the workspace, exists only once the app has started)."""
    state = getattr(request.app.state, "console", None)
    if state is None:
        with _state_lock:
            state = getattr(request.app.state, "console", None)
            if state is None:
                workspace = server_of(request).project.workspace_path
                state = ConsoleState(
                    UserStore(workspace / KEYS_FILE), Sessions(session_secret(workspace))
                )
                request.app.state.console = state
    return state


def server_of(request: Request) -> Server:
    return request.app.state.server


class LoginRequired(Exception):
    """Not signed in: the handler redirects to /login?next=<the page asked for>."""

    def __init__(self, next_url: str):
        self.next_url = next_url


class PageForbidden(Exception):
    """Signed in, but the role is too low for the page."""

    def __init__(self, principal: Principal, role: str):
        self.principal = principal
        self.role = role


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def new_session(identity: dict[str, str]) -> dict[str, str]:
    """A session's data: who, and a fresh CSRF token."""
    return {**identity, "csrf": secrets.token_urlsafe(24)}


def session_data(request: Request) -> dict[str, str] | None:
    return console_state(request).sessions.load(request.cookies.get(SESSION_COOKIE))


def csrf_token(request: Request) -> str:
    data = session_data(request) or {}
    return data.get("csrf", "")


async def _check_csrf(request: Request) -> None:
    if request.method in SAFE_METHODS:
        return
    expected = csrf_token(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and "form" in request.headers.get("content-type", ""):
        sent = (await request.form()).get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise HTTPException(
            403, "this form has expired or did not come from the console; reload the page"
        )


def session_principal(request: Request) -> Principal | None:
    """The signed-in user or key, looked up afresh (a deleted user or revoked key is out)."""
    state = console_state(request)
    data = state.sessions.load(request.cookies.get(SESSION_COOKIE))
    if not data:
        return None
    if "user" in data:
        user = state.users.get(data["user"])
        return principal_of(user["name"], user["role"]) if user else None
    if "key" in data:
        key = server_of(request).keys.get(data["key"])
        if key is None or key["revoked"] is not None:
            return None
        return Principal(key["id"], key["name"], key["role"])
    return None


async def page_user(request: Request) -> Principal:
    """A dependency: the signed-in principal, or a redirect to the login page; for a write,
    only with the session's CSRF token."""
    principal = session_principal(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    await _check_csrf(request)
    request.state.principal = principal
    return principal


def require_page_role(role: str) -> Callable[..., Principal]:
    """A dependency admitting signed-in users with `role` or a higher one (else a 403 page)."""
    needed = ROLES.index(role)

    def check(principal: Principal = Depends(page_user)) -> Principal:
        if ROLES.index(principal.role) < needed:
            raise PageForbidden(principal, role)
        return principal

    return check


def login_url(next_url: str) -> str:
    return f"/login?next={quote(next_url, safe='/')}"


def safe_next(next_url: str | None) -> str:
    """Where to go after signing in: only a path of this site (never '//host' or a URL)."""
    if not next_url or not next_url.startswith("/") or next_url.startswith("//"):
        return "/"
    if "\\" in next_url or next_url.startswith("/login"):
        return "/"
    return next_url
