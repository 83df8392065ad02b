"""The unify pages in a real browser (Debian's chromium, driven by Playwright) against the real
app served by uvicorn: the overview with its chart, accepting a suggested mapping, a new rule
previewed and saved, explaining a customer, and a viewer refused a write page. Screenshots go
to tests/screenshots/unify_*.png.
"""

from __future__ import annotations

from console_e2e import SHOTS, browser_fixture, needs_chromium, site_fixture
from console_helpers import PASSWORDS

from audience import project_edit
from audience.project import load_project

LOYALTY = 2  # unify.tables[2] of the demo: loyalty.members


def _unmap_a_column(data: dict) -> None:
    # The demo maps every column `audience suggest` proposes; unmap one so there is a
    # suggestion to accept.
    project_edit.remove_path(data["project_file"], ["unify", "tables", LOYALTY, "fields", "tel"])


pytestmark = needs_chromium
site = site_fixture("console_e2e_unify", _unmap_a_column)
browser = browser_fixture()


def _sign_in(browser, url: str, user: str):
    page = browser.new_page(viewport={"width": 1366, "height": 768})  # a laptop screen
    page.goto(url + "/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    return page


def test_overview_mapping_rule_preview_and_explain(site, browser):
    from playwright.sync_api import expect

    url = site["url"]
    page = _sign_in(browser, url, "ada")
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(url) else external.append(r.url))

    page.click("header nav >> text=Unify")
    expect(page).to_have_url(f"{url}/unify")
    expect(page.locator("#stat-customers")).not_to_have_text("0")
    expect(page.locator("#tables tr[id='table-crm.contacts']")).to_be_visible()
    # Chart.js drew the histogram (a canvas with pixels is taller than its empty default).
    page.wait_for_function("document.querySelector('#cluster-chart').height > 0")
    page.screenshot(path=SHOTS / "unify_overview.png", full_page=True)

    page.click(".un-tabs >> text=Mapping")
    expect(page).to_have_url(f"{url}/unify/mapping")
    row = page.locator("#column-2-tel")
    expect(row.locator(".suggestion")).to_have_text("Identity.Phone")  # loaded by htmx
    expect(row.locator(".mapped")).to_have_text("—")
    row.scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "unify_mapping.png")
    row.locator("button.un-accept").click()
    expect(page.locator("#column-2-tel .mapped")).to_have_text("Identity.Phone")
    expect(page.locator("#column-2-tel .un-saved")).to_be_visible()
    fields = load_project(site["project_file"]).unify.tables[LOYALTY].fields
    assert fields["tel"] == "Identity.Phone"

    page.click(".un-tabs >> text=Match rules")
    expect(page).to_have_url(f"{url}/unify/rules")
    form = page.locator("#rule-form")
    form.locator("select[name=target]").select_option(label="shop.accounts against crm.contacts")
    form.locator("#rule-name").fill("email_and_last_name")
    conditions = form.locator("#conditions .un-condition")
    conditions.nth(0).locator("select[name=field]").select_option("Identity.Email")
    conditions.nth(1).locator("select[name=field]").select_option("Person.FirstName")
    conditions.nth(1).locator("select[name=precision]").select_option("high")
    conditions.nth(1).locator("select[name=method]").select_option("jaro_winkler")
    form.locator("#add-condition").click()
    expect(conditions).to_have_count(3)
    conditions.nth(2).locator("select[name=field]").select_option("Person.LastName")
    form.locator("#preview-rule").click()
    expect(page.locator("#preview-pairs")).to_be_visible()
    assert int(page.locator("#preview-pairs").inner_text().replace(",", "")) > 0
    expect(page.locator("#preview-rows tbody.un-pair").first).to_be_visible()
    expect(page.locator("#preview-rows .condition-score").first).to_have_text("1.000")
    page.locator("#preview").scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "unify_rule_preview.png")

    form.locator("#save-rule").click()
    expect(page.locator("#saved")).to_contain_text("email_and_last_name")
    expect(page.locator("[id='rule-match-0-6']")).to_have_attribute(
        "data-name", "email_and_last_name"
    )
    rule = load_project(site["project_file"]).unify.match[0].rules[-1]
    assert rule.name == "email_and_last_name" and len(rule.conditions) == 3

    page.click(".un-tabs >> text=Explain a customer")
    page.fill("input[name=customer]", site["customer"]["CustomerId"])
    page.press("input[name=customer]", "Enter")
    records = page.locator("#records th.record")
    expect(records).to_have_count(len(site["customer"]["keys"]))
    for source in ("crm", "shop", "loyalty"):
        expect(records.filter(has_text=f"{source}|")).not_to_have_count(0)
    expect(page.locator(".un-link").first).to_be_visible()
    page.screenshot(path=SHOTS / "unify_explain.png", full_page=True)
    assert external == []  # everything is served by the app itself
    page.close()


def test_viewer_gets_403_on_a_write_page(site, browser):
    from playwright.sync_api import expect

    url = site["url"]
    page = _sign_in(browser, url, "vic")
    page.goto(url + "/unify/rules")
    expect(page.locator("#rule-form")).to_have_count(0)
    expect(page.locator(".un-tabs >> text=Dry run")).to_have_count(0)
    response = page.goto(url + "/unify/dry-run")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator("main")).to_contain_text("administrator")
    page.close()
