"""The numbers and charts of the measure pages: statistics of customer attributes, histograms
(numbers, dates), top values, and business/customer measures as chart series.

Everything is aggregated in DuckDB; only aggregates (a row of statistics, a few dozen bins,
at most CHART_ROWS rows of a business measure) reach Python, so a page costs the same few
queries at 1M customers as at 300.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import ibis
import ibis.expr.datatypes as dt

from audience import expr
from audience.analytics.config import Measure
from audience.api.routes import lists

BINS = 20  # histogram bars, about: widths are rounded to 1, 2 or 5 x 10^k
TOP_VALUES = 15  # bars of a text attribute, a business measure by category
SERIES = 8  # lines of a business measure with two dimensions
CHART_ROWS = 1000  # rows of a business measure drawn over time
TABLE_ROWS = 100
TOP_ROWS = 20

Fetch = Callable[[ibis.Table], list[dict[str, Any]]]


def value_text(value: Any) -> str:
    """A value as the pages show it: 1,234 / 1,234.57 / true / 2026-01-31."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        return f"{value:,.2f}" if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _short(value: float) -> str:
    """A bin edge on a chart axis: 950, 2.5, 0.05, 1500, 12k, 1.5M."""
    if abs(value) >= 1e4:
        size, suffix = next(p for p in ((1e9, "B"), (1e6, "M"), (1e3, "k")) if abs(value) >= p[0])
        return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def kind_of(dtype: dt.DataType) -> str:
    """How a column is summarised: number (histogram), time (per month) or category (top)."""
    if dtype.is_numeric() and not dtype.is_boolean():
        return "number"
    if dtype.is_temporal():
        return "time"
    return "category"


def type_name(dtype: dt.DataType) -> str:
    if dtype.is_boolean():
        return "boolean"
    if dtype.is_numeric():
        return "number"
    if dtype.is_temporal():
        return "time"
    return "text"


# -- statistics, aggregated in DuckDB ----------------------------------------------------------
def _finite(column: ibis.Value) -> ibis.Value:
    # NaN sorts above every number in DuckDB and would become the maximum; it is no value.
    if column.type().is_floating():
        return ibis.ifelse(column.isnan() | column.isinf(), ibis.null(column.type()), column)
    return column


def attribute_overview(db: lists.RunDatabase) -> dict[str, Any]:
    """Customers and, per customer attribute, customers with a value, min, average and max
    (most common value for text): one query over CustomerAttributes."""
    table = db.table("CustomerAttributes")
    names = [c for c in table.columns if c != "CustomerId"]
    aggs: dict[str, ibis.Value] = {"customers": table.count()}
    for i, name in enumerate(names):
        value = _finite(table[name])
        aggs[f"a{i}_values"] = value.count()
        kind = kind_of(value.type())
        if kind != "category":
            aggs[f"a{i}_min"], aggs[f"a{i}_max"] = value.min(), value.max()
        if kind == "number":
            aggs[f"a{i}_mean"] = value.cast("float64").mean()
        if kind == "category":
            aggs[f"a{i}_mode"] = value.mode()
    row = db_fetch(db)(table.aggregate(**aggs))[0]
    stats = {
        name: {k: row.get(f"a{i}_{k}") for k in ("values", "min", "mean", "max", "mode")}
        for i, name in enumerate(names)
    }
    return {"customers": row["customers"], "attributes": stats}


