"""The predictions stage: train, grade and score every configured model.

Writes:
- `Prediction` (seed 004): one row per customer per model, Values as JSON text;
- `PredictionAttributes`: one row per customer, the models' profile fields
  (`<name>_score`, `<name>_is_churn`, `<name>_value`, ...) that segments can use;
- `PredictionQuality`: per model its metric against a baseline and the grade (or why it
  could not be trained);
- `Sentiment_<name>`: per feedback activity its score, label, words and aspects.
A model the data cannot train (too little history, one outcome only) is reported with the
reason and publishes nothing; the run goes on. Features are computed in the engine; the
models are fitted in this process on one row per customer.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from audience.analytics.stage import RunTables
from audience.outputs import arrow_schema
from audience.predict import config as cfg
from audience.predict import jsonrows
from audience.predict.churn import NotEnoughData, transactional_churn
from audience.predict.features import purchases, time_span
from audience.predict.lifetime_value import lifetime_value
from audience.predict.recommend import purchase_rows, recommend
from audience.predict.sentiment import rating_label, score_texts
from audience.predict.subscription import subscription_churn, subscription_rows
from audience.runs import StageResult
from audience.unify.ids import uuid5

if TYPE_CHECKING:
    from audience.pipeline import Context

PROVIDER = "Audience"
QUALITY_SCHEMA = pa.schema(
    [
        ("Model", pa.string()),
        ("Kind", pa.string()),
        ("Status", pa.string()),
        ("Metric", pa.string()),
        ("Value", pa.float64()),
        ("Baseline", pa.string()),
        ("BaselineValue", pa.float64()),
        ("Grade", pa.string()),
        ("EvaluatedOn", pa.int64()),
        ("Detail", pa.string()),
    ]
)


class Outcome:
    """What one model publishes: Values per customer and profile fields."""

    def __init__(self, values: pd.Series, fields: pd.DataFrame, quality: dict[str, Any]):
        self.values = values  # index CustomerId -> Values (JSON text)
        self.fields = fields  # index CustomerId, columns <name>_<field>
        self.quality = quality


def predictions_stage(ctx: Context, result: StageResult) -> None:
    project = ctx.project
    if "UnifiedActivity" not in ctx.run.tables:
        result.status = "skipped"
        result.detail["reason"] = "predictions need activities (an activities: section)"
        return
    out = RunTables(ctx.engine, project, ctx.run)
    sources = out.row_sources()
    outcomes: dict[str, Outcome] = {}
    quality_rows = []
    for i, model in enumerate(project.predictions):
        rows = sources.activity(model.activity, f"predictions[{i}].activity").table
        try:
            outcome = _train(ctx, out, model, rows, ctx.as_of)
        except NotEnoughData as e:
            quality_rows.append(_not_trained(model, str(e)))
            result.detail.setdefault("warnings", []).append(
                f"predictions[{i}] '{model.name}' not trained: {e}"
            )
        else:
            outcomes[model.name] = outcome
            quality_rows.append({"Status": "trained", **outcome.quality})
            result.detail[model.name] = {
                "customers": len(outcome.values),
                "grade": outcome.quality["Grade"],
                outcome.quality["Metric"]: outcome.quality["Value"],
                "baseline": outcome.quality["BaselineValue"],
            }
        ctx.reporter.step_done("predictions", model.name)
    quality = pa.Table.from_pylist(quality_rows, QUALITY_SCHEMA)
    result.rows["PredictionQuality"] = out.write_arrow("PredictionQuality", quality)
    result.rows["Prediction"] = out.write_arrow("Prediction", _prediction_table(outcomes))
    customers = out.read("CustomerProfile").select("CustomerId").to_pandas().CustomerId
    attributes = _attributes(project, customers, outcomes)
    result.rows["PredictionAttributes"] = out.write_arrow("PredictionAttributes", attributes)


def _train(ctx: Context, out: RunTables, model: Any, rows: ibis.Table, as_of: datetime) -> Outcome:
    name = model.name
    if model.model in ("transactional_churn", "lifetime_value"):
        _need_field(rows, model.amount, model)
        bought = ctx.engine.checkpoint(purchases(rows, model.amount), f"purchases_{name}")
        span = time_span(bought.filter(bought.ts < as_of))
        if span is None:
            raise NotEnoughData(f"activity '{model.activity}' has no purchases before {as_of}")
        if model.model == "transactional_churn":
            churn = transactional_churn(
                name, bought, as_of, model.window_days, model.threshold, span[0]
            )
            return _churn_outcome(name, churn)
        clv = lifetime_value(
            name, bought, as_of, model.horizon_days, model.high_value_share, span[0]
        )
        s = clv.scores
        values = jsonrows.obj(
            {
                "LifetimeValue": jsonrows.number(s.value, 2),
                "HighValue": jsonrows.boolean(s.high_value),
                "Horizon": pd.Series(str(model.horizon_days), index=s.index, dtype=object),
            }
        )
        fields = pd.DataFrame(
            {f"{name}_value": s.value, f"{name}_high_value": s.high_value}, index=s.index
        )
        return Outcome(values, fields, _quality(clv.quality))
    if model.model == "subscription_churn":
        subs = subscription_rows(rows)
        churn = subscription_churn(name, subs, as_of, model.days_ahead, model.threshold)
        return _churn_outcome(name, churn)
    if model.model == "product_recommendation":
        _need_field(rows, model.product, model)
        since = None
        if model.lookback_days:
            since = as_of - pd.Timedelta(days=model.lookback_days)
        bought = purchase_rows(rows.filter(rows.ActivityTimeStamp < as_of), model.product, since)
        rec = recommend(name, bought, model.top_k, model.exclude_repeats, model.max_products)
        s = rec.scores
        values = jsonrows.obj({"Products": s["items"]})
        fields = pd.DataFrame({f"{name}_products": s.products}, index=s.index)
        return Outcome(values, fields, _quality(rec.quality))
    if model.model == "sentiment":
        return _sentiment(ctx, out, model, rows)
    raise AssertionError(model.model)


def _need_field(rows: ibis.Table, field: str, model: Any) -> None:
    if field not in rows.columns:
        known = ", ".join(c for c in rows.columns if not c[0].isupper())
        raise NotEnoughData(f"activity '{model.activity}' has no field '{field}'; fields: {known}")


def _churn_outcome(name: str, churn: Any) -> Outcome:
    s = churn.scores
    values = jsonrows.obj(
        {
            "ChurnScore": jsonrows.number(s.score, 4),
            "IsChurn": jsonrows.boolean(s.is_churn),
            "Drivers": s.drivers,
        }
    )
    fields = pd.DataFrame(
        {f"{name}_score": s.score.round(4), f"{name}_is_churn": s.is_churn.astype(bool)},
        index=s.index,
    )
    return Outcome(values, fields, _quality(churn.quality))


def _sentiment(ctx: Context, out: RunTables, model: cfg.Sentiment, rows: ibis.Table) -> Outcome:
    _need_field(rows, model.text, model)
    columns = {
        "ActivityId": rows.ActivityId,
        "CustomerId": rows.CustomerId,
        "ActivityTimeStamp": rows.ActivityTimeStamp,
        "text": rows[model.text].cast("string"),
    }
    if model.rating:
        _need_field(rows, model.rating, model)
        columns["rating"] = rows[model.rating].cast("float64")
    frame = rows.select(**columns).to_pandas()
    scored = score_texts(frame.text)
    per_text = frame.drop(columns="text").join(scored)
    per_text = per_text[per_text.score.notna()]
    table = pa.Table.from_pandas(
        per_text.rename(columns=str.capitalize).rename(
            columns={
                "Activityid": "ActivityId",
                "Customerid": "CustomerId",
                "Activitytimestamp": "ActivityTimeStamp",
            }
        ),
        preserve_index=False,
    )
    out.write_arrow(f"Sentiment_{model.name}", table)
    by_customer = per_text.groupby("CustomerId").agg(
        score=("score", "mean"), texts=("score", "size")
    )
    by_customer["score"] = by_customer.score.round(2)
    from audience.predict.sentiment import label_of

    by_customer["label"] = by_customer.score.map(label_of)
    values = jsonrows.obj(
        {
            "Score": jsonrows.number(by_customer.score, 2),
            "Label": jsonrows.string(by_customer.label),
            "Texts": by_customer.texts.astype(str).astype(object),
        }
    )
    fields = pd.DataFrame(
        {f"{model.name}_score": by_customer.score, f"{model.name}_label": by_customer.label},
        index=by_customer.index,
    )
    return Outcome(values, fields, _sentiment_quality(model.name, per_text))


def _sentiment_quality(name: str, per_text: pd.DataFrame) -> dict[str, Any]:
    from audience.predict.quality import churn_grade

    texts = len(per_text)
    if "rating" not in per_text or per_text.rating.notna().sum() == 0:
        return {
            "Model": name,
            "Kind": "sentiment",
            "Metric": "texts scored",
            "Value": texts,
            "Baseline": None,
            "BaselineValue": None,
            "Grade": None,
            "EvaluatedOn": texts,
            "Detail": json.dumps({"note": "no ratings given: not graded"}),
        }
    expected = per_text.rating.map(rating_label)
    rated = expected.notna()
    agree = float((per_text.label[rated] == expected[rated]).mean())
    common = expected[rated].value_counts().idxmax()
    baseline = float((expected[rated] == common).mean())
    return {
        "Model": name,
        "Kind": "sentiment",
        "Metric": "agreement with ratings",
        "Value": round(agree, 4),
        "Baseline": f"always '{common}'",
        "BaselineValue": round(baseline, 4),
        "Grade": churn_grade(agree, baseline),
        "EvaluatedOn": int(rated.sum()),
        "Detail": json.dumps({"texts": texts}),
    }


def _quality(q: Any) -> dict[str, Any]:
    return {
        "Model": q.model,
        "Kind": q.kind,
        "Metric": q.metric,
        "Value": q.value,
        "Baseline": q.baseline_name,
        "BaselineValue": q.baseline,
        "Grade": q.grade,
        "EvaluatedOn": q.evaluated_on,
        "Detail": json.dumps(q.extra, sort_keys=True),
    }


def _not_trained(model: Any, reason: str) -> dict[str, Any]:
    return {
        "Model": model.name,
        "Kind": model.model,
        "Status": "not trained",
        "Detail": json.dumps({"reason": reason}),
    }


def _prediction_table(outcomes: dict[str, Outcome]) -> pa.Table:
    schema = arrow_schema("Prediction")
    parts = []
    for name, outcome in outcomes.items():
        ids = pa.array(outcome.values.index.astype(str), pa.string())
        parts.append(
            pa.table(
                {
                    "CustomerId": ids,
                    "ModelProvider": pa.array([PROVIDER] * len(ids), pa.string()),
                    "Model": pa.array([name] * len(ids), pa.string()),
                    "Values": pa.array(outcome.values.to_numpy(dtype=object), pa.string()),
                    "Identifier": pc.binary_join_element_wise(name, ids, "|"),
                }
            )
        )
    if not parts:
        return schema.empty_table()
    table = pa.concat_tables(parts)
    # UUIDv5 of each Identifier, in DuckDB (one Python uuid5 per row took 17 s at 3.3M).
    ids = ibis.memtable(table.select(["Identifier"]))
    guids = ibis.duckdb.connect().to_pyarrow(ids.select(PredictionId=uuid5(ids.Identifier)))
    table = table.append_column("PredictionId", guids["PredictionId"].cast(pa.string()))
    return table.select(schema.names).cast(schema)


def _attributes(project: Any, customers: pd.Series, outcomes: dict[str, Outcome]) -> pa.Table:
    frame = pd.DataFrame(index=pd.Index(customers.astype(str), name="CustomerId"))
    types = {
        "score": pa.float64(),
        "is_churn": pa.bool_(),
        "value": pa.float64(),
        "high_value": pa.bool_(),
        "products": pa.string(),
        "label": pa.string(),
    }
    fields = []
    for model in project.predictions:
        for field in cfg.OUTPUT_FIELDS[model.model]:
            column = f"{model.name}_{field}"
            fields.append(pa.field(column, types[field]))
            outcome = outcomes.get(model.name)
            if outcome is not None:
                frame[column] = outcome.fields[column].reindex(frame.index)
            else:
                frame[column] = None
    frame = frame.reset_index()
    arrays = [pa.array(frame.CustomerId, pa.string())]
    for field in fields:
        column = frame[field.name].astype(object).where(frame[field.name].notna(), None)
        arrays.append(pa.array(column.tolist(), field.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema([("CustomerId", pa.string()), *fields]))
