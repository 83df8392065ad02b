"""The pipeline gives the same results on DuckDB and on Spark, on the demo project."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pytest

from audience.pipeline import run_pipeline
from conftest import demo_project as make_demo_project


@pytest.fixture(scope="module", name="demo_project")
def demo_project_fixture(tmp_path_factory):
    """The demo project on a small generated data set (300 people)."""
    return make_demo_project(tmp_path_factory.mktemp("retail"), people=300, seed=7)


def table_rows(run, name: str) -> list[tuple]:
    path = run.table_path(name)
    pattern = f"{path}/*.parquet" if path.is_dir() else str(path)
    query = f"SELECT * FROM read_parquet('{pattern}')"
    if name == "SegmentHistory":  # this run's sizes, without its id (each run has its own)
        query = f"SELECT * EXCLUDE (RunId) FROM read_parquet('{pattern}') WHERE RunId = '{run.id}'"
    rows = duckdb.sql(query).fetchall()
    return sorted(tuple(_comparable(v) for v in row) for row in rows)


def _comparable(value):
    # Spark marks its timestamps as UTC instants, DuckDB writes them without a zone: the
    # same moments, compared as naive UTC.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    # Sums of doubles depend on the order rows arrive in: equal to 9 significant digits.
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, str) and value[:1] in "[{" and value[-1:] in "]}":
        try:
            return json.dumps(_rounded(json.loads(value)), sort_keys=True)
        except ValueError:
            return value
    return value


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_demo_runs_on_duckdb(demo_project):
    run = run_pipeline(demo_project, engine_kind="duckdb")
    detail = run.results["stages"]["ingest"]["detail"]
    assert len(detail) == 9
    for table in detail.values():
        assert table["rows_in"] == table["rows_loaded"] + table["rows_quarantined"]
    # the generator plants 2 ragged rows, 1 duplicate key and 1 empty key in the CRM file,
    # and 2 broken JSON lines in the loyalty file
    assert detail["crm_contacts"]["rows_quarantined"] == 4
    assert detail["loyalty_members"]["rows_quarantined"] == 2
    reasons = [r[5] for r in table_rows(run, "Quarantine")]
    assert sum("duplicate primary key 'contact_id'" in r for r in reasons) == 1
    assert sum(r == "primary key 'contact_id' is empty" for r in reasons) == 1
    assert sum(r.startswith("not valid JSON") for r in reasons) == 2
    assert detail["loyalty_members"]["columns"]["birthday"] == "DATE"


def test_demo_publishes_activities_measures_and_segments(demo_project):
    from audience.analytics.templates import TEMPLATES

    run = run_pipeline(demo_project, engine_kind="duckdb")
    stages = run.results["stages"]
    activities = stages["activities"]["detail"]
    assert {a["type"] for a in activities.values()} == {
        "SalesOrder", "SalesOrderLine", "WebVisit", "Feedback", "Subscription", "Loyalty"
    }  # fmt: skip
    assert all(a["resolved"] > 0 for a in activities.values())
    # only anonymous web visits (no account) lack a customer
    assert activities["visits"]["unresolved"] > 0 and activities["orders"]["unresolved"] == 0
    used = {m.template for m in demo_project.measures if m.template}
    assert used == set(TEMPLATES)
    own = [m for m in demo_project.measures if not m.template]
    assert len(own) >= 5 and len(demo_project.segments) >= 5
    columns = duckdb.sql(
        f"SELECT * FROM read_parquet('{run.table_path('CustomerAttributes')}')"
    ).columns
    assert columns == ["CustomerId", *[m.name for m in demo_project.measures
                                       if m.kind == "customer_attribute"]]  # fmt: skip
    sizes = stages["segments"]["detail"]["sizes"]
    assert set(sizes) == {s.name for s in demo_project.segments}
    assert sum(size > 0 for size in sizes.values()) >= 5
    spend = duckdb.sql(
        f"SELECT sum(total_transaction_value) FROM read_parquet("
        f"'{run.table_path('CustomerAttributes')}')"
    ).fetchone()[0]
    orders = duckdb.sql(
        f"SELECT sum(total_amount) FROM read_parquet('{run.table_path('shop_events_orders')}') "
        "WHERE status != 'cancelled'"
    ).fetchone()[0]
    assert spend == pytest.approx(orders)  # every order reached exactly one customer


@pytest.mark.spark
def test_spark_gives_the_same_tables_as_duckdb(demo_project):
    duck = run_pipeline(demo_project, engine_kind="duckdb")
    spark = run_pipeline(demo_project, engine_kind="spark")
    assert spark.results["engine"] == "spark" and spark.status == "succeeded"
    assert set(duck.tables) == set(spark.tables)
    for name in duck.tables:
        assert table_rows(duck, name) == table_rows(spark, name), name
    profile = {(r[0], r[1]): r for r in table_rows(spark, "SourceProfile")}
    contact_id = profile[("crm_contacts", "contact_id")]
    assert contact_id[4] == 0 and contact_id[5] == contact_id[3]  # no nulls, all distinct


@pytest.mark.spark
def test_trim_keeps_the_letters_v_and_f_on_spark(demo_project):
    # Ibis's own strip() compiled for Spark trimmed 'v' and 'f' too ("victoria" -> "ictoria").
    from datetime import datetime

    import pyarrow as pa

    from audience import expr
    from audience.engine import Engine, strip_whitespace

    values = [" victoria@x.fv ", "\tf\n", "v"]
    with Engine.connect(demo_project, "spark") as engine:
        t = engine.register_arrow(pa.table({"e": values}), "trim_check")
        trim = expr.compile("trim(e)", {"e": "string"}, t, now=datetime(2026, 1, 1))
        both = t.select(a=strip_whitespace(t.e), b=trim)
        got = engine.to_arrow(both).to_pydict()
    assert got == {"a": ["victoria@x.fv", "f", "v"], "b": ["victoria@x.fv", "f", "v"]}
