"""The console's unify rules page, and what the unify pages share.

Dedup rules per table and match rules per table pair are listed in the order records try
them, with the pairs each found in the current run. A rule (new, edited or existing) can be
previewed: `match.rule_pairs`, the function a run uses, runs that one rule on a throwaway
in-memory DuckDB over the current run's MatchRecords, so the preview never takes the
workspace's engine database and finds exactly the pairs a run would (before the "first rule
per record" step, which depends on the other rules).

MatchRecords holds one normalised column per (field, normalisations) the run's rules used,
named n0, n1... in an order that a later edit of the file can shift. Unless the run recorded
which is which (statistics "normalized"), a column is used only after a sample of it equals
the normalisation of its raw values; otherwise the raw values are normalised here through the
same distinct-value dictionary a run builds (slower on big tables, but always right).

Saving writes the whole list at its config path with project_edit (validated as a project
file, comments kept, other lists untouched even when the file shares them through a YAML
alias).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import duckdb
import ibis
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from ibis import _
from pydantic import ValidationError

from audience import project_edit
from audience.api.auth import Principal
from audience.api.server import Server
from audience.console.access import page_user, require_page_role, server_of
from audience.console.cache import run_cached
from audience.console.engines import memory_engine, run_engine
from audience.console.pages import render
from audience.engine import Engine, EngineError
from audience.project import Project, ProjectError, format_loc
from audience.runs import Run, RunError
from audience.unify import match, prepare
from audience.unify.config import SEMANTIC_TYPES, Condition, Rule, UnifyConfig
from audience.unify.normalize import STEPS, check_steps
from audience.unify.prepare import NormalizedField, Prepared, column_of, normalized_fields
from audience.unify.stage import UnifyError, read_aliases

if TYPE_CHECKING:
    from audience.serving import ServingStore

router = APIRouter(include_in_schema=False)

ADMIN = "administrator"
PREVIEW_LIMIT = 20
MAX_CONDITIONS = 12
CHECK_SAMPLE = 500  # raw values compared with a run column before it is trusted
PRECISIONS = ("exact", "high", "medium", "low", "custom")
METHODS = ("edit", "jaro_winkler", "name", "date")


# -- shared by the unify pages -----------------------------------------------------------------
def current_run(server: Server) -> Run | None:
    """The current run (this also re-reads a project file changed by another worker)."""
    try:
        return server.view().run
    except RunError:
        return None


def unify_config(server: Server) -> UnifyConfig:
    if server.project.unify is None:
        raise HTTPException(404, "the project file has no unify: section")
    return server.project.unify


def is_admin(user: Principal) -> bool:
    return user.role == ADMIN


def problems_of(e: ProjectError) -> list[str]:
    # Checks across sections report from the top of the file but name the path themselves.
    return [p.removeprefix("(top level): ") for p in e.problems]


def write_config(
    server: Server, user: Principal, target: str, change: Callable[[], Any], detail: dict
) -> None:
    """Make a change to the project file (raises ProjectError), reload it, audit it."""
    change()
    server.reload_project()
    server.audit.record(user, "config.put", target, detail)


def sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


@contextmanager
def scratch_engine(project: Project) -> Iterator[Engine]:
    """An engine on its own in-memory DuckDB (closed after): a run in progress holds the
    workspace's engine database. The project's DuckDB limits apply; it spills to a temp
    folder."""
    engine = memory_engine(project)
    try:
        yield engine
    finally:
        engine.close()


def mapped_types(config: UnifyConfig) -> dict[str, set[str]]:
    """'source.table' -> the semantic types its records have: mapped ones, and the name parts
    a run derives (first and last from a full name, a full name from the parts)."""
    out = {}
    for table in config.tables:
        types = set(table.fields.values())
        if "Person.FullName" in types:
            types |= set(prepare.NAME_PARTS)
        if types & set(prepare.NAME_PARTS):
            types.add("Person.FullName")
        out[table.table] = types
    return out


def field_choices(config: UnifyConfig) -> list[str]:
    custom = sorted(
        {s for t in config.tables for s in t.fields.values() if s.startswith("Custom.")}
    )
    return [*SEMANTIC_TYPES, *custom]


# -- rule lists --------------------------------------------------------------------------------
@dataclass
class RuleList:
    """One ordered list of rules: a table's dedup rules, or a table pair's match rules."""

    key: str  # dedup-0, match-2
    kind: str  # dedup | match
    index: int  # in unify.tables (dedup) or unify.match (match)
    left: str  # the later table ('source.table'); the table itself for dedup
    right: str
    rules: list[Rule]
    exceptions: list[Condition]

    @property
    def title(self) -> str:
        if self.kind == "dedup":
            return f"Duplicates in {self.left}"
        return f"{self.left} against {self.right}"

    @property
    def path(self) -> list[str | int]:
        if self.kind == "dedup":
            return ["unify", "tables", self.index, "dedup", "rules"]
        return ["unify", "match", self.index, "rules"]

    def where(self, i: int | None = None) -> str:
        base = format_loc(tuple(self.path))
        return base if i is None else f"{base}[{i}]"


def rule_lists(config: UnifyConfig) -> list[RuleList]:
    dedup = [
        RuleList(f"dedup-{i}", "dedup", i, t.table, t.table, t.dedup.rules, t.dedup.exceptions)
        for i, t in enumerate(config.tables)
    ]
    pairs = [
        RuleList(f"match-{j}", "match", j, p.table, p.against, p.rules, p.exceptions)
        for j, p in enumerate(config.match)
    ]
    return dedup + pairs


def find_list(config: UnifyConfig, key: str) -> RuleList:
    for rl in rule_lists(config):
        if rl.key == key:
            return rl
    raise HTTPException(404, f"no rule list '{key}'")


def condition_view(c: Condition) -> dict[str, Any]:
    """How a condition reads on the page."""
    if c.is_exact:
        test = "exact"
    else:
        named = c.precision if isinstance(c.precision, str) else None
        test = f"{c.method} ≥ {c.threshold:g}" + (f" ({named})" if named else "")
    return {
        "field": c.field,
        "test": test,
        "steps": ", ".join(c.steps),
        "default_steps": c.normalize is None,
    }


def run_rule_counts(run: Run) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """(later table, other table, kind, rule) -> pairs and mean score in the run's
    ConflationMatchPair (UnifyStatistics counts per rule name only)."""

    def compute() -> dict[tuple[str, str, str, str], dict[str, Any]]:
        try:
            path = run.table_path("ConflationMatchPair")
        except RunError:
            return {}
        label = "split_part({0}, '|', 1) || '.' || split_part({0}, '|', 2)"
        rows = (
            duckdb.connect()
            .execute(
                f"SELECT {label.format('LeftIdentifier')}, {label.format('RightIdentifier')}, "
                f"Kind, Rule, count(*), avg(Score) FROM read_parquet({sql_path(path)}) "
                "GROUP BY ALL"
            )
            .fetchall()
        )
        return {(a, b, k, r): {"pairs": n, "mean_score": s} for a, b, k, r, n, s in rows}

    return run_cached(run, ("rule_counts",), compute)


# -- preview -----------------------------------------------------------------------------------
class PreviewError(Exception):
    pass


@dataclass
class Preview:
    pairs: int
    records: int  # records of the later table (of the table, for dedup) in some pair
    rows: list[dict[str, Any]] = field(default_factory=list)
    blocked: str | None = None
    seconds: float = 0.0


def run_table_index(run: Run) -> dict[str, int]:
    """'source.table' -> its `_t` in the run's MatchRecords (the order of unify.tables when
    the run was made, which the file may have changed since)."""

    def compute() -> dict[str, int]:
        path = run.table_path("MatchRecords")
        rows = (
            duckdb.connect()
            .execute(f"SELECT _t, min(_rid) FROM read_parquet({sql_path(path)}) GROUP BY _t")
            .fetchall()
        )
        return {".".join(rid.split("|")[:2]): t for t, rid in rows}

    return run_cached(run, ("table_index",), compute)


def _custom(project: Project) -> tuple[dict[str, set[str]], dict[str, list[tuple[str, str]]]]:
    config = project.unify
    assert config is not None
    bypass = {k: set(v) for k, v in config.custom.bypass.items()}
    try:
        return bypass, read_aliases(project, config.custom.aliases)
    except UnifyError as e:
        raise PreviewError(str(e)) from None


def _run_column(
    engine: Engine,
    project: Project,
    records: ibis.Table,
    key: tuple[str, tuple[str, ...]],
    guess: str | None,
) -> str | None:
    """The run's normalised column for (field, steps), if a sample proves it."""
    present = [c for c in records.columns if c[:1] == "n" and c[1:].isdigit()]
    candidates = ([guess] if guess in present else []) + [c for c in present if c != guess]
    if not candidates:
        return None
    raw = column_of(key[0])
    sample = engine.checkpoint(
        records.filter(records[raw].notnull()).select(raw, *candidates).limit(CHECK_SAMPLE),
        "sample",
    )
    spec = {key: NormalizedField("_expected", key[0], key[1])}
    bypass, aliases = _custom(project)
    expected = prepare.normalize_all(engine, Prepared(sample, [], [], spec), bypass, aliases)
    values = engine.to_arrow(expected).to_pydict()
    if not any(v is not None for v in values["_expected"]):
        return None  # nothing to tell columns apart with
    return next((c for c in candidates if values[c] == values["_expected"]), None)


