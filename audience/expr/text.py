"""The text grammar: a tokenizer, a Pratt parser and the canonical printer (`to_text`)."""

from __future__ import annotations

import re
from typing import NamedTuple, NoReturn

from audience.expr.nodes import (
    COMPARISONS,
    Call,
    Field,
    Literal,
    Node,
    Op,
    fail,
    literal_text,
    parse_date,
    parse_timestamp,
)

KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false", "between", "like"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Two-character operators first, so '<=' is not read as '<' then '='.
_SYMBOL = re.compile(r"==|!=|<>|<=|>=|\|\||[=<>+\-*/%(),]")
_CANONICAL = {"==": "=", "<>": "!="}

# Binding powers, low to high; an operator joins the expression on its left only when its power
# is above the one the caller is parsing at.
_OR, _AND, _NOT, _COMPARE, _ADD, _MUL, _NEG, _PRIMARY = range(1, 9)
_INFIX_POWER = {"or": _OR, "and": _AND, "+": _ADD, "-": _ADD, "||": _ADD, "*": _MUL, "/": _MUL}
_INFIX_POWER.update({"%": _MUL, **dict.fromkeys(COMPARISONS, _COMPARE)})
_POSTFIX = ("in", "not in", "between", "not between", "like", "not like", "is null", "is not null")


class Token(NamedTuple):
    kind: str  # number, string, name, quoted, keyword, symbol, end
    value: object
    start: int
    end: int


