"""The enrichment stage in a whole run: the shop project with contact details, affinity and
three custom files (matched by email, phone and source key)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from analytics_helpers import UNIFY, shop_project
from unify_helpers import rows, uuid5, write_csv

from audience.analytics.stage import RunTables
from audience.engine import Engine
from audience.enrich.affinity import affinity
from audience.enrich.config import AffinityEnrichment
from audience.enrich.errors import EnrichError
from audience.outputs import output_schemas
from audience.pipeline import run_pipeline
from audience.project import Project

CONTACTS = [
    {"contact_id": "C1", "first_name": "Ann", "last_name": "Lee", "email": "ann@x.com",
     "phone": "(503) 877-2747 ext. 12", "street": "123 North Main Street Apartment 4",
     "city": "portland", "state": "Oregon", "zip": "97201"},
    {"contact_id": "C2", "first_name": "Bob", "last_name": "Ray", "email": "Bob.Ray@X.com",
     "phone": "+44 7400 123456", "street": "Main St & 5th Ave", "city": "Austin",
     "state": "TX", "zip": "78701"},
    {"contact_id": "C3", "first_name": "Cat", "last_name": "Kim", "email": "info@kim.com",
     "phone": "12", "street": None, "city": None, "state": None, "zip": None},
    {"contact_id": "C4", "first_name": "Dan", "last_name": "Fox", "email": "dan..fox@x.com",
     "phone": None, "street": "PO Box 77", "city": "Salem", "state": "or", "zip": "9730"},
]  # fmt: skip
FIELDS = {
    "phone": "Identity.Phone",
    "street": "Location.Address",
    "city": "Location.City",
    "state": "Location.State",
    "zip": "Location.PostalCode",
}
ENRICHMENTS = [
    {"name": "address", "kind": "address"},
    {"name": "phone", "kind": "phone"},
    {"name": "email", "kind": "email"},
    {"name": "category", "kind": "affinity", "activity": "lines", "field": "category",
     "weight": "value"},
    {"name": "channel", "kind": "affinity", "activity": "SalesOrder", "field": "channel"},
    {"name": "tiers", "kind": "custom", "path": "data/tiers.csv", "column": "Mail"},
    {"name": "carrier", "kind": "custom", "path": "data/carriers.parquet", "match_on": "phone",
     "column": "number", "fields": ["carrier"], "provider": "PhoneCo"},
    {"name": "risk", "kind": "custom", "path": "data/risk.csv", "match_on": "source_key",
     "column": "contact", "table": "crm.contacts"},
]  # fmt: skip
SEGMENTS = [
    {"name": "mobiles", "rules": ["phone_type = 'mobile'"]},
    {"name": "gold", "rules": ["tiers_tier = 'gold' and email_valid"]},
]


def enriched_shop(root: Path, enrichments: list[dict[str, Any]] | None = None) -> Project:
    unify = {"tables": [{**UNIFY["tables"][0]}]}
    unify["tables"][0]["fields"] = {**UNIFY["tables"][0]["fields"], **FIELDS}
    project = shop_project(
        root,
        segments=SEGMENTS,
        unify=unify,
        enrichments=ENRICHMENTS if enrichments is None else enrichments,
    )
    data = root / "data"
    write_csv(data / "crm_contacts.csv", CONTACTS)
    (data / "tiers.csv").write_text(
        "Mail,tier,points\n ANN@X.COM ,gold,120\nnobody@x.com,silver,5\n,bronze,1\n"
        "bob.ray@x.com,silver,40\n",
        encoding="utf-8",
    )
    pq.write_table(
        pa.table(
            {
                "number": ["503.877.2747", "+447400123456", "999", None],
                "carrier": ["Acme Tel", "UK Mobile", "Nobody", "Ghost"],
                "ignored": [1, 2, 3, 4],
            }
        ),
        data / "carriers.parquet",
    )
    (data / "risk.csv").write_text("contact,score\nC3,0.9\nC9,0.5\nC2,0.1\n", encoding="utf-8")
    return project


@pytest.fixture(scope="module")
def shop_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("enriched_shop")
    project = enriched_shop(root)
    first = run_pipeline(project)
    second = run_pipeline(project)
    return project, first, second


def _by_contact(run) -> dict[str, dict[str, Any]]:
    customer = {r["crm_contacts_contact_id"]: r["CustomerId"] for r in rows(run, "CustomerProfile")}
    attributes = {r["CustomerId"]: r for r in rows(run, "EnrichmentAttributes")}
    return {contact: attributes[cid] for contact, cid in customer.items()}


def test_enrichment_table_has_the_seed_shape_and_stable_ids(shop_runs):
    _project, first, second = shop_runs
    table = pq.read_table(first.table_path("Enrichment"))
    assert table.column_names == list(output_schemas()["Enrichment"])
    assert all(pa.types.is_string(f.type) for f in table.schema)
    got = rows(first, "Enrichment")
    for row in got:
        assert row["Identifier"] == f"{row['EnrichmentType']}|{row['CustomerId']}"
        assert row["EnrichmentId"] == uuid5(row["Identifier"])
        json.loads(row["Values"])
    keys = lambda run: sorted((r["Identifier"], r["EnrichmentId"]) for r in rows(run, "Enrichment"))  # noqa: E731
    assert keys(first) == keys(second)
    # one row per customer with something to enrich
    counts: dict[str, int] = {}
    for row in got:
        counts[row["EnrichmentType"]] = counts.get(row["EnrichmentType"], 0) + 1
    assert counts == {
        "address": 3, "phone": 3, "email": 4, "category": 2, "channel": 2, "tiers": 2,
        "carrier": 2, "risk": 2,
    }  # fmt: skip
    providers = {r["EnrichmentType"]: r["EnrichmentProvider"] for r in got}
    assert providers["carrier"] == "PhoneCo" and providers["tiers"] == "Custom"
    assert providers["address"] == "Audience"
    assert first.results["stages"]["enrichment"]["rows"] == {
        "Enrichment": len(got),
        "EnrichmentAttributes": 4,
    }


def test_attributes_one_row_per_customer(shop_runs):
    _project, first, _second = shop_runs
    attributes = rows(first, "EnrichmentAttributes")
    profile = rows(first, "CustomerProfile")
    assert sorted(r["CustomerId"] for r in attributes) == sorted(r["CustomerId"] for r in profile)
    c = _by_contact(first)
    assert c["C1"]["address_standard"] == "123 N Main St Apt 4, Portland, OR 97201"
    assert (c["C1"]["address_street"], c["C1"]["address_unit"]) == ("N Main St", "Apt 4")
    assert c["C2"]["address_parsed"] is False
    assert c["C2"]["address_reason"] == "an intersection, not a street address"
    assert c["C3"]["address_standard"] is None  # no street line: nothing to enrich
    assert c["C4"]["address_standard"] == "PO Box 77, Salem, OR 09730"
    assert (c["C1"]["phone_e164"], c["C1"]["phone_type"]) == (
        "+15038772747",
        "fixed_line_or_mobile",
    )
    assert (c["C2"]["phone_type"], c["C2"]["phone_region"]) == ("mobile", "GB")
    assert (c["C3"]["phone_valid"], c["C3"]["phone_reason"]) == (False, "too short")
    assert c["C4"]["phone_valid"] is None
    assert c["C2"]["email_normalized"] == "bob.ray@x.com"
    assert c["C3"]["email_role_account"] is True
    assert c["C4"]["email_valid"] is False
    assert "two periods" in c["C4"]["email_reason"]
    # lines: C1 Shoes 60 + 50, Bags 40 + 30; C2 Hats 200. Each category has one customer.
    assert (c["C1"]["category_top"], c["C1"]["category_top_score"]) == ("Shoes", 50)
    assert c["C1"]["category_top_band"] == "Medium"
    assert c["C3"]["category_top"] is None
    # orders by type SalesOrder (cancelled ones left out by the activity): web for both
    assert c["C1"]["channel_top"] == c["C2"]["channel_top"] == "web"


def test_affinity_values_json(shop_runs):
    _project, first, _second = shop_runs
    customer = {
        r["CustomerId"]: r["crm_contacts_contact_id"] for r in rows(first, "CustomerProfile")
    }
    values = {
        customer[r["CustomerId"]]: json.loads(r["Values"])
        for r in rows(first, "Enrichment")
        if r["EnrichmentType"] == "category"
    }
    assert values["C1"] == {
        "Field": "category",
        "Values": [
            {"Value": "Shoes", "Score": 50, "Band": "Medium", "ShareOfVoice": 61},
            {"Value": "Bags", "Score": 50, "Band": "Medium", "ShareOfVoice": 39},
        ],
    }
    assert values["C2"]["Values"] == [
        {"Value": "Hats", "Score": 50, "Band": "Medium", "ShareOfVoice": 100}
    ]


def test_custom_files_by_email_phone_and_source_key(shop_runs):
    _project, first, _second = shop_runs
    c = _by_contact(first)
    detail = first.results["stages"]["enrichment"]["detail"]
    # email: trimmed and lower case on both sides; two rows match nobody (one has no email)
    assert (c["C1"]["tiers_tier"], c["C1"]["tiers_points"]) == ("gold", 120)
    assert c["C2"]["tiers_tier"] == "silver"
    assert c["C3"]["tiers_tier"] is None
    assert detail["tiers"]["unmatched"] == 2
    assert (detail["tiers"]["file_rows"], detail["tiers"]["customers"]) == (4, 2)
    # phone: E.164 on both sides; only the published field
    assert c["C1"]["carrier_carrier"] == "Acme Tel"
    assert c["C2"]["carrier_carrier"] == "UK Mobile"
    assert "carrier_ignored" not in c["C1"]
    assert detail["carrier"]["unmatched"] == 2
    # source key: keys of crm.contacts through AlternateKey; C9 is nobody
    assert (c["C3"]["risk_score"], c["C2"]["risk_score"]) == (0.9, 0.1)
    assert c["C1"]["risk_score"] is None
    assert detail["risk"]["unmatched"] == 1
    values = [
        json.loads(r["Values"]) for r in rows(first, "Enrichment") if r["EnrichmentType"] == "risk"
    ]
    assert sorted(v["score"] for v in values) == [0.1, 0.9]


def test_segments_use_enrichment_fields(shop_runs):
    _project, first, _second = shop_runs
    customer = {
        r["CustomerId"]: r["crm_contacts_contact_id"] for r in rows(first, "CustomerProfile")
    }
    members: dict[str, set[str]] = {}
    for r in rows(first, "SegmentMembers"):
        members.setdefault(r["Segment"], set()).add(customer[r["CustomerId"]])
    assert members["mobiles"] == {"C2"}
    assert members["gold"] == {"C1"}


def test_stage_detail_counts(shop_runs):
    _project, first, _second = shop_runs
    detail = first.results["stages"]["enrichment"]["detail"]
    assert detail["address"]["customers"] == 3 and detail["address"]["unparsed"] == 1
    assert (detail["phone"]["customers"], detail["phone"]["invalid"]) == (3, 1)
    assert (detail["email"]["invalid"], detail["email"]["role_accounts"]) == (1, 1)
    assert (detail["category"]["customers"], detail["category"]["values"]) == (2, 3)


def test_affinity_errors_name_the_config_path(shop_runs):
    project, first, _second = shop_runs
    engine = Engine.connect(project)
    try:
        sources = RunTables(engine, project, first).row_sources()
        spec = AffinityEnrichment(name="x", kind="affinity", activity="lines", field="colour")
        with pytest.raises(
            EnrichError, match=r"enrichments\[3\]\.field: no field 'colour' in lines"
        ):
            affinity(engine, sources, spec, "enrichments[3]")
        spec = AffinityEnrichment(
            name="x", kind="affinity", activity="lines", field="category", weight="category"
        )
        with pytest.raises(EnrichError, match=r"enrichments\[3\]\.weight: 'category' is string"):
            affinity(engine, sources, spec, "enrichments[3]")
    finally:
        engine.close()


def test_missing_profile_field_fails_the_run_with_the_path(tmp_path):
    project = enriched_shop(tmp_path, [{"name": "phone", "kind": "phone", "field": "Mobile"}])
    with pytest.raises(EnrichError, match=r"enrichments\[0\]\.field: no profile field 'Mobile'"):
        run_pipeline(project)


def test_no_enrichments_skips_the_stage(tmp_path):
    project = shop_project(tmp_path)
    run = run_pipeline(project)
    stage = run.results["stages"]["enrichment"]
    assert stage["status"] == "skipped"
    assert "no enrichments" in stage["detail"]["reason"]
    assert "Enrichment" in run.tables  # the outputs stage writes it empty


# --- the same affinity on Spark -----------------------------------------------------------


@pytest.mark.spark
def test_affinity_is_the_same_on_spark(tmp_path):
    from audience.enrich.affinity import per_customer, scores

    rng = random.Random(5)
    data = [
        (f"c{rng.randint(1, 80)}", rng.choice("ABCDEFGHIJ"), rng.choice([1, 2, 3, 5, 8]))
        for _ in range(600)
    ]
    pairs = pa.table(
        {
            "CustomerId": [d[0] for d in data],
            "Value": [d[1] for d in data],
            "w": pa.array([d[2] for d in data], pa.int64()),
        }
    )
    spec = AffinityEnrichment(name="a", kind="affinity", activity="lines", field="brand", top=3)
    project = shop_project(tmp_path)
    results = {}
    for kind in ("duckdb", "spark"):
        engine = Engine.connect(project, kind)
        try:
            table = engine.register_arrow(pairs, "pairs")
            grouped = table.group_by(["CustomerId", "Value"]).agg(w=table.w.sum())
            scored = scores(grouped)
            out = per_customer(scored, spec)
            results[kind] = (
                sorted(tuple(r.values()) for r in scored.to_pyarrow().to_pylist()),
                sorted(tuple(r.values()) for r in out.to_pyarrow().to_pylist()),
            )
        finally:
            engine.close()
    assert results["duckdb"] == results["spark"]
