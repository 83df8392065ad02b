"""Exports: a run's results to a data lake, a SQL database, back to source apps, and segment
members to files, tables or HTTP endpoints. The config models are in `config.py`; each kind has
its module with one entry point `(project, run, config) -> summary dict`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the project module imports export.config, so no imports of it here
    from audience.export.config import Export
    from audience.pipeline import Context
    from audience.project import Project
    from audience.runs import Run, StageResult


class ExportError(Exception):
    """An export that cannot be done; the message names the export and what failed."""


def run_export(project: Project, run: Run, export: Export) -> dict[str, Any]:
    """Carry out one export of `run`; returns what was written, for run_results.json."""
    if export.kind == "lake":
        from audience.export.lake import export_lake

        return export_lake(project, run, export)
    if export.kind == "sql":
        from audience.export.sqldb import export_sql

        return export_sql(project, run, export)
    if export.kind == "link":
        from audience.export.links import write_links

        return write_links(project, run, export)
    from audience.export.segments import export_segment

    return export_segment(project, run, export)


def exports_stage(ctx: Context, result: StageResult) -> None:
    """Every `when: run` export, in project order; the first failure fails the run, so the
    last good run stays current."""
    due = [e for e in ctx.project.exports if e.when == "run"]
    if not due:
        result.status = "skipped"
        result.detail["reason"] = "no exports with when: run"
        return
    for export in due:
        try:
            result.detail[export.name] = run_export(ctx.project, ctx.run, export)
        except ExportError as e:
            # What was delivered before the failure goes into run_results.json too.
            if getattr(e, "report", None) is not None:
                result.detail[export.name] = e.report
            raise
        ctx.reporter.step_done("exports", export.name)
