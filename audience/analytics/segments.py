"""Segments: groups of customers defined by condition trees over profiles, measures and
activities, combined by union, intersect or except.

A condition is an expression over the customer's fields (profile columns and customer
attributes), a group (`all`, `any`, `not`), membership of another segment, or an activity
condition ("bought shoes in the last 30 days", "more than 3 visits"). A condition that is
unknown (NULL, e.g. a missing birth date) counts as false: the customer is not a member.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.datatypes as dt

from audience import expr
from audience.analytics.config import (
    ActivityCondition,
    AllOf,
    AnyOf,
    InSegment,
    NotOf,
    Segment,
)
from audience.analytics.measures import RowSources
from audience.analytics.paths import AnalyticsError

PROVIDER = "Audience"
MEMBERSHIP_TYPE = "Customer"
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
    "!=": operator.ne,
}


class SegmentBuilder:
    """Turns segment definitions into member tables (CustomerId).

    Conditions read profile fields and customer attributes. Both tables have one row per
    customer, so a segment that reads only one of them runs on that table alone; the join of
    the two is made only when a segment needs both (a third of a segment's time at 1M
    customers, measured in benchmarks/measures_segments.py)."""

    def __init__(
        self,
        sources: RowSources,
        profile: ibis.Table,
        attributes: ibis.Table,
        now: datetime,
        members: dict[str, ibis.Table] | None = None,
        parts: list[ibis.Table] | None = None,
    ):
        clash = sorted(set(profile.columns) & set(attributes.columns) - {"CustomerId"})
        if clash:
            raise AnalyticsError(f"measures: names {clash} are also profile fields; rename them")
        self.sources = sources
        self.project = sources.project
        self.profile = profile
        self.attributes = attributes
        self.fields: dict[str, dt.DataType] = {
            **dict(profile.schema().items()),
            **dict(attributes.schema().items()),
        }
        self.now = now
        self.members: dict[str, ibis.Table] = dict(members or {})
        # The tables `attributes` joins (measures, enrichment, predictions fields), each one
        # row per customer: a condition reading one of them need not join the others.
        self.parts = list(parts or [])

    @property
    def base(self) -> ibis.Table:
        """One row per customer: the profile's columns and the customer attributes."""
        other = self.attributes.rename(_acid="CustomerId")
        joined = self.profile.left_join(other, self.profile.CustomerId == other._acid)
        return joined.drop("_acid")

    def _base_for(self, conditions: list[Any], path: str) -> ibis.Table:
        names = {"CustomerId"}
        for i, cond in enumerate(conditions):
            names |= _field_names(cond, f"{path}[{i}]")
        if names <= set(self.profile.columns):
            return self.profile
        needed = [p for p in self.parts if (names - {"CustomerId"}) & set(p.columns)]
        if self.parts and names <= set(self.profile.columns).union(*(p.columns for p in needed)):
            if len(needed) == 1 and names <= set(needed[0].columns):
                return needed[0]
            base = self.profile
            for part in needed:  # the 2-condition live count at 1M: 0.74 s with every part
                other = part.rename(_acid="CustomerId")
                base = base.left_join(other, base.CustomerId == other._acid).drop("_acid")
            return base
        if names <= set(self.attributes.columns):
            return self.attributes
        return self.base

    # -- conditions ----------------------------------------------------------------------
    def condition(self, cond: Any, path: str, base: ibis.Table) -> ibis.BooleanValue:
        """A condition as a boolean over `base` (never NULL)."""
        match cond:
            case AllOf(all=items):
                parts = [self.condition(c, f"{path}.all[{i}]", base) for i, c in enumerate(items)]
                return _fold(parts, operator.and_)
            case AnyOf(any=items):
                parts = [self.condition(c, f"{path}.any[{i}]", base) for i, c in enumerate(items)]
                return _fold(parts, operator.or_)
            case NotOf(not_=inner):
                return ~self.condition(inner, f"{path}.not", base)
            case InSegment(segment=name):
                return base.CustomerId.isin(self.members_of(name, f"{path}.segment"))
            case ActivityCondition():
                return self._activity(cond, path, base)
            case _:
                node = expr.parse(cond, path=path)
                expr.check_condition(node, self.fields, path=path, text=_text(cond))
                value = expr.build(node, base, now=self.now)
                return ibis.coalesce(value, False)

    def members_of(self, name: str, path: str) -> ibis.Value:
        if name not in self.members:
            known = [s.name for s in self.project.segments]
            if name in known:
                raise AnalyticsError(f"{path}: segment '{name}' is not computed yet (a cycle?)")
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise AnalyticsError(
                f"{path}: no segment '{name}'{hint} Segments: {', '.join(known) or 'none'}"
            )
        return self.members[name].CustomerId

    def _activity(self, cond: ActivityCondition, path: str, base: ibis.Table) -> ibis.BooleanValue:
        rows = self.sources.activity(cond.activity, f"{path}.activity")
        where = None
        if cond.where is not None:
            where = expr.parse(cond.where, path=f"{path}.where")
            expr.check_condition(where, rows.fields, path=f"{path}.where", text=_text(cond.where))
        table, _resolve = rows.filtered(set(), where, cond.within, self.now)
        match = re.match(r"^\s*(>=|<=|>|<|=|!=)\s*(\d+)\s*$", cond.count)
        assert match  # the model's pattern guarantees it
        compare, n = _COMPARE[match.group(1)], int(match.group(2))
        counts = table.group_by("CustomerId").agg(_n=table.CustomerId.count())
        if compare(0, n):
            # Customers without rows qualify: exclude those whose count fails instead.
            failing = counts.filter(~compare(counts._n, n))
            return ~base.CustomerId.isin(failing.CustomerId)
        return base.CustomerId.isin(counts.filter(compare(counts._n, n)).CustomerId)

    # -- segments ------------------------------------------------------------------------
    def members_table(self, segment: Segment, path: str) -> ibis.Table:
        base = self._base_for(segment.rules, f"{path}.rules")
        rules = [self.condition(r, f"{path}.rules[{i}]", base) for i, r in enumerate(segment.rules)]
        if segment.combine == "intersect":
            keep = _fold(rules, operator.and_)
        elif segment.combine == "except":
            keep = rules[0] & ~_fold(rules[1:], operator.or_)
        else:
            keep = _fold(rules, operator.or_)
        return base.filter(keep).select("CustomerId")

    def quick(self, condition: Any) -> ibis.Table:
        """Customers (with all their fields) that meet one condition: a segment not saved."""
        base = self.base
        return base.filter(self.condition(condition, "condition", base))

    def count(self, condition: Any) -> int:
        """How many customers meet one condition, over only the table(s) it reads (the
        console's live count: the whole base cost 0.6 s per count at 1M customers)."""
        base = self._base_for([condition], "condition")
        return int(
            base.filter(self.condition(condition, "condition", base)).count().to_pyarrow().as_py()
        )


