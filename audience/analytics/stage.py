"""The activities, measures and segments stages of a run, and reading them back later.

activities: Activity_<name>, UnifiedActivity, ActivityUnresolved (UnifiedActivity and
            ActivityUnresolved also hold the real-time activities, see audience/realtime.py)
measures:   CustomerAttributes, CustomerMeasure, Measure_<name>
segments:   SegmentMembers, SegmentMembership, SegmentHistory
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import pyarrow as pa

from audience.analytics.activities import (
    UNIFIED_COLUMNS,
    UNRESOLVED_SCHEMA,
    BuiltActivity,
    build_activity,
)
from audience.analytics.measures import MeasureBuilder, RowSources, customer_measure_table
from audience.analytics.paths import AnalyticsError, SourceTables
from audience.analytics.segments import (
    SegmentBuilder,
    membership_table,
    segment_order,
)
from audience.engine import Engine
from audience.project import Project
from audience.runs import Run, StageResult

if TYPE_CHECKING:
    from audience.pipeline import Context

HISTORY_SCHEMA = pa.schema(
    [
        ("RunId", pa.string()),
        ("AsOf", pa.timestamp("us")),
        ("Segment", pa.string()),
        ("Kind", pa.string()),
        ("Size", pa.int64()),
    ]
)


@dataclass
class RunTables:
    """What the analytics stages read from one run (the one being made, or a finished one)."""

    engine: Engine
    project: Project
    run: Run

    def read(self, name: str) -> ibis.Table:
        return self.engine.read(self.run.table_path(name))

    def has(self, name: str) -> bool:
        return name in self.run.tables

    def sources(self) -> SourceTables:
        ids = {r.label: r.id for r in self.project.table_refs()}
        return SourceTables(self.project, lambda label: self.read(ids[label]))

    def row_sources(self) -> RowSources:
        activities = {a.name: self.read(f"Activity_{a.name}") for a in self.project.activities}
        return RowSources(self.sources(), activities, self.read("AlternateKey"))

    def write_arrow(self, name: str, table: pa.Table) -> int:
        """A table made in Python (already in memory) into the run; its row count."""
        relative = f"tables/{name}.parquet"
        self.engine.write_arrow(table, self.run.path / relative)
        self.run.add_table(name, relative)
        return table.num_rows

    def write(self, name: str, table: ibis.Table) -> int:
        relative = f"tables/{name}.parquet"
        self.engine.write(table, self.run.path / relative)
        self.run.add_table(name, relative)
        return int(self.read(name).count().to_pyarrow().as_py())


# Tables of one row per customer whose columns segments can use besides the profile's.
ATTRIBUTE_TABLES = ("CustomerAttributes", "EnrichmentAttributes", "PredictionAttributes")


def attribute_parts(out: RunTables) -> list[ibis.Table]:
    """The run's tables of customer fields besides the profile (ATTRIBUTE_TABLES present)."""
    return [out.read(name) for name in ATTRIBUTE_TABLES if out.has(name)]


def customer_attributes(out: RunTables) -> ibis.Table:
    """Measures, enrichment and prediction fields: one row per customer with measures.

    Enrichments and predictions publish their own tables (a run may have none); segments see
    them as more attributes. A customer without a row in one of them gets NULLs."""
    attributes = out.read("CustomerAttributes")
    for name in ATTRIBUTE_TABLES[1:]:
        if not out.has(name):
            continue
        extra = out.read(name)
        if len(extra.columns) == 1:
            continue
        clash = sorted(set(extra.columns) & set(attributes.columns) - {"CustomerId"})
        if clash:
            raise AnalyticsError(f"{name}: fields {clash} are also measures; rename one of them")
        extra = extra.rename(_xcid="CustomerId")
        attributes = attributes.left_join(extra, attributes.CustomerId == extra._xcid).drop("_xcid")
    return attributes


def needs_unify(ctx: Context, result: StageResult, what: str) -> bool:
    if "AlternateKey" not in ctx.run.tables:
        result.status = "skipped"
        result.detail["reason"] = f"{what} need unified customers (a unify: section)"
        return False
    return True


