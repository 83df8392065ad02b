"""The unify stage: landed source tables in, customers out.

    prepare (map, derive, normalise) -> dedup pairs + match pairs (+ custom match)
    -> cluster (connected components, giant guard) -> stable CustomerIds -> merge
Outputs in the run's tables/: CustomerProfile, AlternateKey, ConflationMatchPair,
Deduplication_<source>_<table>, UnifyStatistics, MatchRecords (the normalised records that
`audience explain` shows and a later incremental run can reuse).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
from ibis import _

from audience.engine import Engine
from audience.project import Project
from audience.unify import cluster as clustering
from audience.unify import ids as customer_ids
from audience.unify import match, merge
from audience.unify.config import SEMANTIC_TYPES, UnifyConfig
from audience.unify.prepare import prepare


class UnifyError(Exception):
    pass


# Tables written sorted for look-ups of one key, in row groups this small: a look-up decodes
# a whole row group (122,880 rows of MatchRecords is ~30 MB), 16k rows a few MB.
LOOKUP_ROW_GROUP_ROWS = 16_384


@dataclass
class UnifyResult:
    tables: dict[str, ibis.Table]  # output name -> table to write
    statistics: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    row_group_rows: dict[str, int] = field(default_factory=dict)  # output name -> rows


def read_custom_pairs(project: Project, path: str | None, what: str) -> list[tuple[str, str]]:
    """A custom-match CSV (table1,key1,table2,key2) as record-id pairs."""
    if not path:
        return []
    file = project.resolve(path)
    if not file.exists():
        raise UnifyError(f"unify.custom.{what}: file not found: {path}")
    pairs = []
    with file.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        expected = {"table1", "key1", "table2", "key2"}
        if not expected <= set(reader.fieldnames or []):
            raise UnifyError(
                f"unify.custom.{what}: {path} needs the columns table1,key1,table2,key2; "
                f"it has {','.join(reader.fieldnames or [])}"
            )
        for line, row in enumerate(reader, start=2):
            rids = []
            for side in ("1", "2"):
                label = row[f"table{side}"].strip()
                try:
                    ref = project.table_ref(label)
                except KeyError:
                    raise UnifyError(
                        f"unify.custom.{what}: {path} line {line}: no table '{label}'"
                    ) from None
                rids.append(f"{ref.source.name}|{ref.table.name}|{row[f'key{side}'].strip()}")
            pairs.append((rids[0], rids[1]))
    return pairs


def read_aliases(project: Project, path: str | None) -> dict[str, list[tuple[str, str]]]:
    """The alias CSV (field,value,alias) as {semantic type: [(value, alias), ...]}."""
    if not path:
        return {}
    file = project.resolve(path)
    if not file.exists():
        raise UnifyError(f"unify.custom.aliases: file not found: {path}")
    aliases: dict[str, list[tuple[str, str]]] = {}
    with file.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not {"field", "value", "alias"} <= set(reader.fieldnames or []):
            raise UnifyError(
                f"unify.custom.aliases: {path} needs the columns field,value,alias; "
                f"it has {','.join(reader.fieldnames or [])}"
            )
        for line, row in enumerate(reader, start=2):
            semantic = row["field"].strip()
            if semantic not in SEMANTIC_TYPES and not semantic.startswith("Custom."):
                # Unknown fields would silently alias nothing (e.g. 'City' for Location.City).
                raise UnifyError(
                    f"unify.custom.aliases: {path} line {line}: '{semantic}' is not a semantic "
                    f"type; use one of {', '.join(SEMANTIC_TYPES)}, or Custom.<Name>"
                )
            aliases.setdefault(semantic, []).append((row["value"], row["alias"]))
    return aliases


def unify(
    engine: Engine,
    project: Project,
    landed: dict[str, Path],
    previous_keys: Path | None,
) -> UnifyResult:
    config: UnifyConfig = project.unify  # type: ignore[assignment]
    prepared = prepare(
        engine, project, config, landed, read_aliases(project, config.custom.aliases)
    )
    records = prepared.records
    dedup = match.dedup_pairs(engine, prepared, config)
    found = match.match_pairs(engine, prepared, config)
    pairs = _union(dedup, found)
    pairs = match.apply_custom(
        engine,
        prepared,
        pairs,
        read_custom_pairs(project, config.custom.always_match, "always_match"),
        read_custom_pairs(project, config.custom.never_match, "never_match"),
    )
    if pairs is not None:
        pairs = engine.checkpoint(pairs, "pairs")

    nodes = records.select("_n")
    clusters = clustering.cluster(
        engine, nodes, pairs, config.cluster.max_size, config.cluster.giant_policy
    )
    split = 0
    if config.cluster.enforce_exceptions:
        clusters.labels, split = clustering.split_conflicts(
            engine, clusters.labels, pairs, records, _conflict_checks(prepared, config)
        )
    dedup_edges = pairs.filter(_.kind == "dedup") if pairs is not None else None
    if dedup_edges is not None and (split or any(g.cut for g in clusters.giants)):
        # A cut giant cluster may split a dedup group: a group never spans two customers.
        same = clusters.labels
        dedup_edges = (
            dedup_edges.join(same.rename(a="_n", _ca="cluster"), "a")
            .join(same.rename(b="_n", _cb="cluster"), "b")
            .filter(_._ca == _._cb)
        )
    dedup_groups = clustering.cluster(engine, nodes, dedup_edges, 10**9, "report").labels
    winners = engine.checkpoint(merge.dedup_winners(prepared, dedup_groups), "winners")
    members = engine.checkpoint(records.join(clusters.labels, "_n").join(winners, "_n"), "members")
    previous = None
    if previous_keys is not None and previous_keys.exists():
        previous = engine.read(previous_keys).select(_rid=_.Identifier, old_id=_.CustomerId)
    ids = engine.checkpoint(
        customer_ids.assign_customer_ids(engine, members.select("cluster", "_rid"), previous),
        "ids",
    )
    # AlternateKey sorted by customer, MatchRecords by record and the pairs by their first
    # record: a look-up of one customer's keys, records or links (explain) then reads one
    # small row group, which the min/max statistics pick, instead of scanning the table.
    tables = {
        "CustomerProfile": merge.build_profile(prepared, members, ids, config.merge),
        "AlternateKey": merge.alternate_keys(prepared, members, ids).order_by(
            "CustomerId", "Identifier"
        ),
        "ConflationMatchPair": _readable_pairs(records, pairs).order_by(
            "LeftIdentifier", "RightIdentifier"
        ),
        "MatchRecords": records.order_by("_rid"),
    }
    lookups = dict.fromkeys(
        ("AlternateKey", "ConflationMatchPair", "MatchRecords"), LOOKUP_ROW_GROUP_ROWS
    )
    for info in prepared.tables:
        name = f"Deduplication_{info.ref.id}"
        part = members.filter(members._t == info.index)
        winner_keys = records.select(_winner_n="_n", WinnerKey="_key")
        tables[name] = part.join(winner_keys, "_winner_n").select(
            Key=_._key, WinnerKey=_.WinnerKey, IsWinner=_._is_winner
        )
    statistics = _statistics(engine, prepared, members, pairs, clusters)
    statistics["customers_split_on_exceptions"] = split
    warnings = [
        f"cluster of {g.size} records (above unify.cluster.max_size "
        f"{config.cluster.max_size}); {len(g.cut)} weakest link(s) cut"
        if g.cut
        else f"cluster of {g.size} records (above unify.cluster.max_size "
        f"{config.cluster.max_size}), kept: see UnifyStatistics.giant_clusters"
        for g in clusters.giants
    ]
    statistics["giant_clusters"] = [
        {"size": g.size, "links": g.links[:200], "cut": g.cut[:200]} for g in clusters.giants
    ]
    tables["UnifyStatistics"] = engine.register_arrow(_stats_table(statistics), "stats")
    return UnifyResult(tables, statistics, warnings, lookups)


def _conflict_checks(prepared: Any, config: UnifyConfig) -> list[clustering.ConflictCheck]:
    """Every exception of the project, to hold for whole customers."""
    exceptions = [c for p in config.match for c in p.exceptions]
    exceptions += [c for t in config.tables for c in t.dedup.exceptions]
    return sorted(
        {
            clustering.ConflictCheck(prepared.condition_column(c), c.threshold, c.method)
            for c in exceptions
        },
        key=lambda c: (c.column, c.threshold, c.method),
    )


def _union(*parts: ibis.Table | None) -> ibis.Table | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    return ibis.union(*present) if len(present) > 1 else present[0]


def _readable_pairs(records: ibis.Table, pairs: ibis.Table | None) -> ibis.Table:
    """ConflationMatchPair: the pairs with table and key on each side instead of numbers."""
    side = records.select("_n", "_rid", "_key", "_t")
    if pairs is None:
        pairs = records.select(
            a=_._n,
            b=_._n,
            kind=ibis.literal(""),
            rule=ibis.literal(""),
            rule_rank=ibis.literal(0).cast("int64"),
            score=ibis.literal(1.0),
            scores=ibis.literal(""),
        ).limit(0)
    left = side.rename(a="_n", LeftIdentifier="_rid", LeftKey="_key", _lt="_t")
    right = side.rename(b="_n", RightIdentifier="_rid", RightKey="_key", _rt="_t")
    joined = pairs.join(left, "a").join(right, "b")
    return joined.select(
        LeftIdentifier=_.LeftIdentifier,
        LeftKey=_.LeftKey,
        RightIdentifier=_.RightIdentifier,
        RightKey=_.RightKey,
        Kind=_.kind,
        Rule=_.rule,
        RuleRank=_.rule_rank,
        Score=_.score,
        ConditionScores=_.scores,
    )


def _statistics(
    engine: Engine,
    prepared: Any,
    members: ibis.Table,
    pairs: ibis.Table | None,
    clusters: clustering.Clusters,
) -> dict[str, Any]:
    sizes = members.group_by("cluster").agg(size=_.count(), tables=_._t.nunique())
    cluster_of = members.select("_n", "cluster").join(sizes, "cluster")
    per_table = engine.to_arrow(
        members.join(cluster_of.select("_n", "tables"), "_n")
        .group_by("_t")
        .agg(
            records=_.count(),
            duplicates=(~_._is_winner).sum(),
            matched=(_.tables > 1).sum(),
            customers=_.cluster.nunique(),
        )
        .order_by("_t")
    ).to_pylist()
    labels = {i.index: i.label for i in prepared.tables}
    by_rule: list[dict[str, Any]] = []
    if pairs is not None:
        by_rule = engine.to_arrow(
            pairs.group_by(["kind", "rule"])
            .agg(pairs=_.count(), mean_score=_.score.mean())
            .order_by(["kind", "rule"])
        ).to_pylist()
    distribution = engine.to_arrow(
        sizes.group_by("size").agg(customers=_.count()).order_by("size")
    ).to_pylist()
    customers = sum(d["customers"] for d in distribution)
    return {
        "records": sum(t["records"] for t in per_table),
        "customers": customers,
        "tables": [
            {"table": labels[t["_t"]], **{k: int(v) for k, v in t.items() if k != "_t"}}
            for t in per_table
        ],
        "rules": [{**r, "mean_score": round(r["mean_score"] or 0, 4)} for r in by_rule],
        "cluster_sizes": distribution,
    }


def _stats_table(statistics: dict[str, Any]):  # noqa: ANN202
    import pyarrow as pa

    return pa.table(
        {
            "name": list(statistics),
            "value": [json.dumps(v, default=str) for v in statistics.values()],
        }
    )
