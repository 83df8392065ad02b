"""CDM folder connector: entities of a `model.json` or `manifest.cdm.json` folder.

Both Common Data Model metadata formats are read:
- `model.json`: `entities[]` (`$type: LocalEntity`, `name`, `attributes[]` with `dataType`,
  `partitions[]` with `location` and `fileFormatSettings`);
- `manifest.cdm.json` (and `subManifests`): `entities[]` (`type: LocalEntity`, `entityName`,
  `entityPath` = `<schema document>/<entity>`, `dataPartitions[]` and
  `dataPartitionPatterns[]`); the schema document's `definitions[].hasAttributes[]` give the
  attribute names and `dataFormat`s.

Partitions are CSV or Parquet (the `is.partition.format.*` trait, `fileFormatSettings`, or
the `.parquet` extension); CSV without a `columnHeaders` setting has no header row, as CDM
exports write them. Headerless CSV columns are the attributes in declared order; a
partition with fewer columns than attributes was written before the trailing attributes
were added, so those are NULL. Values are cast to the declared types here, because the
metadata is the contract: a value that does not fit sends its row to quarantine, naming the
column and the declared type. (Landing still infers a type for text columns, so a String
attribute that holds only numbers lands as a number unless the table's `types` says
`string`.)

Locations are mapped to the local copy of the folder:
- a relative location (or corpus path `local:/a/b.csv`, `/a/b.csv`) is relative to the
  metadata file's folder;
- an absolute URL (`https://account.dfs.core.windows.net/container/folder/a/b.csv`,
  `abfss://...`, `adls:/...`) keeps its trailing path components: the longest suffix of
  its path that exists under the metadata file's folder is used (`folder/a/b.csv`, then
  `a/b.csv`, then `b.csv`), so a lake folder copied anywhere keeps working.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import duckdb

from audience.ingest.files import read_csv_files
from audience.ingest.landing import RawRead, SourceError, quarantine_record, quote, sql_str
from audience.project import CsvOptions, Project, TableRef

log = logging.getLogger(__name__)

METADATA_FILES = ("manifest.cdm.json", "model.json")
GUID = "GUID"  # kept as text, but checked to be a GUID
# CDM dataFormat (manifest) and dataType (model.json, CDM type names), lower case -> DuckDB.
# Unknown semantic types (email, name, ...) are text.
CDM_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "char": "VARCHAR",
    "json": "VARCHAR",
    "byte": "SMALLINT",
    "int16": "SMALLINT",
    "smallinteger": "SMALLINT",
    "int32": "INTEGER",
    "integer": "INTEGER",
    "int64": "BIGINT",
    "biginteger": "BIGINT",
    "float": "DOUBLE",
    "double": "DOUBLE",
    # Dataverse decimals carry up to 10 places: a narrower scale would round silently.
    "decimal": "DECIMAL(38,10)",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "time": "TIME",
    "datetime": "TIMESTAMP",
    "datetimeoffset": "TIMESTAMPTZ",
    "guid": GUID,
    "entityid": GUID,
}
# A text timestamp that ends with a UTC offset ('Z', '+02:00').
_OFFSET_RE = r"\d:\d{2}(:\d{2}(\.\d+)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"


@dataclass
class Attribute:
    name: str
    declared: str  # the type as written in the metadata, for messages

    @property
    def duck_type(self) -> str:
        return CDM_TYPES.get(self.declared.lower(), "VARCHAR")


@dataclass
class Partition:
    path: Path
    format: str  # csv | parquet
    options: CsvOptions = field(default_factory=lambda: CsvOptions(header=False))


@dataclass
class Entity:
    name: str
    metadata: Path  # model.json or the manifest that declares the entity
    attributes: list[Attribute]
    partitions: list[Partition]


def describe(ref: TableRef, project: Project, config_path: str) -> list[str]:
    """The declared attribute names of the entity."""
    return [a.name for a in load_entity(ref, project, config_path).attributes]


def read(
    con: duckdb.DuckDBPyConnection, ref: TableRef, project: Project, config_path: str
) -> RawRead:
    entity = load_entity(ref, project, config_path)
    columns = ", ".join(f"{quote(a.name)} {_output_type(a)}" for a in entity.attributes)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _raw (_row BIGINT, _file VARCHAR, {columns})")
    rejects: list[dict[str, Any]] = []
    try:
        for partition in entity.partitions:
            rejects += _load_partition(con, entity, partition, project, config_path)
    finally:
        con.execute("DROP TABLE IF EXISTS _cdm_part")
    return RawRead("_raw", _relative(entity.metadata, project), rejects, infer_types=False)


def utc_timestamp_sql(text: str) -> str:
    """Text -> TIMESTAMP in UTC: a value with an offset is converted, one without is UTC.

    A plain cast to TIMESTAMP drops the offset ('10:00+02:00' -> 10:00), and a cast to
    TIMESTAMPTZ reads offset-less text in the session time zone; this does neither.
    """
    return (
        f"CASE WHEN regexp_matches({text}, {sql_str(_OFFSET_RE)}) "
        f"THEN timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) "
        f"ELSE TRY_CAST({text} AS TIMESTAMP) END"
    )


def _output_type(attribute: Attribute) -> str:
    return "VARCHAR" if attribute.duck_type == GUID else attribute.duck_type


def convert_sql(column: str, current: str, target: str) -> str:
    """The value of `column` (DuckDB type `current`) as `target`; NULL when it does not fit."""
    if target == GUID:
        if current == "VARCHAR":
            return f"CASE WHEN TRY_CAST({column} AS UUID) IS NOT NULL THEN {column} END"
        return f"CAST({column} AS VARCHAR)"
    if current == target:
        return column
    if target == "TIMESTAMP" and current == "VARCHAR":
        return utc_timestamp_sql(column)
    if target == "TIMESTAMP" and current == "TIMESTAMP WITH TIME ZONE":
        return f"timezone('UTC', {column})"
    return f"TRY_CAST({column} AS {target})"


# ---- loading partitions ------------------------------------------------------------------


def _load_partition(
    con: duckdb.DuckDBPyConnection,
    entity: Entity,
    partition: Partition,
    project: Project,
    config_path: str,
) -> list[dict[str, Any]]:
    """Append one partition's rows, typed, to `_raw`; returns its quarantine records."""
    rel = _relative(partition.path, project)
    where = f"{_source_path(config_path)}.path: partition {rel}"
    rejects: list[dict[str, Any]] = []
    if partition.format == "parquet":
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _cdm_part AS SELECT file_row_number + 1 AS _row, "
                f"* EXCLUDE (file_row_number) FROM read_parquet("
                f"{sql_str(str(partition.path))}, file_row_number=true)"
            )
        except duckdb.Error as e:
            raise SourceError(f"{where}: cannot read Parquet: {e}") from None
    elif partition.path.stat().st_size == 0:
        return []  # an empty partition file: an entity with no rows yet in this part
    else:
        rejects = read_csv_files(con, str(partition.path), partition.options, "_cdm_part", where)
    schema = {r[0]: r[1] for r in con.sql("DESCRIBE _cdm_part").fetchall() if r[0] != "_row"}
    sources = _match_columns(entity, partition, list(schema), where)
    positional = dict(zip(schema, (a.name for a in entity.attributes), strict=False))
    for reject in rejects:
        reject["file"] = rel
        # Headerless files have DuckDB's column0.. names: report the attribute instead.
        if reject.get("column") in positional and not partition.options.header:
            reject["column"] = positional[reject["column"]]

    values, checks, reasons, names = [], [], [], []
    for attribute, source in zip(entity.attributes, sources, strict=True):
        if source is None:
            values.append(f"CAST(NULL AS {_output_type(attribute)})")
            continue
        src = quote(source)
        value = convert_sql(src, schema[source], attribute.duck_type)
        values.append(value)
        if value == src:
            continue
        check = f"({src} IS NOT NULL AND ({value}) IS NULL)"
        checks.append(check)
        reasons.append(
            f"CASE WHEN {check} THEN {sql_str(attribute.name + ': ' + chr(39))} || "
            f"CAST({src} AS VARCHAR) || {sql_str(chr(39) + ' is not ' + _a(attribute.declared))} "
            f"|| {sql_str(' as declared in ' + entity.metadata.name)} END"
        )
        names.append(f"CASE WHEN {check} THEN {sql_str(attribute.name)} END")

    any_bad = " OR ".join(checks) if checks else "false"
    if checks:
        record = ", ".join(
            f"{sql_str(a.name)}: CAST({quote(s)} AS VARCHAR)"
            for a, s in zip(entity.attributes, sources, strict=True)
            if s is not None
        )
        bad_rows = con.execute(
            f"SELECT _row, concat_ws('; ', {', '.join(reasons)}), coalesce({', '.join(names)}), "
            f"CAST(to_json({{{record}}}) AS VARCHAR) FROM _cdm_part WHERE {any_bad} ORDER BY _row"
        ).fetchall()
        rejects += [
            quarantine_record(reason, row=row, column=column, raw=raw, file=rel)
            for row, reason, column, raw in bad_rows
        ]
    con.execute(
        f"INSERT INTO _raw SELECT _row, {sql_str(rel)}, {', '.join(values)} "
        f"FROM _cdm_part WHERE NOT ({any_bad}) ORDER BY _row"
    )
    return rejects


