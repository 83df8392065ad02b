"""Predictions benchmark: the models' quality on CDNOW and their speed on 1M customers.

Part `cdnow` (quality): the CDNOW transaction log that ships with the `lifetimes` package
(23,570 customers who first bought in January-March 1997, 69,659 transactions to June 1998),
calibration up to 1997-09-30, holdout 1997-10-01..1998-06-30 (273 days). Compared, fitted in
this run on the calibration purchases only:
- lifetime value: Audience's `lifetime_value` (273-day horizon) against BG/NBD + Gamma-Gamma
  fitted the documented `lifetimes` way and against past (calibration) spend, by the share of
  the actual top 20% of customers (by holdout spend, over all customers) each puts in its own
  top 20%; target: Audience above BG/NBD;
- churn (no purchase in the first 90 days of the holdout): Audience's `transactional_churn`
  against BG/NBD's expected purchases in 90 days (negated) and days since the last purchase,
  by ROC AUC over all customers; target: Audience AUC at least 0.78.

Part `scale` (speed): generated (seeded, vectorised, cached in
benchmarks/data/predictions_<customers>_<activities>/<generator hash>/) 1M customers and 10M
activity rows as Parquet: ~3M orders, ~6M order lines (a product each), ~300k subscriptions,
the rest feedback texts. Then, in a fresh process, the five models are trained, graded and
scored through the predictions stage's own `_train` (DuckDB, 2 threads, purchases
checkpointed as the stage does), and the stage's Prediction, PredictionAttributes and
PredictionQuality tables are built and written; each step's wall and CPU time, the total and
the process's peak RSS are recorded. Target: the total under 300 s on 2 cores.

    .venv/bin/python benchmarks/predictions.py [--part cdnow|scale|both] [--customers 1000000]
        [--activities 10000000] [--quick] [--profile] [--write-results]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import fcntl
import hashlib
import io
import json
import pstats
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from machine import code_version as machine_code_version
from machine import describe, git
from measures.generate import uuid_strings

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
TARGET_SECONDS = 300.0
TARGET_AUC = 0.78
SHARE = 0.2  # top share of customers for lifetime value


def _cpu() -> float:  # user + system seconds, all threads of this process
    return sum(resource.getrusage(resource.RUSAGE_SELF)[:2])


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _started() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; code: {code_version()}"


def code_version() -> str:
    """The commit, and whether the models changed since it (their sha1)."""
    models = hashlib.sha1()
    for path in sorted((HERE.parent / "audience" / "predict").glob("*.py")):
        models.update(path.read_bytes())
    changed = "changed" if git("status", "--porcelain", "audience/predict") else "unchanged"
    return (
        f"{machine_code_version()}; audience/predict/*.py "
        f"{changed} since the commit, sha1 {models.hexdigest()[:12]}"
    )


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n:,}"


# == Part 1: CDNOW ============================================================================
CALIBRATION_END = "1997-09-30"
OBSERVATION_END = "1998-06-30"
AS_OF_CDNOW = datetime(1997, 10, 1)  # purchases on 1997-09-30 are calibration
HOLDOUT_DAYS = 273  # 1997-10-01 .. 1998-06-30
CHURN_DAYS = 90


def cdnow() -> dict[str, Any]:
    """Fit and score everything on CDNOW; returns the numbers for the report."""
    import ibis
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.datasets import load_dataset
    from lifetimes.utils import calibration_and_holdout_data
    from sklearn.metrics import roc_auc_score

    from audience.predict.churn import transactional_churn
    from audience.predict.features import purchases, time_span
    from audience.predict.lifetime_value import capture, lifetime_value

    raw = load_dataset(
        "CDNOW_master.txt", sep=r"\s+", dtype={"customer_id": str, "date": str}
    )  # columns customer_id, date (YYYYMMDD), number_of_cds, dollar_value
    raw["ts"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    ids = pd.Index(sorted(raw.customer_id.unique()), name="CustomerId")  # ties break by id
    holdout_end = AS_OF_CDNOW + timedelta(days=HOLDOUT_DAYS)
    assert holdout_end == datetime(1998, 6, 30) + timedelta(days=1)
    calibration = raw[raw.ts < AS_OF_CDNOW]
    holdout = raw[(raw.ts >= AS_OF_CDNOW) & (raw.ts < holdout_end)]
    actual = holdout.groupby("customer_id").dollar_value.sum().reindex(ids).fillna(0.0)
    churn_end = AS_OF_CDNOW + timedelta(days=CHURN_DAYS)
    bought_early = holdout[holdout.ts < churn_end].customer_id.unique()
    churned = pd.Series(~ids.isin(bought_early), index=ids).astype(int)
    past_spend = calibration.groupby("customer_id").dollar_value.sum().reindex(ids)
    recency = (AS_OF_CDNOW - calibration.groupby("customer_id").ts.max()).dt.days.reindex(ids)
    assert past_spend.notna().all() and recency.notna().all()  # all first bought in Q1 1997

    # Audience, through the same functions as the predictions stage.
    con = ibis.duckdb.connect(threads=2)
    table = con.create_table(
        "cdnow",
        pa.table(
            {
                "CustomerId": pa.array(raw.customer_id.to_numpy(), pa.string()),
                "ActivityTimeStamp": pa.array(raw.ts.to_numpy(), pa.timestamp("us")),
                "amount": pa.array(raw.dollar_value.to_numpy(), pa.float64()),
            }
        ),
    )
    bought = purchases(table, "amount")
    first, _last = time_span(bought.filter(bought.ts < AS_OF_CDNOW))
    timings = {}
    noise = io.StringIO()  # lifetimes prints scipy's result when a fit does not converge
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(noise):
        clv = lifetime_value("clv", bought, AS_OF_CDNOW, HOLDOUT_DAYS, SHARE, first)
    timings["audience_clv"] = time.perf_counter() - t0
    audience_clv_noise = noise.getvalue().count("success: False")
    t0 = time.perf_counter()
    churn = transactional_churn("churn", bought, AS_OF_CDNOW, CHURN_DAYS, 0.5, first)
    timings["audience_churn"] = time.perf_counter() - t0
    assert clv.scores.index.isin(ids).all() and churn.scores.index.isin(ids).all()
    missing = {
        "clv": int((~ids.isin(clv.scores.index)).sum()),
        "churn": int((~ids.isin(churn.scores.index)).sum()),
    }
    assert not any(missing.values()), f"customers without a score: {missing}"
    value = clv.scores.value.reindex(ids)
    churn_score = churn.scores.score.reindex(ids)

    # BG/NBD + Gamma-Gamma, the documented lifetimes way.
    t0 = time.perf_counter()
    summary = calibration_and_holdout_data(
        raw,
        "customer_id",
        "ts",
        calibration_period_end=CALIBRATION_END,
        observation_period_end=OBSERVATION_END,
        monetary_value_col="dollar_value",
    ).reindex(ids)
    assert summary.duration_holdout.eq(HOLDOUT_DAYS).all()
    f, r, t = summary.frequency_cal, summary.recency_cal, summary["T_cal"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgnbd = BetaGeoFitter(penalizer_coef=0.0).fit(f, r, t)
    # Gamma-Gamma needs repeat customers with a positive spend (one CDNOW repeat customer's
    # repeat purchases are all $0).
    repeat = summary[(f > 0) & (summary.monetary_value_cal > 0)]
    gg_penalizer, noise = 0.0, io.StringIO()
    try:
        with contextlib.redirect_stdout(noise):
            gamma_gamma = GammaGammaFitter(penalizer_coef=0.0).fit(
                repeat.frequency_cal, repeat.monetary_value_cal
            )
    except Exception:  # lifetimes' ConvergenceError
        gg_penalizer = 0.001
        gamma_gamma = GammaGammaFitter(penalizer_coef=0.001).fit(
            repeat.frequency_cal, repeat.monetary_value_cal
        )
    expected_holdout = bgnbd.conditional_expected_number_of_purchases_up_to_time(
        HOLDOUT_DAYS, f, r, t
    )
    # At frequency 0 (no repeat purchase) the Gamma-Gamma conditional mean is the population
    # mean p*v/(q-1): customers without a repeat purchase get it.
    profit = gamma_gamma.conditional_expected_average_profit(f, summary.monetary_value_cal)
    bg_value = expected_holdout * profit
    bg_churn = -bgnbd.conditional_expected_number_of_purchases_up_to_time(CHURN_DAYS, f, r, t)
    timings["bgnbd"] = time.perf_counter() - t0
    p, q, v = (gamma_gamma.params_[k] for k in ("p", "q", "v"))
    population_mean = float(p * v / (q - 1))

    def auc(score: pd.Series) -> float:
        return float(roc_auc_score(churned, score))

    def accuracy(flag: pd.Series) -> float:
        return float((flag.astype(int) == churned).mean())

    return {
        "transactions": len(raw),
        "customers": len(ids),
        "holdout_buyers": int((actual > 0).sum()),
        "top_k": max(1, round(SHARE * len(ids))),
        "churn_rate": float(churned.mean()),
        "capture": {
            "audience": capture(value, actual, SHARE),
            "audience_btyd_part": capture(clv.scores.btyd_value.reindex(ids), actual, SHARE),
            "audience_boosted_part": capture(clv.scores.model_value.reindex(ids), actual, SHARE),
            "bgnbd": capture(bg_value, actual, SHARE),
            "past_spend": capture(past_spend, actual, SHARE),
        },
        "auc": {
            "audience": auc(churn_score),
            "bgnbd": auc(bg_churn),
            "recency": auc(recency),
        },
        "accuracy": {
            "audience": accuracy(churn_score >= 0.5),
            "recency": accuracy(recency >= CHURN_DAYS),
            "always_churn": float(churned.mean()),
        },
        "spread": {
            "actual_total": float(actual.sum()),
            "audience_total": float(value.sum()),
            "bgnbd_total": float(bg_value.sum()),
            "boosted_std": float(clv.scores.model_value.std()),
            "boosted_range": [
                float(clv.scores.model_value.min()),
                float(clv.scores.model_value.max()),
            ],
        },
        "quality": {"clv": clv.quality.as_dict(), "churn": churn.quality.as_dict()},
        "timings": timings,
        "fits": {
            "bgnbd": {k: round(float(v), 4) for k, v in bgnbd.params_.items()},
            "gamma_gamma": {k: round(float(v), 4) for k, v in gamma_gamma.params_.items()},
            "gg_penalizer": gg_penalizer,
            "gg_customers": len(repeat),
            "gg_population_mean": population_mean,
            "audience_gg_failed_fits": audience_clv_noise,
        },
    }


def cdnow_section(
    res: dict[str, Any], command: str, load: str, started: str
) -> tuple[str, list[bool]]:
    c, a, acc, q, tm = res["capture"], res["auc"], res["accuracy"], res["quality"], res["timings"]
    met = [c["audience"] > c["bgnbd"], a["audience"] >= TARGET_AUC]
    fits, spread = res["fits"], res["spread"]
    rows = [
        ("Audience (`lifetime_value`, `transactional_churn`)", c["audience"], a["audience"],
         acc["audience"], f"{tm['audience_clv']:.1f} + {tm['audience_churn']:.1f}"),
        ("BG/NBD + Gamma-Gamma (lifetimes, fitted here)", c["bgnbd"], a["bgnbd"], None,
         f"{tm['bgnbd']:.1f}"),
        ("Baseline: past spend / days since last purchase", c["past_spend"], a["recency"],
         acc["recency"], "-"),
    ]  # fmt: skip
    table = [
        "| model | CLV: actual top 20% found | churn AUC | churn accuracy at 0.5 | fit + score s |",
        "|---|---|---|---|---|",
    ]
    for name, cap, auc, accuracy, seconds in rows:
        shown = "-" if accuracy is None else f"{accuracy:.4f}"
        table.append(f"| {name} | {cap:.4f} | {auc:.4f} | {shown} | {seconds} |")
    qc, qh = q["clv"], q["churn"]
    gg = (
        "penalizer 0.0 (converged)"
        if fits["gg_penalizer"] == 0.0
        else f"penalizer {fits['gg_penalizer']} (0.0 did not converge)"
    )
    text = "\n".join([
        "## Predictions on CDNOW (quality)",
        "",
        f"- Date: {started}; load average "
        f"before the run: {load}",
        f"- Machine: {describe()}",
        f"- Command: `{command}`",
        f"- Data: CDNOW master (`lifetimes.datasets`), {res['transactions']:,} transactions of "
        f"{res['customers']:,} customers (all first bought in Jan-Mar 1997). Calibration: "
        f"purchases before 1997-10-01; holdout: 1997-10-01..1998-06-30 ({HOLDOUT_DAYS} days), "
        f"in which {res['holdout_buyers']:,} customers bought. Every number is over all "
        f"{res['customers']:,} customers (no purchase in the holdout = spend 0); the top 20% is "
        f"{res['top_k']:,} customers (ties broken by customer id). Churn = no purchase in "
        f"1997-10-01..1997-12-29 ({CHURN_DAYS} days): {res['churn_rate']:.1%} of the customers.",
        "- Audience: `audience.predict` on an Ibis DuckDB table through `features.purchases`, "
        f"as of 1997-10-01, CLV horizon {HOLDOUT_DAYS} days, churn window {CHURN_DAYS} days, "
        "threshold 0.5. BG/NBD: `calibration_and_holdout_data` (daily), "
        f"`BetaGeoFitter(penalizer_coef=0.0)` ({_params(fits['bgnbd'])}); Gamma-Gamma on the "
        f"{fits['gg_customers']:,} repeat customers with a positive repeat spend, {gg} "
        f"({_params(fits['gamma_gamma'])}); CLV = expected purchases in {HOLDOUT_DAYS} days x "
        "`conditional_expected_average_profit` (customers without a repeat purchase get the "
        f"Gamma-Gamma population mean, ${fits['gg_population_mean']:.2f}); churn score = minus "
        f"the expected purchases in {CHURN_DAYS} days.",
        "",
        *table,
        "",
        f"Targets: CLV top-20% capture above BG/NBD's ({c['audience']:.4f} vs {c['bgnbd']:.4f}): "
        f"{'met' if met[0] else 'not met'}; churn AUC at least {TARGET_AUC} "
        f"({a['audience']:.4f}): {'met' if met[1] else 'not met'}.",
        "",
        f"Audience's CLV publishes w x its boosted estimate + (1 - w) x its own BG/NBD + "
        f"Gamma-Gamma estimate, w chosen at its held-out training cutoff: w = "
        f"{qc['extra'].get('boosted_weight', '?')} (top 20% found there by w: "
        f"{_weights(qc['extra'].get('found_by_weight', {}))}). On the holdout each part alone "
        f"finds: BG/NBD part {c['audience_btyd_part']:.4f}, boosted part "
        f"{c['audience_boosted_part']:.4f} (boosted values: std ${spread['boosted_std']:.2f}, "
        f"range ${spread['boosted_range'][0]:.2f}..${spread['boosted_range'][1]:.2f}). Total "
        f"holdout spend: actual ${spread['actual_total']:,.0f}, Audience "
        f"${spread['audience_total']:,.0f}, BG/NBD ${spread['bgnbd_total']:,.0f}. Always "
        f"answering 'churn' is right for {acc['always_churn']:.4f} of the customers.",
        "",
        f"The pipeline's own grades (in-sample, at its held-out training cutoff): CLV "
        f"{qc['metric']} {qc['value']:.4f} vs {qc['baseline_name']} {qc['baseline']:.4f}, "
        f"grade {qc['grade']} ({qc['evaluated_on']:,} customers, learning horizon "
        f"{qc['extra']['learning_horizon_days']} days); churn {qh['metric']} {qh['value']:.4f} "
        f"vs '{qh['baseline_name']}' {qh['baseline']:.4f}, grade {qh['grade']} (AUC "
        f"{qh['extra']['auc']:.4f}, churn rate {qh['extra']['churn_rate']:.4f}, "
        f"{qh['evaluated_on']:,} customers).",
        "",
    ])  # fmt: skip
    return text, met


def _weights(found: dict[str, float]) -> str:
    return ", ".join(f"{w}: {v:.4f}" for w, v in found.items()) or "?"


def _params(params: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in params.items())


# == Part 2: scale: generating ================================================================
# (the generator hash covers the text from here to the "measuring" marker, and
# measures/generate.py for the ids)
SEED = 20261202
AS_OF = datetime(2026, 1, 1)
SPAN_DAYS = 3 * 365
DAY_US = 86_400 * 1_000_000
AS_OF_US = int((AS_OF - datetime(1970, 1, 1)).total_seconds()) * 1_000_000
ROW_GROUP = 122_880
SHARES = {"orders": 0.3, "order_lines": 0.6, "subscriptions": 0.03}  # feedback: the rest
PRODUCTS, CLUSTERS = 2_000, 20  # 20 taste clusters of 100 products
ITEMS = [
    "jacket", "coffee maker", "blender", "backpack", "lamp", "headphones", "kettle", "desk",
    "chair", "rug", "mattress", "vacuum", "toaster", "phone case", "charger", "sofa", "pillow",
    "water bottle", "running shoes", "watch", "printer", "monitor", "keyboard", "mixer",
    "frying pan", "tent", "bike helmet", "scarf", "sweater", "camera",
]  # fmt: skip
AGENTS = ["Anna", "Ben", "Carla", "Dev", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jon", "Kai",
          "Lena"]  # fmt: skip
OPENERS = ["", "Hello. ", "About my last order: ", "Feedback: "]
BODIES = [  # (sentiment: 1 positive, 0 neutral, -1 negative, text with slots)
    (1, "The {item} arrived in {days} days and works perfectly."),
    (1, "Great quality {item}, exactly as described."),
    (1, "{agent} from support was very helpful and sorted it quickly."),
    (1, "Love the {item}! Will order again."),
    (1, "Fast delivery, the {item} was well packed."),
    (1, "Excellent service, {agent} resolved my issue in minutes."),
    (1, "Very happy with my {item}. Thank you!"),
    (1, "Checkout was easy and the {item} came early."),
    (1, "The {item} is even better than I expected."),
    (1, "Refund processed in {days} days, thanks {agent}."),
    (1, "Amazing value for the price, the {item} is great."),
    (1, "Friendly support, {agent} answered all my questions."),
    (1, "The app makes ordering a {item} quick and simple."),
    (1, "Good {item}, good price, quick shipping."),
    (1, "Perfect fit and nice quality. Recommended."),
    (1, "My {item} was delivered on time. Very satisfied."),
    (1, "Wonderful experience from order to delivery."),
    (1, "{agent} was patient and kind. Great service."),
    (1, "The new {item} works great, no complaints."),
    (1, "Top quality {item}, I am impressed."),
    (0, "Ordered a {item}, delivery took {days} days."),
    (0, "The {item} is okay, nothing special."),
    (0, "Can I change the delivery address for my {item}?"),
    (0, "Please send the invoice for the {item}."),
    (0, "Received the {item}. Have not tried it yet."),
    (0, "How do I reset my password on the website?"),
    (0, "The {item} is as described."),
    (0, "I spoke with {agent} about my order."),
    (0, "Is the {item} available in another size?"),
    (0, "Delivery in {days} days is fine."),
    (0, "Average {item}, does the job."),
    (0, "I would like to update my payment details."),
    (-1, "The {item} arrived broken after {days} days."),
    (-1, "Still waiting for my {item}, ordered {days} days ago."),
    (-1, "Support never answered my emails. Terrible."),
    (-1, "Charged twice for the {item} and no refund yet."),
    (-1, "The app keeps crashing at checkout."),
    (-1, "The {item} stopped working after {days} days."),
    (-1, "{agent} was rude and did not help at all."),
    (-1, "My {item} never arrived. Very disappointed."),
    (-1, "Poor quality {item}, it leaked on the first day."),
    (-1, "Third time asking about my refund for the {item}."),
    (-1, "The website is slow and the login fails."),
    (-1, "Wrong size {item} and the return is a hassle."),
    (-1, "Awful service, nobody replied for {days} days."),
    (-1, "The {item} is defective, I want my money back."),
    (-1, "Delivery was late by {days} days and the box was damaged."),
    (-1, "I was overcharged for the {item}."),
    (-1, "Worst purchase ever, the {item} is useless."),
    (-1, "The {item} doesn't work and {agent} ignored me."),
]
DAYS = list(range(2, 21))


def _timestamps(age_days: np.ndarray) -> pa.Array:
    return pa.array(AS_OF_US - (age_days * DAY_US).astype(np.int64), pa.timestamp("us"))


def _activity(name: str, ids: pa.Array, who: np.ndarray, fields: dict[str, Any]) -> pa.Table:
    key = pa.array(np.char.add(f"{name}|", np.arange(1, len(who) + 1).astype(str)))
    return pa.table({"CustomerId": ids.take(pa.array(who)), "ActivityId": key, **fields})


def _allocate(rng: np.random.Generator, weight: np.ndarray, extra: int) -> np.ndarray:
    """1 + a multinomial share of `extra` per entry, by `weight`."""
    return 1 + np.bincount(
        rng.choice(len(weight), extra, p=weight / weight.sum()), minlength=len(weight)
    )


def _orders(rng: np.random.Generator, ids: pa.Array, n_orders: int) -> tuple[pa.Table, np.ndarray]:
    """Buy-till-you-die customers: each has a first purchase (up to 3 years ago), a purchase
    rate, a lifetime after which they buy no more, and a typical spend."""
    n = len(ids)
    birth = rng.uniform(1.0, SPAN_DAYS, n)  # days before AS_OF of the first purchase
    alive = np.minimum(rng.exponential(450.0, n), birth)  # days from first to last possible
    rate = rng.gamma(0.7, 1.0, n)
    spend = rng.lognormal(3.6, 0.6, n)
    counts = _allocate(rng, rate * alive, n_orders - n)
    who = np.repeat(np.arange(n), counts)
    first = np.r_[True, who[1:] != who[:-1]]
    offset = np.where(first, 0.0, rng.uniform(0.0, 1.0, len(who)) * alive[who])
    age = np.maximum(birth[who] - offset, 1e-3)
    amount = np.round(spend[who] * rng.lognormal(0.0, 0.4, len(who)), 2)
    order = rng.permutation(len(who))
    who, age, amount = who[order], age[order], amount[order]
    table = _activity(
        "orders", ids, who, {"ActivityTimeStamp": _timestamps(age), "amount": pa.array(amount)}
    )
    return table, np.stack([who, age])


def _lines(rng: np.random.Generator, ids: pa.Array, orders: np.ndarray, n_lines: int) -> pa.Table:
    """Lines of the orders (1 + a share of the rest each), a product each: 70% from the
    customer's taste cluster, 30% from any; Zipf popularity within a cluster."""
    who_o, age_o = orders[0].astype(np.int64), orders[1]
    per_order = 1 + np.bincount(
        rng.integers(0, len(who_o), n_lines - len(who_o)), minlength=len(who_o)
    )
    line_order = np.repeat(np.arange(len(who_o)), per_order)
    who = who_o[line_order]
    cluster_weight = rng.dirichlet(np.full(CLUSTERS, 2.0))
    taste = rng.choice(CLUSTERS, len(ids), p=cluster_weight)
    any_cluster = rng.choice(CLUSTERS, len(who), p=cluster_weight)
    cluster = np.where(rng.random(len(who)) < 0.7, taste[who], any_cluster)
    per_cluster = PRODUCTS // CLUSTERS
    zipf = 1.0 / np.arange(1, per_cluster + 1) ** 0.9
    rank = rng.choice(per_cluster, len(who), p=zipf / zipf.sum())
    names = pa.array([f"SKU-{i:05d}" for i in range(PRODUCTS)])
    product = pa.DictionaryArray.from_arrays(
        pa.array((cluster * per_cluster + rank).astype(np.int32)), names
    ).cast(pa.string())
    return _activity(
        "order_lines",
        ids,
        who,
        {"ActivityTimeStamp": _timestamps(age_o[line_order]), "product": product},
    )


