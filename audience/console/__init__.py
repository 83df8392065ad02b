"""The web console: server-rendered pages beside the REST API, on the same access control.

Pages are Jinja templates with a little htmx; the JavaScript is vendored from npm into
static/vendor (scripts/vendor-js.sh), so nothing is built and nothing is fetched from the
internet. `install_console(app)` adds the pages, the static files and the handlers that turn
"not signed in" into a redirect to /login and "role too low" into a 403 page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def install_console(app: FastAPI) -> None:
    """Serve the console from `app` (pages at /, static files at /static)."""
    from audience.console.access import LoginRequired, PageForbidden, login_url, templates
    from audience.console.pages import router
    from audience.console.pages_measures import router as measures_router
    from audience.console.pages_segments import router as segments_router
    from audience.console.pages_sources import router as sources_router
    from audience.console.pages_unify import router as unify_router

    # Before `router`, whose /customers/{id}-style routes would otherwise shadow theirs.
    for section in (sources_router, unify_router, segments_router, measures_router):
        app.include_router(section)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("hx-request"):
            # htmx would swap the login page into a fragment; have it load the page instead.
            return Response(status_code=401, headers={"HX-Redirect": login_url(exc.next_url)})
        return RedirectResponse(login_url(exc.next_url), status_code=303)

    @app.exception_handler(PageForbidden)
    async def forbidden(request: Request, exc: PageForbidden) -> HTMLResponse:
        context = {"user": exc.principal, "needed": exc.role}
        return templates.TemplateResponse(request, "forbidden.html", context, status_code=403)