def _normalized(
    engine: Engine, project: Project, run: Run, records: ibis.Table, conditions: list[Condition]
) -> tuple[dict[tuple[str, tuple[str, ...]], NormalizedField], ibis.Table]:
    """Columns holding each condition's normalised values: the run's where a sample proves
    them, else computed now on the raw values (as the run would)."""
    config = project.unify
    assert config is not None
    guesses = normalized_fields(config)  # the run's names if the file is unchanged since
    unify = run.results.get("stages", {}).get("unify", {}).get("detail") or {}
    recorded = {  # runs that record their columns need no sample check
        (field_, tuple(steps)): name
        for name, (field_, steps) in (unify.get("statistics") or {}).get("normalized", {}).items()
    }
    found: dict[tuple[str, tuple[str, ...]], NormalizedField] = {}
    missing: dict[tuple[str, tuple[str, ...]], NormalizedField] = {}
    for key in sorted({(c.field, tuple(c.steps)) for c in conditions}):
        check_steps(key[1])
        guess = guesses[key].name if key in guesses else None
        name = recorded.get(key) or run_cached(
            run,
            ("column", key, guess),
            lambda key=key, guess=guess: _run_column(engine, project, records, key, guess),
        )
        if name is not None:
            found[key] = NormalizedField(name, *key)
        else:
            missing[key] = NormalizedField(f"p{len(missing)}", *key)
    if missing:
        bypass, aliases = _custom(project)
        pending = Prepared(records, [], [], missing)
        records = prepare.normalize_all(engine, pending, bypass, aliases)
    return found | missing, records


