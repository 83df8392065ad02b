"""The customer routes on a real run of the hand-made shop (tests/analytics_helpers.py), and
the serving store underneath: roles and keys, lookups by id, source key, e-mail and phone,
the paged timeline with its filters, real-time updates merged in, and the store's JSON."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from analytics_helpers import CONTACTS, UNIFY, shop_project
from fastapi.testclient import TestClient
from unify_helpers import customer_of, run, write_data

from audience.api.app import create_app
from audience.runs import Run, Workspace
from audience.serving import ServingStore, build_store, normalize_phone

API = "/api/v1"
MEASURES = [
    {"name": "ttv", "template": "total_transaction_value"},
    {"name": "balance", "template": "loyalty_points_balance"},
]
SEGMENTS = [
    {"name": "big", "rules": ["ttv > 100"]},
    {"name": "no_phone", "rules": ["Phone is null"]},
]
# The shop's contacts with phones in assorted formats; C4 shares C3's e-mail (another case).
PHONES = {"C1": "+1 (555) 010-0001", "C2": "555.010.0002", "C3": None, "C4": "5550100004"}
EMAILS = {"C4": " CAT@X.com "}
# C1's activities, newest first (same time: ActivityId order).
C1_TIMELINE = [
    "lines|1", "lines|2", "orders|1",  # 2026-01-30 10:00
    "visits|4", "visits|3", "visits|2", "visits|1",  # 2026-01-08 .. 01-05, 08:00
    "lines|3", "orders|2",  # 2025-12-31 10:00
    "points|3", "points|2", "points|1",  # 2025-08-01, 07-01, 06-01
    "lines|5", "orders|3",  # 2025-01-31 12:00
]  # fmt: skip


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A finished run, the app over it, a key per role and CustomerId by contact."""
    root = tmp_path_factory.mktemp("customers")
    unify = {"tables": [{**UNIFY["tables"][0], "fields": {
        **UNIFY["tables"][0]["fields"], "phone": "Identity.Phone"
    }}]}  # fmt: skip
    project = shop_project(root, MEASURES, SEGMENTS, unify=unify)
    contacts = [
        {**c, "email": EMAILS.get(c["contact_id"], c["email"]), "phone": PHONES[c["contact_id"]]}
        for c in CONTACTS
    ]
    write_data(root, {"crm_contacts": contacts})
    finished = run(project)
    ids = {k.split("|")[-1]: v for k, v in customer_of(finished).items()}
    app = create_app(root / "audience.yaml", schedule=False)
    with TestClient(app) as client:
        server = app.state.server
        tokens = {role: server.keys.create(f"test {role}", role)[1] for role in ROLES}
        yield {"client": client, "tokens": tokens, "ids": ids, "run": finished, "server": server}


ROLES = ("viewer", "contributor", "administrator")


def get(shop, path: str, role: str = "viewer", **params):
    headers = {"Authorization": f"Bearer {shop['tokens'][role]}"}
    return shop["client"].get(API + path, params=params, headers=headers)


# -- keys and roles ----------------------------------------------------------------------------
def _paths(shop) -> list[tuple[str, dict]]:
    c1 = shop["ids"]["C1"]
    return [
        (f"/customers/{c1}", {}),
        ("/customers/lookup", {"source": "crm", "table": "contacts", "key": "C1"}),
        ("/customers/lookup", {"email": "ann@x.com"}),
        ("/customers/lookup", {"phone": "555 010 0001"}),
        (f"/customers/{c1}/activities", {"limit": 2}),
    ]


def test_every_role_reads_and_a_key_is_needed(shop):
    client = shop["client"]
    for path, params in _paths(shop):
        for role in ROLES:
            assert get(shop, path, role, **params).status_code == 200, (path, role)
        assert client.get(API + path, params=params).status_code == 401, path
        wrong = {"Authorization": "Bearer aud_0123456789ab_not-a-secret"}
        assert client.get(API + path, params=params, headers=wrong).status_code == 401, path
        other = {"X-API-Key": shop["tokens"]["viewer"]}
        assert client.get(API + path, params=params, headers=other).status_code == 200, path


