"""Affinity: how strongly each customer engages with each value of an activity field
(brands, categories), computed in the engine with window functions (DuckDB and Spark alike).

For one enrichment (`activity`, `field`, optional `weight`):

1. Engagement `w` of a customer with a value = the sum of `weight` over the customer's rows
   with that value (or the number of rows without a weight). Rows without a value are left
   out; a null weight counts 0; a customer-value pair whose engagement is not above 0 (all
   returns, say) is dropped. Weights are counted in units of 1/10,000 as integers, so the
   sums, ties and shares below are exact and the same on every engine (floating-point sums
   depend on the order rows arrive in).
2. Share of voice = 100 * w / the customer's total w, in whole percent, by the largest
   remainder method: every value gets the floor of its share, and the points still missing
   to 100 go one each to the values with the largest remainders (ties: the value's text, in
   order). The shares of a customer's values always sum to exactly 100.
3. Affinity score 1-100 = the customer's percentile rank among everyone who engaged with the
   value: (customers with less w + half of those with the same w) / customers of the value,
   as a whole percent rounded up. It is the textbook "percentile rank", and it treats ties
   fairly: when every buyer of a brand bought it once, they all get 50 (typical), not 1 or
   100. A value with a single customer gives that customer 50 for the same reason: there is
   nobody to be stronger or weaker than. The strongest of N customers gets
   ceil(100 - 50 / N), so a "Very high" needs a few customers to compare with (N >= 4).
4. Bands: Very high 85-100, High 70-84, Medium 35-69, Low 1-34.
5. Per customer, values are ordered by score, then share of voice, then value text; the
   first `top` are kept in the Values JSON and the first is `<name>_top`.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
from ibis import _

from audience import jsontext
from audience.analytics.measures import RowSources
from audience.engine import Engine, strip_whitespace
from audience.enrich.config import AffinityEnrichment
from audience.enrich.errors import EnrichError

WEIGHT_UNITS = 10_000  # weights are summed as integers of 1/10,000
BANDS = ((85, "Very high"), (70, "High"), (35, "Medium"), (1, "Low"))


def band(score: ibis.IntegerValue) -> ibis.StringValue:
    """The band of a score 1-100 (Very high 85-100, High 70-84, Medium 35-69, Low 1-34)."""
    return ibis.cases(*((score >= low, name) for low, name in BANDS[:-1]), else_=BANDS[-1][1])


def python_band(score: int) -> str:
    return next(name for low, name in BANDS if score >= low)


def engagement(rows: ibis.Table, value: ibis.Value, weight: ibis.Value | None) -> ibis.Table:
    """`CustomerId`, `Value` (text), `w` (integer engagement, > 0) per customer and value."""
    text = value.cast("string")
    units = (
        ibis.literal(1, "int64")
        if weight is None
        else (ibis.coalesce(weight.cast("float64"), 0.0) * WEIGHT_UNITS).round().cast("int64")
    )
    kept = rows.select(CustomerId=rows.CustomerId, Value=text, _u=units).filter(
        _.CustomerId.notnull() & _.Value.notnull() & (strip_whitespace(_.Value) != "")
    )
    grouped = kept.group_by(["CustomerId", "Value"]).agg(w=_._u.sum())
    return grouped.filter(_.w > 0)


def scores(pairs: ibis.Table) -> ibis.Table:
    """Share of voice, score, band and rank for each (CustomerId, Value, w); see the module
    docstring. Integer arithmetic throughout, so both engines give the same numbers."""
    per_customer = ibis.window(group_by="CustomerId")
    t = pairs.mutate(_total=_.w.sum().over(per_customer))
    t = t.mutate(_floor=(100 * _.w) // _._total)
    t = t.mutate(
        _rest=100 * _.w - _._floor * _._total,  # remainder, over the same denominator
        _missing=100 - _._floor.sum().over(per_customer),
    )
    t = t.mutate(
        _by_rest=ibis.row_number().over(
            group_by="CustomerId", order_by=[ibis.desc("_rest"), "Value"]
        )
    )
    t = t.mutate(ShareOfVoice=(_._floor + ibis.ifelse(_._by_rest < _._missing, 1, 0)).cast("int64"))
    # Percentile rank among the value's customers: (below + equal / 2) / n, rounded up, as
    # integers: ceil(100 * (2 * below + equal) / (2 * n)).
    t = t.mutate(
        _below=ibis.rank().over(group_by="Value", order_by="w"),
        _equal=_.CustomerId.count().over(group_by=["Value", "w"]),
        _n=_.CustomerId.count().over(group_by="Value"),
    )
    t = t.mutate(
        Score=((100 * (2 * _._below + _._equal) + 2 * _._n - 1) // (2 * _._n)).cast("int64")
    )
    t = t.mutate(Band=band(_.Score))
    t = t.mutate(
        Rank=ibis.row_number().over(
            group_by="CustomerId",
            order_by=[ibis.desc("Score"), ibis.desc("ShareOfVoice"), "Value"],
        )
    )
    return t.select("CustomerId", "Value", "w", "ShareOfVoice", "Score", "Band", "Rank")


@dataclass
class AffinityResult:
    scored: ibis.Table  # every (customer, value): w, ShareOfVoice, Score, Band, Rank
    customers: ibis.Table  # CustomerId, Values (JSON), <name>_top, _top_score, _top_band


def affinity(
    engine: Engine, sources: RowSources, spec: AffinityEnrichment, path: str
) -> AffinityResult:
    """The affinity of every customer with the activity rows of `spec.activity` (a name or
    a type) to the values of `spec.field`."""
    rows = sources.activity(spec.activity, f"{path}.activity")
    fields = rows.fields
    for attr in ("field", "weight"):
        name = getattr(spec, attr)
        if name is not None and name not in fields:
            raise EnrichError(
                f"{path}.{attr}: no field '{name}' in {rows.what}; fields are "
                f"{', '.join(sorted(fields))}"
            )
    wanted = {spec.field} | ({spec.weight} if spec.weight else set())
    table, columns = rows.prepared(wanted)
    weight = table[columns[spec.weight]] if spec.weight else None
    if weight is not None and not (weight.type().is_numeric() or weight.type().is_boolean()):
        raise EnrichError(f"{path}.weight: '{spec.weight}' is {weight.type()}, not a number")
    scored = scores(engagement(table, table[columns[spec.field]], weight))
    # Stored once: the Values lists, the top value and the counts all read it.
    scored = engine.checkpoint(scored, f"affinity_{spec.name}")
    return AffinityResult(scored, per_customer(scored, spec))


def per_customer(scored: ibis.Table, spec: AffinityEnrichment) -> ibis.Table:
    """One row per customer: the Values JSON of the `top` values, and the top value."""
    kept = scored.filter(_.Rank < spec.top)
    entry = jsontext.obj(
        {
            "Value": kept.Value,
            "Score": kept.Score,
            "Band": kept.Band,
            "ShareOfVoice": kept.ShareOfVoice,
        }
    )
    # Collected lists have no order on either engine: a zero-padded rank in front sorts them,
    # and is cut off again (as merge.py builds KeyRing).
    ordered = kept.mutate(_e=kept.Rank.cast("string").lpad(3, "0") + entry)
    lists = ordered.group_by("CustomerId").agg(_entries=_._e.collect().sort())
    head = '{"Field":' + jsontext.value(ibis.literal(spec.field)) + ',"Values":['
    lists = lists.select(
        "CustomerId",
        Values=head + lists._entries.map(lambda e: e.substr(3)).join(",") + "]}",
    )
    top = scored.filter(_.Rank == 0).select(
        _tcid="CustomerId",
        **{
            f"{spec.name}_top": _.Value,
            f"{spec.name}_top_score": _.Score,
            f"{spec.name}_top_band": _.Band,
        },
    )
    return lists.join(top, lists.CustomerId == top._tcid).drop("_tcid")
