"""Product recommendations: the top K products per customer from what similar customers
bought (item-based collaborative filtering).

Products are similar when the same customers buy them (cosine similarity of the columns of
the customer x product matrix, scikit-learn on SciPy sparse matrices). A customer's score for
a product is the sum of its similarities to the products the customer bought, plus a small
share of the product's popularity so that customers with little history still get
recommendations (and ties break the same way every run).

Quality: purchases before the last `test_days` (default 90, or the last fifth of the
history when shorter) recommend; the purchases after them are the truth. Success at K =
share of customers who bought at least one recommended product; the baseline recommends the
K most popular products to everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import ibis
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from audience.predict.churn import NotEnoughData
from audience.predict.quality import Quality, recommendation_grade

BATCH = 20_000  # customers scored at a time (dense scores are customers x products)
POPULARITY_WEIGHT = 1e-3


@dataclass
class Catalogue:
    products: np.ndarray  # product names, index = column of the matrices
    customers: np.ndarray  # CustomerIds, index = row
    bought: sp.csr_matrix  # customers x products, purchase counts

    @classmethod
    def build(cls, rows: pd.DataFrame, max_products: int) -> Catalogue:
        customers, c_index = np.unique(rows.CustomerId.to_numpy(), return_inverse=True)
        products, p_index = np.unique(rows["product"].astype(str).to_numpy(), return_inverse=True)
        if len(products) > max_products:
            raise NotEnoughData(
                f"{len(products):,} products; the model takes at most {max_products:,} "
                "(max_products)"
            )
        counts = sp.csr_matrix(
            (np.ones(len(rows)), (c_index, p_index)), shape=(len(customers), len(products))
        )
        counts.sum_duplicates()
        return cls(products, customers, counts)


def _similarity(bought: sp.csr_matrix) -> sp.csr_matrix:
    binary = bought.copy()
    binary.data[:] = 1.0
    columns = normalize(binary.tocsc(), axis=0)
    similarity = (columns.T @ columns).tocsr()
    similarity.setdiag(0.0)  # a product does not recommend itself
    similarity.eliminate_zeros()
    return similarity


def top_k(
    bought: sp.csr_matrix,
    similarity: sp.csr_matrix,
    popularity: np.ndarray,
    k: int,
    exclude_repeats: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Per customer, the K best product indexes and their scores (best first)."""
    k = min(k, bought.shape[1])
    bias = POPULARITY_WEIGHT * popularity / max(popularity.max(), 1.0)
    picks = np.empty((bought.shape[0], k), dtype=np.int64)
    values = np.empty((bought.shape[0], k), dtype=np.float64)
    binary = bought.copy()
    binary.data[:] = 1.0
    for start in range(0, bought.shape[0], BATCH):
        part = binary[start : start + BATCH]
        scores = np.asarray((part @ similarity).todense()) + bias
        if exclude_repeats:
            rows, cols = part.nonzero()
            scores[rows, cols] = -np.inf
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, best, axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")
        picks[start : start + BATCH] = np.take_along_axis(best, order, axis=1)
        values[start : start + BATCH] = np.take_along_axis(best_scores, order, axis=1)
    return picks, values


@dataclass
class RecommendationResult:
    scores: pd.DataFrame  # index CustomerId: products (list of names), product_scores
    quality: Quality


def purchase_rows(rows: ibis.Table, product: str, since: datetime | None) -> pd.DataFrame:
    table = rows.select(
        CustomerId=rows.CustomerId,
        ts=rows.ActivityTimeStamp.cast("timestamp"),
        product=rows[product].cast("string"),
    ).filter(ibis._.CustomerId.notnull() & ibis._.product.notnull())
    if since is not None:
        table = table.filter(table.ts >= since)
    return table.to_pandas()


def recommend(
    name: str,
    rows: pd.DataFrame,
    k: int,
    exclude_repeats: bool,
    max_products: int,
    test_days: int = 90,
) -> RecommendationResult:
    if rows.empty:
        raise NotEnoughData("no purchases with a product to learn from")
    first, last = rows.ts.min(), rows.ts.max()
    test_days = min(test_days, max(1, (last - first).days // 5))
    split = last - timedelta(days=test_days)
    quality = _evaluate(name, rows, split, k, exclude_repeats, max_products)
    catalogue = Catalogue.build(rows, max_products)
    popularity = np.asarray(catalogue.bought.sum(axis=0)).ravel()
    picks, values = top_k(
        catalogue.bought, _similarity(catalogue.bought), popularity, k, exclude_repeats
    )
    finite = np.isfinite(values)
    products = [list(catalogue.products[p[f]]) for p, f in zip(picks, finite, strict=True)]
    product_scores = [list(np.round(v[f], 4)) for v, f in zip(values, finite, strict=True)]
    scores = pd.DataFrame(
        {"products": products, "product_scores": product_scores}, index=catalogue.customers
    )
    return RecommendationResult(scores, quality)


def _evaluate(
    name: str,
    rows: pd.DataFrame,
    split: datetime,
    k: int,
    exclude_repeats: bool,
    max_products: int,
) -> Quality:
    before, after = rows[rows.ts < split], rows[rows.ts >= split]
    if before.empty or after.empty:
        raise NotEnoughData("purchases span too short a time to hold some out for grading")
    catalogue = Catalogue.build(before, max_products)
    index = {c: i for i, c in enumerate(catalogue.customers)}
    product_index = {p: j for j, p in enumerate(catalogue.products)}
    later = after[after.CustomerId.isin(index) & after["product"].isin(product_index)]
    if exclude_repeats:  # only new products count as found
        seen = set(zip(before.CustomerId, before["product"], strict=True))
        later = later[
            [(c, p) not in seen for c, p in zip(later.CustomerId, later["product"], strict=True)]
        ]
    truth = later.groupby("CustomerId")["product"].agg(set)
    if truth.empty:
        raise NotEnoughData("no customer bought again after the grading cutoff")
    rows_idx = np.array([index[c] for c in truth.index])
    popularity = np.asarray(catalogue.bought.sum(axis=0)).ravel()
    picks, _ = top_k(
        catalogue.bought[rows_idx],
        _similarity(catalogue.bought),
        popularity,
        k,
        exclude_repeats,
    )
    baseline_picks, _ = top_k(
        catalogue.bought[rows_idx],
        sp.csr_matrix((len(popularity),) * 2),
        popularity,
        k,
        exclude_repeats,
    )

    def success(chosen: np.ndarray) -> tuple[float, float]:
        hits = [len(truth.iloc[i] & set(catalogue.products[chosen[i]])) for i in range(len(truth))]
        return float(np.mean([h > 0 for h in hits])), float(np.mean(hits) / k)

    model_success, model_precision = success(picks)
    base_success, base_precision = success(baseline_picks)
    return Quality(
        model=name,
        kind="product_recommendation",
        metric=f"success at {k}",
        value=round(model_success, 4),
        baseline_name="most popular products",
        baseline=round(base_success, 4),
        grade=recommendation_grade(model_success, base_success),
        evaluated_on=len(truth),
        extra={
            f"precision_at_{k}": round(model_precision, 4),
            f"baseline_precision_at_{k}": round(base_precision, 4),
            "graded_after": split.isoformat(),
        },
    )
