"""Unify benchmark helpers (issue 4), used by benchmarks/unify_vs_splink.py.

- generate.py, formats.py, names.py: the synthetic 3-source customer data with known persons;
- prepare.py: the sources in one schema (DuckDB SQL) and the exact-rules baseline;
- splink_runner.py: Splink 5 on DuckDB, its documented probabilistic setup;
- metrics.py: pairwise and cluster precision / recall / F1.
"""
