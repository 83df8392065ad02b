"""Subscription churn: will a customer's active subscription end within `days_ahead` days
without another one following it?

Read from a Subscription activity's fields `start`, `end` (empty while active), `amount`
and, when present, `auto_renew`. At a cutoff `c` a customer is a subscriber when a
subscription started on or before `c` and had not ended; the label is "no subscription
active at c + days_ahead". Features only use what was known at `c` (end dates after `c` are
hidden). Training, evaluation and drivers work as for transactional churn (audience/predict/
churn.py): the most recent cutoff with a known outcome is held out, then the model is
refitted on every cutoff and scores today's subscribers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import ibis
import numpy as np
import pandas as pd

from audience.predict.churn import (
    MIN_EXAMPLES,
    ChurnResult,
    LinearClassifier,
    NotEnoughData,
    drivers,
)
from audience.predict.quality import Quality, churn_grade

FEATURES: dict[str, str] = {
    "plan_days": "days on the current plan",
    "monthly_fee": "monthly fee of the current plan",
    "manual_renewal": "renews by hand (auto-renew off)",
    "earlier_subscriptions": "subscriptions that ended before",
    "subscribed_days": "days subscribed in all",
    "customer_days": "days since the first subscription",
}


def subscription_rows(rows: ibis.Table) -> pd.DataFrame:
    """CustomerId, start, end, fee, auto_renew (True when unknown) per subscription."""
    missing = [f for f in ("start", "end") if f not in rows.columns]
    if missing:
        raise NotEnoughData(
            f"the activity has no field {', '.join(missing)}; subscription churn reads the "
            "fields start, end (empty while active), amount and optionally auto_renew"
        )
    cols = {
        "CustomerId": rows.CustomerId,
        "start": rows.start.cast("timestamp"),
        "end": rows.end.cast("timestamp"),
        "fee": rows.amount.cast("float64") if "amount" in rows.columns else ibis.null("float64"),
        "auto_renew": rows.auto_renew.cast("boolean")
        if "auto_renew" in rows.columns
        else ibis.literal(True),
    }
    frame = rows.select(**cols).filter(ibis._.CustomerId.notnull()).to_pandas()
    frame["auto_renew"] = frame.auto_renew.fillna(True).astype(bool)
    return frame[frame.start.notna()]


def _active(subs: pd.DataFrame, at: datetime) -> pd.Series:
    return (subs.start <= at) & (subs.end.isna() | (subs.end > at))


def features_at(subs: pd.DataFrame, cutoff: datetime) -> pd.DataFrame:
    """One row per customer subscribed at `cutoff`, indexed by CustomerId."""
    known = subs[subs.start <= cutoff].copy()
    known.loc[known.end > cutoff, "end"] = pd.NaT  # the future is hidden
    active = known[known.end.isna()].sort_values("start").groupby("CustomerId").last()
    if active.empty:
        return pd.DataFrame(columns=list(FEATURES), dtype="float64")
    days = lambda delta: delta.dt.total_seconds() / 86400  # noqa: E731
    length = days(known.end.fillna(pd.Timestamp(cutoff)) - known.start)
    per_customer = known.assign(length=length).groupby("CustomerId")
    out = pd.DataFrame(index=active.index)
    out["plan_days"] = days(pd.Timestamp(cutoff) - active.start)
    out["monthly_fee"] = active.fee
    out["manual_renewal"] = (~active.auto_renew).astype(float)
    out["earlier_subscriptions"] = per_customer.end.count().reindex(out.index).astype(float)
    out["subscribed_days"] = per_customer.length.sum().reindex(out.index)
    out["customer_days"] = days(pd.Timestamp(cutoff) - per_customer.start.min()).reindex(out.index)
    return out[list(FEATURES)].astype("float64").sort_index()


def _examples(subs: pd.DataFrame, cutoff: datetime, ahead: int) -> tuple[pd.DataFrame, pd.Series]:
    X = features_at(subs, cutoff)
    later = subs[_active(subs, cutoff + timedelta(days=ahead))].CustomerId.unique()
    y = (~X.index.isin(later)).astype(int)
    return X, pd.Series(y, index=X.index)


def subscription_churn(
    name: str, subs: pd.DataFrame, as_of: datetime, ahead: int, threshold: float
) -> ChurnResult:
    latest = as_of - timedelta(days=ahead)
    examples = [_examples(subs, latest - timedelta(days=30 * k), ahead) for k in range(3)]
    examples = [(X, y) for X, y in examples if len(X)]
    if not examples:
        raise NotEnoughData(f"no subscription was active on {latest:%Y-%m-%d} to learn from")
    X_eval, y_eval = examples[0]
    held = X_eval.sample(frac=0.2, random_state=7).index
    train = [(X.drop(held, errors="ignore"), y.drop(held, errors="ignore")) for X, y in examples]
    X_train = pd.concat([x for x, _ in train])
    y_train = pd.concat([y for _, y in train])
    X_eval, y_eval = X_eval.loc[held], y_eval.loc[held]
    if len(X_train) < MIN_EXAMPLES or len(X_eval) < MIN_EXAMPLES // 5:
        raise NotEnoughData(
            f"{len(X_train) + len(X_eval)} subscribers at the training cutoffs; at least "
            f"{MIN_EXAMPLES} are needed"
        )
    model = LinearClassifier.fit(X_train, y_train)
    predicted = model.predict(X_eval)
    accuracy = float(((predicted >= threshold).astype(int) == y_eval).mean())
    # Baseline: "those who turned auto-renew off leave"; when nobody has, the common outcome.
    if X_eval.manual_renewal.nunique() > 1:
        rule, baseline_name = X_eval.manual_renewal.astype(int), "auto-renew off churns"
    else:
        common = int(y_train.mean() >= 0.5)
        rule, baseline_name = pd.Series(common, index=y_eval.index), "the most common outcome"
    baseline = float((rule == y_eval).mean())
    quality = Quality(
        model=name,
        kind="subscription_churn",
        metric="accuracy",
        value=round(accuracy, 4),
        baseline_name=baseline_name,
        baseline=round(baseline, 4),
        grade=churn_grade(accuracy, baseline),
        evaluated_on=len(y_eval),
        extra={"churn_rate": round(float(y_eval.mean()), 4)},
    )
    final = LinearClassifier.fit(
        pd.concat([x for x, _ in examples]), pd.concat([y for _, y in examples])
    )
    X_now = features_at(subs, as_of)
    score = final.predict(X_now) if len(X_now) else np.array([])
    scores = pd.DataFrame({"score": score, "is_churn": score >= threshold}, index=X_now.index)
    scores["drivers"] = drivers(final, X_now, FEATURES)
    return ChurnResult(scores, quality)
