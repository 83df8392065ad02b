"""Real-time writes: durable at once, visible to readers at once (other processes too), and
folded into the next run exactly once, with the customer they belong to after merges."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from analytics_helpers import CONTACTS, shop_project
from fastapi.testclient import TestClient
from unify_helpers import rows, run, write_data

from audience.api.app import create_app
from audience.pipeline import run_pipeline
from audience.realtime import RealtimeConflict, RealtimeError, RealtimeStore
from audience.runs import RunError, Workspace

SEGMENTS = [{"name": "annies", "rules": ["FirstName = 'Annie'"]}]
MEASURES = [{"name": "ttv", "template": "total_transaction_value"}]
VISIT = {
    "type": "WebVisit",
    "timestamp": "2026-01-30T12:00:00+01:00",
    "title": "Home page",
    "url": "https://shop.example/",
    "data": {"page": "home", "seconds": 42},
    "source_id": "web-1",
}


def _ids(result: Any) -> dict[str, str]:
    """contact id (C1..C4) -> CustomerId."""
    return {r["crm_contacts_contact_id"]: r["CustomerId"] for r in rows(result, "CustomerProfile")}


def _realtime_rows(result: Any) -> list[dict[str, Any]]:
    return [r for r in rows(result, "UnifiedActivity") if r["SourceEntityName"] == "realtime"]


@contextmanager
def _client(root: Path) -> Iterator[TestClient]:
    """The app over the project at `root`, started and stopped like a server process."""
    with TestClient(create_app(root / "audience.yaml", schedule=False)) as client:
        yield client
        # LMDB allows one open environment per process: a later app here opens it again.
        with suppress(RunError):
            client.app.state.server.view().serving.close()


def _key(client: TestClient, role: str) -> dict[str, str]:
    _principal, token = client.app.state.server.keys.create(f"test-{role}", role)
    return {"Authorization": f"Bearer {token}"}


# -- the store on its own -----------------------------------------------------------------


def test_store_keeps_writes_across_restarts_and_source_ids_once(tmp_path: Path):
    store = RealtimeStore(tmp_path / "realtime.sqlite")
    first, created = store.record_activity("cust-1", VISIT)
    again, created_again = store.record_activity("cust-1", {**VISIT, "title": "changed"})
    assert (created, created_again) == (True, False)
    assert again == first  # the stored one, not the repeat
    assert first["ActivityId"] == "realtime|web-1"
    assert first["ActivityTimeStamp"] == "2026-01-30T11:00:00"  # UTC
    assert first["SemanticData"] == {"page": "home", "seconds": 42}
    other = store.add_activity("cust-1", {"type": "Feedback", "timestamp": "2026-01-31"})
    assert other["ActivityId"].startswith("realtime|") and other["SourceEntityName"] == "realtime"
    store.update_profile("cust-1", {"FirstName": "Annie"})
    store.update_profile("cust-1", {"FirstName": "Anne", "LastName": "Lee"})
    with pytest.raises(RealtimeConflict):
        store.record_activity("cust-2", VISIT)
    store.close()

    reopened = RealtimeStore(tmp_path / "realtime.sqlite")
    assert [a["ActivityType"] for a in reopened.activities("cust-1")] == ["Feedback", "WebVisit"]
    assert reopened.profile_fields("cust-1") == {"FirstName": "Anne", "LastName": "Lee"}
    assert reopened.has_updates("cust-1") and not reopened.has_updates("cust-2")
    assert reopened.counts() == {"activities": 2, "profile_updates": 3, "customers": 1}


@pytest.mark.parametrize(
    ("activity", "message"),
    [
        ({"timestamp": "2026-01-01"}, "type"),
        ({"type": "Web Visit"}, "type"),
        ({"type": "WebVisit", "timestamp": "yesterday"}, "ISO"),
        ({"type": "WebVisit", "data": [1]}, "JSON object"),
        ({"type": "WebVisit", "colour": "red"}, "unknown keys"),
        ({"type": "WebVisit", "title": "a\x00b"}, "NUL"),
    ],
)
def test_store_rejects_bad_activities(tmp_path: Path, activity: dict[str, Any], message: str):
    store = RealtimeStore(tmp_path / "realtime.sqlite")
    with pytest.raises(RealtimeError, match=message):
        store.add_activity("c", activity)
    assert store.counts()["activities"] == 0


def test_a_write_in_another_process_is_seen_at_once(tmp_path: Path):
    store = RealtimeStore(tmp_path / "realtime.sqlite")
    assert not store.has_updates("cust-9")  # the in-memory index is loaded now
    code = (
        "import sys; from pathlib import Path; from audience.realtime import RealtimeStore; "
        "RealtimeStore(Path(sys.argv[1])).add_activity('cust-9', {'type': 'WebVisit'})"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "realtime.sqlite")], check=True)
    assert store.has_updates("cust-9")
    assert [a["ActivityType"] for a in store.activities("cust-9")] == ["WebVisit"]


# -- through the API and into runs ----------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """Run 1; real-time writes through the API (and a restart of the app); run 2 folds them
    in; run 3 must not add them again."""
    root = tmp_path_factory.mktemp("realtime")
    project = shop_project(root, MEASURES, SEGMENTS)
    first = run(project)
    ids = _ids(first)
    with _client(root) as client:
        writer = _key(client, "contributor")
        url = f"/api/v1/customers/{ids['C1']}"
        posted = client.post(f"{url}/activities", json=VISIT, headers=writer)
        repeated = client.post(f"{url}/activities", json=VISIT, headers=writer)
        patched = client.patch(url, json={"FirstName": "Annie"}, headers=writer)
        c2_visit = client.post(
            f"/api/v1/customers/{ids['C2']}/activities",
            json={"type": "Signup", "timestamp": "2026-01-29T08:00:00"},
            headers=writer,
        )
    with _client(root) as client:  # a new app on the same workspace: a restart
        reader = _key(client, "viewer")
        before = {
            "activities": client.get(f"{url}/activities", headers=reader).json(),
            "customer": client.get(url, headers=reader).json(),
        }
    second = run(project)
    with _client(root) as client:
        reader = _key(client, "viewer")
        after = {
            "activities": client.get(f"{url}/activities", headers=reader).json(),
            "customer": client.get(url, headers=reader).json(),
        }
    third = run(project)
    store = RealtimeStore(project.workspace_path / "realtime.sqlite")
    yield {
        "project": project,
        "ids": ids,
        "responses": (posted, repeated, patched, c2_visit),
        "before": before,
        "after": after,
        "runs": (first, second, third),
        "store": store,
    }
    store.close()


def test_writes_are_answered_and_audited(shop):
    posted, repeated, patched, c2_visit = shop["responses"]
    assert posted.status_code == 201, posted.text
    assert repeated.status_code == 200 and repeated.json() == posted.json()
    assert posted.json()["CustomerId"] == shop["ids"]["C1"]
    assert patched.status_code == 200, patched.text
    assert patched.json() == {"CustomerId": shop["ids"]["C1"], "fields": {"FirstName": "Annie"}}
    assert c2_visit.status_code == 201
    with _client(shop["project"].root) as client:
        entries = client.app.state.server.audit.entries()
    actions = [(e["action"], e["target"]) for e in entries]
    assert ("activity.add", shop["ids"]["C1"]) in actions
    assert ("profile.update", shop["ids"]["C1"]) in actions


def test_reads_show_writes_before_the_next_run(shop):
    items = shop["before"]["activities"]["items"]
    assert [a["ActivityId"] for a in items].count("realtime|web-1") == 1
    assert items[0]["ActivityId"] == "realtime|web-1"  # the newest (2026-01-30 11:00 UTC)
    assert shop["before"]["customer"]["profile"]["FirstName"] == "Annie"


def test_the_next_run_folds_activities_in_once_with_their_customer(shop):
    _first, second, third = shop["runs"]
    ids = shop["ids"]
    for result in (second, third):
        folded = {r["ActivityId"]: r for r in _realtime_rows(result)}
        assert len(_realtime_rows(result)) == len(folded) == 2
        visit = folded["realtime|web-1"]
        assert visit["CustomerId"] == ids["C1"]
        assert visit["ActivityType"] == "WebVisit" and visit["Title"] == "Home page"
        assert visit["SemanticData"] == '{"page":"home","seconds":42}'
        assert visit["RangeIndex"] == "1769770800"  # 2026-01-30 11:00:00 UTC
        assert str(visit["ActivityTimeStamp"]) == "2026-01-30 11:00:00"
        signup = [r for r in folded.values() if r["ActivityType"] == "Signup"]
        assert signup[0]["CustomerId"] == ids["C2"]
    stage = second.results["stages"]["realtime"]
    assert stage["status"] == "ok"
    assert stage["detail"]["activities"] == {"folded": 2, "unresolved": 0}
    assert stage["detail"]["profile"]["values"] == 1


def test_after_the_run_reads_show_each_activity_once_from_the_run(shop):
    store, ids = shop["store"], shop["ids"]
    assert store.activities(ids["C1"]) == []
    assert not store.has_updates(ids["C1"]) and not store.has_updates(ids["C2"])
    items = shop["after"]["activities"]["items"]
    assert [a["ActivityId"] for a in items].count("realtime|web-1") == 1
    assert shop["after"]["customer"]["profile"]["FirstName"] == "Annie"


def test_profile_updates_reach_the_profile_and_segments(shop):
    first, second, third = shop["runs"]
    c1 = shop["ids"]["C1"]
    for result, expected in ((first, "Ann"), (second, "Annie"), (third, "Annie")):
        profile = {r["CustomerId"]: r for r in rows(result, "CustomerProfile")}
        assert profile[c1]["FirstName"] == expected
        assert profile[c1]["LastName"] == "Lee"  # fields not updated keep the sources' values
    members = [r["CustomerId"] for r in rows(second, "SegmentMembers")]
    assert members == [c1]
    # the store keeps the value as the latest known one; the current run has it already
    assert shop["store"].profile_fields(c1) == {}
    assert shop["store"].profile_fields(c1, run=first) == {"FirstName": "Annie"}


def test_writes_follow_a_merge_and_stay_with_the_merged_customer(tmp_path: Path):
    contacts = [*CONTACTS, {"contact_id": "C5", "first_name": "An", "last_name": "Lee",
                            "email": "an@y.com"}]  # fmt: skip
    unify = {
        "tables": [
            {
                "table": "crm.contacts",
                "fields": {
                    "first_name": "Person.FirstName",
                    "last_name": "Person.LastName",
                    "email": "Identity.Email",
                },
                "dedup": {
                    "rules": [{"name": "email", "conditions": [{"field": "Identity.Email"}]}]
                },
            }
        ]
    }
    project = shop_project(tmp_path, MEASURES, unify=unify)
    write_data(tmp_path, {"crm_contacts": contacts})
    ids = _ids(run(project))
    store = RealtimeStore(project.workspace_path / "realtime.sqlite")
    store.add_activity(ids["C5"], {"type": "WebVisit", "source_id": "from-c5"})
    store.add_activity(ids["C1"], {"type": "WebVisit", "source_id": "from-c1"})
    store.update_profile(ids["C5"], {"LastName": "Lee-Smith"})

    # C5 now has Ann's e-mail: the two records become one customer.
    contacts[-1]["email"] = "ann@x.com"
    write_data(tmp_path, {"crm_contacts": contacts})
    merged = run(project)
    profile = rows(merged, "CustomerProfile")
    (customer,) = [r for r in profile if r["Email"] == "ann@x.com"]
    assert {ids["C1"], ids["C5"]} == {customer["CustomerId"], customer["PreviousCustomerId"]}
    folded = {r["ActivityId"]: r["CustomerId"] for r in _realtime_rows(merged)}
    assert folded == {
        "realtime|from-c5": customer["CustomerId"],
        "realtime|from-c1": customer["CustomerId"],
    }
    assert customer["LastName"] == "Lee-Smith"

    # The next run has no PreviousCustomerId any more: the map kept by the last run holds.
    later = run(project)
    assert {r["ActivityId"]: r["CustomerId"] for r in _realtime_rows(later)} == folded
    (again,) = [r for r in rows(later, "CustomerProfile") if r["Email"] == "ann@x.com"]
    assert again["LastName"] == "Lee-Smith" and again["PreviousCustomerId"] is None
    store.close()


# -- the routes' answers to mistakes ----------------------------------------------------------


def test_route_errors(shop):
    c1 = shop["ids"]["C1"]
    with _client(shop["project"].root) as client:
        writer, reader = _key(client, "contributor"), _key(client, "viewer")
        url = f"/api/v1/customers/{c1}"
        unknown = client.post("/api/v1/customers/nobody/activities", json=VISIT, headers=writer)
        assert unknown.status_code == 404
        assert client.patch("/api/v1/customers/nobody", json={"FirstName": "X"},
                            headers=writer).status_code == 404  # fmt: skip
        bad_type = client.post(f"{url}/activities", json={"type": "no spaces"}, headers=writer)
        assert bad_type.status_code == 422
        bad_field = client.patch(url, json={"Nickname": "Annie"}, headers=writer)
        assert bad_field.status_code == 422
        assert "Nickname" in bad_field.text and "FirstName" in bad_field.text
        wrong_type = client.patch(url, json={"FirstName": 5}, headers=writer)
        assert wrong_type.status_code == 422 and "FirstName" in wrong_type.text
        key_column = client.patch(url, json={"CustomerId": "x"}, headers=writer)
        assert key_column.status_code == 422
        conflict = client.post(
            f"/api/v1/customers/{shop['ids']['C3']}/activities", json=VISIT, headers=writer
        )
        assert conflict.status_code == 409
        assert client.post(f"{url}/activities", json=VISIT, headers=reader).status_code == 403
        assert client.post(f"{url}/activities", json=VISIT).status_code == 401
        assert client.patch(url, json={"FirstName": "Q"}).status_code == 401


def test_an_unpublished_run_hides_nothing(shop):
    store, c3 = shop["store"], shop["ids"]["C3"]
    store.add_activity(c3, {"type": "WebVisit", "source_id": "after-run-3"})
    dry = run_pipeline(shop["project"], publish=False)
    assert "realtime|after-run-3" in {r["ActivityId"] for r in _realtime_rows(dry)}
    assert [a["ActivityId"] for a in store.activities(c3)] == ["realtime|after-run-3"]
    assert store.activities(c3, run=dry) == []  # what a reader of that run would see
    current = Workspace(shop["project"].workspace_path).current()
    assert current.id == shop["runs"][2].id and store.has_updates(c3, current)
