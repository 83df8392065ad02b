"""Synthetic customers and activities for the measures + segments benchmark.

`generate(customers, activities, out)` writes, seeded and vectorised (numpy + pyarrow, no
Python loop per row):
- `profile.parquet`: a CustomerProfile-like table: CustomerId (a UUID-shaped string),
  FirstName, LastName, Email (10% null), City, State;
- `orders.parquet` (SalesOrder, semantic field `amount` double, 0.5% null), 50% of the
  activity rows; 20% of the customers never order (and some others happen to draw none), the
  others have log-normal weights, so a few order a lot;
- `loyalty.parquet` (Loyalty, `points` int64: 75% earned 10..500, 25% redeemed -1000..-50),
  30% of the rows, from the 55% of customers who are members;
- `visits.parquet` (WebVisit, `page_type` string), 20% of the rows, from 60% of the customers,
  more recent than orders (exponential ages, mean 120 days).

The activity files have the columns of a run's `Activity_<name>` tables: CustomerId,
ActivityId (`<activity>|<key>`), SourceActivityId, ActivityTimeStamp (timestamp[us], spread
over the 3 years before AS_OF), then the semantic field. Rows are in random order, in row
groups of 122,880 rows as DuckDB writes them.

    python benchmarks/measures/generate.py 100000 1000000 /tmp/measures_small
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SEED = 20261126
AS_OF = datetime(2026, 1, 31, 12, 0)  # the run's reference time ("now")
YEARS = 3
SHARES = {"orders": 0.5, "loyalty": 0.3, "visits": 0.2}  # of the activity rows
ROW_GROUP = 122_880

FIRST = [
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Carlos", "Maria", "Wei", "Li",
    "Aisha", "Omar", "Priya", "Raj", "Yuki", "Olga", "Ivan", "Sofia",
]  # fmt: skip
LAST = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Lee", "Perez",
    "White", "Harris", "Clark", "Nguyen", "Hill", "Chen",
]  # fmt: skip
PLACES = [
    ("Springfield", "IL"), ("Riverside", "CA"), ("Franklin", "TN"), ("Greenville", "SC"),
    ("Bristol", "CT"), ("Clinton", "IA"), ("Fairview", "OR"), ("Salem", "MA"),
    ("Madison", "WI"), ("Georgetown", "TX"), ("Arlington", "VA"), ("Dover", "DE"),
    ("Oxford", "MS"), ("Jackson", "MI"), ("Burlington", "VT"), ("Auburn", "AL"),
]  # fmt: skip
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "example.org"]
PAGE_TYPES = ["home", "product", "category", "search", "cart", "checkout", "account"]
PAGE_P = [0.2, 0.35, 0.2, 0.1, 0.08, 0.04, 0.03]

SPAN_US = int(YEARS * 365.25 * 86_400 * 1_000_000)
AS_OF_US = int((AS_OF - datetime(1970, 1, 1)).total_seconds()) * 1_000_000


def pick(
    rng: np.random.Generator, words: list[str], n: int, p: list[float] | None = None
) -> pa.Array:
    """n strings drawn from `words` (dictionary-decoded, so no Python string per row)."""
    index = pa.array(rng.choice(len(words), size=n, p=p).astype(np.int32))
    return pa.DictionaryArray.from_arrays(index, pa.array(words)).cast(pa.string())


def uuid_strings(rng: np.random.Generator, n: int) -> pa.Array:
    """n random UUID-shaped strings (8-4-4-4-12 hex digits), distinct."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    nibbles = np.empty((n, 32), np.uint8)
    nibbles[:, 0::2], nibbles[:, 1::2] = raw >> 4, raw & 15
    chars = np.frombuffer(b"0123456789abcdef", dtype="S1")[nibbles]
    out = np.full((n, 36), b"-", dtype="S1")
    out[:, [i for i in range(36) if i not in (8, 13, 18, 23)]] = chars
    ids = pa.array(out.view("S36").ravel()).cast(pa.string())
    assert pc.count_distinct(ids).as_py() == n  # 128 random bits: a clash is all but impossible
    return ids


