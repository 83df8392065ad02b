"""The console in a real browser (Debian's chromium, driven by Playwright) against the real
app served by uvicorn on a free port: sign in, home, search by e-mail, the customer card with
records from three sources, the timeline's type filter. Screenshots go to tests/screenshots/.
"""

from __future__ import annotations

from console_e2e import SHOTS, browser_fixture, needs_chromium, site_fixture
from console_helpers import PASSWORDS

pytestmark = needs_chromium
site = site_fixture("console_e2e")
browser = browser_fixture()


def test_sign_in_search_card_and_timeline_filter(site, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1366, "height": 768})  # a laptop screen
    external: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith(site["url"]) else external.append(r.url),
    )
    url = site["url"]

    page.goto(url + "/")
    expect(page).to_have_url(f"{url}/login?next=/")
    page.screenshot(path=SHOTS / "login.png")
    page.fill("#username", "ada")
    page.fill("#password", PASSWORDS["ada"])
    page.click("button[type=submit]")

    expect(page).to_have_url(f"{url}/")
    expect(page.locator("#who")).to_contain_text("ada")
    expect(page.locator(f"[id='run-{site['run'].id}']")).to_contain_text("succeeded")
    page.screenshot(path=SHOTS / "home.png", full_page=True)

    page.click("nav >> text=Customers")
    page.fill("input[name=q]", site["email"])
    page.press("input[name=q]", "Enter")
    customer = site["customer"]
    link = page.locator(f"#results a[href='/customers/{customer['CustomerId']}']")
    expect(link).to_have_count(1)
    page.screenshot(path=SHOTS / "customers.png")

    link.click()
    keys = page.locator("#sources tr.source-key")
    for source in ("crm", "shop", "loyalty"):
        key = next(k for k in customer["keys"] if k["source"] == source)
        expect(keys.filter(has_text=source).filter(has_text=key["key"])).to_have_count(1)
    expect(page.locator("#profile")).to_contain_text(site["email"])
    expect(page.locator("#segments")).to_contain_text(customer["segments"][0])
    page.screenshot(path=SHOTS / "customer.png", full_page=True)

    rows = page.locator("#timeline tr.activity")
    types = set(rows.evaluate_all("rows => rows.map(r => r.dataset.type)"))
    assert len(types) > 1, types
    chosen = sorted(types)[0]
    # htmx swaps the filtered timeline in without reloading the page.
    page.check(f"#timeline input[value='{chosen}']")
    expect(page.locator(f"#timeline tr.activity:not([data-type='{chosen}'])")).to_have_count(0)
    expect(page.locator(f"#timeline tr.activity[data-type='{chosen}']").first).to_be_visible()
    page.screenshot(path=SHOTS / "customer-timeline-filtered.png", full_page=True)

    page.click("text=Sign out")
    expect(page).to_have_url(f"{url}/login")
    assert external == [], f"the console fetched from outside: {external}"
