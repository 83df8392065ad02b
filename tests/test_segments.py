"""Segments on the hand-made shop (tests/analytics_helpers.py): rule forms, set operations,
static and dynamic refresh, history, membership output, overlap, quick segments, errors."""

from __future__ import annotations

import json

import pytest
from analytics_helpers import AS_OF, ORDERS, shop_project
from unify_helpers import rows, run, write_data

from audience.analytics.overlap import overlap
from audience.analytics.paths import AnalyticsError
from audience.analytics.stage import open_segments, refresh_static
from audience.engine import Engine
from audience.project import ProjectError
from audience.runs import Workspace

MEASURES = [
    {"name": "ttv", "template": "total_transaction_value"},
    {"name": "atv", "template": "average_transaction_value"},
    {"name": "earned", "template": "loyalty_points_earned"},
    {"name": "balance", "template": "loyalty_points_balance"},
]
SEGMENTS = [
    {"name": "big", "rules": ["ttv > 100"]},
    {
        "name": "shoes_30d",
        "rules": [
            {"activity": "lines", "where": "category = 'Shoes'", "within": {"last_days": 30}}
        ],
    },
    {
        "name": "frequent",
        "rules": [{"activity": "visits", "within": {"last_days": 30}, "count": "> 3"}],
    },
    {"name": "never_ordered", "rules": [{"activity": "SalesOrder", "count": "= 0"}]},
    {"name": "big_no_shoes", "rules": ["ttv > 100", {"segment": "shoes_30d"}], "combine": "except"},
    {
        "name": "big_visitors",
        "rules": ["ttv > 100", {"activity": "visits"}],
        "combine": "intersect",
    },
    {
        "name": "nested",
        "rules": [
            {
                "any": [
                    {"all": ["balance > 100", "earned >= 400"]},
                    {"not": {"segment": "big"}},
                ]
            }
        ],
    },
    {"name": "avg_known", "rules": ["atv > 10"]},
    {"name": "avg_not_above", "rules": [{"not": "atv > 10"}]},
    {"name": "no_email", "rules": ["Email is null"]},
    {"name": "ann_or_bob", "rules": ["FirstName = 'Ann'", "FirstName = 'Bob'"]},
    {"name": "tree", "rules": [{"op": ">", "args": [{"field": "ttv"}, {"value": 150}]}]},
    {"name": "static_big", "kind": "static", "rules": ["ttv > 150"]},
]
EXPECTED = {
    "big": {"C1", "C2"},
    "shoes_30d": {"C1"},
    "frequent": {"C1"},
    "never_ordered": {"C3", "C4"},  # C3's only order was cancelled
    "big_no_shoes": {"C2"},
    "big_visitors": {"C1", "C2"},
    "nested": {"C1", "C3", "C4"},
    "avg_known": {"C1", "C2"},
    "avg_not_above": {"C3", "C4"},  # unknown counts as false, and not(false) is true
    "no_email": {"C4"},
    "ann_or_bob": {"C1", "C2"},
    "tree": {"C1", "C2"},
    "static_big": {"C1", "C2"},
}


def members(shop_run) -> dict[str, set[str]]:
    keys = {r["CustomerId"]: r["AlternateValue"] for r in rows(shop_run, "AlternateKey")}
    out: dict[str, set[str]] = {}
    for r in rows(shop_run, "SegmentMembers"):
        out.setdefault(r["Segment"], set()).add(keys[r["CustomerId"]])
    return out


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("segments")
    project = shop_project(root, MEASURES, SEGMENTS)
    return project, run(project)


def test_every_rule_form(shop):
    _project, first = shop
    found = members(first)
    for name, expected in EXPECTED.items():
        assert found.get(name, set()) == expected, name


def test_segment_membership_output(shop):
    _project, first = shop
    keys = {r["AlternateValue"]: r["CustomerId"] for r in rows(first, "AlternateKey")}
    membership = {r["CustomerId"]: r for r in rows(first, "SegmentMembership")}
    c4 = membership[keys["C4"]]
    assert json.loads(c4["Segments"]) == [
        "avg_not_above", "nested", "never_ordered", "no_email"
    ]  # fmt: skip
    assert c4["SegmentProvider"] == "Audience" and c4["SegmentMembershipType"] == "Customer"
    assert c4["Identifier"] == f"{keys['C4']}|Audience|Customer|test"
    assert first.results["stages"]["segments"]["detail"]["sizes"]["big"] == 2