def _subscriptions(rng: np.random.Generator, ids: pa.Array, n_subs: int) -> pa.Table:
    """Chains of subscriptions (one after the other, sometimes with a gap) for 20% of the
    customers; manual renewal and a higher fee end a subscription sooner."""
    subscribers = rng.choice(len(ids), len(ids) // 5, replace=False)
    counts = _allocate(rng, np.ones(len(subscribers)), n_subs - len(subscribers))
    who = np.repeat(subscribers, counts)
    m = len(who)
    fee = rng.choice([9.99, 19.99, 29.99, 49.99], m, p=[0.4, 0.3, 0.2, 0.1])
    auto = rng.random(m) < 0.75
    duration = rng.exponential(np.where(auto, 420.0, 150.0) * np.sqrt(19.99 / fee))
    gap = np.where(rng.random(m) < 0.5, 0.0, rng.exponential(45.0, m))
    step = duration + gap
    first = np.r_[True, who[1:] != who[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(m), 0))
    before = np.cumsum(step) - step
    since_first = before - before[group_start]
    first_age = rng.uniform(30.0, SPAN_DAYS, len(subscribers))[
        np.repeat(np.arange(len(subscribers)), counts)
    ]
    start_age = first_age - since_first  # days before AS_OF
    keep = start_age > 0
    end_age = start_age - duration
    ended = keep & (end_age > 0)
    start = _timestamps(start_age[keep])
    end = pa.array(
        (AS_OF_US - (end_age[keep] * DAY_US)).astype(np.int64),
        pa.timestamp("us"),
        mask=~ended[keep],
    )
    return _activity(
        "subscriptions",
        ids,
        who[keep],
        {
            "ActivityTimeStamp": start,
            "start": start,
            "end": end,
            "amount": pa.array(fee[keep]),
            "auto_renew": pa.array(auto[keep]),
        },
    )


def _feedback(rng: np.random.Generator, ids: pa.Array, n_rows: int) -> tuple[pa.Table, int]:
    """Texts from len(OPENERS) x len(BODIES) templates with an item, a number of days and an
    agent filled in; a 1-5 rating that mostly agrees with the template (15% random, 20% none)."""
    n = len(ids)
    weight = rng.lognormal(0.0, 1.0, n) * (rng.random(n) < 0.35)
    who = rng.choice(n, n_rows, p=weight / weight.sum())
    sentiment = np.array([s for s, _ in BODIES])
    body_p = np.select([sentiment > 0, sentiment == 0], [0.5 / 20, 0.2 / 12], 0.3 / 18)
    body = rng.choice(len(BODIES), n_rows, p=body_p / body_p.sum())
    opener = rng.integers(0, len(OPENERS), n_rows)
    slots = [("{item}" in t, "{days}" in t, "{agent}" in t) for _, t in BODIES]
    uses = np.array(slots)[body]
    item = np.where(uses[:, 0], rng.integers(0, len(ITEMS), n_rows), 0)
    days = np.where(uses[:, 1], rng.integers(0, len(DAYS), n_rows), 0)
    agent = np.where(uses[:, 2], rng.integers(0, len(AGENTS), n_rows), 0)
    key = (((body * len(OPENERS) + opener) * len(ITEMS) + item) * len(DAYS) + days) * len(
        AGENTS
    ) + agent
    distinct, index = np.unique(key, return_inverse=True)
    texts = []
    for k in distinct.tolist():
        k, a = divmod(k, len(AGENTS))
        k, d = divmod(k, len(DAYS))
        k, i = divmod(k, len(ITEMS))
        b, o = divmod(k, len(OPENERS))
        texts.append(OPENERS[o] + BODIES[b][1].format(item=ITEMS[i], days=DAYS[d], agent=AGENTS[a]))
    text = pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), pa.array(texts))
    s = sentiment[body]
    rating = np.where(
        s > 0, rng.integers(4, 6, n_rows), np.where(s < 0, rng.integers(1, 3, n_rows), 3)
    )
    rating = np.where(rng.random(n_rows) < 0.15, rng.integers(1, 6, n_rows), rating)
    table = _activity(
        "feedback",
        ids,
        who,
        {
            "ActivityTimeStamp": _timestamps(rng.uniform(0.01, SPAN_DAYS, n_rows)),
            "Description": text.cast(pa.string()),
            "rating": pa.array(rating.astype(np.int64), mask=rng.random(n_rows) < 0.2),
        },
    )
    return table, len(texts)