def preview_rule(
    project: Project,
    run: Run,
    rl: RuleList,
    rule: Rule,
    limit: int = PREVIEW_LIMIT,
    store: ServingStore | None = None,
) -> Preview:
    """The pairs `rule` finds in the current run's records, with the list's exceptions.
    `store` (the run's serving store) says which customer each shown record is in."""
    started = time.perf_counter()
    index = run_table_index(run)
    for label in (rl.left, rl.right):
        if label not in index:
            raise PreviewError(f"{label} is not in the current run; run again to preview")
    conditions = list(rule.conditions)
    with run_engine(project, run) as engine:
        records = engine.read(run.table_path("MatchRecords"))
        for c in conditions + rl.exceptions:
            if column_of(c.field) not in records.columns:
                raise PreviewError(
                    f"no table had {c.field} when the current run was made; map it and run "
                    "again to preview rules on it"
                )
        try:
            normalized, records = _normalized(
                engine, project, run, records, conditions + rl.exceptions
            )
            prepared = Prepared(records, [], [], normalized)
            pairs = match.rule_pairs(
                engine, prepared, rule, 0, index[rl.left], index[rl.right], rl.kind, rl.exceptions
            )
            counts = pairs.aggregate(n=_.count(), records=_.a.nunique())
            counts = engine.to_arrow(counts).to_pylist()
            rows = _sample_rows(engine, run, store, pairs, conditions, prepared, limit)
        except (ValueError, EngineError, duckdb.Error) as e:  # e.g. out of memory
            raise PreviewError(str(e)) from None
    blocked = None
    if not any(c.is_exact for c in conditions):
        blocked = (
            f"no exact condition: candidates are pairs whose first {match.BLOCK_PREFIX} "
            f"characters of {', '.join(c.field for c in conditions)} agree"
        )
    return Preview(
        pairs=int(counts[0]["n"]),
        records=int(counts[0]["records"]),
        rows=rows,
        blocked=blocked,
        seconds=round(time.perf_counter() - started, 3),
    )


