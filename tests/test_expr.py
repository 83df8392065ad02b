"""The expression language: parsing, printing, checking, and values computed on DuckDB."""

from __future__ import annotations

import datetime as dt
import json

import ibis
import pyarrow as pa
import pytest

from audience.expr import (
    FUNCTIONS,
    Call,
    ExprError,
    Field,
    Literal,
    Op,
    build,
    check,
    check_condition,
    compile,
    field_names,
    parse,
    to_json,
    to_text,
)
from audience.expr.functions import months_before

NOW = dt.datetime(2025, 3, 31, 12, 0)
D, TS = dt.date, dt.datetime
ROWS = pa.table(
    {
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "name": ["Ann", "bob", None, "O'Brien"],
        "country": ["US", "CA", "DE", None],
        "spend": [600.0, 20.5, None, 0.0],
        "visits": pa.array([3, 0, 7, None], pa.int64()),
        "active": [True, False, None, True],
        "signup": [D(2024, 1, 31), D(2023, 6, 1), None, D(2025, 3, 15)],
        "seen": [TS(2025, 2, 28, 10), None, TS(2024, 12, 31, 23, 59), TS(2025, 3, 31, 11)],
    }
)
FIELDS = {
    **{name: str(dtype) for name, dtype in ibis.Schema.from_pyarrow(ROWS.schema).items()},
    "total_spend": "decimal(12,2)",
    "order.status": "string",
    "First Name": "string",
}


@pytest.fixture(scope="module")
def con():
    con = ibis.duckdb.connect()
    con.create_table("people", ROWS)
    return con


def values(con, text: str) -> list:
    """Parse, check and build `text` over the people table; the column as a Python list."""
    table = con.table("people")
    node = parse(text)
    check(node, FIELDS, text=text)
    return con.to_pyarrow(table.select(v=build(node, table, now=NOW))).column("v").to_pylist()


def error(source, *, fields=FIELDS, path="measures[0].where") -> ExprError:
    """The ExprError that parsing and checking `source` raises."""
    with pytest.raises(ExprError) as caught:
        check(parse(source, path=path), fields, path=path, text=source)
    return caught.value


# -- parsing and precedence ------------------------------------------------------------------
a, b, c = Field("a"), Field("b"), Field("c")


def num(value):
    return Literal(value, "number")


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("1 + 2 * 3", Op("+", (num(1), Op("*", (num(2), num(3)))))),
        ("not a or b", Op("or", (Op("not", (a,)), b))),
        (
            "a = 1 and b = 2 or c = 3",
            Op(
                "or",
                (
                    Op("and", (Op("=", (a, num(1))), Op("=", (b, num(2))))),
                    Op("=", (c, num(3))),
                ),
            ),
        ),
        ("a and b and c", Op("and", (a, b, c))),
        ("a or b and c", Op("or", (a, Op("and", (b, c))))),
        ("not a = 1", Op("not", (Op("=", (a, num(1))),))),
        ("a - b - c", Op("-", (Op("-", (a, b)), c))),
        ("-a * b", Op("*", (Op("neg", (a,)), b))),
        ("-2.5", num(-2.5)),
        ("a between 1 and 2 and b", Op("and", (Op("between", (a, num(1), num(2))), b))),
        ("a NOT IN (1, 2)", Op("not in", (a, num(1), num(2)))),
        ("a Is Not Null", Op("is not null", (a,))),
        ("a == 1", Op("=", (a, num(1)))),
        ("a <> 1", Op("!=", (a, num(1)))),
        ("a || 'x' = b", Op("=", (Op("||", (a, Literal("x", "string"))), b))),
        ("order.status", Field("order.status")),
        ('"First Name"', Field("First Name")),
        ("`odd ``name`", Field("odd `name")),
        ("'it''s'", Literal("it's", "string")),
        (".5 + 1e3", Op("+", (num(0.5), num(1000.0)))),
        ("LOWER(a)", Call("lower", (a,))),
        ("date '2025-01-31'", Literal(D(2025, 1, 31), "date")),
        ("timestamp '2025-01-31T10:00:00'", Literal(TS(2025, 1, 31, 10), "timestamp")),
        ("TRUE or null", Op("or", (Literal(True, "boolean"), Literal(None, "null")))),
    ],
)
def test_parse_builds_the_tree(text, tree):
    assert parse(text) == tree


