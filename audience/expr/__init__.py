"""One expression language for measures, filters and segment conditions.

Users write text in the project file (`total_spend > 500 and country in ('US', 'CA')`) or send a
JSON tree from the console. Either becomes a small tree of nodes (Field, Literal, Call, Op) that
is checked against the known fields and an allow-list of functions, then built as Ibis
expressions. Nothing a user types reaches SQL except as `ibis.literal(...)` values: there is no
eval and no SQL text.

Text grammar, lowest precedence first:

    expr    := expr 'or' expr | expr 'and' expr | 'not' expr | comparison
    comparison := sum (('=' | '==' | '!=' | '<>' | '<' | '<=' | '>' | '>=') sum
                | ['not'] 'in' '(' expr, ... ')' | ['not'] 'between' sum 'and' sum
                | ['not'] 'like' sum | 'is' ['not'] 'null')?
    sum     := sum ('+' | '-' | '||') product | product
    product := product ('*' | '/' | '%') unary | unary
    unary   := '-' unary | primary
    primary := number | 'string' | true | false | null | date 'YYYY-MM-DD'
             | timestamp 'YYYY-MM-DD HH:MM:SS' | name | "quoted name" | `quoted name`
             | function '(' expr, ... ')' | '(' expr ')'

Names are case-sensitive and may be dotted (`order.status` is one field name); keywords and
function names are not case-sensitive. Strings use single quotes ('' is a quote inside one).
Comparisons do not chain; `a and b and c` is one n-ary 'and'. `/` is float division.

JSON tree: {"field": "x"}, {"value": 5}, {"value": "2025-01-31", "type": "date"},
{"call": "lower", "args": [...]}, {"op": "and", "args": [...]}.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import ibis
import ibis.expr.datatypes as idt

from audience.expr.build import Resolve, build
from audience.expr.check import check, check_condition
from audience.expr.functions import FUNCTIONS, Function
from audience.expr.nodes import (
    Call,
    ExprError,
    Field,
    Literal,
    Node,
    Op,
    fail,
    field_names,
    from_json,
    to_json,
)
from audience.expr.text import parse_text, to_text

__all__ = [
    "FUNCTIONS",
    "Call",
    "ExprError",
    "Field",
    "Function",
    "Literal",
    "Node",
    "Op",
    "build",
    "check",
    "check_condition",
    "compile",
    "field_names",
    "parse",
    "to_json",
    "to_text",
]


def parse(source: str | Mapping[str, Any] | list[Any] | Node, *, path: str = "expression") -> Node:
    """Text, a JSON tree or a node -> node; ExprError (with `path`) if it cannot be read.

    A list is a list of conditions that must all hold (`where: [a > 1, b = 2]` in YAML), and a
    bare YAML scalar (true, 5) is a literal.
    """
    if isinstance(source, Field | Literal | Call | Op):
        return source
    if isinstance(source, str):
        return parse_text(source, path)
    if isinstance(source, Mapping):
        return from_json(source, path)
    if isinstance(source, list | tuple):
        if not source:
            fail(path, "the list of conditions is empty")
        parts = tuple(parse(item, path=f"{path}[{i}]") for i, item in enumerate(source))
        return parts[0] if len(parts) == 1 else Op("and", parts)
    if isinstance(source, bool | int | float):
        return from_json({"value": source}, path)
    if source is None:
        fail(path, "the expression is empty")
    fail(path, f"expected an expression (text or a JSON object), got {type(source).__name__}")


def compile(
    source: str | Mapping[str, Any] | list[Any] | Node,
    fields: Mapping[str, idt.DataType | str],
    resolve: Resolve | ibis.Table,
    *,
    now: dt.datetime,
    path: str = "expression",
) -> ibis.Value:
    """parse + check + build: the Ibis value of `source` over `fields`."""
    node = parse(source, path=path)
    check(node, fields, path=path, text=source if isinstance(source, str) else None)
    return build(node, resolve, now=now)
