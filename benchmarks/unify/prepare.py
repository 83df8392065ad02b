"""The 3 generated sources in one schema (DuckDB SQL), and the exact-rules baseline.

`standardise(con, data_dir)` creates table `records` (unique_id, source, key, first_name,
surname, dob, email, phone, postcode, address): the light cleaning any Splink user would do
(lower case, trimmed, digits-only phones with the country code dropped, 5-digit zips, ISO
dates, punctuation out of addresses, the town loyalty appends to `addr` cut off). It does not
expand nicknames or street abbreviations.

`exact_rules(data_dir)`: records linked when they share the normalised email, or the phone
digits, or first name + surname + birth date; clusters are the connected components.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

STANDARDISE_SQL = """
CREATE OR REPLACE MACRO clean(s) AS
  nullif(trim(regexp_replace(lower(s), '[^a-z0-9'' -]+', ' ', 'g')), '');
CREATE OR REPLACE MACRO digits(s) AS nullif(right(regexp_replace(s, '\\D', '', 'g'), 10), '');
CREATE OR REPLACE MACRO street(s) AS
  nullif(trim(regexp_replace(lower(s), '[^a-z0-9]+', ' ', 'g')), '');
CREATE OR REPLACE TABLE records AS
WITH crm AS (
  SELECT 'crm' AS source, contact_id::VARCHAR AS key, first_name, last_name AS surname,
    birth_date AS dob, email, phone, zip AS postcode, street AS address
  FROM read_csv('{dir}/crm.csv', all_varchar = true)),
shop AS (
  SELECT 'shop', account_id, split_part(trim(full_name), ' ', 1),
    regexp_extract(trim(full_name), '(\\S+)$', 1), strftime(dob, '%Y-%m-%d'),
    email_address, mobile, postcode, address_line
  FROM read_parquet('{dir}/shop.parquet')),
loyalty AS (
  SELECT 'loyalty', member_no, given_name, family_name,
    strftime(try_strptime(birthday, '%m/%d/%Y'), '%Y-%m-%d'), e_mail, tel, zip_code,
    regexp_replace(addr, ',\\s*[^,]+\\s[A-Za-z]{{2}}$', '')  -- drop ", Town ST"
  FROM read_csv('{dir}/loyalty.csv', all_varchar = true)),
u AS (SELECT * FROM crm UNION ALL SELECT * FROM shop UNION ALL SELECT * FROM loyalty)
SELECT source || ':' || key AS unique_id, source, key,
  clean(first_name) AS first_name, clean(surname) AS surname, nullif(trim(dob), '') AS dob,
  nullif(lower(trim(email)), '') AS email, digits(phone) AS phone,
  nullif(left(trim(postcode), 5), '') AS postcode, street(address) AS address
FROM u
"""


def standardise(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    con.execute(STANDARDISE_SQL.format(dir=data_dir))


def connected_components(con: duckdb.DuckDBPyConnection, edges: str) -> None:
    """Table `components` (unique_id, cluster_id) over `records`, from `edges` (id_l, id_r):
    min-label propagation with pointer jumping until nothing changes."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE e AS
        SELECT id_l AS a, id_r AS b FROM {edges} UNION SELECT id_r, id_l FROM {edges};
        CREATE OR REPLACE TEMP TABLE lab AS
        SELECT r.unique_id AS id, least(r.unique_id, min(e.b)) AS l
        FROM records r LEFT JOIN e ON e.a = r.unique_id GROUP BY r.unique_id
    """)
    while True:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE nxt AS
            WITH hop AS (SELECT lab.id, least(lab.l, p.l) AS l FROM lab JOIN lab p ON p.id = lab.l),
            nb AS (SELECT e.a AS id, min(x.l) AS l FROM e JOIN hop x ON x.id = e.b GROUP BY e.a)
            SELECT hop.id, least(hop.l, coalesce(nb.l, hop.l)) AS l
            FROM hop LEFT JOIN nb USING (id)
        """)
        changed = con.execute(
            "SELECT count(*) FROM nxt JOIN lab USING (id) WHERE nxt.l <> lab.l"
        ).fetchall()[0][0]
        con.execute("CREATE OR REPLACE TEMP TABLE lab AS SELECT * FROM nxt")
        if not changed:
            break
    con.execute(
        "CREATE OR REPLACE TABLE components AS SELECT id AS unique_id, l AS cluster_id FROM lab"
    )


def exact_rules(data_dir: Path, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """(source, key, cluster_id) of the exact-rules baseline."""
    con = con or duckdb.connect()
    standardise(con, data_dir)
    # Star edges: each record to the smallest id sharing its value (as many edges as records).
    keys = ["email", "phone", "first_name || '|' || surname || '|' || dob"]
    parts = [
        f"SELECT unique_id AS id_l, min(unique_id) OVER (PARTITION BY {k}) AS id_r "
        f"FROM records WHERE {k} IS NOT NULL"
        for k in keys
    ]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rule_edges AS SELECT * FROM ("
        + " UNION ALL ".join(parts)
        + ") WHERE id_l <> id_r"
    )
    connected_components(con, "rule_edges")
    return con.execute("""
        SELECT r.source, r.key, c.cluster_id FROM records r JOIN components c USING (unique_id)
    """).fetch_arrow_table()