def generate(customers: int, activities: int, out: Path) -> dict[str, Any]:
    """Write customers.parquet and the four activity files into `out`; returns the counts."""
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    ids = uuid_strings(rng, customers)
    n_orders = int(activities * SHARES["orders"])
    orders, order_rows = _orders(rng, ids, n_orders)
    tables = {"customers": pa.table({"CustomerId": ids}), "orders": orders}
    tables["order_lines"] = _lines(rng, ids, order_rows, int(activities * SHARES["order_lines"]))
    tables["subscriptions"] = _subscriptions(rng, ids, int(activities * SHARES["subscriptions"]))
    rest = activities - sum(t.num_rows for k, t in tables.items() if k != "customers")
    tables["feedback"], distinct_texts = _feedback(rng, ids, rest)
    for name, table in tables.items():
        tmp = out / f".{name}.parquet.tmp"
        pq.write_table(table, tmp, row_group_size=ROW_GROUP)
        tmp.rename(out / f"{name}.parquet")
    return {
        "rows": {name: t.num_rows for name, t in tables.items()},
        "distinct_texts": distinct_texts,
        "active_subscriptions": tables["subscriptions"].column("end").null_count,
    }


# -- measuring ---------------------------------------------------------------------------------
def data_for(customers: int, activities: int) -> tuple[Path, dict]:
    """The generated files, made once (under a lock) and reused."""
    source = Path(__file__).read_text()
    generator = source[
        source.index("# == Part 2: scale: generating") : source.index("# -- measuring")
    ]
    extra = (HERE / "measures" / "generate.py").read_bytes()
    digest = hashlib.sha1(generator.encode() + extra).hexdigest()[:12]
    out = DATA / f"predictions_{customers}_{activities}" / digest
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        meta_path = out / "meta.json"
        if meta_path.exists():
            return out, json.loads(meta_path.read_text())
        shutil.rmtree(out, ignore_errors=True)  # a generation that did not finish
        t0 = time.perf_counter()
        meta = generate(customers, activities, out)
        meta |= {"generator": digest, "seed": SEED, "seconds": round(time.perf_counter() - t0, 1)}
        meta_path.write_text(json.dumps(meta))
    print(f"generated {meta['rows']} in {meta['seconds']} s: {out}", flush=True)
    return out, meta


