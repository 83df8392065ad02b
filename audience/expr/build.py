"""Building Ibis expressions from checked nodes; user values enter only as `ibis.literal`."""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ibis
import ibis.common.exceptions as ibis_errors
import ibis.expr.datatypes as idt

from audience.expr.dtypes import NULL_TYPES, coerce_literal, kind_of
from audience.expr.functions import FUNCTIONS, Args, as_string
from audience.expr.nodes import Call, ExprError, Field, Literal, Node, Op

Resolve = Mapping[str, Any] | Callable[[str], Any]

_COMPARE = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def build(node: Node, resolve: Resolve | ibis.Table, *, now: dt.datetime) -> ibis.Value:
    """The Ibis value of a checked expression.

    `resolve` maps each field name to an Ibis value (a mapping, a function, or an Ibis table).
    `now` is the run's reference time as a naive UTC datetime; today(), now(), days_since(),
    days_ago() and months_ago() use it as a literal so that results are reproducible.
    """
    if not isinstance(now, dt.datetime):
        raise TypeError(f"build(now=...) needs a datetime, got {type(now).__name__}")
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC).replace(tzinfo=None)
    return Builder(resolve, now).value(node)


class Builder:
    def __init__(self, resolve: Resolve | ibis.Table, now: dt.datetime):
        self.resolve, self.now = resolve, now

    def field(self, name: str) -> Any:
        try:
            if isinstance(self.resolve, ibis.Table | Mapping):
                return self.resolve[name]
            return self.resolve(name)
        except (KeyError, AttributeError, ibis_errors.IbisTypeError) as exc:
            raise ExprError(f"expression: unknown field '{name}'", path="expression") from exc

    def value(self, node: Node, null_type: idt.DataType | None = None) -> Any:
        """Build `node`; a null literal takes `null_type` when given."""
        if isinstance(node, Field):
            return self.field(node.name)
        if isinstance(node, Literal):
            return _literal(node, null_type)
        if isinstance(node, Call):
            spec = FUNCTIONS.get(node.fn)
            if spec is None:
                raise ExprError(f"expression: unknown function '{node.fn}'", path="expression")
            kinds = spec.rule.kinds if isinstance(spec.rule, Args) else ("any",)
            args = [
                self.value(arg, NULL_TYPES[kinds[min(i, len(kinds) - 1)]])
                for i, arg in enumerate(node.args)
            ]
            return spec.build(self, args, node)
        return self.op(node)

    def op(self, node: Op) -> Any:
        op, args = node.op, node.args
        if op in ("and", "or"):
            values = [self.value(arg, idt.boolean) for arg in args]
            return functools.reduce(operator.and_ if op == "and" else operator.or_, values)
        if op == "not":
            return ~self.value(args[0], idt.boolean)
        if op == "neg":
            return -self.value(args[0], idt.float64)
        if op in _COMPARE:
            return _COMPARE[op](*self.align(args))
        if op in ("+", "-", "*"):
            return _ARITHMETIC[op](*self.align(args))
        if op in ("/", "%"):
            # x / 0 is null everywhere: DuckDB gives null, Spark's ANSI mode would fail the run.
            left, right = self.align(args)
            if op == "%":
                return left % right.nullif(0)
            return left.cast("float64") / right.cast("float64").nullif(0)
        if op == "||":
            left, right = (self.value(arg, idt.string) for arg in args)
            return as_string(left).concat(as_string(right))
        if op in ("in", "not in"):
            value, *items = self.align(args)
            return value.isin(items) if op == "in" else value.notin(items)
        if op in ("between", "not between"):
            value, low, high = self.align(args)
            inside = value.between(low, high)
            return inside if op == "between" else ~inside
        if op in ("like", "not like"):
            value, pattern = (self.value(arg, idt.string) for arg in args)
            return value.like(pattern) if op == "like" else ~value.like(pattern)
        if op in ("is null", "is not null"):
            value = self.value(args[0], idt.string)
            return value.isnull() if op == "is null" else value.notnull()
        raise ExprError(f"expression: unknown operator '{op}'", path="expression")

    def align(self, nodes: Sequence[Node]) -> list[Any]:
        """Build values that meet in one operation: string literals next to a date or timestamp
        become dates or timestamps, dates next to timestamps are cast up, nulls take the type."""
        values = [None if _deferred(node) else self.value(node) for node in nodes]
        types = [value.type() for value in values if value is not None]
        temporal = next((t for t in types if t.is_timestamp()), None)
        temporal = temporal or next((t for t in types if t.is_date()), None)
        out: list[Any] = []
        for node, value in zip(nodes, values, strict=True):
            if isinstance(node, Literal) and node.type == "string":
                value = self.value(node) if temporal is None else _temporal(node, temporal)
            elif value is not None and temporal is not None and temporal.is_timestamp():
                value = value.cast(temporal) if value.type().is_date() else value
            out.append(value)
        target = next((v.type() for v in out if v is not None), None)
        return [(ibis.null(target) if target else ibis.null()) if v is None else v for v in out]


def _deferred(node: Node) -> bool:
    return isinstance(node, Literal) and node.type in ("null", "string")


def _temporal(node: Literal, dtype: idt.DataType) -> Any:
    try:
        return ibis.literal(coerce_literal(node, kind_of(dtype)).value, type=dtype)
    except ValueError as exc:
        message = f"expression: {node.value!r} is not a valid {kind_of(dtype)}"
        raise ExprError(message, path="expression") from exc


def _literal(node: Literal, null_type: idt.DataType | None) -> Any:
    value, kind = node.value, node.type
    if kind == "null":
        return ibis.null(null_type) if null_type is not None else ibis.null()
    if kind == "number":
        return ibis.literal(value, type="int64" if isinstance(value, int) else "float64")
    return ibis.literal(value, type=kind)
