"""Customers: one customer by CustomerId, by a source key, e-mail or phone, and its activities.

Answers come from the current run's serving store (audience/serving.py), whose values are the
customer's JSON response already: when the customer has no real-time writes the stored bytes
are sent as they are, without parsing. Real-time writes the run has not folded in yet are
merged on the way out: profile fields posted since the run override the run's values, and
posted activities join the timeline in time order.

The handlers are `async def` and read the store inline: an LMDB read takes microseconds, far
less than handing the request to a worker thread would. The two lookups call deps.py's key
check and run view directly instead of declaring them with Depends (see `_authorised`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from audience.api.deps import get_view, viewer
from audience.api.server import RunView, Server
from audience.serving import ServingStore, normalize_email, normalize_phone, parse_time

router = APIRouter(tags=["customers"])

JSON = "application/json"
MAX_LIMIT = 1_000
MAX_OFFSET = 100_000  # paging deeper walks that many activities per request


# -- response models (for the OpenAPI document; the hot path sends prebuilt JSON) --------------
class SourceKey(BaseModel):
    source: str = Field(description="Data source name, e.g. crm.")
    table: str = Field(description="Table of the source, e.g. contacts.")
    key: str = Field(description="The record's primary key in that table.")


class Enrichment(BaseModel):
    provider: str | None
    type: str | None
    values: Any = Field(description="The enrichment's values (JSON).")


class Prediction(BaseModel):
    provider: str | None
    model: str | None
    values: Any = Field(description="The model's outputs for this customer (JSON).")


class Customer(BaseModel):
    CustomerId: str
    profile: dict[str, Any] = Field(
        description="Unified profile fields (real-time updates since the run applied)."
    )
    keys: list[SourceKey] = Field(description="The source records unified into this customer.")
    measures: dict[str, Any] = Field(description="Customer attributes (measures) by name.")
    segments: list[str] = Field(description="Segments the customer is a member of.")
    enrichments: list[Enrichment]
    predictions: list[Prediction]


class Customers(BaseModel):
    customers: list[Customer]


class Activity(BaseModel):
    CustomerId: str
    ActivityId: str
    SourceEntityName: str | None
    SourceActivityId: str | None
    ActivityType: str | None
    ActivityTimeStamp: str | None = Field(description="ISO 8601, UTC.")
    Title: str | None
    Description: str | None
    URL: str | None
    SemanticData: Any = Field(description="The activity's fields (a JSON object).")
    RangeIndex: str | None = None
    UnifiedActivityId: str | None = None


class ActivityPage(BaseModel):
    items: list[Activity] = Field(description="Newest first.")
    next_offset: int | None = Field(description="The offset of the next page; null on the last.")


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such customer."}}


# -- helpers -----------------------------------------------------------------------------------
async def _authorised(request: Request) -> tuple[Server, RunView]:
    """The viewer check and the current run, as plain calls of deps.py's dependencies.

    Resolved by FastAPI (Depends), the same two took a tenth of a lookup's server time: 174
    instead of 156 us of CPU per request, 0.45x instead of 0.50x hello-world's rate (1M
    customers, benchmarks/api_load.py). Same checks, same order (401 before 503).
    """
    server: Server = request.app.state.server
    await viewer(request, server)
    return server, await get_view(server)


def _store(view: RunView) -> ServingStore:
    store = view.serving
    if not store.available:
        raise HTTPException(503, store.missing or "the current run has no serving store")
    return store


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _customer_bytes(server: Server, view: RunView, customer_id: str) -> bytes | None:
    """The customer's JSON with real-time profile updates applied; None when unknown."""
    raw = view.serving.customer_json(customer_id)
    if raw is None or not server.realtime.has_updates(customer_id, view.run):
        return raw
    fields = server.realtime.profile_fields(customer_id, view.run)
    if not fields:  # only activities are pending: they are not part of this document
        return raw
    customer = json.loads(raw)
    customer["profile"].update(fields)
    return _dumps(customer)


def _customers_bytes(server: Server, view: RunView, customer_ids: list[str]) -> bytes:
    found = [_customer_bytes(server, view, c) for c in customer_ids]
    return b'{"customers":[' + b",".join(f for f in found if f is not None) + b"]}"


def _utc(moment: datetime | None, name: str) -> datetime | None:
    """A time as naive UTC, as runs store them (a naive one is taken to be UTC)."""
    if moment is None or moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable time
        raise HTTPException(400, f"{name} is out of range: {moment.isoformat()}") from None


# -- routes ------------------------------------------------------------------------------------
LOOKUP_PARAMETERS = [
    ("source", "With table and key: a source record, e.g. crm."),
    ("table", "The source's table, e.g. contacts."),
    ("key", "The record's primary key, e.g. C123."),
    ("email", "Any e-mail of the customer (any case, surrounding spaces ignored)."),
    ("phone", "Any phone number of the customer, in any format."),
]


