"""The command line: init, validate, run, status, profile, export, help."""

from __future__ import annotations

import csv

import pyarrow.parquet as pq
from typer.testing import CliRunner

from audience.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_describes_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("init", "validate", "run", "status", "profile", "export"):
        assert command in result.output
        sub = invoke(command, "--help")
        assert sub.exit_code == 0 and "Usage" in sub.output


def test_init_validate_run_status_export(tmp_path):
    project = tmp_path / "proj"
    result = invoke("init", str(project))
    assert result.exit_code == 0 and (project / "audience.yaml").exists()
    assert invoke("init", str(project)).exit_code == 1  # no silent overwrite
    yaml = str(project / "audience.yaml")

    result = invoke("validate", "-p", yaml)
    assert result.exit_code == 0 and "1 source(s), 1 table(s)" in result.output

    result = invoke("run", "-p", yaml)
    assert result.exit_code == 0, result.output
    assert "crm_contacts" in result.output

    result = invoke("status", "-p", yaml)
    assert result.exit_code == 0 and "succeeded" in result.output and "(current)" in result.output

    out = tmp_path / "contacts.csv"
    result = invoke("export", "crm_contacts", "--to", str(out), "-p", yaml)
    assert result.exit_code == 0 and "wrote 3 rows" in result.output
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["first_name"] for r in rows] == ["Ada", "Alan", "Grace"]

    out = tmp_path / "profile.parquet"
    assert invoke("export", "SourceProfile", "--to", str(out), "-p", yaml).exit_code == 0
    assert pq.read_table(out).num_rows == 6

    result = invoke("export", "Nope", "--to", str(out), "-p", yaml)
    assert result.exit_code == 1 and "has no table 'Nope'" in result.output

    result = invoke("profile", "crm.contacts", "-p", yaml, "--json")
    assert result.exit_code == 0 and '"column": "birth_date"' in result.output


def test_validate_reports_missing_columns_and_bad_keys(tmp_path):
    invoke("init", str(tmp_path))
    yaml = tmp_path / "audience.yaml"
    yaml.write_text(yaml.read_text().replace("primary_key: customer_id", "primary_key: id"))
    result = invoke("validate", "-p", str(yaml))
    assert result.exit_code == 2
    expected = "sources[0].tables[0].primary_key: column 'id' not in data/customers.csv"
    assert expected in result.output
    yaml.write_text(yaml.read_text().replace("engine: duckdb", "engine: duckdb\nengines: x"))
    result = invoke("validate", "-p", str(yaml))
    assert result.exit_code == 2 and "engines: unknown key" in result.output


def test_failed_run_message_and_exit_code(tmp_path):
    invoke("init", str(tmp_path))
    (tmp_path / "data" / "customers.csv").unlink()
    result = invoke("run", "-p", str(tmp_path / "audience.yaml"))
    assert result.exit_code == 1
    assert "the last good run stays current" in result.output
    assert "file not found: data/customers.csv" in result.output
    assert "failed" in invoke("status", "-p", str(tmp_path / "audience.yaml")).output


def test_unknown_profile_source(tmp_path):
    invoke("init", str(tmp_path))
    result = invoke("profile", "nope", "-p", str(tmp_path / "audience.yaml"))
    assert result.exit_code == 2 and "known tables: crm.contacts" in result.output


def test_suggest_explain_and_dry_run_on_a_small_unify_project(tmp_path):
    (tmp_path / "crm.csv").write_text(
        "id,first_name,last_name,email\n1,Robert,Smith,bob@example.com\n2,Ann,Lee,ann@x.org\n"
    )
    (tmp_path / "shop.csv").write_text("account,full_name,mail\n10,Bob Smith,BOB@example.com\n")
    (tmp_path / "audience.yaml").write_text(
        "name: t\nsources:\n"
        "  - {name: crm, kind: csv, tables: [{name: contacts, path: crm.csv, primary_key: id}]}\n"
        "  - {name: shop, kind: csv, tables: [{name: accounts, path: shop.csv, "
        "primary_key: account}]}\n"
        "unify:\n  tables:\n"
        "    - {table: crm.contacts, fields: {first_name: Person.FirstName, "
        "last_name: Person.LastName, email: Identity.Email}}\n"
        "    - {table: shop.accounts, fields: {full_name: Person.FullName, mail: Identity.Email}}\n"
        "  match:\n    - table: shop.accounts\n      against: crm.contacts\n      rules:\n"
        "        - name: email\n          conditions: [{field: Identity.Email}, "
        "{field: Person.FirstName}]\n"
    )
    yaml = str(tmp_path / "audience.yaml")
    result = invoke("suggest", "crm.contacts", "--yaml", "-p", yaml)
    assert result.exit_code == 0
    assert "email: Identity.Email" in result.output
    assert "first_name: Person.FirstName" in result.output
    assert invoke("run", "-p", yaml).exit_code == 0
    result = runner.invoke(app, ["explain", "shop.accounts:10", "-p", yaml], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "crm|contacts|1" in result.output and "match rule email" in result.output
    assert "'bob@example.com' ~ 'bob@example.com'" in result.output  # normalised e-mails
    assert "'robert' ~ 'robert'" in result.output  # Bob is Robert
    result = invoke("unify", "--dry-run", "-p", yaml)
    assert result.exit_code == 0 and "2 customers unchanged" in result.output
    assert "0 merging, 0 splitting" in result.output
    # The dry run ran ingest and unify only: nothing downstream (exports least of all).
    from audience.runs import Workspace

    dry = Workspace(tmp_path / ".audience").runs()[0]
    assert set(dry.results["stages"]) == {"ingest", "unify"}
    assert dry.results["published"] is False
    assert invoke("explain", "nobody", "-p", yaml).exit_code == 1
