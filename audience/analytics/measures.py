"""Measures: numbers about customers and the business, computed in the engine.

- customer attributes (one value per customer) become columns of `CustomerAttributes` and the
  `Measures` JSON of `CustomerMeasure` (seed 004);
- customer measures (CustomerId + dimensions) and business measures (dimensions only) become
  their own tables, `Measure_<name>`.

Attributes that read the same rows with the same filter and window are computed in one
grouped query (the twelve templates over orders and loyalty take three scans, not twelve).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time

import ibis
import ibis.expr.datatypes as dt

from audience import expr, jsontext
from audience.analytics.config import Measure, Window
from audience.analytics.paths import (
    AnalyticsError,
    Scope,
    SourceTables,
    find_path,
    resolver,
    with_customer,
)
from audience.analytics.templates import TEMPLATES, months_before
from audience.unify.ids import uuid5


@dataclass
class Rows:
    """The rows a measure aggregates, each with its CustomerId (and time, for activities)."""

    table: ibis.Table
    scope: Scope | None  # relationship paths (not for a union of activities of one type)
    timed: bool
    what: str

    @property
    def fields(self) -> dict[str, dt.DataType]:
        return self.scope.fields if self.scope else dict(self.table.schema().items())

    def prepared(self, names: set[str]) -> tuple[ibis.Table, dict[str, str]]:
        """The rows joined with the related tables `names` need; the column of each name."""
        if self.scope is None:
            return self.table, {c: c for c in self.table.columns}
        return self.scope.provide(self.table, names)

    def filtered(
        self, names: set[str], where: expr.Node | None, window: Window | None, now: datetime
    ) -> tuple[ibis.Table, dict[str, ibis.Value]]:
        """The rows for which `where` holds, inside `window`, and each name's column."""
        table, columns = self.prepared(names | (expr.field_names(where) if where else set()))
        if where is not None:
            keep = expr.build(where, resolver(table, columns), now=now)
            table = table.filter(ibis.coalesce(keep, False))
        if window is not None:
            if not self.timed:
                raise AnalyticsError(f"a time window needs activity rows, not {self.what}")
            cond = window_filter(table.ActivityTimeStamp, window, now)
            if cond is not None:
                table = table.filter(cond)
        return table, resolver(table, columns)


@dataclass
class MeasureResults:
    attributes: ibis.Table  # CustomerId + one column per customer attribute
    tables: dict[str, ibis.Table] = field(default_factory=dict)  # Measure_<name>


class RowSources:
    """Where measure and segment rows come from: activities by name or type, or tables."""

    def __init__(
        self,
        tables: SourceTables,
        activities: dict[str, ibis.Table],
        alternate_key: ibis.Table,
    ):
        self.tables = tables
        self.project = tables.project
        self.activities = activities
        self.alternate_key = alternate_key
        self._cache: dict[str, Rows] = {}

    def activity(self, name: str, path: str) -> Rows:
        key = f"activity:{name}"
        if key not in self._cache:
            self._cache[key] = self._activity(name, path)
        return self._cache[key]

    def _activity(self, name: str, path: str) -> Rows:
        declared = {a.name: a for a in self.project.activities}
        if name in declared:
            rows = self.activities[name]
            return Rows(rows, Scope(self.tables, declared[name].table, rows), True, name)
        same_type = [a for a in self.project.activities if a.type == name]
        if not same_type:
            known = sorted(set(declared) | {a.type for a in self.project.activities})
            raise AnalyticsError(
                f"{path}: no activity or activity type '{name}'; known: {', '.join(known)}"
            )
        # All activities of one type: their shared semantic fields, typed as the first has them.
        first = self.activities[same_type[0].name].schema()
        shared = [f for f in same_type[0].fields if all(f in a.fields for a in same_type)]
        parts = [
            self.activities[a.name].select(
                "CustomerId",
                "ActivityId",
                "ActivityTimeStamp",
                **{f: self.activities[a.name][f].cast(first[f]) for f in shared},
            )
            for a in same_type
        ]
        table = parts[0] if len(parts) == 1 else ibis.union(*parts)
        return Rows(table, None, True, f"activities of type {name}")

    def table(self, label: str, path: str) -> Rows:
        key = f"table:{label}"
        if key not in self._cache:
            unified = [t.table for t in self.project.unify.tables] if self.project.unify else []
            route = find_path(self.project, label, unified)
            if route is None:
                raise AnalyticsError(
                    f"{path}: rows of {label} reach no unified table; add a relationship "
                    f"from {label} to one of {', '.join(unified)}"
                )
            goal = route[-1].to if route else label
            source = self.tables.get(label)
            rows = with_customer(self.tables, self.alternate_key, source, route, goal)
            rows = rows.filter(rows.CustomerId.notnull()).drop("_reason")
            self._cache[key] = Rows(rows, Scope(self.tables, label, rows), False, label)
        return self._cache[key]


