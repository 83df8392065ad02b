"""The console's unify pages through the test client, on a run of the demo project: the
overview against UnifyStatistics and AlternateKey, accepting a suggested mapping into
audience.yaml, rule previews against the same join written in SQL, adding, moving and
deleting rules, errors with their config paths, explain, merge policies, the dry run, and
who may write."""

from __future__ import annotations

import html
import json
import re
import time

import duckdb
import pytest
from console_helpers import PASSWORDS, demo_workspace, sign_in
from fastapi.testclient import TestClient

from audience import project_edit
from audience.api.app import create_app
from audience.api.runner import run_lock
from audience.project import load_project
from audience.unify.prepare import normalized_fields

LOYALTY = 2  # unify.tables[2] of the demo: loyalty.members


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console_unify")
    data = demo_workspace(folder)
    app = create_app(data["project_file"], schedule=False)
    with TestClient(app) as client:
        yield {**data, "client": client, "app": app, "server": app.state.server}


@pytest.fixture
def restore(demo):
    """Tests that write get the project file back as it was afterwards."""
    path = demo["project_file"]
    original = path.read_text()
    yield original
    path.write_text(original)
    demo["server"].reload_project()


def signed_in(demo, user: str = "ada") -> TestClient:
    return sign_in(demo["app"], user, PASSWORDS[user])


def sql(query: str, *params):
    return duckdb.connect().execute(query, list(params)).fetchall()


def table(demo, name: str) -> str:
    return str(demo["run"].table_path(name))


def number(text: str, element_id: str) -> int:
    found = re.search(rf'id="{element_id}">([\d,]+)<', text)
    assert found, element_id
    return int(found[1].replace(",", ""))


# -- overview ----------------------------------------------------------------------------------
def test_overview_statistics_equal_unify_statistics(demo):
    stats = {n: json.loads(v) for n, v in sql(f"SELECT * FROM '{table(demo, 'UnifyStatistics')}'")}
    page = signed_in(demo, "vic").get("/unify")
    assert page.status_code == 200
    assert number(page.text, "stat-records") == stats["records"]
    assert number(page.text, "stat-customers") == stats["customers"]
    assert len(stats["tables"]) == 3
    for t in stats["tables"]:
        row = re.search(rf'<tr id="table-{re.escape(t["table"])}">(.*?)</tr>', page.text, re.S)
        assert row, t["table"]
        for key in ("records", "duplicates", "matched", "customers"):
            shown = re.search(rf'class="num {key}">([\d,]+)<', row[1])[1]
            assert int(shown.replace(",", "")) == t[key], (t["table"], key)
    assert stats["rules"]
    for r in stats["rules"]:
        row = re.search(rf'<tr id="rule-{r["kind"]}-{r["rule"]}">(.*?)</tr>', page.text, re.S)
        assert row, r
        assert re.search(r'class="num pairs">([\d,]+)<', row[1])[1] == f"{r['pairs']:,}"
        assert f'class="num score">{r["mean_score"]:.4f}<' in row[1]
    # Links per table pair add up to the links per rule.
    pairs = sum(n for (n,) in sql(f"SELECT count(*) FROM '{table(demo, 'ConflationMatchPair')}'"))
    assert number(page.text, "stat-links") == pairs == sum(r["pairs"] for r in stats["rules"])


def test_cluster_chart_counts_sum_to_the_customers(demo):
    page = signed_in(demo, "vic").get("/unify").text
    canvas = re.search(r'<canvas id="cluster-chart"[^>]*>', page, re.S)[0]
    labels = json.loads(html.unescape(re.search(r"data-labels='([^']*)'", canvas)[1]))
    values = json.loads(html.unescape(re.search(r"data-values='([^']*)'", canvas)[1]))
    (customers,) = sql(f"SELECT count(DISTINCT CustomerId) FROM '{table(demo, 'AlternateKey')}'")[0]
    assert sum(values) == customers == number(page, "stat-customers")
    direct = dict(
        sql(
            "SELECT n, count(*) FROM (SELECT count(*) AS n FROM "
            f"'{table(demo, 'AlternateKey')}' GROUP BY CustomerId) GROUP BY n"
        )
    )
    assert max(direct) <= 10  # the demo's customers have few records: one bar per size
    assert dict(zip(map(int, labels), values, strict=True)) == direct
    assert "/static/vendor/chart.umd.min.js" in page


