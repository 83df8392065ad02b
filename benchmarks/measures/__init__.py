"""Measures + segments benchmark helpers, used by benchmarks/measures_segments.py.

- generate.py: the seeded synthetic customers and activities (numpy + pyarrow, Parquet);
- audience_side.py: the project (twelve templates, one three-condition segment) and the
  Audience runs on the generated files, bypassing ingest and unify;
- sql.py: the same numbers and the same segment as hand-written DuckDB SQL, and the check
  that both sides agree.
"""
