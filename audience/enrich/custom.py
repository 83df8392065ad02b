"""Custom enrichment: a file of your own (CSV or Parquet) joined onto customers.

A row of the file matches a customer by
- email: the file column and the profile's email, trimmed and in lower case;
- phone: both sides through unify's phone normaliser (E.164); values that are not possible
  phone numbers match nothing (two short digit strings are not the same phone);
- source_key: the file column holds keys of the unified table `table` ('source.table'),
  looked up in the run's AlternateKey, so a key of any record of the customer matches, not
  only the record whose values won in the profile.
The profile's email and phone are the fields an `email` / `phone` enrichment of the project
reads (the first of each), else `Email` and `Phone`; phones without a country code belong to
that phone enrichment's `default_region`, else US.

A customer matched by several file rows takes the first of them in file order (counted in
`several_rows`); a row that matches several customers (a shared household e-mail) enriches
each. File rows matching no customer are counted in `unmatched`, never dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from ibis import _

from audience import jsontext
from audience.engine import Engine, strip_whitespace
from audience.enrich.config import CustomEnrichment, EmailEnrichment, PhoneEnrichment
from audience.enrich.errors import EnrichError
from audience.project import Project
from audience.unify.normalize import normalize

_NOT_IDENTIFIER_RE = re.compile(r"[^A-Za-z0-9_]+")


def attribute_name(enrichment: str, column: str) -> str:
    """`<enrichment>_<column>`, with characters an expression cannot name replaced by "_"
    ("Lifetime Value (USD)" -> "Lifetime_Value_USD_")."""
    return f"{enrichment}_{_NOT_IDENTIFIER_RE.sub('_', column)}"


def read_file(project: Project, spec: CustomEnrichment, path: str) -> pa.Table:
    """The file as Arrow, its match column as text; errors name the config path."""
    file = project.resolve(spec.path)
    if not file.exists():
        raise EnrichError(f"{path}.path: no file {spec.path} (looked for {file})")
    suffix = file.suffix.lower()
    try:
        if suffix == ".csv":
            options = pacsv.ConvertOptions(
                column_types={spec.column: pa.string()}, strings_can_be_null=True
            )
            table = pacsv.read_csv(file, convert_options=options)
        elif suffix == ".parquet" or file.is_dir():
            table = pq.read_table(file)
        else:
            raise EnrichError(f"{path}.path: {spec.path} is not a .csv or .parquet file")
    except (pa.ArrowInvalid, OSError) as e:
        raise EnrichError(f"{path}.path: cannot read {spec.path}: {e}") from None
    columns = table.column_names
    if spec.column not in columns:
        raise EnrichError(
            f"{path}.column: no column '{spec.column}' in {spec.path}; columns are "
            f"{', '.join(columns)}"
        )
    for i, name in enumerate(spec.fields):
        if name not in columns:
            raise EnrichError(
                f"{path}.fields[{i}]: no column '{name}' in {spec.path}; columns are "
                f"{', '.join(columns)}"
            )
    published = spec.fields or [c for c in columns if c != spec.column]
    names = [attribute_name(spec.name, c) for c in published]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise EnrichError(
            f"{path}.fields: columns of {spec.path} give the same field names {twice}; "
            "publish one of them (fields: [...])"
        )
    for name in published:
        kind = table.schema.field(name).type
        if pa.types.is_nested(kind) or pa.types.is_binary(kind):
            raise EnrichError(
                f"{path}.fields: column '{name}' of {spec.path} is {kind}; only plain values "
                "(text, numbers, dates, booleans) are published"
            )
        if pa.types.is_null(kind):  # an empty CSV column
            table = table.set_column(columns.index(name), name, table[name].cast(pa.string()))
    key = table[spec.column].cast(pa.string())
    return pa.table(
        {
            "_row": pa.array(range(1, table.num_rows + 1), pa.int64()),
            "_key": key,
            **{name: table[name] for name in published},
        }
    )


@dataclass
class CustomResult:
    customers: ibis.Table  # CustomerId, Values (JSON), <name>_<column> ...
    counts: dict[str, Any] = field(default_factory=dict)


def _profile_field(project: Project, kind: type, default: str) -> tuple[str, str]:
    """The profile field (and phone region) another enrichment of this kind reads."""
    for other in project.enrichments:
        if isinstance(other, kind):
            return other.field, getattr(other, "default_region", "US")
    return default, "US"


def _require(profile: ibis.Table, name: str, path: str, why: str) -> None:
    if name not in profile.columns:
        raise EnrichError(
            f"{path}: {why} needs the profile field '{name}'; profile fields are "
            f"{', '.join(profile.columns)}"
        )


def _phone_keys(engine: Engine, values: ibis.Table, column: str, region: str) -> ibis.Table:
    """`_v` (the raw text) -> `_k` (E.164) for the distinct values of `column`, through
    Python (phonenumbers); only possible numbers get a key."""
    distinct = engine.to_arrow(
        values.select(_v=values[column].cast("string")).filter(_._v.notnull()).distinct()
    )["_v"]
    keys = normalize(distinct, ["phone"], default_region=region).to_pylist()
    keys = [k if k and k.startswith("+") else None for k in keys]
    lookup = pa.table({"_v": distinct, "_k": pa.array(keys, pa.string())})
    return engine.register_arrow(lookup, "phones")


def custom(
    engine: Engine,
    project: Project,
    spec: CustomEnrichment,
    path: str,
    profile: ibis.Table,
    alternate_key: ibis.Table,
) -> CustomResult:
    """The file's published columns for every customer one of its rows matches."""
    data = read_file(project, spec, path)
    file_rows = data.num_rows
    published = [c for c in data.column_names if c not in ("_row", "_key")]
    rows = engine.register_arrow(data, f"custom_{spec.name}")

    # (CustomerId, _row) for every match.
    if spec.match_on == "email":
        email = _profile_field(project, EmailEnrichment, "Email")[0]
        _require(profile, email, path, "match_on email")
        side = profile.select(
            _cid="CustomerId", _k=strip_whitespace(profile[email].cast("string")).lower()
        )
        keyed = rows.select("_row", _k=strip_whitespace(rows._key).lower())
    elif spec.match_on == "phone":
        phone, region = _profile_field(project, PhoneEnrichment, "Phone")
        _require(profile, phone, path, "match_on phone")
        lookup = _phone_keys(engine, profile, phone, region)
        side = profile.select(_cid="CustomerId", _v=profile[phone].cast("string"))
        side = side.join(lookup, "_v").select("_cid", "_k")
        file_lookup = _phone_keys(engine, rows, "_key", region)
        keyed = rows.select("_row", _v="_key").join(file_lookup, "_v").select("_row", "_k")
    else:
        source, _dot, table = (spec.table or "").partition(".")
        ak = alternate_key
        side = ak.filter((ak.DataSourceName == source) & (ak.EntityName == table)).select(
            _cid="CustomerId", _k=ak.AlternateValue.cast("string")
        )
        keyed = rows.select("_row", _k=strip_whitespace(rows._key))
    side = side.filter(_._k.notnull() & (_._k != "")).distinct()
    matches = keyed.filter(_._k.notnull()).join(side, "_k").select("_cid", "_row").distinct()
    matches = engine.checkpoint(matches, f"custom_{spec.name}_matches")

    first = matches.group_by("_cid").agg(_row=_._row.min(), _rows=_._row.count())
    counted = (
        first.aggregate(customers=_._cid.count(), several=(_._rows > 1).sum())
        .to_pyarrow()
        .to_pylist()[0]
    )
    matched_rows = int(matches._row.nunique().to_pyarrow().as_py())
    counts = {
        "file_rows": file_rows,
        "matched_rows": matched_rows,
        "unmatched": file_rows - matched_rows,
        "customers": int(counted["customers"] or 0),
        "several_rows": int(counted["several"] or 0),
    }

    chosen = first.join(rows, "_row")
    customers = chosen.select(
        CustomerId=chosen._cid,
        Values=jsontext.obj({name: chosen[name] for name in published}),
        **{attribute_name(spec.name, name): chosen[name] for name in published},
    )
    return CustomResult(customers, counts)
