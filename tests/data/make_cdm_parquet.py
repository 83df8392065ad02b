"""Writes tests/data/cdm_manifest/Order/Order-1.parquet (committed; rerun to regenerate).

A tiny Parquet partition for the manifest.cdm.json fixture, typed as Order.cdm.json
declares it, except Quantity, written as int32 to check that the connector widens it.
"""

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).parent / "cdm_manifest" / "Order" / "Order-1.parquet"

table = pa.table(
    {
        "OrderId": pa.array(["O-1001", "O-1002", "O-1003"]),
        "ContactId": pa.array(
            [
                "6f9619ff-8b86-d011-b42d-00c04fc964ff",
                "a3c1e2f4-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
                "6f9619ff-8b86-d011-b42d-00c04fc964ff",
            ]
        ),
        "OrderDate": pa.array(
            [
                datetime(2024, 3, 10, 14, 0),
                datetime(2024, 3, 11, 9, 30),
                datetime(2024, 3, 12, 16, 45),
            ],
            pa.timestamp("us"),
        ),
        "Total": pa.array([59.9, 120.0, 15.5], pa.float64()),
        "Quantity": pa.array([2, 1, 3], pa.int32()),
    }
)

if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, OUT)
    print(f"wrote {OUT}")
