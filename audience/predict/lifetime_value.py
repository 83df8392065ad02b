"""Customer lifetime value: spend expected over the next `horizon_days`, and the customers
in the top `high_value_share` flagged high value.

Two well-known models are combined, each strong where the other is weak:
- BG/NBD + Gamma-Gamma (the `lifetimes` package): the buy-till-you-die model of purchase
  counts and the spend per purchase, which extrapolates to any horizon;
- gradient boosting (LightGBM, Huber loss) on the purchase features plus the BG/NBD
  outputs, learnt at earlier cutoffs where the following spend is known, which picks up what
  the parametric model misses.
The published value is a weighted mean of the two estimates (the boosted one scaled from
its training horizon to `horizon_days`); the weight is the one that found most of the
actual high-value customers at the held-out cutoff.

Quality: at the most recent training cutoff (held out from training), the share of the
customers who really were in the top share of spend that the model put in its own top
share, against ranking by past spend.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta

import ibis
import lightgbm as lgb
import numpy as np
import pandas as pd

from audience.predict.churn import FIT_ROWS, NotEnoughData
from audience.predict.features import btyd_inputs, future_purchases, history_features
from audience.predict.quality import Quality, lifetime_value_grade

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # share of the boosted estimate in the published value
FIT_SAMPLE = 100_000  # BG/NBD and Gamma-Gamma have 4 + 3 parameters: a sample fits them
BTYD_COLUMNS = ["bg_purchases", "bg_alive", "bg_value"]


@dataclass
class BTYD:
    """BG/NBD + Gamma-Gamma fitted on one history."""

    bgnbd: object | None  # None: the fit did not converge on this data
    gamma_gamma: object | None
    mean_spend: float

    @classmethod
    def fit(cls, features: pd.DataFrame) -> BTYD:
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        data = btyd_inputs(features)
        if len(data) > FIT_SAMPLE:
            data = data.sample(FIT_SAMPLE, random_state=7)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            # lifetimes prints the optimiser's report when a fit does not converge
            warnings.simplefilter("ignore")
            bgnbd = None
            for penalty in (0.001, 0.01, 0.1):  # the fit can fail to converge without one
                try:
                    bgnbd = BetaGeoFitter(penalizer_coef=penalty)
                    bgnbd.fit(data.frequency, data.recency, data["T"])
                    break
                except Exception:
                    bgnbd = None
            repeat = data[(data.frequency > 0) & (data.monetary_value > 0)]
            gamma_gamma = None
            for penalty in (0.0, 0.01, 0.1):  # the fit can fail to converge without one
                try:
                    gamma_gamma = GammaGammaFitter(penalizer_coef=penalty)
                    gamma_gamma.fit(repeat.frequency, repeat.monetary_value)
                    break
                except Exception:
                    gamma_gamma = None
        return cls(bgnbd, gamma_gamma, float(data.monetary_value.mean()))

    def outputs(self, features: pd.DataFrame, horizon: int) -> pd.DataFrame:
        data = btyd_inputs(features)
        out = pd.DataFrame(0.0, index=features.index, columns=BTYD_COLUMNS)
        if self.bgnbd is None:
            return out
        f, r, t = data.frequency, data.recency, data["T"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            purchases = self.bgnbd.conditional_expected_number_of_purchases_up_to_time(
                horizon, f, r, t
            )
            alive = self.bgnbd.conditional_probability_alive(f, r, t)
            if self.gamma_gamma is not None:
                spend = self.gamma_gamma.conditional_expected_average_profit(
                    f, data.monetary_value.clip(lower=0.01)
                )
            else:
                spend = pd.Series(self.mean_spend, index=data.index)
        out["bg_purchases"] = np.asarray(purchases, dtype=float)
        out["bg_alive"] = np.asarray(alive, dtype=float)
        out["bg_value"] = out.bg_purchases * np.asarray(spend, dtype=float)
        # A fit on little data can put a customer at infinity: unknown, not a number.
        return out.replace([np.inf, -np.inf], np.nan)


def _with_btyd(features: pd.DataFrame, horizon: int) -> pd.DataFrame:
    return features.join(BTYD.fit(features).outputs(features, horizon))


def _fit(X: pd.DataFrame, y: pd.Series) -> lgb.LGBMRegressor:
    """The boosted model fitted on (a seeded sample of at most FIT_ROWS of) the examples."""
    if len(X) > FIT_ROWS:
        keep = np.sort(np.random.default_rng(7).choice(len(X), FIT_ROWS, replace=False))
        X, y = X.iloc[keep], y.iloc[keep]
    return _booster(y).fit(X, y)


def _booster(target: pd.Series) -> lgb.LGBMRegressor:
    # Huber loss: squared error for ordinary spend, linear for the few huge spenders, who
    # would otherwise pull every tree towards them. Its delta is on the spend's own scale
    # (LightGBM's default of 0.9 would let a tree move a prediction by cents).
    spenders = target[target > 0]
    delta = float(np.quantile(spenders, 0.9)) if len(spenders) else 1.0
    return lgb.LGBMRegressor(
        objective="huber",
        alpha=max(delta, 1e-6),
        n_estimators=300,
        learning_rate=0.03,
        num_leaves=15,
        min_child_samples=50,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        random_state=7,
        deterministic=True,
        # OpenMP threads spin while waiting: on a busy 2-core machine a second thread made
        # small fits 100x slower (audience/predict/__init__.py makes waiting passive too).
        n_jobs=2 if len(target) >= 200_000 else 1,
        verbose=-1,
    )


def capture(predicted: pd.Series, actual: pd.Series, share: float) -> float:
    """Share of the actual top `share` (by `actual`) found in the top `share` by `predicted`."""
    k = max(1, round(share * len(actual)))
    top_actual = actual.sort_values(ascending=False, kind="mergesort").index[:k]
    top_predicted = predicted.sort_values(ascending=False, kind="mergesort").index[:k]
    return len(top_actual.intersection(top_predicted)) / k


@dataclass
class LifetimeValueResult:
    scores: pd.DataFrame  # index CustomerId: value, high_value, model_value, btyd_value
    quality: Quality


def lifetime_value(
    name: str,
    purchases: ibis.Table,
    as_of: datetime,
    horizon: int,
    share: float,
    first_purchase: datetime,
) -> LifetimeValueResult:
    history_days = (as_of - first_purchase).days
    learn = min(horizon, history_days // 2)
    if learn < 14:
        raise NotEnoughData(
            f"purchases start {first_purchase:%Y-%m-%d}: {history_days} days of history; "
            "lifetime value needs at least 28"
        )
    cutoffs = [as_of - timedelta(days=learn + 30 * k) for k in range(3)]
    cutoffs = [c for c in cutoffs if (c - first_purchase).days >= 14]
    examples = []
    for cutoff in cutoffs:
        X = _with_btyd(history_features(purchases, cutoff), learn)
        y = future_purchases(purchases, cutoff, learn).reindex(X.index).future_spend.fillna(0)
        examples.append((X, y))
    X_eval, y_eval = examples[0]
    if len(examples) > 1:
        X_train = pd.concat([x for x, _ in examples[1:]])
        y_train = pd.concat([y for _, y in examples[1:]])
    else:
        held = X_eval.sample(frac=0.2, random_state=7).index
        X_train, y_train = X_eval.drop(held), y_eval.drop(held)
        X_eval, y_eval = X_eval.loc[held], y_eval.loc[held]
    if len(X_train) < 50:
        raise NotEnoughData(f"{len(X_train)} customers to learn from; at least 50 are needed")
    booster = _fit(X_train, y_train)
    # The mix of the two estimates is chosen where the outcome is known (the held-out
    # cutoff): some data suit the parametric model, some the learnt one.
    learnt, parametric = booster.predict(X_eval), X_eval.bg_value.to_numpy()
    found_by_weight = {
        w: capture(pd.Series(_blend(learnt, parametric, w), index=X_eval.index), y_eval, share)
        for w in (WEIGHTS if X_eval.bg_value.fillna(0).any() else (1.0,))
    }
    weight = max(found_by_weight, key=lambda w: (round(found_by_weight[w], 4), -abs(w - 0.5)))
    found = found_by_weight[weight]
    baseline = capture(X_eval.spend_total, y_eval, share)
    quality = Quality(
        model=name,
        kind="lifetime_value",
        metric=f"top {share:.0%} found",
        value=round(found, 4),
        baseline_name="past spend",
        baseline=round(baseline, 4),
        grade=lifetime_value_grade(found, baseline),
        evaluated_on=len(y_eval),
        extra={
            "learning_horizon_days": learn,
            "boosted_weight": weight,
            "found_by_weight": {str(w): round(f, 4) for w, f in found_by_weight.items()},
        },
    )
    X_all, y_all = pd.concat([x for x, _ in examples]), pd.concat([y for _, y in examples])
    final = _fit(X_all, y_all)
    X_now = history_features(purchases, as_of)
    btyd = BTYD.fit(X_now)
    X_now_learn = X_now.join(btyd.outputs(X_now, learn))
    long = btyd.outputs(X_now, horizon).bg_value.to_numpy()
    model_value = np.clip(final.predict(X_now_learn), 0, None) * horizon / learn
    if btyd.bgnbd is None:  # BG/NBD did not converge on today's history
        weight = 1.0
    value = _blend(model_value, long, weight)
    cut = np.quantile(value, 1 - share) if len(value) else 0.0
    scores = pd.DataFrame(
        {
            "value": np.round(value, 2),
            "high_value": value >= cut,
            "model_value": np.round(model_value, 2),
            "btyd_value": np.round(long, 2),
        },
        index=X_now.index,
    )
    return LifetimeValueResult(scores, quality)


def _blend(learnt: np.ndarray, parametric: np.ndarray, weight: float) -> np.ndarray:
    """The weighted mean; where the parametric model has no value, the learnt one alone."""
    learnt = np.clip(learnt, 0, None)
    mixed = weight * learnt + (1 - weight) * np.clip(parametric, 0, None)
    return np.where(np.isfinite(parametric), mixed, learnt)
