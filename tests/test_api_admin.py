"""The admin API: runs, config writes, keys and the audit log; the key store; the run
manager and its schedule; `audience keys` and `audience serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import httpx
import pytest
from analytics_helpers import ACTIVITIES, RELATIONSHIPS, SOURCES, UNIFY, shop_project, write_shop
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import audience.cli_api  # noqa: F401  (registers `audience keys` and `audience serve`)
from audience import pipeline, project_edit
from audience.api import auth
from audience.api.app import create_app
from audience.api.auth import ROLES, AuditLog, KeyStore
from audience.api.runner import RunInProgress, RunManager, next_time, run_lock
from audience.api.server import Server
from audience.cli import app as cli
from audience.project import Schedule

API = "/api/v1"
MEASURES = [{"name": "ttv", "template": "total_transaction_value"}]
SEGMENTS = [{"name": "big", "rules": ["ttv > 100"]}]

# The shop again, as a person writes it: comments, flow mappings, quoting.
SHOP_YAML = """\
# The hand-made shop.
name: shop
as_of: 2026-01-31T00:00:00

sources:
  # The CRM exports CSV.
  - name: crm
    kind: csv
    tables:
      - {name: contacts, path: data/crm_contacts.csv, primary_key: contact_id}
  - name: shop
    kind: csv
    tables:
      - {name: orders, path: data/shop_orders.csv, primary_key: order_id}
      - {name: visits, path: data/shop_visits.csv, primary_key: visit_id}
  # Read-only replicas; the password of the first comes from the environment.
  - name: erp
    kind: sql
    url: postgresql://app:${ERP_PASSWORD}@db.internal/erp
    tables:
      - {name: invoices, table: invoices, primary_key: id}
  - name: legacy
    kind: sql
    url: postgresql://app:s3cret@db.internal/legacy
    tables:
      - {name: invoices, table: invoices, primary_key: id}

unify:
  tables:
    - table: crm.contacts
      fields:
        first_name: Person.FirstName
        email: Identity.Email  # the only match key

relationships:
  - {name: contact, table: shop.orders, column: contact_id, to: crm.contacts}

activities:
  - name: orders
    table: shop.orders
    type: SalesOrder
    customer: crm.contacts
    timestamp: order_ts
    fields: {amount: amount}

measures:
  # Money.
  - name: ttv
    template: total_transaction_value  # all time

segments:
  - name: big
    rules: ["ttv > 100"]
  - name: small
    rules: ["ttv < 10"]

exports:
  - name: push
    kind: segment
    segment: big
    when: manual
    http:
      url: https://hooks.example.com/in?team=crm&token=abc123
      headers: {Authorization: Bearer xyz789, X-Team: "${TEAM_ID}"}
"""


class CheapHasher(PasswordHasher):
    """argon2 at its lowest cost, counting checks: the tests make and check many keys, and
    the cost of a real one (tens of milliseconds) is tested once, below."""

    checks = 0

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        CheapHasher.checks += 1
        return super().verify(hash, password)


@pytest.fixture(scope="module", autouse=True)
def cheap_argon2():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "PasswordHasher", CheapHasher)
        yield


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fake_run(project: Any) -> Any:
    return SimpleNamespace(id="fake", status="succeeded")


def diff_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    import difflib

    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [d[2:] for d in diff if d[0] == "+"], [d[2:] for d in diff if d[0] == "-"]


# --- every route with every role -------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The shop's app with a quick stand-in for the pipeline, a key per role (named after
    it) and a revoked administrator key."""
    root = tmp_path_factory.mktemp("admin")
    shop_project(root, MEASURES, SEGMENTS)
    app = create_app(root / "audience.yaml", schedule=False)
    with TestClient(app) as client:
        server = app.state.server
        server.runs = RunManager(server, pipeline=fake_run)
        tokens = {role: server.keys.create(role, role)[1] for role in ROLES}
        gone, gone_token = server.keys.create("gone", "administrator")
        server.keys.revoke(gone.key_id)
        yield client, server, tokens, gone_token


def _set_schedule(server: Server) -> None:
    project_edit.set_path(server.project_file, ["schedule"], {"cron": "0 3 * * *"})