# /customers/lookup is declared before /customers/{customer_id}, which would otherwise take it.
# Its parameters are read from the query string directly and documented by hand: FastAPI's
# per-request handling of five declared query parameters cost about as much as the rest of
# the lookup (~50 us of ~300 us, measured), and they are plain optional strings.
@router.get(
    "/customers/lookup",
    response_model=Customer | Customers,
    responses={
        200: {
            "description": "By source key: the customer. By e-mail or phone: every customer "
            "with it (a family may share an e-mail), possibly none."
        },
        400: {"description": "Parameters missing or contradictory."},
        404: {"description": "No customer has that source key."},
    },
    summary="Find customers by source key, e-mail or phone",
    description="Give source, table and key together, or email, or phone.",
    openapi_extra={
        "parameters": [
            {
                "name": n,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": d,
            }
            for n, d in LOOKUP_PARAMETERS
        ]  # fmt: skip
    },
)
async def lookup(request: Request) -> Response:
    server, view = await _authorised(request)
    query = request.query_params
    source, table, key = query.get("source"), query.get("table"), query.get("key")
    email, phone = query.get("email"), query.get("phone")
    by_key = [p for p in (source, table, key) if p is not None]
    given = [name for name, v in (("email", email), ("phone", phone)) if v is not None]
    if by_key:
        given.append("source+table+key")
    if len(given) != 1:
        what = "nothing" if not given else " and ".join(given)
        raise HTTPException(
            400,
            f"give exactly one of: source, table and key (?source=crm&table=contacts&key=C123),"
            f" email (?email=ann@example.com) or phone (?phone=555-123-4567); got {what}",
        )
    store = _store(view)
    if by_key:
        if source is None or table is None or key is None:
            missing = [
                n for n, v in (("source", source), ("table", table), ("key", key)) if v is None
            ]
            raise HTTPException(
                400,
                f"a source key needs source, table and key together; missing {', '.join(missing)}",
            )
        customer_id = store.by_key(source, table, key)
        body = _customer_bytes(server, view, customer_id) if customer_id else None
        if body is None:
            raise HTTPException(404, f"no customer for {source}.{table} key {key}")
        return Response(body, media_type=JSON)
    if email is not None:
        if not normalize_email(email):
            raise HTTPException(400, "email is empty")
        return Response(_customers_bytes(server, view, store.by_email(email)), media_type=JSON)
    assert phone is not None
    if not normalize_phone(phone):
        raise HTTPException(400, f"phone '{phone}' has no digits")
    return Response(_customers_bytes(server, view, store.by_phone(phone)), media_type=JSON)


# The path parameter is read from the request and documented by hand, like the lookup's
# query parameters: FastAPI's per-request parameter handling is a measurable share of this
# route's ~150 us of CPU.
@router.get(
    "/customers/{customer_id}",
    response_model=Customer,
    responses=NOT_FOUND,
    summary="One customer: profile, source keys, measures, segments, enrichments, predictions",
    openapi_extra={
        "parameters": [
            {
                "name": "customer_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "The customer's CustomerId (a GUID).",
            }
        ]
    },
)
async def get_customer(request: Request) -> Response:
    server, view = await _authorised(request)
    return customer_response(server, view, request.path_params["customer_id"])


def customer_response(server: Server, view: RunView, customer_id: str) -> Response:
    """The customer's JSON response (404 when unknown), for a caller already authorised."""
    _store(view)
    body = _customer_bytes(server, view, customer_id)
    if body is None:
        raise HTTPException(404, f"no customer with CustomerId '{customer_id}'")
    return Response(body, media_type=JSON)


@router.get(
    "/customers/{customer_id}/activities",
    response_model=ActivityPage,
    responses={**NOT_FOUND, 400: {"description": "start is not before end."}},
    summary="The customer's activities, newest first, paged",
    dependencies=[Depends(viewer)],  # a dependency: the key is checked before the parameters
)
async def activities(
    customer_id: str,
    request: Request,
    type: list[str] | None = Query(None, description="Only these activity types (repeatable)."),
    start: datetime | None = Query(None, description="From this time (inclusive; UTC if naive)."),
    end: datetime | None = Query(None, description="Before this time (exclusive; UTC if naive)."),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    view: RunView = Depends(get_view),
) -> Response:
    store = _store(view)
    start, end = _utc(start, "start"), _utc(end, "end")
    if start is not None and end is not None and start >= end:
        raise HTTPException(
            400, f"start ({start.isoformat()}) must be before end ({end.isoformat()})"
        )
    if store.customer_json(customer_id) is None:
        raise HTTPException(404, f"no customer with CustomerId '{customer_id}'")
    types = set(type) if type else None
    wanted = offset + limit + 1  # one more than the page tells whether another page follows
    server: Server = request.app.state.server
    live = []
    if server.realtime.has_updates(customer_id, view.run):
        live = [
            a
            for a in server.realtime.activities(customer_id, view.run)
            if _matches(a, types, start, end)
        ]
    raw = store.activities_json(customer_id, types, start, end, wanted)
    more = len(raw) + len(live) > offset + limit
    next_offset = offset + limit if more else None
    if not live:
        page = raw[offset : offset + limit]
        tail = b"null" if next_offset is None else str(next_offset).encode()
        return Response(
            b'{"items":[' + b",".join(page) + b'],"next_offset":' + tail + b"}", media_type=JSON
        )
    # Real-time activities first among equal times: sorted() keeps that order for ties.
    merged = sorted(
        [*live, *(json.loads(r) for r in raw)],
        key=lambda a: parse_time(a.get("ActivityTimeStamp")) or datetime.min,
        reverse=True,
    )
    return Response(
        _dumps({"items": merged[offset : offset + limit], "next_offset": next_offset}),
        media_type=JSON,
    )


def _matches(
    activity: dict[str, Any], types: set[str] | None, start: datetime | None, end: datetime | None
) -> bool:
    if types is not None and activity.get("ActivityType") not in types:
        return False
    if start is None and end is None:
        return True
    moment = parse_time(activity.get("ActivityTimeStamp"))
    if moment is None:
        return False
    return (start is None or moment >= start) and (end is None or moment < end)
