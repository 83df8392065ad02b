"""The console's segment pages through the test client, on a run of the demo project: the list
against SegmentHistory, the builder's live count against the API's filter, saving into
audience.yaml, errors and roles, the CSV export and the overlap against `overlap()`."""

from __future__ import annotations

import csv
import io
import re

import ibis
import pytest
from console_helpers import PASSWORDS, demo_workspace, sign_in
from fastapi.testclient import TestClient

from audience.analytics.overlap import overlap
from audience.api.app import create_app
from audience.api.auth import KEYS_FILE
from audience.console.pages_segments import open_builder
from audience.console.users import UserStore
from audience.project import load_project

CONTRIBUTOR = ("cora", "contrib-pass")
# Two conditions, one text and one number: what the builder sends and the API filter it means.
ROWS = {"field": ["City", "number_of_transactions"], "op": ["!=", ">="], "value": ["Paris", "2"]}
FILTER = "City != 'Paris' and number_of_transactions >= 2"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console_segments")
    data = demo_workspace(folder)
    users = UserStore(load_project(data["project_file"]).workspace_path / KEYS_FILE)
    users.create(CONTRIBUTOR[0], "contributor", CONTRIBUTOR[1])
    app = create_app(data["project_file"], schedule=False)
    with TestClient(app) as client:
        yield {**data, "client": client, "app": app}


def signed_in(demo, user: str = "ada") -> TestClient:
    password = CONTRIBUTOR[1] if user == CONTRIBUTOR[0] else PASSWORDS[user]
    return sign_in(demo["app"], user, password)


