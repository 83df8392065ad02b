"""The console's data-source pages through the test client, on a run of the demo project: the
list against run_results.json, a table's profile against SourceProfile, its first rows against
the landed Parquet, its quarantine; the connection test on real files and a SQLite database;
saving a source into audience.yaml (comments kept), bad input, roles and CSRF."""

from __future__ import annotations

import html
import json
import re
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from console_helpers import PASSWORDS, demo_workspace, sign_in
from fastapi.testclient import TestClient
from markupsafe import escape

from audience import project_edit
from audience.api.app import create_app
from audience.api.routes.lists import _jsonable
from audience.project import load_project

COMMENT = "# The CRM exports CSV: contacts and the service desk's support cases."


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console_sources")
    data = demo_workspace(folder)
    app = create_app(data["project_file"], schedule=False)
    with TestClient(app) as client:
        yield {**data, "client": client, "app": app, "folder": folder}


@pytest.fixture
def restore(demo):
    """Tests that write get the project file back as it was, so order does not matter."""
    path = demo["project_file"]
    before = path.read_bytes()
    yield path
    path.write_bytes(before)
    demo["app"].state.server.reload_project()


def signed_in(demo, user: str = "ada") -> TestClient:
    return sign_in(demo["app"], user, PASSWORDS[user])


def ingest_detail(demo) -> dict:
    results = json.loads((demo["run"].path / "run_results.json").read_text())
    return results["stages"]["ingest"]["detail"]


def cells(page: str, table_id: str) -> list[list[str]]:
    """The body cells of the table with `table_id`, as text."""
    body = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', page, re.S)
    assert body, table_id
    rows = re.findall(r"<tr>(.*?)</tr>", body[1], re.S)
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td.*?</td>", r)]
        for r in rows
    ]


def row_of(page: str, row_id: str) -> str:
    found = re.search(rf'<tr id="{row_id}">(.*?)</tr>', page, re.S)
    assert found, row_id
    return found[1]


def error_text(page: str, element_id: str) -> str:
    """The text of an error box: one message, or one <div> per message."""
    found = re.search(rf'id="{element_id}">((?:\s*<div>.*?</div>)+|.*?)</div>', page, re.S)
    assert found, page[-3000:]
    return html.unescape(re.sub(r"<[^>]+>", " ", found[1]))


# -- list and one table ------------------------------------------------------------------------
def test_list_shows_every_table_with_the_runs_counts(demo):
    page = signed_in(demo, "vic").get("/sources")
    assert page.status_code == 200
    detail = ingest_detail(demo)
    refs = load_project(demo["project_file"]).table_refs()
    assert len(refs) == 9 and page.text.count('<tr id="table-') == 9
    for ref in refs:
        row = row_of(page.text, f"table-{ref.id}")
        landed = detail[ref.id]
        assert f'<td class="num loaded">{landed["rows_loaded"]:,}</td>' in row, ref.id
        quarantined = re.search(r'<td class="num quarantined[^"]*">(.*?)</td>', row)[1]
        assert re.sub(r"<[^>]+>", "", quarantined) == f"{landed['rows_quarantined']:,}"
        assert f'<td class="num columns">{len(landed["columns"])}</td>' in row
        assert f'href="/sources/{ref.source.name}/{ref.table.name}"' in row
        assert f"<code>{ref.table.path}</code>" in row
        assert f"<code>{ref.table.primary_key}</code>" in row
    # 4 rows quarantined: shown in red, a link to them
    assert 'href="/sources/crm/contacts#quarantine">4</a>' in row_of(
        page.text, "table-crm_contacts"
    )
    assert 'href="/sources/new"' not in page.text  # a viewer cannot add sources
    assert 'href="/sources/new"' in signed_in(demo).get("/sources").text
    assert "Coming next" not in page.text