def activities_stage(ctx: Context, result: StageResult) -> None:
    project = ctx.project
    realtime = "RealtimeActivity" in ctx.run.tables
    if not project.activities and not realtime:
        result.status = "skipped"
        result.detail["reason"] = "no activities: in the project file"
        return
    if not needs_unify(ctx, result, "activities"):
        return
    out = RunTables(ctx.engine, project, ctx.run)
    tables = out.sources()
    alternate_key = out.read("AlternateKey")
    unified, unresolved = [], []
    for i, act in enumerate(project.activities):
        built = build_activity(project, i, tables, alternate_key, ctx.as_of)
        built = BuiltActivity(act, ctx.engine.checkpoint(built.full, f"activity_{act.name}"))
        loaded = out.write(f"Activity_{act.name}", built.data())
        unified.append(built.unified())
        unresolved.append(built.unresolved())
        kept_aside = int(built.full.count().to_pyarrow().as_py()) - loaded
        result.rows[f"Activity_{act.name}"] = loaded
        result.detail[act.name] = {"type": act.type, "resolved": loaded, "unresolved": kept_aside}
        if kept_aside:
            example = built.unresolved().Reason.arbitrary().to_pyarrow().as_py()
            result.detail[act.name]["example_reason"] = example
        ctx.reporter.step_done("activities", act.name)
    if realtime:
        # Posted through the API and snapshot by the realtime stage, customers already mapped.
        posted = out.read("RealtimeActivity")
        placed = posted.filter(posted.Reason.isnull()).select(*UNIFIED_COLUMNS)
        unified.append(placed.cast(unified[0].schema()) if unified else placed)
        unresolved.append(
            posted.filter(posted.Reason.notnull()).select(
                Activity=ibis.literal("realtime"),
                SourceEntityName="SourceEntityName",
                SourceActivityId="SourceActivityId",
                Reason="Reason",
            )
        )
        result.detail["realtime"] = {"resolved": int(placed.count().to_pyarrow().as_py())}
    result.rows["UnifiedActivity"] = out.write("UnifiedActivity", ibis.union(*unified))
    result.rows["ActivityUnresolved"] = out.write(
        "ActivityUnresolved", ibis.union(*unresolved).cast(UNRESOLVED_SCHEMA)
    )


def measures_stage(ctx: Context, result: StageResult) -> None:
    project = ctx.project
    if not needs_unify(ctx, result, "measures"):
        return
    out = RunTables(ctx.engine, project, ctx.run)
    builder = MeasureBuilder(out.row_sources(), out.read("CustomerProfile"), ctx.as_of)
    measures = builder.compute()
    attributes = ctx.engine.checkpoint(measures.attributes, "attributes")
    result.rows["CustomerAttributes"] = out.write("CustomerAttributes", attributes)
    result.rows["CustomerMeasure"] = out.write(
        "CustomerMeasure", customer_measure_table(attributes)
    )
    ctx.reporter.step_done("measures", "CustomerMeasure")
    for name, table in measures.tables.items():
        result.rows[name] = out.write(name, table)
        ctx.reporter.step_done("measures", name)


def static_path(project: Project, name: str) -> Path:
    """Where a static segment's members are kept between runs."""
    return project.workspace_path / "segments" / f"{name}.parquet"


def segments_stage(ctx: Context, result: StageResult) -> None:
    project = ctx.project
    if not needs_unify(ctx, result, "segments"):
        return
    out = RunTables(ctx.engine, project, ctx.run)
    profile = out.read("CustomerProfile")
    builder = SegmentBuilder(
        out.row_sources(), profile, customer_attributes(out), ctx.as_of, parts=attribute_parts(out)
    )
    parts = []
    sizes: dict[str, int] = {}
    for i in segment_order(project.segments):
        segment = project.segments[i]
        stored = static_path(project, segment.name)
        if segment.kind == "static" and stored.exists():
            kept = ctx.engine.read(stored)
            members = kept.filter(kept.CustomerId.isin(profile.CustomerId)).select("CustomerId")
            result.detail.setdefault("static_reused", []).append(segment.name)
        else:
            members = builder.members_table(segment, f"segments[{i}]")
        members = ctx.engine.checkpoint(members, f"segment_{segment.name}")
        builder.members[segment.name] = members
        if segment.kind == "static" and not stored.exists():
            ctx.engine.write(members, stored)
        sizes[segment.name] = int(members.count().to_pyarrow().as_py())
        parts.append(members.select(Segment=ibis.literal(segment.name), CustomerId="CustomerId"))
        ctx.reporter.step_done("segments", segment.name)
    if parts:
        long = ibis.union(*parts)
    else:
        long = ibis.memtable(
            pa.table(
                {"Segment": pa.array([], pa.string()), "CustomerId": pa.array([], pa.string())}
            )
        )
    result.rows["SegmentMembers"] = out.write("SegmentMembers", long)
    result.rows["SegmentMembership"] = out.write(
        "SegmentMembership", membership_table(out.read("SegmentMembers"), project.name)
    )
    result.detail["sizes"] = sizes
    history = _history(ctx, sizes)
    result.rows["SegmentHistory"] = out.write_arrow("SegmentHistory", history)


