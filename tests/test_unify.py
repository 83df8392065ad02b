"""The unify stage end to end on tiny hand-written projects: precision levels, rule order,
exceptions, custom match, dedup, blocking, the giant-cluster guard, merge, AlternateKey and
statistics. Each fixture runs the pipeline once; its tests assert on the output tables.

Stable CustomerIds across runs, the uuid5 expression and the engines' agreement are in
test_unify_ids.py.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from rapidfuzz.distance import JaroWinkler
from unify_helpers import (
    build,
    customer_of,
    groups,
    pairs,
    profile_by_key,
    rows,
    run,
    statistics,
    table_source,
    together,
    uuid5,
    write_csv,
)

from audience.unify.stage import UnifyError, read_aliases, read_custom_pairs

# --- precision levels (and blocking) ---------------------------------------------------

BASE = "abcdefghij"  # 10 characters: k substitutions score (10 - k) / 10 on 'edit'
# level -> (rule precision, method, base value, a value that passes, one that fails)
LEVELS: dict[str, tuple[Any, str, str, str, str]] = {
    "exact": ("exact", "edit", BASE, "ABCDEFGHIJ", "abcdefghiz"),  # lower-cased: equal / 1 edit
    "high": ("high", "edit", BASE, "abcdefghyz", "abcdefgxyz"),  # 0.8 / 0.7
    "medium": ("medium", "edit", BASE, "abcdefwxyz", "abcdevwxyz"),  # 0.6 / 0.5
    "low": ("low", "edit", BASE, "abcqrstuvw", "abqrstuvwx"),  # 0.3 / 0.2
    "custom": (0.9, "edit", BASE, "abcdefghiz", "abcdefghyz"),  # 0.9 / 0.8
    "jw": ("high", "jaro_winkler", "Jon", "John", "Jim"),  # 0.933 / below 0.8
    "jwstrict": (0.95, "jaro_winkler", "Martha", "Marhta", "Marhtx"),  # 0.961 / 0.876
}


def _precision_project(root: Path):
    records: list[dict[str, Any]] = []

    def add(**values: Any) -> str:
        key = len(records) + 1
        records.append({"id": key, **values})
        return f"lab|pairs|{key}"

    expected: dict[str, frozenset[str]] = {}
    failing: dict[str, frozenset[str]] = {}
    for level, (_, _, base, good, bad) in LEVELS.items():
        group = f"g_{level}"
        expected[level] = frozenset(
            {add(**{group: "pass", "val": base}), add(**{group: "pass", "val": good})}
        )
        failing[level] = frozenset(
            {add(**{group: "fail", "val": base}), add(**{group: "fail", "val": bad})}
        )
    # 'Jon' ~ 'John' on the edit score: 0.75, which passes medium and not high.
    jon_high = frozenset({add(g_high="jon", val="Jon"), add(g_high="jon", val="John")})
    jon_medium = frozenset({add(g_medium="jon", val="Jon"), add(g_medium="jon", val="John")})
    # A rule without an exact condition: blocked on the first 3 characters.
    prefix_pass = frozenset({add(word="smithson"), add(word="smithsen")})
    prefix_missed = add(word="xsmithson")  # 0.889 against smithson, but another prefix
    columns = ["id", *(f"g_{level}" for level in LEVELS), "val", "word"]
    rules = [
        {
            "name": level,
            "conditions": [
                {"field": f"Custom.G{level}"},
                {
                    "field": "Custom.Val",
                    "normalize": ["lower"],
                    "precision": precision,
                    "method": method,
                },
            ],
        }
        for level, (precision, method, *_) in LEVELS.items()
    ]
    rules.append(
        {"name": "prefix", "conditions": [{"field": "Custom.Word", "precision": "medium"}]}
    )
    unify = {
        "tables": [
            {
                "table": "lab.pairs",
                "fields": {
                    **{f"g_{level}": f"Custom.G{level}" for level in LEVELS},
                    "val": "Custom.Val",
                    "word": "Custom.Word",
                },
                "dedup": {"rules": rules},
            }
        ]
    }
    write_csv(root / "data" / "lab_pairs.csv", records, columns)
    project = build(root, {}, [table_source("lab", "pairs", "id")], unify)
    facts = {
        "expected": expected,
        "failing": failing,
        "jon_high": jon_high,
        "jon_medium": jon_medium,
        "prefix_pass": prefix_pass,
        "prefix_missed": prefix_missed,
    }
    return project, facts


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def precision(tmp_path_factory):
    project, facts = _precision_project(tmp_path_factory.mktemp("precision"))
    capture = _Capture()
    logger = logging.getLogger("audience.unify.match")
    logger.addHandler(capture)
    try:
        result = run(project)
    finally:
        logger.removeHandler(capture)
    found = {
        frozenset({r["LeftIdentifier"], r["RightIdentifier"]}): r
        for r in rows(result, "ConflationMatchPair")
    }
    return result, facts, found, capture.messages


@pytest.mark.parametrize("level", ["exact", "high", "medium", "low", "custom"])
def test_precision_levels_on_the_edit_score(precision, level):
    _, facts, found, _ = precision
    good = found.get(facts["expected"][level])
    assert good is not None and good["Rule"] == level and good["Kind"] == "dedup"
    assert facts["failing"][level] not in found
    threshold = {"exact": 1.0, "high": 0.8, "medium": 0.6, "low": 0.3, "custom": 0.9}[level]
    assert good["Score"] == pytest.approx(threshold)  # the passing pair sits on the threshold
    scores = json.loads(good["ConditionScores"])
    assert scores == {f"Custom.G{level}": 1.0, "Custom.Val": pytest.approx(threshold, abs=1e-3)}


def test_jon_and_john_pass_medium_not_high_on_the_edit_score(precision):
    _, facts, found, _ = precision
    assert facts["jon_high"] not in found
    assert found[facts["jon_medium"]]["Rule"] == "medium"
    assert found[facts["jon_medium"]]["Score"] == pytest.approx(0.75)


def test_precision_on_jaro_winkler(precision):
    _, facts, found, _ = precision
    jw = found[facts["expected"]["jw"]]
    assert jw["Rule"] == "jw"
    assert jw["Score"] == pytest.approx(JaroWinkler.similarity("jon", "john"))  # 0.933 >= 0.8
    assert facts["failing"]["jw"] not in found
    assert JaroWinkler.similarity("jon", "jim") < 0.8
    # A custom precision: 'Martha' ~ 'Marhta' 0.961 passes 0.95, ~ 'Marhtx' 0.876 does not.
    assert found[facts["expected"]["jwstrict"]]["Score"] == pytest.approx(0.9611, abs=1e-4)
    assert found[facts["expected"]["jwstrict"]]["Rule"] == "jwstrict"
    assert facts["failing"]["jwstrict"] not in found


def test_only_the_expected_pairs_are_found(precision):
    result, facts, found, _ = precision
    expected = {*facts["expected"].values(), facts["jon_medium"], facts["prefix_pass"]}
    assert set(found) == expected
    # Every pair is its own customer; everything else stays alone.
    assert {g for g in groups(result) if len(g) > 1} == expected


def test_a_rule_without_an_exact_condition_is_blocked_on_a_prefix_and_warns(precision):
    _, facts, found, messages = precision
    assert found[facts["prefix_pass"]]["Rule"] == "prefix"
    assert found[facts["prefix_pass"]]["Score"] == pytest.approx(0.875)
    assert not any(facts["prefix_missed"] in pair for pair in found)
    assert any("'prefix'" in m and "no exact condition" in m for m in messages)
    assert not any("'high'" in m for m in messages)


# --- rule order and exceptions --------------------------------------------------------

PERSON = {
    "first": "Person.FirstName",
    "last": "Person.LastName",
    "email": "Identity.Email",
    "birth": "Person.BirthDate",
}
ORDERED_RULES = [
    {"name": "email", "conditions": [{"field": "Identity.Email"}]},
    {
        "name": "name",
        "conditions": [
            {"field": "Person.LastName"},
            {"field": "Person.FirstName", "method": "jaro_winkler", "precision": 0.85},
        ],
    },
]

EXCEPTIONS = [{"field": "Person.BirthDate"}, {"field": "Person.FirstName", "precision": 0.5}]


def _person(key: str, first: str, last: str, email: str | None, birth: str | None = None):
    return {"id": key, "first": first, "last": last, "email": email, "birth": birth}


@pytest.fixture(scope="module")
def ordered(tmp_path_factory):
    data = {
        "crm_contacts": [
            _person("c1", "Ann", "Lee", "ann@x.com", "1980-01-01"),
            _person("c2", "Ann", "Lee", "annlee@y.com", "1980-01-01"),  # namesake
            _person("c3", "Bob", "Ray", "bob@x.com"),
            _person("c4", "Cat", "Poe", "cat@x.com", "1990-05-05"),
            _person("c5", "Dan", "Fox", "dan@x.com", "1970-01-01"),
            _person("c6", "Eve", "Ash", "eve@x.com", "1975-07-07"),
        ],
        "shop_accounts": [
            _person("s1", "Ann", "Lee", "ann@x.com"),  # rule 1 finds c1: rule 2 not tried
            _person("s2", "Bobby", "Ray", "other@z.com"),  # rule 1 finds nothing: rule 2
            _person("s3", "Cat", "Poe", "cat@x.com", "1991-05-05"),  # another birth date
            _person("s4", "Dan", "Fox", "dan@x.com"),  # no birth date: the exception is moot
            _person("s5", "Eve", "Ash", "eve2@x.com", "1976-07-07"),  # exception on rule 2
            _person("s6", "Zoe", "Ash", "eve@x.com"),  # first names too far apart (0.33 < 0.5)
        ],
        "loyalty_members": [
            # vs crm: rule 1 (email) finds c3; vs shop: rule 1 finds nothing, rule 2 finds s2
            _person("l1", "Bob", "Ray", "bob@x.com"),
        ],
    }
    tables = ["crm.contacts", "shop.accounts", "loyalty.members"]
    unify = {
        "tables": [{"table": t, "fields": PERSON} for t in tables],
        "match": [
            {
                "table": t,
                "against": a,
                "rules": ORDERED_RULES,
                "exceptions": EXCEPTIONS,
            }
            for t, a in [(tables[1], tables[0]), (tables[2], tables[0]), (tables[2], tables[1])]
        ],
    }
    sources = [table_source(*t.split("."), "id") for t in tables]
    result = run(build(tmp_path_factory.mktemp("ordered"), data, sources, unify))
    return result, pairs(result)


def test_a_record_matched_by_rule_1_does_not_get_rule_2_pairs(ordered):
    _, found = ordered
    assert ("shop|accounts|s1", "crm|contacts|c1", "email") in found
    # s1 has the name of c2 as well, but rule 1 already found c1 in that table.
    assert not any(p[:2] == ("shop|accounts|s1", "crm|contacts|c2") for p in found)


def test_a_record_without_a_rule_1_match_gets_rule_2_pairs(ordered):
    result, found = ordered
    # Bobby ~ Bob: both are 'robert' after the first-name normalisation (nicknames)
    assert ("shop|accounts|s2", "crm|contacts|c3", "name") in found
    match = next(r for r in rows(result, "ConflationMatchPair") if r["LeftKey"] == "s2")
    assert match["RuleRank"] == 1 and match["Score"] == 1.0
    assert json.loads(match["ConditionScores"]) == {"Person.LastName": 1.0, "Person.FirstName": 1.0}


def test_rule_order_is_per_table_pair(ordered):
    _, found = ordered
    loyalty = {p for p in found if p[0] == "loyalty|members|l1"}
    assert loyalty == {
        ("loyalty|members|l1", "crm|contacts|c3", "email"),
        ("loyalty|members|l1", "shop|accounts|s2", "name"),
    }


def test_exceptions_block_a_pair_whose_values_differ(ordered):
    result, found = ordered
    # s3 and c4 share the e-mail and the name, but not the birth date: no rule may pair them.
    assert not any(p[0] == "shop|accounts|s3" for p in found)
    assert not any(p[0] == "shop|accounts|s5" for p in found)
    assert not together(result, "shop|accounts|s3", "crm|contacts|c4")


def test_exceptions_with_a_precision(ordered):
    result, found = ordered
    # s6 shares c6's e-mail, but 'zoe' ~ 'eve' scores 0.33, below the exception's 0.5
    assert not any(p[0] == "shop|accounts|s6" for p in found)
    assert not together(result, "shop|accounts|s6", "crm|contacts|c6")


def test_exceptions_have_no_effect_when_one_side_is_empty(ordered):
    result, found = ordered
    assert ("shop|accounts|s4", "crm|contacts|c5", "email") in found
    assert together(result, "shop|accounts|s4", "crm|contacts|c5")


def test_ordered_project_customers(ordered):
    result, _ = ordered
    assert {g for g in groups(result) if len(g) > 1} == {
        frozenset({"crm|contacts|c1", "shop|accounts|s1"}),
        frozenset({"crm|contacts|c3", "shop|accounts|s2", "loyalty|members|l1"}),
        frozenset({"crm|contacts|c5", "shop|accounts|s4"}),
    }


# --- custom match ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    root = tmp_path_factory.mktemp("custom")
    fields = {**PERSON, "city": "Location.City"}
    del fields["birth"]

    def person(key, first, last, email, city=None):
        return {"id": key, "first": first, "last": last, "email": email, "city": city}

    data = {
        "crm_contacts": [
            person("c1", "Ann", "Lee", "ann@x.com"),
            person("c2", "Bob", "Ray", "bob@x.com"),
            person("c3", "Bo", "Ray", "b.ray@x.com"),
            person("c4", "Cat", "Poe", "cat@x.com"),
            person("c5", "Eve", "Ash", "unknown@example.com"),
            person("c6", "Fay", "Gil", "Unknown@Example.com"),
            person("c7", "Hal", "Ivy", None, "New York"),
            person("c8", "Ida", "Jay", None, "Boston"),
        ],
        "shop_accounts": [
            person("s1", "Zed", "Zulu", "zed@z.com"),  # always matched to c1
            person("s4", "Cat", "Poe", "cat@x.com"),  # never matched to c4
            person("s5", "Gus", "Hay", "unknown@example.com"),
            person("s7", "Hal", "Ivy", None, "NYC"),  # 'NYC' is an alias of 'New York'
            person("s8", "Ida", "Jay", None, "Cambridge"),
        ],
    }
    write_csv(
        root / "custom" / "always.csv",
        [
            {"table1": "crm.contacts", "key1": "c1", "table2": "shop.accounts", "key2": "s1"},
            {"table1": "crm.contacts", "key1": "c3", "table2": "crm.contacts", "key2": "c2"},
        ],
    )
    write_csv(
        root / "custom" / "never.csv",
        # the earlier table first: the pair is found the other way round (shop -> crm)
        [{"table1": "crm.contacts", "key1": "c4", "table2": "shop.accounts", "key2": "s4"}],
    )
    write_csv(
        root / "custom" / "aliases.csv",
        [{"field": "Location.City", "value": "NYC", "alias": "New York"}],
    )
    tables = ["crm.contacts", "shop.accounts"]
    unify = {
        "tables": [
            {
                "table": "crm.contacts",
                "fields": fields,
                "dedup": {
                    "rules": [{"name": "email", "conditions": [{"field": "Identity.Email"}]}]
                },
            },
            {"table": "shop.accounts", "fields": fields},
        ],
        "match": [
            {
                "table": "shop.accounts",
                "against": "crm.contacts",
                "rules": [
                    {"name": "email", "conditions": [{"field": "Identity.Email"}]},
                    {
                        "name": "name_city",
                        "conditions": [{"field": "Person.LastName"}, {"field": "Location.City"}],
                    },
                ],
            }
        ],
        "custom": {
            "always_match": "custom/always.csv",
            "never_match": "custom/never.csv",
            "aliases": "custom/aliases.csv",
            "bypass": {"Identity.Email": ["unknown@example.com"]},
        },
    }
    sources = [table_source(*t.split("."), "id") for t in tables]
    result = run(build(root, data, sources, unify))
    return result, pairs(result)


def test_always_match_joins_records_no_rule_pairs(custom):
    result, found = custom
    assert together(result, "crm|contacts|c1", "shop|accounts|s1")
    assert ("shop|accounts|s1", "crm|contacts|c1", "always_match") in found
    # within one table too (any order of the two sides)
    assert together(result, "crm|contacts|c2", "crm|contacts|c3")


def test_never_match_keeps_apart_records_a_rule_pairs(custom):
    result, found = custom
    assert not together(result, "shop|accounts|s4", "crm|contacts|c4")
    assert not any(p[0] == "shop|accounts|s4" for p in found)


def test_bypass_values_are_never_used_for_matching(custom):
    result, found = custom
    for a, b in [("c5", "c6"), ("c5", "s5"), ("c6", "s5")]:
        ra = f"crm|contacts|{a}"
        rb = f"{'shop|accounts' if b.startswith('s') else 'crm|contacts'}|{b}"
        assert not together(result, ra, rb)
    assert not any("c5" in p[0] + p[1] or "s5" in p[0] + p[1] for p in found)
    # The value itself is kept in the profile: bypass only affects matching.
    profile = profile_by_key(result, "crm_contacts_id")
    assert profile["c5"]["Email"] == "unknown@example.com"


def test_aliases_make_values_equal(custom):
    result, found = custom
    assert ("shop|accounts|s7", "crm|contacts|c7", "name_city") in found
    assert not together(result, "shop|accounts|s8", "crm|contacts|c8")


def test_custom_match_files_are_checked(tmp_path):
    project = build(
        tmp_path,
        {"crm_contacts": [{"id": 1, "email": "a@x.com"}]},
        [table_source("crm", "contacts", "id")],
        {"tables": [{"table": "crm.contacts", "fields": {"email": "Identity.Email"}}]},
    )
    bad = tmp_path / "bad.csv"
    write_csv(bad, [{"field": "City", "value": "NYC", "alias": "New York"}])
    with pytest.raises(UnifyError, match="line 2: 'City' is not a semantic type"):
        read_aliases(project, "bad.csv")
    write_csv(bad, [{"field": "Location.City", "value": "NYC"}])
    with pytest.raises(UnifyError, match="needs the columns field,value,alias"):
        read_aliases(project, "bad.csv")
    write_csv(bad, [{"table1": "crm.contacts", "key1": "1", "table2": "crm.nope", "key2": "2"}])
    with pytest.raises(UnifyError, match="line 2: no table 'crm.nope'"):
        read_custom_pairs(project, "bad.csv", "never_match")
    with pytest.raises(UnifyError, match="file not found"):
        read_custom_pairs(project, "absent.csv", "always_match")
    good = [{"table1": " crm.contacts", "key1": "1 ", "table2": "crm.contacts", "key2": "2"}]
    write_csv(bad, good)
    assert read_custom_pairs(project, "bad.csv", "always_match") == [
        ("crm|contacts|1", "crm|contacts|2")
    ]


# --- dedup -----------------------------------------------------------------------------


def _contact(key, email=None, phone=None, city=None, ts=None, first="X"):
    return {"id": key, "first": first, "email": email, "phone": phone, "city": city, "ts": ts}


DEDUP_FIELDS = {
    "first": "Person.FirstName",
    "email": "Identity.Email",
    "phone": "Identity.Phone",
    "city": "Location.City",
}
DEDUP_RULES = [
    {"name": "email", "conditions": [{"field": "Identity.Email"}]},
    {"name": "phone", "conditions": [{"field": "Identity.Phone"}]},
]


@pytest.fixture(scope="module")
def dedup(tmp_path_factory):
    data = {
        "crm_contacts": [
            # A ~ B by e-mail, B ~ C by phone: one group; A fills the most fields.
            _contact(1, "a@x.com", "212-555-0101", "Paris"),
            _contact(2, "a@x.com", "212-555-0102"),
            _contact(3, "c@x.com", "212-555-0102"),
            # equally filled: the larger key wins, as a number (10 > 9)
            _contact(9, "d@x.com"),
            _contact(10, "d@x.com"),
            # F wins, G is an alternate; G's phone matches a web user
            _contact(20, "f@x.com", "212-555-0120", "Rome"),
            _contact(21, "f@x.com", "212-555-0121"),
            _contact(30, "alone@x.com"),
        ],
        "shop_accounts": [  # most_recent
            _contact(1, "s@x.com", ts="2024-01-01"),
            _contact(2, "s@x.com", ts="2024-03-01"),
            _contact(3, "s@x.com", ts="2024-02-01"),
            _contact(9, "t@x.com", ts="2024-05-05"),
            _contact(10, "t@x.com", ts="2024-05-05"),
        ],
        "web_users": [  # least_recent
            _contact(1, "w@x.com", ts="2024-01-01"),
            _contact(2, "w@x.com", ts="2023-06-01"),
            _contact(3, "w@x.com", ts="2023-09-01"),
            _contact(9, "v@x.com", ts="2022-02-02"),
            _contact(10, "v@x.com", ts="2022-02-02"),
            _contact(40, "g@web.com", "(212) 555-0121"),
        ],
    }
    unify = {
        "tables": [
            {"table": "crm.contacts", "fields": DEDUP_FIELDS, "dedup": {"rules": DEDUP_RULES}},
            {
                "table": "shop.accounts",
                "fields": DEDUP_FIELDS,
                "dedup": {"rules": DEDUP_RULES, "winner": "most_recent"},
            },
            {
                "table": "web.users",
                "fields": DEDUP_FIELDS,
                "dedup": {"rules": DEDUP_RULES, "winner": "least_recent"},
            },
        ],
        "match": [
            {
                "table": "web.users",
                "against": "crm.contacts",
                "rules": [{"name": "phone", "conditions": [{"field": "Identity.Phone"}]}],
            }
        ],
        # 'report' (the default): clusters above 2 records are kept and warned about.
        "cluster": {"max_size": 2},
    }
    sources = [
        table_source("crm", "contacts", "id"),
        table_source("shop", "accounts", "id", "ts"),
        table_source("web", "users", "id", "ts"),
    ]
    return run(build(tmp_path_factory.mktemp("dedup"), data, sources, unify))


def _winners(result, table: str) -> dict[str, str]:
    return {r["Key"]: r["WinnerKey"] for r in rows(result, f"Deduplication_{table}")}


def test_dedup_is_transitive(dedup):
    winners = _winners(dedup, "crm_contacts")
    assert winners["1"] == winners["2"] == winners["3"] == "1"  # most filled
    assert together(dedup, "crm|contacts|1", "crm|contacts|2", "crm|contacts|3")
    dedup_rows = {r["Key"]: r for r in rows(dedup, "Deduplication_crm_contacts")}
    assert [k for k, r in dedup_rows.items() if r["IsWinner"]] == ["1", "10", "20", "30"]


def test_dedup_most_filled_tie_is_broken_by_the_largest_key_as_a_number(dedup):
    winners = _winners(dedup, "crm_contacts")
    assert winners["9"] == winners["10"] == "10"


def test_dedup_most_recent(dedup):
    winners = _winners(dedup, "shop_accounts")
    assert winners == {"1": "2", "2": "2", "3": "2", "9": "10", "10": "10"}


def test_dedup_least_recent(dedup):
    winners = _winners(dedup, "web_users")
    assert winners == {"1": "2", "2": "2", "3": "2", "9": "10", "10": "10", "40": "40"}


def test_an_alternate_row_still_matches_other_tables(dedup):
    assert _winners(dedup, "crm_contacts")["21"] == "20"
    assert together(dedup, "crm|contacts|20", "crm|contacts|21", "web|users|40")
    profile = profile_by_key(dedup, "web_users_id")["40"]
    assert profile["crm_contacts_id"] == "20"  # the dedup winner is the customer's key


def test_the_profile_shows_the_dedup_winner(dedup):
    profile = profile_by_key(dedup, "crm_contacts_id")
    assert profile["1"]["City"] == "Paris" and profile["1"]["Email"] == "a@x.com"
    assert set(profile) == {"1", "10", "20", "30"}
    shop = profile_by_key(dedup, "shop_accounts_id")
    assert set(shop) == {"2", "10"}


def test_report_policy_keeps_a_big_cluster_and_warns(dedup):
    warnings = dedup.results["stages"]["unify"]["detail"]["warnings"]
    assert len(warnings) == 4  # the four customers of 3 records
    assert all("cluster of 3 records (above unify.cluster.max_size 2), kept" in w for w in warnings)
    assert together(dedup, "crm|contacts|1", "crm|contacts|2", "crm|contacts|3")
    assert [g["size"] for g in statistics(dedup)["giant_clusters"]] == [3, 3, 3, 3]


def test_statistics(dedup):
    stats = statistics(dedup)
    assert stats["records"] == 19
    assert stats["customers"] == 8
    assert stats["tables"] == [
        {"table": "crm.contacts", "records": 8, "duplicates": 4, "matched": 2, "customers": 4},
        {"table": "shop.accounts", "records": 5, "duplicates": 3, "matched": 0, "customers": 2},
        {"table": "web.users", "records": 6, "duplicates": 3, "matched": 1, "customers": 3},
    ]
    rules = {(r["kind"], r["rule"]): r["pairs"] for r in stats["rules"]}
    # crm: 1-2 email, 2-3 phone, 9-10 email, 20-21 email; shop: 3 + 1; web: 3 + 1
    assert rules == {("dedup", "email"): 11, ("dedup", "phone"): 1, ("match", "phone"): 1}
    assert stats["cluster_sizes"] == [
        {"size": 1, "customers": 1},
        {"size": 2, "customers": 3},
        {"size": 3, "customers": 4},
    ]
    detail = dedup.results["stages"]["unify"]
    assert detail["rows"] == {"CustomerProfile": 8, "AlternateKey": 19}
    assert detail["detail"]["statistics"]["customers"] == 8


# --- the giant-cluster guard -----------------------------------------------------------


@pytest.fixture(scope="module")
def giant(tmp_path_factory):
    def rec(key, email=None, phone=None, group=None, val=None):
        return {"id": key, "email": email, "phone": phone, "grp": group, "val": val}

    records = [
        # a chain of 6: 1-2 and 2-3 by e-mail, 3-4 by phone (rule 2: the weakest), 4-5, 5-6
        rec(1, "a@x.com"),
        rec(2, "a@x.com", group=None),
        rec(3, "a@x.com", "212-555-0103"),
        rec(4, "b@x.com", "212-555-0103"),
        rec(5, "b@x.com"),
        rec(6, "b@x.com"),
        # 4 records by a fuzzy rule: two strong pairs (1.0) linked by weak ones (0.5)
        rec(11, group="g", val="aaaa"),
        rec(12, group="g", val="aaaa"),
        rec(13, group="g", val="aabb"),
        rec(14, group="g", val="aabb"),
    ]
    unify = {
        "tables": [
            {
                "table": "crm.contacts",
                "fields": {
                    "email": "Identity.Email",
                    "phone": "Identity.Phone",
                    "grp": "Custom.Group",
                    "val": "Custom.Val",
                },
                "dedup": {
                    "rules": [
                        *DEDUP_RULES,
                        {
                            "name": "fuzzy",
                            "conditions": [
                                {"field": "Custom.Group"},
                                {"field": "Custom.Val", "precision": 0.5},
                            ],
                        },
                    ]
                },
            }
        ],
        "cluster": {"max_size": 3, "giant_policy": "cut_weakest"},
    }
    root = tmp_path_factory.mktemp("giant")
    project = build(root, {"crm_contacts": records}, [table_source("crm", "contacts", "id")], unify)
    return run(project)


def test_giant_clusters_are_reported_in_the_warnings(giant):
    warnings = giant.results["stages"]["unify"]["detail"]["warnings"]
    assert len(warnings) == 2
    assert "cluster of 6 records" in warnings[0] and "max_size 3" in warnings[0]
    assert "1 weakest link(s) cut" in warnings[0]
    assert "cluster of 4 records" in warnings[1] and "4 weakest link(s) cut" in warnings[1]
    giants = statistics(giant)["giant_clusters"]
    assert [g["size"] for g in giants] == [6, 4]
    assert [(c["rule"], c["rule_rank"]) for c in giants[0]["cut"]] == [("phone", 1)]


def test_cut_weakest_cuts_the_latest_rule_link(giant):
    parts = {g for g in groups(giant) if any(int(r.split("|")[2]) <= 6 for r in g)}
    assert parts == {
        frozenset({"crm|contacts|1", "crm|contacts|2", "crm|contacts|3"}),
        frozenset({"crm|contacts|4", "crm|contacts|5", "crm|contacts|6"}),
    }


def test_cut_weakest_cuts_the_lowest_score_links(giant):
    assert together(giant, "crm|contacts|11", "crm|contacts|12")
    assert together(giant, "crm|contacts|13", "crm|contacts|14")
    assert not together(giant, "crm|contacts|11", "crm|contacts|13")
    assert all(len(g) <= 3 for g in groups(giant))
    assert statistics(giant)["cluster_sizes"] == [
        {"size": 2, "customers": 2},
        {"size": 3, "customers": 2},
    ]


def test_a_cut_dedup_group_gets_a_winner_in_each_part(giant):
    # The chain 1..6 is one dedup group before the cut; each part needs its own winner.
    winners = {r["Key"]: r["WinnerKey"] for r in rows(giant, "Deduplication_crm_contacts")}
    customers = customer_of(giant)
    for key, winner in winners.items():
        assert customers[f"crm|contacts|{key}"] == customers[f"crm|contacts|{winner}"], key
    assert {winners[k] for k in "123"} == {"3"} and {winners[k] for k in "456"} == {"4"}
    assert {winners["11"], winners["12"]} == {"12"}
    assert set(profile_by_key(giant, "crm_contacts_id")) == {"3", "4", "12", "14"}


# --- merge -----------------------------------------------------------------------------

MERGE_FIELDS = {
    "number": "Identity.CustomerNumber",
    "first": "Person.FirstName",
    "last": "Person.LastName",
    "email": "Identity.Email",
    "phone": "Identity.Phone",
    "street": "Location.Address",
    "city": "Location.City",
    "zip": "Location.PostalCode",
    "birth": "Person.BirthDate",
    "gender": "Person.Gender",
    "tier": "Custom.Tier",
}


def _m(key, number, ts, **values):
    return {"id": key, "number": number, "ts": ts, **values}


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    data = {
        "crm_contacts": [
            _m(
                1,
                "N1",
                "2024-01-01",
                first="Robert",
                last="Old",
                email="old@x.com",
                phone="212-555-0001",
                street="1 Main St",
                city="Springfield",
                zip="11111",
                birth="1980-02-03",
                gender="M",
            ),  # fmt: skip
            _m(2, "N2", "2024-01-01", first="Tess", last="Two", street="2 Elm St", zip="22222"),
            _m(3, "N3", "2024-01-01", first="Una", last="Three", email="u@x.com"),
        ],
        "shop_accounts": [
            _m(
                "a",
                "N1",
                "2024-06-01",
                first="Bob",
                last="Newer",
                email="new@x.com",
                phone="(212) 555-0002",
                city="Shelbyville",
                tier="gold",
            ),  # fmt: skip
            _m("b", "N2", "2024-09-01", city="Ogdenville", tier="bronze"),
        ],
        "loyalty_members": [
            _m(
                "m1",
                "N1",
                "2024-03-01",
                first="Rob",
                last="Mid",
                email="mid@x.com",
                phone="(212) 555-0002",
                tier="silver",
                birth="1980-02-03",
            ),  # fmt: skip
        ],
    }
    columns = ["id", "number", "ts", *list(MERGE_FIELDS)[1:]]
    root = tmp_path_factory.mktemp("merge")
    for name, records in data.items():
        write_csv(root / "data" / f"{name}.csv", records, columns)
    tables = ["crm.contacts", "shop.accounts", "loyalty.members"]
    unify = {
        "tables": [{"table": t, "fields": MERGE_FIELDS} for t in tables],
        "match": [
            {
                "table": t,
                "against": a,
                "rules": [{"name": "number", "conditions": [{"field": "Identity.CustomerNumber"}]}],
            }
            for t, a in [(tables[1], tables[0]), (tables[2], tables[0]), (tables[2], tables[1])]
        ],
        "merge": {
            "fields": [
                {
                    "name": "GivenName",
                    "field": "Person.FirstName",
                    "ranking": ["loyalty.members", "shop.accounts", "crm.contacts"],
                },
                {"name": "LastName", "field": "Person.LastName", "policy": "most_recent"},
                {"name": "Email", "field": "Identity.Email", "policy": "least_recent"},
                {"name": "Phone", "field": "Identity.Phone", "policy": "most_frequent"},
            ],
            "groups": [{"name": "Address", "fields": ["Address", "City", "PostalCode"]}],
            "exclude": ["Gender"],
        },
    }
    sources = [
        table_source("crm", "contacts", "id", "ts", types={"zip": "string", "number": "string"}),
        table_source("shop", "accounts", "id", "ts"),
        table_source("loyalty", "members", "id", "ts", types={"birth": "date"}),
    ]
    project = build(root, {}, sources, unify)
    return run(project)


@pytest.fixture(scope="module")
def profiles(merged):
    return profile_by_key(merged, "crm_contacts_id")


def test_merge_importance_with_a_ranking_and_a_new_name(profiles):
    assert profiles["1"]["GivenName"] == "Rob"  # loyalty ranks first
    assert profiles["2"]["GivenName"] == "Tess"  # the only one filled
    assert "FirstName" not in profiles["1"]


def test_merge_importance_default_ranking_is_the_tables_order(profiles):
    assert profiles["1"]["Tier"] == "gold"  # shop is above loyalty in unify.tables
    assert profiles["3"]["Tier"] is None


def test_merge_most_recent(profiles):
    assert profiles["1"]["LastName"] == "Newer"
    # the newest record of customer 2 (shop, September) has no last name: the next one wins
    assert profiles["2"]["LastName"] == "Two"


def test_merge_least_recent(profiles):
    assert profiles["1"]["Email"] == "old@x.com"


def test_merge_most_frequent(profiles):
    # crm (first in importance) has another phone; shop and loyalty agree
    assert profiles["1"]["Phone"] == "(212) 555-0002"


def test_merge_exclude(merged, profiles):
    assert "Gender" not in profiles["1"]
    assert set(profiles["1"]) == {
        "CustomerId", "PreviousCustomerId", "CustomerNumber", "Email", "Phone", "Address",
        "City", "PostalCode", "Tier", "BirthDate", "GivenName", "LastName",
        "crm_contacts_id", "shop_accounts_id", "loyalty_members_id",
    }  # fmt: skip


def test_merge_group_wins_together(profiles):
    # crm (first in importance) has the whole address; the shop's newer City alone loses
    one = profiles["1"]
    assert (one["Address"], one["City"], one["PostalCode"]) == ("1 Main St", "Springfield", "11111")
    # crm's address has no City: the shop's City is not stitched onto it
    two = profiles["2"]
    assert (two["Address"], two["City"], two["PostalCode"]) == ("2 Elm St", None, "22222")


def test_merge_source_key_columns(profiles):
    assert profiles["1"]["shop_accounts_id"] == "a"
    assert profiles["1"]["loyalty_members_id"] == "m1"
    assert profiles["2"]["shop_accounts_id"] == "b" and profiles["2"]["loyalty_members_id"] is None
    assert profiles["3"]["shop_accounts_id"] is None


def test_merge_birth_date_is_a_date(profiles):
    assert profiles["1"]["BirthDate"] == dt.date(1980, 2, 3)
    assert profiles["2"]["BirthDate"] is None


# --- AlternateKey ----------------------------------------------------------------------


def test_alternate_key_has_one_row_per_source_record(merged):
    keys = rows(merged, "AlternateKey")
    assert sorted(r["Identifier"] for r in keys) == [
        "crm|contacts|1", "crm|contacts|2", "crm|contacts|3",
        "loyalty|members|m1", "shop|accounts|a", "shop|accounts|b",
    ]  # fmt: skip
    for r in keys:
        assert r["Identifier"] == f"{r['DataSourceName']}|{r['EntityName']}|{r['AlternateValue']}"
        assert r["AlternateKeyId"] == uuid5(r["Identifier"])
    profile_ids = {r["CustomerId"] for r in rows(merged, "CustomerProfile")}
    assert {r["CustomerId"] for r in keys} == profile_ids and len(profile_ids) == 3


def test_alternate_key_key_ring(merged):
    by_rid = {r["Identifier"]: r for r in rows(merged, "AlternateKey")}
    ring = json.loads(by_rid["shop|accounts|a"]["KeyRing"])
    assert ring == [
        {"dataSourceName": "crm", "entityName": "contacts", "preferredKey": "1", "keys": ["1"]},
        {"dataSourceName": "shop", "entityName": "accounts", "preferredKey": "a", "keys": ["a"]},
        {
            "dataSourceName": "loyalty",
            "entityName": "members",
            "preferredKey": "m1",
            "keys": ["m1"],
        },
    ]
    # every record of a customer carries the same ring
    assert by_rid["crm|contacts|1"]["KeyRing"] == by_rid["loyalty|members|m1"]["KeyRing"]
    assert json.loads(by_rid["crm|contacts|3"]["KeyRing"]) == [
        {"dataSourceName": "crm", "entityName": "contacts", "preferredKey": "3", "keys": ["3"]}
    ]


def test_alternate_key_ring_lists_duplicates_with_the_winner_preferred(dedup):
    by_rid = {r["Identifier"]: r for r in rows(dedup, "AlternateKey")}
    ring = json.loads(by_rid["crm|contacts|9"]["KeyRing"])
    assert ring == [
        {
            "dataSourceName": "crm",
            "entityName": "contacts",
            "preferredKey": "10",
            "keys": ["10", "9"],
        }
    ]
    ring = json.loads(by_rid["web|users|40"]["KeyRing"])
    assert ring == [
        {
            "dataSourceName": "crm",
            "entityName": "contacts",
            "preferredKey": "20",
            "keys": ["20", "21"],
        },
        {"dataSourceName": "web", "entityName": "users", "preferredKey": "40", "keys": ["40"]},
    ]
    assert customer_of(dedup)["web|users|40"] == by_rid["crm|contacts|21"]["CustomerId"]


# --- no rules at all -------------------------------------------------------------------


def test_without_rules_every_record_is_a_customer(tmp_path):
    data = {
        "crm_contacts": [{"id": 1, "email": "a@x.com"}, {"id": 2, "email": "a@x.com"}],
        "shop_accounts": [{"id": 1, "email": "a@x.com"}],
    }
    tables = ["crm.contacts", "shop.accounts"]
    unify = {"tables": [{"table": t, "fields": {"email": "Identity.Email"}} for t in tables]}
    sources = [table_source(*t.split("."), "id") for t in tables]
    result = run(build(tmp_path, data, sources, unify))
    assert len(groups(result)) == 3
    assert rows(result, "ConflationMatchPair") == []
    stats = statistics(result)
    assert stats["rules"] == [] and stats["cluster_sizes"] == [{"size": 1, "customers": 3}]
    assert [r["Email"] for r in rows(result, "CustomerProfile")] == ["a@x.com"] * 3


# --- exceptions hold for whole customers ------------------------------------------------


def _family(tmp_path, enforce: bool):
    """Two family members with their own birth dates, and a record without one that links
    to both (shared e-mail, first names that pass the rules): a chain across the family."""
    data = {
        "crm_contacts": [
            _person("c1", "Patrick", "Moe", "moes@x.com", "1980-01-01"),
            _person("c2", "Patricia", "Moe", "moes@x.com", "1984-06-30"),
        ],
        "shop_accounts": [_person("s1", "Patrice", "Moe", "moes@x.com")],
    }
    tables = ["crm.contacts", "shop.accounts"]
    rules = [
        {
            "name": "email",
            "conditions": [
                {"field": "Identity.Email"},
                {"field": "Person.FirstName", "method": "jaro_winkler", "precision": 0.85},
            ],
        }
    ]
    unify = {
        "tables": [{"table": t, "fields": PERSON} for t in tables],
        "match": [
            {
                "table": tables[1],
                "against": tables[0],
                "rules": rules,
                "exceptions": [{"field": "Person.BirthDate"}],
            }
        ],
        "cluster": {"enforce_exceptions": enforce},
    }
    sources = [table_source(*t.split("."), "id") for t in tables]
    return run(build(tmp_path, data, sources, unify))


def test_conflicting_records_linked_through_a_third_are_split(tmp_path):
    result = _family(tmp_path, enforce=True)
    assert not together(result, "crm|contacts|c1", "crm|contacts|c2")
    # s1 stays with the record it is linked to most strongly (the higher first-name score).
    assert together(result, "shop|accounts|s1", "crm|contacts|c2") != together(
        result, "shop|accounts|s1", "crm|contacts|c1"
    )
    assert statistics(result)["customers_split_on_exceptions"] == 1


def test_pairwise_exceptions_only_when_not_enforced(tmp_path):
    result = _family(tmp_path, enforce=False)
    assert together(result, "crm|contacts|c1", "crm|contacts|c2", "shop|accounts|s1")