def test_list_masks_passwords_and_says_not_loaded_yet(demo, restore, monkeypatch):
    monkeypatch.setenv("AUDIENCE_SRC_TEST_PW", "from-the-environment")
    written = "postgresql+psycopg://etl:hunter2@db.internal/erp?sslmode=require&token=abc123"
    from_env = "postgresql+psycopg://etl:${AUDIENCE_SRC_TEST_PW}@db.internal/erp"
    for name, url in (("erp", written), ("erp_env", from_env)):
        item = {"name": name, "kind": "sql", "url": url}
        item["tables"] = [{"name": "customers", "table": "public.customers", "primary_key": "id"}]
        project_edit.upsert(restore, "sources", item)
    demo["app"].state.server.reload_project()
    page = signed_in(demo, "vic").get("/sources").text
    assert "hunter2" not in page and "abc123" not in page and "from-the-environment" not in page
    row = row_of(page, "table-erp_customers")
    assert "postgresql+psycopg://etl:***@db.internal/erp?sslmode=require&amp;token=***" in row
    assert "not loaded yet" in row and "table public.customers" in row
    assert "${AUDIENCE_SRC_TEST_PW}" in row_of(page, "table-erp_env_customers")
    detail = signed_in(demo, "vic").get("/sources/erp/customers")
    assert detail.status_code == 200 and "hunter2" not in detail.text
    assert "Not loaded yet: run the project" in detail.text


def test_table_page_shows_the_profile_of_source_profile(demo):
    page = signed_in(demo, "vic").get("/sources/crm/contacts")
    assert page.status_code == 200
    profile = pq.read_table(demo["run"].table_path("SourceProfile")).to_pylist()
    columns = [p for p in profile if p["table"] == "crm_contacts"]
    assert len(columns) == 12
    landed = ingest_detail(demo)["crm_contacts"]
    assert f'<b id="rows-loaded">{landed["rows_loaded"]:,}</b>' in page.text
    assert f'<b id="rows-quarantined" class="src-bad">{landed["rows_quarantined"]:,}</b>' in (
        page.text
    )
    histograms = 0
    for p in columns:
        row = row_of(page.text, f"col-{p['column']}")
        assert f"<code>{p['type']}</code>" in row
        for key in ("count", "distinct"):
            assert f'data-k="{key}">{p[key]:,}</td>' in row, (p["column"], key)
        assert f'data-k="nulls">{p["nulls"]:,}' in row
        for key in ("min", "max"):
            assert f'data-k="{key}">{escape(p[key] or "")}</td>' in row
        card = page.text.split(f'id="dist-{p["column"]}">')[1].split('class="card src-column"')[0]
        shown = re.search(r"data-src-histogram='([^']*)'", card)
        if p["histogram"] is None:
            assert shown is None
        else:
            histograms += 1
            assert json.loads(html.unescape(shown[1])) == json.loads(p["histogram"])
        top = json.loads(p["top_values"])
        unique = p["distinct"] == p["count"] - p["nulls"] > 10
        if unique:  # a key: its top values are all 1, so a few examples instead of bars
            assert f"Every value is different ({p['distinct']:,} values)" in card
            assert f"<code>{escape(top[0][0])}</code>" in card and "src-bar" not in card
        elif top:
            value, count = top[0]
            assert f'<span class="src-value">{escape(value)}</span>' in card
            assert f'<span class="src-count">{count:,}</span>' in card
    assert histograms == 3  # birth_date, created_at, modified_at
    assert "/static/vendor/chart.umd.min.js" in page.text


def test_numbers_get_a_histogram_and_a_mean(demo):
    page = signed_in(demo, "vic").get("/sources/shop_events/orders").text
    profile = pq.read_table(demo["run"].table_path("SourceProfile")).to_pylist()
    amount = next(
        p for p in profile if (p["table"], p["column"]) == ("shop_events_orders", "total_amount")
    )
    row = row_of(page, "col-total_amount")
    assert f'data-k="mean">{amount["mean"]}</td>' in row
    shown = re.search(r'id="dist-total_amount">.*?data-src-histogram=\'([^\']*)\'', page, re.S)
    bins = json.loads(html.unescape(shown[1]))
    assert bins == json.loads(amount["histogram"]) and len(bins) == 20
    assert sum(b["count"] for b in bins) == amount["count"] - amount["nulls"]


def test_preview_rows_are_the_parquets_first_rows(demo):
    page = signed_in(demo, "vic").get("/sources/crm/contacts").text
    landed = pq.read_table(demo["run"].table_path("crm_contacts"))
    expected = [
        ["null" if v is None else str(_jsonable(v)) for v in row.values()]
        for row in landed.slice(0, 20).to_pylist()
    ]
    header = re.search(r'id="preview-rows".*?<thead>(.*?)</thead>', page, re.S)[1]
    assert re.findall(r"<th>([^<]*)</th>", header) == landed.column_names
    assert cells(page, "preview-rows") == expected