def _match_columns(
    entity: Entity, partition: Partition, columns: list[str], where: str
) -> list[str | None]:
    """The partition column holding each attribute (None: NULL, added after the file)."""
    attributes = entity.attributes
    if partition.format == "csv" and not partition.options.header:
        if len(columns) > len(attributes):
            raise SourceError(
                f"{where}: has {len(columns)} columns but {entity.metadata.name} declares "
                f"{len(attributes)} attributes for {entity.name}"
            )
        return [columns[i] if i < len(columns) else None for i in range(len(attributes))]
    by_name = {c.lower(): c for c in columns}
    missing = [a.name for a in attributes if a.name.lower() not in by_name]
    if missing:
        raise SourceError(
            f"{where}: no column for attribute(s) {', '.join(missing)} of {entity.name}; "
            f"columns are {', '.join(columns)}"
        )
    extra = set(by_name) - {a.name.lower() for a in attributes}
    if extra:
        log.warning(
            "%s: columns not declared in %s ignored: %s",
            where,
            entity.metadata.name,
            ", ".join(sorted(by_name[e] for e in extra)),
        )
    return [by_name[a.name.lower()] for a in attributes]


# ---- metadata ----------------------------------------------------------------------------


def load_entity(ref: TableRef, project: Project, config_path: str) -> Entity:
    """The entity a CDM table reads: attributes and local partition files."""
    metadata = _metadata_file(ref, project, config_path)
    name = ref.table.entity or ref.table.name
    key = f"{config_path}.{'entity' if ref.table.entity else 'name'}"
    if metadata.name == "model.json":
        entity = _model_json_entity(metadata, name, key, config_path)
    else:
        entity = _manifest_entity(metadata, name, key, config_path)
    if not entity.attributes:
        raise SourceError(f"{key}: entity '{name}' declares no attributes in {metadata.name}")
    return entity


