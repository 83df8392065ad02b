"""Real-time writes between runs: post an activity, update profile fields (contributor keys).

Writes go to the workspace's RealtimeStore (audience/realtime.py): durable when the response
is sent, visible at once to every reader, and folded into the next run, so nothing posted is
lost and batch and real-time agree afterwards. Each write is recorded in the audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
from fastapi import APIRouter, Body, Depends, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from audience.api.auth import Principal
from audience.api.deps import contributor, get_server, get_view
from audience.api.routes.lists import run_database
from audience.api.server import RunView, Server
from audience.realtime import (
    ACTIVITY_TYPE,
    MAX_SOURCE_ID,
    MAX_TEXT,
    RealtimeConflict,
    RealtimeError,
    check_profile_fields,
    editable_columns,
    key_columns,
)

router = APIRouter(tags=["real-time"])


class ActivityIn(BaseModel):
    """An activity as a client posts it."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(
        pattern=ACTIVITY_TYPE.pattern,
        max_length=100,
        description="WebVisit, SalesOrder, ... or a custom name.",
        examples=["WebVisit"],
    )
    timestamp: datetime | None = Field(
        None, description="When it happened (ISO 8601; default now). Naive times are UTC."
    )
    title: str | None = Field(None, max_length=MAX_TEXT)
    description: str | None = Field(None, max_length=MAX_TEXT)
    url: str | None = Field(None, max_length=2_000)
    data: dict[str, Any] = Field(
        default_factory=dict, description="Semantic fields, published as SemanticData."
    )
    source_id: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_SOURCE_ID,
        description="The client's id of the event: posting it again stores it once.",
    )


def _customer(server: Server, view: RunView, customer_id: str) -> str:
    """The customer's ID in the current run; 404 when there is no such customer."""
    serving = view.serving
    if getattr(serving, "available", False):
        found = serving.customer(customer_id)
        if found is None:
            raise HTTPException(404, f"no customer '{customer_id}' in the current run")
        return str(found.get("CustomerId") or customer_id)
    # A run without a serving store (made before the API existed): ask its profile table.
    db = run_database(server, view)
    profile = db.table("CustomerProfile")
    matches = db.scalar(profile.filter(profile.CustomerId == customer_id).count())
    if not matches:
        raise HTTPException(404, f"no customer '{customer_id}' in the current run")
    return customer_id


_columns: dict[str, dict[str, pa.DataType]] = {}


def _editable(server: Server, view: RunView) -> dict[str, pa.DataType]:
    """Profile fields a client may set: the current run's CustomerProfile columns."""
    from audience.outputs import read_schema

    if view.run.id not in _columns:
        schema = read_schema(view.run.table_path("CustomerProfile"))
        _columns.clear()  # only the current run's are needed
        _columns[view.run.id] = editable_columns(schema, key_columns(server.project))
    return _columns[view.run.id]


@router.post("/customers/{customer_id}/activities", status_code=201)
def post_activity(
    customer_id: str,
    activity: ActivityIn,
    response: Response,
    principal: Principal = Depends(contributor),
    server: Server = Depends(get_server),
    view: RunView = Depends(get_view),
) -> dict[str, Any]:
    """Store an activity of a customer: 201 with it, or 200 with the stored one when its
    source_id was posted before."""
    customer = _customer(server, view, customer_id)
    try:
        stored, created = server.realtime.record_activity(
            customer, activity.model_dump(exclude_none=True)
        )
    except RealtimeConflict as e:
        raise HTTPException(409, str(e)) from None
    except RealtimeError as e:
        raise HTTPException(422, str(e)) from None
    if not created:
        response.status_code = 200
    server.audit.record(
        principal,
        "activity.add",
        customer,
        {"ActivityId": stored["ActivityId"], "type": stored["ActivityType"], "new": created},
    )
    return stored


@router.patch("/customers/{customer_id}", tags=["customers"])
def update_profile(
    customer_id: str,
    fields: dict[str, Any] = Body(
        ...,
        description="Profile fields and their new values; null clears a field.",
        examples=[{"FirstName": "Ann", "Email": "ann@example.com"}],
    ),
    principal: Principal = Depends(contributor),
    server: Server = Depends(get_server),
    view: RunView = Depends(get_view),
) -> dict[str, Any]:
    """Set profile fields of a customer at once; the next runs apply them over the sources'
    values (they win until they are updated again)."""
    customer = _customer(server, view, customer_id)
    try:
        checked = check_profile_fields(fields, _editable(server, view))
        stored = server.realtime.update_profile(customer, checked)
    except RealtimeError as e:
        raise HTTPException(422, str(e)) from None
    server.audit.record(principal, "profile.update", customer, {"fields": sorted(stored)})
    return {"CustomerId": customer, "fields": stored}
