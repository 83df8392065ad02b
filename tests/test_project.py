"""The project file: structure, error messages with config paths, env interpolation, schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audience.project import (
    SCHEMA_PATH,
    ProjectError,
    json_schema,
    load_project,
    parse_project,
)

VALID = """\
name: shop
sources:
  - name: crm
    kind: csv
    tables:
      - name: contacts
        path: crm.csv
        primary_key: id
        types: {birth: date, amount: {type: decimal}}
  - name: db
    kind: sql
    url: postgresql://u:${DB_PASSWORD}@h/db
    tables:
      - {name: people, table: public.people, primary_key: id}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "audience.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ProjectError) as info:
        load_project(write(tmp_path, text))
    return info.value.problems


def test_valid_project_loads_with_env_and_type_shorthand(tmp_path, monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", "s3cret")
    project = load_project(write(tmp_path, VALID))
    assert project.engine == "duckdb"
    assert project.root == tmp_path.resolve()
    crm, db = project.sources
    assert crm.tables[0].types["birth"].type == "date"
    assert crm.tables[0].types["amount"].type == "decimal"
    assert db.url == "postgresql://u:s3cret@h/db"
    assert [r.id for r in project.table_refs()] == ["crm_contacts", "db_people"]
    assert project.find_tables("crm.contacts")[0].table.path == "crm.csv"


def test_missing_env_variable_names_the_path(tmp_path, monkeypatch):
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    assert problems(tmp_path, VALID) == [
        "sources[1].url: environment variable ${DB_PASSWORD} is not set"
    ]


def test_env_default_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    project = load_project(write(tmp_path, VALID.replace("${DB_PASSWORD}", "${DB_PASSWORD:-dev}")))
    assert project.sources[1].url == "postgresql://u:dev@h/db"


def test_unknown_key_is_rejected_with_path_and_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", "x")
    text = VALID.replace(
        "        primary_key: id\n", "        primary_key: id\n        primry: x\n", 1
    )
    assert problems(tmp_path, text) == [
        "sources[0].tables[0].primry: unknown key (check the spelling; see "
        "audience.schema.json for the keys allowed) (line 9)"
    ]


def test_wrong_kind_and_missing_fields(tmp_path):
    text = "name: x\nsources:\n  - name: a\n    kind: excel\n    tables: []\n"
    found = problems(tmp_path, text)
    assert len(found) == 1 and found[0].startswith("sources[0]: unknown source kind; expected one")
    text = "name: x\nsources:\n  - name: a\n    kind: csv\n    tables:\n      - name: t\n"
    found = problems(tmp_path, text)
    assert "sources[0].tables[0].path: Field required (line 6)" in found
    assert "sources[0].tables[0].primary_key: Field required (line 6)" in found


def test_bad_type_override_and_names(tmp_path):
    text = (
        "name: x\nengine: oracle\nsources:\n  - name: 9a\n    kind: parquet\n    tables:\n"
        "      - {name: t, path: p, primary_key: id, types: {a: money}}\n"
    )
    found = problems(tmp_path, text)
    assert any(
        p.startswith("engine: Input should be 'duckdb' or 'spark', got 'oracle'") for p in found
    )
    assert any(p.startswith("sources[0].name: String should match pattern") for p in found)
    assert any(p.startswith("sources[0].tables[0].types.a.type: Input should be") for p in found)


def test_sql_table_needs_table_or_query(tmp_path):
    text = (
        "name: x\nsources:\n"
        "  - {name: d, kind: sql, url: 'sqlite://', tables: [{name: t, primary_key: id}]}\n"
    )
    assert problems(tmp_path, text)[0].startswith("sources[0].tables[0]: give exactly one of")


def test_duplicate_source_names(tmp_path):
    src = "  - {name: a, kind: parquet, tables: [{name: t, path: p, primary_key: id}]}\n"
    assert "is used twice" in problems(tmp_path, "name: x\nsources:\n" + src + src)[0]


def test_not_yaml_and_missing_file(tmp_path):
    assert problems(tmp_path, "name: [unclosed\n")[0].startswith("not valid YAML")
    with pytest.raises(ProjectError, match="project file not found"):
        load_project(tmp_path / "nope.yaml")


def test_committed_schema_matches_models():
    committed = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert committed == json_schema(), "run `make schema` and commit audience.schema.json"


def test_schema_rejects_unknown_keys():
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) >= {"name", "engine", "sources", "workspace"}


def test_parse_project_requires_mapping(tmp_path):
    with pytest.raises(ProjectError, match="must be a mapping"):
        parse_project(["a"], tmp_path / "audience.yaml")


def test_unify_mapping_and_normalisations_are_checked_when_the_file_loads(tmp_path):
    from audience.project import ProjectError, parse_project

    base = {
        "name": "t",
        "sources": [
            {
                "name": "crm",
                "kind": "csv",
                "tables": [{"name": "contacts", "path": "crm.csv", "primary_key": "id"}],
            }
        ],
    }
    twice = {
        **base,
        "unify": {
            "tables": [
                {
                    "table": "crm.contacts",
                    "fields": {"mail": "Identity.Email", "mail2": "Identity.Email"},
                }
            ]
        },
    }
    with pytest.raises(ProjectError, match="'mail' and 'mail2' are both Identity.Email"):
        parse_project(twice, tmp_path / "audience.yaml")
    steps = {
        **base,
        "unify": {
            "tables": [
                {
                    "table": "crm.contacts",
                    "fields": {"mail": "Identity.Email"},
                    "dedup": {
                        "rules": [
                            {
                                "name": "e",
                                "conditions": [
                                    {"field": "Identity.Email", "normalize": ["lower", "shout"]}
                                ],
                            }
                        ]
                    },
                }
            ]
        },
    }
    with pytest.raises(ProjectError, match="unknown normalization step 'shout'"):
        parse_project(steps, tmp_path / "audience.yaml")