def api_total(demo, filter_text: str) -> int:
    response = demo["client"].get(
        "/api/v1/customers",
        params={"filter": filter_text, "limit": 1},
        headers={"Authorization": f"Bearer {demo['token']}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["total"]


def history_sizes(demo) -> dict[str, int]:
    """Each segment's size in the demo run, read from its SegmentHistory table."""
    run = demo["run"]
    table = ibis.duckdb.connect().read_parquet(run.table_path("SegmentHistory"))
    rows = table.filter(table.RunId == run.id).to_pyarrow().to_pylist()
    return {r["Segment"]: r["Size"] for r in rows}


def test_workspace_has_the_contributor(demo):
    # The fixture's user store must be the workspace's (where the console looks).
    assert signed_in(demo, "cora").get("/").status_code == 200


def test_list_shows_sizes_from_segment_history(demo):
    page = signed_in(demo, "vic").get("/segments")
    assert page.status_code == 200
    sizes = history_sizes(demo)
    assert len(sizes) >= 7
    for name, size in sizes.items():
        row = re.search(rf'<tr id="segment-{name}">(.*?)</tr>', page.text, re.S)
        assert row, name
        shown = re.search(r'<td class="num size">([^<]*)</td>', row[1])[1]
        assert shown == f"{size:,}", name
        assert 'data-chart="line"' in row[1] and f"/segments/{name}#members" in row[1]
    assert "/static/vendor/chart.umd.min.js" in page.text
    assert "Coming next" not in page.text


def test_segment_page_shows_rules_size_and_members(demo):
    size = history_sizes(demo)["at_risk"]
    page = signed_in(demo, "vic").get("/segments/at_risk")
    assert page.status_code == 200
    assert "all of (number_of_transactions &gt;= 3; days_since_last_purchase &gt; 180)" in page.text
    assert f'<b id="size">{size:,}</b>' in page.text
    rows = re.findall(r"<tr>\s*<td><a href=\"/customers/", page.text)
    assert len(rows) == min(size, 50)
    assert 'href="/segments/at_risk/members.csv"' in page.text
    activity = signed_in(demo, "vic").get("/segments/recent_shoe_buyers").text
    assert "order_lines activities where category = &#39;Shoes&#39; in the last 30 days" in activity
    assert signed_in(demo, "vic").get("/segments/nope").status_code == 404


def test_csv_export_has_every_member(demo):
    response = signed_in(demo, "vic").get("/segments/high_value/members.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="high_value.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == ["CustomerId", "FirstName", "LastName", "Email"]
    api = (
        demo["client"]
        .get(
            "/api/v1/segments/high_value/members",
            params={"fields": "Email", "limit": 1000},
            headers={"Authorization": f"Bearer {demo['token']}"},
        )
        .json()
    )
    assert len(rows) == api["total"] == history_sizes(demo)["high_value"]
    assert {r["CustomerId"] for r in rows} == {i["CustomerId"] for i in api["items"]}
    assert {r["Email"] for r in rows} == {i["Email"] or "" for i in api["items"]}


def test_viewer_gets_403_on_the_builder(demo):
    viewer = signed_in(demo, "vic")
    assert viewer.get("/segments/new").status_code == 403
    assert viewer.post("/segments/new/count", data=ROWS).status_code == 403
    response = viewer.post("/segments/new", data={"name": "x", **ROWS})
    assert response.status_code == 403
    assert "name: x\n" not in demo["project_file"].read_text()
    assert 'href="/segments/new"' not in viewer.get("/segments").text


def test_builder_count_equals_the_api_filter_total(demo):
    client = signed_in(demo, "cora")
    form = client.get("/segments/new")
    assert form.status_code == 200
    assert '<option value="City"' in form.text
    assert '<option value="number_of_transactions"' in form.text  # a customer attribute
    expected = api_total(demo, FILTER)
    assert 0 < expected < api_total(demo, "CustomerId is not null")
    fragment = client.post("/segments/new/count", data={**ROWS, "combine": "and"})
    assert fragment.status_code == 200
    assert f'<b id="count">{expected:,}</b>' in fragment.text
    assert "City != &#39;Paris&#39; and number_of_transactions &gt;= 2" in fragment.text
    either = client.post("/segments/new/count", data={**ROWS, "combine": "or"}).text
    total_or = api_total(demo, FILTER.replace(" and ", " or "))
    assert f'<b id="count">{total_or:,}</b>' in either


def test_builder_quotes_values_instead_of_running_them(demo):
    client = signed_in(demo, "cora")
    sneaky = "x' or 1=1 or City = 'y"
    fragment = client.post(
        "/segments/new/count", data={"field": ["City"], "op": ["="], "value": [sneaky]}
    )
    assert '<b id="count">0</b>' in fragment.text
    assert "City = &#39;x&#39;&#39; or 1=1 or City = &#39;&#39;y&#39;" in fragment.text


def test_bad_condition_shows_the_error(demo):
    client = signed_in(demo, "cora")
    text = client.post(
        "/segments/new/count",
        data={"field": ["number_of_transactions"], "op": [">"], "value": ["many"]},
    ).text
    assert (
        'id="count-error"' in text and "conditions[0].value: &#39;many&#39; is not a number" in text
    )
    before = demo["project_file"].read_text()
    saved = client.post(
        "/segments/new",
        data={"name": "broken", "field": ["Nope"], "op": ["="], "value": ["x"]},
        follow_redirects=False,
    )
    assert saved.status_code == 422
    assert "conditions[0].field: unknown field &#39;Nope&#39;" in saved.text
    bad_name = client.post(
        "/segments/new", data={"name": "has space", **ROWS}, follow_redirects=False
    )
    assert bad_name.status_code == 422
    assert 'id="errors"' in bad_name.text and "segments[" in bad_name.text
    assert demo["project_file"].read_text() == before


def test_saving_writes_the_project_file_and_the_segment_appears(demo):
    client = signed_in(demo, "cora")
    original = demo["project_file"].read_text()
    assert "# The twelve templates, over all time." in original
    response = client.post(
        "/segments/new",
        data={"name": "loyal_outside_paris", "description": "Repeat buyers, not Paris", **ROWS},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/segments/loyal_outside_paris?saved=created"
    written = demo["project_file"].read_text()
    assert "# The twelve templates, over all time." in written  # comments kept
    assert "name: loyal_outside_paris" in written and FILTER in written
    assert written.startswith(original.rstrip("\n").split("\nsegments:")[0])
    page = client.get("/segments/loyal_outside_paris")
    assert (
        page.status_code == 200 and FILTER.replace("'", "&#39;").replace(">", "&gt;") in page.text
    )
    listing = client.get("/segments").text
    assert '<tr id="segment-loyal_outside_paris">' in listing
    config = (
        demo["client"]
        .get(
            "/api/v1/segments/loyal_outside_paris",
            headers={"Authorization": f"Bearer {demo['token']}"},
        )
        .json()
    )
    assert config["definition"]["rules"] == [FILTER]
    audit = demo["app"].state.server.audit
    entry = audit.entries(limit=1)[0]
    assert (entry["action"], entry["target"]) == ("config.put", "segments/loyal_outside_paris")
    assert "cora" in str(entry)


def test_overlap_numbers_equal_overlap(demo):
    server = demo["app"].state.server
    from audience.api.routes import lists

    db = lists.run_database(server, server.view())
    with open_builder(server, db) as builder:
        expected = overlap(builder, "high_value", "at_risk")
    page = signed_in(demo, "vic").get("/segments/overlap?a=high_value&b=at_risk")
    assert page.status_code == 200
    s = expected["sizes"]
    assert f'<b id="a-only">{s["a_only"]:,}</b>' in page.text
    assert f'<b id="both">{s["both"]:,}</b>' in page.text
    assert f'<b id="b-only">{s["b_only"]:,}</b>' in page.text
    assert s["a_only"] + s["both"] == history_sizes(demo)["high_value"]
    assert s["b_only"] + s["both"] == history_sizes(demo)["at_risk"]
    assert f"{s['neither']:,} customers in neither" in page.text
    assert 'data-chart="bar"' in page.text
    # The fields that differ load afterwards, from the URL the page names.
    assert 'hx-get="/segments/overlap/differences?a=high_value&amp;b=at_risk"' in page.text
    panel = signed_in(demo, "vic").get("/segments/overlap/differences?a=high_value&b=at_risk")
    assert panel.status_code == 200
    assert expected["differences"]
    for d in expected["differences"]:
        assert f"<td>{d['field']} " in panel.text
        assert f'<td class="num">{d["score"]:.2f}</td>' in panel.text
    assert "no segment nope" in signed_in(demo, "vic").get("/segments/overlap?a=nope&b=x").text
    wrong = signed_in(demo, "vic").get("/segments/overlap/differences?a=nope&b=at_risk")
    assert "no segment &#39;nope&#39;" in wrong.text


def test_writes_need_the_sessions_csrf_token(demo):
    client = signed_in(demo)
    without = TestClient(demo["app"], cookies=client.cookies)
    refused = without.post("/segments/new/count", data={**ROWS, "combine": "and"})
    assert refused.status_code == 403 and "reload the page" in refused.text
    forged = without.post(
        "/segments/new/count",
        data={**ROWS, "combine": "and", "csrf_token": "not-the-token"},
    )
    assert forged.status_code == 403
    # A plain form carries it as a field (the builder's own form does).
    form = client.get("/segments/new").text
    assert 'name="csrf_token"' in form
    token = client.headers["X-CSRF-Token"]
    accepted = without.post(
        "/segments/new/count", data={**ROWS, "combine": "and", "csrf_token": token}
    )
    assert accepted.status_code == 200