def profile(rng: np.random.Generator, n: int) -> pa.Table:
    ids = uuid_strings(rng, n)
    first, last = pick(rng, FIRST, n), pick(rng, LAST, n)
    place = rng.integers(0, len(PLACES), size=n)
    city = pa.array(np.array([c for c, _s in PLACES])[place])
    state = pa.array(np.array([s for _c, s in PLACES])[place])
    number = pc.cast(pa.array(rng.integers(1, 10_000, size=n)), pa.string())
    email = pc.utf8_lower(
        pc.binary_join_element_wise(first, ".", last, number, "@", pick(rng, DOMAINS, n), "")
    )
    email = pc.if_else(pa.array(rng.random(n) < 0.10), pa.scalar(None, pa.string()), email)
    return pa.table(
        {
            "CustomerId": ids,
            "FirstName": first,
            "LastName": last,
            "Email": email,
            "City": city,
            "State": state,
        }
    )


def who(rng: np.random.Generator, n: int, rows: int, share: float, sigma: float) -> np.ndarray:
    """Customer index of each of `rows` activities: a `share` of the customers take part, with
    log-normal weights (a few customers have many activities)."""
    weight = rng.lognormal(0.0, sigma, size=n) * (rng.random(n) < share)
    return rng.choice(n, size=rows, p=weight / weight.sum())


def timestamps(rng: np.random.Generator, rows: int, mean_days: float | None) -> pa.Array:
    """Times before AS_OF within YEARS: uniform, or exponential ages with this mean."""
    if mean_days is None:
        age = rng.integers(1, SPAN_US, size=rows)
    else:
        age = (rng.exponential(mean_days * 86_400e6, size=rows) % SPAN_US).astype(np.int64) + 1
    return pa.array(AS_OF_US - age, pa.timestamp("us"))


def activity(
    name: str, ids: pa.Array, who_index: np.ndarray, ts: pa.Array, fields: dict[str, pa.Array]
) -> pa.Table:
    key = pc.cast(pa.array(np.arange(1, len(who_index) + 1)), pa.string())
    return pa.table(
        {
            "CustomerId": ids.take(pa.array(who_index)),
            "ActivityId": pc.binary_join_element_wise(f"{name}|", key, ""),
            "SourceActivityId": key,
            "ActivityTimeStamp": ts,
            **fields,
        }
    )


def generate(customers: int, activities: int, out: Path) -> dict[str, int]:
    """Write the four Parquet files into `out`; returns the rows of each."""
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    people = profile(rng, customers)
    ids = people.column("CustomerId").combine_chunks()
    rows = {name: int(activities * share) for name, share in SHARES.items()}
    tables = {"profile": people}

    n = rows["orders"]
    amount = np.round(rng.lognormal(3.8, 0.8, size=n), 2)
    amount_arr = pa.array(amount, mask=rng.random(n) < 0.005)
    tables["orders"] = activity(
        "orders", ids, who(rng, customers, n, 0.8, 1.0), timestamps(rng, n, None),
        {"amount": amount_arr},
    )  # fmt: skip

    n = rows["loyalty"]
    earned = rng.random(n) < 0.75
    points = np.where(earned, rng.integers(10, 501, size=n), -rng.integers(50, 1001, size=n))
    tables["loyalty"] = activity(
        "loyalty", ids, who(rng, customers, n, 0.55, 0.8), timestamps(rng, n, None),
        {"points": pa.array(points.astype(np.int64))},
    )  # fmt: skip

    n = rows["visits"]
    tables["visits"] = activity(
        "visits", ids, who(rng, customers, n, 0.6, 1.5), timestamps(rng, n, 120.0),
        {"page_type": pick(rng, PAGE_TYPES, n, PAGE_P)},
    )  # fmt: skip

    for name, table in tables.items():
        tmp = out / f".{name}.parquet.tmp"
        pq.write_table(table, tmp, row_group_size=ROW_GROUP)
        tmp.rename(out / f"{name}.parquet")
    return {name: t.num_rows for name, t in tables.items()}


if __name__ == "__main__":
    t0 = time.perf_counter()
    counts = generate(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
    print(counts, f"{time.perf_counter() - t0:.1f} s")
