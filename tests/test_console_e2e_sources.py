"""The data-source pages in a real browser (Debian's chromium, driven by Playwright) against the
app served by uvicorn: the list, adding a CSV source with the form (kind switch, connection
test, save), the table page's charts, and a viewer refused the form. Screenshots go to
tests/screenshots/.
"""

from __future__ import annotations

from console_e2e import SHOTS, browser_fixture, needs_chromium, site_fixture
from console_helpers import PASSWORDS

from audience.project import load_project

pytestmark = needs_chromium
site = site_fixture("console_e2e_sources")
browser = browser_fixture()


def _sign_in(browser, url: str, user: str, target: str):
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{url}{target}")
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.click("button[type=submit]")
    return page


def test_add_a_csv_source_with_the_form(site, browser):
    from playwright.sync_api import expect

    folder = site["project_file"].parent
    (folder / "data" / "newsletter.csv").write_text(
        "subscriber_id,email,signed_up,opens\n"
        + "".join(f"S{i},s{i}@example.com,2024-03-{i:02d},{i * 3}\n" for i in range(1, 13))
    )
    url = site["url"]
    page = _sign_in(browser, url, "ada", "/sources")
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(url) else external.append(r.url))

    expect(page).to_have_url(f"{url}/sources")
    expect(page.locator("#sources tbody tr")).to_have_count(9)
    expect(page.locator("#table-crm_contacts td.loaded")).to_have_text(
        f"{site['run'].results['stages']['ingest']['detail']['crm_contacts']['rows_loaded']:,}"
    )
    page.screenshot(path=SHOTS / "sources_list.png", full_page=True)

    page.click("#add-source")
    expect(page).to_have_url(f"{url}/sources/new")
    # The kind's fields are swapped in by htmx, without reloading the page.
    page.select_option("#src-kind", "sql")
    expect(page.locator("#src-url")).to_be_visible()
    expect(page.locator("#src-path")).to_have_count(0)
    page.select_option("#src-kind", "csv")
    expect(page.locator("#src-path")).to_be_visible()

    page.fill("#src-name", "newsletter")
    page.fill("#src-description", "Newsletter sign-ups")
    page.fill("#src-path", "data/missing.csv")
    page.click("#test-connection")
    expect(page.locator("#test-error")).to_contain_text("file not found: data/missing.csv")

    page.fill("#src-path", "data/newsletter.csv")
    page.click("#test-connection")
    expect(page.locator("#test-ok")).to_contain_text("4 columns found")
    chips = page.locator("#test-columns .chip")
    expect(chips).to_have_text(["subscriber_id", "email", "signed_up", "opens"])
    expect(page.locator("#test-rows tbody tr")).to_have_count(5)
    page.fill("#src-table", "subscribers")
    page.fill("#src-primary-key", "subscriber_id")
    page.fill("#src-timestamp", "signed_up")
    page.screenshot(path=SHOTS / "sources_new.png", full_page=True)

    page.click("#save")
    expect(page).to_have_url(f"{url}/sources/newsletter/subscribers?saved=created")
    expect(page.locator("#saved")).to_be_visible()
    expect(page.locator("#not-loaded")).to_contain_text("Not loaded yet: run the project")
    source = next(s for s in load_project(site["project_file"]).sources if s.name == "newsletter")
    assert source.tables[0].primary_key == "subscriber_id"
    assert source.tables[0].timestamp_column == "signed_up"

    page.goto(f"{url}/sources/crm/contacts")
    expect(page.locator("#profile tbody tr")).to_have_count(12)
    charts = page.locator("canvas[data-src-histogram]")
    expect(charts).to_have_count(3)
    drawn = charts.evaluate_all("cs => cs.map(c => !!Chart.getChart(c))")
    assert drawn == [True, True, True]
    expect(page.locator("#quarantine-count")).to_have_text("4")
    page.screenshot(path=SHOTS / "source_detail.png", full_page=True)
    assert external == []


def test_viewer_is_refused_the_form(site, browser):
    from playwright.sync_api import expect

    page = _sign_in(browser, site["url"], "vic", "/sources")
    expect(page.locator("#sources tbody tr").first).to_be_visible()
    expect(page.locator("#add-source")).to_have_count(0)
    response = page.goto(f"{site['url']}/sources/new")
    assert response is not None and response.status == 403
    expect(page.locator("main")).to_contain_text("This page needs the administrator role")
