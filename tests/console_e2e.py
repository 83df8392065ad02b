"""Shared by the browser tests: the demo served by uvicorn on a free port, Debian's chromium
driven by Playwright (never a downloaded browser), and signing in through the login form.

A test module uses them as fixtures:

    pytestmark = needs_chromium
    site = site_fixture("console_e2e_sources")
    browser = browser_fixture()
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import PASSWORDS, demo_workspace

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).parent / "screenshots"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_fixture(name: str, prepare: Callable[[dict[str, Any]], None] | None = None) -> Any:
    """A module-scoped fixture: the demo run in its own folder and served; yields the
    demo_workspace data plus `url` and `app`. `prepare(data)` runs before the app starts
    (to change the project file, say)."""

    @pytest.fixture(scope="module")
    def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
        import uvicorn

        from audience.api.app import create_app

        data = demo_workspace(tmp_path_factory.mktemp(name))
        if prepare is not None:
            prepare(data)
        app = create_app(data["project_file"], schedule=False)
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        SHOTS.mkdir(exist_ok=True)
        yield {**data, "url": f"http://127.0.0.1:{port}", "app": app}
        server.should_exit = True
        thread.join(10)

    return site


def browser_fixture() -> Any:
    @pytest.fixture(scope="module")
    def browser() -> Iterator[Any]:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            yield browser
            browser.close()

    return browser


def sign_in_page(browser: Any, url: str, user: str, target: str = "/") -> Any:
    """A new laptop-sized page signed in as `user` through the form, at `target`."""
    page = browser.new_page(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    page.goto(f"{url}{target}")
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.click("button[type=submit]")
    return page
