"""Audience on the benchmark data: write a project for the three generated sources, run the
pipeline from ingest to published profiles, and return each record's CustomerId."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from audience.pipeline import run_pipeline
from audience.project import load_project

# The rules a careful analyst would write for this data (the same as the demo project's):
# households share e-mails, phones and addresses, so every rule also checks the first name
# (nicknames and typos allowed), and different birth dates never match.
PROJECT = """\
name: bench
workspace: {work}/workspace
# A memory budget for DuckDB (it spills to the workspace beyond it); the default is 80% of RAM.
duckdb: {{memory_limit: 1200MB}}
sources:
  - name: crm
    kind: csv
    tables:
      - {{name: contacts, path: {data}/crm.csv, primary_key: contact_id,
         types: {{zip: string, phone: string}}}}
  - name: shop
    kind: parquet
    tables:
      - {{name: accounts, path: {data}/shop.parquet, primary_key: account_id}}
  - name: loyalty
    kind: csv
    tables:
      - name: members
        path: {data}/loyalty.csv
        primary_key: member_no
        types: {{zip_code: string, tel: string, birthday: {{type: date, format: "%m/%d/%Y"}}}}
unify:
  tables:
    - table: crm.contacts
      fields: {{first_name: Person.FirstName, last_name: Person.LastName, email: Identity.Email,
               phone: Identity.Phone, street: Location.Address, city: Location.City,
               zip: Location.PostalCode, birth_date: Person.BirthDate}}
      # Duplicates inside a table are found with the same rules as across tables.
      dedup: &dedup
        rules: &rules
            - name: email
              conditions:
                - {{field: Identity.Email}}
                - {{field: Person.FirstName, method: name, precision: 0.85}}
            - name: phone
              conditions:
                - {{field: Identity.Phone}}
                - {{field: Person.FirstName, method: name, precision: 0.85}}
            - name: email_and_last_name
              conditions: [{{field: Identity.Email}}, {{field: Person.LastName}}]
            - name: phone_last_name_birth_date
              conditions:
                - {{field: Identity.Phone}}
                - {{field: Person.LastName}}
                - {{field: Person.BirthDate, method: date, precision: 0.8}}
            - name: name_and_birth_date
              conditions:
                - {{field: Person.BirthDate}}
                - {{field: Person.LastName}}
                - {{field: Person.FirstName, method: name, precision: 0.85}}
            - name: first_name_birth_date_postcode
              conditions:
                - {{field: Person.BirthDate}}
                - {{field: Location.PostalCode}}
                - {{field: Person.FirstName, method: name, precision: 0.85}}
            - name: name_and_address
              conditions:
                - {{field: Location.Address}}
                - {{field: Person.LastName, method: jaro_winkler, precision: 0.85}}
                - {{field: Person.FirstName, method: name, precision: 0.85}}
            - name: first_name_and_address
              conditions:
                - {{field: Location.Address}}
                - {{field: Location.PostalCode}}
                - {{field: Person.FirstName, method: name, precision: 0.85}}
            - name: phone_address_last_name
              conditions:
                - {{field: Identity.Phone}}
                - {{field: Location.Address}}
                - {{field: Person.LastName}}
        exceptions: &exceptions
            # Birth dates that differ in more than one part (year, month, day) never match.
            - {{field: Person.BirthDate, method: date, precision: 0.8}}
    - table: shop.accounts
      fields: {{full_name: Person.FullName, email_address: Identity.Email, mobile: Identity.Phone,
               address_line: Location.Address, postcode: Location.PostalCode,
               dob: Person.BirthDate}}
      dedup: *dedup
    - table: loyalty.members
      fields: {{given_name: Person.FirstName, family_name: Person.LastName, e_mail: Identity.Email,
               tel: Identity.Phone, addr: Location.Address, zip_code: Location.PostalCode,
               birthday: Person.BirthDate}}
      dedup: *dedup
  match:
    - {{table: shop.accounts, against: crm.contacts, rules: *rules, exceptions: *exceptions}}
    - {{table: loyalty.members, against: crm.contacts, rules: *rules, exceptions: *exceptions}}
    - {{table: loyalty.members, against: shop.accounts, rules: *rules, exceptions: *exceptions}}
  cluster: {{max_size: 50}}
"""
SOURCES = {"crm": "crm", "shop": "shop", "loyalty": "loyalty"}


def run(data_dir: Path, work_dir: Path) -> pa.Table:
    """(source, key, cluster_id) for every record, from Audience's AlternateKey table."""
    project_file = work_dir / "audience.yaml"
    project_file.write_text(PROJECT.format(data=data_dir.resolve(), work=work_dir.resolve()))
    run = run_pipeline(load_project(project_file))
    keys = run.table_path("AlternateKey")
    return duckdb.sql(
        f"SELECT DataSourceName AS source, AlternateValue AS key, CustomerId AS cluster_id "
        f"FROM read_parquet('{keys}')"
    ).fetch_arrow_table()
