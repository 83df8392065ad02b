"""Enrichments, value by value: addresses, phones, e-mails, affinity scores, custom files.

The affinity tests run the engine expressions on an in-memory DuckDB; the whole stage is
tested on the shop project in test_enrich_stage.py.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import duckdb
import ibis
import pyarrow as pa
import pytest
from analytics_helpers import shop_project

from audience.enrich import address, contact
from audience.enrich.address import standard_postal_code, standard_region, standardize_address
from audience.enrich.affinity import band, per_customer, python_band, scores
from audience.enrich.config import AffinityEnrichment, CustomEnrichment
from audience.enrich.contact import email_info, phone_info
from audience.enrich.custom import attribute_name, read_file
from audience.enrich.errors import EnrichError
from conftest import DEMO

# --- address -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "number", "street", "unit", "standard"),
    [
        ("123 North Main Street Apartment 4", "123", "N Main St", "Apt 4", "123 N Main St Apt 4"),
        ("1950 washington st apt. 16", "1950", "Washington St", "Apt 16", None),
        ("6738 Elm Blvd. #13", "6738", "Elm Blvd", "# 13", "6738 Elm Blvd # 13"),
        ("3412 Brown Court, Apt. 11", "3412", "Brown Ct", "Apt 11", None),
        ("500 East 5th Street Northwest", "500", "E 5th St NW", None, "500 E 5th St NW"),
        ("12 Avenue B", "12", "Ave B", None, "12 Ave B"),
        ("221b BAKER STREET", "221B", "Baker St", None, "221B Baker St"),
        ("12 O'NEIL AVENUE SUITE 200", "12", "O'Neil Ave", "Ste 200", None),
        ("4641 Hill Street Bldg 5 Apt 2", "4641", "Hill St", "Bldg 5 Apt 2", None),
        ("P.O. Box 77", None, "PO Box 77", None, "PO Box 77"),
        ("1 Rue de la Paix", "1", "Rue De La Paix", None, None),
    ],
)
def test_street_lines_are_standardised(line, number, street, unit, standard):
    found = standardize_address(line)
    assert found.parsed, found.reason
    assert (found.number, found.street, found.unit) == (number, street, unit)
    if standard:
        assert found.standard == standard


def test_whole_address_with_city_region_and_zip():
    found = standardize_address("12 main st apt 4", "springfield", "Illinois", "62704")
    assert found.standard == "12 Main St Apt 4, Springfield, IL 62704"
    assert found.values() == {
        "Street": "Main St",
        "Number": "12",
        "Unit": "Apt 4",
        "City": "Springfield",
        "Region": "IL",
        "PostalCode": "62704",
        "Standard": "12 Main St Apt 4, Springfield, IL 62704",
        "Parsed": True,
    }
    # a whole address in the street line fills the parts not given separately
    found = standardize_address("100 Main St Suite 200, Boston, Massachusetts 02110")
    assert found.standard == "100 Main St Ste 200, Boston, MA 02110"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Illinois", "IL"), ("ill.", "IL"), ("il", "IL"), ("Puerto Rico", "PR"), ("  ", None)],
)
def test_regions(value, expected):
    assert standard_region(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2110", "02110"), ("627041234", "62704-1234"), ("62704 1234", "62704-1234"),
     ("62704", "62704"), ("K1A 0B1", "K1A 0B1")],
)  # fmt: skip
def test_us_postal_codes(value, expected):
    assert standard_postal_code(value) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("Main St & 5th Ave", "an intersection, not a street address"),
        ("123 Main St Apt 4 Apt 5", "ambiguous: two occupancy type parts"),
        ("hello world", "not recognisable as a street address"),
        ("Main Street", "not recognisable as a street address"),
        ("   ", "no street line"),
    ],
)
def test_unparseable_addresses_say_why(line, reason):
    found = standardize_address(line, "Portland", "OR", "97201")
    assert not found.parsed
    assert found.reason == reason
    assert found.street is None and found.number is None
    # what could be read is still standardised
    assert found.standard == "Portland, OR 97201"
    assert found.values()["Parsed"] is False and found.values()["Reason"] == reason


def test_other_countries_are_not_parsed():
    found = standardize_address("10 Downing Street", "London", None, "sw1a 2aa", country="GB")
    assert not found.parsed
    assert "only US addresses" in found.reason
    assert found.postal_code == "SW1A 2AA"


def _street_lines(folder: Path) -> list[str]:
    sys.path.insert(0, str(DEMO))
    try:
        from generate import generate
    finally:
        sys.path.remove(str(DEMO))
    generate(folder, people=300, seed=7)
    crm = duckdb.sql(
        f"SELECT street FROM read_csv('{folder}/crm_contacts.csv', all_varchar=true, "
        "ignore_errors=true) WHERE street IS NOT NULL"
    ).fetchall()
    shop = duckdb.sql(
        f"SELECT address_line FROM '{folder}/shop_accounts.parquet' WHERE address_line IS NOT NULL"
    ).fetchall()
    return sorted({r[0] for r in crm + shop})


def test_fast_path_agrees_with_usaddress(tmp_path, monkeypatch):
    """Plain street lines skip usaddress; on the demo's lines (and some tricky ones) the
    result is the same as usaddress gives."""
    lines = _street_lines(tmp_path)
    lines += ["123 N Main St", "12 Lake Shore Dr Apt 4B", "100 Park Ave S", "7 West St",
              "9 Key Ln", "5 Northeast Blvd #12", "88 St Marks Pl", "42 5th Ave"]  # fmt: skip
    standardize = address.standardize_address.__wrapped__
    fast = [standardize(line) for line in lines]
    assert sum(address._simple_line(" ".join(line.split())) is not None for line in lines) > 200
    monkeypatch.setattr(address, "_simple_line", lambda text: None)
    slow = [standardize(line) for line in lines]
    assert [(line, f) for line, f, s in zip(lines, fast, slow, strict=True) if f != s] == []


# --- phone ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "region", "e164", "kind", "where"),
    [
        ("(503) 877-2747 ext. 12", "US", "+15038772747", "fixed_line_or_mobile", "US"),
        ("+1-214-811-7099 ext 31", "US", "+12148117099", "fixed_line_or_mobile", "US"),
        ("+44 7400 123456", "US", "+447400123456", "mobile", "GB"),
        ("07400 123456", "GB", "+447400123456", "mobile", "GB"),
        ("0044 20 7946 0958", "US", "+442079460958", "fixed_line", "GB"),
        ("1-800-FLOWERS", "US", "+18003569377", "toll_free", "US"),
        ("(613) 555-0123", "US", "+16135550123", "fixed_line_or_mobile", "CA"),
    ],
)
def test_phones(value, region, e164, kind, where):
    info = phone_info(value, region)
    assert (info.e164, info.type, info.region) == (e164, kind, where)
    assert info.valid is (e164 is not None)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("555-1234", "local number without area code"),
        ("+1 555 555 5555", "not a valid number in +1"),
        ("12", "too short"),
        ("call me", "no digits"),
        ("+999 1234567", "unknown country code"),
    ],
)
def test_invalid_phones_say_why(value, reason):
    info = phone_info(value)
    assert not info.valid
    assert info.reason == reason
    assert info.e164 is None
    assert info.values()["Reason"] == reason


def test_empty_values_are_not_enriched():
    assert phone_info("  ") is None
    assert email_info("") is None


# --- email ---------------------------------------------------------------------------------


def test_emails_are_normalised():
    info = email_info(" mailto:John.Smith+news@GoogleMail.com ")
    assert info.valid and info.reason is None
    assert info.normalized == "john.smith+news@googlemail.com"
    assert info.domain == "googlemail.com"
    assert info.match_key == "johnsmith@gmail.com"  # unify's key
    assert info.role_account is False
    assert json.loads(contact.values_json(info.values())) == {
        "Normalized": "john.smith+news@googlemail.com",
        "Domain": "googlemail.com",
        "MatchKey": "johnsmith@gmail.com",
        "RoleAccount": False,
        "Valid": True,
    }


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("bad@@x.com", "invalid characters"),
        ("a..b@x.com", "two periods in a row"),
        ("x@localhost", "should have a period"),
        ("x@shop.test", "special-use or reserved"),
        ("john smith@x.com", "invalid characters"),
        ("no-at-sign.com", "must have an @-sign"),
    ],
)
def test_invalid_emails_say_why(value, words):
    info = email_info(value)
    assert not info.valid
    assert words in info.reason
    assert info.normalized is None and info.role_account is None


@pytest.mark.parametrize(
    ("value", "role"),
    [("Info@Acme.com", True), ("no-reply@acme.com", True), ("support+eu@acme.com", True),
     ("sales.team@acme.com", False), ("john@acme.com", False), ("infocus@acme.com", False)],
)  # fmt: skip
def test_role_accounts(value, role):
    assert email_info(value).role_account is role


# --- affinity ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def duck():
    return ibis.duckdb.connect()


def _scored(duck, pairs: list[tuple[str, str, int]]) -> dict[tuple[str, str], dict]:
    table = duck.create_table(
        f"pairs_{random.getrandbits(32)}",
        pa.table(
            {
                "CustomerId": [p[0] for p in pairs],
                "Value": [p[1] for p in pairs],
                "w": pa.array([p[2] for p in pairs], pa.int64()),
            }
        ),
    )
    rows = scores(table).to_pyarrow().to_pylist()
    return {(r["CustomerId"], r["Value"]): r for r in rows}


def test_affinity_score_is_the_percentile_rank(duck):
    pairs = [("c1", "X", 1), ("c2", "X", 2), ("c3", "X", 3), ("c4", "X", 4)]
    pairs += [("c1", "Y", 5), ("c2", "Y", 5), ("c3", "Y", 5)]  # a three-way tie
    pairs += [("c4", "Z", 7)]  # one customer: nobody to compare with
    got = _scored(duck, pairs)
    # (customers below + half of those equal) / customers, as a percent rounded up
    assert [got[(c, "X")]["Score"] for c in ("c1", "c2", "c3", "c4")] == [13, 38, 63, 88]
    assert [got[(c, "X")]["Band"] for c in ("c1", "c2", "c3", "c4")] == [
        "Low", "Medium", "Medium", "Very high"
    ]  # fmt: skip
    assert {got[(c, "Y")]["Score"] for c in ("c1", "c2", "c3")} == {50}
    assert got[("c4", "Z")]["Score"] == 50
    # c4's values ordered by score: X (88) before Z (50)
    assert got[("c4", "X")]["Rank"] == 0 and got[("c4", "Z")]["Rank"] == 1


def test_affinity_scores_match_the_definition_on_random_data(duck):
    rng = random.Random(3)
    pairs = {}
    for c in range(60):
        for v in rng.sample("ABCDEFG", rng.randint(1, 5)):
            pairs[(f"c{c}", v)] = rng.choice([1, 2, 2, 3, 5, 8, 13])
    got = _scored(duck, [(c, v, w) for (c, v), w in pairs.items()])
    for (c, v), w in pairs.items():
        others = [x for (_, vv), x in pairs.items() if vv == v]
        below = sum(x < w for x in others)
        equal = sum(x == w for x in others)
        expected = -(-100 * (2 * below + equal) // (2 * len(others)))  # ceil
        assert got[(c, v)]["Score"] == expected, (c, v)
        assert 1 <= expected <= 100
    for c in {c for c, _ in pairs}:
        shares = {v: r["ShareOfVoice"] for (cc, v), r in got.items() if cc == c}
        assert sum(shares.values()) == 100, c
        total = sum(w for (cc, _), w in pairs.items() if cc == c)
        for v, share in shares.items():  # each share within one point of the exact one
            assert abs(share - 100 * pairs[(c, v)] / total) < 1


def test_share_of_voice_uses_largest_remainders(duck):
    got = _scored(
        duck,
        [("c1", "A", 1), ("c1", "B", 1), ("c1", "C", 1)]
        + [("c2", v, 1) for v in "ABCDEFG"]
        + [("c3", "A", 3), ("c3", "B", 1), ("c3", "C", 2)],
    )
    # 33.3 each: the one missing point goes to the first value by text
    assert [got[("c1", v)]["ShareOfVoice"] for v in "ABC"] == [34, 33, 33]
    # 14.29 each: two points missing -> A and B get 15
    assert [got[("c2", v)]["ShareOfVoice"] for v in "ABCDEFG"] == [15, 15, 14, 14, 14, 14, 14]
    # 50 / 16.67 / 33.33: remainders .67 (B) and .33 (C): B gets the point
    assert [got[("c3", v)]["ShareOfVoice"] for v in "ABC"] == [50, 17, 33]


@pytest.mark.parametrize(
    ("score", "name"),
    [(1, "Low"), (34, "Low"), (35, "Medium"), (69, "Medium"), (70, "High"), (84, "High"),
     (85, "Very high"), (100, "Very high")],
)  # fmt: skip
def test_band_edges(duck, score, name):
    assert python_band(score) == name
    assert duck.execute(band(ibis.literal(score, "int64"))) == name


def test_top_values_json_and_fields(duck):
    spec = AffinityEnrichment(
        name="brands", kind="affinity", activity="lines", field="brand", top=2
    )
    pairs = [("c1", "Voltix", 4), ("c1", "Acme", 1), ("c1", "Zed", 5), ("c2", "Voltix", 1)]
    table = duck.create_table(
        "top_pairs",
        pa.table(
            {
                "CustomerId": [p[0] for p in pairs],
                "Value": [p[1] for p in pairs],
                "w": pa.array([p[2] for p in pairs], pa.int64()),
            }
        ),
    )
    rows = {r["CustomerId"]: r for r in per_customer(scores(table), spec).to_pyarrow().to_pylist()}
    # Voltix: c2 (1) < c1 (4) -> c1 75, c2 25; Acme and Zed: c1 alone -> 50
    assert json.loads(rows["c1"]["Values"]) == {
        "Field": "brand",
        "Values": [
            {"Value": "Voltix", "Score": 75, "Band": "High", "ShareOfVoice": 40},
            {"Value": "Zed", "Score": 50, "Band": "Medium", "ShareOfVoice": 50},
        ],
    }
    assert (rows["c1"]["brands_top"], rows["c1"]["brands_top_score"]) == ("Voltix", 75)
    assert rows["c1"]["brands_top_band"] == "High"
    assert json.loads(rows["c2"]["Values"])["Values"] == [
        {"Value": "Voltix", "Score": 25, "Band": "Low", "ShareOfVoice": 100}
    ]


# --- custom files --------------------------------------------------------------------------


def _custom_project(root: Path, **spec):
    entry = {"name": "tiers", "kind": "custom", "path": "data/tiers.csv", "column": "email"}
    entry.update(spec)
    project = shop_project(root, enrichments=[{"name": "phone", "kind": "phone"}, entry])
    return project, CustomEnrichment(**entry)


def test_custom_file_errors_name_the_config_path(tmp_path):
    project, spec = _custom_project(tmp_path)
    with pytest.raises(EnrichError, match=r"enrichments\[1\]\.path: no file data/tiers.csv"):
        read_file(project, spec, "enrichments[1]")
    (tmp_path / "data" / "tiers.csv").write_text("mail,tier\na@x.com,gold\n", encoding="utf-8")
    with pytest.raises(EnrichError) as e:
        read_file(project, spec, "enrichments[1]")
    assert str(e.value) == (
        "enrichments[1].column: no column 'email' in data/tiers.csv; columns are mail, tier"
    )
    project, spec = _custom_project(tmp_path, column="mail", fields=["tier", "level"])
    with pytest.raises(EnrichError, match=r"enrichments\[1\]\.fields\[1\]: no column 'level'"):
        read_file(project, spec, "enrichments[1]")


def test_custom_file_reads_keys_as_text(tmp_path):
    project, spec = _custom_project(tmp_path, column="zip")
    (tmp_path / "data" / "tiers.csv").write_text(
        "zip,Lifetime Value (USD),note\n02110,12.5,\n", encoding="utf-8"
    )
    data = read_file(project, spec, "enrichments[1]")
    assert data["_key"].to_pylist() == ["02110"]  # not 2110
    assert data["Lifetime Value (USD)"].to_pylist() == [12.5]
    assert data.schema.field("note").type == pa.string()  # an empty column is text
    assert attribute_name("tiers", "Lifetime Value (USD)") == "tiers_Lifetime_Value_USD_"
