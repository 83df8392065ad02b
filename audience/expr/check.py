"""Type checking: known fields, the function allow-list, arity and operand types."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import NoReturn

import ibis
import ibis.expr.datatypes as dt

from audience.expr.dtypes import (
    KIND_WORDS,
    coerce_literal,
    describe,
    fits,
    kind_of,
    literal_dtype,
    number_result,
)
from audience.expr.functions import FUNCTIONS
from audience.expr.nodes import (
    COMPARISONS,
    OPS,
    Call,
    ExprError,
    Field,
    Literal,
    Node,
    Op,
    arity_problem,
    fail,
)
from audience.expr.text import to_text, tokenize

_MAX_LISTED = 15
_WORD = re.compile(r"[A-Za-z0-9_.]")


def check(
    node: Node,
    fields: Mapping[str, dt.DataType | str],
    *,
    path: str = "expression",
    text: str | None = None,
) -> dt.DataType:
    """The result type of `node` over `fields` (name -> Ibis type); ExprError if it is invalid.

    `text`, the source the node was parsed from, lets errors point at the unknown name.
    """
    return Checker(fields, path, text).type_of(node)


def check_condition(
    node: Node,
    fields: Mapping[str, dt.DataType | str],
    *,
    path: str = "expression",
    text: str | None = None,
) -> None:
    """Check `node` and require a true/false result (filters, segment conditions)."""
    result = check(node, fields, path=path, text=text)
    if not result.is_boolean():
        shown = text if text is not None else to_text(node)
        raise ExprError(
            f"{path}: expected a condition (true/false), got {result} from '{shown}'", path=path
        )


class Checker:
    def __init__(self, fields: Mapping[str, dt.DataType | str], path: str, text: str | None):
        self.fields, self.path, self.text = fields, path, text

    def error(
        self, message: str, *, name: str | None = None, call: bool = False, at: Node | None = None
    ) -> NoReturn:
        """Fail pointing at the first use of `name` (a field, or a call), or at node `at`."""
        position = self._locate(name, call) if at is None else self._find(at)
        fail(self.path, message, text=self.text, position=position)

    def _find(self, node: Node) -> int | None:
        """Where the node's canonical text stands in the source, if exactly once (the source
        may be spelled differently: then there is no caret rather than a wrong one)."""
        if self.text is None:
            return None
        snippet = to_text(node)
        found = [
            match.start()
            for match in re.finditer(re.escape(snippet), self.text)
            if not _WORD.match(self.text[match.start() - 1 : match.start()])
            and not _WORD.match(self.text[match.end() : match.end() + 1])
        ]
        return found[0] if len(found) == 1 else None

    def _locate(self, name: str | None, call: bool) -> int | None:
        if self.text is None or name is None:
            return None
        try:
            tokens = tokenize(self.text, self.path)
        except ExprError:
            return None
        for token, after in zip(tokens, tokens[1:], strict=False):
            is_call = after.kind == "symbol" and after.value == "("
            if call and token.kind == "name" and is_call and str(token.value).lower() == name:
                return token.start
            if not call and token.kind in ("name", "quoted") and token.value == name:
                return token.start
        return None

    # -- nodes ---------------------------------------------------------------------------
    def type_of(self, node: Node) -> dt.DataType:
        if isinstance(node, Field):
            return self.field(node.name)
        if isinstance(node, Literal):
            return literal_dtype(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Op):
            return self.op(node)
        self.error(f"not an expression node: {node!r}")

    def field(self, name: str) -> dt.DataType:
        if name in self.fields:
            try:
                return ibis.dtype(self.fields[name])
            except (TypeError, ValueError, SyntaxError) as exc:
                self.error(f"field '{name}' has an unsupported type {self.fields[name]!r} ({exc})")
        known = sorted(self.fields, key=lambda k: (k.lower(), k))
        folded = [k for k in known if k.lower() == name.lower()]
        close = folded or difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ";"
        if folded:
            hint += " (field names are case-sensitive)"
        if not known:
            self.error(f"unknown field '{name}'; no fields are available here", name=name)
        if len(known) > _MAX_LISTED:
            ranked = sorted(known, key=lambda k: -difflib.SequenceMatcher(None, name, k).ratio())
            listed = sorted(ranked[:_MAX_LISTED], key=lambda k: (k.lower(), k))
            more = f" (and {len(known) - _MAX_LISTED} more)"
        else:
            listed, more = known, ""
        self.error(
            f"unknown field '{name}'{hint} Known fields: {', '.join(listed)}{more}", name=name
        )

    def call(self, node: Call) -> dt.DataType:
        spec = FUNCTIONS.get(node.fn)
        if spec is None:
            close = difflib.get_close_matches(node.fn, FUNCTIONS, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ";"
            names = ", ".join(sorted(FUNCTIONS))
            self.error(
                f"unknown function '{node.fn}'{hint} Functions: {names}", name=node.fn, call=True
            )
        low, high = spec.min_args, spec.max_args
        if len(node.args) < low or (high is not None and len(node.args) > high):
            if low == high:
                wanted = f"{low} argument{'s' if low != 1 else ''}"
            elif high is None:
                wanted = f"at least {low} argument{'s' if low != 1 else ''}"
            else:
                wanted = f"{low} to {high} arguments"
            self.error(
                f"{node.fn}() takes {wanted}, got {len(node.args)} in '{to_text(node)}'",
                name=node.fn,
                call=True,
            )
        return spec.rule(self, node, [self.type_of(arg) for arg in node.args])

    def op(self, node: Op) -> dt.DataType:
        op, args = node.op, node.args
        if op not in OPS:
            self.error(f"unknown operator '{op}'")
        problem = arity_problem(op, len(args))
        if problem:
            self.error(problem)
        types = [self.type_of(arg) for arg in args]
        if op in ("and", "or", "not"):
            for arg, dtype in zip(args, types, strict=True):
                self.expect(op, arg, dtype, "boolean")
            return dt.boolean
        if op in COMPARISONS:
            for arg, other in ((args[1], args[0]), (args[0], args[1])):
                if op in ("=", "!=") and isinstance(arg, Literal) and arg.type == "null":
                    better = "is null" if op == "=" else "is not null"
                    self.error(
                        f"'{to_text(node)}' is never true; write '{to_text(other)} {better}'",
                        at=arg,
                    )
            self.common(args, types, "cannot compare {a} with {b}")
            return dt.boolean
        if op in ("+", "-", "*", "/", "%", "neg"):
            for arg, dtype in zip(args, types, strict=True):
                self.arithmetic(op, arg, dtype)
            return dt.float64 if op == "/" else number_result(types)
        if op == "||":
            return dt.string
        if op in ("in", "not in", "between", "not between"):
            self.common(args, types, f"cannot compare {{a}} with {{b}} in '{to_text(node)}'")
            return dt.boolean
        if op in ("like", "not like"):
            for arg, dtype in zip(args, types, strict=True):
                self.expect(op, arg, dtype, "string")
            return dt.boolean
        return dt.boolean  # is null, is not null

    # -- rules shared with the functions ---------------------------------------------------
    def expect(self, where: str, arg: Node, dtype: dt.DataType, kind: str) -> None:
        if not fits(dtype, kind):
            self.error(f"'{where}' needs {KIND_WORDS[kind]}, got {describe(arg, dtype)}", at=arg)

    def arithmetic(self, op: str, arg: Node, dtype: dt.DataType) -> None:
        kind = kind_of(dtype)
        if kind in ("date", "timestamp"):
            self.error(
                f"'{op}' does not work on dates ({describe(arg, dtype)}); use days_between(a, b),"
                " days_since(d), days_ago(n) or months_ago(n)",
                at=arg,
            )
        if kind == "string" and op == "+":
            self.error(
                f"'+' adds numbers, got {describe(arg, dtype)}; join strings with || or concat()",
                at=arg,
            )
        shown = "-" if op == "neg" else op
        self.expect(shown, arg, dtype, "number")

    def common(
        self, nodes: Sequence[Node], types: Sequence[dt.DataType], message: str
    ) -> dt.DataType:
        """The one type that values of `types` share; a string literal next to a date is a date.

        `message` has {a} and {b} for the two values that do not match.
        """
        known = [(n, t) for n, t in zip(nodes, types, strict=True) if not t.is_null()]
        if not known:
            return dt.null
        temporal = [(n, t) for n, t in known if kind_of(t) in ("date", "timestamp")]
        if temporal:
            anchor, anchor_type = next(
                ((n, t) for n, t in temporal if t.is_timestamp()), temporal[0]
            )
            kind = kind_of(anchor_type)
            for arg, dtype in known:
                if kind_of(dtype) in ("date", "timestamp"):
                    continue
                if isinstance(arg, Literal) and arg.type == "string":
                    try:
                        coerce_literal(arg, kind)
                    except ValueError:
                        example = "'2025-01-31'" if kind == "date" else "'2025-01-31 10:00:00'"
                        self.error(
                            f"{to_text(arg)} is not a valid {kind} (expected e.g. {example}),"
                            f" so it cannot be compared with {describe(anchor, anchor_type)}",
                            at=arg,
                        )
                    continue
                shown = message.format(a=describe(anchor, anchor_type), b=describe(arg, dtype))
                self.error(shown, at=arg)
            return anchor_type
        first, first_type = known[0]
        for arg, dtype in known[1:]:
            if kind_of(dtype) != kind_of(first_type):
                shown = message.format(a=describe(first, first_type), b=describe(arg, dtype))
                self.error(shown, at=arg)
        if kind_of(first_type) == "number":
            return number_result([t for _, t in known])
        return first_type
