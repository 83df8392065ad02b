"""The FastAPI application: routers under /api/v1, error handling, the server's lifetime.

`create_app(project_file)` is what tests use; `audience serve` runs `app_from_env` (a factory
uvicorn calls in each worker process) with the project file in AUDIENCE_PROJECT.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from audience.analytics.paths import AnalyticsError
from audience.api.routes import admin, customers, lists, realtime
from audience.api.server import Server
from audience.console import install_console
from audience.expr import ExprError
from audience.project import ProjectError
from audience.runs import RunError

API = "/api/v1"


def create_app(project_file: Path, *, schedule: bool = True) -> FastAPI:
    """The API for one project. `schedule`: run the project's scheduled refreshes."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from audience.api.runner import RunManager

        server = Server(project_file)
        server.runs = RunManager(server)
        if schedule:
            server.runs.start_scheduler()
        app.state.server = server
        try:
            yield
        finally:
            server.close()

    app = FastAPI(
        title="Audience",
        summary="Unified customer profiles, activities, measures and segments.",
        version="1",
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    for module in (customers, lists, realtime, admin):
        app.include_router(module.router, prefix=API)
    _error_handlers(app)
    install_console(app)
    return app


def _error_handlers(app: FastAPI) -> None:
    """Mistakes in what a caller sent are 4xx with the message our modules wrote for users."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The default handler echoes the input, which fails on NaN/Infinity (not JSON): a 500.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ExprError)
    async def expression(request: Request, exc: ExprError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(AnalyticsError)
    async def analytics(request: Request, exc: AnalyticsError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(ProjectError)
    async def project(request: Request, exc: ProjectError) -> JSONResponse:
        return JSONResponse({"detail": exc.problems}, status_code=422)

    @app.exception_handler(RunError)
    async def run(request: Request, exc: RunError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)


def app_from_env() -> FastAPI:
    """For uvicorn's workers: the project file comes from AUDIENCE_PROJECT."""
    schedule = os.environ.get("AUDIENCE_SCHEDULE", "1") == "1"
    return create_app(Path(os.environ["AUDIENCE_PROJECT"]), schedule=schedule)
