"""Dedup and match: the record pairs that rules find, with the rule and each condition's score.

Blocking is automatic: a rule's exact conditions are the join keys, so no rule compares every
pair. A rule without an exact condition is blocked on the first three characters of each of
its fuzzy fields (a warning says so: typos in those characters are then missed).

Pairs have the columns
    a, b          the two records' _n (a is in the later table; a > b within one table)
    kind          dedup | match | always_match
    rule          rule name; rule_rank its position in its list (0 = first)
    score         the lowest condition score (1.0 for exact conditions)
    scores        JSON text: {"Identity.Email": 1.0, "Person.FirstName": 0.833}
"""

from __future__ import annotations

import logging

import ibis
import pyarrow as pa
from ibis import _

from audience.engine import Engine
from audience.unify.config import Condition, Rule, UnifyConfig
from audience.unify.normalize_names import given_name_pairs
from audience.unify.prepare import Prepared

log = logging.getLogger(__name__)
PAIR_COLUMNS = ("a", "b", "kind", "rule", "rule_rank", "score", "scores")
BLOCK_PREFIX = 3


def rule_pairs(
    engine: Engine,
    prepared: Prepared,
    rule: Rule,
    rank: int,
    left_t: int,
    right_t: int,
    kind: str,
    exceptions: list[Condition] = (),  # type: ignore[assignment]
) -> ibis.Table:
    """Pairs of records of table `left_t` and `right_t` that satisfy every condition."""
    records = prepared.records
    conditions = list(rule.conditions)
    needed = sorted({prepared.condition_column(c) for c in conditions + list(exceptions)})
    left = records.filter(records._t == left_t).select(a=_._n, **{f"l_{c}": _[c] for c in needed})
    right = records.filter(records._t == right_t).select(b=_._n, **{f"r_{c}": _[c] for c in needed})
    exact = [c for c in conditions if c.is_exact]
    fuzzy = [c for c in conditions if not c.is_exact]
    if exact:
        keys = [prepared.condition_column(c) for c in exact]
        predicates = [left[f"l_{k}"] == right[f"r_{k}"] for k in keys]
    else:
        log.warning(
            "rule '%s' has no exact condition: blocked on the first %d characters of %s",
            rule.name,
            BLOCK_PREFIX,
            ", ".join(c.field for c in fuzzy),
        )
        keys = [prepared.condition_column(c) for c in fuzzy]
        predicates = [
            left[f"l_{k}"].substr(0, BLOCK_PREFIX) == right[f"r_{k}"].substr(0, BLOCK_PREFIX)
            for k in keys
        ]
    pairs = left.join(right, predicates)
    if left_t == right_t:
        pairs = pairs.filter(_.a > _.b)
    scores: dict[str, str] = {}  # field -> the column of pairs holding its score
    for i, condition in enumerate(conditions):
        col = prepared.condition_column(condition)
        if condition.is_exact:
            scores[condition.field] = ""
            continue
        pairs = with_similarity(engine, pairs, col, condition.method, f"_s{i}")
        pairs = pairs.filter(pairs[f"_s{i}"] >= condition.threshold)
        scores[condition.field] = f"_s{i}"
    for i, exception in enumerate(exceptions):
        # Never match when both records have the field and it differs (below the precision).
        col = prepared.condition_column(exception)
        lv, rv = pairs[f"l_{col}"], pairs[f"r_{col}"]
        if exception.is_exact:
            differs = lv != rv
        else:
            pairs = with_similarity(engine, pairs, col, exception.method, f"_x{i}")
            lv, rv = pairs[f"l_{col}"], pairs[f"r_{col}"]
            differs = pairs[f"_x{i}"] < exception.threshold
        pairs = pairs.filter(~(lv.notnull() & rv.notnull() & differs))
    score_values = {
        f: ibis.literal(1.0) if not column else pairs[column] for f, column in scores.items()
    }
    # Each rule is materialised on its own: one query with every rule's joins at once held
    # all their hash tables together and ran out of a 1.2 GB DuckDB memory budget.
    return engine.checkpoint(_pair_columns(pairs, kind, rule.name, rank, score_values), "rule")


