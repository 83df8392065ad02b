"""Activities and measures on the hand-made shop (tests/analytics_helpers.py).

Every expected value is worked out by hand from the rows there; the reference time is
2026-01-31 00:00.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from analytics_helpers import AS_OF, shop_project
from unify_helpers import rows, run

MEASURES = [
    # the twelve templates
    {"name": "atv", "template": "average_transaction_value"},
    {"name": "ttv", "template": "total_transaction_value"},
    {"name": "daily", "template": "average_daily_revenue"},
    {"name": "monthly", "template": "average_monthly_revenue"},
    {"name": "yearly", "template": "average_yearly_revenue"},
    {"name": "n_orders", "template": "number_of_transactions"},
    {"name": "earned", "template": "loyalty_points_earned"},
    {"name": "redeemed", "template": "loyalty_points_redeemed"},
    {"name": "balance", "template": "loyalty_points_balance"},
    {"name": "member_days", "template": "membership_duration"},
    {"name": "lifespan", "template": "active_lifespan"},
    {"name": "recency", "template": "time_since_last_purchase"},
    {"name": "ttv_30d", "template": "total_transaction_value", "window": {"last_days": 30}},
    {"name": "daily_30d", "template": "average_daily_revenue", "window": {"last_days": 30}},
    # the ten functions
    {"name": "f_sum", "activity": "orders", "function": "sum", "of": "amount"},
    {"name": "f_avg", "activity": "orders", "function": "average", "of": "amount"},
    {"name": "f_count", "activity": "orders", "function": "count"},
    {"name": "f_count_of", "activity": "orders", "function": "count", "of": "amount"},
    {"name": "f_distinct", "activity": "lines", "function": "count_distinct", "of": "category"},
    {"name": "f_min", "activity": "orders", "function": "min", "of": "amount"},
    {"name": "f_max", "activity": "orders", "function": "max", "of": "amount"},
    {"name": "f_first", "activity": "orders", "function": "first", "of": "channel"},
    {"name": "f_last", "activity": "orders", "function": "last", "of": "channel"},
    {
        "name": "f_argmax",
        "activity": "lines",
        "function": "argmax",
        "of": "category",
        "by": "value",
    },
    {
        "name": "f_argmin",
        "activity": "lines",
        "function": "argmin",
        "of": "category",
        "by": "value",
    },
    # windows, filters, paths, null replacement, arithmetic, type rows, table rows
    {
        "name": "w_days",
        "activity": "orders",
        "function": "sum",
        "of": "amount",
        "window": {"last_days": 30},
    },
    {
        "name": "w_months",
        "activity": "orders",
        "function": "sum",
        "of": "amount",
        "window": {"last_months": 1},
    },
    {
        "name": "w_fixed",
        "activity": "orders",
        "function": "sum",
        "of": "amount",
        "window": {"start": "2025-01-01", "end": "2025-12-31"},
    },
    {
        "name": "returned",
        "activity": "orders",
        "function": "count",
        "where": "status = 'returned'",
        "default": 0,
    },
    {
        "name": "completed_line_value",
        "activity": "lines",
        "function": "sum",
        "of": "value",
        "where": "order.status = 'completed'",
    },
    {
        "name": "avg_or_zero",
        "activity": "orders",
        "function": "average",
        "of": "amount",
        "default": 0,
    },
    {"name": "by_type", "activity": "SalesOrder", "function": "max", "of": "amount"},
    {"name": "ledger_rows", "table": "shop.ledger", "function": "count"},
    {"name": "per_order", "expression": "ttv / n_orders"},
    {"name": "per_order_pct", "expression": "round(per_order / 10, 1)", "default": -1},
    # customer and business measures
    {
        "name": "by_category",
        "kind": "customer_measure",
        "activity": "lines",
        "function": "sum",
        "of": "value",
        "dimensions": ["category"],
    },
    {
        "name": "by_channel",
        "kind": "business_measure",
        "activity": "orders",
        "function": "sum",
        "of": "amount",
        "dimensions": ["channel"],
    },
    {
        "name": "by_month",
        "kind": "business_measure",
        "activity": "orders",
        "function": "count",
        "dimensions": [{"month": "year(ActivityTimeStamp) * 100 + month(ActivityTimeStamp)"}],
    },
    {
        "name": "revenue",
        "kind": "business_measure",
        "activity": "orders",
        "function": "sum",
        "of": "amount",
    },
]


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory):
    project = shop_project(tmp_path_factory.mktemp("shop"), MEASURES)
    return run(project)


@pytest.fixture(scope="module")
def values(shop_run):
    """Measure values by contact id ('C1') -> {measure: value}."""
    keys = {r["CustomerId"]: r["AlternateValue"] for r in rows(shop_run, "AlternateKey")}
    return {keys[r["CustomerId"]]: r for r in rows(shop_run, "CustomerAttributes")}


def test_activities_resolve_customers_and_keep_the_rest_aside(shop_run):
    orders = rows(shop_run, "Activity_orders", "ActivityId")
    assert [r["SourceActivityId"] for r in orders] == ["1", "2", "3", "4", "5"]  # 8 cancelled
    unresolved = {r["SourceActivityId"]: r["Reason"] for r in rows(shop_run, "ActivityUnresolved")}
    assert unresolved == {
        "6": "no crm.contacts row with contact_id = C9",
        "7": "empty contact_id",
    }
    detail = shop_run.results["stages"]["activities"]["detail"]["orders"]
    assert (detail["resolved"], detail["unresolved"]) == (5, 2)


def test_unified_activity_has_the_seed_columns(shop_run):
    unified = {r["ActivityId"]: r for r in rows(shop_run, "UnifiedActivity")}
    assert len(unified) == 5 + 5 + 4 + 6
    order = unified["orders|1"]
    assert list(order) == [
        "CustomerId", "ActivityId", "SourceEntityName", "SourceActivityId", "ActivityType",
        "ActivityTimeStamp", "Title", "Description", "URL", "SemanticData", "RangeIndex",
        "UnifiedActivityId",
    ]  # fmt: skip
    assert order["ActivityType"] == "SalesOrder"
    assert order["SourceEntityName"] == "shop.orders"
    assert order["Title"] == "Order 1"
    assert order["RangeIndex"] == "1769767200"  # 2026-01-30 10:00 UTC
    assert json.loads(order["SemanticData"]) == {
        "amount": 100.0, "channel": "web", "status": "completed"
    }  # fmt: skip
    line = unified["lines|2"]  # its time comes from its order, through the relationship
    assert line["ActivityTimeStamp"].isoformat() == "2026-01-30T10:00:00"
    assert json.loads(line["SemanticData"]) == {"category": "Bags", "value": 40.0}
    assert unified["visits|3"]["URL"] == "https://shop.example/v/3"
    import uuid

    from audience.unify.ids import NAMESPACE

    assert order["UnifiedActivityId"] == str(uuid.uuid5(NAMESPACE, "orders|1"))


def test_templates(values):
    c1, c2, c3 = values["C1"], values["C2"], values["C3"]
    assert (c1["ttv"], c1["n_orders"], c1["atv"]) == (180, 3, 60)
    assert (c2["ttv"], c2["n_orders"], c2["atv"]) == (200, 2, 200)  # a null amount is skipped
    assert (c3["ttv"], c3["n_orders"], c3["atv"]) == (0, 0, None)  # only a cancelled order
    days = (AS_OF.date() - date(2025, 1, 31)).days + 1  # from C1's first order, inclusive
    assert c1["daily"] == pytest.approx(180 / days)
    assert c1["monthly"] == pytest.approx(180 / (days / 30.4375))
    assert c1["yearly"] == pytest.approx(180 / (days / 365.25))
    assert (c1["earned"], c1["redeemed"], c1["balance"]) == (400, 250, 150)
    assert (c2["earned"], c2["redeemed"], c2["balance"]) == (50, 0, 50)
    assert (c3["earned"], c3["redeemed"], c3["balance"]) == (0, 0, 0)
    assert c1["member_days"] == (AS_OF.date() - date(2025, 6, 1)).days
    assert c3["member_days"] is None
    assert c1["lifespan"] == (date(2026, 1, 30) - date(2025, 1, 31)).days
    assert c2["lifespan"] == 10
    assert (c1["recency"], c2["recency"], c3["recency"]) == (1, 11, None)
    assert (c1["ttv_30d"], c2["ttv_30d"]) == (100, 200)
    assert c1["daily_30d"] == pytest.approx(100 / 30)


def test_functions(values):
    c1, c2 = values["C1"], values["C2"]
    assert (c1["f_sum"], c1["f_avg"], c1["f_count"], c1["f_count_of"]) == (180, 60, 3, 3)
    assert (c2["f_count"], c2["f_count_of"]) == (2, 1)  # count of a value skips nulls
    assert (c1["f_distinct"], c2["f_distinct"]) == (2, 1)
    assert (c1["f_min"], c1["f_max"]) == (30, 100)
    assert (c1["f_first"], c1["f_last"]) == ("web", "web")  # orders 3 and 1 by time
    assert (c1["f_argmax"], c1["f_argmin"]) == ("Shoes", "Bags")  # 60 and 30
    assert values["C3"]["f_sum"] is None  # no replacement asked for


def test_windows_filters_paths_and_arithmetic(values):
    c1, c2, c3 = values["C1"], values["C2"], values["C3"]
    assert c1["w_days"] == 100  # order 2 (Dec 31, 10:00) is 30 days and 14 hours back
    assert c1["w_months"] == 150  # one calendar month back is Dec 31, 00:00
    assert c1["w_fixed"] == 80  # orders 2 and 3 fall in 2025
    assert (c1["returned"], c3["returned"]) == (1, 0)
    assert c1["completed_line_value"] == 150  # lines of orders 1 and 2, not of returned 3
    assert (c1["avg_or_zero"], c3["avg_or_zero"]) == (60, 0)
    assert c2["by_type"] == 200
    assert (c1["ledger_rows"], c2["ledger_rows"], c3["ledger_rows"]) == (3, 1, None)
    assert (c1["per_order"], c2["per_order"], c3["per_order"]) == (60, 100, None)
    assert (c1["per_order_pct"], c3["per_order_pct"]) == (6.0, -1)


def test_customer_measure_json(shop_run, values):
    measures = {r["CustomerId"]: r for r in rows(shop_run, "CustomerMeasure")}
    c1 = values["C1"]["CustomerId"]
    record = measures[c1]
    assert record["Identifier"] == f"Customer_Measure|{c1}"
    parsed = json.loads(record["Measures"])
    assert parsed["ttv"] == 180 and parsed["f_first"] == "web" and parsed["atv"] == 60
    assert list(parsed) == [m["name"] for m in MEASURES if m.get("kind") is None]
    assert len(measures) == 4  # every customer, with or without activity


def test_dimensional_measures(shop_run, values):
    by_category = {
        (r["CustomerId"], r["category"]): r["by_category"]
        for r in rows(shop_run, "Measure_by_category")
    }
    c1, c2 = values["C1"]["CustomerId"], values["C2"]["CustomerId"]
    assert by_category == {(c1, "Shoes"): 110, (c1, "Bags"): 70, (c2, "Hats"): 200}
    by_channel = {r["channel"]: r["by_channel"] for r in rows(shop_run, "Measure_by_channel")}
    assert by_channel == {"web": 330, "app": 50}
    by_month = {r["month"]: r["by_month"] for r in rows(shop_run, "Measure_by_month")}
    assert by_month == {202501: 1, 202512: 1, 202601: 3}
    assert [r["revenue"] for r in rows(shop_run, "Measure_revenue")] == [380]
