"""The enrichment stage: every `enrichments:` entry of the project, in order.

Writes two run tables:
- `Enrichment` (seed 004: CustomerId, EnrichmentProvider, EnrichmentType, Values,
  EnrichmentId, Identifier, all text): one row per customer per enrichment that had
  something to work on (a street line, a phone, an e-mail, activity rows, a matching file
  row). EnrichmentType is the enrichment's name, EnrichmentProvider "Audience" (a custom
  file: its `provider`), Values a JSON object, Identifier "<name>|<CustomerId>" and
  EnrichmentId its UUIDv5, so the same customer and enrichment keep their GUID across runs.
- `EnrichmentAttributes`: one row per customer of CustomerProfile with the enrichments'
  fields `<name>_<field>` (NULL where an enrichment had nothing for the customer); the
  segments stage joins it onto the measures, so segments can use them.

Address, phone and e-mail work on the DISTINCT values of the profile: they are handed to
Python (Arrow), parsed once each by the libraries (audience/enrich/address.py, contact.py) and
joined back
in the engine, so a million customers sharing values cost one parse per value. Affinity
(audience/enrich/affinity.py) and the custom file join (audience/enrich/custom.py) run in the
engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ibis
import pyarrow as pa
from ibis import _

from audience.analytics.stage import RunTables, needs_unify
from audience.engine import strip_whitespace
from audience.enrich.address import standardize_address
from audience.enrich.affinity import affinity
from audience.enrich.config import (
    AddressEnrichment,
    AffinityEnrichment,
    CustomEnrichment,
    EmailEnrichment,
    PhoneEnrichment,
)
from audience.enrich.contact import email_info, phone_info, values_json
from audience.enrich.custom import custom
from audience.enrich.errors import EnrichError
from audience.outputs import arrow_schema
from audience.runs import StageResult
from audience.unify.ids import uuid5

if TYPE_CHECKING:
    from audience.engine import Engine
    from audience.pipeline import Context

PROVIDER = "Audience"
# Joins the parts of an address into one key for the distinct-value dictionary: a control
# character, so no address text can fake a boundary.
_SEPARATOR = "\x1f"


def enrichment_stage(ctx: Context, result: StageResult) -> None:
    project = ctx.project
    if not needs_unify(ctx, result, "enrichments"):
        return
    out = RunTables(ctx.engine, project, ctx.run)
    profile = out.read("CustomerProfile")
    attributes = profile.select("CustomerId")
    rows: list[ibis.Table] = []
    fields: dict[str, str] = {}  # attribute column -> what makes it
    for i, spec in enumerate(project.enrichments):
        path = f"enrichments[{i}]"
        t0 = time.perf_counter()
        built = _build(ctx.engine, out, spec, path, profile)
        customers = ctx.engine.checkpoint(built.customers, f"enrich_{spec.name}")
        for column in customers.columns[2:]:
            if column in fields or column in profile.columns:
                other = fields.get(column, "the profile")
                raise EnrichError(
                    f"{path}: field '{column}' is also made by {other}; rename the enrichment"
                )
            fields[column] = f"enrichment '{spec.name}'"
        rows.append(_enrichment_rows(customers, spec))
        extra = customers.drop("Values").rename(_ecid="CustomerId")
        attributes = attributes.left_join(extra, attributes.CustomerId == extra._ecid).drop("_ecid")
        detail = {"kind": spec.kind, **_counts(customers, built.flags), **built.counts}
        detail["seconds"] = round(time.perf_counter() - t0, 3)
        result.detail[spec.name] = detail
        ctx.reporter.step_done("enrichment", spec.name)
    result.rows["Enrichment"] = out.write("Enrichment", ibis.union(*rows))
    result.rows["EnrichmentAttributes"] = out.write("EnrichmentAttributes", attributes)


@dataclass
class Built:
    customers: ibis.Table  # CustomerId, Values, then `<name>_<field>` columns
    # Counts of the detail from boolean fields: label -> (column, the value counted).
    flags: dict[str, tuple[str, bool]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)  # counts known already


def _build(engine: Engine, out: RunTables, spec: Any, path: str, profile: ibis.Table) -> Built:
    name = spec.name
    if isinstance(spec, AddressEnrichment):
        customers, distinct = _address(engine, spec, path, profile)
        flags = {"unparsed": (f"{name}_parsed", False)}
        return Built(customers, flags, {"distinct_addresses": distinct})
    if isinstance(spec, PhoneEnrichment):
        column = _profile_column(profile, spec, "field", path)
        customers = _per_value(
            engine, profile, column, name, lambda v: phone_info(v, spec.default_region),
            _PHONE_COLUMNS,
        )  # fmt: skip
        return Built(customers, {"invalid": (f"{name}_valid", False)})
    if isinstance(spec, EmailEnrichment):
        column = _profile_column(profile, spec, "field", path)
        customers = _per_value(engine, profile, column, name, email_info, _EMAIL_COLUMNS)
        flags = {
            "invalid": (f"{name}_valid", False),
            "role_accounts": (f"{name}_role_account", True),
        }
        return Built(customers, flags)
    if isinstance(spec, AffinityEnrichment):
        result = affinity(engine, out.row_sources(), spec, path)
        values = int(result.scored.Value.nunique().to_pyarrow().as_py())
        return Built(result.customers, counts={"values": values})
    if isinstance(spec, CustomEnrichment):
        found = custom(engine, out.project, spec, path, profile, out.read("AlternateKey"))
        counts = {k: v for k, v in found.counts.items() if k != "customers"}
        return Built(found.customers, counts=counts)
    raise EnrichError(f"{path}: unknown enrichment kind {spec.kind!r}")  # pragma: no cover


def _counts(customers: ibis.Table, flags: dict[str, tuple[str, bool]]) -> dict[str, int]:
    """Customers enriched and the flag counts, in one query over the stored result."""
    metrics = {"customers": customers.count()}
    for label, (column, wanted) in flags.items():
        metrics[label] = (customers[column] == wanted).sum()
    row = customers.aggregate(**metrics).to_pyarrow().to_pylist()[0]
    return {k: int(v or 0) for k, v in row.items()}


def _enrichment_rows(customers: ibis.Table, spec: Any) -> ibis.Table:
    """The seed-shaped rows of one enrichment, all text."""
    identifier = ibis.literal(f"{spec.name}|") + customers.CustomerId
    provider = spec.provider if isinstance(spec, CustomEnrichment) else PROVIDER
    table = customers.select(
        CustomerId=customers.CustomerId,
        EnrichmentProvider=ibis.literal(provider),
        EnrichmentType=ibis.literal(spec.name),
        Values=customers.Values,
        EnrichmentId=uuid5(identifier),
        Identifier=identifier,
    )
    return table.cast(ibis.schema(arrow_schema("Enrichment")))


def _profile_column(profile: ibis.Table, spec: Any, attr: str, path: str) -> str | None:
    """The profile field an enrichment option names. A field left at its default that this
    profile lacks (no `State` in it, say) is skipped; one written in the file must exist, and
    so must the main field (the street line, the phone, the e-mail)."""
    name = getattr(spec, attr)
    if name is None:
        return None
    if name in profile.columns:
        return name
    if attr in spec.model_fields_set or attr in ("field", "address"):
        raise EnrichError(
            f"{path}.{attr}: no profile field '{name}'; profile fields are "
            f"{', '.join(c for c in profile.columns if c != 'CustomerId')}"
        )
    return None


# --- one value at a time: phone and email -------------------------------------------------

_PHONE_COLUMNS = {
    "e164": pa.string(),
    "type": pa.string(),
    "region": pa.string(),
    "valid": pa.bool_(),
    "reason": pa.string(),
}
_EMAIL_COLUMNS = {
    "normalized": pa.string(),
    "valid": pa.bool_(),
    "domain": pa.string(),
    "role_account": pa.bool_(),
    "reason": pa.string(),
}


def _per_value(
    engine: Engine,
    profile: ibis.Table,
    column: str | None,
    name: str,
    parse: Callable[[str], Any],
    columns: dict[str, pa.DataType],
) -> ibis.Table:
    """CustomerId, Values and `<name>_<column>` for customers with a value in `column`: the
    distinct values go through `parse` in Python and the results are joined back."""
    assert column is not None  # the main field is required (see _profile_column)
    values = profile.select(CustomerId="CustomerId", _v=profile[column].cast("string"))
    values = values.filter(_._v.notnull() & (strip_whitespace(_._v) != ""))
    distinct = engine.to_arrow(values.select("_v").distinct())["_v"].to_pylist()
    parsed = []
    for value in distinct:
        info = parse(value)
        row = {c: getattr(info, c) for c in columns}
        parsed.append({"_lv": value, **row, "Values": values_json(info.values())})
    lookup = engine.register_arrow(_lookup_table(parsed, "_lv", columns), "enrich_values")
    joined = values.join(lookup, values._v == lookup._lv)
    return joined.select("CustomerId", "Values", **{f"{name}_{c}": joined[c] for c in columns})


def _lookup_table(
    rows: list[dict[str, Any]], key: str, columns: dict[str, pa.DataType]
) -> pa.Table:
    # Explicit types: a column that is None for every distinct value must still be text.
    schema = pa.schema([(key, pa.string()), *columns.items(), ("Values", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


# --- address ------------------------------------------------------------------------------

_ADDRESS_COLUMNS = {
    "street": pa.string(),
    "number": pa.string(),
    "unit": pa.string(),
    "city": pa.string(),
    "region": pa.string(),
    "postal_code": pa.string(),
    "standard": pa.string(),
    "parsed": pa.bool_(),
    "reason": pa.string(),
}


def _address(
    engine: Engine, spec: AddressEnrichment, path: str, profile: ibis.Table
) -> tuple[ibis.Table, int]:
    """Standard addresses for customers with a street line, parsed once per distinct
    (line, city, region, postal code); also the number of distinct addresses."""
    parts = {
        "_line": _profile_column(profile, spec, "address", path),
        "_city": _profile_column(profile, spec, "city", path),
        "_region": _profile_column(profile, spec, "region", path),
        "_postal": _profile_column(profile, spec, "postal_code", path),
    }
    text = {
        part: (profile[column].cast("string") if column else ibis.null("string"))
        for part, column in parts.items()
    }
    values = profile.select(CustomerId="CustomerId", **text)
    values = values.filter(_._line.notnull() & (_._line.strip() != ""))
    key = ibis.literal("")
    for i, part in enumerate(text):
        key = key + (_SEPARATOR if i else "") + ibis.coalesce(values[part], "")
    values = values.mutate(_k=key)
    distinct = engine.to_arrow(values.select("_k", *text).distinct()).to_pylist()
    parsed = []
    for row in distinct:
        found = standardize_address(
            row["_line"], row["_city"], row["_region"], row["_postal"], spec.country
        )
        parsed.append(
            {
                "_lk": row["_k"],
                **{c: getattr(found, c) for c in _ADDRESS_COLUMNS},
                "Values": values_json(found.values()),
            }
        )
    lookup = engine.register_arrow(_lookup_table(parsed, "_lk", _ADDRESS_COLUMNS), "addresses")
    joined = values.join(lookup, values._k == lookup._lk)
    customers = joined.select(
        "CustomerId", "Values", **{f"{spec.name}_{c}": joined[c] for c in _ADDRESS_COLUMNS}
    )
    return customers, len(distinct)