def tokenize(text: str, path: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "'":
            value, end = _quoted(text, i, path, "string")
            tokens.append(Token("string", value, i, end))
            i = end
        elif char in '"`':
            value, end = _quoted(text, i, path, "quoted name")
            if not value:
                fail(path, f"empty quoted name at position {i}", text=text, position=i)
            tokens.append(Token("quoted", value, i, end))
            i = end
        elif number := _NUMBER.match(text, i):
            raw = number.group()
            value = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(Token("number", value, i, number.end()))
            i = number.end()
        elif name := _NAME.match(text, i):
            word = name.group()
            keyword = "." not in word and word.lower() in KEYWORDS
            kind, value = ("keyword", word.lower()) if keyword else ("name", word)
            tokens.append(Token(kind, value, i, name.end()))
            i = name.end()
        else:
            symbol = _SYMBOL.match(text, i)
            if symbol is None:
                fail(path, f"unexpected character '{char}' at position {i}", text=text, position=i)
            op = symbol.group()
            tokens.append(Token("symbol", _CANONICAL.get(op, op), i, symbol.end()))
            i = symbol.end()
    tokens.append(Token("end", None, len(text), len(text)))
    return tokens


def _quoted(text: str, start: int, path: str, what: str) -> tuple[str, int]:
    """Read a quoted run from text[start]; a doubled quote stands for one quote."""
    quote, parts, i = text[start], [], start + 1
    while True:
        close = text.find(quote, i)
        if close < 0:
            fail(
                path, f"unterminated {what} starting at position {start}", text=text, position=start
            )
        parts.append(text[i:close])
        if text.startswith(quote, close + 1):
            parts.append(quote)
            i = close + 2
        else:
            return "".join(parts), close + 1


def parse_text(text: str, path: str) -> Node:
    parser = _Parser(text, path)
    if parser.peek().kind == "end":
        fail(path, "the expression is empty", position=0)
    node = parser.expression(0)
    if parser.peek().kind != "end":
        parser.unexpected(parser.peek(), "; expected an operator or the end of the expression")
    return node


class _Parser:
    def __init__(self, text: str, path: str):
        self.text, self.path = text, path
        self.tokens = tokenize(text, path)
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.i += 1
        return token

    def unexpected(self, token: Token, hint: str = "") -> NoReturn:
        shown = (
            "end of expression" if token.kind == "end" else repr(self.text[token.start : token.end])
        )
        where = "" if token.kind == "end" else f" at position {token.start}"
        fail(self.path, f"unexpected {shown}{where}{hint}", text=self.text, position=token.start)

    def expect(self, kind: str, value: object, hint: str) -> Token:
        token = self.peek()
        if token.kind != kind or token.value != value:
            self.unexpected(token, f"; {hint}")
        return self.take()

    def _infix(self) -> tuple[str, int] | None:
        """The operator at the cursor that can follow an operand, and its binding power."""
        token, after = self.peek(), self.peek(1)
        if token.kind == "symbol" and token.value in _INFIX_POWER:
            return str(token.value), _INFIX_POWER[str(token.value)]
        if token.kind != "keyword":
            return None
        if token.value in ("and", "or"):
            return str(token.value), _INFIX_POWER[str(token.value)]
        if token.value in ("in", "between", "like", "is"):
            return str(token.value), _COMPARE
        if (
            token.value == "not"
            and after.kind == "keyword"
            and after.value in ("in", "between", "like")
        ):
            return f"not {after.value}", _COMPARE
        return None

    def expression(self, min_power: int) -> Node:
        left = self.prefix()
        chain = ""  # 'and'/'or' while extending an n-ary chain made by this loop
        compared = False
        while (found := self._infix()) is not None and found[1] > min_power:
            op, power = found
            token = self.take()
            if power == _COMPARE:
                if compared:
                    self.unexpected(token, "; comparisons cannot be chained, join them with 'and'")
                left, compared = self.comparison(op, left), True
                continue
            right = self.expression(power)
            operands = (*left.args, right) if op == chain else (left, right)  # type: ignore[union-attr]
            left = Op(op, operands)
            chain = op if op in ("and", "or") else ""
            compared = False
        return left

    def comparison(self, op: str, left: Node) -> Node:
        if op.startswith("not "):
            self.take()
        if op in COMPARISONS:
            return Op(op, (left, self.expression(_COMPARE)))
        if op == "is":
            negated = self.peek().kind == "keyword" and self.peek().value == "not"
            if negated:
                self.take()
            self.expect("keyword", "null", "expected 'null' after 'is'")
            return Op("is not null" if negated else "is null", (left,))
        if op.endswith("in"):
            self.expect("symbol", "(", f"expected '(' after '{op}'")
            items = self.arguments(f"the list after '{op}'")
            if not items:
                self.unexpected(self.tokens[self.i - 1], f"; the list after '{op}' is empty")
            return Op(op, (left, *items))
        if op.endswith("between"):
            low = self.expression(_COMPARE)
            self.expect("keyword", "and", f"expected 'and' in '{op} ... and ...'")
            return Op(op, (left, low, self.expression(_COMPARE)))
        return Op(op, (left, self.expression(_COMPARE)))  # like / not like

    def arguments(self, what: str) -> tuple[Node, ...]:
        """Comma-separated expressions up to ')' (the '(' is already taken)."""
        items: list[Node] = []
        if self.peek().kind == "symbol" and self.peek().value == ")":
            self.take()
            return ()
        while True:
            items.append(self.expression(0))
            token = self.take()
            if token.kind == "symbol" and token.value == ")":
                return tuple(items)
            if not (token.kind == "symbol" and token.value == ","):
                self.unexpected(token, f"; expected ',' or ')' in {what}")

    def prefix(self) -> Node:
        token = self.take()
        kind, value = token.kind, token.value
        if kind == "number":
            return Literal(value, "number")
        if kind == "string":
            return Literal(value, "string")
        if kind == "quoted":
            return Field(str(value))
        if kind == "keyword" and value in ("true", "false"):
            return Literal(value == "true", "boolean")
        if kind == "keyword" and value == "null":
            return Literal(None, "null")
        if kind == "keyword" and value == "not":
            return Op("not", (self.expression(_NOT),))
        if kind == "symbol" and value == "-":
            if self.peek().kind == "number":
                return Literal(-self.take().value, "number")  # type: ignore[operator]
            return Op("neg", (self.expression(_NEG),))
        if kind == "symbol" and value == "(":
            inner = self.expression(0)
            self.expect("symbol", ")", f"expected ')' to close the '(' at position {token.start}")
            return inner
        if kind == "name":
            name, after = str(value), self.peek()
            if name.lower() in ("date", "timestamp") and after.kind == "string":
                return self.typed_literal(name.lower(), self.take())
            if after.kind == "symbol" and after.value == "(" and "." not in name:
                self.take()
                return Call(name.lower(), self.arguments(f"{name}(...)"))
            return Field(name)
        self.unexpected(token)

    def typed_literal(self, kind: str, token: Token) -> Literal:
        try:
            if kind == "date":
                return Literal(parse_date(str(token.value)), "date")
            return Literal(parse_timestamp(str(token.value)), "timestamp")
        except ValueError:
            example = "'2025-01-31'" if kind == "date" else "'2025-01-31 10:00:00'"
            fail(
                self.path,
                f"invalid {kind} {token.value!r} at position {token.start}"
                f" (expected e.g. {example})",
                text=self.text,
                position=token.start,
            )


# -- printing ------------------------------------------------------------------------------


def to_text(node: Node) -> str:
    """Canonical text of an expression, parenthesised so that `parse(to_text(n)) == n`."""
    if isinstance(node, Field):
        if _NAME.fullmatch(node.name) and node.name.lower() not in KEYWORDS:
            return node.name
        return '"' + node.name.replace('"', '""') + '"'
    if isinstance(node, Literal):
        return literal_text(node)
    if isinstance(node, Call):
        return f"{node.fn}({', '.join(to_text(arg) for arg in node.args)})"
    op, args = node.op, node.args
    if op in ("and", "or"):
        return f" {op} ".join(_operand(arg, _power(node) + 1) for arg in args)
    if op == "not":
        return "not " + _operand(args[0], _NOT)
    if op == "neg":
        literal = isinstance(args[0], Literal) and args[0].type == "number"
        return "-" + _operand(args[0], _PRIMARY + 1 if literal else _PRIMARY)
    if op in _POSTFIX:
        value = _operand(args[0], _ADD)
        if op.startswith("is"):
            return f"{value} {op}"
        if op.endswith("in"):
            return f"{value} {op} ({', '.join(to_text(arg) for arg in args[1:])})"
        if op.endswith("between"):
            return f"{value} {op} {_operand(args[1], _ADD)} and {_operand(args[2], _ADD)}"
        return f"{value} {op} {_operand(args[1], _ADD)}"
    power = _INFIX_POWER[op]
    left_power = power + 1 if op in COMPARISONS else power  # comparisons do not chain
    return f"{_operand(args[0], left_power)} {op} {_operand(args[1], power + 1)}"


def _power(node: Node) -> int:
    if isinstance(node, Op):
        if node.op in ("not", "neg"):
            return _NOT if node.op == "not" else _NEG
        return _COMPARE if node.op in _POSTFIX else _INFIX_POWER[node.op]
    if isinstance(node, Literal) and node.type == "number" and str(node.value).startswith("-"):
        return _NEG
    return _PRIMARY


def _operand(node: Node, min_power: int) -> str:
    text = to_text(node)
    return f"({text})" if _power(node) < min_power else text