def test_cluster_histogram_without_recorded_sizes_counts_alternate_keys(demo, monkeypatch):
    from audience.console import pages_unify

    run = demo["run"]
    recorded = pages_unify.cluster_histogram(run)
    monkeypatch.setattr(pages_unify, "run_statistics", lambda run: {})
    assert pages_unify.cluster_histogram(run) == recorded  # DuckDB over AlternateKey
    bars = pages_unify._binned([(1, 5), (10, 1), (11, 2), (20, 1), (21, 1), (60, 2), (200, 1)])
    assert [(b["label"], b["customers"]) for b in bars] == [
        ("1", 5),
        ("10", 1),
        ("11–20", 3),
        ("21–50", 1),
        ("51–100", 2),
        ("101+", 1),
    ]


def test_giant_clusters_are_flagged(demo, monkeypatch):
    from audience.console import pages_unify

    stats = dict(pages_unify.run_statistics(demo["run"]))
    stats["cluster_sizes"] = [*stats["cluster_sizes"], {"size": 25, "customers": 1}]
    stats["giant_clusters"] = [{"size": 25, "links": [{"a": 1}] * 30, "cut": []}]
    monkeypatch.setattr(pages_unify, "run_statistics", lambda run: stats)
    page = signed_in(demo, "vic").get("/unify").text
    assert '<tr data-bin="21–50" class="un-giant">' in page  # above unify.cluster.max_size 20
    assert "1 cluster(s) above unify.cluster.max_size (20)" in page
    giants = re.search(r'<table id="giants".*?</table>', page, re.S)[0]
    assert re.findall(r'<td class="num">(\d+)</td>', giants) == ["25", "30", "0"]


# -- mapping -----------------------------------------------------------------------------------
def test_accepting_a_suggestion_writes_the_type(demo, restore):
    path = demo["project_file"]
    assert "# The loyalty system writes JSON Lines" in restore
    project_edit.remove_path(path, ["unify", "tables", LOYALTY, "fields", "tel"])
    demo["server"].reload_project()
    client = signed_in(demo)
    rows = client.get(f"/unify/mapping/{LOYALTY}").text
    row = re.search(r'<tr id="column-2-tel"[^>]*>(.*?)</tr>', rows, re.S)
    assert row and 'class="mapped">—<' in row[1]
    assert '<span class="suggestion">Identity.Phone</span>' in row[1]
    accept = html.unescape(re.search(r"hx-vals='([^']*)'>Accept<", row[1])[1])
    assert json.loads(accept) == {"table": 2, "column": "tel", "semantic": "Identity.Phone"}
    answer = client.post("/unify/mapping", data=json.loads(accept))
    assert answer.status_code == 200
    assert (
        'class="mapped">Identity.Phone<' in answer.text and "saved: Identity.Phone" in answer.text
    )
    assert ">Accept<" not in answer.text
    assert load_project(path).unify.tables[LOYALTY].fields["tel"] == "Identity.Phone"
    written = path.read_text()
    assert "# The loyalty system writes JSON Lines" in written  # comments kept
    assert "# Tables are matched top to bottom" in written
    # The select unmaps a column, too.
    client.post("/unify/mapping", data={"table": LOYALTY, "column": "tel", "semantic": ""})
    assert "tel" not in load_project(path).unify.tables[LOYALTY].fields


def test_a_type_given_twice_is_refused(demo, restore):
    client = signed_in(demo)
    answer = client.post(
        "/unify/mapping", data={"table": LOYALTY, "column": "tier", "semantic": "Identity.Email"}
    )
    assert answer.status_code == 200  # htmx swaps only successful answers in
    assert (
        "unify.tables[2].fields.tier: Identity.Email is already given to &#39;e_mail&#39;"
        in answer.text
    )
    unknown = client.post(
        "/unify/mapping", data={"table": LOYALTY, "column": "tier", "semantic": "Person.Nope"}
    )
    assert "unknown semantic type &#39;Person.Nope&#39;" in unknown.text
    assert demo["project_file"].read_text() == restore


# -- rules: preview ----------------------------------------------------------------------------
def _columns(demo) -> dict[str, str]:
    """The run's normalised column of each field, with the type's own normalisation."""
    fields = normalized_fields(load_project(demo["project_file"]).unify)
    return {f: spec.name for (f, _steps), spec in fields.items()}


