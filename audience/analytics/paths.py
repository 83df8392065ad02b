"""Rows of a table, the customer each row belongs to, and related tables by path.

Relationships (`relationships:` in the project file) link a table's rows to rows of another
table. They serve twice:
- to find a row's customer: an order line -> its order -> the web shop account, whose
  CustomerId the AlternateKey table holds;
- as paths in expressions: on order lines, `order.status` is the status of the line's order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
from ibis import _

from audience.analytics.config import Relationship
from audience.project import Project

MAX_DEPTH = 3  # how far `a.b.c` paths reach in the names offered to expressions


class AnalyticsError(Exception):
    """A problem in activities, measures or segments; the message names the config path."""


@dataclass
class Hop:
    relationship: Relationship
    to_column: str  # the referenced column (the relationship's or the target's key)


class SourceTables:
    """The landed source tables of a run, by label ('source.table'), each read once."""

    def __init__(self, project: Project, read: Callable[[str], ibis.Table]):
        self.project = project
        self._read = read
        self._cache: dict[str, ibis.Table] = {}

    def get(self, label: str) -> ibis.Table:
        if label not in self._cache:
            self._cache[label] = self._read(label)
        return self._cache[label]

    def key(self, label: str) -> str:
        return self.project.table_ref(label).table.primary_key

    def hop(self, rel: Relationship) -> Hop:
        return Hop(rel, rel.to_column or self.key(rel.to))


def find_path(project: Project, start: str, goals: list[str]) -> list[Relationship] | None:
    """The shortest chain of relationships from `start` to one of `goals` ([] if start is one)."""
    if start in goals:
        return []
    seen = {start}
    queue: deque[tuple[str, list[Relationship]]] = deque([(start, [])])
    while queue:
        label, path = queue.popleft()
        for rel in project.relationships:
            if rel.table == label and rel.to not in seen:
                if rel.to in goals:
                    return [*path, rel]
                seen.add(rel.to)
                queue.append((rel.to, [*path, rel]))
    return None


def _join_key(left: ibis.Value, right: ibis.Value) -> tuple[ibis.Value, ibis.Value]:
    # Keys often differ in type between systems (an integer id read as text in a CSV).
    if left.type() == right.type() or (left.type().is_integer() and right.type().is_integer()):
        return left, right
    return left.cast("string"), right.cast("string")


def with_customer(
    tables: SourceTables,
    alternate_key: ibis.Table,
    rows: ibis.Table,
    path: list[Relationship],
    goal: str,
) -> ibis.Table:
    """`rows` (of path's start table) with `CustomerId` and, where it is missing, `_reason`.

    Follows the relationships to the unified table `goal`, then looks its key up in the
    AlternateKey table. The reason says where the chain broke: an empty reference, a reference
    to a row that does not exist, or a record that is in no customer (it was quarantined).
    """
    cursor = "_ref0"
    goal_key = tables.key(goal)
    first_column = path[0].column if path else goal_key
    out = rows.mutate(**{cursor: rows[first_column]})
    # (condition, reason) pairs over the final table's columns, checked in order.
    Reason = tuple[Callable[[ibis.Table], ibis.Value], Callable[[ibis.Table], ibis.Value]]
    reasons: list[Reason] = [
        (lambda t, c=cursor: t[c].isnull(), lambda t: ibis.literal(f"empty {first_column}"))
    ]
    for i, rel in enumerate(path):
        hop = tables.hop(rel)
        target = tables.get(rel.to)
        next_column = path[i + 1].column if i + 1 < len(path) else goal_key
        lookup = target.select(
            _k=target[hop.to_column], _next=target[next_column], _found=ibis.literal(True)
        )
        left, right = _join_key(out[cursor], lookup._k)
        joined = out.left_join(lookup, left == right)
        found, nxt = f"_found{i + 1}", f"_ref{i + 1}"
        out = joined.select(*out.columns, **{nxt: joined._next, found: joined._found.notnull()})
        missing = f"no {rel.to} row with {hop.to_column} = "
        reasons.append(
            (
                lambda t, f=found: ~t[f],
                lambda t, c=cursor, m=missing: ibis.literal(m) + t[c].cast("string"),
            )
        )
        if i + 1 < len(path):
            empty = f"empty {rel.to}.{next_column}"
            reasons.append((lambda t, n=nxt: t[n].isnull(), lambda t, e=empty: ibis.literal(e)))
        cursor = nxt
    source, table = goal.split(".", 1)
    keys = alternate_key.filter(
        (alternate_key.DataSourceName == source) & (alternate_key.EntityName == table)
    ).select(_alt=_.AlternateValue, _cid=_.CustomerId)
    joined = out.left_join(keys, out[cursor].cast("string") == keys._alt)
    out = joined.select(*out.columns, CustomerId=joined._cid)
    unknown = f"{goal} record "
    reasons.append(
        (
            lambda t: t.CustomerId.isnull(),
            lambda t, c=cursor: (
                ibis.literal(unknown)
                + t[c].cast("string")
                + " is in no customer (quarantined or not unified)"
            ),
        )
    )
    reason = ibis.cases(*[(cond(out), text(out)) for cond, text in reasons], else_=None)
    helper = [c for c in out.columns if c.startswith(("_ref", "_found"))]
    return out.mutate(_reason=reason.cast("string")).drop(*helper)


class Scope:
    """The names an expression over rows of `label` may use, and how to provide them.

    Own columns by name; columns of related tables by path (`order.status`,
    `order.account.zip`), up to MAX_DEPTH relationships away.
    """

    def __init__(self, tables: SourceTables, label: str, rows: ibis.Table | None = None):
        """`rows`: the rows expressions see, if not the table itself (an activity's rows)."""
        self.tables = tables
        self.label = label
        own = (rows if rows is not None else tables.get(label)).schema()
        self.fields: dict[str, dt.DataType] = dict(own.items())
        self._paths: dict[str, tuple[tuple[Relationship, ...], str]] = {}
        self._collect(label, (), 0)

    def _collect(self, label: str, chain: tuple[Relationship, ...], depth: int) -> None:
        if depth >= MAX_DEPTH:
            return
        for rel in self.tables.project.relationships:
            if rel.table != label or rel in chain:
                continue
            here = (*chain, rel)
            prefix = ".".join(r.name for r in here)
            for column, dtype in self.tables.get(rel.to).schema().items():
                name = f"{prefix}.{column}"
                self.fields.setdefault(name, dtype)
                self._paths[name] = (here, column)
            self._collect(rel.to, here, depth + 1)

    def provide(self, rows: ibis.Table, names: set[str]) -> tuple[ibis.Table, dict[str, str]]:
        """`rows` joined with what `names` need, and the column that holds each name."""
        needed = {n: self._paths[n] for n in names if n in self._paths and n not in rows.columns}
        chains = sorted(
            {chain[:i] for chain, _col in needed.values() for i in range(1, len(chain) + 1)},
            key=len,
        )
        columns_at: dict[tuple[Relationship, ...], set[str]] = {c: set() for c in chains}
        for chain, column in needed.values():
            columns_at[chain].add(column)
        for chain in chains:  # a parent level must also carry its child's reference column
            if len(chain) > 1:
                columns_at[chain[:-1]].add(chain[-1].column)
        out = rows
        alias: dict[tuple[Relationship, ...], dict[str, str]] = {(): {c: c for c in rows.columns}}
        for n, chain in enumerate(chains):
            rel = chain[-1]
            hop = self.tables.hop(rel)
            target = self.tables.get(rel.to)
            names_here = {c: f"_p{n}_{c}" for c in sorted(columns_at[chain])}
            lookup = target.select(
                _pk=target[hop.to_column], **{a: target[c] for c, a in names_here.items()}
            )
            parent_ref = out[alias[chain[:-1]][rel.column]]
            left, right = _join_key(parent_ref, lookup._pk)
            joined = out.left_join(lookup, left == right)
            out = joined.select(*out.columns, *names_here.values())
            alias[chain] = names_here
        columns = {c: c for c in out.columns}
        for name, (chain, column) in needed.items():
            columns[name] = alias[chain][column]
        return out, columns


def resolver(table: ibis.Table, columns: dict[str, str]) -> dict[str, ibis.Value]:
    """Each expression name's column in `table`."""
    return {name: table[column] for name, column in columns.items()}
