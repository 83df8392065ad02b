"""The demo project's match rules, scored against the generator's true persons."""

from __future__ import annotations

import duckdb
import pytest

from audience.pipeline import run_pipeline
from conftest import demo_project


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retail")
    return folder, run_pipeline(demo_project(folder, people=2000, seed=42))


def test_pairwise_precision_and_recall_against_truth(demo_run):
    folder, run = demo_run
    con = duckdb.connect()
    # A key reused by two people keeps its first record; the second one is quarantined.
    con.execute(
        f'CREATE TABLE truth AS SELECT source, "table", key, first(person_id) AS person '
        f"FROM read_csv('{folder}/data/truth.csv', all_varchar=true) GROUP BY ALL"
    )
    con.execute(
        f"CREATE TABLE j AS SELECT a.CustomerId AS c, t.person AS p FROM "
        f"read_parquet('{run.table_path('AlternateKey')}') a JOIN truth t ON "
        'a.DataSourceName = t.source AND a.EntityName = t."table" AND a.AlternateValue = t.key'
    )
    (joined,) = con.execute("SELECT count(*) FROM j").fetchone()
    assert joined == run.results["stages"]["unify"]["rows"]["AlternateKey"]

    def pairs(group: str) -> int:
        sql = f"SELECT sum(n * (n - 1) / 2) FROM (SELECT count(*) AS n FROM j GROUP BY {group})"
        return con.execute(sql).fetchone()[0]

    true_positives, predicted, actual = pairs("c, p"), pairs("c"), pairs("p")
    precision, recall = true_positives / predicted, true_positives / actual
    assert precision >= 0.97, precision
    assert recall >= 0.97, recall


def test_profile_and_statistics(demo_run):
    _, run = demo_run
    stats = run.results["stages"]["unify"]["detail"]["statistics"]
    assert stats["records"] == sum(t["records"] for t in stats["tables"])
    assert 1900 <= stats["customers"] <= 2100  # 2000 people in the generator
    profile = duckdb.sql(f"SELECT * FROM read_parquet('{run.table_path('CustomerProfile')}')")
    assert "crm_contacts_contact_id" in profile.columns
    assert profile.count("*").fetchone()[0] == stats["customers"]