def bins_for(lo: float, hi: float, integer: bool) -> tuple[float, float, int]:
    """(start, width, count) of about BINS equal bins covering lo..hi, with a round width."""
    span = hi - lo
    if span <= 0:
        return (math.floor(lo) if integer else lo), 1.0, 1
    raw = span / BINS
    magnitude = 10 ** math.floor(math.log10(raw))
    width = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-12))
    if integer:
        width = max(1.0, float(round(width)))
    start = math.floor(lo / width) * width
    return start, width, int((hi - start) // width) + 1


def _bin_label(start: float, width: float, integer: bool) -> str:
    if integer and width == 1:
        return f"{int(start):,}"
    if integer:
        return f"{_short(start)}–{_short(start + width - 1)}"
    return f"{_short(start)}–{_short(start + width)}"


def histogram(
    fetch: Fetch, table: ibis.Table, value: ibis.Value, lo: float, hi: float, p99: float | None
) -> dict[str, Any]:
    """Customers per value range: one grouped query (bins found by arithmetic in DuckDB).

    Spend and counts have long tails: the bins cover min..99th percentile and the last one
    also holds every larger value, so one big customer does not squeeze the rest into a bar."""
    integer = value.type().is_integer()
    upper = min(float(hi), float(p99)) if p99 is not None else float(hi)
    start, width, count = bins_for(float(lo), upper, integer)
    index = ((value.cast("float64") - start) / width).floor().cast("int64")
    # Clamped: the tail above the last bin, and edges DuckDB and Python round differently.
    index = ibis.greatest(ibis.least(index, count - 1), 0)
    query = table.filter(value.notnull()).group_by(bin=index).aggregate(customers=ibis._.count())
    counts = [0] * count
    for row in fetch(query):
        counts[row["bin"]] = row["customers"]
    labels = [_bin_label(start + i * width, width, integer) for i in range(count)]
    if float(hi) >= start + count * width:
        labels[-1] = f"≥ {_short(start + (count - 1) * width)}"
    return chart("bar", labels, [("customers", counts)], histogram=True, y="customers")


def time_histogram(
    fetch: Fetch, table: ibis.Table, value: ibis.Value, lo: Any, hi: Any
) -> dict[str, Any]:
    """Customers per month (per year when the values span more than six years)."""
    by_year = (hi - lo).days > 6 * 366
    query = (
        table.filter(value.notnull())
        .group_by(bin=value.truncate("Y" if by_year else "M"))
        .aggregate(customers=ibis._.count())
        .order_by("bin")
    )
    rows = fetch(query)
    labels = [r["bin"].isoformat()[: 4 if by_year else 7] for r in rows]
    return chart("bar", labels, [("customers", [r["customers"] for r in rows])], y="customers")


def top_values(fetch: Fetch, table: ibis.Table, value: ibis.Value) -> dict[str, Any]:
    query = (
        table.filter(value.notnull())
        .group_by(value=value)
        .aggregate(customers=ibis._.count())
        .order_by([ibis.desc("customers"), "value"])
        .limit(TOP_VALUES)
    )
    rows = fetch(query)
    labels = [value_text(r["value"]) for r in rows]
    return chart("bar", labels, [("customers", [r["customers"] for r in rows])], y="customers")


def summarize(fetch: Fetch, table: ibis.Table, column: str) -> dict[str, Any]:
    """Customers, customers with a value, min/average/max and the distribution of one column
    (a histogram, customers per month, or the top values): two queries."""
    value = _finite(table[column])
    kind = kind_of(value.type())
    aggs: dict[str, ibis.Value] = {"customers": table.count(), "values": value.count()}
    if kind != "category":
        aggs |= {"min": value.min(), "max": value.max()}
    if kind == "number":
        aggs |= {"mean": value.cast("float64").mean(), "p99": value.approx_quantile(0.99)}
    if kind == "category":
        aggs["distinct"] = value.nunique()
    stats = fetch(table.aggregate(**aggs))[0] | {"kind": kind, "chart": None}
    if stats["values"]:
        if kind == "number":
            bounds = stats["min"], stats["max"], stats["p99"]
            stats["chart"] = histogram(fetch, table, value, *bounds)
        elif kind == "time":
            stats["chart"] = time_histogram(fetch, table, value, stats["min"], stats["max"])
        else:
            stats["chart"] = top_values(fetch, table, value)
    return stats


def chart(
    kind: str,
    labels: list[str],
    series: list[tuple[str, list[Any]]],
    histogram: bool = False,
    x: str = "",
    y: str = "",
) -> dict[str, Any]:
    """What a <canvas class="ms-chart"> draws (measures/_charts.html reads it as JSON)."""
    return {
        "type": kind,
        "labels": labels,
        "series": [{"label": name, "data": data} for name, data in series],
        "histogram": histogram,
        "x": x,
        "y": y,
    }


# -- customer and business measures -----------------------------------------------------------
TIME_WORDS = re.compile(r"(?i)year|month|quarter|week|day|date|time")


def _is_yyyymm(values: list[Any]) -> bool:
    return bool(values) and all(
        isinstance(v, int)
        and not isinstance(v, bool)
        and 100001 <= v <= 999912
        and 1 <= v % 100 <= 12
        for v in values
    )


def _every_month(first: int, last: int) -> list[int]:
    """yyyymm from first to last: months without rows stay on the axis (as gaps)."""
    year, month = divmod(first, 100)
    out: list[int] = []
    while year * 100 + month <= last and len(out) < CHART_ROWS:
        out.append(year * 100 + month)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _axis_labels(values: list[Any]) -> list[str]:
    """yyyymm and yyyymmdd numbers (what year(t) * 100 + month(t) makes) as dates."""
    if _is_yyyymm(values):
        return [f"{v // 100}-{v % 100:02d}" for v in values]
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if all(10000101 <= v <= 99991231 and 1 <= v // 100 % 100 <= 12 for v in values):
            return [f"{v // 10000}-{v // 100 % 100:02d}-{v % 100:02d}" for v in values]
        return [str(v) for v in values]
    return [value_text(v).replace("–", "(empty)") for v in values]


def pivot(
    rows: list[dict[str, Any]], x: str, others: list[str], value: str, time_like: bool
) -> dict[str, Any]:
    """Rows (x, other dimensions, value) as a chart: x along the axis, one line (or set of
    bars) per combination of the other dimensions, the SERIES largest kept."""
    xs = list(dict.fromkeys(r[x] for r in rows))
    series: dict[str, dict[Any, Any]] = {}
    for r in rows:
        key = " / ".join(value_text(r[o]) for o in others) if others else value
        series.setdefault(key, {})[r[x]] = r[value]

    def size(points: dict[Any, Any]) -> float:
        return sum(abs(v) for v in points.values() if isinstance(v, int | float))

    kept = sorted(series, key=lambda k: -size(series[k]))[:SERIES]
    if time_like and _is_yyyymm(xs):
        xs = _every_month(min(xs), max(xs))
    data = [(k, [series[k].get(v) for v in xs]) for k in kept]
    return chart("line" if time_like else "bar", _axis_labels(xs), data, x=x, y=value)


def business_view(db: lists.RunDatabase, m: Measure) -> dict[str, Any]:
    """A business measure's rows: a line over time (a time-like first dimension) or bars."""
    table = db.table(f"Measure_{m.name}")
    dims = [(n, source) for n, source in dimensions(m) if n in table.columns]
    total = int(db.scalar(table.count()))
    if not dims:
        return {"total": total, "rows": db.rows(table.limit(1)), "columns": table.columns}
    schema = table.schema()
    # A date, a timestamp, or a number made of time parts ({month: year(t) * 100 + month(t)}).
    timed = [
        n
        for n, source in dims
        if schema[n].is_temporal()
        or (schema[n].is_integer() and (TIME_WORDS.search(source) or TIME_WORDS.search(n)))
    ]
    x = timed[0] if timed else dims[0][0]
    others = [n for n, _ in dims if n != x]
    if timed or others:
        rows = db.rows(table.order_by([x, *others]).limit(CHART_ROWS))
    else:  # one category: the largest first
        rows = db.rows(table.order_by([ibis.desc(m.name), x]).limit(TOP_VALUES))
    drawn = pivot(rows, x, others, m.name, bool(timed))
    points = zip(drawn["labels"], drawn["series"][0]["data"], strict=True) if rows else []
    return {
        "total": total,
        "chart": drawn,
        "latest": [(x, y) for x, y in points if y is not None][-1:] if timed and not others else [],
        "rows": rows[:TABLE_ROWS],
        "columns": [n for n, _ in dims] + [m.name],
        "shown": len(rows),
    }


def customer_view(db: lists.RunDatabase, m: Measure) -> dict[str, Any]:
    """A customer measure: its size, the rows with the largest values, rows per value of its
    first dimension (with one dimension, that is customers: a row is one customer and value)."""
    table = db.table(f"Measure_{m.name}")
    dims = [n for n, _ in dimensions(m) if n in table.columns]
    stats = db.rows(table.aggregate(rows=table.count(), customers=table.CustomerId.nunique()))[0]
    top = db.rows(table.order_by([ibis.desc(m.name), table.CustomerId]).limit(TOP_ROWS))
    view = {"stats": stats, "rows": top, "columns": ["CustomerId", *dims, m.name], "chart": None}
    if dims:
        # count(*), not count(DISTINCT CustomerId): the same number here at a fraction of it.
        query = (
            table.group_by(value=table[dims[0]])
            .aggregate(n=ibis._.count())
            .order_by([ibis.desc("n"), "value"])
            .limit(TOP_VALUES)
        )
        rows = db.rows(query)
        what = "customers" if len(dims) == 1 else "rows"
        labels = _axis_labels([r["value"] for r in rows])
        view["chart"] = chart("bar", labels, [(what, [r["n"] for r in rows])], x=dims[0], y=what)
    return view


# -- the builder's measure, computed on the current run ----------------------------------------


def expr_text(value: Any) -> str:
    """An expression as the expression language writes it (text stays as typed)."""
    return value if isinstance(value, str) else expr.to_text(expr.parse(value, path=""))


def dimensions(m: Measure) -> list[tuple[str, str]]:
    """(column in Measure_<name>, its expression) per dimension, named as MeasureBuilder names
    them ('order.status' becomes the column order_status)."""
    out = []
    for dim in m.dimensions:
        name, source = next(iter(dim.items())) if isinstance(dim, dict) else (dim, dim)
        out.append((name.replace(".", "_"), expr_text(source)))
    return out


def db_fetch(db: lists.RunDatabase) -> Fetch:
    return lambda query: db.arrow(query).to_pylist()  # on its own cursor, as the API reads