def _direct_pairs(demo, on: str, left_t: int, right_t: int) -> int:
    """A rule's pairs written by hand in SQL on MatchRecords, with the demo's exception (birth
    dates never differ by more than an edit score of 0.8)."""
    bd = _columns(demo)["Person.BirthDate"]
    edit = (
        f"(greatest(length(l.{bd}), length(r.{bd})) - levenshtein(l.{bd}, r.{bd}))::DOUBLE "
        f"/ greatest(length(l.{bd}), length(r.{bd}))"
    )
    records = table(demo, "MatchRecords")
    query = (
        f"SELECT count(*) FROM '{records}' l JOIN '{records}' r ON {on} "
        f"WHERE l._t = {left_t} AND r._t = {right_t} "
        + ("AND l._n > r._n " if left_t == right_t else "")
        + f"AND NOT (l.{bd} IS NOT NULL AND r.{bd} IS NOT NULL AND {edit} < 0.8)"
    )
    return sql(query)[0][0]


RULE_FORM = {
    "target": "match-0",
    "name": "email_and_last_name",
    "field": ["Identity.Email", "Person.LastName"],
    "normalize": ["", ""],
    "precision": ["exact", "exact"],
    "custom": ["", ""],
    "method": ["edit", "edit"],
}


def test_preview_counts_the_pairs_of_a_new_rule(demo):
    c = _columns(demo)
    expected = _direct_pairs(
        demo, f"l.{c['Identity.Email']} = r.{c['Identity.Email']} AND "
        f"l.{c['Person.LastName']} = r.{c['Person.LastName']}", 1, 0
    )  # fmt: skip
    assert expected > 20
    fragment = signed_in(demo).post("/unify/rules/preview", data=RULE_FORM)
    assert fragment.status_code == 200, fragment.text
    assert number(fragment.text, "preview-pairs") == expected
    pairs = re.findall(
        r'<tbody class="un-pair" data-left="([^"]+)" data-right="([^"]+)"', fragment.text
    )
    assert len(pairs) == 20  # the first 20 only
    assert all(a.startswith("shop|accounts|") and b.startswith("crm|contacts|") for a, b in pairs)
    scores = re.findall(r'class="num condition-score">([\d.]+)<', fragment.text)
    assert len(scores) == 40 and set(scores) == {"1.000"}


def test_preview_of_a_fuzzy_rule_with_a_new_normalisation(demo):
    c = _columns(demo)
    form = {
        **RULE_FORM,
        "target": "match-1",  # loyalty.members against crm.contacts
        "field": ["Person.LastName", "Person.FirstName"],
        "normalize": ["lower", ""],  # not a column of the run: normalised for the preview
        "precision": ["exact", "custom"],
        "custom": ["", "0.9"],
        "method": ["edit", "jaro_winkler"],
    }
    fn = c["Person.FirstName"]
    expected = _direct_pairs(
        demo,
        "lower(l.Person_LastName) = lower(r.Person_LastName) AND "
        f"jaro_winkler_similarity(l.{fn}, r.{fn}) >= 0.9 AND length(l.{fn}) > 0 "
        f"AND length(r.{fn}) > 0",
        2,
        0,
    )
    fragment = signed_in(demo).post("/unify/rules/preview", data=form).text
    assert number(fragment, "preview-pairs") == expected > 0
    scores = [float(s) for s in re.findall(r'class="num condition-score">([\d.]+)<', fragment)]
    assert scores and min(scores) >= 0.9 and min(scores) < 1.0  # lowest scores shown first


def test_preview_of_an_existing_dedup_rule(demo):
    c = _columns(demo)
    fn = c["Person.FirstName"]
    expected = _direct_pairs(
        demo,
        f"l.{c['Identity.Email']} = r.{c['Identity.Email']} AND "
        f"jaro_winkler_similarity(l.{fn}, r.{fn}) >= 0.85 AND length(l.{fn}) > 0 "
        f"AND length(r.{fn}) > 0",
        0,
        0,
    )
    # Anyone may preview a rule of the file (nothing is written).
    fragment = signed_in(demo, "vic").get("/unify/rules/preview?target=dedup-0&index=0").text
    assert number(fragment, "preview-pairs") == expected
    # Every pair the run linked by this rule is among the pairs the rule finds alone.
    linked = sql(
        f"SELECT count(*) FROM '{table(demo, 'ConflationMatchPair')}' WHERE Kind = 'dedup' "
        "AND Rule = 'email' AND LeftIdentifier LIKE 'crm|contacts|%'"
    )[0][0]
    assert 0 < linked <= expected


