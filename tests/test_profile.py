"""Column profiles computed in the engine."""

from __future__ import annotations

import json
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from audience.engine import Engine
from audience.profile import profile_table
from conftest import make_project


def test_profile_values(tmp_path):
    table = pa.table(
        {
            "id": [1, 2, 3, 4, 5],
            "city": ["Oslo", "Oslo", None, "Rome", "Oslo"],
            "amount": [10.0, 20.0, None, 30.0, 40.0],
            "born": [date(1990, 1, 1), date(1990, 1, 11), date(1990, 1, 21), None, None],
            "seen": [datetime(2024, 1, 1, 0, 0)] * 5,
            "vip": [True, False, True, None, True],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    project = make_project(tmp_path, [])
    with Engine.connect(project) as engine:
        prof = {
            p["column"]: p
            for p in profile_table(engine.read(tmp_path / "t.parquet"), "t").to_pylist()
        }
    city = prof["city"]
    assert (city["count"], city["nulls"], city["distinct"]) == (5, 1, 2)
    assert (city["min"], city["max"]) == ("Oslo", "Rome")
    assert json.loads(city["top_values"]) == [["Oslo", 3], ["Rome", 1]]
    assert city["histogram"] is None
    amount = prof["amount"]
    assert (amount["min"], amount["max"], amount["mean"], amount["nulls"]) == (
        "10.0",
        "40.0",
        25.0,
        1,
    )
    hist = json.loads(amount["histogram"])
    assert len(hist) == 20 and sum(b["count"] for b in hist) == 4
    assert hist[0] == {"lo": 10.0, "hi": 11.5, "count": 1} and hist[-1]["count"] == 1
    born = prof["born"]
    assert (born["min"], born["max"]) == ("1990-01-01", "1990-01-21")
    born_hist = json.loads(born["histogram"])
    assert born_hist[0]["lo"] == "1990-01-01" and born_hist[-1]["hi"] == "1990-01-21"
    assert [b["count"] for b in born_hist if b["count"]] == [1, 1, 1]
    seen_hist = json.loads(prof["seen"]["histogram"])
    assert len(seen_hist) == 1 and seen_hist[0]["count"] == 5  # one value, one bucket
    assert prof["vip"]["histogram"] is None
    assert json.loads(prof["vip"]["top_values"]) == [["true", 3], ["false", 1]]
    assert prof["id"]["type"] == "int64" and prof["id"]["distinct"] == 5


def test_top_values_ties_in_value_order_and_unique_columns_alike(tmp_path):
    table = pa.table(
        {
            "id": [12, 3, 100, 7, 25, 9, 1, 40, 2, 11, 5, 60],
            "n": [10, 9, 10, 9, 2, 2, 2, 1, 1, 1, 1, None],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    project = make_project(tmp_path, [])
    with Engine.connect(project) as engine:
        t = engine.read(tmp_path / "t.parquet")
        plain = profile_table(t, "t").to_pylist()
        keyed = profile_table(t, "t", unique=["id"]).to_pylist()
    assert plain == keyed  # a column known to be unique gives what grouping it gives
    prof = {p["column"]: p for p in plain}
    # Equal counts are ranked by value as it is (numbers as numbers: 2 before 10).
    assert json.loads(prof["n"]["top_values"]) == [["1", 4], ["2", 3], ["9", 2], ["10", 2]]
    top_ids = json.loads(prof["id"]["top_values"])
    assert [v for v, _ in top_ids] == ["1", "2", "3", "5", "7", "9", "11", "12", "25", "40"]
    assert (prof["id"]["distinct"], prof["n"]["distinct"], prof["n"]["nulls"]) == (12, 4, 1)
