"""The stage DAG and the run that executes it.

Each stage is a function `(context) -> StageResult details`; `needs` names the stages whose
tables it reads. Stages run in dependency order; a stage that raises fails the run, and the
run folder keeps what was written so far for diagnosis, but the "current" pointer still names
the last good run.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from audience.engine import Engine
from audience.ingest import LandedTable, ingest_table, landing_connection
from audience.profile import PROFILE_SCHEMA, profile_table
from audience.project import Project, TableRef
from audience.runs import Run, RunError, StageResult, Workspace


class Reporter(Protocol):
    """What a run tells its audience (the CLI's progress bars, a log, the API)."""

    def stage_started(self, name: str, steps: int) -> None: ...
    def step_done(self, name: str, label: str) -> None: ...
    def stage_finished(self, result: StageResult) -> None: ...


class SilentReporter:
    def stage_started(self, name: str, steps: int) -> None:
        pass

    def step_done(self, name: str, label: str) -> None:
        pass

    def stage_finished(self, result: StageResult) -> None:
        pass


@dataclass
class Context:
    """What stages share during one run."""

    project: Project
    engine: Engine
    run: Run
    reporter: Reporter
    tables: list[TableRef]
    as_of: datetime  # the reference time of time windows ("last 30 days"), UTC
    landed: dict[str, LandedTable] = field(default_factory=dict)

    def out(self, relative: str) -> Path:
        return self.run.path / relative


@dataclass
class Stage:
    name: str
    func: Callable[[Context, StageResult], None]
    needs: tuple[str, ...] = ()
    steps: Callable[[Context], int] = lambda ctx: len(ctx.tables)


def ingest_stage(ctx: Context, result: StageResult) -> None:
    con = landing_connection(ctx.project, ctx.engine.scratch / "landing")
    try:
        for ref in ctx.tables:
            landed = ingest_table(con, ctx.project, ref, ctx.run.path)
            ctx.landed[ref.id] = landed
            ctx.run.add_table(ref.id, f"sources/{ref.id}.parquet")
            result.rows[ref.id] = landed.rows_loaded
            result.detail[ref.id] = landed.summary()
            ctx.reporter.step_done("ingest", ref.label)
    finally:
        con.close()
    quarantined = sum(t.rows_quarantined for t in ctx.landed.values())
    result.rows["Quarantine"] = quarantined
    ctx.run.add_table("Quarantine", "quarantine")


def profile_stage(ctx: Context, result: StageResult) -> None:
    profiles = []
    for ref in ctx.tables:
        table = ctx.engine.read(ctx.out(ctx.run.tables[ref.id]))
        # Landing quarantined empty and repeated keys: the key left holds each value once.
        profiles.append(profile_table(table, ref.id, unique=[ref.table.primary_key]))
        ctx.reporter.step_done("profile", ref.label)
    combined = pa.concat_tables(profiles) if profiles else PROFILE_SCHEMA.empty_table()
    ctx.engine.write_arrow(combined, ctx.out("tables/SourceProfile.parquet"))
    ctx.run.add_table("SourceProfile", "tables/SourceProfile.parquet")
    result.rows["SourceProfile"] = combined.num_rows


def unify_stage(ctx: Context, result: StageResult) -> None:
    if ctx.project.unify is None:
        result.status = "skipped"
        result.detail["reason"] = "no unify: section in the project file"
        return
    from audience.unify.stage import unify  # not loaded by runs without unify

    landed = {ref.id: ctx.out(ctx.run.tables[ref.id]) for ref in ctx.tables}
    previous = previous_table(ctx, "AlternateKey")
    outcome = unify(ctx.engine, ctx.project, landed, previous)
    for name, table in outcome.tables.items():
        relative = f"tables/{name}.parquet"
        ctx.engine.write(table, ctx.out(relative), outcome.row_group_rows.get(name))
        ctx.run.add_table(name, relative)
        ctx.reporter.step_done("unify", name)
    result.rows["CustomerProfile"] = outcome.statistics["customers"]
    result.rows["AlternateKey"] = outcome.statistics["records"]
    result.detail["statistics"] = {
        k: v for k, v in outcome.statistics.items() if k != "giant_clusters"
    }
    result.detail["warnings"] = outcome.warnings


def previous_table(ctx: Context, name: str) -> Path | None:
    """A table of the current (last good) run, e.g. the AlternateKey that IDs stay stable to."""
    workspace = Workspace(ctx.project.workspace_path)
    try:
        current = workspace.current()
        return current.table_path(name)
    except RunError:
        return None


def _lazy(
    module: str, function: str, idle: Callable[[Context], str | None] = lambda ctx: None
) -> Callable[[Context, StageResult], None]:
    """A stage function imported when the stage runs: the later stages' modules (and their
    dependencies) are not loaded by commands that never run them. `idle` says why a stage has
    nothing to do (or None); such a stage is skipped without importing its module at all (the
    predictions stage's loads scikit-learn: 1.5-2 s of every run without predictions)."""

    def run(ctx: Context, result: StageResult) -> None:
        import importlib

        if reason := idle(ctx):
            result.status = "skipped"
            result.detail["reason"] = reason
            return
        getattr(importlib.import_module(module), function)(ctx, result)

    return run


STAGES: list[Stage] = [
    Stage("ingest", ingest_stage),
    Stage("profile", profile_stage, needs=("ingest",)),
    Stage("unify", unify_stage, needs=("ingest",), steps=lambda ctx: 10),
    Stage(
        "realtime",
        _lazy("audience.realtime", "realtime_stage"),
        needs=("unify",),
        steps=lambda ctx: 1,
    ),
    Stage(
        "activities",
        _lazy("audience.analytics.stage", "activities_stage"),
        needs=("realtime",),
        steps=lambda ctx: len(ctx.project.activities),
    ),
    Stage(
        "measures",
        _lazy("audience.analytics.stage", "measures_stage"),
        needs=("activities",),
        steps=lambda ctx: 1 + sum(m.kind != "customer_attribute" for m in ctx.project.measures),
    ),
    Stage(
        "enrichment",
        _lazy(
            "audience.enrich.stage",
            "enrichment_stage",
            idle=lambda ctx: (
                None if ctx.project.enrichments else "no enrichments: in the project file"
            ),
        ),
        needs=("activities",),
        steps=lambda ctx: len(ctx.project.enrichments),
    ),
    Stage(
        "predictions",
        _lazy(
            "audience.predict.stage",
            "predictions_stage",
            idle=lambda ctx: (
                None if ctx.project.predictions else "no predictions: in the project file"
            ),
        ),
        needs=("activities",),
        steps=lambda ctx: len(ctx.project.predictions),
    ),
    Stage(
        "segments",
        _lazy("audience.analytics.stage", "segments_stage"),
        needs=("measures", "enrichment", "predictions"),
        steps=lambda ctx: len(ctx.project.segments),
    ),
    Stage(
        "outputs",
        _lazy("audience.outputs", "outputs_stage"),
        needs=("segments",),
        steps=lambda ctx: 1,
    ),
    Stage(
        "serving",
        _lazy("audience.serving", "serving_stage"),
        needs=("outputs",),
        steps=lambda ctx: 1,
    ),
    Stage(
        "exports",
        _lazy("audience.export", "exports_stage"),
        needs=("serving",),
        steps=lambda ctx: sum(e.when == "run" for e in ctx.project.exports),
    ),
]


def stage_order(stages: list[Stage]) -> list[Stage]:
    """Stages sorted so each comes after the stages it needs (stable for ties)."""
    done: list[Stage] = []
    names = {s.name for s in stages}
    pending = list(stages)
    while pending:
        ready = [s for s in pending if all(n in {d.name for d in done} for n in s.needs)]
        if not ready:
            missing = {n for s in pending for n in s.needs if n not in names}
            raise ValueError(f"stages cannot be ordered; unknown or circular needs: {missing}")
        done.append(ready[0])
        pending.remove(ready[0])
    return done


def with_needs(stages: list[Stage], wanted: Collection[str]) -> list[Stage]:
    """The stages named and every stage they need, directly or not, in the given order."""
    by_name = {s.name: s for s in stages}
    unknown = sorted(set(wanted) - set(by_name))
    if unknown:
        raise ValueError(f"no stage {', '.join(unknown)}; stages: {', '.join(by_name)}")
    keep: set[str] = set()
    pending = list(wanted)
    while pending:
        name = pending.pop()
        if name not in keep:
            keep.add(name)
            pending.extend(by_name[name].needs)
    return [s for s in stages if s.name in keep]


def run_pipeline(
    project: Project,
    *,
    engine_kind: str | None = None,
    reporter: Reporter | None = None,
    engine: Engine | None = None,
    publish: bool = True,
    stages: Collection[str] | None = None,
) -> Run:
    """Run every stage into a new run folder; make it current if all stages succeed (and
    `publish`: a dry run is kept for comparison but never becomes current). `stages`: only
    these and the stages they need (a dry run of unify must not deliver exports).

    Raises the first stage error after recording it (the run is then marked failed).
    """
    if publish and stages is not None:
        raise ValueError("a run of some stages only cannot be published")
    reporter = reporter or SilentReporter()
    ordered = stage_order(STAGES)
    stages = with_needs(ordered, stages) if stages is not None else ordered
    workspace = Workspace(project.workspace_path, project.keep_runs)
    own_engine = engine is None
    engine = engine or Engine.connect(project, engine_kind)
    run = workspace.start_run([s.name for s in stages], engine.kind, project.name)
    as_of = project.as_of or datetime.now(UTC)
    as_of = as_of.astimezone(UTC).replace(tzinfo=None) if as_of.tzinfo else as_of
    run.results["as_of"] = as_of.isoformat()
    ctx = Context(project, engine, run, reporter, project.table_refs(), as_of)
    try:
        for stage in stages:
            result = StageResult(stage.name, status="running")
            result.started = datetime.now(UTC).isoformat(timespec="seconds")
            reporter.stage_started(stage.name, stage.steps(ctx))
            t0 = time.perf_counter()
            try:
                stage.func(ctx, result)
            except Exception as e:
                result.status, result.error = "failed", _describe(e)
                result.seconds = round(time.perf_counter() - t0, 3)
                run.record_stage(result)
                reporter.stage_finished(result)
                run.fail(f"stage '{stage.name}' failed: {result.error}")
                raise
            if result.status == "running":
                result.status = "ok"
            result.seconds = round(time.perf_counter() - t0, 3)
            run.record_stage(result)
            reporter.stage_finished(result)
        run.finish(publish)
        if publish:
            _build_warehouse(project, run)
        return run
    except BaseException as e:  # KeyboardInterrupt too: never leave a run marked running
        if run.results.get("status") == "running":
            run.fail(_describe(e) or type(e).__name__)
        raise
    finally:
        if own_engine:
            engine.close()


def _build_warehouse(project: Project, run: Run) -> None:
    """Views for BI tools over the run just published; a failure here is recorded, but the
    run stays published (its tables are complete)."""
    from audience.warehouse import build_warehouse

    try:
        build_warehouse(project.workspace_path, run)
    except Exception as e:  # a BI tool holding a lock, a full disk: the run is still good
        run.results.setdefault("warnings", []).append(f"warehouse.duckdb not rebuilt: {e}")
        run.save()


def _describe(error: BaseException) -> str:
    # Our own errors carry a message for users; others get their type and last frame.
    message = str(error)
    if type(error).__module__.startswith("audience"):
        return message
    where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    place = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
    return f"{type(error).__name__}: {message}{place}"


def summary(run: Run) -> dict[str, Any]:
    """Row counts of a run for printing: loaded and quarantined per source table."""
    ingest = run.results["stages"].get("ingest", {}).get("detail", {})
    return {
        "run_id": run.id,
        "status": run.status,
        "seconds": run.results.get("seconds"),
        "tables": ingest,
    }