def window_filter(ts: ibis.Value, window: Window | None, now: datetime) -> ibis.Value | None:
    """The condition that keeps rows inside the window (None: all time)."""
    if window is None:
        return None
    if window.last_days or window.last_months:
        from datetime import timedelta

        start = (
            now - timedelta(days=window.last_days)
            if window.last_days
            else months_before(now, window.last_months or 0)
        )
        return (ts > ibis.literal(start)) & (ts <= ibis.literal(now))
    cond = ibis.literal(True)
    if window.start:
        cond = cond & (ts >= ibis.literal(datetime.combine(window.start, time())))
    if window.end:
        end = datetime.combine(window.end, time()) + _one_day()
        cond = cond & (ts < ibis.literal(end))
    return cond


def _one_day():  # noqa: ANN202
    from datetime import timedelta

    return timedelta(days=1)


def aggregate(function: str, of: ibis.Value | None, by: ibis.Value | None, count: ibis.Value):
    """One of the ten aggregate functions; `count` is a column that is never null."""
    match function:
        case "sum":
            return of.sum()
        case "average":
            return of.mean()
        case "count":
            return count.count() if of is None else of.count()
        case "count_distinct":
            return of.nunique()
        case "min":
            return of.min()
        case "max":
            return of.max()
        case "first" | "argmin":
            return of.argmin(by)
        case "last" | "argmax":
            return of.argmax(by)
    raise AnalyticsError(f"unknown function {function}")


@dataclass
class _Item:
    """One measure, parsed and checked, ready to aggregate."""

    index: int
    measure: Measure
    rows: Rows
    where: expr.Node | None
    of: expr.Node | None
    by: expr.Node | None
    dimensions: list[tuple[str, expr.Node]]

    def names(self) -> set[str]:
        nodes = [n for n in (self.where, self.of, self.by) if n is not None]
        nodes += [node for _n, node in self.dimensions]
        return set().union(*(expr.field_names(n) for n in nodes)) if nodes else set()

    def group_key(self) -> tuple:
        where = expr.to_text(self.where) if self.where is not None else ""
        window = self.measure.window.model_dump_json() if self.measure.window else ""
        return (self.rows.what, where, window)


