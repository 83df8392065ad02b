"""Shared by the console tests: the demo project run once, its users and a customer found in
all three demo sources (crm, shop, loyalty)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audience.api.auth import KEYS_FILE, KeyStore
from audience.console.users import UserStore
from audience.pipeline import run_pipeline
from audience.serving import ServingStore
from conftest import demo_project

PASSWORDS = {"ada": "admin-pass", "vic": "viewer-pass"}
ROLES = {"ada": "administrator", "vic": "viewer"}


def demo_workspace(folder: Path) -> dict[str, Any]:
    """Run the demo project in `folder`; make users ada (administrator), vic (viewer), an API
    key, and pick a customer whose records come from crm, shop and loyalty."""
    project = demo_project(folder, people=300, seed=7)
    run = run_pipeline(project)
    users = UserStore(project.workspace_path / KEYS_FILE)
    for name, password in PASSWORDS.items():
        users.create(name, ROLES[name], password)
    _principal, token = KeyStore(project.workspace_path / KEYS_FILE).create("ci", "viewer")
    store = ServingStore.open(run)
    try:
        customer = _three_source_customer(store)
    finally:
        store.close()
    return {"project_file": folder / "audience.yaml", "run": run, "token": token, **customer}


def _three_source_customer(store: ServingStore) -> dict[str, Any]:
    with store._env.begin(db=store._dbs["customer"]) as txn:  # the tests' own peek inside
        for _key, raw in txn.cursor():
            customer = json.loads(raw)
            sources = {k["source"] for k in customer["keys"]}
            complete = customer["profile"].get("Email") and customer["segments"]
            if {"crm", "shop", "loyalty"} <= sources and complete and customer["measures"]:
                return {"customer": customer, "email": customer["profile"]["Email"]}
    raise AssertionError("the demo has no customer with records in crm, shop and loyalty")


def sign_in(app: Any, user: str, password: str) -> Any:
    """A fresh test client (own cookies) signed in as `user`, sending the session's CSRF token
    with every request as the console's htmx does."""
    import re

    from fastapi.testclient import TestClient

    client = TestClient(app)
    response = client.post(
        "/login", data={"username": user, "password": password}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/").text)
    assert token, "the console pages carry no CSRF token"
    client.headers["X-CSRF-Token"] = token.group(1)
    return client
