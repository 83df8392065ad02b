"""Links back to the apps: each record of a unified source table read from a SQL database gets
its CustomerId written into that database, taken from the run's AlternateKey (the rows of this
source and table: AlternateValue is the record's key as text).

- mode `link_table` (default): `<table>_customer_link(source_key TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL, updated_at TIMESTAMP)` beside the source table (same database and
  schema; for a `query:` table, named after the project's table in the default schema),
  replaced atomically like the SQL export's tables. The app's own table is not touched.
- mode `column`: one UPDATE of the source table sets the column (added as TEXT if missing) to
  each record's CustomerId and to NULL for records in no customer (quarantined, or added since
  the run), in one transaction; only rows whose value changes are written. A `query:` has no
  table to update, so only `table:` sources can use it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from audience.export import ExportError
from audience.export.sqldb import DRIVER_ERRORS, TableLoad, connect, reason
from audience.runs import RunError

if TYPE_CHECKING:
    from audience.export.config import LinkExport
    from audience.project import Project
    from audience.runs import Run

LINK_SUFFIX = "_customer_link"


def write_links(project: Project, run: Run, config: LinkExport) -> dict[str, Any]:
    """Write the run's CustomerId of every record of `config.table` back to its database."""
    where = f"exports.{config.name}"
    try:
        ref = project.table_ref(config.table)
    except KeyError as e:
        raise ExportError(f"{where}.table: {e.args[0]}") from None
    source, table = ref.source, ref.table
    if source.kind != "sql":
        raise ExportError(
            f"{where}.table: '{config.table}' is read from {source.kind}, not a SQL database"
        )
    if config.mode == "column" and not table.table:
        raise ExportError(
            f"{where}.mode: 'column' needs a table to update, but '{config.table}' is read "
            "with a query; use mode: link_table (a link table beside it) instead"
        )
    links = _links(run, source.name, table.name, where)
    if table.table:
        schema, _, name = table.table.rpartition(".")
    else:
        schema, name = "", table.name
    db = connect(
        source.url,
        project,
        where,
        create=False,
        url_where=f"{where}: source {source.name}'s url",
    )
    try:
        if config.mode == "link_table":
            link = name + LINK_SUFFIX
            now = pa.scalar(datetime.now(UTC).replace(tzinfo=None), pa.timestamp("us"))
            rows = links.append_column("updated_at", pa.repeat(now, links.num_rows))
            load = TableLoad(
                name=link,
                schema=schema or None,
                data=ds.dataset(rows),
                key="source_key",
                not_null=("customer_id",),
                indexes=("customer_id",),
            )
            (count,) = db.replace([load])
            return {"table": load.shown, "mode": config.mode, "rows": count}
        shown = table.table
        try:
            changed, linked = db.update_column(
                schema or None, name, table.primary_key, config.column, links
            )
        except DRIVER_ERRORS as e:
            raise ExportError(
                f"{where}: setting {shown}.{config.column}: {reason(e)}; the table is unchanged"
            ) from None
        return {"table": shown, "mode": config.mode, "rows": linked, "changed": changed}
    finally:
        db.close()


def _links(run: Run, source: str, table: str, where: str) -> pa.Table:
    """(source_key, customer_id) of the table's records, from the run's AlternateKey."""
    try:
        path = run.table_path("AlternateKey")
    except RunError as e:
        raise ExportError(f"{where}: {e}") from None
    keys = ds.dataset(path, format="parquet").to_table(
        columns=["AlternateValue", "CustomerId"],
        filter=(pc.field("DataSourceName") == source) & (pc.field("EntityName") == table),
    )
    return pa.table(
        {
            "source_key": keys["AlternateValue"].cast(pa.string()),
            "customer_id": keys["CustomerId"].cast(pa.string()),
        }
    )
