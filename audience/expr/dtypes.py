"""Kinds of Ibis types as the expression language sees them, and literal coercion."""

from __future__ import annotations

import ibis.expr.datatypes as dt

from audience.expr.nodes import Literal, Node, parse_date, parse_timestamp
from audience.expr.text import to_text

KIND_WORDS = {
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "a condition (true/false)",
    "temporal": "a date or timestamp",
    "datelike": "a string, date or timestamp",
    "any": "a value",
}
# The type a null literal takes where a function expects a kind of argument.
NULL_TYPES = {
    "string": dt.string,
    "number": dt.float64,
    "integer": dt.int64,
    "boolean": dt.boolean,
    "temporal": dt.timestamp,
    "datelike": dt.string,
    "any": dt.string,
}


def describe(node: Node, dtype: dt.DataType) -> str:
    return f"{to_text(node)} ({dtype})"


def kind_of(dtype: dt.DataType) -> str:
    """number, string, boolean, date, timestamp or null; other types are named by themselves."""
    if dtype.is_null():
        return "null"
    if dtype.is_boolean():
        return "boolean"
    if dtype.is_numeric():
        return "number"
    if dtype.is_string():
        return "string"
    if dtype.is_timestamp():
        return "timestamp"
    if dtype.is_date():
        return "date"
    return str(dtype)


def literal_dtype(node: Literal) -> dt.DataType:
    if node.type == "number":
        return dt.int64 if isinstance(node.value, int) else dt.float64
    return {
        "string": dt.string,
        "boolean": dt.boolean,
        "null": dt.null,
        "date": dt.date,
        "timestamp": dt.timestamp,
    }[node.type]


def fits(dtype: dt.DataType, kind: str) -> bool:
    """Whether a value of `dtype` may be passed where a function expects `kind`."""
    actual = kind_of(dtype)
    if actual == "null" or kind == "any":
        return True
    if kind == "integer":
        return dtype.is_integer()
    if kind == "temporal":
        return actual in ("date", "timestamp")
    if kind == "datelike":
        return actual in ("date", "timestamp", "string")
    return actual == kind


def number_result(types: list[dt.DataType]) -> dt.DataType:
    """The type of + - * % over numbers: float wins, then decimal, else int64."""
    numbers = [t for t in types if not t.is_null()]
    if any(t.is_floating() for t in numbers):
        return dt.float64
    decimals = [t for t in numbers if t.is_decimal()]
    if decimals:
        return max(decimals, key=lambda t: (t.scale or 0, t.precision or 0))
    return dt.int64


def coerce_literal(node: Literal, kind: str) -> Literal:
    """A string literal read as a date or timestamp (kind 'date'/'timestamp'); ValueError if not."""
    if node.type != "string":
        return node
    if kind == "date":
        return Literal(parse_date(str(node.value)), "date")
    return Literal(parse_timestamp(str(node.value)), "timestamp")