# method, path, body, lowest role, the status an allowed call gets, audit action, setup
ROUTES: list[tuple[str, str, Any, str, set[int], str | None, Callable[[Server], None] | None]] = [
    ("POST", "/runs", None, "contributor", {202}, "run.start", None),
    ("GET", "/runs/status", None, "viewer", {200}, None, None),
    ("GET", "/config", None, "viewer", {200}, None, None),
    ("PUT", "/config/measures/n", {"template": "number_of_transactions"}, "contributor",
     {200, 201}, "config.put", None),
    ("DELETE", "/config/measures/nope", None, "contributor", {404}, None, None),
    ("PUT", "/config/segments/tiny", {"rules": ["ttv < 1"]}, "contributor", {200, 201},
     "config.put", None),
    ("DELETE", "/config/segments/nope", None, "contributor", {404}, None, None),
    ("PUT", "/config/activities/orders", ACTIVITIES[0], "contributor", {200}, "config.put", None),
    ("DELETE", "/config/activities/nope", None, "contributor", {404}, None, None),
    ("PUT", "/config/relationships/shop.orders/contact", RELATIONSHIPS[0], "contributor", {200},
     "config.put", None),
    ("DELETE", "/config/relationships/shop.orders/nope", None, "contributor", {404}, None, None),
    ("PUT", "/config/sources/crm", SOURCES[0], "administrator", {200}, "config.put", None),
    ("DELETE", "/config/sources/nope", None, "administrator", {404}, None, None),
    ("PUT", "/config/exports/lake", {"kind": "lake", "path": "out/lake", "when": "manual"},
     "administrator", {200, 201}, "config.put", None),
    ("DELETE", "/config/exports/nope", None, "administrator", {404}, None, None),
    ("PUT", "/config/unify", UNIFY, "administrator", {200}, "config.put", None),
    ("PUT", "/config/unify/tables/0/fields", UNIFY["tables"][0]["fields"], "administrator",
     {200}, "config.put", None),
    ("PUT", "/config/schedule", {"cron": "0 3 * * *"}, "administrator", {200}, "config.put",
     None),
    ("DELETE", "/config/schedule", None, "administrator", {200}, "config.delete", _set_schedule),
    ("POST", "/keys", {"name": "made", "role": "viewer"}, "administrator", {201}, "key.create",
     None),
    ("GET", "/keys", None, "administrator", {200}, None, None),
    ("DELETE", "/keys/nope", None, "administrator", {404}, None, None),
    ("GET", "/audit", None, "administrator", {200}, None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "lowest", "ok", "action", "setup"),
    ROUTES,
    ids=[f"{r[0]} {r[1]}" for r in ROUTES],
)
def test_roles(api, method, path, body, lowest, ok, action, setup):
    client, server, tokens, gone_token = api

    def call(headers: dict[str, str]) -> httpx.Response:
        return client.request(method, API + path, json=body, headers=headers)

    for role in ROLES:
        if setup:
            setup(server)
        response = call(bearer(tokens[role]))
        if ROLES.index(role) < ROLES.index(lowest):
            assert response.status_code == 403, (role, response.text)
            assert f"needs the {lowest} role" in response.json()["detail"]
            continue
        assert response.status_code in ok, (role, response.text)
        server.runs.wait(10)
        if action:
            entry = server.audit.entries(limit=1)[0]
            assert (entry["action"], entry["key_name"], entry["role"]) == (action, role, role)
    for headers in ({}, bearer(gone_token), bearer("aud_000000000000_nope"), bearer("x" * 5000)):
        assert call(headers).status_code == 401
    # The other header works too.
    if setup:
        setup(server)
    assert call({"X-API-Key": tokens["administrator"]}).status_code in ok
    server.runs.wait(10)


# --- keys ------------------------------------------------------------------------------


