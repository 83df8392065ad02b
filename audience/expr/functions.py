"""The function allow-list: one row per function with its arity, type rule and Ibis builder.

To add a function, add a row to FUNCTIONS. A type rule gets the checker, the call and the
argument types and returns the result type (raising through `checker.error`); a builder gets
the expression builder, the built arguments and the call. Every builder uses only Ibis
operations that compile on both DuckDB and PySpark.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import ibis
import ibis.expr.datatypes as idt

from audience.engine import strip_whitespace
from audience.expr.dtypes import KIND_WORDS, coerce_literal, describe, fits, kind_of
from audience.expr.nodes import Call, Literal, parse_timestamp

if TYPE_CHECKING:
    from audience.expr.build import Builder
    from audience.expr.check import Checker

Rule = Callable[["Checker", Call, list[idt.DataType]], idt.DataType]
Build = Callable[["Builder", list[Any], Call], Any]


class Function(NamedTuple):
    min_args: int
    max_args: int | None
    rule: Rule
    build: Build


@dataclass(frozen=True)
class Args:
    """Argument i must be of kinds[i] (the last kind repeats); the result is `returns`."""

    kinds: tuple[str, ...]
    returns: idt.DataType | Callable[[list[idt.DataType]], idt.DataType]

    def __call__(self, checker: Checker, call: Call, types: list[idt.DataType]) -> idt.DataType:
        for i, (arg, dtype) in enumerate(zip(call.args, types, strict=True)):
            kind = self.kinds[min(i, len(self.kinds) - 1)]
            if not fits(dtype, kind):
                checker.error(
                    f"{call.fn}() argument {i + 1} must be {KIND_WORDS[kind]},"
                    f" got {describe(arg, dtype)}",
                    name=call.fn,
                    call=True,
                )
        return self.returns if isinstance(self.returns, idt.DataType) else self.returns(types)


def _common(*kinds: str) -> Rule:
    """All arguments share one type, of one of `kinds`."""

    def rule(checker: Checker, call: Call, types: list[idt.DataType]) -> idt.DataType:
        result = checker.common(
            call.args, types, f"{call.fn}() arguments do not match: {{a}}, {{b}}"
        )
        if not result.is_null() and kind_of(result) not in kinds:
            checker.error(f"{call.fn}() does not work on {result} values", name=call.fn, call=True)
        return result

    return rule


def _if_rule(checker: Checker, call: Call, types: list[idt.DataType]) -> idt.DataType:
    checker.expect("if", call.args[0], types[0], "boolean")
    return checker.common(call.args[1:], types[1:], "if() branches do not match: {a}, {b}")


def _literal_int(call: Call, index: int) -> int | None:
    arg = call.args[index] if index < len(call.args) else None
    if isinstance(arg, Literal) and arg.type == "number" and isinstance(arg.value, int):
        return arg.value
    return None


def _substr_rule(checker: Checker, call: Call, types: list[idt.DataType]) -> idt.DataType:
    start = _literal_int(call, 1)
    if start is not None and start < 1:
        checker.error(
            f"substr() counts from 1 (SQL style), got start {start}", name="substr", call=True
        )
    return Args(("string", "integer"), idt.string)(checker, call, types)


def _round_rule(checker: Checker, call: Call, types: list[idt.DataType]) -> idt.DataType:
    # Spark's round() accepts only a constant number of digits.
    if len(call.args) > 1 and _literal_int(call, 1) is None:
        checker.error("round() digits must be a whole number like 2", name="round", call=True)
    return Args(("number", "integer"), _same)(checker, call, types)


def _convert_rule(target: str) -> Rule:
    """date(x) / timestamp(x): a string literal must already read as one."""

    def rule(checker: Checker, call: Call, types: list[idt.DataType]) -> idt.DataType:
        arg = call.args[0]
        if isinstance(arg, Literal) and arg.type == "string":
            try:
                parse_timestamp(str(arg.value))
            except ValueError:
                checker.error(f"{call.fn}() cannot read {arg.value!r} as a {target}", at=arg)
        return Args(("datelike",), idt.dtype(target))(checker, call, types)

    return rule


def _same(types: list[idt.DataType]) -> idt.DataType:
    return idt.float64 if types[0].is_null() else types[0]


def _whole(types: list[idt.DataType]) -> idt.DataType:
    return types[0] if types[0].is_decimal() else idt.int64


# -- builders -------------------------------------------------------------------------------


def _as_date(value: Any) -> Any:
    return value if value.type().is_date() else value.date()


def as_string(value: Any) -> Any:
    return value if value.type().is_string() else value.cast("string")


def _substr(b: Builder, args: list[Any], call: Call) -> Any:
    start = _literal_int(call, 1)
    offset = start - 1 if start is not None else args[1] - 1
    return args[0].substr(offset, args[2]) if len(args) > 2 else args[0].substr(offset)


def _round(b: Builder, args: list[Any], call: Call) -> Any:
    # Ibis types round() of a float as an integer or float depending on the digits; keep x's type.
    digits = _literal_int(call, 1) or 0
    return args[0].round(digits).cast(args[0].type())


def _to_date(b: Builder, args: list[Any], call: Call) -> Any:
    arg, value = call.args[0], args[0]
    if isinstance(arg, Literal) and arg.type == "string":
        return ibis.literal(parse_timestamp(str(arg.value)).date(), type="date")
    # try_cast: one malformed string gives null instead of failing the whole run.
    return value.try_cast("timestamp").date() if value.type().is_string() else _as_date(value)


def _to_timestamp(b: Builder, args: list[Any], call: Call) -> Any:
    arg, value = call.args[0], args[0]
    if isinstance(arg, Literal) and arg.type == "string":
        return ibis.literal(coerce_literal(arg, "timestamp").value, type="timestamp")
    if value.type().is_string():
        return value.try_cast("timestamp")
    return value if value.type().is_timestamp() else value.cast("timestamp")


def months_before(stamp: dt.datetime, months: int) -> dt.datetime:
    """`stamp` moved back `months` calendar months, the day clamped to the month's end."""
    year, month = divmod(stamp.year * 12 + stamp.month - 1 - months, 12)
    day = min(stamp.day, calendar.monthrange(year, month + 1)[1])
    return stamp.replace(year=year, month=month + 1, day=day)