def _pair_columns(
    pairs: ibis.Table, kind: str, rule: str, rank: int, scores: dict[str, ibis.Value]
) -> ibis.Table:
    return pairs.select(
        a=_.a,
        b=_.b,
        kind=ibis.literal(kind),
        rule=ibis.literal(rule),
        rule_rank=ibis.literal(rank).cast("int64"),
        score=_lowest(list(scores.values())),
        scores=_scores_json(scores),
    )


def _lowest(scores: list[ibis.Value]) -> ibis.Value:
    # Spark's least() needs two arguments or more; DuckDB's takes one.
    if not scores:
        return ibis.literal(1.0, "float64")
    return (ibis.least(*scores) if len(scores) > 1 else scores[0]).cast("float64")


def with_similarity(
    engine: Engine, pairs: ibis.Table, column: str, method: str, name: str
) -> ibis.Table:
    """`pairs` with a column `name`: the score of l_<column> and r_<column> by `method`,
    computed in the engine (the same numbers as :func:`normalize.similarity`)."""
    a, b = pairs[f"l_{column}"], pairs[f"r_{column}"]
    if method == "name":
        # Nicknames of each other score 1.0: a left join on the (small) list of such pairs.
        known = _given_name_pairs(engine)
        keyed = pairs.mutate(_lo=ibis.least(a, b), _hi=ibis.greatest(a, b))
        joined = keyed.left_join(known, [keyed._lo == known.name_a, keyed._hi == known.name_b])
        listed = joined.name_a.notnull() | (joined[f"l_{column}"] == joined[f"r_{column}"])
        score = ibis.ifelse(listed, 1.0, engine.jaro_winkler(a, b))
        return joined.select(*pairs.columns, **{name: score})
    return pairs.mutate(**{name: similarity(engine, a, b, method)})


def similarity(engine: Engine, a: ibis.Value, b: ibis.Value, method: str) -> ibis.Value:
    """The score of two normalised values by a method that needs no lookup table."""
    if method == "jaro_winkler":
        return engine.jaro_winkler(a, b)
    if method == "date":
        return _date_similarity(a, b)
    longest = ibis.greatest(a.length(), b.length()).cast("float64")
    return (longest - a.levenshtein(b).cast("float64")) / longest


def _date_similarity(a: ibis.Value, b: ibis.Value) -> ibis.Value:
    """YYYY-MM-DD texts: 1.0 equal, 0.9 day and month swapped, 0.8 one part different."""
    (ya, ma, da), (yb, mb, db) = ([v.substr(0, 4), v.substr(5, 2), v.substr(8, 2)] for v in (a, b))
    shaped = (a.length() == 10) & (b.length() == 10)
    same_parts = (ya == yb).cast("int32") + (ma == mb).cast("int32") + (da == db).cast("int32")
    swapped = shaped & (ya == yb) & (ma == db) & (da == mb)
    score = ibis.ifelse(
        a == b, 1.0, ibis.ifelse(swapped, 0.9, ibis.ifelse(shaped & (same_parts == 2), 0.8, 0.0))
    )
    return score.fill_null(0.0)


def _given_name_pairs(engine: Engine) -> ibis.Table:
    """The nickname pairs (name_a < name_b) as an engine table."""

    def build() -> pa.Table:
        pairs = sorted(given_name_pairs())
        return pa.table({"name_a": [p[0] for p in pairs], "name_b": [p[1] for p in pairs]})

    return engine.lookup_table("given_names", build)


def _scores_json(scores: dict[str, ibis.Value]) -> ibis.Value:
    parts = [
        ibis.literal(f'"{field}": ') + value.round(3).cast("string")
        for field, value in scores.items()
    ]
    text = parts[0]
    for part in parts[1:]:
        text = text + ", " + part
    return "{" + text + "}"