def test_parse_accepts_nodes_json_lists_and_scalars():
    node = Op("=", (a, num(1)))
    assert parse(node) is node
    assert parse({"op": "=", "args": [{"field": "a"}, {"value": 1}]}) == node
    assert parse(["a = 1", {"field": "b"}]) == Op("and", (node, b))
    assert parse(True) == Literal(True, "boolean")


# -- round trips -------------------------------------------------------------------------------
ROUND_TRIP = [
    "total_spend > 500 and country in ('US', 'CA')",
    "1 + 2 * 3",
    "(1 + 2) * 3",
    "not a or b",
    "not (a or b)",
    "a = 1 and b = 2 or c = 3",
    "a and (b or c)",
    "(a and b) and c",
    "a - (b - c)",
    "a / b / c % 2",
    "-a - -5",
    "-(5)",
    "-(-a)",
    "x not between -1 and 2 + 3",
    "name not like 'A%' or name like '%''%'",
    "email is null and phone is not null",
    "(a = b) = false",
    "lower(trim(name)) || ' ' || upper(\"Last Name\")",
    "coalesce(a, b, 0) >= 1.25e-07",
    "signup > date '2024-02-29' and seen < timestamp '2025-01-31 10:00:00.500000'",
    "days_since(last_order) <= 30",
    "if(country = 'US', 'domestic', 'abroad') in ('domestic')",
    '"and" = 1 or "odd ""name""" = \'x\'',
    "order.status != 'cancelled'",
    "today() - 1",
    "substr(name, 2, 3) = 'bc' and round(spend / 3, 2) > 1",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_text_and_json_round_trip(text):
    node = parse(text)
    assert parse(to_text(node)) == node
    assert to_text(parse(to_text(node))) == to_text(node)
    assert parse(json.loads(json.dumps(to_json(node)))) == node


def test_to_text_is_canonical_and_parenthesises_built_trees():
    assert to_text(parse("A == 1 AND b <> 2 OR NOT c")) == "A = 1 and b != 2 or not c"
    assert to_text(Op("*", (Op("+", (a, b)), c))) == "(a + b) * c"
    assert to_text(Op("and", (Op("or", (a, b)), c))) == "(a or b) and c"
    assert to_text(Op("neg", (num(5),))) == "-(5)"
    assert to_text(Field("First Name")) == '"First Name"'
    assert to_text(Literal(D(2025, 1, 2), "date")) == "date '2025-01-02'"
    assert to_json(Literal(D(2025, 1, 2), "date")) == {"value": "2025-01-02", "type": "date"}


def test_field_names():
    node = parse("a > 1 and lower(order.status) = 'x' or \"First Name\" is null")
    assert field_names(node) == {"a", "order.status", "First Name"}


# -- operators on data ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", [7] * 4),
        ("(1 + 2) * 3", [9] * 4),
        ("10 - 4 - 3", [3] * 4),
        ("visits + 1", [4, 1, 8, None]),
        ("visits - 1", [2, -1, 6, None]),
        ("visits * 2", [6, 0, 14, None]),
        ("visits / 2", [1.5, 0.0, 3.5, None]),
        ("spend / visits", [200.0, None, None, None]),
        ("visits % 2", [1, 0, 1, None]),
        ("visits % 0", [None] * 4),
        ("-visits", [-3, 0, -7, None]),
        ("name || '!'", ["Ann!", "bob!", None, "O'Brien!"]),
        ("visits = 3", [True, False, False, None]),
        ("visits != 3", [False, True, True, None]),
        ("visits < 3", [False, True, False, None]),
        ("visits <= 3", [True, True, False, None]),
        ("visits > 3", [False, False, True, None]),
        ("visits >= 3", [True, False, True, None]),
        ("spend > 500 and country in ('US', 'CA')", [True, False, False, False]),
        ("country in ('US', 'CA')", [True, True, False, None]),
        ("country not in ('US', 'CA')", [False, False, True, None]),
        ("visits between 1 and 5", [True, False, False, None]),
        ("visits not between 1 and 5", [False, True, True, None]),
        ("name like 'A%'", [True, False, None, False]),
        ("name not like '%b%'", [True, False, None, True]),
        ("name is null", [False, False, True, False]),
        ("name is not null", [True, True, False, True]),
        ("active and visits > 0", [True, False, None, None]),
        ("active or visits > 5", [True, False, True, True]),
        ("not active", [False, True, None, False]),
        ("not visits > 2 or id = 2", [False, True, False, None]),
    ],
)
def test_operators(con, text, expected):
    assert values(con, text) == expected