def test_key_revoked_through_the_api_stops_working_at_once(api):
    client, server, tokens, _gone = api
    admin = bearer(tokens["administrator"])
    made = client.post(f"{API}/keys", json={"name": "partner", "role": "viewer"}, headers=admin)
    assert made.status_code == 201
    key = made.json()
    assert key["role"] == "viewer" and key["token"].startswith(f"aud_{key['id']}_")
    assert "not shown again" in key["warning"]
    assert client.get(f"{API}/config", headers=bearer(key["token"])).status_code == 200
    listed = {k["id"]: k for k in client.get(f"{API}/keys", headers=admin).json()}
    assert listed[key["id"]]["name"] == "partner" and listed[key["id"]]["revoked"] is None
    assert listed[key["id"]]["last_used"] is not None
    assert not any("hash" in k or "token" in k for k in listed.values())

    revoked = client.delete(f"{API}/keys/{key['id']}", headers=admin)
    assert revoked.json() == {"id": key["id"], "revoked": True, "already_revoked": False}
    assert client.get(f"{API}/config", headers=bearer(key["token"])).status_code == 401
    again = client.delete(f"{API}/keys/{key['id']}", headers=admin)
    assert again.json()["already_revoked"] is True

    log = client.get(f"{API}/audit", params={"limit": 2}, headers=admin).json()
    assert [(e["action"], e["target"], e["key_name"]) for e in log] == [
        ("key.revoke", key["id"], "administrator"),
        ("key.create", key["id"], "administrator"),
    ]
    assert log[1]["detail"] == {"name": "partner", "role": "viewer"}
    assert log[0]["seq"] > log[1]["seq"]
    older = client.get(f"{API}/audit", params={"limit": 1, "offset": 1}, headers=admin).json()
    assert older == log[1:]
    bad = client.post(f"{API}/keys", json={"name": "x", "role": "owner"}, headers=admin)
    assert bad.status_code == 422


