"""Deterministic GUIDs and stable CustomerIds, computed in the engine.

GUIDs are UUIDv5 (RFC 4122: SHA-1 of namespace bytes + name). The project-wide namespace is
`NAMESPACE`, whose 16 bytes are printable ASCII ("audience-cdp-ns1"), so an engine can hash
`NAMESPACE_TEXT || name` as a string and get exactly `uuid.uuid5(NAMESPACE, name)`; a test
checks that against Python's `uuid` on both engines.

CustomerId rules (DESIGN.md):
- a customer whose records had one CustomerId before keeps it;
- a merge keeps one old ID (the one most of its records had) and lists the others in
  PreviousCustomerId;
- a split keeps the ID on the part with most of the old customer's records; the other parts
  get new IDs and list the old one in PreviousCustomerId;
- a new customer gets uuid5("CustomerId|" + the smallest Identifier of its records).
Ties are broken by the IDs' text, so the same input and previous state give the same IDs on
every engine.
"""

from __future__ import annotations

import uuid

import ibis
from ibis import _

from audience.engine import Engine

NAMESPACE_TEXT = "audience-cdp-ns1"
NAMESPACE = uuid.UUID(bytes=NAMESPACE_TEXT.encode("ascii"))
MAX_ROUNDS = 50


@ibis.udf.scalar.builtin
def sha1(value: str) -> str:  # type: ignore[empty-body]
    """SHA-1 as 40 hex digits: DuckDB's sha1, Spark's sha1 (the same builtin name)."""


def uuid5(name: ibis.StringValue) -> ibis.StringValue:
    """uuid.uuid5(NAMESPACE, name) as text, in the engine."""
    h = sha1(ibis.literal(NAMESPACE_TEXT) + name)
    # Version 5 in the 13th hex digit; RFC 4122 variant (10xx) in the 17th.
    variant = h.substr(16, 1).translate("0123456789abcdef", "89ab89ab89ab89ab")
    return (
        h.substr(0, 8)
        + "-"
        + h.substr(8, 4)
        + "-5"
        + h.substr(13, 3)
        + "-"
        + variant
        + h.substr(17, 3)
        + "-"
        + h.substr(20, 12)
    )


def python_uuid5(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


def assign_customer_ids(
    engine: Engine,
    members: ibis.Table,
    previous: ibis.Table | None,
) -> ibis.Table:
    """CustomerId per cluster.

    members: `cluster`, `_rid` for every record.
    previous: `_rid`, `old_id` from the last run's AlternateKey, or None on a first run.
    Returns `cluster`, `CustomerId`, `PreviousCustomerId` (';'-separated, or NULL).
    """
    anchors = members.group_by("cluster").agg(_anchor=_._rid.min())
    fresh = anchors.mutate(_new=uuid5("CustomerId|" + anchors._anchor))
    if previous is None:
        return fresh.select(
            "cluster", CustomerId=_._new, PreviousCustomerId=ibis.null().cast("string")
        )
    overlap = engine.checkpoint(
        members.join(previous, "_rid").group_by(["cluster", "old_id"]).agg(n=_.count()),
        "id_overlap",
    )
    kept = _mutual_best(engine, overlap)
    old_ids = previous.select(_old=_.old_id).distinct()
    # A new ID could equal an old one still in use elsewhere (a split whose smaller part
    # holds the anchor record): salt those with the ID they would collide with.
    checked = fresh.left_join(old_ids, fresh._new == old_ids._old)
    fresh = checked.mutate(
        _new=ibis.ifelse(
            checked._old.isnull(),
            checked._new,
            uuid5("CustomerId|" + checked._anchor + "|" + checked._old),
        )
    ).drop("_old")
    others = (
        overlap.join(kept.select(cluster="cluster", _kept="old_id"), "cluster", how="left")
        .filter(lambda t: t._kept.isnull() | (t.old_id != t._kept))
        .group_by("cluster")
        .agg(PreviousCustomerId=_.old_id.collect().sort().join(";"))
    )
    return (
        fresh.left_join(kept, "cluster")
        .select("cluster", "_new", "old_id")
        .left_join(others, "cluster")
        .select(
            "cluster",
            CustomerId=ibis.coalesce(_.old_id, _._new),
            PreviousCustomerId=_.PreviousCustomerId,
        )
    )


def _mutual_best(engine: Engine, overlap: ibis.Table) -> ibis.Table:
    """Pairs (cluster, old_id) where each is the other's best (most shared records), found
    round by round until no pair is left: a greedy one-to-one assignment."""
    kept_parts = []
    remaining = overlap
    for _round in range(MAX_ROUNDS):
        best_old = ibis.row_number().over(group_by="cluster", order_by=[ibis.desc("n"), "old_id"])
        best_cluster = ibis.row_number().over(
            group_by="old_id", order_by=[ibis.desc("n"), "cluster"]
        )
        ranked = remaining.mutate(_bo=best_old, _bc=best_cluster)
        mutual = engine.checkpoint(
            ranked.filter((_._bo == 0) & (_._bc == 0)).select("cluster", "old_id"), "kept"
        )
        if mutual.count().execute() == 0:
            break
        kept_parts.append(mutual)
        remaining = engine.checkpoint(
            remaining.anti_join(mutual, "cluster").anti_join(mutual, "old_id"), "overlap"
        )
        if remaining.count().execute() == 0:
            break
    if not kept_parts:
        return overlap.select("cluster", "old_id").limit(0)
    return ibis.union(*kept_parts) if len(kept_parts) > 1 else kept_parts[0]