def dedup_pairs(engine: Engine, prepared: Prepared, config: UnifyConfig) -> ibis.Table | None:
    """Duplicate pairs inside each table: any dedup rule (each an AND of conditions)."""
    parts = [
        rule_pairs(
            engine,
            prepared,
            rule,
            rank,
            info.index,
            info.index,
            "dedup",
            info.config.dedup.exceptions,
        )
        for info in prepared.tables
        for rank, rule in enumerate(info.config.dedup.rules)
    ]
    if not parts:
        return None
    # A pair found by several rules is reported once, with its first rule.
    return _first_rule_per_pair(ibis.union(*parts))


def match_pairs(engine: Engine, prepared: Prepared, config: UnifyConfig) -> ibis.Table | None:
    """Pairs across tables. For each record of the later table, a pair's rules are tried in
    order: a later rule counts only when no earlier rule found anything for that record."""
    index = {info.label: info.index for info in prepared.tables}
    parts = []
    for pair in config.match:
        left_t, right_t = index[pair.table], index[pair.against]
        found = ibis.union(
            *[
                rule_pairs(engine, prepared, rule, rank, left_t, right_t, "match", pair.exceptions)
                for rank, rule in enumerate(pair.rules)
            ]
        )
        # Materialised first: Spark (through Ibis) cannot resolve a window over a union.
        found = engine.checkpoint(found, "rule_pairs")
        first = found.mutate(_first=found.rule_rank.min().over(group_by="a"))
        parts.append(first.filter(first.rule_rank == first._first).drop("_first"))
    if not parts:
        return None
    return _first_rule_per_pair(ibis.union(*parts))


def _first_rule_per_pair(pairs: ibis.Table) -> ibis.Table:
    order = [pairs.rule_rank, ibis.desc(pairs.score), pairs.rule]
    rank = ibis.row_number().over(group_by=["a", "b"], order_by=order)
    return pairs.mutate(_first=rank).filter(_._first == 0).drop("_first")


def key_pairs(
    engine: Engine, prepared: Prepared, pairs: list[tuple[str, str]], name: str
) -> ibis.Table:
    """Custom-match pairs given as record ids ('source|table|key') as (a, b) record numbers."""
    table = engine.register_arrow(
        pa.table(
            {"rid1": [p[0] for p in pairs], "rid2": [p[1] for p in pairs]},
        ),
        name,
    )
    records = prepared.records.select("_n", "_rid")
    r1 = records.rename(n1="_n", rid1_="_rid")
    r2 = records.rename(n2="_n", rid2_="_rid")
    joined = table.join(r1, table.rid1 == r1.rid1_).join(r2, table.rid2 == r2.rid2_)
    return (
        joined.select(a=ibis.greatest(_.n1, _.n2), b=ibis.least(_.n1, _.n2))
        .filter(_.a != _.b)
        .distinct()
    )


def apply_custom(
    engine: Engine,
    prepared: Prepared,
    pairs: ibis.Table | None,
    always: list[tuple[str, str]],
    never: list[tuple[str, str]],
) -> ibis.Table | None:
    """Add always-match pairs and remove never-match pairs (in either order)."""
    if never and pairs is not None:
        banned = key_pairs(engine, prepared, never, "never_match")
        normal = pairs.select("a", "b").mutate(_x=ibis.greatest(_.a, _.b), _y=ibis.least(_.a, _.b))
        keep = normal.anti_join(banned, [normal._x == banned.a, normal._y == banned.b])
        pairs = pairs.semi_join(keep.select("a", "b"), ["a", "b"])
    if always:
        forced = key_pairs(engine, prepared, always, "always_match").select(
            "a",
            "b",
            kind=ibis.literal("always_match"),
            rule=ibis.literal("always_match"),
            rule_rank=ibis.literal(0).cast("int64"),
            score=ibis.literal(1.0),
            scores=ibis.literal("{}"),
        )
        pairs = forced if pairs is None else ibis.union(pairs, forced)
    return pairs
