"""The `exports:` section of the project file: where a run's results go.

    - kind: lake       a CDM folder (default.manifest.cdm.json + Parquet or CSV partitions)
    - kind: sql        tables in a SQL database (PostgreSQL, SQLite, DuckDB), replaced atomically
    - kind: link       CustomerId written back into the database a source table came from
    - kind: segment    a segment's members (full list or changes) to a file, a table or HTTP

Every export runs at the end of each run (`when: run`, the default) or only on demand
(`when: manual`, with `audience export-run NAME`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME = r"^[A-Za-z][A-Za-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ExportBase(Strict):
    name: str = Field(pattern=NAME, description="Names the export in commands and run results.")
    when: Literal["run", "manual"] = Field(
        "run", description="run: after every successful run; manual: only when asked."
    )


class LakeExport(ExportBase):
    kind: Literal["lake"]
    path: str = Field(description="Folder of the CDM export (created), relative to the project.")
    format: Literal["parquet", "csv"] = "parquet"
    max_partition_mb: int = Field(
        256, ge=1, description="A table larger than this is split into several partitions."
    )
    tables: list[str] | None = Field(
        None, description="Output tables to export (default: every published output table)."
    )


class SqlExport(ExportBase):
    kind: Literal["sql"]
    url: str = Field(
        description="SQLAlchemy URL: postgresql+psycopg://..., sqlite:///out.db, duckdb:///out.db"
    )
    db_schema: str | None = Field(None, description="Database schema for the tables.")
    prefix: str = Field("", description="Prefix for table names, e.g. 'audience_'.")
    tables: list[str] | None = Field(
        None, description="Output tables to export (default: every published output table)."
    )


class LinkExport(ExportBase):
    kind: Literal["link"]
    table: str = Field(description="A unified source table read from a SQL database.")
    mode: Literal["link_table", "column"] = Field(
        "link_table",
        description="link_table: <table>_customer_link(source_key, customer_id) beside the "
        "table; column: set a CustomerId column of the table itself.",
    )
    column: str = Field("CustomerId", description="The column set when mode is 'column'.")


class FileTarget(Strict):
    path: str = Field(description="A .csv or .parquet file, relative to the project.")


class SqlTarget(Strict):
    url: str
    table: str
    db_schema: str | None = None


class HttpTarget(Strict):
    url: str = Field(description="Receives POSTs of JSON batches.")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization.")
    batch_size: int = Field(500, ge=1)
    retries: int = Field(5, ge=0, description="Retries per batch, with exponential backoff.")
    timeout_s: float = Field(30, gt=0)


class SegmentExport(ExportBase):
    kind: Literal["segment"]
    segment: str
    fields: list[str] = Field(
        default_factory=list, description="Profile fields and measures sent with each member."
    )
    mode: Literal["full", "changes"] = Field(
        "full",
        description="full: every member; changes: who entered and who left since the last "
        "export (a 'change' column says which).",
    )
    file: FileTarget | None = None
    sql: SqlTarget | None = None
    http: HttpTarget | None = None

    @model_validator(mode="after")
    def _one_target(self) -> SegmentExport:
        targets = [t for t in ("file", "sql", "http") if getattr(self, t) is not None]
        if len(targets) != 1:
            raise ValueError(f"give exactly one target: file, sql or http; got {targets or 'none'}")
        return self


Export = Annotated[LakeExport | SqlExport | LinkExport | SegmentExport, Field(discriminator="kind")]