def test_keys_are_stored_as_strong_argon2_hashes_only(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(auth, "PasswordHasher", PasswordHasher)  # the real cost
    store = KeyStore(tmp_path / "keys.sqlite")
    principal, token = store.create("app", "viewer")
    secret = token.split("_", 2)[2]
    with sqlite3.connect(tmp_path / "keys.sqlite") as con:
        (stored,) = con.execute("SELECT hash FROM keys").fetchone()
    assert stored.startswith("$argon2id$") and "m=65536,t=3" in stored
    assert secret not in (tmp_path / "keys.sqlite").read_bytes().decode("latin-1")
    assert store.verify(token) == principal


def test_revocation_reaches_other_processes_within_the_interval(tmp_path: Path):
    path = tmp_path / "keys.sqlite"
    worker_a = KeyStore(path, check_interval=0.2)
    worker_b = KeyStore(path, check_interval=0.2)
    principal, token = worker_a.create("app", "contributor")
    checks = CheapHasher.checks
    for _ in range(1000):
        assert worker_b.verify(token) == principal
    assert CheapHasher.checks == checks + 1  # argon2 once, then remembered
    worker_a.revoke(principal.key_id)
    assert worker_a.verify(token) is None  # at once where it was revoked
    time.sleep(0.25)
    assert worker_b.verify(token) is None  # within the interval elsewhere
    assert KeyStore(path).verify(token) is None
    assert worker_a.list()[0]["revoked"] is not None


def test_wrong_tokens_are_rejected_and_remembered_within_bounds(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(auth, "BAD_CACHE_SIZE", 5)
    store = KeyStore(tmp_path / "keys.sqlite")
    principal, token = store.create("app", "viewer")
    wrong = token[:-4] + "AAAA"
    checks = CheapHasher.checks
    assert store.verify(wrong) is None
    assert store.verify(wrong) is None
    assert CheapHasher.checks == checks + 1  # no second argon2 for the same wrong token
    for i in range(20):
        assert store.verify(f"aud_{i:012x}_guess") is None
    assert len(store._bad) == 5
    assert store.verify(token) == principal
    for bad in ("", "aud__x", "aud_x_", "bearer", "aud_" + principal.key_id):
        assert store.verify(bad) is None
    with pytest.raises(ValueError, match="unknown role"):
        store.create("x", "root")
    with pytest.raises(KeyError):
        store.revoke("nope")


def test_audit_log_is_durable_and_newest_first(tmp_path: Path):
    log = AuditLog(tmp_path / "audit.sqlite")
    who = auth.Principal("k1", "ann", "administrator")
    log.record(who, "config.put", "measures/a", {"item": {"name": "a"}})
    log.record(None, "run.start", "schedule")
    again = AuditLog(tmp_path / "audit.sqlite")  # another process opening the file
    entries = again.entries()
    assert [(e["action"], e["key_name"], e["role"]) for e in entries] == [
        ("run.start", None, None),
        ("config.put", "ann", "administrator"),
    ]
    assert entries[1]["detail"] == {"item": {"name": "a"}}
    assert datetime.fromisoformat(entries[0]["ts"]).tzinfo is not None


# --- config writes ---------------------------------------------------------------------


@pytest.fixture
def yaml_api(tmp_path: Path, monkeypatch):
    """The shop from SHOP_YAML, served, with a contributor and an administrator key."""
    monkeypatch.setenv("ERP_PASSWORD", "hunter2")
    monkeypatch.setenv("TEAM_ID", "t1")
    write_shop(tmp_path)
    (tmp_path / "audience.yaml").write_text(SHOP_YAML, encoding="utf-8")
    app = create_app(tmp_path / "audience.yaml", schedule=False)
    with TestClient(app) as client:
        server = app.state.server
        contributor = bearer(server.keys.create("ann", "contributor")[1])
        admin = bearer(server.keys.create("root", "administrator")[1])
        yield client, server, contributor, admin, tmp_path / "audience.yaml"


def test_config_writes_land_in_the_file_with_comments_kept(yaml_api):
    client, server, contributor, admin, path = yaml_api
    item = {"template": "number_of_transactions", "description": "Orders placed."}
    created = client.put(f"{API}/config/measures/n_orders", json=item, headers=contributor)
    assert created.status_code == 201
    assert created.json()["status"] == "created"
    added, removed = diff_lines(SHOP_YAML, path.read_text())
    assert removed == []
    assert added == [
        "  - name: n_orders",
        "    template: number_of_transactions",
        "    description: Orders placed.",
    ]
    assert [m.name for m in server.project.measures] == ["ttv", "n_orders"]  # reloaded
    config = client.get(f"{API}/config", headers=contributor).json()
    assert config["measures"][1] == {"name": "n_orders", **item}
    entry = server.audit.entries(limit=1)[0]
    assert (entry["action"], entry["target"], entry["key_name"]) == (
        "config.put",
        "measures/n_orders",
        "ann",
    )
    assert entry["detail"] == {"result": "created", "item": {"name": "n_orders", **item}}

    updated = client.put(
        f"{API}/config/measures/ttv",
        json={"name": "ttv", "template": "total_transaction_value", "window": {"last_days": 30}},
        headers=contributor,
    )
    assert updated.status_code == 200 and updated.json()["status"] == "updated"
    deleted = client.delete(f"{API}/config/segments/small", headers=contributor)
    assert deleted.json() == {"status": "deleted", "section": "segments", "name": "small"}
    fields = {
        "first_name": "Person.FirstName",
        "email": "Identity.Email",
        "last_name": "Person.LastName",
    }
    nested = client.put(f"{API}/config/unify/tables/0/fields", json=fields, headers=admin)
    assert nested.json() == {"status": "updated", "path": "unify/tables/0/fields"}

    added, removed = diff_lines(SHOP_YAML, path.read_text())
    assert removed == ["  - name: small", '    rules: ["ttv < 10"]']
    assert added == [
        "        last_name: Person.LastName",
        "    window:",
        "      last_days: 30",
        "  - name: n_orders",
        "    template: number_of_transactions",
        "    description: Orders placed.",
    ]
    text = path.read_text()
    assert "# Money." in text and "email: Identity.Email  # the only match key" in text
    assert [e["action"] for e in server.audit.entries(limit=4)] == [
        "config.put",
        "config.delete",
        "config.put",
        "config.put",
    ]


def test_a_bad_change_is_422_with_the_path_and_writes_nothing(yaml_api):
    client, server, contributor, admin, path = yaml_api
    audited = len(server.audit.entries())

    unknown = client.put(
        f"{API}/config/measures/m",
        json={"activity": "returns", "function": "count"},
        headers=contributor,
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0].startswith(
        "measures[1].activity: no activity or activity type 'returns'"
    )
    expression = client.put(
        f"{API}/config/measures/m",
        json={"activity": "orders", "function": "sum", "of": "amount * (1 +"},
        headers=contributor,
    )
    assert expression.status_code == 422
    assert expression.json()["detail"][0].startswith("measures[1].of: ")
    shape = client.put(f"{API}/config/measures/m", json={"templat": "x"}, headers=contributor)
    assert shape.status_code == 422
    assert "measures[1].templat: unknown key" in shape.json()["detail"][0]
    mismatch = client.put(f"{API}/config/measures/m", json={"name": "z"}, headers=contributor)
    assert mismatch.status_code == 422 and "the URL says 'm'" in mismatch.json()["detail"][0]
    in_use = client.delete(f"{API}/config/sources/crm", headers=admin)
    assert in_use.status_code == 422
    assert "relationships[0].to: no source table 'crm.contacts'" in in_use.json()["detail"][0]
    cron = client.put(f"{API}/config/schedule", json={"cron": "every night"}, headers=admin)
    assert cron.status_code == 422 and cron.json()["detail"][0].startswith("schedule.cron: ")
    not_json = client.put(
        f"{API}/config/measures/m",
        content=b'{"template": "number_of_transactions", "default": NaN}',
        headers={**contributor, "Content-Type": "application/json"},
    )
    assert not_json.json()["detail"] == ["measures.default: nan is not a number JSON allows"]
    missing = client.delete(f"{API}/config/measures/nope", headers=contributor)
    assert missing.status_code == 404 and "no item nope" in missing.json()["detail"]
    outside = client.put(f"{API}/config/unify/match/0/rules", json=[], headers=admin)
    assert outside.status_code == 404

    assert path.read_text() == SHOP_YAML
    assert len(server.audit.entries()) == audited
    assert [m.name for m in server.project.measures] == ["ttv"]


def test_config_read_and_audit_hide_secrets(yaml_api):
    client, server, contributor, admin, path = yaml_api
    response = client.get(f"{API}/config", headers=contributor)
    sources = {s["name"]: s for s in response.json()["sources"]}
    assert sources["erp"]["url"] == "postgresql://app:${ERP_PASSWORD}@db.internal/erp"
    assert sources["legacy"]["url"] == "postgresql://app:***@db.internal/legacy"
    http = response.json()["exports"][0]["http"]
    assert http["url"] == "https://hooks.example.com/in?team=crm&token=***"
    assert http["headers"] == {"Authorization": "***", "X-Team": "${TEAM_ID}"}
    for secret in ("hunter2", "s3cret", "abc123", "xyz789"):
        assert secret not in response.text

    legacy = {**sources["legacy"], "url": "postgresql://app:n3w@db.internal/legacy"}
    changed = client.put(f"{API}/config/sources/legacy", json=legacy, headers=admin)
    assert changed.json()["item"]["url"] == "postgresql://app:***@db.internal/legacy"
    assert "url: postgresql://app:n3w@db.internal/legacy" in path.read_text()
    entry = server.audit.entries(limit=1)[0]
    assert entry["detail"]["item"]["url"] == "postgresql://app:***@db.internal/legacy"

    # What GET /config gave, changed elsewhere and sent back, keeps the real secrets.
    export = client.get(f"{API}/config", headers=admin).json()["exports"][0]
    export["http"]["batch_size"] = 50
    export["http"]["headers"]["X-Team"] = "crm"
    assert client.put(f"{API}/config/exports/push", json=export, headers=admin).is_success
    legacy = client.get(f"{API}/config", headers=admin).json()["sources"][3]
    assert client.put(f"{API}/config/sources/legacy", json=legacy, headers=admin).is_success
    text = path.read_text()
    assert "url: postgresql://app:n3w@db.internal/legacy" in text
    assert "token=abc123" in text and "Authorization: Bearer xyz789" in text
    assert "batch_size: 50" in text and 'X-Team: "crm"' in text and "***" not in text
    assert response.json()["as_of"] == "2026-01-31T00:00:00"


def test_a_run_started_after_a_hand_edit_uses_the_file(yaml_api):
    client, _server, contributor, _admin, path = yaml_api
    path.write_text(SHOP_YAML.replace("kind: csv", "kind: cvs", 1))
    response = client.post(f"{API}/runs", headers=contributor)
    assert response.status_code == 422
    assert response.json()["detail"][0].startswith("sources[0]: unknown source kind")


# --- runs ------------------------------------------------------------------------------


def test_post_runs_runs_the_pipeline_and_refuses_a_second(tmp_path: Path, monkeypatch):
    project = shop_project(tmp_path, MEASURES, SEGMENTS)
    gate = threading.Event()
    real = pipeline.run_pipeline

    class HeldAtFirstStage:
        def stage_started(self, name: str, steps: int) -> None:
            gate.wait(30)

        def step_done(self, name: str, label: str) -> None: ...

        def stage_finished(self, result: Any) -> None: ...

    monkeypatch.setattr(
        pipeline, "run_pipeline", lambda p, **kw: real(p, reporter=HeldAtFirstStage())
    )
    app = create_app(tmp_path / "audience.yaml", schedule=False)
    with TestClient(app) as client:
        server = app.state.server
        contributor = bearer(server.keys.create("ann", "contributor")[1])
        admin = bearer(server.keys.create("root", "administrator")[1])

        with run_lock(project.workspace_path):  # `audience run` at the command line
            blocked = client.post(f"{API}/runs", headers=contributor)
        assert blocked.status_code == 409
        assert blocked.json()["detail"].endswith("by the command line)")

        started = client.post(f"{API}/runs", headers=contributor)
        assert started.status_code == 202
        assert started.json()["status"] == "started" and started.json()["by"] == "ann"
        second = client.post(f"{API}/runs", headers=admin)
        assert second.status_code == 409
        assert second.json()["detail"] == (
            f"a run is in progress (started at {started.json()['started']}, by ann)"
        )
        with pytest.raises(RunInProgress, match="by ann"), run_lock(project.workspace_path):
            pass
        status = client.get(f"{API}/runs/status", headers=contributor).json()
        assert status["running"] is True and status["run"]["by"] == "ann"
        assert status["current_run_id"] is None

        gate.set()
        assert server.runs.wait(60)
        status = client.get(f"{API}/runs/status", headers=contributor).json()
        assert status["running"] is False and status["run"] is None
        last = status["last"]
        assert (last["status"], last["by"], last["trigger"]) == ("succeeded", "ann", "api")
        assert status["current_run_id"] == last["run_id"]
        finished = server.workspace.load(last["run_id"])
        assert "CustomerProfile" in finished.tables and finished.status == "succeeded"
        assert [e["action"] for e in server.audit.entries()] == ["run.start"]


# --- the schedule ----------------------------------------------------------------------


class FakeClock:
    """Time that passes only when the scheduler sleeps (each minute takes 1 ms)."""

    def __init__(self, start: datetime):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        time.sleep(seconds / 60_000)
        self.now += timedelta(seconds=seconds)
        return False


def _until(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _dues(server: Server, action: str) -> list[str]:
    return [
        e["detail"]["due"] for e in reversed(server.audit.entries(1000)) if e["action"] == action
    ]


def test_scheduled_runs_fire_on_time_and_skip_while_a_run_is_going(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ERP_PASSWORD", "x")
    monkeypatch.setenv("TEAM_ID", "t1")
    write_shop(tmp_path)
    schedule = "schedule:\n  cron: '0 * * * *'\n  timezone: Asia/Kolkata\n"
    (tmp_path / "audience.yaml").write_text(SHOP_YAML.replace("as_of:", schedule + "as_of:"))
    clock = FakeClock(datetime(2026, 3, 1, 10, 2, 30, tzinfo=UTC))
    release = threading.Event()
    calls: list[str] = []

    def held_run(project: Any) -> Any:
        calls.append(project.name)
        release.wait(30)
        return fake_run(project)

    server = Server(tmp_path / "audience.yaml")
    manager = RunManager(server, pipeline=held_run, clock=clock, wait=clock.wait)
    server.runs = manager
    other = RunManager(Server(tmp_path / "audience.yaml"), pipeline=fake_run)
    try:
        assert manager.start_scheduler() is True
        assert other.start_scheduler() is False  # another worker: only one schedules

        _until(lambda: manager.status()["schedule"]["skipped"] >= 2)
        # Every hour on the hour in Kolkata (UTC+5:30) is half past in UTC.
        assert _dues(server, "run.start") == ["2026-03-01T16:00:00+05:30"]
        assert _dues(server, "run.skip")[:2] == [
            "2026-03-01T17:00:00+05:30",
            "2026-03-01T18:00:00+05:30",
        ]
        assert server.audit.entries(1)[0]["key_name"] is None  # the schedule, not a key
        status = manager.status()
        assert status["running"] is True and status["run"]["by"] == "the schedule"
        assert status["schedule"]["here"] is True and status["schedule"]["cron"] == "0 * * * *"
        assert calls == ["shop"]

        release.set()
        _until(lambda: len(_dues(server, "run.start")) >= 3 and len(calls) >= 3)
        assert all(d.endswith(":00:00+05:30") for d in _dues(server, "run.start"))
        assert max(clock.sleeps) <= 60  # wakes every minute at least
    finally:
        release.set()
        manager.stop()
        manager.wait(10)
    assert other.start_scheduler() is True  # the lock is free again
    other.stop()


def test_a_schedule_set_while_serving_is_picked_up(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ERP_PASSWORD", "x")
    monkeypatch.setenv("TEAM_ID", "t1")
    write_shop(tmp_path)
    (tmp_path / "audience.yaml").write_text(SHOP_YAML)
    clock = FakeClock(datetime(2026, 3, 1, 2, 0, tzinfo=UTC))
    server = Server(tmp_path / "audience.yaml")
    manager = RunManager(server, pipeline=fake_run, clock=clock, wait=clock.wait)
    try:
        assert manager.start_scheduler() is True
        assert manager.status()["schedule"] is None
        _until(lambda: len(clock.sleeps) > 3)
        assert _dues(server, "run.start") == []
        project_edit.set_path(server.project_file, ["schedule"], {"cron": "0 3 * * *"})
        _until(lambda: len(_dues(server, "run.start")) >= 1)
        assert _dues(server, "run.start")[0].endswith("T03:00:00+00:00")
    finally:
        manager.stop()
        manager.wait(10)


def test_next_time_follows_the_time_zone():
    schedule = Schedule(cron="0 3 * * *", timezone="Europe/Paris")
    # The night clocks go forward in Paris (29 March 2026): 03:00 CEST is 01:00 UTC.
    after = datetime(2026, 3, 28, 12, tzinfo=UTC)
    first = next_time(schedule, after)
    second = next_time(schedule, first)
    assert first.astimezone(UTC) == datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert second.astimezone(UTC) == datetime(2026, 3, 30, 1, tzinfo=UTC)


# --- the command line ------------------------------------------------------------------


def test_keys_commands(tmp_path: Path):
    shop_project(tmp_path, MEASURES, SEGMENTS)
    runner = CliRunner()
    project = ["-p", str(tmp_path)]
    made = runner.invoke(cli, ["keys", "create", "ci", "--role", "contributor", *project])
    assert made.exit_code == 0, made.output
    token = next(line for line in made.output.splitlines() if line.startswith("aud_"))
    assert "not shown again" in made.output
    store = KeyStore(tmp_path / ".audience" / auth.KEYS_FILE)
    principal = store.verify(token)
    assert principal is not None and (principal.name, principal.role) == ("ci", "contributor")

    listed = runner.invoke(cli, ["keys", "list", *project])
    assert principal.key_id in listed.output and "contributor" in listed.output
    assert token not in listed.output
    revoked = runner.invoke(cli, ["keys", "revoke", principal.key_id, *project])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert KeyStore(tmp_path / ".audience" / auth.KEYS_FILE).verify(token) is None
    assert runner.invoke(cli, ["keys", "revoke", "nope", *project]).exit_code == 2
    bad = runner.invoke(cli, ["keys", "create", "x", "--role", "owner", *project])
    assert bad.exit_code == 2
    log = AuditLog(tmp_path / ".audience" / auth.AUDIT_FILE).entries()
    assert [(e["action"], e["target"], e["detail"]["via"]) for e in log] == [
        ("key.revoke", principal.key_id, "command line"),
        ("key.create", principal.key_id, "command line"),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_two_workers(tmp_path: Path):
    shop_project(tmp_path, MEASURES, SEGMENTS)
    _principal, token = KeyStore(tmp_path / ".audience" / auth.KEYS_FILE).create("t", "viewer")
    port = _free_port()
    command = "import audience.cli_api; from audience.cli import app; app()"
    process = subprocess.Popen(
        [sys.executable, "-c", command, "serve", "--port", str(port), "--workers", "2",
         "-p", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}{API}/runs/status"
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(url, headers=bearer(token), timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["running"] is False
        assert httpx.get(url, timeout=5).status_code == 401
        # Exactly one worker holds the schedule (the project has none yet; it may get one).
        holder = json.loads((tmp_path / ".audience" / "scheduler.lock").read_text())
        assert holder["pid"] not in (process.pid, os.getpid())
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert "serving test on" in output


def test_concurrent_first_requests_with_a_new_key_share_one_argon2_check(api):
    import asyncio

    import httpx

    client, server, _tokens, _gone = api
    _principal, token = server.keys.create("burst", "viewer")
    checks = CheapHasher.checks

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            calls = [http.get("/api/v1/runs/status", headers=bearer(token)) for _ in range(30)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    assert asyncio.run(burst()) == [200] * 30
    assert CheapHasher.checks == checks + 1
