"""The `unify:` section of the project file: mapping, dedup, match, custom match, merge.

The semantics follow the modelled system (DESIGN.md, "Semantics to keep"):
- `tables` are ordered; a table is matched only against tables above it;
- a rule is an AND of conditions; a record tries a pair's rules in order and stops at the first
  rule that finds a match in that table;
- a condition compares one semantic field of the two records after normalisation, exactly or
  with a precision (score = (len - edit distance) / len, or Jaro-Winkler);
- exceptions remove pairs after the rules; custom match adds or removes key pairs, ignores
  bypass values and treats aliases as equal.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Semantic types: name -> (description, default normalisation for conditions on it,
# profile column name).
SEMANTIC_TYPES: dict[str, tuple[str, list[str], str]] = {
    "Person.FirstName": ("given name", ["first_name"], "FirstName"),
    "Person.MiddleName": ("middle name", ["name"], "MiddleName"),
    "Person.LastName": ("family name", ["name"], "LastName"),
    "Person.FullName": ("whole name", ["name"], "FullName"),
    "Person.BirthDate": ("date of birth", ["whitespace"], "BirthDate"),
    "Person.Gender": ("gender", ["lower", "whitespace"], "Gender"),
    "Person.Title": ("title (Mr, Dr, ...)", ["lower", "symbols", "whitespace"], "Title"),
    "Identity.Email": ("e-mail address", ["email"], "Email"),
    "Identity.Phone": ("phone number", ["phone"], "Phone"),
    "Location.Address": ("street address line", ["address"], "Address"),
    "Location.City": ("city", ["ascii", "lower", "symbols", "whitespace"], "City"),
    "Location.State": ("state or region", ["ascii", "lower", "symbols", "whitespace"], "State"),
    "Location.PostalCode": ("postal or zip code", ["postcode"], "PostalCode"),
    "Location.Country": ("country", ["ascii", "lower", "symbols", "whitespace"], "Country"),
    "Organization.Name": ("company name", ["organization"], "CompanyName"),
    "Identity.CustomerNumber": ("an ID shared across systems", ["whitespace"], "CustomerNumber"),
}
PRECISIONS = {"exact": 1.0, "high": 0.8, "medium": 0.6, "low": 0.3}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _check_semantic(value: str) -> str:
    if value not in SEMANTIC_TYPES and not value.startswith("Custom."):
        known = ", ".join(SEMANTIC_TYPES)
        raise ValueError(f"unknown semantic type '{value}'; use one of {known}, or Custom.<Name>")
    return value


class Condition(Strict):
    field: str = Field(description="Semantic type compared on both records, e.g. Identity.Email.")
    normalize: list[str] | None = Field(
        None, description="Normalisations before comparing (default: the field type's own)."
    )
    precision: Literal["exact", "high", "medium", "low"] | float = Field(
        "exact", description="exact, high (0.8), medium (0.6), low (0.3), or a number 0-1."
    )
    method: Literal["edit", "jaro_winkler", "name", "date"] = Field(
        "edit",
        description="Fuzzy score: edit = (len - edit distance) / len; jaro_winkler; name = "
        "Jaro-Winkler, 1.0 for nicknames of each other (Jack/John); date = 1.0 equal, 0.9 day "
        "and month swapped, 0.8 one of year, month, day different.",
    )

    _field = field_validator("field")(_check_semantic)

    @field_validator("normalize")
    @classmethod
    def _known_steps(cls, value: list[str] | None) -> list[str] | None:
        # Checked when the file loads, not when a run reaches matching.
        from audience.unify.normalize import check_steps

        if value is not None:
            check_steps(value)
        return value

    @field_validator("precision")
    @classmethod
    def _precision_range(cls, value: str | float) -> str | float:
        if isinstance(value, float | int) and not 0 < value <= 1:
            raise ValueError("a custom precision is a number above 0 and at most 1")
        return value

    @property
    def threshold(self) -> float:
        return PRECISIONS[self.precision] if isinstance(self.precision, str) else self.precision

    @property
    def is_exact(self) -> bool:
        return self.threshold >= 1.0

    @property
    def steps(self) -> list[str]:
        if self.normalize is not None:
            return self.normalize
        return SEMANTIC_TYPES.get(self.field, ("", ["lower", "whitespace"], ""))[1]


class Rule(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_ -]+$")
    conditions: list[Condition] = Field(min_length=1, description="All must hold (AND).")


class DedupConfig(Strict):
    rules: list[Rule] = Field(default_factory=list, description="Records equal by a rule are one.")
    exceptions: list[Condition] = Field(
        default_factory=list,
        description="Never duplicates when both records have this field and it differs.",
    )
    winner: Literal["most_filled", "most_recent", "least_recent"] = Field(
        "most_filled", description="Which duplicate represents the group; ties: largest key."
    )


class UnifyTable(Strict):
    table: str = Field(description="A source table, 'source.table'.")
    fields: dict[str, str] = Field(
        description="Column -> semantic type (Person.FirstName, Identity.Email, ...)."
    )
    dedup: DedupConfig = Field(default_factory=DedupConfig)

    @field_validator("fields")
    @classmethod
    def _semantic_values(cls, value: dict[str, str]) -> dict[str, str]:
        given: dict[str, str] = {}
        for column, semantic in value.items():
            _check_semantic(semantic)
            if semantic in given:  # a record has one value per semantic type
                raise ValueError(
                    f"'{given[semantic]}' and '{column}' are both {semantic}; map one column "
                    "per type (use Custom.<Name> for the other)"
                )
            given[semantic] = column
        return value


class MatchPair(Strict):
    table: str = Field(description="The later table, 'source.table'.")
    against: str = Field(description="A table listed above it in unify.tables.")
    rules: list[Rule] = Field(min_length=1, description="Tried in order for each record.")
    exceptions: list[Condition] = Field(
        default_factory=list,
        description="Never match a pair whose values for this field both exist and differ "
        "(below the precision).",
    )


class CustomMatch(Strict):
    always_match: str | None = Field(
        None, description="CSV with table1,key1,table2,key2: pairs that are always one customer."
    )
    never_match: str | None = Field(None, description="CSV like always_match: never one customer.")
    aliases: str | None = Field(
        None, description="CSV with field,value,alias: values treated as equal (after normalising)."
    )
    bypass: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Semantic type -> values never used for matching (e.g. unknown@example.com).",
    )


class ClusterConfig(Strict):
    max_size: int = Field(50, ge=2, description="Clusters above this size are reported.")
    giant_policy: Literal["report", "cut_weakest"] = Field(
        "report", description="report: keep and warn; cut_weakest: drop weakest links until small."
    )
    enforce_exceptions: bool = Field(
        True,
        description="Exceptions hold for whole customers: records linked only through a third "
        "record are separated when they conflict (two different birth dates).",
    )


class MergeField(Strict):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="Profile column name.")
    field: str = Field(description="Semantic type it comes from.")
    policy: Literal["importance", "most_recent", "least_recent", "most_frequent"] = "importance"
    ranking: list[str] = Field(
        default_factory=list,
        description="Tables by importance, 'source.table' (default: the unify.tables order).",
    )

    _field = field_validator("field")(_check_semantic)


class MergeGroup(Strict):
    name: str = Field(description="A name for the group, e.g. Address.")
    fields: list[str] = Field(min_length=2, description="Profile columns that win together.")
    policy: Literal["importance", "most_recent", "least_recent"] = "importance"
    ranking: list[str] = Field(default_factory=list)


class MergeConfig(Strict):
    fields: list[MergeField] = Field(
        default_factory=list,
        description="Profile columns with their policy; mapped types not listed here get a "
        "column named after the type with the importance policy.",
    )
    groups: list[MergeGroup] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list, description="Profile columns left out.")


class UnifyConfig(Strict):
    tables: list[UnifyTable] = Field(min_length=1, description="Ordered: matched top to bottom.")
    match: list[MatchPair] = Field(default_factory=list)
    custom: CustomMatch = Field(default_factory=CustomMatch)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    merge: MergeConfig = Field(default_factory=MergeConfig)

    @model_validator(mode="after")
    def _order(self) -> UnifyConfig:
        order = [t.table for t in self.tables]
        dupes = {t for t in order if order.count(t) > 1}
        if dupes:
            raise ValueError(f"tables: listed twice: {sorted(dupes)}")
        for i, pair in enumerate(self.match):
            for key in ("table", "against"):
                if getattr(pair, key) not in order:
                    raise ValueError(
                        f"match[{i}].{key}: '{getattr(pair, key)}' is not in unify.tables"
                    )
            if order.index(pair.against) >= order.index(pair.table):
                raise ValueError(
                    f"match[{i}].against: '{pair.against}' must be listed above '{pair.table}' "
                    "in unify.tables (a table is matched against the tables above it)"
                )
        return self
