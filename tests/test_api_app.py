"""The API as a whole: no input makes it fail with a 5xx (schemathesis over the OpenAPI
spec), and a refresh while clients read serves every read wholly from the old or new run."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from analytics_helpers import ORDERS, shop_project
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from unify_helpers import run, write_data

from audience.api.app import create_app
from audience.pipeline import run_pipeline

MEASURES = [
    {"name": "ttv", "template": "total_transaction_value"},
    {"name": "n_orders", "template": "number_of_transactions"},
]
SEGMENTS = [{"name": "big", "rules": ["ttv > 100"]}]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A finished run of the hand-made shop, the app over it, and an administrator key."""
    root = tmp_path_factory.mktemp("api")
    project = shop_project(root, MEASURES, SEGMENTS)
    run(project)
    app = create_app(root / "audience.yaml", schedule=False)
    with TestClient(app) as client:
        _principal, token = app.state.server.keys.create("schemathesis", "administrator")
        yield app, client, token


def test_no_input_gives_a_server_error(served):
    """Hypothesis cases from the OpenAPI spec for every operation, with an administrator key:
    none may get a 5xx. (Starting runs is left out: it would only queue runs here.)"""
    app, _client, token = served
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    failures = []
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "POST" and operation.path == "/api/v1/runs":
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case) -> None:  # noqa: ANN001
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, response.text[:300]))

        check()
        checked += 1
    assert checked >= 15  # every route of the API was exercised
    assert failures == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refresh_while_clients_read(tmp_path: Path):
    project = shop_project(tmp_path, MEASURES, SEGMENTS)
    run(project)
    app = create_app(tmp_path / "audience.yaml", schedule=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        _p, token = app.state.server.keys.create("reader", "viewer")
        url = f"http://127.0.0.1:{port}/api/v1/customers/lookup"
        params = {"source": "crm", "table": "contacts", "key": "C3"}
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(headers=headers, timeout=10) as client:
            old = client.get(url, params=params).json()
        reads: list[tuple[int, str]] = []
        stop = threading.Event()

        def reader() -> None:
            with httpx.Client(headers=headers, timeout=10) as client:
                while not stop.is_set():
                    response = client.get(url, params=params)
                    reads.append((response.status_code, response.text))

        readers = [threading.Thread(target=reader) for _ in range(3)]
        for t in readers:
            t.start()
        time.sleep(0.3)
        # C3 buys for 500: the new run gives them another total and the 'big' segment.
        changed = [*ORDERS, {**ORDERS[0], "order_id": 9, "contact_id": "C3", "amount": "500.00"}]
        write_data(project.root, {"shop_orders": changed})
        run_pipeline(project)
        time.sleep(1.0)  # past the server's pointer check
        stop.set()
        for t in readers:
            t.join()
        with httpx.Client(headers=headers, timeout=10) as client:
            new = client.get(url, params=params).json()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert old != new and new["measures"]["ttv"] == 500 and "big" in new["segments"]
    assert old["measures"]["ttv"] == 0
    assert reads and all(status == 200 for status, _text in reads)
    seen = [json.loads(text) for _status, text in reads]
    assert all(body in (old, new) for body in seen)  # wholly one run or the other
    assert seen[-1] == new and seen[0] == old
