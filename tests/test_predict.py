"""Predictions on small data with known answers, the grade rules, and the stage in a run."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import ibis
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from audience.predict.churn import NotEnoughData, transactional_churn
from audience.predict.features import history_features, purchases
from audience.predict.lifetime_value import capture, lifetime_value
from audience.predict.quality import churn_grade, lifetime_value_grade, recommendation_grade
from audience.predict.recommend import recommend
from audience.predict.sentiment import rating_label, score_texts, text_sentiment
from audience.predict.subscription import subscription_churn

AS_OF = datetime(2026, 1, 1)


def _purchases(rows: list[tuple[str, datetime, float]]) -> ibis.Table:
    frame = pd.DataFrame(rows, columns=["CustomerId", "ActivityTimeStamp", "amount"])
    return purchases(ibis.memtable(frame), "amount")


def _shop(seed: int = 3) -> tuple[ibis.Table, set[str]]:
    """200 customers over two years: half keep buying every ~15 days until as_of, half
    stopped at a random time. Loyal customers spend more per order."""
    rng = np.random.default_rng(seed)
    rows, lapsed = [], set()
    start = AS_OF - timedelta(days=730)
    for i in range(200):
        cid = f"C{i:03d}"
        loyal = i % 2 == 0
        stop = AS_OF if loyal else start + timedelta(days=int(rng.integers(60, 600)))
        if not loyal:
            lapsed.add(cid)
        day = start + timedelta(days=int(rng.integers(0, 30)))
        while day < stop:
            rows.append((cid, day, float(rng.normal(80 if loyal else 30, 5))))
            day += timedelta(days=int(rng.integers(8, 22)))
    return _purchases(rows), lapsed


# -- grades ------------------------------------------------------------------------------


def test_churn_grade_rules():
    assert churn_grade(0.90, 0.80) == "A"  # 12.5% above the baseline
    assert churn_grade(0.85, 0.80) == "B"  # 6.25% above
    assert churn_grade(0.80, 0.80) == "C"
    assert churn_grade(0.45, 0.30) == "B"  # far above, but right for under half: not A


def test_lifetime_value_and_recommendation_grade_rules():
    assert lifetime_value_grade(0.525, 0.50) == "A"  # 5% more found
    assert lifetime_value_grade(0.51, 0.50) == "B"
    assert lifetime_value_grade(0.49, 0.50) == "C"
    assert recommendation_grade(0.22, 0.20) == "A"  # 10% better
    assert recommendation_grade(0.21, 0.20) == "B"
    assert recommendation_grade(0.20, 0.20) == "C"


# -- features ----------------------------------------------------------------------------


def test_history_features_only_see_the_past():
    table = _purchases(
        [
            ("A", datetime(2025, 12, 1), 10.0),
            ("A", datetime(2025, 12, 21), 30.0),
            ("A", datetime(2026, 1, 5), 99.0),  # after the cutoff: not seen
            ("B", datetime(2025, 6, 1), 5.0),
        ]
    )
    f = history_features(table, AS_OF)
    assert list(f.index) == ["A", "B"]
    a = f.loc["A"]
    assert (a.recency_days, a.tenure_days, a.purchases, a.spend_total) == (11, 31, 2, 40)
    assert a.purchases_30d == 1 and a.spend_90d == 40 and a.gap_days == 20
    assert a.overdue == pytest.approx(11 / 20)
    assert np.isnan(f.loc["B"].gap_days)  # one purchase day: no gap


# -- transactional churn -----------------------------------------------------------------


def test_churn_scores_lapsed_customers_high_and_explains_why():
    table, lapsed = _shop()
    result = transactional_churn("churn", table, AS_OF, 90, 0.5, AS_OF - timedelta(days=730))
    s = result.scores
    truly = s.index.isin(lapsed)
    assert s.score[truly].mean() > 0.8 and s.score[~truly].mean() < 0.2
    assert (s.is_churn == truly).mean() > 0.95
    q = result.quality
    assert q.kind == "transactional_churn" and q.value > 0.9 and q.extra["auc"] > 0.95
    assert q.grade in {"A", "B", "C"} and q.evaluated_on > 50
    # A long-lapsed customer's first driver is how long ago the last purchase was.
    oldest = s[truly].score.idxmax()
    drivers = json.loads(s.loc[oldest, "drivers"])
    features = {d["Feature"] for d in drivers}
    assert features & {
        "days since the last purchase",
        "purchases in the last 90 days",
        "days since the last purchase relative to the usual gap",
        "spend in the last 90 days",
        "purchases in the last 30 days",
    }
    assert drivers and all(d["Impact"] > 0 for d in drivers)


def test_churn_needs_history_before_the_window():
    table = _purchases([("A", AS_OF - timedelta(days=20), 5.0)])
    with pytest.raises(NotEnoughData, match="needs history before 2025-10-03"):
        transactional_churn("churn", table, AS_OF, 90, 0.5, AS_OF - timedelta(days=20))


def test_churn_with_one_outcome_only_says_so():
    rows = [(f"C{i}", AS_OF - timedelta(days=d), 10.0) for i in range(80) for d in (400, 300)]
    with pytest.raises(NotEnoughData, match="same outcome"):
        transactional_churn("churn", _purchases(rows), AS_OF, 90, 0.5, AS_OF - timedelta(400))


# -- subscription churn --------------------------------------------------------------------


def test_subscription_churn_learns_that_manual_renewal_leaves():
    rng = np.random.default_rng(5)
    rows = []
    for i in range(300):
        manual = i % 3 == 0
        start = AS_OF - timedelta(days=int(rng.integers(200, 700)))
        # Manual renewers leave within 60 days of each 90-day point; others stay.
        end = None
        if manual:
            end = AS_OF - timedelta(days=int(rng.integers(-60, 150)))
            end = None if end >= AS_OF else end
        rows.append((f"S{i:03d}", start, end, 9.99, not manual))
    subs = pd.DataFrame(rows, columns=["CustomerId", "start", "end", "fee", "auto_renew"])
    subs["start"] = pd.to_datetime(subs.start)
    subs["end"] = pd.to_datetime(subs.end)
    result = subscription_churn("plan", subs, AS_OF, 90, 0.5)
    s = result.scores
    manual = s.index.map(lambda c: int(c[1:]) % 3 == 0)
    assert s.score[manual].mean() > s.score[~manual].mean() + 0.3
    assert result.quality.baseline_name == "auto-renew off churns"
    # Only current subscribers are scored.
    active = subs[subs.end.isna()].CustomerId
    assert set(s.index) == set(active)


# -- lifetime value ------------------------------------------------------------------------


def test_lifetime_value_ranks_big_steady_spenders_first():
    table, lapsed = _shop(seed=11)
    result = lifetime_value("clv", table, AS_OF, 180, 0.2, AS_OF - timedelta(days=730))
    s = result.scores
    assert s.high_value.sum() == pytest.approx(0.2 * len(s), abs=2)
    # Every high-value customer is a loyal (still buying, bigger basket) one.
    assert not set(s.index[s.high_value]) & lapsed
    assert s.value[~s.index.isin(lapsed)].mean() > 5 * s.value[s.index.isin(lapsed)].mean()
    assert result.quality.metric == "top 20% found" and result.quality.value >= 0.5


def test_capture_counts_the_overlap_of_the_two_top_shares():
    actual = pd.Series([10, 9, 8, 1, 0], index=list("abcde"), dtype=float)
    predicted = pd.Series([5, 1, 0, 9, 0], index=list("abcde"), dtype=float)
    assert capture(predicted, actual, 0.4) == 0.5  # top 2: {a, b} vs {d, a}


# -- recommendations -----------------------------------------------------------------------


def _baskets() -> pd.DataFrame:
    """Two tastes: products A1-A6 are bought together, B1-B6 together; B is more popular."""
    rng = np.random.default_rng(2)
    rows = []
    for i in range(120):
        taste = "A" if i < 40 else "B"
        bought = rng.choice(6, size=3, replace=False) + 1
        for n, p in enumerate(bought):
            day = AS_OF - timedelta(days=200 - 90 * n)  # the last one falls in the test period
            rows.append((f"C{i:03d}", day, f"{taste}{p}"))
    return pd.DataFrame(rows, columns=["CustomerId", "ts", "product"])


def test_recommendations_follow_what_similar_customers_bought():
    rows = _baskets()
    result = recommend("next", rows, k=2, exclude_repeats=True, max_products=100)
    s = result.scores
    for customer, listed in s.products.items():
        products = listed.split(",")
        assert len(products) == 2
        items = json.loads(s.loc[customer, "items"])
        assert [i["Product"] for i in items] == products and [i["Rank"] for i in items] == [1, 2]
        assert items[0]["Score"] >= items[1]["Score"] > 0
        taste = "A" if int(customer[1:]) < 40 else "B"
        assert all(p.startswith(taste) for p in products), (customer, products)
        owned = set(rows[rows.CustomerId == customer]["product"])
        assert not owned & set(products)  # exclude_repeats
    q = result.quality
    # Popularity recommends B products to A customers too: the model beats it.
    assert q.value > q.baseline and q.grade == "A"


def test_recommendations_refuse_a_catalogue_too_large():
    rows = _baskets()
    with pytest.raises(NotEnoughData, match="at most 5"):
        recommend("next", rows, k=2, exclude_repeats=False, max_products=5)


# -- sentiment -----------------------------------------------------------------------------


def test_sentiment_reads_customer_service_text_right():
    bad = text_sentiment("The app keeps crashing and support never answered. Terrible.")
    assert bad.label == "negative" and bad.score < -2
    assert {"terrible", "crashing"} <= set(bad.words) and "app" in bad.aspects
    good = text_sentiment("Delivery was fast and the lamp is exactly as described. Thank you!")
    assert good.label == "positive" and 0 < good.score <= 5
    assert text_sentiment("Can you send me an invoice for order 5?").label == "neutral"
    assert text_sentiment("Charged twice, still waiting for the refund.").label == "negative"


def test_score_texts_once_per_distinct_text_and_keeps_missing():
    texts = pd.Series(["Great job!", None, "Great job!", "Terrible."], index=[5, 6, 7, 8])
    scored = score_texts(texts)
    assert list(scored.index) == [5, 6, 7, 8]
    labels = scored.label.astype(object).where(scored.label.notna(), None).tolist()
    assert labels == ["positive", None, "positive", "negative"]
    assert np.isnan(scored.score[6])
    assert [rating_label(r) for r in (5, 3, 1, float("nan"))] == [
        "positive",
        "neutral",
        "negative",
        None,
    ]


# -- the stage in a run --------------------------------------------------------------------


def test_predictions_in_a_demo_run(tmp_path):
    from audience.pipeline import run_pipeline
    from conftest import demo_project

    project = demo_project(tmp_path, people=600, seed=4)
    first = run_pipeline(project)
    tables = {
        n: pq.read_table(first.table_path(n)).to_pandas()
        for n in (
            "Prediction",
            "PredictionAttributes",
            "PredictionQuality",
            "CustomerProfile",
            "SegmentMembers",
        )
    }
    prediction = tables["Prediction"]
    assert list(prediction.columns) == [
        "CustomerId",
        "ModelProvider",
        "Model",
        "Values",
        "PredictionId",
        "Identifier",
    ]
    quality = tables["PredictionQuality"].set_index("Model")
    assert list(quality.index) == ["churn", "plan_churn", "clv", "next_products", "feedback"]
    trained = quality[quality.Status == "trained"].index
    assert {"churn", "clv", "feedback"} <= set(trained)
    assert set(prediction.Model) == set(trained)
    assert quality.loc["feedback", "Metric"] == "agreement with ratings"
    assert quality.loc["feedback", "Value"] > quality.loc["feedback", "BaselineValue"]
    # One row of profile fields per customer; churn fields agree with the Prediction rows.
    attributes = tables["PredictionAttributes"].set_index("CustomerId")
    assert len(attributes) == len(tables["CustomerProfile"])
    churn = prediction[prediction.Model == "churn"].set_index("CustomerId")
    some = churn.index[0]
    values = json.loads(churn.loc[some, "Values"])
    assert attributes.loc[some, "churn_score"] == pytest.approx(values["ChurnScore"])
    assert bool(attributes.loc[some, "churn_is_churn"]) == values["IsChurn"]
    # The segment built on prediction fields has exactly the customers the fields say.
    members = tables["SegmentMembers"]
    segment = set(members[members.Segment == "likely_to_churn_valuable"].CustomerId)
    expected = attributes[
        attributes.churn_is_churn.fillna(False) & attributes.clv_high_value.fillna(False)
    ]
    assert segment == set(expected.index) and segment
    # The same input gives the same IDs in the next run.
    second = run_pipeline(project)
    again = pq.read_table(second.table_path("Prediction")).to_pandas()
    assert set(again.PredictionId) == set(prediction.PredictionId)
    # `audience predictions` shows each model's grade, and the untrained ones' reasons.
    from typer.testing import CliRunner

    from audience.cli import app

    shown = CliRunner().invoke(
        app, ["predictions", "--project", str(tmp_path / "audience.yaml")], env={"COLUMNS": "200"}
    )
    assert shown.exit_code == 0, shown.output
    assert "agreement with ratings" in shown.output
    for name in quality.index:
        assert name in shown.output


def test_json_rows_are_valid_json_with_nulls_escapes_and_skipped_items():
    from audience.predict import jsonrows

    index = pd.Index(["a", "b", "c"])
    items = [
        jsonrows.obj({"N": jsonrows.number([1.23456, np.nan, 2.0], 2, index)}),
        jsonrows.obj({"S": jsonrows.string(['say "hi"', "ü\n", None], index)}),
    ]
    present = [pd.Series([True, False, True], index=index), pd.Series(True, index=index)]
    rows = jsonrows.obj(
        {
            "Flag": jsonrows.boolean([True, False, None], index),
            "List": jsonrows.array(items, present),
        }
    )
    assert [json.loads(r) for r in rows] == [
        {"Flag": True, "List": [{"N": 1.23}, {"S": 'say "hi"'}]},
        {"Flag": False, "List": [{"S": "ü\n"}]},
        {"Flag": None, "List": [{"N": 2.0}, {"S": None}]},
    ]