def test_quarantine_shows_count_reasons_and_rows(demo):
    page = signed_in(demo, "vic").get("/sources/crm/contacts").text
    quarantined = pq.read_table(
        demo["run"].table_path("Quarantine") / "crm_contacts.parquet"
    ).to_pylist()
    assert len(quarantined) == ingest_detail(demo)["crm_contacts"]["rows_quarantined"] == 4
    assert '<b id="quarantine-count">4</b>' in page
    reasons = {r[0]: int(r[1]) for r in cells(page, "quarantine-reasons")}
    assert sum(reasons.values()) == 4
    assert reasons["primary key 'contact_id' is empty"] == 1
    assert reasons["duplicate primary key 'contact_id'"] == 1  # the key's value taken out
    assert {"MISSING COLUMNS", "TOO MANY COLUMNS"} <= set(reasons)
    rows = cells(page, "quarantine-rows")
    assert [int(r[0]) for r in rows] == [q["row"] for q in quarantined]
    assert [r[2] for r in rows] == [q["reason"] for q in quarantined]
    clean = signed_in(demo, "vic").get("/sources/shop/accounts").text
    assert 'id="quarantine-none"' in clean and 'id="quarantine-rows"' not in clean


def test_unknown_table_is_404(demo):
    assert signed_in(demo, "vic").get("/sources/crm/nope").status_code == 404


# -- the form and the connection test ----------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "names"),
    [
        ("csv", ["path", "delimiter", "quote", "escape", "encoding", "header", "null_values"]),
        ("parquet", ["path"]),
        ("json", ["path", "format"]),
        ("cdm", ["cdm_path", "entity"]),
        ("delta", ["path"]),
        ("sql", ["url", "sql_table", "query"]),
        (
            "incremental",
            ["path", "format", "delimiter", "quote", "escape", "encoding", "header", "null_values"],
        ),
    ],
)
def test_each_kind_has_its_fields(demo, kind, names):
    client = signed_in(demo)
    fragment = client.get("/sources/new/fields", params={"kind": kind, "path": "data/x"})
    assert fragment.status_code == 200
    found = re.findall(r'name="([a-z_]+)"', fragment.text)
    assert sorted(found) == sorted(names)
    if "path" in names:
        assert 'value="data/x"' in fragment.text  # a value typed before switching is kept
    page = client.get("/sources/new", params={"kind": kind}).text
    assert f'<option value="{kind}" selected>' in page
    assert all(f'name="{n}"' in page for n in [*names, "name", "table", "primary_key"])


def test_connection_test_reads_a_csv(demo, tmp_path):
    path = tmp_path / "people.csv"
    lines = ["person_id;email;joined"] + [
        f"P{i};p{i}@example.com;2024-01-0{i}" for i in range(1, 8)
    ]
    path.write_text("\n".join(lines) + "\n")
    client = signed_in(demo)
    form = {"kind": "csv", "path": str(path), "delimiter": ";", "primary_key": "person_id"}
    fragment = client.post("/sources/new/test", data=form)
    assert fragment.status_code == 200
    assert 'id="test-ok"' in fragment.text and "3 columns found" in fragment.text
    chips = re.findall(r'<span class="chip">([^<]*)</span>', fragment.text)
    assert chips == ["person_id", "email", "joined"]
    assert cells(fragment.text, "test-rows") == [line.split(";") for line in lines[1:6]]
    assert '<option value="person_id">' in fragment.text  # offered for the key inputs
    assert 'id="test-problems"' not in fragment.text
    wrong_key = client.post("/sources/new/test", data={**form, "primary_key": "id"}).text
    assert "sources[5].tables[0].primary_key: column 'id' not in" in error_text(
        wrong_key, "test-problems"
    )


