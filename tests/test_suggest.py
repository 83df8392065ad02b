"""`audience suggest`: semantic types proposed from column names and sampled values."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience.engine import Engine
from audience.ingest import ingest_table, landing_connection
from audience.project import load_project, parse_project
from audience.unify.suggest import (
    Suggestion,
    as_yaml_fields,
    as_yaml_text,
    name_tokens,
    suggest_columns,
    suggest_for_project,
)

RETAIL = Path(__file__).resolve().parents[1] / "examples" / "retail"
sys.path.insert(0, str(RETAIL))
from generate import generate  # noqa: E402

CUSTOMER_FILES = {
    "crm.contacts": "crm_contacts.csv",
    "shop.accounts": "shop_accounts.parquet",
    "loyalty.members": "loyalty_members.jsonl",
}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("retail") / "data"
    generate(out, people=300, seed=3)
    return out


@pytest.fixture(scope="module")
def confirmed() -> dict[str, dict[str, str]]:
    """The mapping a user confirmed in the demo project: what suggest should find."""
    project = load_project(RETAIL / "audience.yaml")
    return {t.table: t.fields for t in project.unify.tables}


def read_columns(path: Path) -> dict[str, pa.Array]:
    """Each column's first 1,000 non-null values, read as a user's file would be."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        reader = "read_csv" if path.suffix == ".csv" else "read_json"
        extra = "" if path.suffix == ".csv" else ", format = 'newline_delimited'"
        table = duckdb.sql(f"SELECT * FROM {reader}('{path}', ignore_errors = true{extra})")
        table = table.fetch_arrow_table()
    return {n: table[n].drop_null().slice(0, 1000).combine_chunks() for n in table.column_names}


def by_column(suggestions: list[Suggestion]) -> dict[str, Suggestion]:
    return {s.column: s for s in suggestions}


def check_against_confirmed(suggestions: list[Suggestion], fields: dict[str, str]) -> None:
    for s in suggestions:
        assert 0 <= s.confidence <= 1 and s.reasons, s
        if s.column in fields:
            assert s.semantic == fields[s.column], s
            assert s.confidence >= 0.6, s
        else:
            assert s.semantic is None or s.confidence < 0.6, s


@pytest.mark.parametrize("label", list(CUSTOMER_FILES))
def test_demo_tables_match_the_confirmed_mapping(demo_dir, confirmed, label):
    suggestions = suggest_columns(label, read_columns(demo_dir / CUSTOMER_FILES[label]))
    check_against_confirmed(suggestions, confirmed[label])
    assert as_yaml_fields(suggestions) == {label: confirmed[label]}


def test_demo_non_customer_columns_get_none_with_a_reason(demo_dir):
    crm = by_column(suggest_columns("crm.contacts", read_columns(demo_dir / "crm_contacts.csv")))
    loyalty = by_column(
        suggest_columns("loyalty.members", read_columns(demo_dir / "loyalty_members.jsonl"))
    )
    shop = by_column(
        suggest_columns("shop.accounts", read_columns(demo_dir / "shop_accounts.parquet"))
    )
    for s in (crm["created_at"], crm["modified_at"], shop["signup_ts"], shop["last_login_ts"]):
        assert s.semantic is None and "timestamps" in s.reasons[0]
    assert crm["contact_id"].semantic is None and "key" in crm["contact_id"].reasons[0]
    assert shop["account_id"].semantic is None
    assert loyalty["member_no"].semantic is None and "key" in loyalty["member_no"].reasons[0]
    assert "numbers" in loyalty["points_balance"].reasons[0]
    assert loyalty["tier"].semantic is None and loyalty["joined_on"].semantic is None


def test_reasons_name_both_signals(demo_dir):
    crm = by_column(suggest_columns("crm.contacts", read_columns(demo_dir / "crm_contacts.csv")))
    reasons = crm["email"].reasons
    assert reasons[0] == "name matches 'email'"
    assert reasons[1].startswith("100% of ") and reasons[1].endswith("are e-mail addresses")


def test_values_alone_find_the_distinctive_types(demo_dir):
    # The same CRM file with meaningless column names: the values still carry the strong types.
    columns = read_columns(demo_dir / "crm_contacts.csv")
    anonymous = {f"col{i}": a for i, a in enumerate(columns.values())}
    found = {s.column: s.semantic for s in suggest_columns("x.y", anonymous)}
    names = dict(zip(anonymous, columns, strict=True))
    found = {names[c]: t for c, t in found.items() if t}
    assert found["email"] == "Identity.Email"
    assert found["phone"] == "Identity.Phone"
    assert found["street"] == "Location.Address"
    assert found["state"] == "Location.State"
    assert found["birth_date"] == "Person.BirthDate"
    assert found["first_name"] == "Person.FirstName"


