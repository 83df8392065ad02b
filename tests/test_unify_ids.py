"""CustomerIds: deterministic GUIDs, stable across runs, the same on DuckDB and Spark."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import ibis
import pytest
from unify_helpers import build, customer_of, rows, run, table_source, uuid5, write_data

from audience.unify import ids

NAMES = [
    "",
    "crm|contacts|1",
    "CustomerId|shop|accounts|a-1",
    "José Müller|Straße",
    "東京|顧客|42",
    "emoji 😀 and quotes ' \" \\",
]


def _uuid5_in(backend: Any) -> list[str]:
    expressions = [
        ids.uuid5(ibis.literal(name, "string")).name(f"u{i}") for i, name in enumerate(NAMES)
    ]
    table = backend.execute(ibis.memtable({"x": [1]}).select(*expressions))
    return [table[f"u{i}"][0] for i in range(len(NAMES))]


def test_uuid5_expression_equals_pythons_uuid5_on_duckdb():
    assert ids.NAMESPACE.bytes == b"audience-cdp-ns1"
    expected = [str(uuid.uuid5(ids.NAMESPACE, name)) for name in NAMES]
    assert _uuid5_in(ibis.duckdb.connect()) == expected
    assert [ids.python_uuid5(name) for name in NAMES] == expected
    assert all(
        uuid.UUID(u).version == 5 and uuid.UUID(u).variant == uuid.RFC_4122 for u in expected
    )


# --- stable CustomerIds across runs ------------------------------------------------------


def _c(key, email, phone, ts=None, first="Al", last=None):
    return {
        "id": key,
        "first": first,
        "last": last or f"L{key}",
        "email": email,
        "phone": phone,
        "ts": ts,
    }


# Run 1: Y = {c1}; X = {c2, s2}; U = {c4}; W = {c5, c6, s6} (c5 ~ c6 by phone).
RUN1 = {
    "crm_contacts": [
        _c(1, "y@x.com", "212-555-0001", "2024-01-01"),
        _c(2, "x@x.com", "212-555-0002", "2024-02-01"),
        _c(4, "u@x.com", "212-555-0004"),
        _c(5, "w5@x.com", "212-555-0005", "2024-05-01"),
        _c(6, "w6@x.com", "212-555-0005", "2024-06-01"),
    ],
    "shop_accounts": [
        {"id": "s2", "name": "Al L2", "email": "x@x.com"},
        {"id": "s6", "name": "Al L6", "email": "w6@x.com"},
        {"id": "s7", "name": "Alan L4", "email": "other@x.com"},  # rule 2: JW name ~ c4
    ],
}
# Run 2: c3 links Y and X (e-mail of c1, phone of c2); c5 leaves W (new phone); c9 is new.
RUN2 = {
    "crm_contacts": [
        *RUN1["crm_contacts"][:3],
        _c(3, "y@x.com", "212-555-0002"),  # no timestamp: last for most and least recent
        _c(5, "w5@x.com", "212-555-0055", "2024-05-01"),
        RUN1["crm_contacts"][4],
        _c(9, "n@x.com", "212-555-0009"),
    ],
    "shop_accounts": RUN1["shop_accounts"],
}
# Run 3: c3 is gone, so X and Y split again.
RUN3 = {
    "crm_contacts": [r for r in RUN2["crm_contacts"] if r["id"] != 3],
    "shop_accounts": RUN1["shop_accounts"],
}


def _stable_project(root: Path):
    fields = {
        "first": "Person.FirstName",
        "last": "Person.LastName",
        "email": "Identity.Email",
        "phone": "Identity.Phone",
    }
    unify = {
        "tables": [
            {
                "table": "crm.contacts",
                "fields": fields,
                "dedup": {
                    "winner": "most_recent",
                    "rules": [
                        {"name": "email", "conditions": [{"field": "Identity.Email"}]},
                        {"name": "phone", "conditions": [{"field": "Identity.Phone"}]},
                    ],
                },
            },
            {
                "table": "shop.accounts",
                "fields": {"name": "Person.FullName", "email": "Identity.Email"},
            },
        ],
        "match": [
            {
                "table": "shop.accounts",
                "against": "crm.contacts",
                "rules": [
                    {"name": "email", "conditions": [{"field": "Identity.Email"}]},
                    {
                        "name": "name",
                        "conditions": [
                            {"field": "Person.LastName"},
                            {
                                "field": "Person.FirstName",
                                "method": "jaro_winkler",
                                "precision": 0.8,
                            },
                        ],
                    },
                ],
            }
        ],
        "merge": {
            "fields": [
                {"name": "Email", "field": "Identity.Email", "policy": "most_recent"},
                {"name": "Phone", "field": "Identity.Phone", "policy": "least_recent"},
            ]
        },
    }
    sources = [table_source("crm", "contacts", "id", "ts"), table_source("shop", "accounts", "id")]
    return build(root, RUN1, sources, unify)


def _new_id(rid: str) -> str:
    return uuid5(f"CustomerId|{rid}")


def _previous(result) -> dict[str, str | None]:
    """CustomerId -> PreviousCustomerId from the profile."""
    return {r["CustomerId"]: r["PreviousCustomerId"] for r in rows(result, "CustomerProfile")}


def test_customer_ids_are_stable_across_runs(tmp_path):
    project = _stable_project(tmp_path)
    first = run(project)
    ids1 = customer_of(first)
    y, x, u, w = (ids1[f"crm|contacts|{k}"] for k in (1, 2, 4, 5))
    # A first run: every customer gets uuid5('CustomerId|' + its smallest Identifier).
    assert (y, x, u, w) == tuple(_new_id(f"crm|contacts|{k}") for k in (1, 2, 4, 5))
    assert ids1["shop|accounts|s2"] == x and ids1["crm|contacts|6"] == w == ids1["shop|accounts|s6"]
    assert ids1["shop|accounts|s7"] == u  # Alan ~ Al by Jaro-Winkler
    assert set(_previous(first).values()) == {None}

    # Run 2: a merge, a split whose smaller part holds the anchor record, a new customer.
    write_data(tmp_path, RUN2)
    second = run(project)
    ids2 = customer_of(second)
    previous2 = _previous(second)
    merged = {ids2[f"crm|contacts|{k}"] for k in (1, 2, 3)} | {ids2["shop|accounts|s2"]}
    assert merged == {x}  # X had 2 of the records, Y 1: X's ID is kept ...
    assert previous2[x] == y  # ... and Y's is listed as previous
    assert ids2["crm|contacts|4"] == ids2["shop|accounts|s7"] == u and previous2[u] is None
    assert ids2["crm|contacts|6"] == ids2["shop|accounts|s6"] == w and previous2[w] is None
    # c5's fresh ID (uuid5 of its own Identifier) is W's, which W keeps: it is salted instead
    split = ids2["crm|contacts|5"]
    assert split not in {w, x, y, u}
    assert split == _new_id(f"crm|contacts|5|{w}")
    assert previous2[split] == w
    new = ids2["crm|contacts|9"]
    assert new == _new_id("crm|contacts|9") and previous2[new] is None
    assert len(set(ids2.values())) == len(previous2) == 5

    # Run 3: the link is gone: the larger part {c2, s2} keeps the ID, {c1} gets a new one.
    write_data(tmp_path, RUN3)
    third = run(project)
    ids3 = customer_of(third)
    previous3 = _previous(third)
    assert ids3["crm|contacts|2"] == ids3["shop|accounts|s2"] == x and previous3[x] is None
    alone = ids3["crm|contacts|1"]
    assert alone != x and alone == _new_id("crm|contacts|1")
    assert previous3[alone] == x
    # the unchanged customers keep their IDs
    for rid in ("crm|contacts|4", "crm|contacts|5", "crm|contacts|6", "crm|contacts|9"):
        assert ids3[rid] == ids2[rid]
        assert previous3[ids3[rid]] is None
    assert "crm|contacts|3" not in ids3


def test_customer_ids_do_not_change_when_nothing_changes(tmp_path):
    project = _stable_project(tmp_path)
    first = rows(run(project), "CustomerProfile")
    again = rows(run(project), "CustomerProfile")
    assert first == again


# --- the same IDs on both engines --------------------------------------------------------


@pytest.mark.spark
def test_spark_and_duckdb_give_the_same_customers(tmp_path):
    runs = {}
    for kind in ("duckdb", "spark"):
        root = tmp_path / kind
        project = _stable_project(root)
        first = run(project, kind)
        write_data(root, RUN2)
        second = run(project, kind)
        assert second.results["engine"] == kind
        runs[kind] = (first, second)
    for index in (0, 1):
        duck, spark = runs["duckdb"][index], runs["spark"][index]
        for name in ("CustomerProfile", "AlternateKey"):
            assert rows(duck, name) == rows(spark, name), (index, name)
    # the second run did merge and split: the comparison covers stable-ID assignment
    previous = {r["PreviousCustomerId"] for r in rows(runs["spark"][1], "CustomerProfile")}
    assert len(previous - {None}) == 2
    # and the uuid5 expression agrees with Python on Spark too
    from pyspark.sql import SparkSession

    spark = ibis.pyspark.connect(SparkSession.builder.getOrCreate())
    assert _uuid5_in(spark) == [str(uuid.uuid5(ids.NAMESPACE, name)) for name in NAMES]
