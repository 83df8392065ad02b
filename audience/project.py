"""The project file, `audience.yaml`: pydantic models, loading and error reporting.

The CLI, the API and the console all load and validate projects through this module, so a
project that loads here is valid everywhere. Structural checks (unknown keys, wrong types)
happen in the models; checks that need the data (does this column exist?) are in
`audience.validate`.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from audience.analytics.config import Activity, Measure, Relationship, Segment
from audience.enrich.config import Enrichment
from audience.export.config import Export
from audience.predict.config import Prediction
from audience.unify.config import UnifyConfig

PROJECT_FILE = "audience.yaml"
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"

# Types a user may force on a column. Keys are what the project file says; values are the
# DuckDB type used when landing the data.
COLUMN_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "double": "DOUBLE",
    "decimal": "DECIMAL(18,4)",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


class ProjectError(Exception):
    """A project file that cannot be used; `problems` are `path: message` lines."""

    def __init__(self, file: Path | str, problems: list[str]):
        self.file = str(file)
        self.problems = problems
        super().__init__(f"{file}:\n  " + "\n  ".join(problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ColumnType(Strict):
    """A type override; `format` is a strptime pattern for dates and timestamps in text."""

    type: Literal["string", "integer", "double", "decimal", "boolean", "date", "timestamp"]
    format: str | None = Field(None, description="strptime format, e.g. '%m/%d/%Y'")


def _coerce_column_types(value: Any) -> Any:
    # `types: {birth_date: date}` is shorthand for `{birth_date: {type: date}}`.
    if isinstance(value, dict):
        return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
    return value


class TableBase(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Table name inside its source.")
    primary_key: str = Field(description="Column that identifies a record; must be unique.")
    types: dict[str, ColumnType] = Field(
        default_factory=dict, description="Type overrides by column name."
    )
    timestamp_column: str | None = Field(
        None, description="Column with the record's last-change time (used by 'most recent')."
    )

    _coerce = field_validator("types", mode="before")(_coerce_column_types)


class FileTable(TableBase):
    path: str = Field(description="File or folder, relative to the project file.")


class CdmTable(TableBase):
    entity: str | None = Field(None, description="Entity name in the CDM folder (default: name).")


class SqlTable(TableBase):
    table: str | None = Field(None, description="Table to read, optionally 'schema.table'.")
    query: str | None = Field(None, description="SELECT to read instead of a table.")

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlTable:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


class IncrementalTable(TableBase):
    path: str = Field(
        description="Folder holding an optional full load and IncrementalData/yyyy/mm/dd/hh/."
    )


class CsvOptions(Strict):
    delimiter: str = ","
    quote: str = '"'
    escape: str | None = None
    encoding: Literal["utf-8", "utf-16", "latin-1"] = "utf-8"
    header: bool = True
    null_values: list[str] = Field(default_factory=lambda: [""])


class SourceBase(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Source name, e.g. 'crm'.")
    description: str | None = None


class CsvSource(SourceBase):
    kind: Literal["csv"]
    options: CsvOptions = Field(default_factory=CsvOptions)
    tables: list[FileTable] = Field(min_length=1)


class ParquetSource(SourceBase):
    kind: Literal["parquet"]
    tables: list[FileTable] = Field(min_length=1)


class JsonSource(SourceBase):
    kind: Literal["json"]
    format: Literal["auto", "lines", "array"] = Field(
        "auto", description="JSON Lines, one JSON array, or auto (by extension: .jsonl/.ndjson)."
    )
    tables: list[FileTable] = Field(min_length=1)


class CdmSource(SourceBase):
    kind: Literal["cdm"]
    path: str = Field(description="Folder with model.json or manifest.cdm.json.")
    tables: list[CdmTable] = Field(min_length=1)


class DeltaSource(SourceBase):
    kind: Literal["delta"]
    tables: list[FileTable] = Field(min_length=1)


class SqlSource(SourceBase):
    kind: Literal["sql"]
    url: str = Field(description="SQLAlchemy URL; put secrets in ${ENV_VARS}.")
    tables: list[SqlTable] = Field(min_length=1)


class IncrementalSource(SourceBase):
    kind: Literal["incremental"]
    format: Literal["csv", "parquet"] = "csv"
    options: CsvOptions = Field(default_factory=CsvOptions)
    tables: list[IncrementalTable] = Field(min_length=1)


Source = Annotated[
    CsvSource
    | ParquetSource
    | JsonSource
    | CdmSource
    | DeltaSource
    | SqlSource
    | IncrementalSource,
    Field(discriminator="kind"),
]
SOURCE_KINDS = ("csv", "parquet", "json", "cdm", "delta", "sql", "incremental")


class SparkOptions(Strict):
    master: str = Field("local[2]", description="Spark master URL.")
    conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark settings.")


class DuckDBOptions(Strict):
    threads: int | None = Field(None, ge=1, description="Worker threads (default: all cores).")
    memory_limit: str | None = Field(None, description="e.g. '8GB'.")


class Schedule(Strict):
    """When `audience serve` refreshes the project by itself (one run at a time)."""

    cron: str = Field(
        description="Cron expression, five fields (minute hour day month weekday) or @daily, "
        "@hourly, ...: '0 3 * * *' is every day at 03:00."
    )
    timezone: str = Field(
        "UTC", description="IANA time zone of the cron times, e.g. 'Europe/Paris'."
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        value = value.strip()
        # croniter also takes a sixth (seconds) field; a refresh every few seconds is a mistake.
        fields = len(value.split())
        if not (value.startswith("@") or fields == 5) or not croniter.is_valid(value):
            raise ValueError(
                f"not a cron expression: {value!r}; give five fields 'minute hour day month "
                "weekday' such as '0 3 * * *', or @hourly, @daily, @weekly, @monthly"
            )
        try:  # valid fields can still name a day that never comes ('0 0 30 2 *')
            croniter(value, datetime(2000, 1, 1)).get_next(datetime)
        except (ValueError, KeyError, ArithmeticError):
            raise ValueError(f"the cron expression {value!r} never fires") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Europe/Paris' or 'UTC'"
            ) from None
        return value


class Project(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    engine: Literal["duckdb", "spark"] = "duckdb"
    duckdb: DuckDBOptions = Field(default_factory=DuckDBOptions)
    spark: SparkOptions = Field(default_factory=SparkOptions)
    workspace: str = Field(".audience", description="Folder for runs, relative to the project.")
    keep_runs: int = Field(10, ge=1, description="Finished runs kept in the workspace.")
    schedule: Schedule | None = Field(
        None, description="Scheduled refresh while 'audience serve' runs (cron and time zone)."
    )
    sources: list[Source] = Field(default_factory=list)
    unify: UnifyConfig | None = Field(
        None, description="How source tables become customers: map, dedup, match, merge."
    )
    relationships: list[Relationship] = Field(
        default_factory=list, description="Links between tables, usable as paths."
    )
    activities: list[Activity] = Field(
        default_factory=list, description="Source tables whose rows are things customers did."
    )
    measures: list[Measure] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    predictions: list[Prediction] = Field(
        default_factory=list,
        description="Models trained and scored in each run: churn, lifetime value, "
        "recommendations, sentiment.",
    )
    enrichments: list[Enrichment] = Field(
        default_factory=list,
        description="Extra facts per customer: standard addresses, phones, emails, affinity, "
        "your own files.",
    )
    exports: list[Export] = Field(
        default_factory=list, description="Where results go: lake, sql, link, segment."
    )
    as_of: datetime | None = Field(
        None,
        description="Reference time (UTC) for time windows such as 'last 30 days'; "
        "default: the start of each run.",
    )

    # The folder of the project file, set by parse_project; not part of the file.
    _root: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _unique_names(self) -> Project:
        seen: dict[str, str] = {}
        for i, source in enumerate(self.sources):
            if source.name in seen:
                raise ValueError(f"sources[{i}].name: '{source.name}' is used twice")
            seen[source.name] = source.name
            table_names = [t.name for t in source.tables]
            dupes = {n for n in table_names if table_names.count(n) > 1}
            if dupes:
                raise ValueError(f"sources[{i}].tables: table names used twice: {sorted(dupes)}")
        self._check_analytics()
        self._check_insights()
        self._check_exports()
        if self.unify:
            labels = [r.label for r in self.table_refs()]
            for i, table in enumerate(self.unify.tables):
                if table.table not in labels:
                    raise ValueError(
                        f"unify.tables[{i}].table: no source table '{table.table}'; "
                        f"tables are {', '.join(labels)}"
                    )
        return self

    def _check_analytics(self) -> None:
        """Names are unique and every table, activity and segment referenced exists."""
        labels = [r.label for r in self.table_refs()]

        def table(path: str, label: str) -> None:
            if label not in labels:
                known = ", ".join(labels)
                raise ValueError(f"{path}: no source table '{label}'; tables are {known}")

        for what in ("activities", "measures", "segments", "exports"):
            names = [item.name for item in getattr(self, what)]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what}: names used twice: {dupes}")
        # A relationship's name is a path step from its table, so it is unique per table.
        steps = [(r.table, r.name) for r in self.relationships]
        dupes = sorted({f"{t}: {n}" for t, n in steps if steps.count((t, n)) > 1})
        if dupes:
            raise ValueError(f"relationships: names used twice from one table: {dupes}")
        for i, rel in enumerate(self.relationships):
            table(f"relationships[{i}].table", rel.table)
            table(f"relationships[{i}].to", rel.to)
        unified = [t.table for t in self.unify.tables] if self.unify else []
        for i, act in enumerate(self.activities):
            table(f"activities[{i}].table", act.table)
            if act.customer not in unified:
                raise ValueError(
                    f"activities[{i}].customer: '{act.customer}' is not a unified table; "
                    f"unify.tables are {', '.join(unified) or 'none'}"
                )
        activity_names = {a.name for a in self.activities} | {a.type for a in self.activities}
        for i, measure in enumerate(self.measures):
            if measure.activity and measure.activity not in activity_names:
                raise ValueError(
                    f"measures[{i}].activity: no activity or activity type '{measure.activity}'; "
                    f"known: {', '.join(sorted(activity_names)) or 'none'}"
                )
            if measure.table:
                table(f"measures[{i}].table", measure.table)

    def _check_insights(self) -> None:
        """Predictions and enrichments: unique names (they prefix profile fields) and the
        activities and tables they read exist."""
        names = [p.name for p in self.predictions] + [e.name for e in self.enrichments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"predictions and enrichments: names used twice: {dupes}")
        activity_names = {a.name for a in self.activities} | {a.type for a in self.activities}
        known = ", ".join(sorted(activity_names)) or "none"
        items = [(f"predictions[{i}]", p) for i, p in enumerate(self.predictions)]
        items += [(f"enrichments[{i}]", e) for i, e in enumerate(self.enrichments)]
        for path, item in items:
            activity = getattr(item, "activity", None)
            if activity and activity not in activity_names:
                raise ValueError(
                    f"{path}.activity: no activity or activity type '{activity}'; known: {known}"
                )
        unified = [t.table for t in self.unify.tables] if self.unify else []
        for i, item in enumerate(self.enrichments):
            keyed = item.kind == "custom" and item.match_on == "source_key"
            if keyed and item.table not in unified:
                raise ValueError(
                    f"enrichments[{i}].table: match_on source_key needs a unified table; "
                    f"unify.tables are {', '.join(unified) or 'none'}"
                )

    def _check_exports(self) -> None:
        unified = [t.table for t in self.unify.tables] if self.unify else []
        segments = [s.name for s in self.segments]
        for i, export in enumerate(self.exports):
            if export.kind == "link":
                if export.table not in unified:
                    raise ValueError(
                        f"exports[{i}].table: '{export.table}' is not a unified table; "
                        f"unify.tables are {', '.join(unified) or 'none'}"
                    )
                source = self.table_ref(export.table).source
                if source.kind == "sql" and not source.url.startswith(("postgresql", "sqlite")):
                    raise ValueError(
                        f"exports[{i}].table: links are written to PostgreSQL and SQLite; "
                        f"'{export.table}' is read from {source.url.split(':')[0]}"
                    )
                if source.kind != "sql":
                    raise ValueError(
                        f"exports[{i}].table: '{export.table}' is read from {source.kind}, "
                        "not a SQL database: there is nowhere to write links back"
                    )
            if export.kind == "segment" and export.segment not in segments:
                raise ValueError(
                    f"exports[{i}].segment: no segment '{export.segment}'; segments are "
                    f"{', '.join(segments) or 'none'}"
                )

    def table_refs(self) -> list[TableRef]:
        """Every source table, in project order."""
        return [TableRef(s, t) for s in self.sources for t in s.tables]

    def find_tables(self, selector: str) -> list[TableRef]:
        """Tables named by 'source' or 'source.table' (or the table id 'source_table')."""
        refs = [
            r
            for r in self.table_refs()
            if selector in (r.source.name, f"{r.source.name}.{r.table.name}", r.id)
        ]
        if not refs:
            known = ", ".join(f"{r.source.name}.{r.table.name}" for r in self.table_refs())
            raise KeyError(f"no source or table '{selector}'; known tables: {known or 'none'}")
        return refs

    @property
    def root(self) -> Path:
        return self._root

    def table_ref(self, label: str) -> TableRef:
        """The source table named 'source.table'."""
        for ref in self.table_refs():
            if ref.label == label:
                return ref
        raise KeyError(f"no source table '{label}'")

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else (self.root / p)

    @property
    def workspace_path(self) -> Path:
        return self.resolve(self.workspace)


class TableRef:
    """A source table with its source: what connectors and stages are handed."""

    def __init__(self, source: Any, table: Any):
        self.source = source
        self.table = table

    @property
    def id(self) -> str:
        """Name of the landed table in a run: '<source>_<table>'."""
        return f"{self.source.name}_{self.table.name}"

    @property
    def label(self) -> str:
        return f"{self.source.name}.{self.table.name}"

    def config_path(self, project: Project) -> str:
        si = project.sources.index(self.source)
        ti = self.source.tables.index(self.table)
        return f"sources[{si}].tables[{ti}]"

    def __repr__(self) -> str:
        return f"TableRef({self.label})"


_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate_env(value: Any, path: str = "", problems: list[str] | None = None) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; unknown variables are problems."""
    problems = problems if problems is not None else []
    if isinstance(value, dict):
        return {k: interpolate_env(v, _join(path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, _join(path, i), problems) for i, v in enumerate(value)]
    if isinstance(value, str):

        def replace(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable ${{{name}}} is not set")
            return m.group(0)

        return _ENV_PATTERN.sub(replace, value)
    return value


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def format_loc(loc: tuple[Any, ...]) -> str:
    """('sources', 0, 'csv', 'tables', 1, 'name') -> 'sources[0].tables[1].name'."""
    out = ""
    prev: Any = None
    for part in loc:
        # A discriminated union adds the tag ('csv') after the list index: not a real key.
        if isinstance(prev, int) and part in SOURCE_KINDS:
            prev = part
            continue
        out = _join(out, part)
        prev = part
    return out


def _line_of(raw: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node of `loc` in the ruamel document, if known."""
    node, line = raw, None
    for part in loc:
        try:
            lc = node.lc
            if isinstance(part, int) and isinstance(node, list) and part < len(node):
                line = lc.item(part)[0] + 1
                node = node[part]
            elif isinstance(part, str) and isinstance(node, dict) and part in node:
                line = lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(part, str) and part in SOURCE_KINDS:
                continue
            else:
                break
        except (AttributeError, KeyError, IndexError, TypeError):
            break
    return line


def read_yaml(path: Path) -> Any:
    yaml = YAML(typ="rt")
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.load(f)
    except FileNotFoundError:
        raise ProjectError(path, [f"project file not found: {path}"]) from None
    except YAMLError as e:
        raise ProjectError(path, [f"not valid YAML: {e}"]) from None


def parse_project(raw: Any, file: Path | str = PROJECT_FILE, root: Path | None = None) -> Project:
    """Build a Project from parsed YAML/JSON data, with config-path error messages."""
    if not isinstance(raw, dict):
        raise ProjectError(file, ["the project file must be a mapping (name:, sources:, ...)"])
    problems: list[str] = []
    data = interpolate_env(_plain(raw), "", problems)
    if problems:
        raise ProjectError(file, problems)
    try:
        project = Project.model_validate(data)
    except ValidationError as e:
        raise ProjectError(file, [_describe_error(err, raw) for err in e.errors()]) from None
    project._root = (root or Path(file).parent).resolve()
    return project


def _describe_error(err: Any, raw: Any) -> str:
    loc = tuple(err["loc"])
    where = format_loc(loc) or "(top level)"
    line = _line_of(raw, loc)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; see audience.schema.json for the keys allowed)"
    elif err["type"] == "union_tag_invalid":
        msg = f"unknown source kind; expected one of {', '.join(SOURCE_KINDS)}"
    elif err["type"] == "union_tag_not_found":
        msg = f"missing 'kind'; expected one of {', '.join(SOURCE_KINDS)}"
    elif err["type"] == "literal_error":
        msg = f"{msg}, got {err.get('input')!r}"
    return f"{where}: {msg}" + (f" (line {line})" if line else "")


def _plain(value: Any) -> Any:
    """ruamel's commented containers -> plain dicts and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_project(path: str | Path = PROJECT_FILE) -> Project:
    """Load and structurally validate a project file; raises ProjectError."""
    path = Path(path)
    if path.is_dir():
        path = path / PROJECT_FILE
    return parse_project(read_yaml(path), path, path.parent)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the project file (committed as audience/schema/audience.schema.json)."""
    schema = Project.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Audience project file (audience.yaml)"
    return schema


SCHEMA_PATH = Path(__file__).parent / "schema" / "audience.schema.json"