def test_connection_test_reads_every_file_kind(demo, tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    write_deltalake(str(tmp_path / "delta"), pa.table({"id": [1, 2, 3], "city": ["a", "b", "c"]}))
    full = tmp_path / "incremental" / "FullData" / "contacts.csv"
    full.parent.mkdir(parents=True)
    full.write_text("ContactId,Name\n1,Ann\n2,Bob\n")
    cdm = Path(__file__).parent / "data" / "cdm_model_json"
    cases = [
        ({"kind": "parquet", "path": "data/shop_accounts.parquet"}, "account_id", 5),
        ({"kind": "json", "path": "data/loyalty_members.jsonl"}, "member_no", 5),
        ({"kind": "delta", "path": str(tmp_path / "delta")}, "id", 3),
        ({"kind": "incremental", "path": str(tmp_path / "incremental")}, "ContactId", 2),
        ({"kind": "cdm", "cdm_path": str(cdm), "table": "Contact"}, "ContactId", 4),
    ]
    client = signed_in(demo)
    for form, first_column, rows in cases:
        fragment = client.post("/sources/new/test", data=form).text
        assert 'id="test-ok"' in fragment, (form, fragment)
        assert re.findall(r'<span class="chip">([^<]*)</span>', fragment)[0] == first_column
        assert len(cells(fragment, "test-rows")) == rows, form


def test_connection_test_says_what_is_wrong(demo, tmp_path):
    client = signed_in(demo)
    missing = client.post(
        "/sources/new/test", data={"kind": "csv", "path": str(tmp_path / "no.csv")}
    )
    assert missing.status_code == 200
    text = error_text(missing.text, "test-error")
    assert "sources[5].tables[0].path: file not found" in text and "no.csv" in text
    empty = client.post("/sources/new/test", data={"kind": "parquet", "path": ""}).text
    assert "sources[5].tables[0].path: required" in error_text(empty, "test-error")
    for kind, form in [
        ("json", {"path": str(tmp_path)}),
        ("delta", {"path": str(tmp_path)}),
        ("cdm", {"cdm_path": str(tmp_path)}),
        ("incremental", {"path": str(tmp_path)}),
        ("sql", {"url": "not a url", "sql_table": "t"}),
        ("sql", {"url": "sqlite:///nowhere.db", "sql_table": "t"}),
        ("sql", {"url": "sqlite:///x.db"}),
    ]:
        response = client.post("/sources/new/test", data={"kind": kind, **form})
        assert response.status_code == 200, (kind, form)
        assert error_text(response.text, "test-error").startswith("sources[5]"), (kind, form)


def test_connection_test_lists_sql_columns(demo, tmp_path, monkeypatch):
    database = tmp_path / "erp.db"
    with sqlite3.connect(database) as con:
        con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT)")
        con.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)", [(i, f"n{i}", "Paris") for i in range(9)]
        )
    client = signed_in(demo)
    url = f"sqlite:///{database}"
    table = client.post(
        "/sources/new/test", data={"kind": "sql", "url": url, "sql_table": "customers"}
    )
    assert re.findall(r'<span class="chip">([^<]*)</span>', table.text) == ["id", "name", "city"]
    assert cells(table.text, "test-rows") == [[str(i), f"n{i}", "Paris"] for i in range(5)]
    query = client.post(
        "/sources/new/test",
        data={"kind": "sql", "url": url, "query": "SELECT id, upper(name) AS shout FROM customers"},
    )
    assert re.findall(r'<span class="chip">([^<]*)</span>', query.text) == ["id", "shout"]
    wrong = client.post("/sources/new/test", data={"kind": "sql", "url": url, "sql_table": "nope"})
    assert "sources[5].tables[0].table: table 'nope' not found; tables are customers" in (
        error_text(wrong.text, "test-error")
    )
    # A password from the environment never shows, even in the driver's own message.
    monkeypatch.setenv("AUDIENCE_SRC_TEST_PW", "hunter2")
    refused = client.post(
        "/sources/new/test",
        data={
            "kind": "sql",
            "url": "postgresql+psycopg://etl:${AUDIENCE_SRC_TEST_PW}@127.0.0.1:9/erp",
            "sql_table": "customers",
        },
    )
    text = error_text(refused.text, "test-error")
    assert text.startswith("sources[5].url: cannot connect") and "hunter2" not in refused.text


