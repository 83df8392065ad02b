"""The analyst's round trip in a real browser: sign in, run the project from the home page,
build a segment with two conditions whose live count equals the API's, save it, run again,
and export its members; a viewer is refused the edit pages. Screenshots go to
tests/screenshots/. (Adding a source, accepting a mapping and previewing a rule are in the
sources and unify browser tests; searching and the card in test_console_e2e.py.)
"""

from __future__ import annotations

import csv

import httpx
from console_e2e import (
    SHOTS,
    browser_fixture,
    needs_chromium,
    sign_in_page,
    site_fixture,
)

from audience.project import load_project

pytestmark = needs_chromium
site = site_fixture("console_e2e_flow")
browser = browser_fixture()

FILTER = "City != 'Paris' and number_of_transactions >= 2"


def _run_from_home(page, site) -> str:
    """Press Run now and wait for the page to reload on the new current run; its id."""
    from playwright.sync_api import expect

    server = site["app"].state.server
    before = server.workspace.current_id()
    page.goto(site["url"] + "/")
    page.click("#run-now")
    expect(page.locator("#refresh")).to_contain_text("Running", timeout=10_000)
    assert server.runs.wait(300), "the run did not finish"
    after = server.workspace.current_id()
    assert after != before
    # The progress poll reloads the page once the run has finished.
    expect(page.locator(f"[id='run-{after}']")).to_contain_text("succeeded", timeout=15_000)
    expect(page.locator(f"[id='run-{after}'] > div > .chip")).to_have_text("current")
    return after


def test_run_build_a_two_condition_segment_and_export_it(site, browser, tmp_path):
    from playwright.sync_api import expect

    url = site["url"]
    page = sign_in_page(browser, url, "ada")
    _run_from_home(page, site)
    page.screenshot(path=SHOTS / "home_after_run.png", full_page=True)

    page.goto(url + "/segments/new")
    page.fill("input[name=name]", "repeat_buyers_outside_paris")
    rows = page.locator("#rows .cond")
    if rows.count() == 0:
        page.click("#add-row")
    rows.nth(0).locator("select[name=field]").select_option("City")
    rows.nth(0).locator("select[name=op]").select_option("!=")
    rows.nth(0).locator("input[name=value]").fill("Paris")
    page.click("#add-row")
    expect(rows).to_have_count(2)
    rows.nth(1).locator("select[name=field]").select_option("number_of_transactions")
    rows.nth(1).locator("select[name=op]").select_option(">=")
    rows.nth(1).locator("input[name=value]").fill("2")
    expect(page.locator("#condition")).to_have_text(FILTER)

    api = httpx.get(
        f"{url}/api/v1/customers",
        params={"filter": FILTER, "limit": 1},
        headers={"Authorization": f"Bearer {site['token']}"},
    )
    assert api.status_code == 200, api.text
    total = api.json()["total"]
    assert total > 0
    expect(page.locator("#count")).to_have_text(f"{total:,}")
    page.screenshot(path=SHOTS / "segment_builder_two_conditions.png", full_page=True)

    page.click("#save")
    segments = load_project(site["project_file"]).segments
    assert "repeat_buyers_outside_paris" in [s.name for s in segments]

    # The next run computes it; then its page shows the size and exports every member.
    _run_from_home(page, site)
    page.goto(url + "/segments/repeat_buyers_outside_paris")
    expect(page.locator("#size")).to_have_text(f"{total:,}")
    with page.expect_download() as download:
        page.click("#export")
    saved = tmp_path / "members.csv"
    download.value.save_as(saved)
    with saved.open(newline="", encoding="utf-8") as f:
        members = list(csv.DictReader(f))
    assert len(members) == total
    assert len({m["CustomerId"] for m in members}) == total
    page.screenshot(path=SHOTS / "segment_exported.png", full_page=True)

    # A viewer sees the pages but not the edit pages or the run button.
    viewer = sign_in_page(browser, url, "vic", "/segments/new")
    expect(viewer.locator("h1")).to_have_text("Not allowed")
    viewer.goto(url + "/")
    expect(viewer.locator("#run-now")).to_have_count(0)
    viewer.screenshot(path=SHOTS / "viewer_refused.png")