def _customers(
    engine: Engine, run: Run, store: ServingStore | None, rids: list[str]
) -> dict[str, str]:
    """Identifier ('source|table|key') -> CustomerId: from the serving store (point reads),
    else from AlternateKey."""
    if store is not None and store.available:
        found = {}
        for rid in rids:
            source, table, key = (rid.split("|", 2) + ["", ""])[:3]
            customer = store.by_key(source, table, key)
            if customer is not None:
                found[rid] = customer
        return found
    keys = engine.read(run.table_path("AlternateKey"))
    rows = engine.to_arrow(keys.filter(keys.Identifier.isin(rids))).to_pydict()
    return dict(zip(rows["Identifier"], rows["CustomerId"], strict=True))


def _sample_rows(
    engine: Engine,
    run: Run,
    store: ServingStore | None,
    pairs: ibis.Table,
    conditions: list[Condition],
    prepared: Prepared,
    limit: int,
) -> list[dict[str, Any]]:
    """The lowest-scoring pairs first (what a fuzzy rule lets through), both records' raw and
    normalised values, and each condition's score."""
    columns = list(
        dict.fromkeys(
            c
            for cond in conditions
            for c in (column_of(cond.field), prepared.condition_column(cond))
        )
    )
    shown = engine.to_arrow(pairs.order_by([pairs.score, pairs.a, pairs.b]).limit(limit))
    wanted = sorted({n for row in shown.to_pylist() for n in (row["a"], row["b"])})
    if not wanted:
        return []
    # Only the shown records, by _n: the run writes MatchRecords sorted by _rid, so _n (its
    # row number over _rid) rises through the file, and the scan reads only the small row
    # groups holding one of them (~0.1 s for 40 records of 1.8M; ~0.3 s read as a whole).
    records = prepared.records
    picked = records.filter(records._n.isin(wanted)).select("_n", "_rid", *columns)
    values = {r["_n"]: r for r in engine.to_arrow(picked).to_pylist()}
    customers = _customers(engine, run, store, sorted({r["_rid"] for r in values.values()}))
    out = []
    for pair in shown.to_pylist():
        left, right = values[pair["a"]], values[pair["b"]]
        customer = customers.get(left["_rid"])
        scores = json.loads(pair["scores"] or "{}")
        conditions_shown = []
        for cond in conditions:
            raw, normalized = column_of(cond.field), prepared.condition_column(cond)
            conditions_shown.append(
                {
                    **condition_view(cond),
                    "left": left[raw],
                    "right": right[raw],
                    "left_n": left[normalized],
                    "right_n": right[normalized],
                    "score": scores.get(cond.field),
                }
            )
        out.append(
            {
                "left": left["_rid"],
                "right": right["_rid"],
                "score": pair["score"],
                "same_customer": customer is not None and customer == customers.get(right["_rid"]),
                "conditions": conditions_shown,
            }
        )
    return out


# -- the form ----------------------------------------------------------------------------------
@dataclass
class RuleForm:
    target: str = ""
    name: str = ""
    position: str = ""  # "" = last, else the index the new rule takes
    replace: str = ""  # the index of the rule being edited, if any
    rows: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def of_rule(cls, rl: RuleList, index: int) -> RuleForm:
        rule = rl.rules[index]
        rows = []
        for c in rule.conditions:
            custom = not isinstance(c.precision, str)
            rows.append(
                {
                    "field": c.field,
                    "normalize": ", ".join(c.normalize) if c.normalize is not None else "",
                    "precision": "custom" if custom else str(c.precision),
                    "custom": f"{c.threshold:g}" if custom else "",
                    "method": c.method,
                }
            )
        return cls(rl.key, rule.name, "", str(index), rows)


def empty_row() -> dict[str, str]:
    return {"field": "", "normalize": "", "precision": "exact", "custom": "", "method": "edit"}


