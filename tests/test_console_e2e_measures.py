"""The measure pages in a real browser (Debian's chromium, driven by Playwright) against the real
app served by uvicorn: the list, monthly_revenue's chart, the builder (an activity's fields
swapped in by htmx, a template's live preview, saving) and a viewer refused the builder.
Screenshots go to tests/screenshots/.
"""

from __future__ import annotations

import duckdb
from console_e2e import SHOTS, browser_fixture, needs_chromium, site_fixture
from console_helpers import PASSWORDS

from audience.console.pages_measures import value_text
from audience.project import load_project

pytestmark = needs_chromium
site = site_fixture("console_e2e_measures")
browser = browser_fixture()


def _sign_in(browser, site, user: str):
    page = browser.new_page(viewport={"width": 1366, "height": 768})  # a laptop screen
    page.goto(site["url"] + "/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(site["url"] + "/")
    return page


def test_list_chart_builder_and_save(site, browser):
    from playwright.sync_api import expect

    page = _sign_in(browser, site, "ada")
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(site["url"]) else external.append(r.url))
    url = site["url"]

    page.click("nav >> text=Measures")
    expect(page).to_have_url(f"{url}/measures")
    count = duckdb.sql(
        f"SELECT count(number_of_transactions) FROM "
        f"read_parquet('{site['run'].table_path('CustomerAttributes')}')"
    ).fetchone()[0]
    expect(page.locator("#measure-number_of_transactions .values")).to_have_text(value_text(count))
    page.screenshot(path=SHOTS / "measures_list.png", full_page=True)

    page.click("#measure-monthly_revenue a")
    expect(page).to_have_url(f"{url}/measures/monthly_revenue")
    chart = page.locator("canvas#measure-chart")
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("data-drawn", "1")  # Chart.js drew it
    assert (
        page.evaluate("Chart.getChart(document.getElementById('measure-chart')).config.type")
        == "line"
    )
    page.screenshot(path=SHOTS / "measure_detail.png", full_page=True)

    page.goto(f"{url}/measures")
    page.click("#new-measure")
    expect(page).to_have_url(f"{url}/measures/new")
    expect(page.locator("#preview-values")).to_be_visible()  # the first template, previewed

    # Your own measure: another activity's fields are swapped in, then previewed.
    page.check("#ms-mode-custom")
    page.select_option("#ms-activity", "order_lines")
    expect(page.locator("#ms-of option[value=category]")).to_have_count(1)
    page.select_option("#ms-of", "amount")
    expect(page.locator("#preview-words")).to_have_text("sum of amount over order_lines")

    # A template, over the last year.
    page.check("#ms-mode-template")
    page.check("input[name=template][value=number_of_transactions]")
    page.fill("#ms-name", "orders_last_year")
    page.select_option("#ms-window", "last_days")
    page.fill("#ms-window-n", "365")
    words = (
        "template number_of_transactions: number of orders (SalesOrder activities), last 365 days"
    )
    expect(page.locator("#preview-words")).to_have_text(words)
    expect(page.locator("#preview-values")).to_have_text(value_text(count))  # default 0: everyone
    expect(page.locator("canvas#preview-chart")).to_have_attribute("data-drawn", "1")
    page.screenshot(path=SHOTS / "measure_builder.png", full_page=True)

    page.click("#save")
    expect(page).to_have_url(f"{url}/measures/orders_last_year?saved=created")
    expect(page.locator("#saved")).to_contain_text("computed on the next run")
    saved = load_project(site["project_file"]).measures[-1]
    assert (saved.name, saved.template, saved.window.last_days) == (
        "orders_last_year",
        "number_of_transactions",
        365,
    )
    assert external == [], f"the console fetched from outside: {external}"
    page.close()


def test_viewer_is_refused_the_builder(site, browser):
    page = _sign_in(browser, site, "vic")
    response = page.goto(site["url"] + "/measures/new")
    assert response is not None and response.status == 403
    assert "contributor" in page.locator("main").inner_text()
    page.goto(site["url"] + "/measures")
    assert page.locator("#new-measure").count() == 0
    page.close()