def test_no_route_of_the_module_answers_without_a_key(shop):
    """The lookups check the key inside the route (not through a router dependency): any
    route added here must too."""
    from audience.api.routes.customers import router

    c1 = shop["ids"]["C1"]
    paths = [r.path.replace("{customer_id}", c1) for r in router.routes]
    assert len(paths) == 3
    for path in paths:
        response = shop["client"].get(API + path, params={"email": "ann@x.com"})
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_refused(shop):
    server = shop["server"]
    principal, token = server.keys.create("short-lived", "viewer")
    path = f"{API}/customers/{shop['ids']['C1']}"
    headers = {"Authorization": f"Bearer {token}"}
    assert shop["client"].get(path, headers=headers).status_code == 200
    server.keys.revoke(principal.key_id)
    assert shop["client"].get(path, headers=headers).status_code == 401


# -- one customer ------------------------------------------------------------------------------
def test_customer_by_id_has_profile_keys_measures_segments(shop):
    c1 = shop["ids"]["C1"]
    response = get(shop, f"/customers/{c1}")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["CustomerId"] == c1
    profile = body["profile"]
    assert (profile["FirstName"], profile["LastName"]) == ("Ann", "Lee")
    assert (profile["Email"], profile["Phone"]) == ("ann@x.com", "+1 (555) 010-0001")
    assert body["keys"] == [{"source": "crm", "table": "contacts", "key": "C1"}]
    assert body["measures"] == {"ttv": 180.0, "balance": 150}
    assert body["segments"] == ["big"]
    assert body["enrichments"] == [] and body["predictions"] == []

    c3 = get(shop, f"/customers/{shop['ids']['C3']}").json()
    assert c3["measures"] == {"ttv": 0.0, "balance": 0} and c3["segments"] == ["no_phone"]


def test_unknown_customer_is_404(shop):
    for path in ("/customers/nobody", "/customers/nobody/activities"):
        response = get(shop, path)
        assert response.status_code == 404
        assert response.json()["detail"] == "no customer with CustomerId 'nobody'"


# -- lookups -----------------------------------------------------------------------------------
def test_lookup_by_source_key(shop):
    body = get(shop, "/customers/lookup", source="crm", table="contacts", key="C2").json()
    assert body["CustomerId"] == shop["ids"]["C2"] and body["measures"]["ttv"] == 200.0
    missing = get(shop, "/customers/lookup", source="crm", table="contacts", key="C123")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no customer for crm.contacts key C123"
    other_table = get(shop, "/customers/lookup", source="shop", table="contacts", key="C2")
    assert other_table.status_code == 404


def test_lookup_by_email_any_case_finds_everyone_sharing_it(shop):
    ids = shop["ids"]
    body = get(shop, "/customers/lookup", email="  Cat@X.COM").json()
    found = {c["CustomerId"]: c for c in body["customers"]}
    assert set(found) == {ids["C3"], ids["C4"]}
    assert found[ids["C4"]]["profile"]["FirstName"] == "Dan"
    assert [c["CustomerId"] for c in get(shop, "/customers/lookup", email="ANN@x.com").json()[
        "customers"
    ]] == [ids["C1"]]  # fmt: skip
    assert get(shop, "/customers/lookup", email="nobody@x.com").json() == {"customers": []}


def test_lookup_by_phone_in_another_format(shop):
    ids = shop["ids"]
    for phone, contact in [
        ("555-010-0001", "C1"),
        ("+15550100001", "C1"),
        ("(555) 010 0002", "C2"),
        ("1 555 010 0004", "C4"),
    ]:
        body = get(shop, "/customers/lookup", phone=phone).json()
        assert [c["CustomerId"] for c in body["customers"]] == [ids[contact]], phone
    assert get(shop, "/customers/lookup", phone="555-999-0000").json() == {"customers": []}
    assert normalize_phone("+1 (555) 010-0001") == normalize_phone("555.010.0001") == "5550100001"


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({}, "got nothing"),
        ({"email": "ann@x.com", "phone": "5550100001"}, "got email and phone"),
        ({"email": "ann@x.com", "key": "C1"}, "got email and source+table+key"),
        ({"source": "crm", "key": "C1"}, "missing table"),
        ({"table": "contacts"}, "missing source, key"),
        ({"email": "  "}, "email is empty"),
        ({"phone": "call me"}, "has no digits"),
    ],
)
def test_bad_lookup_parameters_are_400_with_what_to_send(shop, params, says):
    response = get(shop, "/customers/lookup", **params)
    assert response.status_code == 400
    assert says in response.json()["detail"]
    if not params:
        assert "source, table and key" in response.json()["detail"]


