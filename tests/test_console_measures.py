"""The console's measure pages through the test client, on a run of the demo project: the list
and a detail page against DuckDB queries on CustomerAttributes, business and customer measures
against their Measure_<name> tables, the builder's preview against the run's own column, saving
into audience.yaml (comments kept), errors, roles and the CSRF token."""

from __future__ import annotations

import html
import json
import math
import re

import duckdb
import pytest
from console_helpers import PASSWORDS, demo_workspace, sign_in
from fastapi.testclient import TestClient

from audience.api.app import create_app
from audience.api.auth import KEYS_FILE
from audience.api.routes import lists
from audience.console import engines
from audience.console.pages_measures import candidate_project, measure_values, value_text
from audience.console.users import UserStore
from audience.project import load_project

CONTRIBUTOR = ("cora", "contrib-pass")
NUMBERS = ("BIGINT", "DOUBLE", "INTEGER", "DECIMAL")
# The custom measure the builder makes: what the demo's spend_last_365_days computes.
CUSTOM = {
    "mode": "custom",
    "activity": "orders",
    "function": "sum",
    "of": "amount",
    "window": "last_days",
    "window_n": "365",
    "default": "0",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console_measures")
    data = demo_workspace(folder)
    users = UserStore(load_project(data["project_file"]).workspace_path / KEYS_FILE)
    users.create(CONTRIBUTOR[0], "contributor", CONTRIBUTOR[1])
    app = create_app(data["project_file"], schedule=False)
    with TestClient(app) as client:
        yield {**data, "client": client, "app": app}


@pytest.fixture
def project_file(demo):
    """The demo's audience.yaml, put back as it was after the test."""
    path = demo["project_file"]
    original = path.read_text()
    yield path
    path.write_text(original)
    demo["app"].state.server.reload_project()


def signed_in(demo, user: str = "ada") -> TestClient:
    password = CONTRIBUTOR[1] if user == CONTRIBUTOR[0] else PASSWORDS[user]
    return sign_in(demo["app"], user, password)


def query(demo, table: str, sql: str) -> list[tuple]:
    """`sql` with {t} standing for the run's Parquet file of `table`."""
    path = demo["run"].table_path(table)
    return duckdb.connect().execute(sql.format(t=f"read_parquet('{path}')")).fetchall()


def columns(demo, table: str) -> dict[str, str]:
    return dict(r[:2] for r in query(demo, table, "DESCRIBE SELECT * FROM {t}"))


def chart_of(text: str, canvas_id: str) -> dict:
    found = re.search(rf'id="{canvas_id}"[^>]*data-chart=\'([^\']*)\'', text, re.S)
    assert found, f"no chart {canvas_id}"
    return json.loads(html.unescape(found[1]))


def stat(text: str, stat_id: str) -> str:
    found = re.search(rf'<b id="{stat_id}">([^<]*)</b>', text)
    assert found, f"no statistic {stat_id}"
    return html.unescape(found[1])


def test_list_shows_each_measure_with_values_from_customer_attributes(demo):
    page = signed_in(demo, "vic").get("/measures")
    assert page.status_code == 200
    project = load_project(demo["project_file"])
    attributes = columns(demo, "CustomerAttributes")
    checked = 0
    for m in project.measures:
        row = re.search(rf'<tr id="measure-{m.name}">(.*?)</tr>', page.text, re.S)
        assert row, m.name
        assert f'href="/measures/{m.name}"' in row[1]
        if m.kind != "customer_attribute":
            rows = query(demo, f"Measure_{m.name}", "SELECT count(*) FROM {t}")[0][0]
            assert f"{rows:,} rows in Measure_{m.name}" in row[1]
            continue
        shown = {
            k: html.unescape(v)
            for k, v in re.findall(r'<td class="num (values|min|mean|max)">([^<]*)</td>', row[1])
        }
        if not attributes[m.name].startswith(NUMBERS):  # text: the count and the most common
            count = query(demo, "CustomerAttributes", f"SELECT count({m.name}) FROM {{t}}")[0][0]
            assert shown == {"values": value_text(count)} and 'class="mode"' in row[1]
            continue
        values, low, mean, high = query(
            demo,
            "CustomerAttributes",
            f"SELECT count({m.name}), min({m.name}), avg({m.name}), max({m.name}) FROM {{t}}",
        )[0]
        assert shown == {
            "values": value_text(values),
            "min": value_text(low),
            "mean": value_text(mean),
            "max": value_text(high),
        }, m.name
        checked += 1
    assert checked >= 15
    assert "template number_of_transactions: number of orders" in page.text
    assert "sum of amount over orders, last 365 days, default 0" in page.text
    assert "Coming next" not in page.text


def test_detail_histogram_counts_add_up_to_customers_with_a_value(demo):
    client = signed_in(demo, "vic")
    for name in ("total_transaction_value", "number_of_transactions", "membership_duration"):
        page = client.get(f"/measures/{name}")
        assert page.status_code == 200
        values, low, high = query(
            demo, "CustomerAttributes", f"SELECT count({name}), min({name}), max({name}) FROM {{t}}"
        )[0]
        chart = chart_of(page.text, "chart")
        assert chart["type"] == "bar" and chart["histogram"]
        assert sum(chart["series"][0]["data"]) == values, name
        assert len(chart["labels"]) == len(chart["series"][0]["data"]) <= 22
        assert stat(page.text, "values") == value_text(values)
        assert (stat(page.text, "min"), stat(page.text, "max")) == (
            value_text(low),
            value_text(high),
        )
    page = client.get("/measures/spend_last_365_days")
    assert "name: spend_last_365_days\n" in html.unescape(page.text)
    assert "window:\n  last_days: 365\n" in html.unescape(page.text)


def test_text_attribute_shows_its_most_common_values(demo):
    page = signed_in(demo, "vic").get("/measures/favourite_category")
    top = query(
        demo,
        "CustomerAttributes",
        "SELECT favourite_category, count(*) AS n FROM {t} WHERE favourite_category IS NOT NULL "
        "GROUP BY 1 ORDER BY n DESC, 1",
    )
    chart = chart_of(page.text, "chart")
    assert chart["labels"] == [v for v, _ in top]
    assert chart["series"][0]["data"] == [n for _, n in top]
    assert stat(page.text, "distinct") == str(len(top))


def test_monthly_revenue_chart_is_its_rows_over_time(demo):
    page = signed_in(demo, "vic").get("/measures/monthly_revenue")
    assert page.status_code == 200
    rows = query(
        demo, "Measure_monthly_revenue", "SELECT month, monthly_revenue FROM {t} ORDER BY 1"
    )
    chart = chart_of(page.text, "measure-chart")
    assert chart["type"] == "line" and chart["x"] == "month"
    [series] = chart["series"]
    assert series["label"] == "monthly_revenue"
    points = {x: y for x, y in zip(chart["labels"], series["data"], strict=True) if y is not None}
    assert points == {f"{m // 100}-{m % 100:02d}": v for m, v in rows}
    # Every month from the first to the last is on the axis, those without orders as gaps.
    first, last = rows[0][0], rows[-1][0]
    assert len(chart["labels"]) == (last // 100 - first // 100) * 12 + last % 100 - first % 100 + 1
    assert len(rows) > 12 and stat(page.text, "rows") == str(len(rows))


def test_revenue_by_channel_is_bars_and_revenue_by_category_a_table(demo):
    client = signed_in(demo, "vic")
    rows = query(
        demo,
        "Measure_revenue_by_channel",
        "SELECT channel, revenue_by_channel FROM {t} ORDER BY 2 DESC",
    )
    chart = chart_of(client.get("/measures/revenue_by_channel").text, "measure-chart")
    assert chart["type"] == "bar"
    assert chart["labels"] == [c for c, _ in rows]
    assert chart["series"][0]["data"] == [v for _, v in rows]

    page = client.get("/measures/revenue_by_category").text
    count, customers = query(
        demo, "Measure_revenue_by_category", "SELECT count(*), count(DISTINCT CustomerId) FROM {t}"
    )[0]
    assert stat(page, "rows") == f"{count:,}" and stat(page, "customers") == f"{customers:,}"
    top = query(
        demo,
        "Measure_revenue_by_category",
        "SELECT revenue_by_category FROM {t} ORDER BY 1 DESC LIMIT 20",
    )
    per_category = query(
        demo,
        "Measure_revenue_by_category",
        "SELECT category, count(DISTINCT CustomerId) AS n FROM {t} GROUP BY 1 ORDER BY n DESC, 1",
    )
    chart = chart_of(page, "measure-chart")
    assert (chart["labels"], chart["series"][0]["data"]) == (
        [c for c, _ in per_category],
        [n for _, n in per_category],
    )
    table = page[page.index('id="measure-rows"') :]
    shown = re.findall(r'<td class="num">([^<]*)</td>', table)
    assert shown == [value_text(v) for (v,) in top]
    assert signed_in(demo, "vic").get("/measures/nope").status_code == 404


def _preview(demo, form: dict) -> str:
    response = signed_in(demo, "cora").post("/measures/new/preview", data=form)
    assert response.status_code == 200
    return response.text


def _run_values(demo, column: str) -> dict[str, object]:
    rows = query(demo, "CustomerAttributes", f"SELECT CustomerId, {column} FROM {{t}}")
    return dict(rows)


def _preview_values(demo, item: dict) -> dict[str, object]:
    server = demo["app"].state.server
    db = lists.run_database(server, server.view())
    with measure_values(server, db, item) as (_engine, values):
        return {r["CustomerId"]: r["value"] for r in values.to_pyarrow().to_pylist()}


def test_template_preview_equals_the_runs_column(demo):
    expected = _run_values(demo, "number_of_transactions")
    got = _preview_values(demo, {"name": "n", "template": "number_of_transactions"})
    assert got == expected  # the same customers, the same values

    text = _preview(demo, {"mode": "template", "template": "number_of_transactions"})
    numbers = [v for v in expected.values() if v is not None]
    assert stat(text, "preview-values") == value_text(len(numbers))
    assert stat(text, "preview-min") == value_text(min(numbers))
    assert stat(text, "preview-mean") == value_text(sum(numbers) / len(numbers))
    assert stat(text, "preview-max") == value_text(max(numbers))
    assert sum(chart_of(text, "preview-chart")["series"][0]["data"]) == len(numbers)
    assert "number of orders" in text


def test_custom_preview_equals_the_runs_column(demo):
    expected = _run_values(demo, "spend_last_365_days")
    item = {
        "name": "s",
        "activity": "orders",
        "function": "sum",
        "of": "amount",
        "window": {"last_days": 365},
        "default": 0,
    }
    got = _preview_values(demo, item)
    assert got.keys() == expected.keys()
    assert all(math.isclose(got[k], v, rel_tol=1e-12, abs_tol=1e-9) for k, v in expected.items())
    assert sum(1 for v in got.values() if v) > 10

    text = _preview(demo, CUSTOM)
    assert "sum of amount over orders, last 365 days, default 0" in html.unescape(text)
    assert stat(text, "preview-values") == value_text(len(expected))
    assert stat(text, "preview-max") == value_text(max(expected.values()))
    # Without a default, customers without orders in the window get no value.
    without = _preview(demo, {**CUSTOM, "default": ""})
    assert stat(without, "preview-values") == value_text(sum(1 for v in got.values() if v))


def test_previews_share_one_engine_and_see_the_file_as_edited(demo, project_file):
    _preview(demo, CUSTOM)
    engine = engines._current.engine
    _preview(demo, {"mode": "template", "template": "number_of_transactions"})
    assert engines._current.engine is engine  # one per run, its reads kept
    assert not engines._temp_tables(engine)  # what a preview stored is dropped after it
    server = demo["app"].state.server
    item = {"name": "candidate", "template": "number_of_transactions"}
    assert candidate_project(server, item).measures[-1].name == "candidate"
    saved = signed_in(demo, "cora").post(
        "/measures/new", data={**CUSTOM, "name": "spend_again"}, follow_redirects=False
    )
    assert saved.status_code == 303, saved.text
    names = [m.name for m in candidate_project(server, item).measures]
    assert names[-2:] == ["spend_again", "candidate"]  # the file parsed again once changed
    assert "spend_again" not in [m.name for m in load_project(project_file).measures[:-1]]


def test_preview_errors_name_the_config_path(demo):
    at = f"measures[{len(load_project(demo['project_file']).measures)}]"
    text = html.unescape(_preview(demo, {**CUSTOM, "where": "amout > 3"}))
    assert 'id="preview-error"' in text
    assert f"{at}.where: unknown field 'amout'; did you mean 'amount'?" in text
    text = html.unescape(_preview(demo, {**CUSTOM, "where": "amount >"}))
    assert f"{at}.where: unexpected end of expression" in text
    text = html.unescape(_preview(demo, {**CUSTOM, "of": "channel"}))
    assert f"{at}: sum needs numbers; 'channel' is string" in text
    text = html.unescape(_preview(demo, {**CUSTOM, "window_n": "0"}))
    assert f"{at}.window.last_days: Input should be greater than or equal to 1" in text


def test_fields_of_the_chosen_activity(demo):
    client = signed_in(demo, "cora")
    page = client.get("/measures/new")
    assert page.status_code == 200
    for name in ("number_of_transactions", "loyalty_points_balance", "time_since_last_purchase"):
        assert f'name="template" value="{name}"' in page.text
    assert page.text.count('name="template"') == 12
    assert '<option value="order_lines"' in page.text and '<option value="SalesOrder"' in page.text
    fragment = client.get("/measures/new/fields", params={"activity": "order_lines", "of": "brand"})
    options = re.findall(r'<option value="([^"]+)"', fragment.text)
    assert options[:6] == ["product", "category", "brand", "quantity", "amount", "status"]
    assert '<option value="brand" selected>' in fragment.text
    assert "CustomerId" not in options


def test_saving_writes_the_project_file(demo, project_file):
    client = signed_in(demo, "cora")
    original = project_file.read_text()
    form = {
        **CUSTOM,
        "name": "spend_year",
        "description": "Spend in the last year",
        "where": "status != 'returned'",
    }
    response = client.post("/measures/new", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/measures/spend_year?saved=created"
    written = project_file.read_text()
    assert "# The twelve templates, over all time." in written  # comments kept
    assert "# A retailer's own." in written
    assert written.startswith(original.split("\n# Models trained")[0])  # only added to
    saved = load_project(project_file).measures[-1]
    assert saved.model_dump(exclude_none=True, exclude_defaults=True) == {
        "name": "spend_year",
        "description": "Spend in the last year",
        "activity": "orders",
        "function": "sum",
        "of": "amount",
        "where": "status != 'returned'",
        "window": {"last_days": 365},
        "default": 0,
    }
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    assert 'id="saved"' in page.text and "computed on the next run" in page.text
    assert '<tr id="measure-spend_year">' in client.get("/measures").text
    entry = demo["app"].state.server.audit.entries(limit=1)[0]
    assert (entry["action"], entry["target"]) == ("config.put", "measures/spend_year")

    template = {"mode": "template", "template": "number_of_transactions", "name": "orders_year"}
    template |= {"window": "last_months", "window_n": "12"}
    assert client.post("/measures/new", data=template, follow_redirects=False).status_code == 303
    assert load_project(project_file).measures[-1].model_dump(
        exclude_none=True, exclude_defaults=True
    ) == {
        "name": "orders_year",
        "template": "number_of_transactions",
        "window": {"last_months": 12},
    }


def test_bad_measures_show_the_error_and_leave_the_file(demo, project_file):
    client = signed_in(demo, "cora")
    before = project_file.read_text()
    at = f"measures[{len(load_project(project_file).measures)}]"
    cases = [
        ({**CUSTOM, "name": "x", "where": "amount >"}, f"{at}.where: unexpected end of expression"),
        ({**CUSTOM, "name": "x", "where": "amout > 1"}, f"{at}.where: unknown field 'amout'"),
        (
            {**CUSTOM, "name": "total_transaction_value"},
            f"{at}.name: measures[1] is already called 'total_transaction_value'",
        ),
        ({**CUSTOM, "name": "Email"}, f"{at}.name: 'Email' is already a field of CustomerProfile"),
        (
            {**CUSTOM, "name": "Return_Rate"},
            f"{at}.name: measures[20] is already called 'return_rate'",
        ),
        ({**CUSTOM, "name": "has space"}, f"{at}.name: String should match pattern"),
        ({**CUSTOM, "name": ""}, f"{at}.name: give the measure a name"),
    ]
    for form, message in cases:
        response = client.post("/measures/new", data=form, follow_redirects=False)
        assert response.status_code == 422, form
        assert 'id="errors"' in response.text
        assert message in html.unescape(response.text), form
        assert f'value="{html.escape(form["name"])}"' in response.text  # the form is kept
    assert project_file.read_text() == before


def test_viewer_reads_but_cannot_build(demo, project_file):
    viewer = signed_in(demo, "vic")
    assert viewer.get("/measures").status_code == 200
    assert viewer.get("/measures/monthly_revenue").status_code == 200
    assert 'href="/measures/new"' not in viewer.get("/measures").text
    refused = viewer.get("/measures/new")
    assert refused.status_code == 403 and "contributor" in refused.text
    assert viewer.get("/measures/new/fields", params={"activity": "orders"}).status_code == 403
    assert viewer.post("/measures/new/preview", data=CUSTOM).status_code == 403
    before = project_file.read_text()
    assert viewer.post("/measures/new", data={**CUSTOM, "name": "v"}).status_code == 403
    assert project_file.read_text() == before
    assert 'href="/measures/new"' in signed_in(demo, "cora").get("/measures").text


def test_writes_need_the_sessions_csrf_token(demo, project_file):
    client = signed_in(demo, "cora")
    without = TestClient(demo["app"], cookies=client.cookies)
    before = project_file.read_text()
    refused = without.post("/measures/new/preview", data=CUSTOM)
    assert refused.status_code == 403 and "reload the page" in refused.text
    assert without.post("/measures/new", data={**CUSTOM, "name": "c"}).status_code == 403
    forged = without.post("/measures/new", data={**CUSTOM, "name": "c", "csrf_token": "nope"})
    assert forged.status_code == 403
    assert project_file.read_text() == before
    form = client.get("/measures/new").text
    assert 'name="csrf_token"' in form  # the builder's plain form posts it as a field
    token = client.headers["X-CSRF-Token"]
    accepted = without.post("/measures/new/preview", data={**CUSTOM, "csrf_token": token})
    assert accepted.status_code == 200
