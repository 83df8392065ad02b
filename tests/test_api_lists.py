"""The list routes over the hand-made shop (C1..C4): customers with filters, search, fields,
order and paging; segments and members; measures and their values; sources with profiles and
previews; runs; and who may read them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from analytics_helpers import shop_project
from fastapi.testclient import TestClient
from unify_helpers import rows, run

from audience.api import server as server_module
from audience.api.app import create_app
from audience.realtime import RealtimeStore
from audience.runs import RunError

MEASURES = [
    {"name": "ttv", "template": "total_transaction_value"},
    {"name": "n_orders", "template": "number_of_transactions"},
    {
        "name": "by_channel",
        "kind": "customer_measure",
        "function": "sum",
        "activity": "orders",
        "of": "amount",
        "dimensions": ["channel"],
    },
    {
        "name": "orders_by_channel",
        "kind": "business_measure",
        "function": "count",
        "activity": "orders",
        "dimensions": ["channel"],
    },
    {"name": "top_channel", "function": "argmax", "activity": "orders", "of": "channel",
     "by": "amount"},
]  # fmt: skip
SEGMENTS = [
    {"name": "big", "description": "spent over 100", "rules": ["ttv > 100"]},
    {"name": "visitors", "rules": [{"activity": "WebVisit"}]},
]
API = "/api/v1"


@contextmanager
def _client(root: Path) -> Iterator[TestClient]:
    with TestClient(create_app(root / "audience.yaml", schedule=False)) as client:
        yield client
        # LMDB allows one open environment per process: a later app here opens it again.
        with suppress(RunError):
            client.app.state.server.view().serving.close()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("lists")
    project = shop_project(root, MEASURES, SEGMENTS)
    result = run(project)
    ids = {r["crm_contacts_contact_id"]: r["CustomerId"] for r in rows(result, "CustomerProfile")}
    with _client(root) as client:
        _principal, token = client.app.state.server.keys.create("reader", "viewer")
        client.headers["Authorization"] = f"Bearer {token}"
        yield {"client": client, "ids": ids, "run": result, "project": project}


def _get(shop: dict[str, Any], path: str, status: int = 200, **params: Any) -> Any:
    url = f"{API}{path}" + (f"?{urlencode(params)}" if params else "")
    response = shop["client"].get(url)
    assert response.status_code == status, (url, response.text)
    return response.json()


def _contacts(shop: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
    """The contact ids (C1..) of customer items."""
    by_id = {v: k for k, v in shop["ids"].items()}
    return [by_id[item["CustomerId"]] for item in items]


# -- customers ----------------------------------------------------------------------------


def test_customers_with_profile_and_measures(shop):
    page = _get(shop, "/customers")
    assert page["total"] == 4 and len(page["items"]) == 4
    ann = next(i for i in page["items"] if i["CustomerId"] == shop["ids"]["C1"])
    assert ann["FirstName"] == "Ann" and ann["Email"] == "ann@x.com"
    assert ann["ttv"] == 180.0 and ann["n_orders"] == 3 and ann["top_channel"] == "web"
    assert sorted(ann["Segments"]) == ["big", "visitors"]


def test_customers_fields_order_and_paging(shop):
    page = _get(shop, "/customers", fields="FirstName,ttv", order="-ttv", limit=2)
    assert page["total"] == 4
    assert page["items"] == [
        {"CustomerId": shop["ids"]["C2"], "FirstName": "Bob", "ttv": 200.0},
        {"CustomerId": shop["ids"]["C1"], "FirstName": "Ann", "ttv": 180.0},
    ]
    rest = _get(shop, "/customers", fields="FirstName", order="-ttv", limit=2, offset=2)
    assert sorted(i["FirstName"] for i in rest["items"]) == ["Cat", "Dan"]
    names = _get(shop, "/customers", fields="FirstName", order="FirstName")["items"]
    assert [i["FirstName"] for i in names] == ["Ann", "Bob", "Cat", "Dan"]
    assert _get(shop, "/customers", offset=10)["items"] == []


def test_customers_filter(shop):
    page = _get(shop, "/customers", filter="ttv > 100 and FirstName != 'Bob'")
    assert _contacts(shop, page["items"]) == ["C1"] and page["total"] == 1
    nulls = _get(shop, "/customers", filter="Email is null")
    assert _contacts(shop, nulls["items"]) == ["C4"]
    # What a caller types is a value, never SQL.
    sneaky = _get(shop, "/customers", filter="FirstName = 'x'' or 1=1 --'")
    assert sneaky["total"] == 0


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"filter": "tv > 100"}, "did you mean 'ttv'"),
        ({"filter": "ttv"}, "expected a condition"),
        ({"filter": "ttv >"}, "filter"),
        ({"fields": "FirstName,Nmae"}, "unknown field 'Nmae'"),
        ({"order": "-tvv"}, "Did you mean 'ttv'"),
    ],
)
def test_customers_mistakes_are_400_with_a_suggestion(shop, params, expected):
    detail = _get(shop, "/customers", status=400, **params)["detail"]
    assert expected in detail


@pytest.mark.parametrize("limit", [0, 1001])
def test_customers_limit_bounds(shop, limit):
    _get(shop, "/customers", status=422, limit=limit)


def test_customers_free_text_search(shop):
    assert _contacts(shop, _get(shop, "/customers", q="BOB")["items"]) == ["C2"]
    found = _get(shop, "/customers", q="x.com", order="FirstName")["items"]
    assert _contacts(shop, found) == ["C1", "C2", "C3"]  # C4 has no e-mail
    both = _get(shop, "/customers", q="a", filter="ttv > 0", order="FirstName")["items"]
    assert _contacts(shop, both) == ["C1", "C2"]  # 'a' in Ann, and in Bob's 'Ray'
    assert _get(shop, "/customers", q="zzz")["total"] == 0


# -- segments -----------------------------------------------------------------------------


def test_segments(shop):
    listed = {s["name"]: s for s in _get(shop, "/segments")["items"]}
    assert set(listed) == {"big", "visitors"}
    big = listed["big"]
    assert big["size"] == 2 and big["kind"] == "dynamic" and big["description"] == "spent over 100"
    assert big["definition"]["rules"] == ["ttv > 100"]
    assert [(h["RunId"], h["Size"]) for h in big["history"]] == [(shop["run"].id, 2)]
    assert listed["visitors"]["size"] == 3
    assert _get(shop, "/segments/big") == big
    assert "visitors" in _get(shop, "/segments/nobody", status=404)["detail"]


def test_segment_members(shop):
    members = _get(shop, "/segments/big/members", fields="FirstName")
    assert members["total"] == 2
    assert sorted(i["FirstName"] for i in members["items"]) == ["Ann", "Bob"]
    assert set(members["items"][0]) == {"CustomerId", "FirstName"}
    page = _get(shop, "/segments/visitors/members", limit=2, offset=2)
    assert page["total"] == 3 and len(page["items"]) == 1
    _get(shop, "/segments/nobody/members", status=404)
    _get(shop, "/segments/big/members", status=400, fields="Nope")


# -- measures -----------------------------------------------------------------------------


def test_measures(shop):
    listed = {m["name"]: m for m in _get(shop, "/measures")["items"]}
    assert list(listed) == [m["name"] for m in MEASURES]
    assert listed["ttv"]["table"] == "CustomerAttributes"
    assert listed["by_channel"]["table"] == "Measure_by_channel"
    assert listed["ttv"]["definition"]["template"] == "total_transaction_value"

    ttv = _get(shop, "/measures/ttv")["summary"]
    assert ttv | {"mean": round(ttv["mean"], 6)} == {
        "customers": 4,
        "values": 4,
        "nulls": 0,
        "distinct": 3,
        "min": 0.0,
        "max": 200.0,
        "mean": 95.0,
        "sum": 380.0,
    }
    channel = _get(shop, "/measures/top_channel")["summary"]
    assert channel["top_values"] == [{"value": "web", "customers": 2}] and channel["nulls"] == 2

    values = _get(shop, "/measures/by_channel")["values"]
    ids = {v: k for k, v in shop["ids"].items()}
    got = {(ids[i["CustomerId"]], i["channel"], i["by_channel"]) for i in values["items"]}
    assert got == {("C1", "app", 50.0), ("C1", "web", 130.0), ("C2", "web", 200.0)}
    business = _get(shop, "/measures/orders_by_channel", limit=1)["values"]
    assert business["total"] == 2
    assert business["items"] == [{"channel": "app", "orders_by_channel": 1}]
    assert "ttv" in _get(shop, "/measures/nothing", status=404)["detail"]


# -- sources ------------------------------------------------------------------------------


def test_sources(shop):
    listed = {s["label"]: s for s in _get(shop, "/sources")["items"]}
    assert list(listed) == ["crm.contacts", "shop.orders", "shop.lines", "shop.ledger",
                            "shop.visits"]  # fmt: skip
    orders = listed["shop.orders"]
    assert orders["kind"] == "csv" and orders["primary_key"] == "order_id"
    assert orders["rows_loaded"] == 8 and orders["rows_quarantined"] == 0
    assert {"name": "amount", "type": "DOUBLE"} in orders["columns"]

    contacts = _get(shop, "/sources/crm/contacts")
    profile = {p["column"]: p for p in contacts["profile"]}
    assert set(profile) == {"contact_id", "first_name", "last_name", "email"}
    assert profile["email"]["nulls"] == 1 and profile["email"]["distinct"] == 3
    assert profile["contact_id"]["top_values"][0] == ["C1", 1]

    preview = _get(shop, "/sources/shop/orders/preview", limit=2)["rows"]
    assert [r["order_id"] for r in preview] == [1, 2]
    assert preview[0]["order_ts"] == "2026-01-30T10:00:00"
    assert "crm.contacts" in _get(shop, "/sources/crm/nothing", status=404)["detail"]
    _get(shop, "/sources/shop/orders/preview", status=422, limit=0)


# -- runs ---------------------------------------------------------------------------------


def test_runs(shop):
    listed = _get(shop, "/runs")
    assert listed["total"] == 1
    (summary,) = listed["items"]
    assert summary["id"] == shop["run"].id and summary["status"] == "succeeded"
    assert summary["current"] and summary["seconds"] > 0
    stages = {s["name"]: s for s in summary["stages"]}
    assert stages["ingest"]["rows"]["shop_orders"] == 8
    assert stages["realtime"]["status"] == "skipped"  # nothing was posted
    assert "nothing was posted" in shop["run"].results["stages"]["realtime"]["detail"]["reason"]
    assert stages["activities"]["status"] == "ok" and stages["activities"]["seconds"] >= 0

    detail = _get(shop, f"/runs/{shop['run'].id}")
    assert "CustomerProfile" in detail["tables"]
    assert next(s for s in detail["stages"] if s["name"] == "segments")["detail"]["sizes"] == {
        "big": 2,
        "visitors": 3,
    }
    _get(shop, "/runs/20200101T000000.000Z-abcd", status=404)
    _get(shop, "/runs/not-a-run", status=404)
    # /runs/status belongs to the admin routes; a run id never looks like it.
    assert shop["client"].get(f"{API}/runs/status").status_code == 200


# -- access and a new run -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/customers",
        "/segments",
        "/segments/big",
        "/segments/big/members",
        "/measures",
        "/measures/ttv",
        "/sources",
        "/sources/crm/contacts",
        "/sources/crm/contacts/preview",
        "/runs",
    ],
)
def test_a_key_is_needed(shop, path):
    anonymous = shop["client"].get(f"{API}{path}", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert shop["client"].get(f"{API}{path}").status_code == 200  # a viewer key


def test_lists_follow_the_new_current_run(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(server_module, "POINTER_CHECK_S", 0.0)
    project = shop_project(tmp_path, MEASURES, SEGMENTS)
    c1 = {
        r["crm_contacts_contact_id"]: r["CustomerId"] for r in rows(run(project), "CustomerProfile")
    }
    with _client(tmp_path) as client:
        _principal, token = client.app.state.server.keys.create("reader", "viewer")
        client.headers["Authorization"] = f"Bearer {token}"
        query = f"{API}/customers?filter=FirstName%20%3D%20'Annie'"
        assert client.get(query).json()["total"] == 0
        RealtimeStore(project.workspace_path / "realtime.sqlite").update_profile(
            c1["C1"], {"FirstName": "Annie"}
        )
        second = run(project)
        time.sleep(0.01)
        assert client.get(query).json()["total"] == 1
        assert client.get(f"{API}/runs").json()["items"][0]["id"] == second.id