# -- the timeline ------------------------------------------------------------------------------
def _ids(body: dict) -> list[str]:
    return [a["ActivityId"] for a in body["items"]]


def test_timeline_newest_first_in_pages(shop):
    c1 = shop["ids"]["C1"]
    pages, offset = [], 0
    while offset is not None:
        body = get(shop, f"/customers/{c1}/activities", limit=5, offset=offset).json()
        pages.append(_ids(body))
        offset = body["next_offset"]
    assert [len(p) for p in pages] == [5, 5, 4]
    assert [a for p in pages for a in p] == C1_TIMELINE
    full = get(shop, f"/customers/{c1}/activities").json()
    assert _ids(full) == C1_TIMELINE and full["next_offset"] is None
    order = full["items"][2]
    assert order == {
        "CustomerId": c1,
        "ActivityId": "orders|1",
        "SourceEntityName": "shop.orders",
        "SourceActivityId": "1",
        "ActivityType": "SalesOrder",
        "ActivityTimeStamp": "2026-01-30T10:00:00",
        "Title": "Order 1",
        "Description": None,
        "URL": None,
        "SemanticData": {"amount": 100.0, "channel": "web", "status": "completed"},
        "RangeIndex": order["RangeIndex"],
        "UnifiedActivityId": order["UnifiedActivityId"],
    }
    exact = get(shop, f"/customers/{c1}/activities", limit=14).json()
    assert len(exact["items"]) == 14 and exact["next_offset"] is None
    past = get(shop, f"/customers/{c1}/activities", offset=14).json()
    assert past == {"items": [], "next_offset": None}


def test_timeline_filters_by_type_and_time(shop):
    path = f"/customers/{shop['ids']['C1']}/activities"
    typed = get(shop, path, type=["SalesOrder", "WebVisit"]).json()
    assert _ids(typed) == [a for a in C1_TIMELINE if a.startswith(("orders", "visits"))]
    window = get(shop, path, start="2026-01-05T08:00:00", end="2026-01-07T08:00:00").json()
    assert _ids(window) == ["visits|2", "visits|1"]  # start inclusive, end exclusive
    # The same end in another zone; with a type and paging.
    zoned = get(shop, path, end="2026-01-07T09:00:00+01:00", type="WebVisit", limit=1).json()
    assert _ids(zoned) == ["visits|2"] and zoned["next_offset"] == 1
    second = get(shop, path, end="2026-01-07T09:00:00+01:00", type="WebVisit", offset=1).json()
    assert _ids(second) == ["visits|1"] and second["next_offset"] is None
    since = get(shop, path, start="2025-12-31T10:00:00", type="SalesOrderLine").json()
    assert _ids(since) == ["lines|1", "lines|2", "lines|3"]
    assert get(shop, path, type="Nothing").json() == {"items": [], "next_offset": None}


def test_timeline_bad_parameters(shop):
    path = f"/customers/{shop['ids']['C1']}/activities"
    backwards = get(shop, path, start="2026-01-02", end="2026-01-01")
    assert backwards.status_code == 400 and "must be before end" in backwards.json()["detail"]
    for params in ({"limit": 0}, {"limit": 5000}, {"offset": -1}, {"start": "yesterday"}):
        assert get(shop, path, **params).status_code == 422, params
    early = get(shop, path, start="0001-01-01T00:00:00+01:00")  # before year 1 in UTC
    assert early.status_code == 400 and "start is out of range" in early.json()["detail"]
    assert get(shop, path, end="9999-12-31T23:59:59").json()["items"][0]["ActivityId"] == "lines|1"