def test_preview_shows_the_same_rows_with_the_serving_store_or_alternate_key(demo):
    from audience.console.pages_unify_rules import find_list, preview_rule

    server = demo["app"].state.server
    view = server.view()
    rl = find_list(server.project.unify, "dedup-0")
    with_store = preview_rule(server.project, view.run, rl, rl.rules[0], store=view.serving)
    without = preview_rule(server.project, view.run, rl, rl.rules[0])
    assert with_store.rows == without.rows and with_store.pairs == without.pairs
    assert any(r["same_customer"] for r in with_store.rows)


def test_preview_errors(demo):
    client = signed_in(demo)
    bad = client.post(
        "/unify/rules/preview",
        data={**RULE_FORM, "precision": ["exact", "custom"], "custom": ["", "2"]},
    ).text
    assert 'id="preview-errors"' in bad
    assert "unify.match[0].rules[6].conditions[1].precision: a custom precision is a number" in bad
    state = client.post(
        "/unify/rules/preview",
        data={**RULE_FORM, "target": "match-1", "field": ["Location.State", ""]},
    ).text
    assert "loyalty.members has no column mapped to Location.State" in state


# -- rules: saving -----------------------------------------------------------------------------
def test_adding_a_rule_writes_it_at_its_position(demo, restore):
    path = demo["project_file"]
    client = signed_in(demo)
    response = client.post(
        "/unify/rules", data={**RULE_FORM, "position": "1"}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/unify/rules?saved=email_and_last_name#match-0"
    unify = load_project(path).unify
    names = [r.name for r in unify.match[0].rules]
    assert names == ["email", "email_and_last_name", "phone", "email_and_phone",
                     "name_and_birth_date", "name_and_postcode", "name_and_address"]  # fmt: skip
    added = unify.match[0].rules[1]
    assert [(c.field, c.precision) for c in added.conditions] == [
        ("Identity.Email", "exact"),
        ("Person.LastName", "exact"),
    ]
    # The other lists share these rules through a YAML alias in the file: they keep theirs.
    assert all(len(p.rules) == 6 for p in unify.match[1:])
    assert all(len(t.dedup.rules) == 6 for t in unify.tables)
    written = path.read_text()
    assert "# Tables are matched top to bottom" in written and "&person_rules" in written
    page = client.get("/unify/rules?saved=email_and_last_name").text
    assert 'id="saved"' in page and 'id="rule-match-0-1" data-name="email_and_last_name"' in page
    # Without a position, a rule goes last.
    last = {
        **RULE_FORM,
        "name": "phone_and_last_name",
        "field": ["Identity.Phone", "Person.LastName"],
    }
    assert client.post("/unify/rules", data=last, follow_redirects=False).status_code == 303
    assert load_project(path).unify.match[0].rules[-1].name == "phone_and_last_name"
    # Move it up once, then delete it.
    move = {"target": "match-0", "index": "7", "direction": "up"}
    assert client.post("/unify/rules/move", data=move, follow_redirects=False).status_code == 303
    assert [r.name for r in load_project(path).unify.match[0].rules][6:] == [
        "phone_and_last_name",
        "name_and_address",
    ]
    gone = {"target": "match-0", "index": "6"}
    assert client.post("/unify/rules/delete", data=gone, follow_redirects=False).status_code == 303
    assert "phone_and_last_name" not in [r.name for r in load_project(path).unify.match[0].rules]
    audit = demo["server"].audit.entries(limit=1)[0]
    assert (audit["action"], audit["target"]) == ("config.put", "unify/match/0/rules")


def test_editing_a_rule_replaces_it(demo, restore):
    client = signed_in(demo)
    form = client.get("/unify/rules?edit=dedup-1&index=0").text
    assert 'name="replace" value="0"' in form and 'value="email"' in form
    data = {
        **RULE_FORM,
        "target": "dedup-1",
        "replace": "0",
        "name": "email",
        "field": ["Identity.Email", "Person.FirstName"],
        "precision": ["exact", "medium"],
    }
    assert client.post("/unify/rules", data=data, follow_redirects=False).status_code == 303
    rules = load_project(demo["project_file"]).unify.tables[1].dedup.rules
    assert rules[0].name == "email" and rules[0].conditions[1].precision == "medium"
    assert len(rules) == 6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"field": ["Person.Nickname", ""]},
            "unify.match[0].rules[6].conditions[0].field: unknown semantic type "
            "&#39;Person.Nickname&#39;",
        ),
        (
            {"precision": ["exact", "custom"], "custom": ["", "1.5"]},
            "unify.match[0].rules[6].conditions[1].precision: a custom precision is a number "
            "above 0 and at most 1",
        ),
        (
            {"normalize": ["emails", ""]},
            "unify.match[0].rules[6].conditions[0].normalize: unknown normalization step "
            "&#39;emails&#39;",
        ),
        ({"name": "phone"}, "unify.match[0].rules[6].name: &#39;phone&#39; is already a rule"),
        (
            {"position": "2", "field": ["Location.State", ""]},
            "unify.match[0].rules[2].conditions[0].field: shop.accounts has no column mapped "
            "to Location.State",
        ),
    ],
)
def test_a_bad_rule_shows_the_error_and_writes_nothing(demo, restore, change, message):
    response = signed_in(demo).post("/unify/rules", data={**RULE_FORM, **change})
    assert response.status_code == 422
    assert 'id="errors"' in response.text and message in response.text
    assert demo["project_file"].read_text() == restore
    assert f'value="{change.get("name", RULE_FORM["name"])}"' in response.text  # form kept


