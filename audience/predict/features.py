"""Per-customer features of purchase history at a cutoff time, computed in the engine.

Every model that learns from purchases (churn, lifetime value) sees the same features,
computed from the purchases strictly before the cutoff. Training uses an earlier cutoff whose
future is known (the label window after it is in the data); scoring uses the run's as-of time.
Only the aggregate (one row per customer) leaves the engine.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import ibis
import numpy as np
import pandas as pd

# Feature name -> what it means (drivers are reported with these words).
FEATURES: dict[str, str] = {
    "recency_days": "days since the last purchase",
    "tenure_days": "days since the first purchase",
    "purchases": "number of purchases",
    "purchase_days": "number of days with a purchase",
    "spend_total": "total spend",
    "spend_average": "average purchase value",
    "purchases_30d": "purchases in the last 30 days",
    "purchases_90d": "purchases in the last 90 days",
    "purchases_365d": "purchases in the last 365 days",
    "spend_90d": "spend in the last 90 days",
    "spend_365d": "spend in the last 365 days",
    "gap_days": "average days between purchase days",
    "overdue": "days since the last purchase relative to the usual gap",
}


def purchases(rows: ibis.Table, amount: str) -> ibis.Table:
    """Purchase rows as (CustomerId, ts, amount) from an activity table."""
    return rows.select(
        CustomerId=rows.CustomerId,
        ts=rows.ActivityTimeStamp.cast("timestamp"),
        amount=rows[amount].cast("float64").fill_null(0.0),
    ).filter(ibis._.CustomerId.notnull() & ibis._.ts.notnull())


def history_features(purchases: ibis.Table, cutoff: datetime) -> pd.DataFrame:
    """One row per customer with a purchase before `cutoff`, indexed by CustomerId."""
    p = purchases.filter(purchases.ts < cutoff)
    cut = ibis.literal(cutoff)
    age = (cut.epoch_seconds() - p.ts.epoch_seconds()) / 86400.0

    def within(days: int) -> ibis.BooleanValue:
        return age < days

    grouped = p.group_by("CustomerId").aggregate(
        first_age=age.max(),
        last_age=age.min(),
        purchases=p.count(),
        purchase_days=p.ts.date().nunique(),
        spend_total=p.amount.sum(),
        purchases_30d=within(30).sum(),
        purchases_90d=within(90).sum(),
        purchases_365d=within(365).sum(),
        spend_90d=within(90).ifelse(p.amount, 0.0).sum(),
        spend_365d=within(365).ifelse(p.amount, 0.0).sum(),
    )
    frame = grouped.to_pyarrow().to_pandas().set_index("CustomerId").sort_index()
    # Engines differ in the last bits (epoch arithmetic, summation order); a tree split on
    # such a difference would make DuckDB and Spark publish different predictions.
    frame = frame.astype({c: "float64" for c in frame.columns}).round(6)
    out = pd.DataFrame(index=frame.index)
    out["recency_days"] = frame.last_age
    out["tenure_days"] = frame.first_age
    for column in ("purchases", "purchase_days", "spend_total", "purchases_30d"):
        out[column] = frame[column]
    out["spend_average"] = frame.spend_total / frame.purchases
    for column in ("purchases_90d", "purchases_365d", "spend_90d", "spend_365d"):
        out[column] = frame[column]
    repeat_days = frame.purchase_days - 1
    span = frame.first_age - frame.last_age
    out["gap_days"] = np.where(repeat_days > 0, span / repeat_days.clip(lower=1), np.nan)
    out["overdue"] = out.recency_days / out.gap_days
    return out[list(FEATURES)]


def btyd_inputs(features: pd.DataFrame) -> pd.DataFrame:
    """The BG/NBD summary (frequency = repeat purchase days, recency and T in days)."""
    return pd.DataFrame(
        {
            "frequency": features.purchase_days - 1,
            "recency": features.tenure_days - features.recency_days,
            "T": features.tenure_days,
            "monetary_value": features.spend_total / features.purchases,
        },
        index=features.index,
    )


def future_purchases(purchases: ibis.Table, start: datetime, days: int) -> pd.DataFrame:
    """Purchases and spend per customer in [start, start + days), indexed by CustomerId."""
    end = start + timedelta(days=days)
    p = purchases.filter((purchases.ts >= start) & (purchases.ts < end))
    grouped = p.group_by("CustomerId").aggregate(
        future_purchases=p.count(), future_spend=p.amount.sum()
    )
    frame = grouped.to_pyarrow().to_pandas().set_index("CustomerId")
    return frame.astype("float64").round(6)


def time_span(purchases: ibis.Table) -> tuple[datetime, datetime] | None:
    """The first and last purchase time, or None without purchases."""
    row = purchases.aggregate(first=purchases.ts.min(), last=purchases.ts.max()).to_pyarrow()
    first, last = row["first"][0].as_py(), row["last"][0].as_py()
    return None if first is None else (first, last)