# -- saving ------------------------------------------------------------------------------------
def test_saving_a_csv_source_writes_the_project_file(demo, restore):
    data = demo["folder"] / "data" / "newsletter.csv"
    data.write_text("subscriber_id,email,signed_up\nS1,a@example.com,2024-03-01\n")
    assert COMMENT in restore.read_text()
    client = signed_in(demo)
    response = client.post(
        "/sources/new",
        data={
            "name": "newsletter",
            "kind": "csv",
            "description": "Newsletter sign-ups",
            "table": "subscribers",
            "path": "data/newsletter.csv",
            "primary_key": "subscriber_id",
            "timestamp_column": "signed_up",
            "types": "signed_up: date %Y-%m-%d\nemail: string",
            "null_values": "n/a",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/sources/newsletter/subscribers?saved=created"
    written = restore.read_text()
    assert COMMENT in written  # comments kept
    source = next(s for s in load_project(restore).sources if s.name == "newsletter")
    table = source.tables[0]
    assert (source.kind, source.description) == ("csv", "Newsletter sign-ups")
    assert source.options.null_values == ["", "n/a"] and source.options.delimiter == ","
    assert (table.name, table.path, table.primary_key) == (
        "subscribers",
        "data/newsletter.csv",
        "subscriber_id",
    )
    assert table.timestamp_column == "signed_up"
    assert table.types["signed_up"].format == "%Y-%m-%d" and table.types["email"].type == "string"
    assert "delimiter" not in written.split("name: newsletter")[1]  # defaults are not written
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    assert 'id="saved"' in page.text and "Not loaded yet: run the project" in page.text
    listing = client.get("/sources").text
    assert "not loaded yet" in row_of(listing, "table-newsletter_subscribers")
    entry = demo["app"].state.server.audit.entries(limit=1)[0]
    assert (entry["action"], entry["target"]) == ("config.put", "sources/newsletter")


def test_bad_input_shows_the_error_and_leaves_the_file(demo, restore):
    before = restore.read_bytes()
    client = signed_in(demo)
    good = {"kind": "csv", "table": "t", "path": "data/orders.csv", "primary_key": "order_id"}
    cases = [
        ({**good, "name": "crm"}, "sources[5].name: 'crm' is used twice"),
        (
            {**good, "name": "orders2", "primary_key": "nope"},
            "sources[5].tables[0].primary_key: column 'nope' not in data/orders.csv; columns are",
        ),
        ({**good, "name": "has space"}, "sources[5].name: String should match pattern"),
        ({**good, "name": "x", "primary_key": ""}, "sources[5].tables[0].primary_key: required"),
        (
            {**good, "name": "x", "path": "data/none.csv"},
            "sources[5].tables[0].path: file not found",
        ),
        (
            {**good, "name": "x", "types": "order_id: text"},
            "sources[5].tables[0].types.order_id.type",
        ),
        (
            {
                "kind": "sql",
                "name": "x",
                "table": "t",
                "url": "sqlite:///x.db",
                "primary_key": "id",
            },
            "sources[5].tables[0]: give exactly one of 'table' or 'query'",
        ),
    ]
    for form, message in cases:
        response = client.post("/sources/new", data=form, follow_redirects=False)
        assert response.status_code == 422, form
        assert message in error_text(response.text, "errors"), (form, message)
        assert f'value="{form["name"]}"' in response.text  # what was typed is kept
        assert restore.read_bytes() == before


def test_unreadable_data_can_be_saved_when_asked(demo, restore):
    client = signed_in(demo)
    form = {"name": "later", "kind": "parquet", "table": "t", "path": "data/later.parquet"}
    form["primary_key"] = "id"
    refused = client.post("/sources/new", data=form, follow_redirects=False)
    assert refused.status_code == 422
    saved = client.post("/sources/new", data={**form, "unchecked": "1"}, follow_redirects=False)
    assert saved.status_code == 303
    assert any(s.name == "later" for s in load_project(restore).sources)


# -- who may --------------------------------------------------------------------------------
def test_viewer_sees_pages_but_not_the_form(demo, restore):
    before = restore.read_bytes()
    viewer = signed_in(demo, "vic")
    assert viewer.get("/sources/crm/contacts").status_code == 200
    for response in (
        viewer.get("/sources/new"),
        viewer.get("/sources/new/fields?kind=sql"),
        viewer.post("/sources/new/test", data={"kind": "csv", "path": "data/orders.csv"}),
        viewer.post(
            "/sources/new",
            data={
                "name": "x",
                "kind": "csv",
                "table": "t",
                "path": "data/orders.csv",
                "primary_key": "order_id",
            },
        ),
    ):
        assert response.status_code == 403
        assert "This page needs the <b>administrator</b> role" in response.text
    assert restore.read_bytes() == before


def test_writes_need_the_sessions_csrf_token(demo, restore):
    before = restore.read_bytes()
    client = signed_in(demo)
    without = TestClient(demo["app"], cookies=client.cookies)
    form = {"name": "x", "kind": "csv", "table": "t", "path": "data/orders.csv"}
    form["primary_key"] = "order_id"
    for url in ("/sources/new", "/sources/new/test"):
        refused = without.post(url, data=form, follow_redirects=False)
        assert refused.status_code == 403 and "reload the page" in refused.text
    assert restore.read_bytes() == before
    page = client.get("/sources/new").text
    assert 'name="csrf_token"' in page  # the plain form carries it as a field
    token = client.headers["X-CSRF-Token"]
    accepted = without.post(
        "/sources/new", data={**form, "csrf_token": token}, follow_redirects=False
    )
    assert accepted.status_code == 303
