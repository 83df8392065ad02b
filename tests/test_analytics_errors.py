"""Every mistake in activities, relationships and measures gets a message that names its
place in the project file and, where it can, the closest valid name; nothing is published."""

from __future__ import annotations

import pytest
from analytics_helpers import ACTIVITIES, RELATIONSHIPS, shop_project

from audience.pipeline import run_pipeline
from audience.project import ProjectError
from audience.runs import Workspace


def fails_with(project, message: str) -> None:
    with pytest.raises(Exception) as info:
        run_pipeline(project)
    assert message in str(info.value), str(info.value)
    assert Workspace(project.workspace_path).current_id() is None


@pytest.mark.parametrize(
    ("measure", "message"),
    [
        (
            {"name": "m", "activity": "orders", "function": "sum", "of": "amont"},
            "measures[0].of: unknown field 'amont'; did you mean 'amount'?",
        ),
        (
            {"name": "m", "activity": "orders", "function": "sum", "of": "amount",
             "where": "stauts = 'x'"},
            "measures[0].where: unknown field 'stauts'; did you mean 'status'?",
        ),
        (
            {"name": "m", "activity": "orders", "function": "sum", "of": "amount",
             "where": "amount + 1"},
            "measures[0].where: expected a condition",
        ),
        (
            {"name": "m", "activity": "orders", "function": "sum", "of": "status"},
            "measures[0]: sum needs numbers",
        ),
        (
            {"name": "m", "activity": "lines", "function": "sum", "of": "value",
             "where": "order.stats = 'x'"},
            "did you mean 'order.status'?",
        ),
        (
            {"name": "m", "template": "total_transacton_value"},
            "measures[0].template: unknown template 'total_transacton_value'; did you mean "
            "'total_transaction_value'?",
        ),
        (
            {"name": "m", "activity": "orders", "function": "sum", "of": "lower(amount)"},
            "measures[0].of: lower",
        ),
        (
            {"name": "m", "activity": "orders", "function": "sum", "of": "lowr(status)"},
            "unknown function 'lowr'; did you mean 'lower'?",
        ),
        (
            {"name": "m", "expression": "nope * 2"},
            "measures[0].expression: unknown field 'nope'",
        ),
    ],
)  # fmt: skip
def test_measure_errors(tmp_path, measure, message):
    fails_with(shop_project(tmp_path, [measure]), message)


def test_templates_need_their_field(tmp_path):
    activities = [dict(a) for a in ACTIVITIES]
    activities[2] = {**activities[2], "fields": {"pts": "points"}}  # Loyalty without `points`
    project = shop_project(
        tmp_path, [{"name": "m", "template": "loyalty_points_balance"}], activities=activities
    )
    fails_with(project, "loyalty_points_balance reads the field 'points' of Loyalty activities")


def test_expression_measures_in_a_cycle(tmp_path):
    measures = [{"name": "a", "expression": "b + 1"}, {"name": "b", "expression": "a + 1"}]
    fails_with(shop_project(tmp_path, measures), "refer to each other in a cycle: a, b")


def test_measure_named_like_a_profile_field(tmp_path):
    measures = [{"name": "Email", "template": "number_of_transactions"}]
    segments = [{"name": "s", "rules": ["Email > 1"]}]
    fails_with(shop_project(tmp_path, measures, segments), "['Email'] are also profile fields")


def test_activity_without_a_path_to_its_customer(tmp_path):
    relationships = [r for r in RELATIONSHIPS if r["table"] != "shop.visits"]
    project = shop_project(tmp_path, relationships=relationships)
    fails_with(project, "activities[3].customer: no path from shop.visits to crm.contacts")


def test_activity_timestamp_must_be_a_time(tmp_path):
    activities = [dict(a) for a in ACTIVITIES]
    activities[0] = {**activities[0], "timestamp": "amount"}
    fails_with(
        shop_project(tmp_path, activities=activities),
        "activities[0].timestamp: expected a date or time, got float64 from 'amount'",
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"measures": [{"name": "m", "activity": "orders", "function": "sum", "of": "1 +"}]},
            "measures[0].of: unexpected end of expression",
        ),
        (
            {"measures": [{"name": "m", "activity": "orders", "function": "sum"}]},
            "function 'sum' needs 'of'",
        ),
        (
            {"measures": [{"name": "m", "template": "number_of_transactions",
                           "function": "count", "activity": "orders"}]},
            "give exactly one of 'template', 'function'",
        ),
        (
            {"measures": [{"name": "m", "table": "shop.ledger", "function": "count",
                           "window": {"last_days": 3}}]},
            "a 'window' needs activity rows",
        ),
        (
            {"measures": [{"name": "m", "activity": "orders", "function": "count",
                           "dimensions": ["channel"]}]},
            "use kind customer_measure or business_measure",
        ),
        (
            {"measures": [{"name": "m", "activity": "orders", "function": "argmax",
                           "of": "channel"}]},
            "function 'argmax' needs 'by'",
        ),
        (
            {"measures": [{"name": "m", "activity": "ordrs", "function": "count"}]},
            "measures[0].activity: no activity or activity type 'ordrs'",
        ),
        (
            {"measures": [{"name": "m", "activity": "orders", "function": "count",
                           "window": {"last_days": 3, "last_months": 1}}]},
            "give one of last_days, last_months or start/end",
        ),
        (
            {"activities": [{**ACTIVITIES[0], "customer": "shop.orders"}]},
            "activities[0].customer: 'shop.orders' is not a unified table",
        ),
        (
            {"relationships": [{**RELATIONSHIPS[0], "to": "crm.contact"}]},
            "relationships[0].to: no source table 'crm.contact'",
        ),
        (
            {"relationships": [RELATIONSHIPS[0], RELATIONSHIPS[0]]},
            "names used twice from one table: ['shop.orders: contact']",
        ),
        (
            {"segments": [{"name": "s", "rules": [{"all": ["ttv >"]}]}]},
            "unexpected end of expression",
        ),
    ],
)  # fmt: skip
def test_project_file_errors(tmp_path, settings, message):
    with pytest.raises(ProjectError) as info:
        shop_project(tmp_path, **settings)
    assert message in str(info.value), str(info.value)
