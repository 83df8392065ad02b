"""Cluster: connected components of the pair graph are customers.

Each record's cluster is the smallest record number of its component. On DuckDB (one
machine) the edges are read into memory and scipy's connected_components labels them (16
bytes an edge: ~1 s for a million records, where the rounds below took 6-15 s). On Spark,
where the graph may not fit the driver, components are found in the engine by label
propagation with pointer jumping: each record takes the smallest label among its neighbours
and then the label of that label, so a chain of length d converges in about log2(d) rounds,
each checkpointed (a Parquet round-trip; see engine.py).

A cluster above `max_size` records is suspicious (one shared e-mail can chain thousands of
records). It is always reported with the links that made it; with the `cut_weakest` policy,
its weakest links (latest rule, then lowest score) are removed until every part is small
enough. That cutting runs in Python on the giant clusters' links only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
from ibis import _

from audience.engine import Engine
from audience.unify.normalize import similarity

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
    if engine.kind == "duckdb":
        return _components_in_memory(engine, nodes, edges), 0
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


def _components_in_memory(engine: Engine, nodes: ibis.Table, edges: ibis.Table) -> ibis.Table:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as components

    node_ids = np.sort(engine.to_arrow(nodes.select("_n"))["_n"].to_numpy())
    links = engine.to_arrow(edges.select("a", "b"))
    a = np.searchsorted(node_ids, links["a"].to_numpy())
    b = np.searchsorted(node_ids, links["b"].to_numpy())
    size = len(node_ids)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(size, size))
    count, component = components(graph, directed=False)
    smallest = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, component, node_ids)
    labels = pa.table({"_n": node_ids, "cluster": smallest[component]})
    return engine.register_arrow(labels, "labels")


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
        labels = _relabel(engine, labels, relabel)
    return Clusters(labels, rounds, giants)


def _relabel(engine: Engine, labels: ibis.Table, relabel: dict[int, int]) -> ibis.Table:
    """New clusters for some records (record -> cluster), the others unchanged."""
    if not relabel:
        return labels
    relabel_table = pa.table(
        {
            "_m": pa.array(list(relabel), pa.int64()),
            "_c": pa.array(list(relabel.values()), pa.int64()),
        }
    )
    mapping = engine.register_arrow(relabel_table, "relabel")
    joined = labels.left_join(mapping, labels._n == mapping._m)
    return engine.checkpoint(
        joined.select(_n=_._n, cluster=ibis.coalesce(_._c, _.cluster)), "labels"
    )


@dataclass(frozen=True)
class ConflictCheck:
    """An exception enforced on whole customers: no two records of one customer may have
    values of `column` that score below `threshold`."""

    column: str
    threshold: float
    method: str


def _strength(link: dict[str, Any]) -> tuple:
    """Sort key, strongest link first: custom and dedup links, earlier rules, higher scores."""
    kind_rank = {"always_match": 0, "dedup": 1, "match": 2}
    return (kind_rank.get(link["kind"], 3), link["rule_rank"], -link["score"], link["a"], link["b"])


def split_conflicts(
    engine: Engine,
    labels: ibis.Table,
    pairs: ibis.Table | None,
    records: ibis.Table,
    checks: list[ConflictCheck],
) -> tuple[ibis.Table, int]:
    """Split customers whose records conflict on an exception field (two birth dates that
    differ), which pairwise exceptions cannot prevent when the records are linked through a
    third record without that field. Each such customer is rebuilt from its strongest links
    down, leaving out any link that would join conflicting records. Returns the new labels and
    how many customers were split."""
    if not checks or pairs is None:
        return labels, 0
    columns = sorted({c.column for c in checks})
    members = labels.join(records.select("_n", *columns), "_n")
    spread = members.group_by("cluster").agg(
        **{f"_d{i}": members[c].nunique() for i, c in enumerate(columns)}
    )
    suspects = spread.filter(ibis.or_(*[spread[f"_d{i}"] > 1 for i in range(len(columns))]))
    suspects = engine.checkpoint(suspects.select("cluster"), "suspects")
    rows = engine.to_arrow(members.join(suspects, "cluster")).to_pylist()
    if not rows:
        return labels, 0
    values = {r["_n"]: {c: r[c] for c in columns} for r in rows}
    cluster_of = {r["_n"]: r["cluster"] for r in rows}
    suspect_members = suspects.join(members.select("_n", "cluster"), "cluster").select("_n")
    links = pairs.join(suspect_members, pairs.a == suspect_members._n).select(
        "a", "b", "kind", "rule_rank", "score"
    )
    by_cluster: dict[int, list[dict[str, Any]]] = {}
    for link in engine.to_arrow(links).to_pylist():
        by_cluster.setdefault(cluster_of[link["a"]], []).append(link)
    relabel: dict[int, int] = {}
    split = 0
    for cluster_links in by_cluster.values():
        groups = _rebuild_without_conflicts(cluster_links, values, checks)
        if len(groups) > 1:
            split += 1
        for group in groups:
            label = min(group)
            relabel.update({n: label for n in group})
    for n, c in cluster_of.items():  # members without links keep their own cluster id
        relabel.setdefault(n, c)
    return _relabel(engine, labels, relabel), split


def _rebuild_without_conflicts(
    links: list[dict[str, Any]], values: dict[int, dict[str, Any]], checks: list[ConflictCheck]
) -> list[set[int]]:
    parent: dict[int, int] = {}
    seen: dict[int, dict[str, set[Any]]] = {}  # root -> column -> values in the component

    def find(n: int) -> int:
        if n not in parent:
            parent[n] = n
            seen[n] = {c.column: {values[n][c.column]} - {None} for c in checks}
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def conflict(ra: int, rb: int) -> bool:
        for check in checks:
            for x in seen[ra][check.column]:
                for y in seen[rb][check.column]:
                    if x != y and similarity(x, y, check.method) < check.threshold:
                        return True
        return False

    for link in sorted(links, key=_strength):
        ra, rb = find(link["a"]), find(link["b"])
        if ra == rb or conflict(ra, rb):
            continue
        root, child = min(ra, rb), max(ra, rb)
        parent[child] = root
        for check in checks:
            seen[root][check.column] |= seen[child][check.column]
    groups: dict[int, set[int]] = {}
    for n in list(parent):
        groups.setdefault(find(n), set()).add(n)
    return list(groups.values())


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
    links = sorted(giant.links, key=_strength)
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
