"""Dependencies shared by routes: the server, and the caller's key with a role check.

A request carries its API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`. No key
or an unknown/revoked one: 401. A key whose role is below the route's: 403.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from audience.api.auth import ROLES, Principal
from audience.api.server import RunView, Server

# The dependencies are `async def`: a plain `def` dependency runs in FastAPI's thread pool,
# and three thread hops per request halved lookup throughput (benchmarks/api_load.py).


async def get_server(request: Request) -> Server:
    return request.app.state.server


async def get_view(server: Server = Depends(get_server)) -> RunView:
    from audience.runs import RunError

    try:
        return server.view()
    except RunError as e:
        raise HTTPException(503, str(e)) from None


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


# Verifications in flight in this process, by token: concurrent first requests with a new key
# share one argon2 check instead of each running their own (50 at once stalled for ~4 s).
_verifying: dict[str, asyncio.Future[Principal | None]] = {}


async def _verify_once(server: Server, token: str) -> Principal | None:
    """Argon2 takes ~50 ms by design: off the event loop, once per key and process."""
    pending = _verifying.get(token)
    if pending is None:
        # A task of its own: a waiter that goes away (client disconnected) cancels only its
        # wait (shield), never the check the others wait for.
        pending = asyncio.ensure_future(run_in_threadpool(server.keys.verify, token))
        _verifying[token] = pending
        pending.add_done_callback(lambda _done: _verifying.pop(token, None))
    return await asyncio.shield(pending)


def require(role: str) -> Callable[..., Principal]:
    """A dependency that admits keys with `role` or a higher one."""
    needed = ROLES.index(role)

    async def check(request: Request, server: Server = Depends(get_server)) -> Principal:
        token = _token(request)
        principal = server.keys.cached(token) if token else None
        if principal is None and token:
            principal = await _verify_once(server, token)
        if principal is None:
            raise HTTPException(
                401,
                "a valid API key is needed: 'Authorization: Bearer <key>' (create one with "
                "'audience keys create')",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if ROLES.index(principal.role) < needed:
            raise HTTPException(
                403, f"this needs the {role} role; the key '{principal.name}' is {principal.role}"
            )
        request.state.principal = principal
        return principal

    return check


viewer = require("viewer")
contributor = require("contributor")
administrator = require("administrator")