def form_rows(
    field_: list[str],
    normalize: list[str],
    precision: list[str],
    custom: list[str],
    method: list[str],
) -> list[dict[str, str]]:
    def at(items: list[str], i: int, default: str = "") -> str:
        return items[i] if i < len(items) else default

    return [
        {
            "field": at(field_, i).strip(),
            "normalize": at(normalize, i),
            "precision": at(precision, i, "exact"),
            "custom": at(custom, i).strip(),
            "method": at(method, i, "edit"),
        }
        for i in range(len(field_))
    ][:MAX_CONDITIONS]


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # the project's validation says what is wrong with it


def rule_item(form: RuleForm) -> dict[str, Any]:
    """The form as a rule the way the project file writes it (defaults left out)."""
    conditions: list[dict[str, Any]] = []
    for row in form.rows:
        if not row["field"]:
            continue
        condition: dict[str, Any] = {"field": row["field"]}
        steps = [s.strip() for s in row["normalize"].split(",") if s.strip()]
        if steps:
            condition["normalize"] = steps
        if row["precision"] == "custom":
            condition["precision"] = _number(row["custom"])
        elif row["precision"] not in ("", "exact"):
            condition["precision"] = row["precision"]
        if row["method"] not in ("", "edit"):
            condition["method"] = row["method"]
        conditions.append(condition)
    return {"name": form.name.strip(), "conditions": conditions}


def check_rule(
    config: UnifyConfig, rl: RuleList, item: dict[str, Any], at: int, replacing: bool
) -> list[str]:
    """What the project's validation does not catch: a name twice in one list (explain finds
    a link's rule by name), unknown normalisations, a field a table of the pair never has.
    `at` is the rule's index once written; `replacing`: it replaces the rule there."""
    where = rl.where(at)
    problems = []
    others = [r.name for i, r in enumerate(rl.rules) if not (replacing and i == at)]
    if item["name"] in others:
        problems.append(f"{where}.name: '{item['name']}' is already a rule of this list")
    types = mapped_types(config)
    for i, condition in enumerate(item["conditions"]):
        steps = condition.get("normalize")
        if steps:
            try:
                check_steps(steps)
            except ValueError as e:
                problems.append(f"{where}.conditions[{i}].normalize: {e}")
        semantic = condition["field"]
        if semantic not in SEMANTIC_TYPES and not semantic.startswith("Custom."):
            continue  # the project's validation names the allowed types
        for label in dict.fromkeys((rl.left, rl.right)):
            if semantic not in types.get(label, set()):
                problems.append(
                    f"{where}.conditions[{i}].field: {label} has no column mapped to {semantic} "
                    "(see the mapping page)"
                )
    return problems


def pydantic_problems(where: str, error: ValidationError) -> list[str]:
    return [
        f"{where}.{format_loc(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
        for e in error.errors()
    ]


def _as_index(text: str, size: int) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > size:
        raise HTTPException(422, f"no position {text!r} in a list of {size}")
    return int(text)


def _written_rules(server: Server, rl: RuleList) -> list[Any]:
    """The list as the file writes it (no defaults filled in)."""
    try:
        rules = project_edit.get_path(server.project_file, rl.path)
    except project_edit.ItemNotFound:
        return []
    return list(rules) if isinstance(rules, list) else []


def set_rules(server: Server, rl: RuleList, rules: list[Any]) -> None:
    """Write a rule list at its path; a table without a dedup section gets one."""
    if rl.kind == "dedup":
        try:
            project_edit.get_path(server.project_file, rl.path[:-1])
        except project_edit.ItemNotFound:
            project_edit.set_path(server.project_file, rl.path[:-1], {"rules": rules})
            return
    project_edit.set_path(server.project_file, rl.path, rules)


# -- pages -------------------------------------------------------------------------------------
def positions(rl: RuleList) -> list[tuple[str, str]]:
    """The choices of where a new rule goes: before each rule, or last (the default)."""
    last = f"last (after {rl.rules[-1].name})" if rl.rules else "first"
    out = [("", last)]
    out += [(str(i), f"before {i + 1}. {r.name}") for i, r in enumerate(rl.rules)]
    return out