# -- merge -------------------------------------------------------------------------------------
def test_merge_policy_edit_and_rename(demo, restore):
    client = signed_in(demo)
    page = client.get("/unify/merge").text
    assert '<tr id="column-Phone"' in page and "unify.merge.fields[1]" in page
    assert re.search(r'<tr id="column-City".*?default', page, re.S)
    data = {
        "field": "Identity.Phone",
        "name": "MobilePhone",
        "policy": "importance",
        "ranking": "shop.accounts, crm.contacts",
    }
    assert client.post("/unify/merge/field", data=data, follow_redirects=False).status_code == 303
    merge = load_project(demo["project_file"]).unify.merge
    phone = next(f for f in merge.fields if f.field == "Identity.Phone")
    assert (phone.name, phone.policy, phone.ranking) == (
        "MobilePhone",
        "importance",
        ["shop.accounts", "crm.contacts"],
    )
    assert len(merge.fields) == 2
    # Excluding a grouped column follows renames into the group.
    city = {"field": "Location.City", "name": "Town", "policy": "importance", "exclude": "1"}
    assert client.post("/unify/merge/field", data=city, follow_redirects=False).status_code == 303
    merge = load_project(demo["project_file"]).unify.merge
    assert merge.exclude == ["Town"] and "Town" in merge.groups[0].fields
    bad = client.post("/unify/merge/field", data={**data, "ranking": "shop.orders"})
    assert bad.status_code == 422
    assert "unify.merge.fields[1].ranking: shop.orders not in unify.tables" in bad.text


# -- explain -----------------------------------------------------------------------------------
def test_explain_shows_the_records_from_three_sources(demo):
    customer = demo["customer"]
    client = signed_in(demo, "vic")
    page = client.get("/unify/explain", params={"customer": customer["CustomerId"]}).text
    shown = set(re.findall(r'<th class="record un-record" data-id="([^"]+)"', page))
    expected = {f"{k['source']}|{k['table']}|{k['key']}" for k in customer["keys"]}
    assert shown == expected
    assert {s.split("|")[0] for s in shown} >= {"crm", "shop", "loyalty"}
    assert f'href="/customers/{customer["CustomerId"]}"' in page
    links = re.findall(r'<div class="card un-link" data-rule="([^"]+)"', page)
    assert len(links) >= len(shown) - 1  # the records are connected
    assert "Identity.Email" in page and demo["email"] in page
    crm = next(k for k in customer["keys"] if k["source"] == "crm")
    by_key = client.get("/unify/explain", params={"customer": f"crm.contacts:{crm['key']}"}).text
    assert f'id="customer-id" href="/customers/{customer["CustomerId"]}"' in by_key
    missing = client.get("/unify/explain", params={"customer": "crm.contacts:NOPE"}).text
    assert 'id="explain-error"' in missing and "no customer" in missing


