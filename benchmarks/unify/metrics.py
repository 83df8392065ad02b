"""Pairwise and cluster precision / recall / F1 of a clustering against the true persons.

`score(pred, truth)`: pred has (source, key, cluster_id), truth has (source, key, person_id);
both any table DuckDB can scan (pyarrow Table, pandas DataFrame). Records missing from pred
count as singletons. Everything comes from the (cluster, person) contingency counts, so no pair
is ever enumerated:

- pairwise: TP = sum C(n_ij, 2), predicted pairs = sum C(a_i, 2), true pairs = sum C(b_j, 2);
- cluster: a predicted cluster is exact if it holds exactly the records of one person;
  precision = exact / predicted clusters, recall = exact / true persons.

    python benchmarks/unify/metrics.py   # self-test on a hand example
"""

from __future__ import annotations

import duckdb

SQL = """
WITH t AS (SELECT source::VARCHAR AS source, key::VARCHAR AS key, person_id FROM truth),
p AS (SELECT source::VARCHAR AS source, key::VARCHAR AS key, cluster_id::VARCHAR AS cid
      FROM pred),
j AS (SELECT t.person_id, coalesce(p.cid, 'single:' || t.source || ':' || t.key) AS cid
      FROM t LEFT JOIN p USING (source, key)),
cell AS (SELECT cid, person_id, count(*) AS n FROM j GROUP BY ALL),
a AS (SELECT cid, sum(n) AS a, count(*) AS persons FROM cell GROUP BY cid),
b AS (SELECT person_id, sum(n) AS b FROM cell GROUP BY person_id)
SELECT
  (SELECT sum(n * (n - 1) / 2) FROM cell)::DOUBLE AS tp,
  (SELECT sum(a * (a - 1) / 2) FROM a)::DOUBLE AS pred_pairs,
  (SELECT sum(b * (b - 1) / 2) FROM b)::DOUBLE AS true_pairs,
  (SELECT count(*) FROM a) AS clusters,
  (SELECT count(*) FROM b) AS persons,
  (SELECT count(*) FROM cell JOIN a USING (cid) JOIN b USING (person_id)
   WHERE a.persons = 1 AND n = b.b) AS exact
"""


def _prf(hit: float, predicted: float, actual: float) -> tuple[float, float, float]:
    p = hit / predicted if predicted else 1.0
    r = hit / actual if actual else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def score(pred, truth, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, float]:
    """Metrics of pred (source, key, cluster_id) against truth (source, key, person_id)."""
    con = con or duckdb.connect()
    con.register("pred", pred)
    con.register("truth", truth)
    tp, pred_pairs, true_pairs, clusters, persons, exact = con.execute(SQL).fetchall()[0]
    con.unregister("pred")
    con.unregister("truth")
    pp, pr, pf = _prf(tp or 0.0, pred_pairs or 0.0, true_pairs or 0.0)
    cp, cr, cf = _prf(exact, clusters, persons)
    return {
        "pair_p": pp, "pair_r": pr, "pair_f1": pf,
        "cluster_p": cp, "cluster_r": cr, "cluster_f1": cf,
        "clusters": clusters, "persons": persons, "exact": exact,
    }  # fmt: skip


def _self_test() -> None:
    import pyarrow as pa

    # Persons: A = {a1, a2, a3}, B = {b1, b2}, C = {c1}.
    truth = pa.table({
        "source": ["s"] * 6, "key": ["a1", "a2", "a3", "b1", "b2", "c1"],
        "person_id": [1, 1, 1, 2, 2, 3],
    })  # fmt: skip
    # Predicted: {a1, a2}, {a3, b1, b2}, c1 left out (a singleton).
    pred = pa.table({
        "source": ["s"] * 5, "key": ["a1", "a2", "a3", "b1", "b2"],
        "cluster_id": ["x", "x", "y", "y", "y"],
    })  # fmt: skip
    m = score(pred, truth)
    # True pairs: 3 (A) + 1 (B) = 4; predicted pairs: 1 + 3 = 4; TP: a1-a2, b1-b2 = 2.
    assert (m["pair_p"], m["pair_r"]) == (0.5, 0.5), m
    # Clusters {x}, {y}, {c1}: only {c1} is exact; 3 predicted, 3 persons.
    assert (m["clusters"], m["persons"], m["exact"]) == (3, 3, 1), m
    assert abs(m["cluster_f1"] - 1 / 3) < 1e-12, m
    # The perfect clustering scores 1 everywhere.
    perfect = pa.table({"source": truth["source"], "key": truth["key"],
                        "cluster_id": truth["person_id"]})  # fmt: skip
    assert all(score(perfect, truth)[k] == 1.0 for k in ("pair_f1", "cluster_f1"))
    # Everything in one cluster: recall 1, precision 4 / 15, no exact cluster.
    one = pa.table({"source": truth["source"], "key": truth["key"], "cluster_id": [0] * 6})
    m = score(one, truth)
    assert m["pair_r"] == 1.0 and abs(m["pair_p"] - 4 / 15) < 1e-12 and m["exact"] == 0, m
    print("metrics self-test ok")


if __name__ == "__main__":
    _self_test()
