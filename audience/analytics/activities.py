"""Activities: source rows that are things customers did, each with its CustomerId.

For every declared activity the stage computes, from the landed source table:
- `Activity_<name>`: the resolved rows with CustomerId, ActivityId, ActivityTimeStamp, the
  semantic fields (typed) and the source columns: what measures and segments aggregate;
- its part of `UnifiedActivity` (seed 004 columns; SemanticData as JSON text, RangeIndex the
  unix timestamp as text);
- its part of `ActivityUnresolved`: rows kept aside with the reason their customer could not
  be found (or their timestamp is empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import ibis

from audience import expr, jsontext
from audience.analytics.config import Activity
from audience.analytics.paths import (
    AnalyticsError,
    Scope,
    SourceTables,
    find_path,
    resolver,
    with_customer,
)
from audience.project import Project
from audience.unify.ids import uuid5

UNIFIED_COLUMNS = (
    "CustomerId",
    "ActivityId",
    "SourceEntityName",
    "SourceActivityId",
    "ActivityType",
    "ActivityTimeStamp",
    "Title",
    "Description",
    "URL",
    "SemanticData",
    "RangeIndex",
    "UnifiedActivityId",
)
UNRESOLVED_SCHEMA = ibis.schema(
    {
        "Activity": "string",
        "SourceEntityName": "string",
        "SourceActivityId": "string",
        "Reason": "string",
    }
)


@dataclass
class BuiltActivity:
    activity: Activity
    full: ibis.Table  # every row, resolved or not, with the output columns

    @property
    def resolved(self) -> ibis.Table:
        return self.full.filter(self.full._reason.isnull())

    def data(self) -> ibis.Table:
        """Activity_<name>: the rows measures and segments read."""
        return self.resolved.select(*[c for c in self.full.columns if not c.startswith("_")])

    def unified(self) -> ibis.Table:
        rows = self.resolved
        return rows.select(
            *[c if c in _DATA_COLUMNS else rows[f"_u_{c}"].name(c) for c in UNIFIED_COLUMNS]
        )

    def unresolved(self) -> ibis.Table:
        rows = self.full.filter(self.full._reason.notnull())
        return rows.select(
            Activity=ibis.literal(self.activity.name),
            SourceEntityName=rows._u_SourceEntityName,
            SourceActivityId=rows.SourceActivityId,
            Reason=rows._reason,
        )


# Columns of UnifiedActivity that the measure rows (Activity_<name>) carry too.
_DATA_COLUMNS = ("CustomerId", "ActivityId", "SourceActivityId", "ActivityTimeStamp")


def build_activity(
    project: Project,
    index: int,
    tables: SourceTables,
    alternate_key: ibis.Table,
    now: datetime,
) -> BuiltActivity:
    """The activity `project.activities[index]` as one table (checked before it is built)."""
    act = project.activities[index]
    where = f"activities[{index}]"
    scope = Scope(tables, act.table)
    key = act.key or tables.key(act.table)
    if key not in scope.fields:
        raise AnalyticsError(f"{where}.key: no column '{key}' in {act.table}")

    parts: dict[str, expr.Node] = {
        "timestamp": expr.parse(act.timestamp, path=f"{where}.timestamp")
    }
    for name in ("title", "description", "url"):
        source = getattr(act, name)
        if source is not None:
            parts[name] = expr.parse(source, path=f"{where}.{name}")
    for name, source in act.fields.items():
        parts[f"fields.{name}"] = expr.parse(source, path=f"{where}.fields.{name}")
    condition = expr.parse(act.where, path=f"{where}.where") if act.where is not None else None

    sources = {"timestamp": act.timestamp, "title": act.title, "description": act.description}
    sources |= {"url": act.url} | {f"fields.{k}": v for k, v in act.fields.items()}
    types = {
        p: expr.check(node, scope.fields, path=f"{where}.{p}", text=_text(sources[p]))
        for p, node in parts.items()
    }
    if not (
        types["timestamp"].is_timestamp()
        or types["timestamp"].is_date()
        or types["timestamp"].is_string()
    ):
        raise AnalyticsError(
            f"{where}.timestamp: expected a date or time, got {types['timestamp']} from "
            f"'{expr.to_text(parts['timestamp'])}'"
        )
    if condition is not None:
        expr.check_condition(condition, scope.fields, path=f"{where}.where", text=_text(act.where))

    names = set().union(*(expr.field_names(n) for n in parts.values()))
    if condition is not None:
        names |= expr.field_names(condition)
    source_rows = tables.get(act.table)
    rows, columns = scope.provide(source_rows, names)
    if condition is not None:
        keep = expr.build(condition, resolver(rows, columns), now=now)
        rows = rows.filter(ibis.coalesce(keep, False))
    resolve = resolver(rows, columns)

    path = find_path(project, act.table, [act.customer])
    if path is None:
        raise AnalyticsError(
            f"{where}.customer: no path from {act.table} to {act.customer}; add a relationship "
            f"(relationships: - {{name: ..., table: {act.table}, column: ..., to: ...}})"
        )

    ts = expr.build(parts["timestamp"], resolve, now=now)
    ts = ts.try_cast("timestamp") if types["timestamp"].is_string() else ts.cast("timestamp")
    semantic = {name: expr.build(parts[f"fields.{name}"], resolve, now=now) for name in act.fields}

    def text(name: str) -> ibis.Value:
        if name not in parts:
            return ibis.null().cast("string")
        return expr.build(parts[name], resolve, now=now).cast("string")

    source_key = rows[key].cast("string")
    activity_id = ibis.literal(f"{act.name}|") + source_key
    # Source columns stay usable in measures, unless a semantic field or one of our columns
    # has their name (in any case: DuckDB names are case-insensitive); then ours wins.
    taken = {n.lower() for n in [*semantic, *_DATA_COLUMNS]}
    own = {c: rows[c] for c in source_rows.columns if c.lower() not in taken}
    prepared = rows.select(
        **own,
        **semantic,
        ActivityId=activity_id,
        SourceActivityId=source_key,
        ActivityTimeStamp=ts,
        _u_SourceEntityName=ibis.literal(act.table),
        _u_ActivityType=ibis.literal(act.type),
        _u_Title=text("title"),
        _u_Description=text("description"),
        _u_URL=text("url"),
        _u_SemanticData=jsontext.obj(semantic),
        _u_RangeIndex=ts.epoch_seconds().cast("int64").cast("string"),
        _u_UnifiedActivityId=uuid5(activity_id),
    )
    resolved = with_customer(tables, alternate_key, prepared, path, act.customer)
    reason = ibis.coalesce(
        resolved._reason,
        ibis.ifelse(resolved.ActivityTimeStamp.isnull(), "empty or unreadable timestamp", None),
    )
    return BuiltActivity(act, resolved.mutate(_reason=reason))


def _text(source: object) -> str | None:
    return source if isinstance(source, str) else None