def test_explain_from_the_serving_store_equals_explain_from_the_tables(demo):
    from audience.unify.explain import explain

    server = demo["app"].state.server
    view = server.view()
    tables = {name: view.run.table_path(name) for name in view.run.tables}
    customer = demo["customer"]
    crm = next(k for k in customer["keys"] if k["source"] == "crm")
    for selector in (
        customer["CustomerId"],
        f"crm.contacts:{crm['key']}",
        f"crm|contacts|{crm['key']}",
    ):
        with_store = explain(server.project, tables, selector, view.serving)
        assert with_store == explain(server.project, tables, selector), selector
        assert with_store.customer_id == customer["CustomerId"] and with_store.links
    # Look-ups of one customer read few row groups because the run writes these sorted.
    con = duckdb.connect()
    for table, key in (
        ("AlternateKey", "CustomerId"),
        ("MatchRecords", "_rid"),
        ("ConflationMatchPair", "LeftIdentifier"),
    ):
        values = [r[0] for r in con.execute(f"SELECT {key} FROM '{tables[table]}'").fetchall()]
        assert values == sorted(values), table


# -- dry run -----------------------------------------------------------------------------------
def test_dry_run_of_an_unchanged_project_changes_nobody(demo):
    client = signed_in(demo)
    current = demo["server"].workspace.current_id()
    assert "No dry run yet" in client.get("/unify/dry-run").text
    started = client.post("/unify/dry-run", follow_redirects=False)
    assert started.status_code == 303, started.text
    deadline = time.monotonic() + 180
    while True:
        panel = client.get("/unify/dry-run/status").text
        if 'hx-trigger="every 2s"' not in panel:
            break
        assert time.monotonic() < deadline, "the dry run did not finish"
        time.sleep(0.5)
    assert 'id="dry-run-status">succeeded<' in panel, panel
    for counter in ("diff-merges", "diff-splits", "diff-changed", "diff-new", "diff-removed"):
        assert number(panel, counter) == 0, counter
    assert number(panel, "diff-unchanged") == number(client.get("/unify").text, "stat-customers")
    assert 'id="no-changes"' in panel
    assert demo["server"].workspace.current_id() == current  # nothing published


def test_dry_run_waits_for_a_run_in_progress(demo):
    with run_lock(demo["server"].project.workspace_path, by="a test"):
        refused = signed_in(demo).post("/unify/dry-run")
    assert refused.status_code == 409 and "a run is in progress" in refused.text


# -- who may write -----------------------------------------------------------------------------
def test_viewer_reads_but_never_writes(demo):
    viewer = signed_in(demo, "vic")
    before = demo["project_file"].read_text()
    for page in ("/unify", "/unify/mapping", "/unify/rules", "/unify/merge", "/unify/explain"):
        assert viewer.get(page).status_code == 200, page
    rows = viewer.get(f"/unify/mapping/{LOYALTY}").text
    assert "Accept" not in rows and 'hx-post="/unify/mapping"' not in rows
    rules = viewer.get("/unify/rules").text
    assert 'id="rule-form"' not in rules and "/unify/rules/delete" not in rules
    assert 'href="/unify/dry-run"' not in rules
    writes = [
        ("/unify/mapping", {"table": LOYALTY, "column": "tier", "semantic": "Person.Title"}),
        ("/unify/rules", RULE_FORM),
        ("/unify/rules/preview", RULE_FORM),
        ("/unify/rules/move", {"target": "match-0", "index": "1", "direction": "up"}),
        ("/unify/rules/delete", {"target": "match-0", "index": "0"}),
        ("/unify/merge/field", {"field": "Identity.Phone", "name": "Tel"}),
        ("/unify/merge/group", {"original": "Address", "delete": "1"}),
        ("/unify/dry-run", {}),
    ]
    for url, data in writes:
        response = viewer.post(url, data=data)
        assert response.status_code == 403, url
        assert "needs the <b>administrator</b> role" in response.text, url
    assert viewer.get("/unify/dry-run").status_code == 403
    assert demo["project_file"].read_text() == before


def test_writes_need_the_sessions_csrf_token(demo):
    client = signed_in(demo)
    without = TestClient(demo["app"], cookies=client.cookies)
    before = demo["project_file"].read_text()
    data = {"table": LOYALTY, "column": "tier", "semantic": "Person.Title"}
    refused = without.post("/unify/mapping", data=data)
    assert refused.status_code == 403 and "reload the page" in refused.text
    assert without.post("/unify/rules", data=RULE_FORM).status_code == 403
    forged = without.post("/unify/rules", data={**RULE_FORM, "csrf_token": "forged"})
    assert forged.status_code == 403
    assert demo["project_file"].read_text() == before
