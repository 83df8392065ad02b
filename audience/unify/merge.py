"""Merge: dedup winners, CustomerProfile (survivorship per field) and AlternateKey.

Every profile column picks, per customer, one record's value by its policy:
- importance: the first table in the ranking that has a value (default: unify.tables order);
- most_recent / least_recent: by the table's timestamp_column;
- most_frequent: the value most records of the customer have.
Ties fall back to importance, then to the dedup winner, then to the largest key. A group of
columns wins together: one record (chosen by the group's policy among records that fill any
of them) gives all of them, so an address is never stitched from two records.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
from ibis import _

from audience import jsontext
from audience.unify.config import SEMANTIC_TYPES, MergeConfig, MergeField, MergeGroup
from audience.unify.ids import uuid5
from audience.unify.prepare import Prepared, column_of

WINNER_ORDER = {
    "most_filled": [ibis.desc("_filled"), ibis.desc("_key_sort")],
    "most_recent": [ibis.desc("_ts"), ibis.desc("_key_sort")],
    "least_recent": [ibis.asc("_ts"), ibis.desc("_key_sort")],
}
TYPED_FIELDS = {"Person.BirthDate": "date"}


def dedup_winners(prepared: Prepared, dedup_labels: ibis.Table) -> ibis.Table:
    """Per record: its dedup group (within its table) and whether it is the group's winner.

    dedup_labels: `_n`, `cluster` from the components of the dedup pairs alone.
    Returns `_n`, `_group`, `_winner_n`, `_is_winner`.
    """
    records = prepared.records.join(dedup_labels, "_n").rename(_group="cluster")
    parts = []
    for info in prepared.tables:
        order = WINNER_ORDER[info.config.dedup.winner]
        table = records.filter(records._t == info.index)
        rank = ibis.row_number().over(group_by="_group", order_by=order)
        ranked = table.mutate(_rank=rank)
        winners = ranked.filter(_._rank == 0).select(_group="_group", _winner_n="_n")
        parts.append(ranked.join(winners, "_group").select("_n", "_group", "_winner_n"))
    out = ibis.union(*parts)
    return out.mutate(_is_winner=out._n == out._winner_n)


@dataclass
class ProfileColumn:
    name: str
    field: str
    policy: str
    ranking: list[str]


def profile_columns(prepared: Prepared, config: MergeConfig) -> list[ProfileColumn]:
    """The profile's columns: configured ones, plus one per mapped type not configured."""
    mapped = [s for s in prepared.semantics if any(s in i.columns for i in prepared.tables)]
    configured = {f.field: f for f in config.fields}
    columns = []
    for semantic in mapped:
        spec = configured.get(semantic) or MergeField(
            name=SEMANTIC_TYPES.get(semantic, ("", [], semantic.split(".")[-1]))[2],
            field=semantic,
        )
        columns.append(ProfileColumn(spec.name, spec.field, spec.policy, spec.ranking))
    return [c for c in columns if c.name not in config.exclude]


def build_profile(
    prepared: Prepared,
    members: ibis.Table,
    ids: ibis.Table,
    config: MergeConfig,
) -> ibis.Table:
    """CustomerProfile: CustomerId, one column per profile field, one per source key.

    members: the match records with `cluster`, `_is_winner`.
    ids: `cluster`, `CustomerId`, `PreviousCustomerId`.
    """
    columns = profile_columns(prepared, config)
    grouped = {name for g in config.groups for name in g.fields}
    profile = ids
    for column in columns:
        if column.name in grouped:
            continue
        value = _pick(prepared, members, column.policy, column.ranking, [column])
        profile = profile.left_join(value, "cluster").drop("cluster_right")
    for group in config.groups:
        group_columns = [c for c in columns if c.name in group.fields]
        value = _pick(prepared, members, group.policy, group.ranking, group_columns)
        profile = profile.left_join(value, "cluster").drop("cluster_right")
    for info in prepared.tables:
        name = f"{info.ref.source.name}_{info.ref.table.name}_{info.ref.table.primary_key}"
        rank = ibis.row_number().over(
            group_by="cluster", order_by=[ibis.desc("_is_winner"), ibis.desc("_key_sort")]
        )
        keys = (
            members.filter(members._t == info.index)
            .mutate(_r=rank)
            .filter(_._r == 0)
            .select("cluster", **{name: _._key})
        )
        profile = profile.left_join(keys, "cluster").drop("cluster_right")
    return profile.drop("cluster")