def _models() -> list[Any]:
    from audience.predict import config as cfg

    return [
        cfg.TransactionalChurn(name="churn", activity="orders", model="transactional_churn"),
        cfg.LifetimeValue(name="clv", activity="orders", model="lifetime_value"),
        cfg.SubscriptionChurn(
            name="subscription_churn", activity="subscriptions", model="subscription_churn"
        ),
        cfg.ProductRecommendation(
            name="recommended", activity="order_lines", model="product_recommendation"
        ),
        cfg.Sentiment(
            name="feedback_sentiment",
            activity="feedback",
            model="sentiment",
            text="Description",
            rating="rating",
        ),
    ]


def _peak_mb() -> float:
    """This process's peak RSS so far (VmHWM; unlike ru_maxrss it does not start from the
    parent's at fork)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmHWM:\s*(\d+) kB", status, re.M).group(1)) / 1024


@contextlib.contextmanager
def _timed(steps: dict[str, dict[str, Any]], name: str) -> Iterator[dict[str, Any]]:
    """Time the block as steps[name] (wall and CPU seconds, the load average after it)."""
    wall, cpu = time.perf_counter(), _cpu()
    yield steps.setdefault(name, {})
    steps[name] |= {"wall": time.perf_counter() - wall, "cpu": _cpu() - cpu, "load": _load()}
    steps[name]["peak_mb"] = _peak_mb()
    print(f"{name}: {steps[name]['wall']:.1f} s", file=sys.stderr, flush=True)


def scale_child(data: Path, work: Path, profile: Path | None) -> dict[str, Any]:
    """In a fresh process: the predictions stage's work on the generated files, timed."""
    import ibis

    from audience.engine import Engine
    from audience.predict import stage
    from audience.predict.churn import NotEnoughData

    scratch = work / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    backend = ibis.duckdb.connect(
        str(work / "engine.duckdb"), threads=2, temp_directory=str(scratch)
    )
    engine = Engine("duckdb", backend, scratch)
    ctx = SimpleNamespace(
        engine=engine,
        out=lambda relative: work / relative,
        run=SimpleNamespace(add_table=lambda name, relative: None),
    )
    models = _models()
    profiler = cProfile.Profile() if profile else None
    steps: dict[str, dict[str, Any]] = {}
    outcomes, quality_rows = {}, []

    def timed(name: str) -> contextlib.AbstractContextManager[dict[str, Any]]:
        return _timed(steps, name)

    start_mb = _peak_mb()  # Python with the libraries imported, DuckDB connected
    if profiler:
        profiler.enable()
    wall0, cpu0 = time.perf_counter(), _cpu()
    for model in models:
        with timed(model.name) as step:
            rows = backend.read_parquet(str(data / f"{model.activity}.parquet"))
            try:
                # `_train`'s second argument (the run's tables) only matters to the stage
                outcome = stage._train(ctx, None, model, rows, AS_OF)
            except NotEnoughData as e:
                quality_rows.append(stage._not_trained(model, str(e)))
                step["error"] = str(e)
            else:
                outcomes[model.name] = outcome
                quality_rows.append({"Status": "trained", **outcome.quality})
                step["customers"] = len(outcome.values)
                step["quality"] = outcome.quality
    with timed("tables"):
        quality = pa.Table.from_pylist(quality_rows, stage.QUALITY_SCHEMA)
        with timed("Prediction table") as step:
            prediction = stage._prediction_table(outcomes)
            step["rows"] = prediction.num_rows
        with timed("PredictionAttributes table") as step:
            customers = backend.read_parquet(str(data / "customers.parquet"))
            customers = customers.select("CustomerId").to_pandas().CustomerId
            attributes = stage._attributes(SimpleNamespace(predictions=models), customers, outcomes)
            step["rows"] = attributes.num_rows
        with timed("writing the three tables"):
            for name, table in (
                ("PredictionQuality", quality),
                ("Prediction", prediction),
                ("PredictionAttributes", attributes),
            ):
                engine.write_arrow(table, work / "tables" / f"{name}.parquet")
    total = {"wall": time.perf_counter() - wall0, "cpu": _cpu() - cpu0}
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    return {"steps": steps, "total": total, "rss_mb": _peak_mb(), "start_mb": start_mb}


