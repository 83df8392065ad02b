"""A tiny hand-made shop for the activities, measures and segments tests.

Four CRM contacts (C1-C4); orders, order lines, loyalty points and web visits that point at
them. The reference time is 2026-01-31 00:00, so every expected number can be worked out by
hand from the rows below.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from unify_helpers import write_data

from audience.project import Project
from conftest import make_project

AS_OF = datetime(2026, 1, 31)

CONTACTS = [
    {"contact_id": "C1", "first_name": "Ann", "last_name": "Lee", "email": "ann@x.com"},
    {"contact_id": "C2", "first_name": "Bob", "last_name": "Ray", "email": "bob@x.com"},
    {"contact_id": "C3", "first_name": "Cat", "last_name": "Kim", "email": "cat@x.com"},
    {"contact_id": "C4", "first_name": "Dan", "last_name": "Fox", "email": None},
]
ORDERS = [
    {
        "order_id": 1,
        "contact_id": "C1",
        "order_ts": "2026-01-30 10:00:00",
        "amount": "100.00",
        "status": "completed",
        "channel": "web",
    },
    {
        "order_id": 2,
        "contact_id": "C1",
        "order_ts": "2025-12-31 10:00:00",
        "amount": "50.00",
        "status": "completed",
        "channel": "app",
    },
    {
        "order_id": 3,
        "contact_id": "C1",
        "order_ts": "2025-01-31 12:00:00",
        "amount": "30.00",
        "status": "returned",
        "channel": "web",
    },
    {
        "order_id": 4,
        "contact_id": "C2",
        "order_ts": "2026-01-10 09:00:00",
        "amount": "200.00",
        "status": "completed",
        "channel": "web",
    },
    {
        "order_id": 5,
        "contact_id": "C2",
        "order_ts": "2026-01-20 09:00:00",
        "amount": None,
        "status": "completed",
        "channel": "web",
    },
    {
        "order_id": 6,
        "contact_id": "C9",
        "order_ts": "2026-01-15 09:00:00",
        "amount": "10.00",
        "status": "completed",
        "channel": "web",
    },
    {
        "order_id": 7,
        "contact_id": None,
        "order_ts": "2026-01-15 09:00:00",
        "amount": "10.00",
        "status": "completed",
        "channel": "web",
    },
    {
        "order_id": 8,
        "contact_id": "C3",
        "order_ts": "2026-01-16 09:00:00",
        "amount": "999.00",
        "status": "cancelled",
        "channel": "web",
    },
]
LINES = [
    {"line_id": 1, "order_id": 1, "category": "Shoes", "quantity": 1, "unit_price": "60.00"},
    {"line_id": 2, "order_id": 1, "category": "Bags", "quantity": 2, "unit_price": "20.00"},
    {"line_id": 3, "order_id": 2, "category": "Shoes", "quantity": 1, "unit_price": "50.00"},
    {"line_id": 4, "order_id": 4, "category": "Hats", "quantity": 4, "unit_price": "50.00"},
    {"line_id": 5, "order_id": 3, "category": "Bags", "quantity": 1, "unit_price": "30.00"},
]
LEDGER = [
    {"entry_id": 1, "contact_id": "C1", "booked_at": "2025-06-01 00:00:00", "points": 100},
    {"entry_id": 2, "contact_id": "C1", "booked_at": "2025-07-01 00:00:00", "points": 300},
    {"entry_id": 3, "contact_id": "C1", "booked_at": "2025-08-01 00:00:00", "points": -250},
    {"entry_id": 4, "contact_id": "C2", "booked_at": "2026-01-01 00:00:00", "points": 50},
]
VISITS = [
    {"visit_id": i, "contact_id": c, "visit_ts": ts}
    for i, (c, ts) in enumerate(
        [
            ("C1", "2026-01-05 08:00:00"),
            ("C1", "2026-01-06 08:00:00"),
            ("C1", "2026-01-07 08:00:00"),
            ("C1", "2026-01-08 08:00:00"),
            ("C2", "2026-01-09 08:00:00"),
            ("C3", "2025-12-01 08:00:00"),
        ],
        start=1,
    )
]


def _csv(table: str, key: str, types: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": table, "path": f"data/shop_{table}.csv", "primary_key": key}
    if types:
        spec["types"] = types
    return spec


SOURCES = [
    {
        "name": "crm",
        "kind": "csv",
        "tables": [
            {"name": "contacts", "path": "data/crm_contacts.csv", "primary_key": "contact_id"}
        ],
    },
    {
        "name": "shop",
        "kind": "csv",
        "tables": [
            _csv("orders", "order_id"),
            _csv("lines", "line_id"),
            _csv("ledger", "entry_id"),
            _csv("visits", "visit_id"),
        ],
    },
]
UNIFY = {
    "tables": [
        {
            "table": "crm.contacts",
            "fields": {
                "first_name": "Person.FirstName",
                "last_name": "Person.LastName",
                "email": "Identity.Email",
            },
        }
    ]
}
RELATIONSHIPS = [
    {"name": "contact", "table": "shop.orders", "column": "contact_id", "to": "crm.contacts"},
    {"name": "order", "table": "shop.lines", "column": "order_id", "to": "shop.orders"},
    {"name": "contact", "table": "shop.ledger", "column": "contact_id", "to": "crm.contacts"},
    {"name": "contact", "table": "shop.visits", "column": "contact_id", "to": "crm.contacts"},
]
ACTIVITIES = [
    {
        "name": "orders",
        "table": "shop.orders",
        "type": "SalesOrder",
        "customer": "crm.contacts",
        "timestamp": "order_ts",
        "title": "concat('Order ', order_id)",
        "fields": {"amount": "amount", "channel": "channel", "status": "status"},
        "where": "status != 'cancelled'",
    },
    {
        "name": "lines",
        "table": "shop.lines",
        "type": "SalesOrderLine",
        "customer": "crm.contacts",
        "timestamp": "order.order_ts",
        "title": "category",
        "fields": {"category": "category", "value": "quantity * unit_price"},
    },
    {
        "name": "points",
        "table": "shop.ledger",
        "type": "Loyalty",
        "customer": "crm.contacts",
        "timestamp": "booked_at",
        "fields": {"points": "points"},
    },
    {
        "name": "visits",
        "table": "shop.visits",
        "type": "WebVisit",
        "customer": "crm.contacts",
        "timestamp": "visit_ts",
        "url": "concat('https://shop.example/v/', visit_id)",
    },
]


def write_shop(root: Path) -> None:
    write_data(
        root,
        {
            "crm_contacts": CONTACTS,
            "shop_orders": ORDERS,
            "shop_lines": LINES,
            "shop_ledger": LEDGER,
            "shop_visits": VISITS,
        },
    )


def shop_project(
    root: Path,
    measures: list[dict[str, Any]] | None = None,
    segments: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> Project:
    """The shop project with these measures and segments (data written under root/data)."""
    write_shop(root)
    settings: dict[str, Any] = {
        "unify": UNIFY,
        "relationships": RELATIONSHIPS,
        "activities": ACTIVITIES,
        "measures": measures or [],
        "segments": segments or [],
        "as_of": AS_OF,
    }
    settings.update(overrides)
    return make_project(root, SOURCES, **settings)