def _source_path(config_path: str) -> str:
    """'sources[2].tables[0]' -> 'sources[2]': the folder is the source's, not the table's."""
    return config_path.rsplit(".tables[", 1)[0]


def _metadata_file(ref: TableRef, project: Project, config_path: str) -> Path:
    where = f"{_source_path(config_path)}.path"
    path = project.resolve(ref.source.path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise SourceError(f"{where}: folder not found: {ref.source.path} (looked at {path})")
    for name in METADATA_FILES:
        if (path / name).is_file():
            return path / name
    manifests = sorted(path.glob("*.manifest.cdm.json"))
    if len(manifests) == 1:
        return manifests[0]
    if manifests:
        names = ", ".join(m.name for m in manifests)
        raise SourceError(f"{where}: several manifests in {ref.source.path} ({names}); name one")
    raise SourceError(f"{where}: no model.json or manifest.cdm.json in {ref.source.path}")


def _load_json(path: Path, where: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise SourceError(f"{where}: file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise SourceError(
            f"{where}: {path.name} is not valid JSON: {e.msg} at line {e.lineno}"
        ) from None
    if not isinstance(data, dict):
        raise SourceError(f"{where}: {path.name} must hold a JSON object")
    return data


def _model_json_entity(metadata: Path, name: str, key: str, config_path: str) -> Entity:
    where = f"{_source_path(config_path)}.path"
    doc = _load_json(metadata, where)
    entities = [e for e in doc.get("entities") or [] if isinstance(e, dict)]
    found = next((e for e in entities if e.get("name") == name), None)
    if found is None:
        known = ", ".join(str(e.get("name")) for e in entities) or "none"
        raise SourceError(f"{key}: entity '{name}' not in model.json; entities are {known}")
    if found.get("$type", "LocalEntity") != "LocalEntity":
        raise SourceError(
            f"{key}: entity '{name}' is a {found.get('$type')} in model.json; only "
            "LocalEntity is read (point the source at the folder that holds its data)"
        )
    attributes = [
        Attribute(str(a["name"]), str(a.get("dataType") or "string"))
        for a in found.get("attributes") or []
        if isinstance(a, dict) and a.get("name")
    ]
    partitions = []
    for i, p in enumerate(found.get("partitions") or []):
        location = p.get("location")
        if not location:
            raise SourceError(f"{where}: model.json entity {name} partitions[{i}] has no location")
        path = _local_path(location, metadata.parent, where)
        settings = p.get("fileFormatSettings") or {}
        fmt = "parquet" if path.suffix.lower() == ".parquet" else "csv"
        if "parquet" in str(settings.get("$type", "")).lower():
            fmt = "parquet"
        options = CsvOptions(
            header=_truthy(settings.get("columnHeaders", False)),
            delimiter=settings.get("delimiter") or ",",
            quote="" if str(settings.get("quoteStyle", "")).endswith("None") else '"',
            encoding=_encoding(settings.get("encoding"), where),
        )
        partitions.append(Partition(path, fmt, options))
    return Entity(name, metadata, attributes, partitions)


def _manifest_entity(metadata: Path, name: str, key: str, config_path: str) -> Entity:
    where = f"{_source_path(config_path)}.path"
    found, manifest, known = _find_manifest_entity(metadata, name, where, set())
    if found is None:
        raise SourceError(
            f"{key}: entity '{name}' not in {metadata.name}; entities are "
            f"{', '.join(known) or 'none'}"
        )
    if found.get("type", "LocalEntity") != "LocalEntity":
        raise SourceError(
            f"{key}: entity '{name}' is a {found.get('type')} in {manifest.name}; only "
            "LocalEntity is read (point the source at the manifest that holds its data)"
        )
    document, _, definition = str(found.get("entityPath", "")).rpartition("/")
    if not document:
        raise SourceError(f"{where}: entity {name} in {manifest.name} has no entityPath")
    schema_file = _local_path(document, manifest.parent, where)
    definitions = _load_json(schema_file, where).get("definitions") or []
    entity_def = next(
        (d for d in definitions if isinstance(d, dict) and d.get("entityName") == definition),
        None,
    )
    if entity_def is None:
        raise SourceError(f"{where}: {schema_file.name} has no definition of entity {definition}")
    attributes = [
        Attribute(str(a["name"]), _declared_type(a))
        for a in _flat_attributes(entity_def.get("hasAttributes") or [], where)
    ]
    partitions = []
    for p in found.get("dataPartitions") or []:
        path = _local_path(str(p.get("location", "")), manifest.parent, where)
        partitions.append(_manifest_partition(path, p.get("exhibitsTraits"), where))
    seen = {p.path for p in partitions}
    for pattern in found.get("dataPartitionPatterns") or []:
        for path in _pattern_files(pattern, manifest.parent, where):
            if path not in seen:
                seen.add(path)
                partitions.append(_manifest_partition(path, pattern.get("exhibitsTraits"), where))
    return Entity(name, manifest, attributes, partitions)


def _find_manifest_entity(
    manifest: Path, name: str, where: str, visited: set[Path]
) -> tuple[dict[str, Any] | None, Path, list[str]]:
    """The entity declaration in the manifest or its subManifests, and the manifest."""
    visited.add(manifest.resolve())
    doc = _load_json(manifest, where)
    entities = [e for e in doc.get("entities") or [] if isinstance(e, dict)]
    known = [str(e.get("entityName")) for e in entities]
    for e in entities:
        if e.get("entityName") == name:
            return e, manifest, known
    for sub in doc.get("subManifests") or []:
        sub_path = _local_path(str(sub.get("definition", "")), manifest.parent, where)
        if sub_path.resolve() in visited:
            continue
        found, where_found, sub_known = _find_manifest_entity(sub_path, name, where, visited)
        known += sub_known
        if found is not None:
            return found, where_found, known
    return None, manifest, known


def _flat_attributes(items: list[Any], where: str) -> list[dict[str, Any]]:
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("name"):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("attributeGroupReference"), dict):
            out += _flat_attributes(item["attributeGroupReference"].get("members") or [], where)
        else:
            # Skipping it would shift every headerless column after it: refuse instead.
            raise SourceError(f"{where}: attribute form not supported: {json.dumps(item)[:200]}")
    return out


def _declared_type(attribute: dict[str, Any]) -> str:
    if attribute.get("dataFormat"):
        return str(attribute["dataFormat"])
    data_type = attribute.get("dataType")
    if isinstance(data_type, dict):
        data_type = data_type.get("dataTypeReference")
    return str(data_type or "String")


def _manifest_partition(path: Path, traits: Any, where: str) -> Partition:
    fmt = "parquet" if path.suffix.lower() == ".parquet" else "csv"
    options = CsvOptions(header=False)
    for trait in traits or []:
        name = trait if isinstance(trait, str) else trait.get("traitReference", "")
        name = str(name).lower()
        args = {}
        if isinstance(trait, dict):
            args = {
                a.get("name"): a.get("value")
                for a in trait.get("arguments") or []
                if isinstance(a, dict)
            }
        if name == "is.partition.format.parquet":
            fmt = "parquet"
        elif name == "is.partition.format.csv":
            fmt = "csv"
            options = CsvOptions(
                header=_truthy(args.get("columnHeaders", False)),
                delimiter=args.get("delimiter") or ",",
                quote='"' if args.get("quote") is None else str(args["quote"]),
                encoding=_encoding(args.get("encoding"), where),
            )
    return Partition(path, fmt, options)


def _pattern_files(pattern: dict[str, Any], base: Path, where: str) -> list[Path]:
    """Files under rootLocation matching globPattern or regularExpression, sorted.

    Paths are matched as '/relative/path' from the root. A glob that starts with '/' is
    anchored at the root; one that does not may match at any depth ('*.csv').
    """
    root = _local_path(str(pattern.get("rootLocation") or "."), base, where)
    if not root.is_dir():
        return []
    expression = pattern.get("regularExpression")
    try:
        regex = re.compile(expression or _glob_regex(str(pattern.get("globPattern") or "*")))
    except re.error as e:
        raise SourceError(f"{where}: partition pattern {expression!r} is not valid: {e}") from None
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = "/" + path.relative_to(root).as_posix()
        if not path.name.startswith((".", "_")) and regex.fullmatch(rel):
            files.append(path)
    return files


def _glob_regex(glob: str) -> str:
    anchored = glob.startswith("/")
    out = "/" if anchored else "(/.*)?/"
    body, i = glob.lstrip("/"), 0
    while i < len(body):
        if body.startswith("**/", i):  # any folders, or none
            out, i = out + "(.*/)?", i + 3
        elif body.startswith("**", i):
            out, i = out + ".*", i + 2
        elif body[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif body[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(body[i]), i + 1
    return out


def _local_path(location: str, base: Path, where: str) -> Path:
    """A partition or document location mapped under `base` (see the module docstring)."""
    if "://" in location:
        parts = [unquote(p) for p in urlparse(location).path.split("/") if p]
    elif re.match(r"^[A-Za-z][\w.+-]+:", location):  # a corpus path: 'local:/a/b.csv'
        parts = [p for p in location.split(":", 1)[1].split("/") if p]
    else:
        parts = [p for p in location.split("/") if p]
        direct = base.joinpath(*parts)
        if direct.exists():
            return direct
        if not location.startswith("/"):
            raise SourceError(f"{where}: location {location} not found (looked at {direct})")
    # Longest trailing part first: 'folder/a/b.csv' is more specific than 'b.csv'.
    for i in range(len(parts)):
        candidate = base.joinpath(*parts[i:])
        if candidate.exists():
            return candidate
    raise SourceError(
        f"{where}: location {location} not found under {base} (no trailing part of its path "
        "exists there)"
    )


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _relative(path: Path, project: Project) -> str:
    return Path(os.path.relpath(path, project.root)).as_posix()


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def _encoding(value: Any, where: str) -> Any:
    text = str(value or "utf-8").lower().replace("_", "-")
    if text in ("utf-8", "utf8", "utf-8-sig"):
        return "utf-8"
    if text.startswith(("utf-16", "utf16", "unicode")):
        return "utf-16"
    if text in ("latin-1", "latin1", "iso-8859-1"):
        return "latin-1"
    # Reading it as UTF-8 would garble the text without an error: refuse instead.
    raise SourceError(f"{where}: encoding {value} not supported (utf-8, utf-16, latin-1)")