def run_scale(data: Path, profile: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="work-", dir=data))
    try:
        args = [sys.executable, __file__, "--scale-child", str(data), str(work)]
        if profile:
            args.append(str(DATA / "predictions_profile.pstats"))
        done = subprocess.run(args, stdout=subprocess.PIPE, text=True)
        if done.returncode:
            sys.exit(f"the scale run failed (exit {done.returncode}); its stderr is above")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if profile:
            result["profile"] = profile_summary(DATA / "predictions_profile.pstats")
        result["written_mb"] = {
            p.name: round(p.stat().st_size / 1e6, 1) for p in sorted((work / "tables").glob("*"))
        }
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def profile_summary(path: Path, top: int = 25) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    path.with_suffix(".txt").write_text(out.getvalue())
    return out.getvalue()


def scale_section(
    meta: dict, res: dict[str, Any], command: str, load: str, load_after: str, started: str
) -> tuple[str, bool]:
    rows, steps = meta["rows"], res["steps"]
    activities = sum(v for k, v in rows.items() if k != "customers")
    names = {
        "churn": f"transactional churn (orders, {rows['orders']:,} rows)",
        "clv": f"lifetime value (orders, {rows['orders']:,} rows)",
        "subscription_churn": f"subscription churn ({rows['subscriptions']:,} subscriptions)",
        "recommended": f"product recommendation ({rows['order_lines']:,} order lines)",
        "feedback_sentiment": f"sentiment ({rows['feedback']:,} feedback texts)",
    }
    head = ["step", "wall s", "CPU s", "peak RSS after, MB", "customers scored", "grade",
            "metric: model vs baseline", "load after"]  # fmt: skip
    table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, step in steps.items():
        q = step.get("quality")
        if q:
            baseline = "-" if q["BaselineValue"] is None else f"{q['BaselineValue']:.4f}"
            shown = f"{q['Value']:.4f}" if isinstance(q["Value"], float) else f"{q['Value']:,}"
            metric = f"{q['Metric']}: {shown} vs {baseline}"
            if q["Baseline"]:
                metric += f" ({q['Baseline']})"
            grade = q["Grade"] or "-"
        elif "error" in step:
            metric, grade = f"not trained: {step['error']}", "-"
        else:
            metric, grade = (f"{step['rows']:,} rows" if "rows" in step else ""), ""
        customers = f"{step['customers']:,}" if "customers" in step else ""
        name = names.get(key, key if key != "tables" else "the stage's tables (all three)")
        if key in ("Prediction table", "PredictionAttributes table", "writing the three tables"):
            name = "- " + name
        table.append(
            f"| {name} | {step['wall']:.1f} | {step['cpu']:.1f} | {step['peak_mb']:,.0f} | "
            f"{customers} | {grade} | "
            f"{metric} | {step['load']} |"
        )
    total = res["total"]
    met = total["wall"] < TARGET_SECONDS
    table.append(
        f"| **total** | **{total['wall']:.1f}** | {total['cpu']:.1f} | {res['rss_mb']:,.0f} | | | "
        f"target < "
        f"{TARGET_SECONDS:g} s: {'met' if met else 'not met'} | |"
    )
    written = ", ".join(f"{k} {v} MB" for k, v in res["written_mb"].items())
    text = "\n".join([
        f"## Predictions at scale, {label(rows['customers'])} customers, {label(activities)} "
        "activities",
        "",
        f"- Date: {started}; load average "
        f"before the run: {load}, after: {load_after} (another engineer's tests share the 2 "
        "cores: CPU seconds below are this process's own, the 'load after' column is the "
        "machine's after each step)",
        f"- Machine: {describe()}",
        f"- Command: `{command}`",
        f"- Data (generated by this script, generator {meta['generator']}, seed {meta['seed']}, "
        f"{meta['seconds']} s to generate, not timed): {rows['customers']:,} customers, all with "
        f"orders; {rows['orders']:,} orders (`amount`; buy-till-you-die customers: a first "
        "purchase within 3 years, a purchase rate, a lifetime, a typical spend), "
        f"{rows['order_lines']:,} order lines (`product`, {PRODUCTS:,} products in {CLUSTERS} "
        f"taste clusters, Zipf popularity), {rows['subscriptions']:,} subscriptions of "
        f"{rows['customers'] // 5:,} customers "
        f"(`start`, `end` empty for the {meta['active_subscriptions']:,} active, `amount`, "
        f"`auto_renew`), {rows['feedback']:,} feedback texts (`Description` from "
        f"{len(OPENERS) * len(BODIES)} templates with fill-ins: {meta['distinct_texts']:,} "
        "distinct texts; a 1-5 `rating`, 20% empty); Parquet, the columns the models read.",
        "- In one fresh process: per model, the predictions stage's own `_train` (reading the "
        "Parquet file with Ibis on DuckDB, 2 threads; purchases checkpointed as a temp table "
        "as the stage does; default settings: churn window 90 days, CLV horizon 365 days, top "
        "5 products, 90 days ahead for subscriptions), then `_prediction_table`, `_attributes` "
        f"and writing the three tables as Parquet ({written}). Peak RSS of that process "
        f"(VmHWM): {res['rss_mb']:,.0f} MB; the 'peak RSS after' column is the peak so far "
        f"after each step ({res['start_mb']:,.0f} MB before the first: Python with the "
        "libraries imported).",
        "",
        *table,
        "",
        f"Target (all models trained, graded and scored in under {TARGET_SECONDS:g} s on 2 "
        f"cores): {'met' if met else 'not met'} ({total['wall']:.1f} s).",
        "",
    ])  # fmt: skip
    return text, met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["cdnow", "scale", "both"], default="both")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="100k customers, 1M activities")
    parser.add_argument("--profile", action="store_true", help="cProfile the scale run")
    parser.add_argument("--write-results", action="store_true", help="into RESULTS.md")
    parser.add_argument("--scale-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_child:
        data, work, *profile = args.scale_child
        result = scale_child(Path(data), Path(work), Path(profile[0]) if profile else None)
        print(json.dumps(result, default=str))
        return
    if args.quick:
        args.customers, args.activities = 100_000, 1_000_000
    command = " ".join([".venv/bin/python", "benchmarks/predictions.py", *sys.argv[1:]])
    sections, verdicts = [], []
    if args.part in ("cdnow", "both"):
        load, started = _load(), _started()
        section, met = cdnow_section(cdnow(), command, load, started)
        sections.append(section)
        verdicts += met
        print(section, flush=True)
    if args.part in ("scale", "both"):
        data, meta = data_for(args.customers, args.activities)
        load, started = _load(), _started()
        result = run_scale(data, args.profile)
        section, met = scale_section(meta, result, command, load, _load(), started)
        sections.append(section)
        verdicts.append(met)
        print(section)
        if args.profile:
            print(result["profile"])
    if args.write_results:
        from machine import RESULTS, write_section

        for section in sections:
            write_section(section)
        print(f"written to {RESULTS}")
    if not all(verdicts):
        print("not every target was met")


if __name__ == "__main__":
    main()