def test_static_segments_keep_members_until_refreshed_and_history_grows(shop):
    project, first = shop
    # C3 now spends 500: the dynamic segment follows at once, the static one does not.
    changed = [*ORDERS, {**ORDERS[0], "order_id": 9, "contact_id": "C3", "amount": "500.00"}]
    write_data(project.root, {"shop_orders": changed})
    second = run(project)
    found = members(second)
    assert found["big"] == {"C1", "C2", "C3"}
    assert found["static_big"] == {"C1", "C2"}
    history = rows(second, "SegmentHistory", "RunId, Segment")
    sizes = {(h["RunId"], h["Segment"]): h["Size"] for h in history}
    assert sizes[(first.id, "big")] == 2 and sizes[(second.id, "big")] == 3
    assert sizes[(second.id, "static_big")] == 2
    assert {h["Kind"] for h in history if h["Segment"] == "static_big"} == {"static"}

    with Engine.connect(project) as engine:
        refreshed = refresh_static(project, engine, ["static_big"], AS_OF)
    assert refreshed == {"static_big": 3}
    third = run(project)
    assert members(third)["static_big"] == {"C1", "C2", "C3"}


def test_quick_segment_and_overlap(shop):
    project, _first = shop
    current = Workspace(project.workspace_path).current()
    with Engine.connect(project) as engine:
        builder = open_segments(project, engine, current, AS_OF)
        quick = builder.quick("ttv > 100 and FirstName != 'Bob'")
        assert quick.count().to_pyarrow().as_py() >= 1
        names = set(quick.FirstName.to_pyarrow().to_pylist())
        assert "Bob" not in names and "Ann" in names
        result = overlap(builder, "big", "frequent")
        assert result["sizes"]["both"] == 1 and result["sizes"]["b_only"] == 0
        result = overlap(builder, "big", "never_ordered")
        assert result["sizes"]["both"] == 0
        top = result["differences"][0]
        assert top["field"] in {"ttv", "atv"}
        assert top["a"] > top["b"]


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ({"name": "s", "rules": ["ttvv > 1"]}, "unknown field 'ttvv'; did you mean 'ttv'?"),
        ({"name": "s", "rules": ["ttv + 1"]}, "expected a condition"),
        ({"name": "s", "rules": [{"segment": "bgi"}]}, "no segment 'bgi'; did you mean 'big'?"),
        ({"name": "s", "rules": [{"activity": "vists"}]}, "no activity or activity type 'vists'"),
        (
            {"name": "s", "rules": [{"activity": "lines", "where": "categroy = 'x'"}]},
            "segments[1].rules[0].where: unknown field 'categroy'; did you mean 'category'?",
        ),
    ],
)
def test_segment_errors_name_the_place(tmp_path, segment, message):
    project = shop_project(tmp_path, MEASURES, [{"name": "big", "rules": ["ttv > 100"]}, segment])
    from audience.pipeline import run_pipeline

    with pytest.raises(Exception) as info:
        run_pipeline(project)
    assert message in str(info.value)
    assert Workspace(project.workspace_path).current_id() is None  # nothing published


def test_segment_cycles_and_bad_counts_are_rejected(tmp_path):
    cyclic = [
        {"name": "a", "rules": [{"segment": "b"}]},
        {"name": "b", "rules": [{"segment": "a"}]},
    ]
    project = shop_project(tmp_path, MEASURES, cyclic)
    from audience.pipeline import run_pipeline

    with pytest.raises(AnalyticsError, match="cycle: a, b"):
        run_pipeline(project)
    with pytest.raises(ProjectError, match="count"):
        shop_project(
            tmp_path, MEASURES, [{"name": "x", "rules": [{"activity": "visits", "count": "many"}]}]
        )
    with pytest.raises(ProjectError, match="except needs at least two rules"):
        shop_project(tmp_path, MEASURES, [{"name": "x", "rules": ["ttv > 1"], "combine": "except"}])
