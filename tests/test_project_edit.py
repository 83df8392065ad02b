"""Editing audience.yaml from code: the change lands, everything else keeps its bytes
(comments, order, quoting, anchors), and a change that makes the project invalid writes
nothing."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from audience import project_edit
from audience.project import ProjectError, load_project
from audience.project_edit import ItemNotFound

DEMO = Path(__file__).resolve().parents[1] / "examples" / "retail" / "audience.yaml"

PROJECT = """\
# The shop, written by hand.
name: shop  # the project's name

sources:
  # The CRM: one table.
  - name: crm
    kind: csv
    tables:
      - name: contacts
        path: data/crm_contacts.csv   # exported nightly
        primary_key: contact_id

  # The web shop.
  - name: shop
    kind: csv
    tables:
      - {name: orders, path: data/shop_orders.csv, primary_key: order_id}
      - {name: visits, path: data/shop_visits.csv, primary_key: visit_id}

unify:
  tables:
    - table: crm.contacts
      fields: {email: Identity.Email}

relationships:
  - {name: contact, table: shop.orders, column: contact_id, to: crm.contacts}
  - {name: contact, table: shop.visits, column: contact_id, to: crm.contacts}

activities:
  - name: orders
    table: shop.orders
    type: SalesOrder
    customer: crm.contacts
    timestamp: order_ts
    fields: {amount: amount}

measures:
  # Money first.
  - name: ttv
    template: total_transaction_value   # all time
  # Then counts.
  - name: n_orders
    template: number_of_transactions
  - name: big_spend
    activity: orders
    function: sum
    of: amount
    where: 'amount > 100'

# Segments use the measures above.
segments:
  - name: big
    rules: ["ttv > 100"]
# end of file
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "audience.yaml"
    path.write_text(PROJECT, encoding="utf-8")
    return path


def lines_added_and_removed(before: str, after: str) -> tuple[list[str], list[str]]:
    import difflib

    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    added = [d[2:] for d in diff if d.startswith("+ ")]
    removed = [d[2:] for d in diff if d.startswith("- ")]
    return added, removed


def test_append_keeps_every_other_byte(project: Path):
    result = project_edit.upsert(
        project, "measures", {"name": "avg", "template": "average_transaction_value"}
    )
    text = project.read_text()
    assert result == "created"
    added, removed = lines_added_and_removed(PROJECT, text)
    assert removed == []
    assert added == ["  - name: avg", "    template: average_transaction_value"]
    # At the end of its section, above the comment that introduces the next one.
    assert text.index("template: average_transaction_value") < text.index("# Segments use")
    assert [m.name for m in load_project(project).measures] == [
        "ttv",
        "n_orders",
        "big_spend",
        "avg",
    ]


def test_replace_changes_only_what_changed(project: Path):
    result = project_edit.upsert(
        project,
        "measures",
        {"name": "ttv", "template": "number_of_transactions", "description": "Orders."},
    )
    added, removed = lines_added_and_removed(PROJECT, project.read_text())
    assert result == "updated"
    assert removed == ["    template: total_transaction_value   # all time"]
    # The end-of-line comment stays on its key; the new key comes after the old ones.
    assert added == [
        "    template: number_of_transactions    # all time",
        "    description: Orders.",
    ]
    assert load_project(project).measures[0].template == "number_of_transactions"


def test_dropping_a_key_and_keeping_quotes(project: Path):
    project_edit.upsert(
        project,
        "measures",
        {"name": "big_spend", "activity": "orders", "function": "sum", "of": "amount"},
    )
    added, removed = lines_added_and_removed(PROJECT, project.read_text())
    assert (added, removed) == ([], ["    where: 'amount > 100'"])
    project.write_text(PROJECT)
    project_edit.upsert(
        project,
        "measures",
        {"name": "big_spend", "activity": "orders", "function": "sum", "of": "amount",
         "where": "amount > 200"},
    )  # fmt: skip
    added, removed = lines_added_and_removed(PROJECT, project.read_text())
    assert (added, removed) == (["    where: 'amount > 200'"], ["    where: 'amount > 100'"])


def test_delete_takes_the_items_own_comment_only(project: Path):
    project_edit.delete(project, "measures", "ttv")
    added, removed = lines_added_and_removed(PROJECT, project.read_text())
    assert added == []
    assert removed == [
        "  # Money first.",
        "  - name: ttv",
        "    template: total_transaction_value   # all time",
    ]
    project.write_text(PROJECT)
    project_edit.delete(project, "measures", "big_spend")
    added, removed = lines_added_and_removed(PROJECT, project.read_text())
    assert added == []
    assert removed == [
        "  - name: big_spend",
        "    activity: orders",
        "    function: sum",
        "    of: amount",
        "    where: 'amount > 100'",
    ]
    assert "# Segments use the measures above." in project.read_text()


def test_delete_unknown_item(project: Path):
    with pytest.raises(ItemNotFound, match="measures: no item nope"):
        project_edit.delete(project, "measures", "nope")
    assert project.read_text() == PROJECT


def test_relationships_are_named_per_table(project: Path):
    project_edit.delete(project, "relationships", ("shop.visits", "contact"))
    relationships = load_project(project).relationships
    assert [(r.table, r.name) for r in relationships] == [("shop.orders", "contact")]
    project_edit.upsert(
        project,
        "relationships",
        {"name": "contact", "table": "shop.orders", "column": "contact_id", "to": "crm.contacts",
         "kind": "one_to_one"},
    )  # fmt: skip
    relationships = load_project(project).relationships
    assert [(r.table, r.name, r.kind) for r in relationships] == [
        ("shop.orders", "contact", "one_to_one")
    ]