# --- tricky names and values --------------------------------------------------------------

EMAILS = [f"user{i}@example{i % 7}.com" for i in range(200)]
PHONES = [f"(555) {200 + i:03d}-{1000 + i * 7:04d}" for i in range(200)]
SURNAMES = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker"]


def one(name: str, values: list | pa.Array, label: str = "t.t") -> Suggestion:
    array = values if isinstance(values, pa.Array) else pa.array(values)
    [suggestion] = suggest_columns(label, {name: array})
    return suggestion


def test_name_tokens():
    assert name_tokens("EMailAddr") == ["e", "mail", "addr"]
    assert name_tokens("cust_tel_2") == ["cust", "tel"]
    assert name_tokens("postalCode") == ["postal", "code"]
    assert name_tokens("PLZ") == ["plz"]


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("EMailAddr", EMAILS, "Identity.Email"),
        ("cust_tel_2", PHONES, "Identity.Phone"),
        ("PLZ", ["10115", "80331", "50667", "20095", "60311"] * 20, "Location.PostalCode"),
        ("Nachname", SURNAMES * 20, "Person.LastName"),
        ("Vorname", ["Anna", "Lukas", "Marie", "Paul", "Sophie"] * 20, "Person.FirstName"),
        ("courriel", EMAILS, "Identity.Email"),
        ("customerEmail", EMAILS, "Identity.Email"),
        ("Surename", SURNAMES * 20, "Person.LastName"),
        ("DOB", ["1980-02-03", "1975-12-31", "2001-07-04"] * 30, "Person.BirthDate"),
        ("sex", ["M", "F", "F", "M", "X"] * 20, "Person.Gender"),
        ("postcode", ["SW1A 1AA", "EC1A 1BB", "M1 1AE", "K1A 0B1"] * 25, "Location.PostalCode"),
        ("country", ["United States", "Germany", "France", "US", "DE"] * 20, "Location.Country"),
    ],
)
def test_tricky_names(name, values, expected):
    s = one(name, values)
    assert (s.semantic, s.confidence >= 0.6) == (expected, True), s


def test_name_column_holding_companies_is_an_organization():
    companies = ["Acme Inc", "Globex LLC", "Initech Ltd.", "Umbrella Corp", "Contoso GmbH"]
    companies += ["Hooli Group", "Stark Industries", "Wayne Enterprises", "Vandelay & Sons"]
    s = one("name", companies * 20)
    assert s.semantic == "Organization.Name" and s.confidence >= 0.6, s
    assert any("company names" in r for r in s.reasons)
    # The same name with people in it stays a person's name.
    people = one("name", ["Ann Smith", "Robert Jones", "Smith, Maria", "Dr. Li Wei"] * 20)
    assert people.semantic == "Person.FullName" and people.confidence >= 0.6, people


def test_values_override_a_meaningless_name():
    s = one("code", EMAILS)
    assert s.semantic == "Identity.Email" and s.confidence >= 0.6
    assert s.reasons == ["100% of 200 sampled values are e-mail addresses"]


def test_values_that_contradict_the_name_lower_the_confidence():
    s = one("email", ["n/a", "unknown", "call me", "none"] * 50)
    assert s.semantic is None or s.confidence < 0.6, s
    empty = one("email", pa.array([], pa.string()))  # no values: judged by name alone
    assert (empty.semantic, empty.confidence) == ("Identity.Email", pytest.approx(0.7))
    assert one("email", pa.nulls(3)).semantic == "Identity.Email"


def test_a_type_goes_to_its_best_column_only():
    suggestions = suggest_columns(
        "t.t",
        {"mobile": pa.array(PHONES[:150] + ["n/a"] * 50), "phone": pa.array(PHONES)},
    )
    got = by_column(suggestions)
    assert got["phone"].semantic == "Identity.Phone"
    assert got["mobile"].semantic is None
    assert got["mobile"].reasons[0] == "Identity.Phone already given to phone"
    assert [s.column for s in suggestions] == ["mobile", "phone"]  # input order