# -- functions -------------------------------------------------------------------------------
FUNCTION_CASES = [
    ("lower(name)", ["ann", "bob", None, "o'brien"]),
    ("upper(name)", ["ANN", "BOB", None, "O'BRIEN"]),
    ("trim('  x ')", ["x"] * 4),
    ("length(name)", [3, 3, None, 7]),
    ("concat(name, '-', visits)", ["Ann-3", "bob-0", None, None]),
    ("concat(country, signup)", ["US2024-01-31", "CA2023-06-01", None, None]),
    ("substr(name, 2)", ["nn", "ob", None, "'Brien"]),
    ("substr(name, 1, 2)", ["An", "bo", None, "O'"]),
    ("substr(name, id)", ["Ann", "ob", None, "rien"]),
    ("replace(name, 'b', 'B')", ["Ann", "BoB", None, "O'Brien"]),
    ("contains(name, 'n')", [True, False, None, True]),
    ("starts_with(name, 'b')", [False, True, None, False]),
    ("ends_with(name, 'n')", [True, False, None, True]),
    ("coalesce(name, country, 'none')", ["Ann", "bob", "DE", "O'Brien"]),
    ("coalesce(visits, 0)", [3, 0, 7, 0]),
    ("coalesce(null, spend)", [600.0, 20.5, None, 0.0]),
    ("if(visits > 2, 'many', 'few')", ["many", "few", "many", "few"]),
    ("abs(-visits)", [3, 0, 7, None]),
    ("round(spend / 7, 2)", [85.71, 2.93, None, 0.0]),
    ("round(spend)", [600.0, 21.0, None, 0.0]),
    ("round(visits, -1)", [0, 0, 10, None]),
    ("floor(spend)", [600, 20, None, 0]),
    ("ceil(spend)", [600, 21, None, 0]),
    # Both DuckDB and Spark skip nulls in least/greatest.
    ("least(visits, 5)", [3, 0, 5, 5]),
    ("greatest(visits, id)", [3, 2, 7, 4]),
    ("year(signup)", [2024, 2023, None, 2025]),
    ("month(seen)", [2, None, 12, 3]),
    ("day(signup)", [31, 1, None, 15]),
    ("date(seen)", [D(2025, 2, 28), None, D(2024, 12, 31), D(2025, 3, 31)]),
    ("date('2024-02-29')", [D(2024, 2, 29)] * 4),
    ("date(country)", [None] * 4),  # not dates: null, not a failed run
    ("timestamp(signup)", [TS(2024, 1, 31), TS(2023, 6, 1), None, TS(2025, 3, 15)]),
    ("timestamp('2025-01-02 03:04:05')", [TS(2025, 1, 2, 3, 4, 5)] * 4),
    ("today()", [D(2025, 3, 31)] * 4),
    ("now()", [NOW] * 4),
    ("days_since(signup)", [425, 669, None, 16]),
    ("days_since(seen)", [31, None, 90, 0]),
    ("days_between(signup, seen)", [394, None, None, 16]),
    ("days_ago(30)", [TS(2025, 3, 1, 12)] * 4),
    (
        "days_ago(id)",
        [TS(2025, 3, 30, 12), TS(2025, 3, 29, 12), TS(2025, 3, 28, 12), TS(2025, 3, 27, 12)],
    ),
    ("months_ago(1)", [TS(2025, 2, 28, 12)] * 4),
    (
        "months_ago(id)",
        [TS(2025, 2, 28, 12), TS(2025, 1, 31, 12), TS(2024, 12, 31, 12), TS(2024, 11, 30, 12)],
    ),
]


@pytest.mark.parametrize(("text", "expected"), FUNCTION_CASES)
def test_functions(con, text, expected):
    assert values(con, text) == expected


def test_every_function_has_a_case():
    called = {fn for text, _ in FUNCTION_CASES for fn in _calls(parse(text))}
    assert called == set(FUNCTIONS)


def _calls(node) -> set[str]:
    own = {node.fn} if isinstance(node, Call) else set()
    children = node.args if isinstance(node, Call | Op) else ()
    return own.union(*(_calls(arg) for arg in children))