def _history(ctx: Context, sizes: dict[str, int]) -> pa.Table:
    """Earlier runs' segment sizes (from the last good run) plus this run's."""
    from audience.pipeline import previous_table

    previous = previous_table(ctx, "SegmentHistory")
    import pyarrow.parquet as pq

    earlier = pq.read_table(previous).cast(HISTORY_SCHEMA) if previous else None
    kinds = {s.name: s.kind for s in ctx.project.segments}
    now = pa.table(
        {
            "RunId": [ctx.run.id] * len(sizes),
            "AsOf": pa.array([ctx.as_of] * len(sizes), pa.timestamp("us")),
            "Segment": list(sizes),
            "Kind": [kinds[s] for s in sizes],
            "Size": pa.array(list(sizes.values()), pa.int64()),
        },
        schema=HISTORY_SCHEMA,
    )
    return pa.concat_tables([earlier, now]) if earlier is not None else now


def run_tables(project: Project, engine: Engine, run: Run) -> RunTables:
    if "CustomerAttributes" not in run.tables:
        raise AnalyticsError(
            f"run {run.id} has no measures yet; run 'audience run' with this version first"
        )
    return RunTables(engine, project, run)


def open_segments(project: Project, engine: Engine, run: Run, as_of: datetime) -> SegmentBuilder:
    """A segment builder over a finished run, with its segments' members (for quick segments,
    overlap and refreshing static segments)."""
    out = run_tables(project, engine, run)
    builder = SegmentBuilder(
        out.row_sources(),
        out.read("CustomerProfile"),
        customer_attributes(out),
        as_of,
        parts=attribute_parts(out),
    )
    if out.has("SegmentMembers"):
        long = out.read("SegmentMembers")
        for segment in project.segments:
            builder.members[segment.name] = long.filter(long.Segment == segment.name).select(
                "CustomerId"
            )
    return builder


def refresh_static(
    project: Project, engine: Engine, names: list[str], as_of: datetime
) -> dict[str, int]:
    """Recompute static segments on the current run; the next runs publish the new members.

    Returns each refreshed segment's size."""
    from audience.runs import Workspace

    by_name = {s.name: (i, s) for i, s in enumerate(project.segments)}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise AnalyticsError(
            f"no segment {', '.join(unknown)}; segments: {', '.join(by_name) or 'none'}"
        )
    not_static = [n for n in names if by_name[n][1].kind != "static"]
    if not_static:
        raise AnalyticsError(
            f"{', '.join(not_static)}: only static segments are refreshed on demand; dynamic "
            "ones are recomputed by every run"
        )
    builder = open_segments(project, engine, Workspace(project.workspace_path).current(), as_of)
    sizes = {}
    for name in names:
        index, segment = by_name[name]
        members = builder.members_table(segment, f"segments[{index}]")
        path = static_path(project, name)
        tmp = path.with_name(f".{path.name}.new")
        engine.write(members, tmp)
        sizes[name] = int(engine.read(tmp).count().to_pyarrow().as_py())
        if path.is_dir():  # Spark writes folders, which os.replace cannot overwrite
            shutil.rmtree(path)
        os.replace(tmp, path)  # a run never reads half a refresh
    return sizes