def _rules_page(
    request: Request,
    user: Principal,
    form: RuleForm | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
    saved: str | None = None,
) -> HTMLResponse:
    server = server_of(request)
    config = unify_config(server)
    run = current_run(server)
    counts = run_rule_counts(run) if run else {}
    lists = rule_lists(config)
    blocks = []
    for rl in lists:
        rules = []
        for i, rule in enumerate(rl.rules):
            found = counts.get((rl.left, rl.right, rl.kind, rule.name))
            rules.append(
                {
                    "index": i,
                    "name": rule.name,
                    "conditions": [condition_view(c) for c in rule.conditions],
                    "run": found,
                }
            )
        blocks.append(
            {"rl": rl, "rules": rules, "exceptions": [condition_view(c) for c in rl.exceptions]}
        )
    if form is None:
        first = next((rl for rl in lists if rl.kind == "match"), lists[0])
        form = RuleForm(first.key, "", "", "", [empty_row(), empty_row()])
    target = next((rl for rl in lists if rl.key == form.target), lists[0])
    context = {
        "active": "unify",
        "blocks": blocks,
        "lists": lists,
        "form": form,
        "positions": positions(target),
        "fields": field_choices(config),
        "steps": STEPS,
        "precisions": PRECISIONS,
        "methods": METHODS,
        "errors": errors or [],
        "saved": saved,
        "run": run,
        "admin": is_admin(user),
    }
    return render(request, "unify/rules.html", context, status_code=status_code)


@router.get("/unify/rules")
def rules_page(
    request: Request,
    edit: str = Query("", max_length=40),
    index: int = Query(-1, ge=-1, le=10_000),
    saved: str = Query("", max_length=200),
    user: Principal = Depends(page_user),
) -> HTMLResponse:
    form = None
    if edit and is_admin(user):
        rl = find_list(unify_config(server_of(request)), edit)
        if not 0 <= index < len(rl.rules):
            raise HTTPException(404, f"no rule {index} in {rl.where()}")
        form = RuleForm.of_rule(rl, index)
    return _rules_page(request, user, form, saved=saved or None)


@router.get("/unify/rules/condition")
def condition_row(
    request: Request, user: Principal = Depends(require_page_role(ADMIN))
) -> HTMLResponse:
    """One more empty condition (htmx appends it to the form)."""
    config = unify_config(server_of(request))
    context = {
        "row": empty_row(),
        "fields": field_choices(config),
        "precisions": PRECISIONS,
        "methods": METHODS,
        "steps": STEPS,
    }
    return render(request, "unify/_condition.html", context)


@router.get("/unify/rules/positions")
def position_choices(
    request: Request,
    target: str = Query("", max_length=40),
    user: Principal = Depends(require_page_role(ADMIN)),
) -> HTMLResponse:
    """The position select for the list chosen in the form."""
    rl = find_list(unify_config(server_of(request)), target)
    return render(request, "unify/_positions.html", {"positions": positions(rl), "chosen": ""})


def _preview_fragment(
    request: Request, rl: RuleList, rule: Rule | None, errors: list[str]
) -> HTMLResponse:
    server = server_of(request)
    try:
        view = server.view()  # the run and its serving store, as one
    except RunError:
        view = None
    context: dict[str, Any] = {"rl": rl, "rule": rule, "errors": errors, "preview": None}
    if view is None and not errors:
        errors.append("no run has finished yet: run 'audience run' first")
    if rule is not None and not errors:
        try:
            context["preview"] = preview_rule(
                server.project, view.run, rl, rule, store=view.serving
            )
        except (PreviewError, RunError) as e:
            errors.append(str(e))
    return render(request, "unify/_preview.html", context)


@router.get("/unify/rules/preview")
def preview_existing(
    request: Request,
    target: str = Query(..., max_length=40),
    index: int = Query(..., ge=0, le=10_000),
    user: Principal = Depends(page_user),
) -> HTMLResponse:
    """The pairs an existing rule finds (anyone may look: nothing is written)."""
    rl = find_list(unify_config(server_of(request)), target)
    if index >= len(rl.rules):
        raise HTTPException(404, f"no rule {index} in {rl.where()}")
    return _preview_fragment(request, rl, rl.rules[index], [])