def test_months_before_clamps_to_the_end_of_the_month():
    assert months_before(TS(2024, 3, 31, 8), 1) == TS(2024, 2, 29, 8)
    assert months_before(TS(2025, 1, 15), 13) == TS(2023, 12, 15)
    assert months_before(TS(2025, 5, 31), -1) == TS(2025, 6, 30)


# -- dates ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("signup > date '2024-01-01'", [True, False, None, True]),
        ("signup > '2024-01-01'", [True, False, None, True]),
        ("signup in ('2024-01-31', '2025-03-15')", [True, False, None, True]),
        ("seen >= '2025-03-01'", [False, None, False, True]),
        ("seen between '2024-12-31' and '2025-03-01'", [True, None, True, False]),
        ("seen < timestamp '2025-01-01 00:00:00'", [False, None, True, False]),
        ("signup < days_ago(400)", [True, True, None, False]),
        ("seen > signup", [True, None, None, True]),
        (
            "coalesce(signup, '2020-01-01')",
            [D(2024, 1, 31), D(2023, 6, 1), D(2020, 1, 1), D(2025, 3, 15)],
        ),
    ],
)
def test_date_literals_and_coercion(con, text, expected):
    assert values(con, text) == expected


# -- building and compile ---------------------------------------------------------------------
def test_compile_with_a_mapping_or_a_function_as_resolver(con):
    table = con.table("people")
    by_map = compile("visits * 10", FIELDS, {"visits": table.visits}, now=NOW)
    by_call = compile(
        {"call": "upper", "args": [{"field": "name"}]}, FIELDS, table.__getitem__, now=NOW
    )
    result = con.to_pyarrow(table.select(x=by_map, y=by_call))
    assert result.column("x").to_pylist() == [30, 0, 70, None]
    assert result.column("y").to_pylist() == ["ANN", "BOB", None, "O'BRIEN"]


def test_check_returns_the_result_type():
    assert check(parse("visits / 2"), FIELDS).is_floating()
    assert check(parse("visits + 1"), FIELDS).is_integer()
    assert check(parse("total_spend * 2"), FIELDS).is_decimal()
    assert check(parse("name like 'a%'"), FIELDS).is_boolean()
    assert check(parse("days_ago(3)"), FIELDS).is_timestamp()


def test_user_strings_stay_literals(con):
    hostile = "x'); drop table people; --"
    text = "name = 'x''); drop table people; --'"
    assert parse(text) == Op("=", (Field("name"), Literal(hostile, "string")))
    assert values(con, text) == [False, False, None, False]
    tree = {"op": "=", "args": [{"field": "name"}, {"value": hostile}]}
    table = con.table("people")
    assert con.to_pyarrow(table.select(v=compile(tree, FIELDS, table, now=NOW))).num_rows == 4
    assert "people" in con.list_tables()
    assert con.table("people").count().execute() == 4
    bad_name = '"name"" = 1; drop table people; --"'
    assert "unknown field 'name\" = 1; drop table people; --'" in str(error(bad_name))


# -- errors -------------------------------------------------------------------------------------
def test_unknown_field_suggests_the_closest_name():
    err = error("total_spnd > 500", path="measures[3].of")
    assert str(err).startswith(
        "measures[3].of: unknown field 'total_spnd'; did you mean 'total_spend'? Known fields: "
    )
    assert err.path == "measures[3].of" and err.position == 0
    assert "did you mean 'name'? (field names are case-sensitive)" in str(error("NAME = 'a'"))


def test_unknown_field_lists_at_most_15_names():
    many = {f"field_{i:02}": "int64" for i in range(40)}
    message = str(error("field_4 > 1", fields=many))
    listed = message.split("Known fields: ")[1].split(" (and")[0].split(", ")
    assert len(listed) == 15 and {"field_04", "field_14", "field_24", "field_34"} <= set(listed)
    assert message.endswith("(and 25 more)\n  field_4 > 1\n  ^")