def _days_ago(b: Builder, args: list[Any], call: Call) -> Any:
    days = _literal_int(call, 0)
    if days is not None:
        return ibis.literal(b.now - dt.timedelta(days=days), type="timestamp")
    return ibis.literal(b.now, type="timestamp") - args[0].as_interval("D")


def _months_ago(b: Builder, args: list[Any], call: Call) -> Any:
    months = _literal_int(call, 0)
    if months is not None:
        return ibis.literal(months_before(b.now, months), type="timestamp")
    return ibis.literal(b.now, type="timestamp") - args[0].as_interval("M")


def _today(b: Builder) -> Any:
    return ibis.literal(b.now.date(), type="date")


_STRING = Args(("string",), idt.string)
_STRING2 = Args(("string", "string"), idt.boolean)
_TEMPORAL_PART = Args(("temporal",), idt.int32)
_SAME_NUMBER = Args(("number",), _same)
_WHOLE = Args(("number",), _whole)
_ORDERED = _common("number", "string", "date", "timestamp")

FUNCTIONS: dict[str, Function] = {
    # strings
    "lower": Function(1, 1, _STRING, lambda b, a, c: a[0].lower()),
    "upper": Function(1, 1, _STRING, lambda b, a, c: a[0].upper()),
    "trim": Function(1, 1, _STRING, lambda b, a, c: strip_whitespace(a[0])),
    "length": Function(1, 1, Args(("string",), idt.int32), lambda b, a, c: a[0].length()),
    "concat": Function(
        1,
        None,
        Args(("any",), idt.string),
        lambda b, a, c: (
            as_string(a[0]).concat(*map(as_string, a[1:])) if len(a) > 1 else as_string(a[0])
        ),
    ),
    "substr": Function(2, 3, _substr_rule, _substr),
    "replace": Function(
        3, 3, Args(("string",), idt.string), lambda b, a, c: a[0].replace(a[1], a[2])
    ),
    "contains": Function(2, 2, _STRING2, lambda b, a, c: a[0].contains(a[1])),
    "starts_with": Function(2, 2, _STRING2, lambda b, a, c: a[0].startswith(a[1])),
    "ends_with": Function(2, 2, _STRING2, lambda b, a, c: a[0].endswith(a[1])),
    # nulls and logic
    "coalesce": Function(
        1,
        None,
        _common("number", "string", "boolean", "date", "timestamp"),
        lambda b, a, c: ibis.coalesce(*b.align(c.args)),
    ),
    "if": Function(
        3,
        3,
        _if_rule,
        lambda b, a, c: ibis.ifelse(b.value(c.args[0], idt.boolean), *b.align(c.args[1:])),
    ),
    # numbers
    "abs": Function(1, 1, _SAME_NUMBER, lambda b, a, c: a[0].abs()),
    "round": Function(1, 2, _round_rule, _round),
    "floor": Function(1, 1, _WHOLE, lambda b, a, c: a[0].floor()),
    "ceil": Function(1, 1, _WHOLE, lambda b, a, c: a[0].ceil()),
    "least": Function(2, None, _ORDERED, lambda b, a, c: ibis.least(*b.align(c.args))),
    "greatest": Function(2, None, _ORDERED, lambda b, a, c: ibis.greatest(*b.align(c.args))),
    # dates
    "year": Function(1, 1, _TEMPORAL_PART, lambda b, a, c: a[0].year()),
    "month": Function(1, 1, _TEMPORAL_PART, lambda b, a, c: a[0].month()),
    "day": Function(1, 1, _TEMPORAL_PART, lambda b, a, c: a[0].day()),
    "date": Function(1, 1, _convert_rule("date"), _to_date),
    "timestamp": Function(1, 1, _convert_rule("timestamp"), _to_timestamp),
    "today": Function(0, 0, Args((), idt.date), lambda b, a, c: _today(b)),
    "now": Function(
        0, 0, Args((), idt.timestamp), lambda b, a, c: ibis.literal(b.now, type="timestamp")
    ),
    "days_since": Function(
        1,
        1,
        Args(("temporal",), idt.int64),
        lambda b, a, c: _today(b).delta(_as_date(a[0]), unit="day"),
    ),
    "days_between": Function(
        2,
        2,
        Args(("temporal",), idt.int64),
        lambda b, a, c: _as_date(a[1]).delta(_as_date(a[0]), unit="day"),
    ),
    "days_ago": Function(1, 1, Args(("integer",), idt.timestamp), _days_ago),
    "months_ago": Function(1, 1, Args(("integer",), idt.timestamp), _months_ago),
}