def posted_form(
    target: str = Form(""),
    name: str = Form(""),
    position: str = Form(""),
    replace: str = Form(""),
    field: list[str] = Form([]),
    normalize: list[str] = Form([]),
    precision: list[str] = Form([]),
    custom: list[str] = Form([]),
    method: list[str] = Form([]),
) -> RuleForm:
    """The add/edit form as posted (a dependency of preview and save)."""
    rows = form_rows(field, normalize, precision, custom, method)
    return RuleForm(target, name, position, replace, rows or [empty_row()])


@router.post("/unify/rules/preview")
def preview_form(
    request: Request,
    form: RuleForm = Depends(posted_form),
    user: Principal = Depends(require_page_role(ADMIN)),
) -> HTMLResponse:
    """The pairs the rule in the form would find (an htmx fragment); nothing is written."""
    config = unify_config(server_of(request))
    rl = find_list(config, form.target)
    item = rule_item(form)
    item["name"] = item["name"] or "preview"  # a name is needed to save, not to look
    edited = _as_index(form.replace, len(rl.rules) - 1)
    at = len(rl.rules) if edited is None else edited
    where = rl.where(at)
    errors = [p for p in check_rule(config, rl, item, at, True) if ".name:" not in p]
    try:
        rule = Rule.model_validate(item)
    except ValidationError as e:
        return _preview_fragment(request, rl, None, pydantic_problems(where, e) + errors)
    return _preview_fragment(request, rl, rule, errors)


@router.post("/unify/rules")
def save_rule(
    request: Request,
    form: RuleForm = Depends(posted_form),
    user: Principal = Depends(require_page_role(ADMIN)),
) -> Response:
    """Add the rule at its position (last by default), or replace the rule being edited."""
    server = server_of(request)
    current_run(server)  # picks up a project file changed elsewhere
    config = unify_config(server)
    rl = find_list(config, form.target)
    item = rule_item(form)
    edited = _as_index(form.replace, len(rl.rules) - 1)
    at = edited if edited is not None else _as_index(form.position, len(rl.rules))
    at = len(rl.rules) if at is None else at
    problems = check_rule(config, rl, item, at, edited is not None)
    if problems:
        return _rules_page(request, user, form, problems, status_code=422)
    rules = _written_rules(server, rl)
    if edited is not None:
        rules[edited] = item
    else:
        rules.insert(at, item)
    detail = {"rule": item, "position": at}
    return _write_list(request, user, rl, rules, detail, form, saved=item["name"])


@router.post("/unify/rules/move")
def move_rule(
    request: Request,
    target: str = Form(""),
    index: int = Form(...),
    direction: str = Form("up"),
    user: Principal = Depends(require_page_role(ADMIN)),
) -> Response:
    """Move a rule up or down its list: records try rules in order."""
    server = server_of(request)
    rl = find_list(unify_config(server), target)
    other = index - 1 if direction == "up" else index + 1
    rules = _written_rules(server, rl)
    if not (0 <= index < len(rules) and 0 <= other < len(rules)):
        return RedirectResponse(f"/unify/rules#{rl.key}", status_code=303)
    rules[index], rules[other] = rules[other], rules[index]
    return _write_list(request, user, rl, rules, {"moved": index, "to": other})


@router.post("/unify/rules/delete")
def delete_rule(
    request: Request,
    target: str = Form(""),
    index: int = Form(...),
    user: Principal = Depends(require_page_role(ADMIN)),
) -> Response:
    server = server_of(request)
    rl = find_list(unify_config(server), target)
    rules = _written_rules(server, rl)
    if not 0 <= index < len(rules):
        raise HTTPException(404, f"no rule {index} in {rl.where()}")
    del rules[index]
    return _write_list(request, user, rl, rules, {"deleted": index})


def _write_list(
    request: Request,
    user: Principal,
    rl: RuleList,
    rules: list[Any],
    detail: dict,
    form: RuleForm | None = None,
    saved: str | None = None,
) -> Response:
    """Write the list, then back to the page (with the problems and the form if it failed)."""
    server = server_of(request)
    try:
        write_config(
            server, user, "/".join(map(str, rl.path)), lambda: set_rules(server, rl, rules), detail
        )
    except ProjectError as e:
        return _rules_page(request, user, form, problems_of(e), status_code=422)
    query = f"?saved={quote(saved)}" if saved else ""
    return RedirectResponse(f"/unify/rules{query}#{rl.key}", status_code=303)
