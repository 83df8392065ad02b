"""The twelve ready-made measures over activities, usable by name (`template: ...`).

Each reads the rows of one activity type and one semantic field, and is an aggregate per
customer. Definitions (`now` is the run's reference time, `days` the days the window covers:
its length for `last_days`/`last_months`/`start`-`end`, or, over all time, from the customer's
first transaction to now, at least 1):

| template | type | value |
|---|---|---|
| average_transaction_value | SalesOrder | average `amount` |
| total_transaction_value | SalesOrder | sum of `amount` (0 without orders) |
| average_daily_revenue | SalesOrder | sum of `amount` / days |
| average_monthly_revenue | SalesOrder | sum of `amount` / (days / 30.4375) |
| average_yearly_revenue | SalesOrder | sum of `amount` / (days / 365.25) |
| number_of_transactions | SalesOrder | count (0 without orders) |
| loyalty_points_earned | Loyalty | sum of positive `points` |
| loyalty_points_redeemed | Loyalty | minus the sum of negative `points` |
| loyalty_points_balance | Loyalty | sum of `points` |
| membership_duration | Loyalty | days from the first loyalty activity to now |
| active_lifespan | SalesOrder | days from the first to the last transaction |
| time_since_last_purchase | SalesOrder | days from the last transaction to now |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import ibis

from audience.analytics.config import Window

DAYS_PER_MONTH = 30.4375
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class Template:
    activity_type: str
    field: str | None  # the semantic field it reads
    aggregate: Callable[[ibis.Table, datetime, Window | None], ibis.Value]
    default: float | int | None
    description: str


def _days_covered(rows: ibis.Table, now: datetime, window: Window | None) -> ibis.Value:
    fixed = window_days(window, now)
    if fixed is not None:
        return ibis.literal(float(fixed))
    first = rows.ActivityTimeStamp.min().date()
    return ibis.greatest(ibis.literal(now.date()).delta(first, unit="day") + 1, 1).cast("float64")


def window_days(window: Window | None, now: datetime) -> int | None:
    """Days a window covers, or None for all time (then it depends on the customer)."""
    if window is None:
        return None
    if window.last_days:
        return window.last_days
    if window.last_months:
        return (now.date() - months_before(now, window.last_months).date()).days
    if window.start or window.end:
        start = window.start or date(1970, 1, 1)
        return ((window.end or now.date()) - start).days + 1
    return None


def months_before(now: datetime, months: int) -> datetime:
    """The same day `months` calendar months earlier (the month's last day if shorter)."""
    import calendar

    year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


def _revenue_per(unit_days: float) -> Callable[[ibis.Table, datetime, Window | None], ibis.Value]:
    def aggregate(rows: ibis.Table, now: datetime, window: Window | None) -> ibis.Value:
        return rows.amount.sum() / (_days_covered(rows, now, window) / unit_days)

    return aggregate


def _days_since(
    column: str, how: str
) -> Callable[[ibis.Table, datetime, Window | None], ibis.Value]:
    def aggregate(rows: ibis.Table, now: datetime, window: Window | None) -> ibis.Value:
        ts = getattr(rows[column], how)()
        return ibis.literal(now.date()).delta(ts.date(), unit="day")

    return aggregate


TEMPLATES: dict[str, Template] = {
    "average_transaction_value": Template(
        "SalesOrder", "amount", lambda r, n, w: r.amount.mean(), None, "average order value"
    ),
    "total_transaction_value": Template(
        "SalesOrder", "amount", lambda r, n, w: r.amount.sum(), 0, "total spend"
    ),
    "average_daily_revenue": Template(
        "SalesOrder", "amount", _revenue_per(1.0), None, "spend per day"
    ),
    "average_monthly_revenue": Template(
        "SalesOrder", "amount", _revenue_per(DAYS_PER_MONTH), None, "spend per month"
    ),
    "average_yearly_revenue": Template(
        "SalesOrder", "amount", _revenue_per(DAYS_PER_YEAR), None, "spend per year"
    ),
    "number_of_transactions": Template(
        "SalesOrder", None, lambda r, n, w: r.ActivityId.count(), 0, "number of orders"
    ),
    "loyalty_points_earned": Template(
        "Loyalty",
        "points",
        lambda r, n, w: ibis.ifelse(r.points > 0, r.points, 0).sum(),
        0,
        "points earned",
    ),
    "loyalty_points_redeemed": Template(
        "Loyalty",
        "points",
        lambda r, n, w: ibis.ifelse(r.points < 0, -r.points, 0).sum(),
        0,
        "points redeemed",
    ),
    "loyalty_points_balance": Template(
        "Loyalty", "points", lambda r, n, w: r.points.sum(), 0, "points balance"
    ),
    "membership_duration": Template(
        "Loyalty", None, _days_since("ActivityTimeStamp", "min"), None, "days as a member"
    ),
    "active_lifespan": Template(
        "SalesOrder",
        None,
        lambda r, n, w: (
            r.ActivityTimeStamp.max().date().delta(r.ActivityTimeStamp.min().date(), unit="day")
        ),
        None,
        "days from first to last order",
    ),
    "time_since_last_purchase": Template(
        "SalesOrder",
        None,
        _days_since("ActivityTimeStamp", "max"),
        None,
        "days since the last order",
    ),
}