class MeasureBuilder:
    def __init__(self, sources: RowSources, profile: ibis.Table, now: datetime):
        self.sources = sources
        self.project = sources.project
        self.profile = profile
        self.now = now

    # -- checking ------------------------------------------------------------------------
    def _item(self, index: int) -> _Item:
        m = self.project.measures[index]
        path = f"measures[{index}]"
        if m.template:
            template = TEMPLATES.get(m.template)
            if template is None:
                import difflib

                close = difflib.get_close_matches(m.template, TEMPLATES, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise AnalyticsError(
                    f"{path}.template: unknown template '{m.template}'{hint} Templates: "
                    f"{', '.join(TEMPLATES)}"
                )
            rows = self.sources.activity(template.activity_type, f"{path}.template")
            if template.field and template.field not in rows.fields:
                raise AnalyticsError(
                    f"{path}.template: {m.template} reads the field '{template.field}' of "
                    f"{template.activity_type} activities; add it under the activity's fields "
                    f"(fields: {{{template.field}: <column>}})"
                )
            if template.field and not rows.fields[template.field].is_numeric():
                raise AnalyticsError(
                    f"{path}.template: {m.template} needs numbers in '{template.field}'; it is "
                    f"{rows.fields[template.field]}"
                )
        elif m.activity:
            rows = self.sources.activity(m.activity, f"{path}.activity")
        else:
            rows = self.sources.table(m.table or "", f"{path}.table")
        fields = rows.fields

        def parse(source: object, what: str, condition: bool = False) -> expr.Node | None:
            if source is None:
                return None
            node = expr.parse(source, path=f"{path}.{what}")
            if condition:
                expr.check_condition(node, fields, path=f"{path}.{what}", text=_text(source))
            else:
                expr.check(node, fields, path=f"{path}.{what}", text=_text(source))
            return node

        of = parse(m.of, "of")
        if of is not None and m.function in ("sum", "average"):
            dtype = expr.check(of, fields)
            if not dtype.is_numeric():
                raise AnalyticsError(
                    f"{path}: {m.function} needs numbers; '{expr.to_text(of)}' is {dtype}"
                )
        dims = []
        for i, dim in enumerate(m.dimensions):
            name, source = next(iter(dim.items())) if isinstance(dim, dict) else (dim, dim)
            dims.append((name.replace(".", "_"), parse(source, f"dimensions[{i}]")))
        return _Item(
            index,
            m,
            rows,
            parse(m.where, "where", condition=True),
            of,
            parse(m.by, "by"),
            dims,
        )

    # -- computing -----------------------------------------------------------------------
    def _value(self, item: _Item, table: ibis.Table, resolve: dict[str, ibis.Value]) -> ibis.Value:
        m = item.measure
        if m.template:
            return TEMPLATES[m.template].aggregate(table, self.now, m.window)
        of = expr.build(item.of, resolve, now=self.now) if item.of is not None else None
        by = expr.build(item.by, resolve, now=self.now) if item.by is not None else None
        if m.function in ("first", "last") and by is None:
            by = table.ActivityTimeStamp
        return aggregate(m.function or "", of, by, table.CustomerId)

    def compute(self) -> MeasureResults:
        items = [self._item(i) for i, m in enumerate(self.project.measures) if m.expression is None]
        results = MeasureResults(self.profile.select("CustomerId"))
        groups: dict[tuple, list[_Item]] = {}
        for item in items:
            if item.measure.kind == "customer_attribute":
                groups.setdefault(item.group_key(), []).append(item)
            else:
                results.tables[f"Measure_{item.measure.name}"] = self._dimensional(item)
        attributes = self.profile.select("CustomerId")
        for group in groups.values():
            first = group[0]
            names = set().union(*(i.names() for i in group))
            table, resolve = first.rows.filtered(names, first.where, first.measure.window, self.now)
            values = {i.measure.name: self._value(i, table, resolve) for i in group}
            per_customer = table.group_by(_cid=table.CustomerId).agg(**values)
            joined = attributes.left_join(per_customer, attributes.CustomerId == per_customer._cid)
            attributes = joined.drop("_cid")
        attributes = self._defaults(attributes)
        attributes = self._expressions(attributes)
        order = [m.name for m in self.project.measures if m.kind == "customer_attribute"]
        results.attributes = attributes.select("CustomerId", *order)
        return results

    def _defaults(self, attributes: ibis.Table) -> ibis.Table:
        replace = {}
        for m in self.project.measures:
            if m.kind != "customer_attribute" or m.expression is not None:
                continue
            default = m.default
            if default is None and m.template:
                default = TEMPLATES[m.template].default
            if default is not None:
                column = attributes[m.name]
                replace[m.name] = ibis.coalesce(column, ibis.literal(default).cast(column.type()))
        return attributes.mutate(**replace) if replace else attributes

    def _expressions(self, attributes: ibis.Table) -> ibis.Table:
        pending = {i: m for i, m in enumerate(self.project.measures) if m.expression is not None}
        if not pending:
            return attributes
        profile_cols = [c for c in self.profile.columns if c not in attributes.columns]
        profile = self.profile.select("CustomerId", *profile_cols).rename(_pcid="CustomerId")
        wide = attributes.left_join(profile, attributes.CustomerId == profile._pcid).drop("_pcid")
        parsed = {
            i: expr.parse(m.expression, path=f"measures[{i}].expression")
            for i, m in pending.items()
        }
        while pending:
            ready = [
                i
                for i in pending
                if not (expr.field_names(parsed[i]) & {pending[j].name for j in pending})
            ]
            if not ready:
                cycle = ", ".join(pending[i].name for i in pending)
                raise AnalyticsError(
                    f"measures: expressions refer to each other in a cycle: {cycle}"
                )
            for i in ready:
                m = pending.pop(i)
                fields = dict(wide.schema().items())
                expr.check(
                    parsed[i], fields, path=f"measures[{i}].expression", text=_text(m.expression)
                )
                value = expr.build(parsed[i], wide, now=self.now)
                if m.default is not None:
                    value = ibis.coalesce(value, ibis.literal(m.default).cast(value.type()))
                wide = wide.mutate(**{m.name: value})
        return wide.select(
            *attributes.columns,
            *[m.name for m in self.project.measures if m.expression is not None],
        )

    def _dimensional(self, item: _Item) -> ibis.Table:
        table, resolve = item.rows.filtered(item.names(), item.where, item.measure.window, self.now)
        dims = {name: expr.build(node, resolve, now=self.now) for name, node in item.dimensions}
        keys = {"CustomerId": table.CustomerId} if item.measure.kind == "customer_measure" else {}
        value = self._value(item, table, resolve)
        by = {**keys, **dims}
        named = {item.measure.name: value}
        grouped = table.group_by(**by).agg(**named) if by else table.aggregate(**named)
        if item.measure.default is not None:
            column = grouped[item.measure.name]
            grouped = grouped.mutate(
                **{item.measure.name: ibis.coalesce(column, ibis.literal(item.measure.default))}
            )
        return grouped


def _text(source: object) -> str | None:
    return source if isinstance(source, str) else None


def customer_measure_table(attributes: ibis.Table) -> ibis.Table:
    """CustomerMeasure (seed 004): the attributes of each customer as one JSON object."""
    names = [c for c in attributes.columns if c != "CustomerId"]
    identifier = ibis.literal("Customer_Measure|") + attributes.CustomerId
    return attributes.select(
        CustomerId=attributes.CustomerId,
        Measures=jsontext.obj({n: attributes[n] for n in names}),
        Identifier=identifier,
        CustomerMeasureId=uuid5(identifier),
    )
