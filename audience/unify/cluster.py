"""Cluster: connected components of the pair graph are customers.

Components are found in the engine by label propagation with pointer jumping: each record's
label is the smallest record number it is linked to, and each round also takes the label of
its label, so a chain of length d converges in about log2(d) rounds. Each round is
checkpointed (a temp table on DuckDB, a Parquet round-trip on Spark; see engine.py).

A cluster above `max_size` records is suspicious (one shared e-mail can chain thousands of
records). It is always reported with the links that made it; with the `cut_weakest` policy,
its weakest links (latest rule, then lowest score) are removed until every part is small
enough. That cutting runs in Python on the giant clusters' links only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ibis
import pyarrow as pa
from ibis import _

from audience.engine import Engine

MAX_ROUNDS = 200


@dataclass
class GiantCluster:
    cluster: int
    size: int
    links: list[dict[str, Any]]
    cut: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Clusters:
    labels: ibis.Table  # _n, cluster (smallest _n of the component)
    rounds: int
    giants: list[GiantCluster]


def connected_components(
    engine: Engine, nodes: ibis.Table, edges: ibis.Table
) -> tuple[ibis.Table, int]:
    """(`_n`, `cluster`) for every node; `edges` has columns a, b (both `_n` values)."""
    undirected = ibis.union(edges.select(x=_.a, y=_.b), edges.select(x=_.b, y=_.a))
    undirected = engine.checkpoint(undirected, "edges")
    labels = engine.checkpoint(nodes.select(_n=_._n, cluster=_._n), "labels")
    for round_number in range(1, MAX_ROUNDS + 1):
        # The smallest label among a node and its neighbours ...
        neighbour = undirected.join(labels, undirected.y == labels._n).select(
            _n=_.x, cluster=_.cluster
        )
        smallest = ibis.union(labels, neighbour).group_by("_n").agg(cluster=_.cluster.min())
        # ... then jump: the label of that label.
        parent = labels.rename(_p="_n", _pc="cluster")
        jumped = smallest.left_join(parent, smallest.cluster == parent._p).select(
            _n=_._n, cluster=ibis.least(_.cluster, ibis.coalesce(_._pc, _.cluster))
        )
        new_labels = engine.checkpoint(jumped, "labels")
        changed = (
            new_labels.join(labels, "_n")
            .filter(lambda t: t.cluster != t.cluster_right)
            .count()
            .execute()
        )
        labels = new_labels
        if changed == 0:
            return labels, round_number
    raise RuntimeError(f"clustering did not converge in {MAX_ROUNDS} rounds")


def cluster(
    engine: Engine, nodes: ibis.Table, pairs: ibis.Table | None, max_size: int, policy: str
) -> Clusters:
    """Customers from the record pairs, with the giant-cluster guard applied."""
    if pairs is None:
        return Clusters(nodes.select(_n=_._n, cluster=_._n), 0, [])
    labels, rounds = connected_components(engine, nodes, pairs.select("a", "b"))
    sizes = labels.group_by("cluster").agg(size=_.count())
    giant_ids = engine.to_arrow(sizes.filter(_.size > max_size).order_by("cluster"))
    if giant_ids.num_rows == 0:
        return Clusters(labels, rounds, [])
    giants = _giant_links(engine, labels, pairs, giant_ids)
    if policy == "cut_weakest":
        relabel = {}
        for giant in giants:
            relabel.update(_cut_weakest(giant, max_size))
        if relabel:
            mapping = engine.register_arrow(
                pa.table({"_m": list(relabel), "_c": list(relabel.values())}), "relabel"
            )
            joined = labels.left_join(mapping, labels._n == mapping._m)
            labels = engine.checkpoint(
                joined.select(_n=_._n, cluster=ibis.coalesce(_._c, _.cluster)), "labels"
            )
    return Clusters(labels, rounds, giants)


def _giant_links(
    engine: Engine, labels: ibis.Table, pairs: ibis.Table, giant_ids: pa.Table
) -> list[GiantCluster]:
    sizes = dict(zip(giant_ids["cluster"].to_pylist(), giant_ids["size"].to_pylist(), strict=True))
    members = labels.filter(labels.cluster.isin(list(sizes)))
    links = pairs.join(members, pairs.a == members._n).select(
        "cluster", "a", "b", "kind", "rule", "rule_rank", "score"
    )
    grouped: dict[int, list[dict[str, Any]]] = {c: [] for c in sizes}
    for row in engine.to_arrow(links.order_by(["cluster", "a", "b"])).to_pylist():
        grouped[row.pop("cluster")].append(row)
    return [GiantCluster(c, sizes[c], grouped[c]) for c in sorted(sizes)]


def _cut_weakest(giant: GiantCluster, max_size: int) -> dict[int, int]:
    """Rebuild the giant cluster from its strongest links down, leaving out any link that
    would join two parts into one above `max_size` (those are the cut, weakest links).
    Returns the new cluster (smallest member) of each member."""
    # Strongest first: custom and dedup links, then earlier rules, then higher scores.
    kind_rank = {"always_match": 0, "dedup": 1, "match": 2}
    links = sorted(
        giant.links,
        key=lambda e: (kind_rank.get(e["kind"], 3), e["rule_rank"], -e["score"], e["a"], e["b"]),
    )
    parent: dict[int, int] = {}
    size: dict[int, int] = {}

    def find(n: int) -> int:
        if n not in parent:
            parent[n], size[n] = n, 1
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for link in links:
        ra, rb = find(link["a"]), find(link["b"])
        if ra == rb:
            continue
        if size[ra] + size[rb] > max_size:
            giant.cut.append(link)
            continue
        root, child = min(ra, rb), max(ra, rb)
        parent[child], size[root] = root, size[ra] + size[rb]
    members: dict[int, list[int]] = {}
    for n in list(parent):
        members.setdefault(find(n), []).append(n)
    return {n: min(group) for group in members.values() for n in group}