def test_unknown_function_suggests_and_lists_functions():
    err = error("lowr(name) = 'a'")
    assert "unknown function 'lowr'; did you mean 'lower'? Functions: abs, ceil," in str(err)
    assert err.position == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lower(name, country)", "lower() takes 1 argument, got 2 in 'lower(name, country)'"),
        ("substr(name)", "substr() takes 2 to 3 arguments, got 1"),
        ("least(visits)", "least() takes at least 2 arguments, got 1"),
        (
            "country = 5",
            "cannot compare country (string) with 5 (int64)\n  country = 5\n            ^",
        ),
        ("visits in (1, 'a')", "cannot compare visits (int64) with 'a' (string)"),
        ("name + 'x'", "'+' adds numbers, got name (string); join strings with || or concat()"),
        ("signup + 1", "'+' does not work on dates (signup (date)); use days_between(a, b)"),
        ("signup > 'soon'", "'soon' is not a valid date (expected e.g. '2025-01-31')"),
        ("active and visits", "'and' needs a condition (true/false), got visits (int64)"),
        ("name like 5", "'like' needs a string, got 5 (int64)"),
        ("name = null", "'name = null' is never true; write 'name is null'"),
        ("days_ago(1.5)", "days_ago() argument 1 must be a whole number, got 1.5 (float64)"),
        ("substr(name, 0, 2)", "substr() counts from 1 (SQL style), got start 0"),
        ("round(spend, visits)", "round() digits must be a whole number like 2"),
    ],
)
def test_check_errors(text, message):
    assert message in str(error(text))


def test_condition_must_be_boolean():
    with pytest.raises(ExprError) as caught:
        check_condition(parse("visits + 1"), FIELDS, path="segments[0].where", text="visits + 1")
    assert str(caught.value) == (
        "segments[0].where: expected a condition (true/false), got int64 from 'visits + 1'"
    )
    check_condition(parse("visits > 1"), FIELDS, path="segments[0].where")


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        (
            "total_spend > )",
            "unexpected ')' at position 14\n  total_spend > )\n                ^",
            14,
        ),
        (
            "country = 'US",
            "unterminated string starting at position 10\n  country = 'US\n            ^",
            10,
        ),
        ("visits > 1 2", "unexpected '2' at position 11; expected an operator", 11),
        ("", "the expression is empty", 0),
        ("visits $ 2", "unexpected character '$' at position 7", 7),
        ("a = 1 = 2", "comparisons cannot be chained", 6),
        ("signup > date '2025-02-30'", "invalid date '2025-02-30' at position 14", 14),
        ("country in ()", "the list after 'in' is empty", 12),
        ("lower(name", "unexpected end of expression", 10),
        ("a is 5", "expected 'null' after 'is'", 5),
        ('"First Name', "unterminated quoted name starting at position 0", 0),
    ],
)
def test_syntax_errors_point_at_the_problem(text, message, position):
    with pytest.raises(ExprError) as caught:
        parse(text, path="measures[0].where")
    assert str(caught.value).startswith("measures[0].where: ")
    assert message in str(caught.value)
    assert caught.value.position == position


def test_syntax_error_on_a_later_line_shows_that_line():
    with pytest.raises(ExprError) as caught:
        parse("visits > 1\nand )", path="p")
    assert str(caught.value) == "p: unexpected ')' at position 15\n  and )\n      ^"


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            {"op": "and", "args": [{"field": "a"}, {"fild": "b"}]},
            "segments[1].where.args[1]: expected an object with a field, value, call or op key",
        ),
        ({"op": "=", "args": [{"field": "a"}], "x": 1}, "segments[1].where: unknown key 'x'"),
        ({"op": "xor", "args": []}, "segments[1].where.op: unknown operator 'xor'"),
        ({"op": "=", "args": [{"field": "a"}]}, "operator '=' takes 2 operands, got 1"),
        ({"value": "2025-13-01", "type": "date"}, "segments[1].where.value: '2025-13-01' is not"),
        ({"value": "1", "type": "number"}, "segments[1].where.value: expected a finite number"),
        ({"call": "lower", "args": "a"}, "segments[1].where.args: args must be a list"),
        ({"field": ""}, "segments[1].where.field: a field name must be a non-empty string"),
        ([], "segments[1].where: the list of conditions is empty"),
    ],
)
def test_bad_json_trees_name_their_path(tree, message):
    with pytest.raises(ExprError) as caught:
        parse(tree, path="segments[1].where")
    assert str(caught.value).startswith(message) or message in str(caught.value)
    assert caught.value.path is not None and caught.value.path.startswith("segments[1].where")