def _importance(prepared: Prepared, ranking: list[str]) -> ibis.Value:
    order = ranking or [i.label for i in prepared.tables]
    positions = {
        i.index: order.index(i.label) if i.label in order else len(order) for i in prepared.tables
    }
    return ibis.cases(*[(_._t == t, p) for t, p in positions.items()], else_=len(order))


def _pick(
    prepared: Prepared,
    members: ibis.Table,
    policy: str,
    ranking: list[str],
    columns: list[ProfileColumn],
) -> ibis.Table:
    """One record per cluster by the policy among records filling any of `columns`."""
    raws = [column_of(c.field) for c in columns]
    filled = ibis.or_(*[members[r].notnull() for r in raws])
    candidates = members.filter(filled).mutate(_imp=_importance(prepared, ranking))
    tie_break = [ibis.asc("_imp"), ibis.desc("_is_winner"), ibis.desc("_key_sort")]
    if policy == "most_recent":
        order = [ibis.desc("_ts"), *tie_break]
    elif policy == "least_recent":
        order = [ibis.asc("_ts"), *tie_break]
    elif policy == "most_frequent":
        freq = _.count().over(group_by=["cluster", raws[0]])
        candidates = candidates.mutate(_freq=freq)
        order = [ibis.desc("_freq"), *tie_break]
    else:
        order = tie_break
    rank = ibis.row_number().over(group_by="cluster", order_by=order)
    chosen = candidates.mutate(_r=rank).filter(_._r == 0)
    return chosen.select(
        "cluster",
        **{c.name: _typed(chosen[column_of(c.field)], c.field) for c in columns},
    )


def _typed(value: ibis.Value, semantic: str) -> ibis.Value:
    target = TYPED_FIELDS.get(semantic)
    return value.try_cast(target) if target else value


def alternate_keys(prepared: Prepared, members: ibis.Table, ids: ibis.Table) -> ibis.Table:
    """AlternateKey (seed 004): one row per source record, with the customer's KeyRing."""
    names = {i.index: (i.ref.source.name, i.ref.table.name) for i in prepared.tables}
    source = ibis.cases(*[(_._t == t, s) for t, (s, _t) in names.items()])
    entity = ibis.cases(*[(_._t == t, e) for t, (_s, e) in names.items()])
    records = members.mutate(_source=source, _entity=entity)
    # The preferred key: the dedup winner's, else the largest; an arg-max in the same
    # aggregation (a window over all records cost as much as the rest of the table).
    preference = ibis.ifelse(_._is_winner, "1", "0") + _._key_sort
    per_table = records.group_by(["cluster", "_t", "_source", "_entity"]).agg(
        _keys=('"' + jsontext.escape(_._key) + '"').collect().sort().join(","),
        _preferred=_._key.argmax(preference),
    )
    ring_parts = per_table.select(
        "cluster",
        "_t",
        _part='{"dataSourceName":"'
        + jsontext.escape(_._source)
        + '","entityName":"'
        + jsontext.escape(_._entity)
        + '","preferredKey":"'
        + jsontext.escape(_._preferred)
        + '","keys":['
        + _._keys
        + "]}",
    )
    # Ordered by table position: a zero-padded prefix sorts, then is cut off again.
    rings = ring_parts.group_by("cluster").agg(
        _ring=(_._t.cast("string").lpad(4, "0") + _._part).collect().sort()
    )
    rings = rings.select(
        "cluster", KeyRing="[" + rings._ring.map(lambda p: p.substr(4)).join(",") + "]"
    )
    out = records.join(ids, "cluster").join(rings, "cluster")
    return out.select(
        DataSourceName=_._source,
        EntityName=_._entity,
        AlternateValue=_._key,
        KeyRing=_.KeyRing,
        CustomerId=_.CustomerId,
        AlternateKeyId=uuid5(out._rid),
        Identifier=_._rid,
    )


def group_names(groups: list[MergeGroup]) -> set[str]:
    return {name for g in groups for name in g.fields}