# -- real-time writes --------------------------------------------------------------------------
def test_realtime_updates_are_merged(shop):
    server, c2 = shop["server"], shop["ids"]["C2"]
    before = get(shop, f"/customers/{c2}").json()
    server.realtime.update_profile(c2, {"FirstName": "Robert"})
    server.realtime.add_activity(
        c2, {"type": "WebVisit", "timestamp": "2026-01-20T09:00:00Z", "source_id": "w1"}
    )
    server.realtime.add_activity(
        c2, {"type": "Call", "timestamp": "2026-02-01T12:00:00+02:00", "data": {"minutes": 5}}
    )
    after = get(shop, f"/customers/{c2}").json()
    assert after["profile"]["FirstName"] == "Robert"
    assert {**after, "profile": {**after["profile"], "FirstName": "Bob"}} == before
    by_key = get(shop, "/customers/lookup", source="crm", table="contacts", key="C2").json()
    assert by_key == after

    path = f"/customers/{c2}/activities"
    body = get(shop, path).json()
    stamps = [(a["ActivityType"], a["ActivityTimeStamp"]) for a in body["items"]]
    assert stamps[:2] == [("Call", "2026-02-01T10:00:00"), ("WebVisit", "2026-01-20T09:00:00")]
    assert body["items"][0]["SemanticData"] == {"minutes": 5}
    assert body["items"][1]["ActivityId"] == "realtime|w1"
    # Then the stored ones; the posted visit comes first among equal times.
    assert _ids(body)[1:] == [
        "realtime|w1", "orders|5", "lines|4", "orders|4", "visits|5", "points|4"
    ]  # fmt: skip
    times = [datetime.fromisoformat(a["ActivityTimeStamp"]) for a in body["items"]]
    assert times == sorted(times, reverse=True)
    # Paging and filters see the merged list.
    first = get(shop, path, limit=1).json()
    assert _ids(first) == [body["items"][0]["ActivityId"]] and first["next_offset"] == 1
    second = get(shop, path, limit=2, offset=1).json()
    assert _ids(second) == _ids(body)[1:3]
    visits = get(shop, path, type="WebVisit").json()
    assert _ids(visits) == ["realtime|w1", "visits|5"]
    window = get(shop, path, start="2026-01-15", end="2026-01-25").json()
    assert _ids(window) == ["realtime|w1", "orders|5"]


def test_openapi_documents_the_routes(shop):
    spec = shop["client"].get(f"{API}/openapi.json").json()
    lookup = spec["paths"][f"{API}/customers/lookup"]["get"]
    assert [p["name"] for p in lookup["parameters"]] == ["source", "table", "key", "email", "phone"]
    one = spec["paths"][f"{API}/customers/{{customer_id}}"]["get"]
    assert one["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Customer"
    }
    page = spec["paths"][f"{API}/customers/{{customer_id}}/activities"]["get"]
    names = [p["name"] for p in page["parameters"]]
    assert names == ["customer_id", "type", "start", "end", "limit", "offset"]
    customer = spec["components"]["schemas"]["Customer"]["properties"]
    assert set(customer) == {
        "CustomerId", "profile", "keys", "measures", "segments", "enrichments", "predictions"
    }  # fmt: skip


# -- the store itself --------------------------------------------------------------------------
def test_serving_stage_records_its_counts(shop):
    stage = shop["run"].results["stages"]["serving"]
    assert stage["status"] == "ok"
    assert stage["rows"]["serving.customer"] == 4 and stage["rows"]["serving.key"] == 4
    # ann, bob, cat (C3 and C4 share it); three phones; every resolved activity of the shop.
    assert stage["rows"]["serving.email"] == 3 and stage["rows"]["serving.phone"] == 3
    assert stage["rows"]["serving.activity"] == 20
    assert stage["detail"]["bytes"] > 0


