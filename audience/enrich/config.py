"""The `enrichments:` section of the project file: one entry per enrichment, by `kind`.

Each enrichment publishes rows to the Enrichment table (provider, type, Values JSON) and
profile fields `<name>_<field>` that segments, the API and exports can use.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from audience.analytics.config import IDENTIFIER, Strict


class _Enrichment(Strict):
    name: str = Field(
        pattern=IDENTIFIER,
        description="Names the enrichment (EnrichmentType) and prefixes its profile fields.",
    )
    description: str | None = None


class AddressEnrichment(_Enrichment):
    """Parse and standardise each profile's postal address: number, street, unit, city,
    region and postal code with USPS abbreviations ("123 North Main Street Apartment 4" ->
    "123 N Main St Apt 4"). A street line that cannot be parsed is reported with the reason.
    Customers without a street line are not enriched."""

    kind: Literal["address"]
    address: str = Field("Address", description="Profile field with the street line.")
    city: str | None = "City"
    region: str | None = Field("State", description="Profile field with the state or region.")
    postal_code: str | None = "PostalCode"
    country: str = Field(
        "US",
        description="Country of the addresses (ISO code). Street lines are parsed for US "
        "addresses only; with another country they are reported as not parsed.",
    )


class PhoneEnrichment(_Enrichment):
    """Phones to E.164 with their type (mobile, fixed line, ...) and region."""

    kind: Literal["phone"]
    field: str = Field("Phone", description="Profile field with the phone number.")
    default_region: str = Field("US", description="Region of numbers without a country code.")


class EmailEnrichment(_Enrichment):
    """Emails checked (syntax, no network look-up) and normalised."""

    kind: Literal["email"]
    field: str = Field("Email", description="Profile field with the email address.")


class AffinityEnrichment(_Enrichment):
    """Affinity of each customer to the values of an activity field (brands, categories):
    a score 1-100 with bands Very high 85-100, High 70-84, Medium 35-69, Low 1-34, and a
    share of voice summing to 100 per customer."""

    kind: Literal["affinity"]
    activity: str = Field(description="The activity (by name or type) to read.")
    field: str = Field(description="The activity field holding the brand or category.")
    weight: str | None = Field(
        None, description="Field to weigh rows by (e.g. amount); default: each row counts 1."
    )
    top: int = Field(5, ge=1, le=100, description="Values kept per customer.")


class CustomEnrichment(_Enrichment):
    """A user-supplied file (CSV or Parquet) joined onto profiles by email, phone or a
    source key."""

    kind: Literal["custom"]
    path: str = Field(description="The file, relative to the project.")
    match_on: Literal["email", "phone", "source_key"] = "email"
    column: str = Field(description="Column of the file holding the email, phone or key.")
    table: str | None = Field(
        None,
        description="match_on source_key: the unified table ('source.table') the keys belong to.",
    )
    fields: list[str] = Field(
        default_factory=list, description="Columns of the file to publish (default: all others)."
    )
    provider: str = Field("Custom", description="EnrichmentProvider in the Enrichment table.")


Enrichment = Annotated[
    AddressEnrichment | PhoneEnrichment | EmailEnrichment | AffinityEnrichment | CustomEnrichment,
    Field(discriminator="kind"),
]
