"""The retail demo data generator (examples/retail/generate.py): determinism, volumes, and the
planted mess that the unification tests rely on."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

GENERATOR = Path(__file__).resolve().parents[1] / "examples" / "retail" / "generate.py"
PEOPLE = 2000
SEED = 42
FILES = [
    "crm_contacts.csv",
    "shop_accounts.parquet",
    "loyalty_members.jsonl",
    "orders.csv",
    "order_lines.csv",
    "web_visits.csv",
    "support_cases.csv",
    "subscriptions.csv",
    "truth.csv",
    "README.md",
]
PHONE_FORMATS = {
    "(555) 123-4567": r"\(\d{3}\) \d{3}-\d{4}",
    "555.123.4567": r"\d{3}\.\d{3}\.\d{4}",
    "+1 555 123 4567": r"\+1 \d{3} \d{3} \d{4}",
    "5551234567": r"\d{10}",
    "555-123-4567": r"\d{3}-\d{3}-\d{4}",
    "+1-555-123-4567 ext 12": r"\+1-\d{3}-\d{3}-\d{4} ext \d+",
}


def load_generator():
    spec = importlib.util.spec_from_file_location("retail_generate", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


gen = load_generator()


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("retail")
    return out, gen.generate(out, people=PEOPLE, seed=SEED)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def read_dicts(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def customer_records(out: Path) -> list[dict[str, str | None]]:
    """Every parseable, keyed customer record as {source, key, first, last, phone}."""
    records = []
    header, *rows = read_csv(out / "crm_contacts.csv")
    for row in rows:
        if len(row) == len(header) and row[0]:
            r = dict(zip(header, row, strict=True))
            records.append(
                dict(source="crm", key=r["contact_id"], first=r["first_name"])
                | dict(last=r["last_name"], phone=r["phone"] or None)
            )
    for r in pq.read_table(out / "shop_accounts.parquet").to_pylist():
        name = r["full_name"]
        last, first = name.split(", ", 1) if ", " in name else name.split(" ", 1)[::-1]
        records.append(
            dict(source="shop", key=str(r["account_id"]), first=first, last=last, phone=r["mobile"])
        )
    for line in (out / "loyalty_members.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        records.append(
            dict(source="loyalty", key=r["member_no"], first=r["given_name"])
            | dict(last=r["family_name"], phone=r["tel"])
        )
    return records


def records_by_person(out: Path) -> dict[str, list[dict]]:
    truth = read_dicts(out / "truth.csv")
    # (source, key) -> person ids; the re-used contact_id maps to two people, taken in order.
    person_ids = defaultdict(list)
    for t in truth:
        person_ids[(t["source"], t["key"])].append(t["person_id"])
    by_person = defaultdict(list)
    for r in customer_records(out):
        by_person[person_ids[(r["source"], r["key"])].pop(0)].append(r)
    return by_person


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def test_same_seed_gives_identical_bytes(tmp_path, generated):
    first, _ = generated
    second = tmp_path / "again"
    gen.generate(second, people=PEOPLE, seed=SEED)
    for name in FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_other_seed_gives_other_data(tmp_path, generated):
    first, _ = generated
    gen.generate(tmp_path, people=PEOPLE, seed=SEED + 1)
    assert (first / "crm_contacts.csv").read_bytes() != (tmp_path / "crm_contacts.csv").read_bytes()


def test_counts_match_files_and_volumes(generated):
    out, counts = generated
    assert set(FILES) - {"README.md"} <= set(counts)
    for name in ["orders.csv", "order_lines.csv", "web_visits.csv", "support_cases.csv"]:
        assert len(read_csv(out / name)) - 1 == counts[name], name
    assert len(read_csv(out / "subscriptions.csv")) - 1 == counts["subscriptions.csv"]
    assert len(read_csv(out / "crm_contacts.csv")) - 1 == counts["crm_contacts.csv"]
    assert (
        pq.read_metadata(out / "shop_accounts.parquet").num_rows == counts["shop_accounts.parquet"]
    )
    lines = (out / "loyalty_members.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == counts["loyalty_members.jsonl"]

    # Customer sources: ~70/60/45% of people, plus ~3% in-source duplicates.
    assert 0.65 * PEOPLE < counts["crm_contacts.csv"] < 0.80 * PEOPLE
    assert 0.55 * PEOPLE < counts["shop_accounts.parquet"] < 0.70 * PEOPLE
    assert 0.40 * PEOPLE < counts["loyalty_members.jsonl"] < 0.53 * PEOPLE
    assert 4500 <= counts["orders.csv"] <= 5500
    assert 10000 <= counts["order_lines.csv"] <= 14000
    assert 13500 <= counts["web_visits.csv"] <= 16500
    assert 700 <= counts["support_cases.csv"] <= 900
    assert 350 <= counts["subscriptions.csv"] <= 450


def test_crm_bad_rows(generated):
    out, counts = generated
    header, *rows = read_csv(out / "crm_contacts.csv")
    ragged = [r for r in rows if len(r) != len(header)]
    assert sorted(len(r) - len(header) for r in ragged) == [-2, 1]
    parsed = [r for r in rows if len(r) == len(header)]
    assert sum(r[0] == "" for r in parsed) == 1
    keys = Counter(r[0] for r in parsed if r[0])
    assert [n for n in keys.values() if n > 1] == [2]
    assert counts["crm_ragged_rows"] == 2
    assert counts["crm_duplicate_key_rows"] == 1
    assert counts["crm_empty_key_rows"] == 1
    # The re-used key belongs to two different people, the original row first.
    (reused,) = [k for k, n in keys.items() if n > 1]
    owners = [t["person_id"] for t in read_dicts(out / "truth.csv") if t["key"] == reused]
    assert len(owners) == 2 and owners[0] != owners[1]


def test_loyalty_invalid_json_lines(generated):
    out, counts = generated
    invalid = 0
    for line in (out / "loyalty_members.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            json.loads(line)
        except json.JSONDecodeError:
            invalid += 1
    assert invalid == counts["loyalty_invalid_json_lines"] == 2


def test_truth_covers_exactly_the_parseable_records(generated):
    out, counts = generated
    truth = read_dicts(out / "truth.csv")
    assert len(truth) == counts["truth.csv"]
    expected = Counter((r["source"], r["key"]) for r in customer_records(out))
    assert Counter((t["source"], t["key"]) for t in truth) == expected
    tables = {(t["source"], t["table"]) for t in truth}
    assert tables == {("crm", "contacts"), ("shop", "accounts"), ("loyalty", "members")}


def test_overlap_duplicates_and_households(generated):
    out, counts = generated
    by_person = records_by_person(out)
    sources = {p: {r["source"] for r in records} for p, records in by_person.items()}
    in_all = sum(len(s) == 3 for s in sources.values())
    assert in_all >= 100
    assert in_all == counts["people_in_all_sources"]
    assert len(by_person) == PEOPLE  # nobody is lost
    duplicated = [
        p
        for p, records in by_person.items()
        if max(Counter(r["source"] for r in records).values()) > 1
    ]
    assert 0.02 * PEOPLE < len(duplicated) < 0.10 * PEOPLE
    # Households: different people sharing one address line in the shop.
    shop = pq.read_table(out / "shop_accounts.parquet").to_pylist()
    zips_by_name = defaultdict(set)
    for r in shop:
        if r["zip"] and r["address_line"]:
            last = r["full_name"].split(", ")[0] if ", " in r["full_name"] else r["full_name"]
            zips_by_name[(last.split()[-1].lower(), r["zip"])].add(r["account_id"])
    assert sum(len(ids) >= 2 for ids in zips_by_name.values()) >= 20


def test_nicknames_typos_and_accents(generated):
    out, _ = generated
    nickname_people = typo_people = accent_people = 0
    for records in records_by_person(out).values():
        firsts = {r["first"] for r in records}
        lasts = {r["last"] for r in records}
        if any(n in gen.NICKNAMES.get(f, []) for f in firsts for n in firsts):
            nickname_people += 1
        names = [(fold(r["first"]), fold(r["last"])) for r in records]
        if any(
            edit_distance(a[0], b[0]) + edit_distance(a[1], b[1]) == 1 for a in names for b in names
        ):
            typo_people += 1
        if any(
            a != b and fold(a) == fold(b) and a.lower() != b.lower()
            for a in lasts | firsts
            for b in lasts | firsts
        ):
            accent_people += 1
    assert nickname_people >= 50
    assert typo_people >= 50
    assert accent_people >= 5
    records = customer_records(out)
    assert sum(r["first"].isupper() or r["first"].islower() for r in records) >= 50


def test_phone_formats_vary(generated):
    out, _ = generated
    seen = Counter()
    for r in customer_records(out):
        for name, pattern in PHONE_FORMATS.items():
            if r["phone"] and re.fullmatch(pattern, r["phone"]):
                seen[name] += 1
    assert len(seen) >= 3
    assert all(seen[name] >= 20 for name in PHONE_FORMATS)


def test_activities_reference_existing_keys_and_amounts_add_up(generated):
    out, _ = generated
    accounts = {
        str(a) for a in pq.read_table(out / "shop_accounts.parquet")["account_id"].to_pylist()
    }
    orders = read_dicts(out / "orders.csv")
    assert {o["account_id"] for o in orders} <= accounts
    line_totals = defaultdict(int)
    for line in read_dicts(out / "order_lines.csv"):
        line_totals[line["order_id"]] += int(line["quantity"]) * round(
            float(line["unit_price"]) * 100
        )
    for order in orders:
        assert round(float(order["total_amount"]) * 100) == line_totals[order["order_id"]]
        assert order["currency"] == "USD" and order["channel"] in {"web", "app"}
    visits = read_dicts(out / "web_visits.csv")
    assert {v["account_id"] for v in visits} - {""} <= accounts

    contacts = {t["key"] for t in read_dicts(out / "truth.csv") if t["source"] == "crm"}
    cases = read_dicts(out / "support_cases.csv")
    assert {c["contact_id"] for c in cases} <= contacts
    texts = [c["feedback_text"] for c in cases]
    assert any("," in t and '"' in t for t in texts)  # CSV quoting matters
    assert {c["satisfaction"] for c in cases} <= {"", "1", "2", "3", "4", "5"}

    members = {t["key"] for t in read_dicts(out / "truth.csv") if t["source"] == "loyalty"}
    subscriptions = read_dicts(out / "subscriptions.csv")
    assert {s["member_no"] for s in subscriptions} <= members
    assert any(s["end_date"] == "" for s in subscriptions)
    assert {s["auto_renew"] for s in subscriptions} <= {"true", "false"}


def test_formats(generated):
    out, _ = generated
    schema = pq.read_schema(out / "shop_accounts.parquet")
    assert schema.field("account_id").type == pa.int64()
    assert schema.field("signup_ts").type == pa.timestamp("us")
    assert schema.field("last_login_ts").type == pa.timestamp("us")
    header, *rows = read_csv(out / "crm_contacts.csv")
    births = [r[header.index("birth_date")] for r in rows if len(r) == len(header)]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", b) for b in births if b)
    first_line = (out / "loyalty_members.jsonl").read_text(encoding="utf-8").splitlines()[0]
    member = json.loads(first_line)
    assert member["tier"] in {"Bronze", "Silver", "Gold"}
    assert member["birthday"] is None or re.fullmatch(r"\d\d/\d\d/\d{4}", member["birthday"])
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "ragged" in readme and "not valid JSON" in readme


def test_small_run_keeps_the_planted_problems(tmp_path):
    counts = gen.generate(tmp_path, people=40, seed=7)
    header, *rows = read_csv(tmp_path / "crm_contacts.csv")
    assert sum(len(r) != len(header) for r in rows) == counts["crm_ragged_rows"] == 2
    assert len(read_dicts(tmp_path / "truth.csv")) == counts["truth.csv"]
