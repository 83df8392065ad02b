"""The `name` (nickname-aware) and `date` (one-slip) comparison methods: scores in Python
(explain, conflict checks) and in the engine (matching) on DuckDB and Spark."""

from __future__ import annotations

import pyarrow as pa
import pytest
from unify_helpers import build, run, table_source, together

from audience.unify.normalize import normalize, similarity
from audience.unify.normalize_names import same_given_name


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("jack", "john", True),  # a nickname in the data, not a shortening
        ("tina", "christina", True),
        ("sam", "samantha", True),  # ambiguous nicknames link to each formal name...
        ("sam", "samuel", True),
        ("samuel", "samantha", False),  # ...but do not make those two one name
        ("chris", "christina", True),
        ("christopher", "christina", False),
        ("robert", "robert", True),
        ("michael", "jennifer", False),
    ],
)
def test_same_given_name(a, b, same):
    assert same_given_name(a, b) is same
    assert same_given_name(b, a) is same


def test_ambiguous_nicknames_keep_their_own_form():
    # One formal name would be wrong for half the people called Sam, Chris or Alex.
    got = normalize(["Sam", "Chris", "Alex", "Bob", "Jack"], ["first_name"]).to_pylist()
    assert got == ["sam", "chris", "alex", "robert", "jack"]


def test_name_similarity_is_jaro_winkler_unless_the_names_are_nicknames():
    assert similarity("jack", "john", "name") == 1.0
    assert similarity("martha", "marhta", "name") == pytest.approx(0.9611, abs=1e-4)  # plain JW
    assert similarity("zoe", "eve", "name") == similarity("zoe", "eve", "jaro_winkler")
    assert similarity(None, "john", "name") == 0.0


@pytest.mark.parametrize(
    ("a", "b", "score"),
    [
        ("1980-03-04", "1980-03-04", 1.0),
        ("1980-03-04", "1980-04-03", 0.9),  # day and month swapped
        ("2000-10-21", "1999-10-21", 0.8),  # the year off (4 characters on the edit score)
        ("1980-03-04", "1980-03-05", 0.8),
        ("1980-03-04", "1981-03-05", 0.0),  # two parts differ
        ("1980-03-04", "1975-07-07", 0.0),
        ("1980-03-04", "March 4", 0.0),  # not a normalised date: equal or nothing
    ],
)
def test_date_similarity(a, b, score):
    assert similarity(a, b, "date") == score


PERSON = {
    "first": "Person.FirstName",
    "last": "Person.LastName",
    "phone": "Identity.Phone",
    "birth": "Person.BirthDate",
}
RULES = [
    {
        "name": "phone_and_first_name",
        "conditions": [
            {"field": "Identity.Phone"},
            {"field": "Person.FirstName", "method": "name", "precision": 0.85},
        ],
    }
]
EXCEPTIONS = [{"field": "Person.BirthDate", "method": "date", "precision": 0.8}]


def _person(key, first, phone, birth=None):
    return {"id": key, "first": first, "last": "Ford", "phone": phone, "birth": birth}


DATA = {
    "crm_contacts": [
        _person("c1", "John", "555-0101"),
        _person("c2", "Samuel", "555-0102"),
        _person("c3", "Samantha", "555-0103"),
        _person("c4", "Ann", "555-0104", "2000-10-21"),
        _person("c5", "Ann", "555-0105", "1980-03-04"),
        _person("c6", "Ann", "555-0106", "1980-03-04"),
    ],
    "shop_accounts": [
        _person("s1", "Jack", "(555) 0101"),  # nickname of John
        _person("s2", "Samantha", "555 0102"),  # not Samuel, though "Sam" is both
        _person("s3", "Sam", "555-0103"),  # Sam of Samantha
        _person("s4", "Ann", "555-0104", "1999-10-21"),  # a slip in the year: one person
        _person("s5", "Ann", "555-0105", "1980-04-03"),  # day and month swapped
        _person("s6", "Ann", "555-0106", "1975-07-07"),  # another birth date: never
    ],
}
EXPECTED = {
    ("c1", "s1"): True,
    ("c2", "s2"): False,
    ("c3", "s3"): True,
    ("c4", "s4"): True,
    ("c5", "s5"): True,
    ("c6", "s6"): False,
}


def _project(root):
    tables = ["crm.contacts", "shop.accounts"]
    unify = {
        "tables": [{"table": t, "fields": PERSON} for t in tables],
        "match": [
            {"table": tables[1], "against": tables[0], "rules": RULES, "exceptions": EXCEPTIONS}
        ],
    }
    sources = [table_source(*t.split("."), "id") for t in tables]
    return build(root, DATA, sources, unify)


def _check(result):
    for (c, s), same in EXPECTED.items():
        assert together(result, f"crm|contacts|{c}", f"shop|accounts|{s}") is same, (c, s)


def test_name_and_date_methods_in_matching(tmp_path):
    _check(run(_project(tmp_path)))


@pytest.mark.spark
def test_name_and_date_methods_in_matching_on_spark(tmp_path):
    _check(run(_project(tmp_path), engine_kind="spark"))


def test_a_lookup_table_dropped_by_someone_else_is_registered_again(tmp_path):
    from audience.engine import Engine

    project = _project(tmp_path)
    with Engine.connect(project, "duckdb") as engine:
        build = lambda: pa.table({"x": [1, 2]})  # noqa: E731
        first = engine.lookup_table("numbers", build)
        assert engine.lookup_table("numbers", build) is first  # registered once
        engine.backend.raw_sql(f'DROP TABLE "{first.op().name}"')
        again = engine.lookup_table("numbers", build)
        assert engine.to_arrow(again)["x"].to_pylist() == [1, 2]