def _text(source: Any) -> str | None:
    return source if isinstance(source, str) else None


def _field_names(cond: Any, path: str) -> set[str]:
    """Profile and attribute names a condition reads (not those inside activity conditions)."""
    match cond:
        case AllOf(all=items) | AnyOf(any=items):
            return set().union(*(_field_names(c, path) for c in items))
        case NotOf(not_=inner):
            return _field_names(inner, path)
        case InSegment() | ActivityCondition():
            return set()
        case _:
            return expr.field_names(expr.parse(cond, path=path))


def segment_order(segments: list[Segment]) -> list[int]:
    """Indexes of segments so each comes after the segments it refers to."""
    refs = {i: _references(s) for i, s in enumerate(segments)}
    names = {s.name: i for i, s in enumerate(segments)}
    done: list[int] = []
    pending = list(range(len(segments)))
    while pending:
        ready = [i for i in pending if all(names.get(r) in done or r not in names for r in refs[i])]
        if not ready:
            cycle = ", ".join(segments[i].name for i in pending)
            raise AnalyticsError(f"segments: these refer to each other in a cycle: {cycle}")
        done.extend(ready)
        pending = [i for i in pending if i not in ready]
    return done


def _references(segment: Segment) -> set[str]:
    found: set[str] = set()

    def walk(cond: Any) -> None:
        match cond:
            case AllOf(all=items) | AnyOf(any=items):
                for c in items:
                    walk(c)
            case NotOf(not_=inner):
                walk(inner)
            case InSegment(segment=name):
                found.add(name)

    for rule in segment.rules:
        walk(rule)
    return found


def _fold(parts: list[ibis.BooleanValue], op: Callable) -> ibis.BooleanValue:
    out = parts[0]
    for part in parts[1:]:
        out = op(out, part)
    return out


def membership_table(members: ibis.Table, project_name: str) -> ibis.Table:
    """SegmentMembership (seed 004): per customer, the JSON list of its segments."""
    from audience.unify.ids import uuid5

    grouped = members.group_by("CustomerId").agg(
        _names=('"' + members.Segment + '"').collect().sort().join(",")
    )
    identifier = grouped.CustomerId + f"|{PROVIDER}|{MEMBERSHIP_TYPE}|{project_name}"
    return grouped.select(
        CustomerId=grouped.CustomerId,
        SegmentProvider=ibis.literal(PROVIDER),
        SegmentMembershipType=ibis.literal(MEMBERSHIP_TYPE),
        Segments="[" + grouped._names + "]",
        Identifier=identifier,
        SegmentMembershipId=uuid5(identifier),
    )