def test_bad_edit_writes_nothing_and_names_the_path(project: Path):
    stat = project.stat()
    with pytest.raises(ProjectError) as bad_activity:
        project_edit.upsert(
            project, "measures", {"name": "m", "activity": "nope", "function": "count"}
        )
    assert any(
        "measures[3].activity: no activity or activity type 'nope'" in p
        for p in bad_activity.value.problems
    )
    with pytest.raises(ProjectError) as bad_expression:
        project_edit.upsert(
            project,
            "measures",
            {"name": "m", "activity": "orders", "function": "sum", "of": "amount +"},
        )
    assert bad_expression.value.problems[0].startswith("measures[3].of: ")
    with pytest.raises(ProjectError) as in_use:
        project_edit.delete(project, "sources", "shop")  # relationships still use it
    assert "relationships[0].table: no source table 'shop.orders'" in in_use.value.problems[0]
    assert project.read_bytes() == PROJECT.encode()
    assert project.stat().st_mtime_ns == stat.st_mtime_ns
    assert [p.name for p in project.parent.iterdir()] == ["audience.yaml"]  # no temp files


def test_set_path_nested_and_new_keys(project: Path):
    project_edit.set_path(project, ["unify", "tables", 0, "fields", "email"], "Identity.Email")
    assert project.read_text() == PROJECT  # the same value: nothing changes
    project_edit.set_path(
        project,
        ["unify", "tables", 0, "fields"],
        {"email": "Identity.Email", "first_name": "Person.FirstName"},
    )
    project_edit.set_path(project, ["schedule"], {"cron": "*/5 * * * *", "timezone": "UTC"})
    added, removed = lines_added_and_removed(PROJECT, project.read_text())
    assert removed == ["      fields: {email: Identity.Email}"]
    assert added == [
        "      fields: {email: Identity.Email, first_name: Person.FirstName}",
        "schedule:",
        "  cron: '*/5 * * * *'",
        "  timezone: UTC",
    ]
    loaded = load_project(project)
    assert loaded.schedule is not None and loaded.schedule.cron == "*/5 * * * *"
    assert loaded.unify is not None and loaded.unify.tables[0].fields["first_name"]
    with pytest.raises(ItemNotFound, match=r"no unify\.match in"):
        project_edit.set_path(project, ["unify", "match", 3, "rules"], [])
    with pytest.raises(ProjectError, match="schedule.cron"):
        project_edit.set_path(project, ["schedule", "cron"], "every day")
    project_edit.remove_path(project, ["schedule"])
    assert load_project(project).schedule is None
    with pytest.raises(ItemNotFound):
        project_edit.remove_path(project, ["schedule"])


def test_demo_file_anchors_survive(tmp_path: Path):
    path = tmp_path / "audience.yaml"
    shutil.copy(DEMO, path)
    original = path.read_text()
    unify = project_edit.get_path(path, ["unify"])
    project_edit.set_path(path, ["unify"], unify)
    assert path.read_text() == original  # nothing changed, not even the wrapped lines

    unify["tables"][0]["dedup"]["winner"] = "most_filled"
    project_edit.set_path(path, ["unify"], unify)
    added, removed = lines_added_and_removed(original, path.read_text())
    assert (added, removed) == (["        winner: most_filled"], ["        winner: most_recent"])
    text = path.read_text()
    assert text.count("&person_rules") == 1 and text.count("*person_rules") == 5


def test_changing_through_an_alias_changes_only_that_place(tmp_path: Path):
    path = tmp_path / "audience.yaml"
    shutil.copy(DEMO, path)
    project_edit.set_path(path, ["unify", "match", 1, "rules", 0, "name"], "by_email")
    project = load_project(path)
    assert project.unify is not None
    names = [[r.name for r in pair.rules][0] for pair in project.unify.match]
    assert names == ["email", "by_email", "email"]
    assert project.unify.tables[0].dedup is not None
    assert project.unify.tables[0].dedup.rules[0].name == "email"
    text = path.read_text()
    assert "rules: &person_rules" in text and text.count("*person_rules") == 4


def test_json_project_stays_json(tmp_path: Path):
    from analytics_helpers import shop_project

    shop_project(tmp_path, [{"name": "ttv", "template": "total_transaction_value"}])
    path = tmp_path / "audience.yaml"
    project_edit.upsert(path, "segments", {"name": "big", "rules": ["ttv > 100"]})
    import json

    data = json.loads(path.read_text())
    assert data["segments"] == [{"name": "big", "rules": ["ttv > 100"]}]
    assert [s.name for s in load_project(path).segments] == ["big"]


def test_concurrent_edits_are_all_kept(project: Path):
    def add(i: int) -> None:
        project_edit.upsert(
            project, "measures", {"name": f"m{i}", "template": "number_of_transactions"}
        )

    threads = [threading.Thread(target=add, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = {m.name for m in load_project(project).measures}
    assert {f"m{i}" for i in range(6)} <= names


def test_bad_input_shapes(project: Path):
    with pytest.raises(ProjectError, match="needs 'name'"):
        project_edit.upsert(project, "measures", {"template": "number_of_transactions"})
    with pytest.raises(ValueError, match="not a list section"):
        project_edit.upsert(project, "unify", {"name": "x"})
    with pytest.raises(ProjectError, match="not valid Unicode"):
        project_edit.upsert(project, "measures", {"name": "x", "description": "\ud800"})
    assert project.read_text() == PROJECT
