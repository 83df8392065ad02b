"""The web console through the test client, on a run of the demo project: signing in with a
password or an API key, redirects and roles, the home page, customer search and the card."""

from __future__ import annotations

import re

import pytest
from console_helpers import PASSWORDS, demo_workspace, sign_in
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from audience.api.app import create_app
from audience.console.access import safe_next
from audience.console.users import SESSION_COOKIE


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console")
    data = demo_workspace(folder)
    app = create_app(data["project_file"], schedule=False)
    with TestClient(app) as client:
        yield {**data, "client": client, "app": app}


def signed_in(demo, user: str = "ada") -> TestClient:
    """A fresh client (own cookies) on the app the module's client started, signed in as
    `user`."""
    return sign_in(demo["app"], user, PASSWORDS[user])


# -- signing in --------------------------------------------------------------------------------
def test_pages_redirect_to_login_when_signed_out(demo):
    client = TestClient(demo["app"])
    for path in ("/", "/customers", "/customers?q=x", "/admin/users", "/segments"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=/"), path
    location = client.get("/customers?q=x", follow_redirects=False).headers["location"]
    assert location == "/login?next=/customers%3Fq%3Dx"
    page = client.get("/login")
    assert page.status_code == 200 and "Sign in with API key" in page.text


def test_login_with_password_then_logout(demo):
    client = TestClient(demo["app"])
    response = client.post(
        "/login",
        data={"username": "ada", "password": "admin-pass", "next": "/customers"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/customers"
    cookie = response.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    home = client.get("/")
    assert home.status_code == 200 and "ada" in home.text and "administrator" in home.text
    client.post("/logout")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_bad_password_and_unknown_user_are_refused(demo):
    client = TestClient(demo["app"])
    for user, password in (("ada", "wrong"), ("nobody", "admin-pass"), ("", "")):
        response = client.post(
            "/login", data={"username": user, "password": password}, follow_redirects=False
        )
        assert response.status_code == 401
        assert "Wrong user name or password" in response.text
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_forged_cookie_is_ignored(demo):
    client = TestClient(demo["app"])
    client.cookies.set(SESSION_COOKIE, '{"user": "ada"}')
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_with_api_key(demo):
    client = TestClient(demo["app"])
    bad = client.post("/login", data={"api_key": "aud_nope_nope"}, follow_redirects=False)
    assert bad.status_code == 401 and "API key is not valid" in bad.text
    good = client.post("/login", data={"api_key": demo["token"]}, follow_redirects=False)
    assert good.status_code == 303
    home = client.get("/")
    assert home.status_code == 200 and "ci" in home.text and "viewer" in home.text


def test_revoked_key_session_ends(demo):
    server = demo["app"].state.server
    principal, token = server.keys.create("short-lived", "viewer")
    client = TestClient(demo["app"])
    client.post("/login", data={"api_key": token}, follow_redirects=False)
    assert client.get("/", follow_redirects=False).status_code == 200
    server.keys.revoke(principal.key_id)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_next_only_goes_to_this_site():
    assert safe_next("/customers?q=a") == "/customers?q=a"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil.example", "", None):
        assert safe_next(bad) == "/"


def test_viewer_gets_403_on_admin_page(demo):
    viewer = signed_in(demo, "vic")
    response = viewer.get("/admin/users")
    assert response.status_code == 403 and "administrator" in response.text
    assert viewer.get("/").status_code == 200
    admin = signed_in(demo, "ada")
    page = admin.get("/admin/users")
    assert page.status_code == 200 and "vic" in page.text and "ci" in page.text


# -- pages -------------------------------------------------------------------------------------
def test_home_shows_the_run_stages_counts_and_warnings(demo):
    page = signed_in(demo).get("/")
    assert page.status_code == 200
    text = page.text
    run = demo["run"]
    assert run.id in text and "succeeded" in text and "current" in text
    for stage in ("ingest", "unify", "activities", "measures", "segments", "serving"):
        assert f"<td>{stage}</td>" in text
    customers = run.results["stages"]["unify"]["detail"]["statistics"]["customers"]
    assert f'id="count-customers">{customers}<' in text
    assert 'id="count-sources">5<' in text  # crm, shop, shop_events, loyalty, its exports
    # The demo data has quarantined rows and web visits from unknown accounts.
    assert "quarantined" in text and "matched no customer" in text


def test_no_external_urls_in_pages(demo):
    client = signed_in(demo)
    for path in ("/", "/customers", "/login", "/segments"):
        text = client.get(path).text
        assert "http://" not in text and "https://" not in text, path


def test_search_by_email_finds_the_customer_card_with_three_sources(demo):
    client = signed_in(demo)
    customer = demo["customer"]
    results = client.get("/customers", params={"q": demo["email"].upper()})
    assert results.status_code == 200
    assert f'href="/customers/{customer["CustomerId"]}"' in results.text
    card = client.get(f"/customers/{customer['CustomerId']}")
    assert card.status_code == 200
    for key in customer["keys"]:
        assert f"<td>{key['source']}</td><td>{key['table']}</td><td><code>{key['key']}</code>" in (
            card.text
        )
    assert {k["source"] for k in customer["keys"]} >= {"crm", "shop", "loyalty"}
    assert demo["email"] in card.text


def test_search_by_name_and_source_key(demo):
    client = signed_in(demo)
    customer = demo["customer"]
    last = customer["profile"]["LastName"]
    by_name = client.get("/customers", params={"q": last.lower()})
    assert f"/customers/{customer['CustomerId']}" in by_name.text
    key = next(k for k in customer["keys"] if k["source"] == "crm")
    by_key = client.get("/customers", params={"q": key["key"]})
    assert f"/customers/{customer['CustomerId']}" in by_key.text
    nothing = client.get("/customers", params={"q": "zzqqxx-no-such"})
    assert "No customer matches" in nothing.text


def test_text_search_finds_what_a_test_per_field_finds(demo):
    """The run's search column (fields lower-cased, joined by a separator) finds exactly the
    customers with the text in one of the fields, and never across two of them."""
    import duckdb

    from audience.console.search import SEARCH_FIELDS, search_path

    client = signed_in(demo)
    profile = demo["run"].table_path("CustomerProfile")
    con = duckdb.connect()
    columns = [d[0] for d in con.execute(f"DESCRIBE SELECT * FROM '{profile}'").fetchall()]
    fields = [c for c in SEARCH_FIELDS if c in columns]
    last = demo["customer"]["profile"]["LastName"]
    part_of_an_id = demo["customer"]["CustomerId"][9:13]  # CustomerIds are searched too
    for q in (last[1:].upper(), "an", demo["customer"]["profile"]["City"], part_of_an_id, "ad"):
        test = " OR ".join(f"contains(lower({c}), ?)" for c in fields)
        expected = con.execute(
            f"SELECT CustomerId FROM '{profile}' WHERE {test} ORDER BY CustomerId",
            [q.lower()] * len(fields),
        ).fetchall()
        page = client.get("/customers", params={"q": q}).text
        count = re.search(r'id="result-count">\s*(\d+) customer', page)
        assert count and int(count.group(1)) == len(expected), q
        shown = re.findall(r'<td class="muted small">([^<]+)</td>', page)
        assert shown == [r[0] for r in expected][: len(shown)] and shown, q
    first = demo["customer"]["profile"]["FirstName"]
    across = f"{first}\x1f{last}"  # the separator between fields never matches
    assert "No customer matches" in client.get("/customers", params={"q": across}).text
    assert search_path(demo["run"]).exists()


def test_card_shows_measures_segments_and_timeline_filter(demo):
    client = signed_in(demo)
    customer = demo["customer"]
    path = f"/customers/{customer['CustomerId']}"
    card = client.get(path).text
    for segment in customer["segments"]:
        assert f'<span class="chip">{segment}</span>' in card
    for measure in customer["measures"]:
        assert f"<dt>{measure}</dt>" in card
    assert 'class="activity"' in card
    every = client.get(f"{path}/timeline").text
    types = {t for t in ("SalesOrder", "WebVisit", "Loyalty") if f'data-type="{t}"' in every}
    assert types, "the customer has activities of the demo's types"
    chosen = sorted(types)[0]
    only = client.get(f"{path}/timeline", params={"type": chosen}).text
    assert f'data-type="{chosen}"' in only
    assert all(f'data-type="{t}"' not in only for t in types - {chosen})
    assert client.get("/customers/no-such-id").status_code == 404


def test_users_command_creates_a_hashed_user(demo, tmp_path):
    import audience.cli_console  # noqa: F401  (registers `audience users`)
    from audience.cli import app

    runner = CliRunner()
    project = str(demo["project_file"])
    made = runner.invoke(
        app,
        ["users", "create", "cli-user", "--role", "contributor", "--password", "pw-1234",
         "-p", project],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    again = runner.invoke(
        app, ["users", "create", "cli-user", "--password", "x1234", "--if-missing", "-p", project]
    )
    assert again.exit_code == 0 and "exists already" in again.output
    prompted = runner.invoke(
        app, ["users", "create", "typed", "-p", project], input="secret-1\nsecret-1\n"
    )
    assert prompted.exit_code == 0, prompted.output
    listed = runner.invoke(app, ["users", "list", "-p", project])
    assert "cli-user" in listed.output and "contributor" in listed.output
    assert "pw-1234" not in demo["project_file"].parent.joinpath(
        ".audience", "api_keys.sqlite"
    ).read_bytes().decode("latin-1")
    client = TestClient(demo["app"])
    ok = client.post("/login", data={"username": "typed", "password": "secret-1"})
    assert ok.status_code == 200 and "typed" in ok.text
    assert runner.invoke(app, ["users", "delete", "typed", "-p", project]).exit_code == 0
    assert client.get("/", follow_redirects=False).status_code == 303


def test_run_now_from_home_then_the_page_reloads_on_the_new_run(demo):
    viewer = signed_in(demo, "vic")
    assert 'id="run-now"' not in viewer.get("/").text
    assert viewer.post("/runs/start").status_code == 403
    admin = signed_in(demo)
    assert 'id="run-now"' in admin.get("/").text
    before = demo["app"].state.server.workspace.current_id()
    started = admin.post("/runs/start")
    assert started.status_code == 200
    assert 'hx-trigger="every 2s"' in started.text or "last run" in started.text
    server = demo["app"].state.server
    assert server.runs.wait(300)
    done = admin.get("/runs/progress?watching=1")
    assert done.headers.get("HX-Refresh") == "true"
    after = server.workspace.current_id()
    assert after != before
    assert after in admin.get("/").text
