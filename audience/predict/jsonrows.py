"""JSON text for a million rows at once: the Prediction table's Values column.

`json.dumps` of one dictionary per customer (with lists of dictionaries inside) took 22 s for
3.3M rows; these helpers build the same text column-wise with pandas string operations. Each
takes and returns pandas Series of JSON fragments aligned on the same index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd


def number(values: pd.Series | np.ndarray, digits: int, index: pd.Index | None = None) -> pd.Series:
    """Numbers rounded to `digits`, NaN as null."""
    series = pd.Series(values, index=index, dtype="float64").round(digits)
    text = series.map(repr)  # 0.1 stays "0.1" (repr is the shortest round-trip form)
    text = text.str.replace(r"\.0$", "", regex=True) if digits == 0 else text
    return text.where(series.notna(), "null").astype(object)


def boolean(values: pd.Series | np.ndarray, index: pd.Index | None = None) -> pd.Series:
    series = pd.Series(values, index=index, dtype="object")
    return series.map({True: "true", False: "false"}).fillna("null").astype(object)


def string(values: pd.Series | np.ndarray, index: pd.Index | None = None) -> pd.Series:
    """Quoted and escaped; one json.dumps per distinct value."""
    series = pd.Series(values, index=index, dtype="object")
    distinct = {v: json.dumps(v, ensure_ascii=False) for v in pd.unique(series.dropna())}
    return series.map(distinct).fillna("null").astype(object)


def obj(fields: dict[str, pd.Series]) -> pd.Series:
    """{"name": fragment, ...} per row."""
    parts = iter(fields.items())
    name, first = next(parts)
    text = f'{{"{name}": ' + first
    for name, fragment in parts:
        text = text + f', "{name}": ' + fragment
    return text + "}"


def array(items: Sequence[pd.Series], present: Sequence[pd.Series] | None = None) -> pd.Series:
    """[item0, item1, ...] per row; with `present`, only the items whose flag is true."""
    if not items:
        raise ValueError("an array needs at least one column of items")
    index = items[0].index
    text = pd.Series("", index=index, dtype=object)
    for i, item in enumerate(items):
        keep = present[i] if present is not None else pd.Series(True, index=index)
        separator = np.where(text == "", "", ", ")
        text = text.where(~keep, text + separator + item)
    return "[" + text + "]"
