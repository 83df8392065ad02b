"""The hand-written side of the measures + segments benchmark: plain DuckDB SQL.

The twelve template numbers per customer in one query (two group-bys, orders and loyalty, left
joined to the profile), and the segment in another, each written to Parquet with `COPY` as
Audience's engine writes its results. `compare` checks the two sides agree.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import duckdb

from .generate import AS_OF

# days covered, all time: from the first order's day to today, at least 1
DAYS = "greatest(DATE '{today}' - o.first_day + 1, 1)"
TEMPLATES_SQL = f"""
COPY (
  WITH o AS (
    SELECT CustomerId, avg(amount) AS atv, sum(amount) AS total, count(*) AS n,
           min(ActivityTimeStamp)::DATE AS first_day, max(ActivityTimeStamp)::DATE AS last_day
    FROM read_parquet('{{orders}}')
    GROUP BY CustomerId
  ), l AS (
    SELECT CustomerId,
           sum(CASE WHEN points > 0 THEN points ELSE 0 END) AS earned,
           sum(CASE WHEN points < 0 THEN -points ELSE 0 END) AS redeemed,
           sum(points) AS balance,
           min(ActivityTimeStamp)::DATE AS first_day
    FROM read_parquet('{{loyalty}}')
    GROUP BY CustomerId
  )
  SELECT p.CustomerId,
         o.atv AS average_transaction_value,
         coalesce(o.total, 0) AS total_transaction_value,
         o.total / {DAYS} AS average_daily_revenue,
         o.total / ({DAYS} / 30.4375) AS average_monthly_revenue,
         o.total / ({DAYS} / 365.25) AS average_yearly_revenue,
         coalesce(o.n, 0) AS number_of_transactions,
         coalesce(l.earned, 0)::BIGINT AS loyalty_points_earned,
         coalesce(l.redeemed, 0)::BIGINT AS loyalty_points_redeemed,
         coalesce(l.balance, 0)::BIGINT AS loyalty_points_balance,
         DATE '{{today}}' - l.first_day AS membership_duration,
         o.last_day - o.first_day AS active_lifespan,
         DATE '{{today}}' - o.last_day AS time_since_last_purchase
  FROM read_parquet('{{profile}}') AS p
  LEFT JOIN o ON o.CustomerId = p.CustomerId
  LEFT JOIN l ON l.CustomerId = p.CustomerId
) TO '{{out}}' (FORMAT PARQUET)
"""

SEGMENT_SQL = """
COPY (
  SELECT CustomerId
  FROM read_parquet('{attributes}')
  WHERE total_transaction_value > 500
    AND time_since_last_purchase <= 90
    AND CustomerId IN (
      SELECT CustomerId
      FROM read_parquet('{visits}')
      WHERE ActivityTimeStamp > TIMESTAMP '{start}' AND ActivityTimeStamp <= TIMESTAMP '{now}'
      GROUP BY CustomerId
      HAVING count(*) >= 2
    )
) TO '{out}' (FORMAT PARQUET)
"""


def connect(threads: int) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(config={"threads": threads})


def templates(data: Path, out: Path, threads: int) -> dict[str, float]:
    """The twelve numbers per customer written to `out`; seconds."""
    sql = TEMPLATES_SQL.format(
        orders=data / "orders.parquet",
        loyalty=data / "loyalty.parquet",
        profile=data / "profile.parquet",
        today=AS_OF.date().isoformat(),
        out=out,
    )
    with connect(threads) as con:
        t0 = time.perf_counter()
        con.execute(sql)
        return {"total": time.perf_counter() - t0}


def segment(data: Path, attributes: Path, out: Path, threads: int) -> dict[str, float]:
    """The segment's members written to `out`, from the attributes file and the visits."""
    sql = SEGMENT_SQL.format(
        attributes=attributes,
        visits=data / "visits.parquet",
        start=AS_OF - timedelta(days=30),
        now=AS_OF,
        out=out,
    )
    with connect(threads) as con:
        t0 = time.perf_counter()
        con.execute(sql)
        return {"total": time.perf_counter() - t0}


def compare(audience: Path, hand: Path, columns: list[str]) -> dict[str, int]:
    """Per column, the customers whose values differ (doubles: relative 1e-9; NULL only equals
    NULL); `_rows` counts customers present on one side only."""
    checks = [
        f"count(*) FILTER (WHERE (a.{c} IS NULL) != (h.{c} IS NULL) OR "
        f"abs(a.{c} - h.{c}) > 1e-9 * greatest(1, abs(h.{c}))) AS {c}"
        for c in columns
    ]
    sql = f"""
        SELECT count(*) FILTER (WHERE a.CustomerId IS NULL OR h.CustomerId IS NULL) AS _rows,
               {", ".join(checks)}
        FROM read_parquet('{audience}') a
        FULL JOIN read_parquet('{hand}') h ON a.CustomerId = h.CustomerId
    """
    with duckdb.connect() as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def same_members(audience: Path, hand: Path) -> tuple[int, int, int]:
    """(Audience's size, the SQL size, customers in one but not the other)."""
    with duckdb.connect() as con:
        return con.execute(f"""
            SELECT (SELECT count(*) FROM read_parquet('{audience}')),
                   (SELECT count(*) FROM read_parquet('{hand}')),
                   count(*) FILTER (WHERE a.CustomerId IS NULL OR h.CustomerId IS NULL)
            FROM read_parquet('{audience}') a
            FULL JOIN read_parquet('{hand}') h ON a.CustomerId = h.CustomerId
        """).fetchone()