def test_store_json_from_part_files_with_every_kind_of_value(tmp_path: Path):
    """Tables as a Spark run writes them (folders of part files), enrichments and
    predictions, timestamps, non-finite numbers, activities without a time."""
    tables = {}

    def write(name: str, rows: list[dict], parts: int = 1) -> None:
        folder = tmp_path / "tables" / name
        folder.mkdir(parents=True)
        table = pa.Table.from_pylist(rows)
        step = max(1, -(-len(rows) // parts))
        for i in range(parts):
            pq.write_table(table.slice(i * step, step), folder / f"part-{i:05d}.parquet")
        tables[name] = folder

    write(
        "CustomerProfile",
        [
            {"CustomerId": "b", "Name": "Bé", "Joined": datetime(2024, 5, 6, 7, 8, 9, 120)},
            {"CustomerId": "a", "Name": None, "Joined": datetime(2020, 1, 1)},
        ],
        parts=2,
    )
    write("CustomerAttributes", [{"CustomerId": "a", "score": float("nan"), "n": 3}])
    write(
        "Enrichment",
        [
            {"CustomerId": "a", "EnrichmentProvider": "geo", "EnrichmentType": "region",
             "Values": '{"region": "west"}'},
            {"CustomerId": "a", "EnrichmentProvider": "brand", "EnrichmentType": "affinity",
             "Values": "not json"},
        ],
    )  # fmt: skip
    write(
        "Prediction",
        [{"CustomerId": "b", "ModelProvider": "Audience", "Model": "churn",
          "Values": '{"score": 0.25}'}],
    )  # fmt: skip
    write(
        "UnifiedActivity",
        [
            {"CustomerId": "a", "ActivityId": "x|1", "ActivityType": "T",
             "ActivityTimeStamp": None, "SemanticData": "{}"},
            {"CustomerId": "a", "ActivityId": "x|2", "ActivityType": "T",
             "ActivityTimeStamp": datetime(1960, 1, 1), "SemanticData": '{"k": [1, 2]}'},
            {"CustomerId": "a", "ActivityId": "x|3", "ActivityType": "U",
             "ActivityTimeStamp": datetime(2030, 1, 1), "SemanticData": None},
        ],
    )  # fmt: skip
    run = Run(Workspace(tmp_path), "r", {"stages": {}})
    built = build_store(run.path / "serving", tables)
    assert built["entries"] == {"customer": 2, "key": 0, "email": 0, "phone": 0, "activity": 3}
    store = ServingStore.open(run)
    a, b = store.customer("a"), store.customer("b")
    assert a == {
        "CustomerId": "a",
        "profile": {"Name": None, "Joined": "2020-01-01T00:00:00"},
        "keys": [],
        "measures": {"score": None, "n": 3},
        "segments": [],
        "enrichments": [
            {"provider": "brand", "type": "affinity", "values": "not json"},
            {"provider": "geo", "type": "region", "values": {"region": "west"}},
        ],
        "predictions": [],
    }
    assert b["profile"] == {"Name": "Bé", "Joined": "2024-05-06T07:08:09.000120"}
    assert b["measures"] == {} and b["segments"] == []
    assert b["predictions"] == [
        {"provider": "Audience", "model": "churn", "values": {"score": 0.25}}
    ]
    page = store.timeline("a")
    assert [x["ActivityId"] for x in page["items"]] == ["x|3", "x|2", "x|1"]
    assert page["items"][1]["ActivityTimeStamp"] == "1960-01-01T00:00:00"
    assert page["items"][1]["SemanticData"] == {"k": [1, 2]}
    assert (
        page["items"][0]["SemanticData"] is None and page["items"][2]["ActivityTimeStamp"] is None
    )
    before_1970 = store.timeline("a", end=datetime(1970, 1, 1))
    assert [x["ActivityId"] for x in before_1970["items"]] == ["x|2"]
    assert store.timeline("a", types={"U"}, limit=1) == {
        "items": [page["items"][0]],
        "next_offset": None,
    }
    store.close()


def test_a_run_without_a_store_answers_503(tmp_path: Path):
    run = Run(Workspace(tmp_path), "old", {"stages": {}})
    store = ServingStore.open(run)
    assert not store.available and "has no serving store" in (store.missing or "")
    assert store.customer("x") is None and store.by_email("a@b.c") == []
    assert store.timeline("x") == {"items": [], "next_offset": None}
