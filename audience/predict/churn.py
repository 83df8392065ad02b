"""Transactional churn: will a customer make no purchase within the next `window_days`?

Training needs outcomes, so the model learns at earlier cutoffs: for a cutoff `c` the
features are the purchases before `c` and the label is "no purchase in [c, c + window)".
Cutoffs are as_of - window, and 30 and 60 days before that (when history allows): more
examples and less dependence on one season. The most recent cutoff is held out to measure
quality (a temporal split: the model is judged on a period it did not learn from), then
the model is refitted on all cutoffs and scores every customer with a purchase at as_of.

The model is a logistic regression on log-scaled, standardised purchase features: on the
CDNOW benchmark it ranked churners as well as gradient boosting (AUC 0.777 vs 0.772), and
its per-customer drivers are exact: each feature's contribution to the log-odds is its
coefficient times the customer's standardised value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import ibis
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from audience.predict import jsonrows
from audience.predict.features import FEATURES, future_purchases, history_features
from audience.predict.quality import Quality, churn_grade

MIN_EXAMPLES = 50  # labelled customers needed to train (and to evaluate)
FIT_ROWS = 500_000  # examples a model is fitted on at most


class NotEnoughData(Exception):
    """The model cannot be trained on this data; the message says why."""


@dataclass
class LinearClassifier:
    """Logistic regression on log1p(features), standardised; missing values get the
    training median. Drivers are the per-feature contributions to the log-odds."""

    columns: list[str]
    fill: pd.Series
    mean: pd.Series
    scale: pd.Series
    model: LogisticRegression

    @classmethod
    def fit(cls, X: pd.DataFrame, y: pd.Series) -> LinearClassifier:
        if len(X) > FIT_ROWS:  # 13 coefficients: a seeded sample fits them as well
            keep = np.random.default_rng(7).choice(len(X), FIT_ROWS, replace=False)
            keep.sort()
            X, y = X.iloc[keep], y.iloc[keep]
        if y.nunique() < 2:
            raise NotEnoughData(
                f"every training example has the same outcome ({int(y.iloc[0])}); "
                "the model needs both churners and stayers"
            )
        logs = np.log1p(X.clip(lower=0))
        fill = logs.median().fillna(0.0)
        logs = logs.fillna(fill)
        mean, scale = logs.mean(), logs.std(ddof=0).replace(0, 1.0)
        model = LogisticRegression(max_iter=2000)
        model.fit(((logs - mean) / scale).to_numpy(), y.to_numpy())
        return cls(list(X.columns), fill, mean, scale, model)

    def _z(self, X: pd.DataFrame) -> pd.DataFrame:
        logs = np.log1p(X[self.columns].clip(lower=0)).fillna(self.fill)
        return (logs - self.mean) / self.scale

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(self._z(X).to_numpy())[:, 1]

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return self._z(X) * self.model.coef_[0]


def drivers(
    classifier: LinearClassifier, X: pd.DataFrame, labels: dict[str, str], top: int = 3
) -> pd.Series:
    """Per customer, as JSON text, the features that push the score up most (largest
    positive contributions) with the customer's value: [{"Feature", "Value", "Impact"}]."""
    if X.empty:
        return pd.Series([], index=X.index, dtype=object)
    contrib = classifier.contributions(X).to_numpy()
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :top]
    rows = np.arange(len(X))[:, None]
    impact = contrib[rows, order]
    value = X[classifier.columns].to_numpy()[rows, order]
    names = np.array([labels.get(c, c) for c in classifier.columns], dtype=object)
    items, present = [], []
    for j in range(order.shape[1]):
        items.append(
            jsonrows.obj(
                {
                    "Feature": jsonrows.string(names[order[:, j]], X.index),
                    "Value": jsonrows.number(value[:, j], 2, X.index),
                    "Impact": jsonrows.number(impact[:, j], 3, X.index),
                }
            )
        )
        # Rounded to 0.001, a push too small to name is not a driver.
        present.append(pd.Series(impact[:, j] >= 0.0005, index=X.index))
    return jsonrows.array(items, present)


@dataclass
class ChurnResult:
    scores: pd.DataFrame  # index CustomerId: score, is_churn, drivers
    quality: Quality


def _examples(
    purchases: ibis.Table, cutoff: datetime, window: int
) -> tuple[pd.DataFrame, pd.Series]:
    X = history_features(purchases, cutoff)
    future = future_purchases(purchases, cutoff, window).reindex(X.index)
    y = future.future_purchases.fillna(0).eq(0).astype(int)
    return X, y


def transactional_churn(
    name: str,
    purchases: ibis.Table,
    as_of: datetime,
    window: int,
    threshold: float,
    first_purchase: datetime,
) -> ChurnResult:
    """Train, evaluate and score; raises NotEnoughData with the reason when it cannot."""
    latest = as_of - timedelta(days=window)
    cutoffs = [latest - timedelta(days=30 * k) for k in range(3)]
    cutoffs = [c for c in cutoffs if c > first_purchase + timedelta(days=window // 3)]
    if not cutoffs:
        raise NotEnoughData(
            f"purchases start {first_purchase:%Y-%m-%d}; a {window}-day churn window needs "
            f"history before {latest:%Y-%m-%d} to learn from"
        )
    examples = [_examples(purchases, c, window) for c in cutoffs]
    X_eval, y_eval = examples[0]
    if len(examples) > 1:
        train = examples[1:]
    else:  # one cutoff: hold out a random fifth of its customers instead
        held = X_eval.sample(frac=0.2, random_state=7).index
        train = [(X_eval.drop(held), y_eval.drop(held))]
        X_eval, y_eval = X_eval.loc[held], y_eval.loc[held]
    X_train = pd.concat([x for x, _ in train])
    y_train = pd.concat([y for _, y in train])
    if len(X_train) < MIN_EXAMPLES or len(X_eval) < MIN_EXAMPLES // 5:
        raise NotEnoughData(
            f"{len(X_train)} customers with purchases before the training cutoffs; "
            f"at least {MIN_EXAMPLES} are needed"
        )
    model = LinearClassifier.fit(X_train, y_train)
    quality = _evaluate(name, model, X_eval, y_eval, window, threshold)
    final = LinearClassifier.fit(
        pd.concat([x for x, _ in examples]), pd.concat([y for _, y in examples])
    )
    X_now = history_features(purchases, as_of)
    score = final.predict(X_now)
    scores = pd.DataFrame({"score": score, "is_churn": score >= threshold}, index=X_now.index)
    scores["drivers"] = drivers(final, X_now, FEATURES)
    return ChurnResult(scores, quality)


def _evaluate(
    name: str,
    model: LinearClassifier,
    X: pd.DataFrame,
    y: pd.Series,
    window: int,
    threshold: float,
) -> Quality:
    predicted = model.predict(X)
    accuracy = float(((predicted >= threshold).astype(int) == y).mean())
    # Baseline: the rule an analyst would write, "no purchase in the last `window` days".
    baseline = float(((X.recency_days >= window).astype(int) == y).mean())
    auc = float(roc_auc_score(y, predicted)) if y.nunique() == 2 else float("nan")
    return Quality(
        model=name,
        kind="transactional_churn",
        metric="accuracy",
        value=round(accuracy, 4),
        baseline_name=f"no purchase in the last {window} days",
        baseline=round(baseline, 4),
        grade=churn_grade(accuracy, baseline),
        evaluated_on=len(y),
        extra={"auc": round(auc, 4), "churn_rate": round(float(y.mean()), 4)},
    )
