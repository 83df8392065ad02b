"""Explain a customer, and compare a dry run with the current run.

`explain` answers "why are these records one customer?": the customer's records, and each link
between them with its rule and, per condition, both normalised values and the score.
`compare_runs` answers "what would this change do?": customers that would merge, split or
change ID, before anything is published.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from audience.project import Project
from audience.unify.config import Condition, UnifyConfig
from audience.unify.prepare import column_of, normalized_fields

if TYPE_CHECKING:
    from audience.serving import ServingStore


class ExplainError(Exception):
    pass


@dataclass
class Link:
    left: str
    right: str
    kind: str
    rule: str
    score: float
    conditions: list[dict[str, Any]]


@dataclass
class Explanation:
    customer_id: str
    previous_ids: list[str]
    records: list[dict[str, Any]]
    links: list[Link] = field(default_factory=list)


_database: duckdb.DuckDBPyConnection | None = None
_database_lock = threading.Lock()


def _connect() -> duckdb.DuckDBPyConnection:
    """A cursor of this process's in-memory DuckDB: opening a database per explanation cost
    10-50 ms, a cursor nothing (and each thread has its own)."""
    global _database
    with _database_lock:
        if _database is None:
            _database = duckdb.connect()
        return _database.cursor()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read(con: duckdb.DuckDBPyConnection, path: Path, where: str) -> list[dict]:
    """Rows of a Parquet file. `where` compares with literals, never `?` parameters: DuckDB
    pushes only literals into the scan, where the row groups' min/max statistics skip what
    cannot match (AlternateKey is written sorted by CustomerId, MatchRecords by _rid)."""
    rel = con.execute(f"SELECT * FROM read_parquet({_literal(str(path))}) WHERE {where}")
    columns = [d[0] for d in rel.description]
    return [dict(zip(columns, row, strict=True)) for row in rel.fetchall()]


def _each(con: duckdb.DuckDBPyConnection, path: Path, column: str, values: list[str]) -> list:
    """Rows whose `column` equals one of `values`, one equality per value: DuckDB 1.4 skips
    row groups for an equality on text, but reads the whole file for an IN list (or ORed
    equalities) of text."""
    rows = []
    for value in sorted(set(values)):
        rows += _read(con, path, f"{column} = {_literal(value)}")
    return rows


def _identifier(selector: str) -> str:
    """'source.table:key' written as an Identifier ('source|table|key'); others unchanged."""
    if ":" in selector and "|" not in selector:
        label, key = selector.split(":", 1)
        return label.replace(".", "|", 1) + "|" + key
    return selector


def find_customer(tables: dict[str, Path], selector: str) -> str:
    """A CustomerId from a CustomerId, an Identifier 'source|table|key', or 'source.table:key'."""
    con = _connect()
    selector = _identifier(selector)
    literal = _literal(selector)
    rows = _read(con, tables["AlternateKey"], f"CustomerId = {literal}")  # a few row groups
    if not rows:
        rows = _read(con, tables["AlternateKey"], f"Identifier = {literal}")
    if not rows:
        raise ExplainError(
            f"no customer '{selector}': give a CustomerId, an Identifier like "
            "'crm|contacts|C000123', or 'crm.contacts:C000123'"
        )
    return rows[0]["CustomerId"]


def _from_store(store: ServingStore, selector: str) -> tuple[str, list[str], str] | None:
    """(CustomerId, its records' Identifiers, PreviousCustomerId) from the serving store."""
    selector = _identifier(selector)
    customer: str | None = selector
    if "|" in selector:
        source, table, key = (selector.split("|", 2) + ["", ""])[:3]
        customer = store.by_key(source, table, key)
    raw = store.customer_json(customer) if customer else None
    if raw is None:
        return None
    document = json.loads(raw)
    keys = [f"{k['source']}|{k['table']}|{k['key']}" for k in document.get("keys", [])]
    return document["CustomerId"], keys, document["profile"].get("PreviousCustomerId") or ""


def explain(
    project: Project, tables: dict[str, Path], selector: str, store: ServingStore | None = None
) -> Explanation:
    """The customer `selector` names, its records and every link between them. `store`, the
    same run's serving store, gives the customer's records at once (else AlternateKey)."""
    config: UnifyConfig = project.unify  # type: ignore[assignment]
    con = _connect()
    found = _from_store(store, selector) if store is not None and store.available else None
    if found is not None:
        customer, identifiers, previous = found
    else:
        customer = find_customer(tables, selector)
        keys = _read(con, tables["AlternateKey"], f"CustomerId = {_literal(customer)}")
        identifiers = [k["Identifier"] for k in keys]
        profile = _read(con, tables["CustomerProfile"], f"CustomerId = {_literal(customer)}")
        previous = (profile[0].get("PreviousCustomerId") or "") if profile else ""
    records = _each(con, tables["MatchRecords"], "_rid", identifiers)
    by_rid = {r["_rid"]: r for r in records}
    # Links between two of the records, by their first record (the pairs are written sorted
    # by it): one small look-up per record.
    pairs = [
        p
        for p in _each(con, tables["ConflationMatchPair"], "LeftIdentifier", list(by_rid))
        if p["RightIdentifier"] in by_rid
    ]
    columns = normalized_fields(config)
    links = []
    for pair in sorted(pairs, key=lambda p: (p["LeftIdentifier"], p["RightIdentifier"])):
        left, right = by_rid[pair["LeftIdentifier"]], by_rid[pair["RightIdentifier"]]
        scores = json.loads(pair["ConditionScores"] or "{}")
        conditions = []
        for condition in _rule_conditions(config, left, right, pair["Kind"], pair["Rule"]):
            column = columns[(condition.field, tuple(condition.steps))].name
            conditions.append(
                {
                    "field": condition.field,
                    "left": left.get(column_of(condition.field)),
                    "right": right.get(column_of(condition.field)),
                    "left_normalized": left.get(column),
                    "right_normalized": right.get(column),
                    "precision": condition.threshold,
                    "method": condition.method,
                    "score": scores.get(condition.field),
                }
            )
        links.append(
            Link(left["_rid"], right["_rid"], pair["Kind"], pair["Rule"], pair["Score"], conditions)
        )
    shown = [
        {"Identifier": r["_rid"], **_fields(r)} for r in sorted(records, key=lambda r: r["_rid"])
    ]
    return Explanation(customer, [p for p in previous.split(";") if p], shown, links)


def _fields(record: dict[str, Any]) -> dict[str, Any]:
    """The record's semantic fields (raw values), without internal and normalised columns."""
    return {
        k: v
        for k, v in record.items()
        if not k.startswith("_") and not (k[0] == "n" and k[1:].isdigit()) and v is not None
    }


def _rule_conditions(
    config: UnifyConfig, left: dict, right: dict, kind: str, rule: str
) -> list[Condition]:
    tables = [t.table for t in config.tables]
    if kind == "dedup":
        rules = config.tables[left["_t"]].dedup.rules
    elif kind == "match":
        later, earlier = tables[max(left["_t"], right["_t"])], tables[min(left["_t"], right["_t"])]
        rules = [
            r for p in config.match if p.table == later and p.against == earlier for r in p.rules
        ]
    else:
        return []
    return next((r.conditions for r in rules if r.name == rule), [])


@dataclass
class RunDiff:
    merged: list[dict[str, Any]]  # new customer <- several current customers
    split: list[dict[str, Any]]  # current customer -> several new customers
    changed_id: int  # records whose CustomerId changes for other reasons
    new_customers: int
    removed_customers: int
    unchanged_customers: int


def compare_runs(current_keys: Path, new_keys: Path, limit: int = 20) -> RunDiff:
    """Compare two AlternateKey tables record by record."""
    con = duckdb.connect()
    con.execute(
        f"CREATE TEMP TABLE j AS SELECT o.Identifier, o.CustomerId AS old_id, "
        f"n.CustomerId AS new_id FROM read_parquet('{current_keys}') o "
        f"FULL JOIN read_parquet('{new_keys}') n USING (Identifier)"
    )

    def rows(sql: str) -> list[dict[str, Any]]:
        rel = con.execute(sql)
        cols = [d[0] for d in rel.description]
        return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]

    merged = rows(
        "SELECT new_id AS customer, list(DISTINCT old_id ORDER BY old_id) AS from_customers "
        "FROM j WHERE new_id IS NOT NULL AND old_id IS NOT NULL GROUP BY new_id "
        f"HAVING count(DISTINCT old_id) > 1 ORDER BY new_id LIMIT {limit}"
    )
    split = rows(
        "SELECT old_id AS customer, list(DISTINCT new_id ORDER BY new_id) AS into_customers "
        "FROM j WHERE new_id IS NOT NULL AND old_id IS NOT NULL GROUP BY old_id "
        f"HAVING count(DISTINCT new_id) > 1 ORDER BY old_id LIMIT {limit}"
    )
    (changed,) = con.execute(
        "SELECT count(*) FROM j WHERE old_id IS NOT NULL AND new_id IS NOT NULL "
        "AND old_id <> new_id"
    ).fetchone()
    (new,) = con.execute(
        "SELECT count(DISTINCT new_id) FROM j WHERE new_id NOT IN "
        "(SELECT old_id FROM j WHERE old_id IS NOT NULL)"
    ).fetchone()
    (removed,) = con.execute(
        "SELECT count(DISTINCT old_id) FROM j WHERE old_id NOT IN "
        "(SELECT new_id FROM j WHERE new_id IS NOT NULL)"
    ).fetchone()
    (same,) = con.execute(
        "SELECT count(*) FROM (SELECT old_id FROM j GROUP BY old_id "
        "HAVING count(DISTINCT new_id) = 1 AND bool_and(old_id = new_id) "
        "AND count(*) = count(new_id))"
    ).fetchone()
    return RunDiff(merged, split, changed, new, removed, same)
