"""Map and normalise: every unified source record as one row of the match-records table.

    _n      integer id (row number over _rid: the same on every engine)
    _rid    'source|table|key', the record's Identifier in AlternateKey
    _t      the table's position in unify.tables (0 = top)
    _key    the primary key as text (_key_sort: the same, sortable as the key's type)
    _ts     the table's timestamp_column (for most/least recent), or NULL
    _filled how many mapped fields are filled (for the 'most filled' winner)
    <Type>  each semantic field as text, e.g. Person_FirstName (raw values: for merge)
    n<i>    each normalised field a rule needs (normalised values: for matching)

Normalisations run in Python on the DISTINCT raw values of a field only, and the result is
joined back in the engine: names, e-mails and phones repeat, and a library call per distinct
value (phonenumbers, nameparser, usaddress) costs far less than one per row. Derived fields
(first/last name from a full name, a full name from its parts) are made the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import ibis
import pyarrow as pa
from ibis import _

from audience.engine import Engine
from audience.project import Project, TableRef
from audience.unify import normalize as norm
from audience.unify.config import Condition, UnifyConfig, UnifyTable
from audience.unify.normalize_names import split_full_name

NAME_PARTS = ("Person.FirstName", "Person.LastName")


def column_of(semantic: str) -> str:
    """'Person.FirstName' -> 'Person_FirstName' (the match-records column)."""
    return semantic.replace(".", "_")


@dataclass
class UnifyTableInfo:
    index: int
    ref: TableRef
    config: UnifyTable
    columns: dict[str, str]  # semantic type -> source column

    @property
    def label(self) -> str:
        return self.ref.label


@dataclass
class NormalizedField:
    """A field normalised with given steps: the column `name` of the match records."""

    name: str
    semantic: str
    steps: tuple[str, ...]


@dataclass
class Prepared:
    records: ibis.Table
    tables: list[UnifyTableInfo]
    semantics: list[str]  # every semantic field present in some table (and derived ones)
    normalized: dict[tuple[str, tuple[str, ...]], NormalizedField] = field(default_factory=dict)

    def condition_column(self, condition: Condition) -> str:
        return self.normalized[(condition.field, tuple(condition.steps))].name


def table_infos(project: Project, config: UnifyConfig) -> list[UnifyTableInfo]:
    infos = []
    for i, table in enumerate(config.tables):
        columns: dict[str, str] = {}
        for column, semantic in table.fields.items():
            if semantic in columns:
                raise ValueError(
                    f"unify.tables[{i}].fields: '{column}' and '{columns[semantic]}' are both "
                    f"{semantic}; map one column per type"
                )
            columns[semantic] = column
        infos.append(UnifyTableInfo(i, project.table_ref(table.table), table, columns))
    return infos


def all_conditions(config: UnifyConfig) -> list[Condition]:
    conditions = [c for t in config.tables for r in t.dedup.rules for c in r.conditions]
    conditions += [c for t in config.tables for c in t.dedup.exceptions]
    for pair in config.match:
        conditions += [c for r in pair.rules for c in r.conditions] + pair.exceptions
    return conditions


def normalized_fields(config: UnifyConfig) -> dict[tuple[str, tuple[str, ...]], NormalizedField]:
    """Each (field, steps) the rules use, with its column name in the match records."""
    wanted = sorted({(c.field, tuple(c.steps)) for c in all_conditions(config)})
    return {(f, s): NormalizedField(f"n{i}", f, s) for i, (f, s) in enumerate(wanted)}


def prepare(
    engine: Engine,
    project: Project,
    config: UnifyConfig,
    landed: dict[str, Path],
    aliases: dict[str, list[tuple[str, str]]] | None = None,
) -> Prepared:
    """Build and checkpoint the match-records table from the landed source tables."""
    infos = table_infos(project, config)
    semantics = sorted({s for info in infos for s in info.columns} | _derivable(infos))
    parts = [_table_records(engine, info, semantics, landed[info.ref.id]) for info in infos]
    records = ibis.union(*parts) if len(parts) > 1 else parts[0]
    records = records.mutate(_n=ibis.row_number().over(order_by="_rid"))
    records = _derive_name_parts(engine, records, infos)
    prepared = Prepared(engine.checkpoint(records, "records"), infos, semantics)
    bypass = {k: set(v) for k, v in config.custom.bypass.items()}
    prepared.normalized = normalized_fields(config)
    prepared.records = normalize_all(engine, prepared, bypass, aliases or {})
    return prepared


def _derivable(infos: list[UnifyTableInfo]) -> set[str]:
    """Name fields some table can derive: parts from a full name, a full name from parts."""
    present = {s for info in infos for s in info.columns}
    derived = set()
    if "Person.FullName" in present:
        derived |= set(NAME_PARTS)
    if present & set(NAME_PARTS):
        derived.add("Person.FullName")
    return derived


def _table_records(
    engine: Engine, info: UnifyTableInfo, semantics: list[str], path: Path
) -> ibis.Table:
    t = engine.read(path)
    key_column = t[info.ref.table.primary_key]
    key = key_column.cast("string")
    # "Largest key" compares numbers as numbers: zero-pad integer keys for a text sort.
    key_sort = key.lpad(20, "0") if key_column.type().is_integer() else key
    values = {}
    for semantic in semantics:
        column = info.columns.get(semantic)
        values[column_of(semantic)] = _as_text(t[column]) if column else ibis.null().cast("string")
    if "Person.FullName" not in info.columns and any(p in info.columns for p in NAME_PARTS):
        # A table may map only one of the parts (and no table the other).
        first, last = (values.get(column_of(p), ibis.null().cast("string")) for p in NAME_PARTS)
        values["Person_FullName"] = ibis.coalesce(first + " " + last, first, last)
    filled = sum(t[c].notnull().cast("int64") for c in info.columns.values())
    ts_column = info.ref.table.timestamp_column
    return t.select(
        _rid=ibis.literal(f"{info.ref.source.name}|{info.ref.table.name}|") + key,
        _t=ibis.literal(info.index).cast("int64"),
        _key=key,
        _key_sort=key_sort,
        _ts=t[ts_column].cast("timestamp") if ts_column else ibis.null().cast("timestamp"),
        _filled=filled if info.columns else ibis.literal(0).cast("int64"),
        **values,
    )


def _as_text(column: ibis.Value) -> ibis.Value:
    # Dates as ISO text (what a user expects when comparing birth dates); blanks as NULL.
    if column.type().is_date():
        return column.strftime("%Y-%m-%d")
    # A regex, not .strip(): Ibis compiles strip() for Spark with a '\v' that Spark reads
    # as the letter v, so 'victoria' lost its first letter there.
    text = column.cast("string").re_replace(r"^\s+|\s+$", "")
    return ibis.ifelse(text == "", ibis.null().cast("string"), text)


def _derive_name_parts(
    engine: Engine, records: ibis.Table, infos: list[UnifyTableInfo]
) -> ibis.Table:
    """First and last name parsed from the full name, for tables that only have a full name."""
    full_only = [
        i.index
        for i in infos
        if "Person.FullName" in i.columns and not any(p in i.columns for p in NAME_PARTS)
    ]
    if not full_only:
        return records
    needs = records._t.isin(full_only)
    distinct = records.filter(needs & records.Person_FullName.notnull())
    values = engine.to_arrow(distinct.select("Person_FullName").distinct())["Person_FullName"]
    first, last = split_full_names(values.to_pylist())
    lookup = engine.register_arrow(
        pa.table({"_full": values, "_first": first, "_last": last}), "names"
    )
    joined = records.left_join(lookup, records.Person_FullName == lookup._full)
    return joined.mutate(
        Person_FirstName=ibis.ifelse(needs, joined._first, joined.Person_FirstName),
        Person_LastName=ibis.ifelse(needs, joined._last, joined.Person_LastName),
    ).drop("_full", "_first", "_last")


def split_full_names(names: list[str | None]) -> tuple[pa.Array, pa.Array]:
    """First and last names of full names ('Dr. Bob Smith Jr.', 'Smith, Bob')."""
    first, last = [], []
    for name in names:
        f, la = split_full_name(name) if name else (None, None)
        first.append(f)
        last.append(la)
    return pa.array(first, pa.string()), pa.array(last, pa.string())


def normalize_all(
    engine: Engine,
    prepared: Prepared,
    bypass: dict[str, set[str]],
    aliases: dict[str, list[tuple[str, str]]],
) -> ibis.Table:
    """Add one column per normalised field, through a dictionary of its distinct values."""
    records = prepared.records
    if not prepared.normalized:
        return records
    lookups = []
    for spec in prepared.normalized.values():
        raw = column_of(spec.semantic)
        values = engine.to_arrow(records.select(raw).filter(_[raw].notnull()).distinct())[raw]
        mapping = norm.build_aliases(aliases.get(spec.semantic, []), spec.steps)
        normalized = norm.normalize(values, spec.steps, aliases=mapping)
        if spec.semantic in bypass:
            # Bypass values (unknown@example.com) are never used: as if the field were empty.
            skip = {norm.normalize([v], spec.steps)[0].as_py() for v in bypass[spec.semantic]}
            skip |= set(bypass[spec.semantic])
            normalized = pa.array(
                [None if v in skip else v for v in normalized.to_pylist()], pa.string()
            )
        lookups.append((raw, spec.name, values, normalized))
    for raw, name, values, normalized in lookups:
        lookup = engine.register_arrow(pa.table({"_v": values, name: normalized}), name)
        records = records.left_join(lookup, records[raw] == lookup._v).drop("_v")
    return engine.checkpoint(records, "records_normalized")
