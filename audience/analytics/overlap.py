"""How two segments overlap, and the fields that differ most between their members.

Numbers are compared by their means, scaled by the spread over both segments (a standardised
mean difference, so "spend" and "age" compare on one scale); categories (text with at most
MAX_CATEGORIES values) by the total variation distance of their value shares (0: the same
mix, 1: no value in common).
"""

from __future__ import annotations

from typing import Any

import ibis

from audience.analytics.segments import SegmentBuilder

MAX_CATEGORIES = 50
SKIP = {"CustomerId", "PreviousCustomerId"}


def overlap(builder: SegmentBuilder, a: str, b: str, top: int = 5) -> dict[str, Any]:
    base = builder.base
    t = base.mutate(
        _a=base.CustomerId.isin(builder.members_of(a, "a")),
        _b=base.CustomerId.isin(builder.members_of(b, "b")),
    )
    counts = t.group_by(["_a", "_b"]).agg(n=t.count()).to_pyarrow().to_pylist()
    size = {(r["_a"], r["_b"]): r["n"] for r in counts}
    sizes = {
        "a_only": size.get((True, False), 0),
        "b_only": size.get((False, True), 0),
        "both": size.get((True, True), 0),
        "neither": size.get((False, False), 0),
    }
    union = sizes["a_only"] + sizes["b_only"] + sizes["both"]
    sizes["jaccard"] = round(sizes["both"] / union, 4) if union else 0.0
    differences = _numeric(t) + _categorical(t)
    differences.sort(key=lambda d: -d["score"])
    return {"a": a, "b": b, "sizes": sizes, "differences": differences[:top]}


def _numeric(t: ibis.Table) -> list[dict[str, Any]]:
    columns = [
        c for c, dtype in t.schema().items() if dtype.is_numeric() and c not in SKIP | {"_a", "_b"}
    ]
    if not columns:
        return []
    either = t._a | t._b
    aggs = {}
    for i, c in enumerate(columns):
        value = t[c].cast("float64")
        value = (value.isinf() | value.isnan()).ifelse(ibis.null("float64"), value)
        aggs[f"a{i}"] = value.mean(where=t._a)
        aggs[f"b{i}"] = value.mean(where=t._b)
        aggs[f"s{i}"] = value.std(where=either)
    row = t.aggregate(**aggs).to_pyarrow().to_pylist()[0]
    out = []
    for i, c in enumerate(columns):
        mean_a, mean_b, spread = row[f"a{i}"], row[f"b{i}"], row[f"s{i}"]
        if mean_a is None or mean_b is None:
            continue
        score = abs(mean_a - mean_b) / spread if spread else float(mean_a != mean_b)
        out.append(
            {"field": c, "kind": "number", "a": mean_a, "b": mean_b, "score": round(score, 4)}
        )
    return out


def _categorical(t: ibis.Table) -> list[dict[str, Any]]:
    out = []
    members = t.filter(t._a | t._b)
    candidates = [
        c
        for c, dtype in t.schema().items()
        if (dtype.is_string() or dtype.is_boolean()) and c not in SKIP | {"_a", "_b"}
    ]
    if not candidates:
        return out
    # The members' rows once: each group-by below would otherwise recompute the join of the
    # profile with every attribute table (20 s at 1M customers for ~25 columns).
    members = members.select("_a", "_b", *candidates).cache()
    # One approximate count of distinct values per column first: grouping the members by
    # e-mail, name or key (hundreds of thousands of groups) took 30 s at 1M customers for
    # columns that are then skipped for having too many values anyway.
    distinct = (
        members.aggregate(
            **{f"d{i}": members[c].approx_nunique() for i, c in enumerate(candidates)}
        )
        .to_pyarrow()
        .to_pylist()[0]
    )
    for i, c in enumerate(candidates):
        if (distinct[f"d{i}"] or 0) > 2 * MAX_CATEGORIES:  # the estimate errs by a few %
            continue
        shares = members.group_by(_v=members[c]).agg(
            a=members._a.cast("int64").sum(), b=members._b.cast("int64").sum()
        )
        values = shares.limit(MAX_CATEGORIES + 1).to_pyarrow().to_pylist()
        if len(values) > MAX_CATEGORIES or len(values) < 2:
            continue
        total_a = sum(v["a"] for v in values) or 1
        total_b = sum(v["b"] for v in values) or 1
        distance = sum(abs(v["a"] / total_a - v["b"] / total_b) for v in values) / 2
        top_a = max(values, key=lambda v: v["a"])["_v"]
        top_b = max(values, key=lambda v: v["b"])["_v"]
        out.append(
            {"field": c, "kind": "category", "a": top_a, "b": top_b, "score": round(distance, 4)}
        )
    return out