def test_keys_numbers_flags_and_times_get_none():
    columns = {
        "customer_id": pa.array(range(100)),
        "order_no": pa.array([f"SO-{i:05d}" for i in range(100)]),
        "amount": pa.array([12.5, 3.0] * 50),
        "quantity": pa.array([1, 2, 3, 4] * 25),
        "vip": pa.array([True, False] * 50),
        "updated": pa.array(["2024-01-02T10:00:00", "2024-03-04 11:12:13"] * 50),
        "pk_col": pa.array(EMAILS),
    }
    got = by_column(suggest_columns("t.t", columns, keys={"pk_col"}))
    assert all(s.semantic is None for s in got.values()), got
    assert got["pk_col"].reasons == ["primary key"]
    assert "key" in got["customer_id"].reasons[0]
    assert "flags" in got["vip"].reasons[0]
    assert "timestamps" in got["updated"].reasons[0]


def test_integer_zip_and_phone_columns_by_name():
    assert one("zip", [2134, 10115, 94105] * 30).semantic == "Location.PostalCode"
    assert one("phone", [6176659322, 5035551234] * 30).semantic == "Identity.Phone"
    assert one("visits", [12345, 54321] * 30).semantic is None


def test_as_yaml_fields_and_text():
    suggestions = [
        Suggestion("a.b", "mail", "Identity.Email", 0.9, []),
        Suggestion("a.b", "town", "Location.City", 0.5, []),
        Suggestion("a.b", "id", None, 0.95, ["primary key"]),
        Suggestion("c.d", "tel", "Identity.Phone", 0.6, []),
    ]
    fields = as_yaml_fields(suggestions)
    assert fields == {"a.b": {"mail": "Identity.Email"}, "c.d": {"tel": "Identity.Phone"}}
    assert as_yaml_fields(suggestions, min_confidence=0.4)["a.b"]["town"] == "Location.City"
    text = as_yaml_text(fields)
    assert text.startswith("unify:\n  tables:\n    - table: a.b\n      fields:\n")
    assert "        mail: Identity.Email\n" in text


# --- through the engine -------------------------------------------------------------------


def test_suggest_for_project_with_the_engine(tmp_path):
    (tmp_path / "people.csv").write_text(
        "id,Vorname,surname,EMailAddr,cust_tel_2,PLZ,joined\n"
        + "".join(
            f"{i},{first},{last},{first.lower()}.{last.lower()}@example.com,"
            f"+49 30 {1000000 + i * 37},{10115 + i},2024-01-{1 + i % 28:02d}\n"
            for i, (first, last) in enumerate(
                zip(["Anna", "Lukas", "Marie", "Paul", "Sophie"] * 8, SURNAMES * 5, strict=True)
            )
        )
    )
    raw = {
        "name": "demo",
        "sources": [
            {
                "name": "crm",
                "kind": "csv",
                "tables": [{"name": "people", "path": "people.csv", "primary_key": "id"}],
            }
        ],
    }
    project = parse_project(raw, tmp_path / "audience.yaml", tmp_path)
    ref = project.table_ref("crm.people")
    con = landing_connection(project, tmp_path / "tmp")
    landed = ingest_table(con, project, ref, tmp_path / "run")
    with Engine.connect(project) as engine:
        suggestions = suggest_for_project(engine, project, {ref.label: landed.path})
        assert suggest_for_project(engine, project, {ref.id: landed.path}, ["crm"]) == suggestions
        with pytest.raises(KeyError):
            suggest_for_project(engine, project, {ref.label: landed.path}, ["other"])
    assert as_yaml_fields(suggestions) == {
        "crm.people": {
            "Vorname": "Person.FirstName",
            "surname": "Person.LastName",
            "EMailAddr": "Identity.Email",
            "cust_tel_2": "Identity.Phone",
            "PLZ": "Location.PostalCode",
        }
    }
    got = by_column(suggestions)
    assert got["id"].reasons == ["primary key"]
    assert got["joined"].semantic is None


def test_suggest_for_the_demo_project_through_the_engine(tmp_path, demo_dir, confirmed):
    # The demo project as shipped, landed with its type overrides (US-style birthdays).
    shutil.copytree(demo_dir, tmp_path / "data")
    shutil.copy(RETAIL / "audience.yaml", tmp_path / "audience.yaml")
    project = load_project(tmp_path / "audience.yaml")
    con = landing_connection(project, tmp_path / "tmp")
    landed = {
        ref.label: ingest_table(con, project, ref, tmp_path / "run").path
        for ref in project.table_refs()
    }
    with Engine.connect(project) as engine:
        suggestions = suggest_for_project(engine, project, landed)
    fields = as_yaml_fields(suggestions)
    for label, expected in confirmed.items():
        check_against_confirmed([s for s in suggestions if s.table == label], expected)
        assert fields[label] == expected
