"""The expression tree, its error type and its JSON form."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

LITERAL_TYPES = ("number", "string", "boolean", "null", "date", "timestamp")


class ExprError(ValueError):
    """A user-facing error in an expression.

    `message` is complete (it starts with the config path and may end with the offending line
    and a caret); `path` is the config path ('measures[2].where') and `position` the 0-based
    character offset in the text, or None when there is no text (a JSON tree).
    """

    def __init__(self, message: str, *, path: str | None = None, position: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.position = position

    def __str__(self) -> str:
        return self.message


def fail(
    path: str, message: str, *, text: str | None = None, position: int | None = None
) -> NoReturn:
    """Raise ExprError '<path>: <message>', showing the line of `text` with a caret under it."""
    full = f"{path}: {message}"
    if text is not None and position is not None:
        start = text.rfind("\n", 0, position) + 1
        end = text.find("\n", position)
        line = text[start : end if end >= 0 else len(text)]
        full += f"\n  {line}\n  {' ' * (position - start)}^"
    raise ExprError(full, path=path, position=position)


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Literal:
    value: object
    type: str


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Op:
    op: str
    args: tuple[Node, ...]


Node = Field | Literal | Call | Op

# op -> (min operands, max operands or None)
OPS: dict[str, tuple[int, int | None]] = {
    "and": (2, None),
    "or": (2, None),
    "not": (1, 1),
    "neg": (1, 1),
    "is null": (1, 1),
    "is not null": (1, 1),
    "in": (2, None),
    "not in": (2, None),
    "between": (3, 3),
    "not between": (3, 3),
    **{op: (2, 2) for op in ("=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "||")},
    **{op: (2, 2) for op in ("like", "not like")},
}
COMPARISONS = frozenset({"=", "!=", "<", "<=", ">", ">="})


def field_names(node: Node) -> set[str]:
    """Every field name the expression reads."""
    if isinstance(node, Field):
        return {node.name}
    if isinstance(node, Call | Op):
        return set().union(*(field_names(arg) for arg in node.args))
    return set()


# -- literal values ------------------------------------------------------------------------


def parse_date(value: str) -> dt.date:
    """'2025-01-31' -> date; ValueError otherwise (a timestamp string is not a date)."""
    if len(value) != 10:
        raise ValueError(value)
    return dt.date.fromisoformat(value)


def parse_timestamp(value: str) -> dt.datetime:
    """'2025-01-31 10:00:00', '...T10:00', '2025-01-31' -> naive UTC datetime; else ValueError."""
    stamp = dt.datetime.fromisoformat(value.strip())
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    return stamp


def literal_text(node: Literal) -> str:
    """A literal as the text grammar writes it."""
    value, kind = node.value, node.type
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "number":
        return repr(value)
    if kind == "date":
        return f"date '{value.isoformat()}'"  # type: ignore[attr-defined]
    if kind == "timestamp":
        return f"timestamp '{value.isoformat(sep=' ')}'"  # type: ignore[attr-defined]
    return "'" + str(value).replace("'", "''") + "'"


# -- JSON ----------------------------------------------------------------------------------


def to_json(node: Node) -> dict[str, Any]:
    """The JSON tree of an expression; `parse(to_json(node)) == node`."""
    if isinstance(node, Field):
        return {"field": node.name}
    if isinstance(node, Literal):
        if node.type == "timestamp":
            return {"value": node.value.isoformat(sep=" "), "type": "timestamp"}  # type: ignore[attr-defined]
        if node.type == "date":
            return {"value": node.value.isoformat(), "type": "date"}  # type: ignore[attr-defined]
        return {"value": node.value}
    if isinstance(node, Call):
        return {"call": node.fn, "args": [to_json(arg) for arg in node.args]}
    return {"op": node.op, "args": [to_json(arg) for arg in node.args]}


_SHAPES = {"field": {"field"}, "value": {"value", "type"}, "call": {"call", "args"}}


def from_json(data: Any, path: str) -> Node:
    """Read a JSON tree (dicts and lists from json.loads or YAML) into nodes."""
    if isinstance(data, Field | Literal | Call | Op):
        return data
    if not isinstance(data, Mapping):
        fail(path, f"expected an expression object, got {type(data).__name__} {data!r}")
    kinds = [key for key in ("field", "value", "call", "op") if key in data]
    if not kinds:
        fail(path, f"expected an object with a field, value, call or op key; got {_keys(data)}")
    if len(kinds) > 1:
        fail(path, f"an expression object has one of field, value, call, op; got {_keys(data)}")
    kind = kinds[0]
    extra = set(data) - _SHAPES.get(kind, {"op", "args"})
    if extra:
        allowed = ", ".join(sorted(_SHAPES.get(kind, {"op", "args"})))
        fail(
            path,
            f"unknown key '{sorted(map(str, extra))[0]}' in a {kind} node (allowed: {allowed})",
        )
    if kind == "field":
        name = data["field"]
        if not isinstance(name, str) or not name:
            fail(f"{path}.field", f"a field name must be a non-empty string, got {name!r}")
        return Field(name)
    if kind == "value":
        return _literal_from_json(data["value"], data.get("type"), path)
    args = data.get("args", [])
    if not isinstance(args, list | tuple):
        fail(f"{path}.args", f"args must be a list, got {type(args).__name__}")
    nodes = tuple(from_json(arg, f"{path}.args[{i}]") for i, arg in enumerate(args))
    if kind == "call":
        fn = data["call"]
        if not isinstance(fn, str) or not fn:
            fail(f"{path}.call", f"a function name must be a non-empty string, got {fn!r}")
        return Call(fn.lower(), nodes)
    op = data["op"]
    if op not in OPS:
        fail(f"{path}.op", f"unknown operator {op!r}; operators: {', '.join(OPS)}")
    problem = arity_problem(op, len(nodes))
    if problem:
        fail(path, problem)
    return Op(op, nodes)


def arity_problem(op: str, count: int) -> str | None:
    """Why `count` operands do not suit operator `op`, or None when they do."""
    low, high = OPS[op]
    if low <= count and (high is None or count <= high):
        return None
    wanted = f"{low}" if low == high else f"at least {low}"
    return f"operator '{op}' takes {wanted} operand{'s' if low > 1 else ''}, got {count}"


def _keys(data: Mapping) -> str:
    return "{" + ", ".join(map(str, data)) + "}" if data else "{}"


def _literal_from_json(value: Any, kind: Any, path: str) -> Literal:
    if kind is None:
        if value is None:
            return Literal(None, "null")
        if isinstance(value, bool):
            return Literal(value, "boolean")
        if isinstance(value, int | float):
            kind = "number"
        elif isinstance(value, str):
            return Literal(value, "string")
        elif isinstance(value, dt.datetime):
            return Literal(value, "timestamp")
        elif isinstance(value, dt.date):
            return Literal(value, "date")
        else:
            fail(f"{path}.value", f"unsupported value {value!r} ({type(value).__name__})")
    if kind not in LITERAL_TYPES:
        fail(
            f"{path}.type",
            f"unknown literal type {kind!r}; expected one of {', '.join(LITERAL_TYPES)}",
        )
    if kind == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            fail(f"{path}.value", f"expected a finite number, got {value!r}")
        return Literal(value, "number")
    if kind in ("date", "timestamp"):
        if isinstance(value, dt.datetime if kind == "timestamp" else dt.date):
            return Literal(value, kind)
        try:
            parsed = parse_date(value) if kind == "date" else parse_timestamp(value)
        except (TypeError, ValueError):
            example = "'2025-01-31'" if kind == "date" else "'2025-01-31 10:00:00'"
            fail(f"{path}.value", f"{value!r} is not a valid {kind} (expected e.g. {example})")
        return Literal(parsed, kind)
    expected = {"string": str, "boolean": bool, "null": type(None)}[kind]
    if not isinstance(value, expected):
        fail(f"{path}.value", f"expected a {kind} value, got {value!r}")
    return Literal(value, kind)
