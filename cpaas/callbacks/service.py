"""Callback requests: create, read, change and delete before they fire (no Flask here)."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from cpaas import ids
from cpaas.callbacks.schemas import ensure_future
from cpaas.callbacks.state import CallbackState
from cpaas.db import database
from cpaas.envelope import ApiError, NotFound
from cpaas.models import Callback
from cpaas.validation import from_utc, to_utc, utcnow


def create(account_id: str, data: dict[str, Any]) -> str:
    """Store a callback in UTC with its zone; returns its request_id."""
    return ids.insert_new(Callback, ids.request_id, lambda new_id: Callback.create(
        id=new_id, account_id=account_id, agent_number=data["agent_number"],
        caller_id=data["caller_id"], destination_number=data["destination_number"],
        recording_option=data["recording_option"], transcript=data["transcript"],
        time_zone=data["time_zone"],
        scheduled_at=to_utc(data["scheduled_at"], data["time_zone"]),
        status=CallbackState.SCHEDULED.value,
        fired_at=None, created_at=utcnow()))


def _owned(account_id: str, request_id: str) -> Callback:
    row = Callback.get_or_none((Callback.id == request_id) & (Callback.account_id == account_id))
    if row is None:
        raise NotFound("request_id", "callback")
    return row


def _pending(row: Callback) -> None:
    if row.status != CallbackState.SCHEDULED:
        raise ApiError(409, f"callback already {row.status}; it can no longer be changed",
                       {"request_id": [f"callback is {row.status}"]})


def _still_pending(row: Callback) -> Any:
    """The row, only while it has not fired (the scheduler claims it concurrently)."""
    return (Callback.id == row.id) & (Callback.status == CallbackState.SCHEDULED.value)


def update(account_id: str, data: dict[str, Any]) -> None:
    """Change only the fields sent; 409 once the callback has fired."""
    with database.atomic():
        row = _owned(account_id, data["request_id"])
        _pending(row)
        changes: dict[str, Any] = {k: data[k] for k in
                                   ("agent_number", "caller_id", "destination_number",
                                    "recording_option", "transcript", "time_zone") if k in data}
        zone = data.get("time_zone", row.time_zone)
        if "scheduled_at" in data:
            local = data["scheduled_at"]
        elif "time_zone" in data:
            # A new zone keeps the wall-clock time the user gave, now read in the new zone.
            local = from_utc(row.scheduled_at, row.time_zone)
        else:
            local = None
        if local is not None:
            try:
                ensure_future(local, zone)
            except ValidationError as err:
                raise ApiError(400, "invalid request: check scheduled_at", err.normalized_messages()) from None
            changes["scheduled_at"] = to_utc(local, zone)
        # Conditional, as the scheduler's claim is: one that fired it meanwhile wins.
        if changes and not Callback.update(**changes).where(_still_pending(row)).execute():
            _pending(_owned(account_id, row.id))


def delete(account_id: str, request_id: str) -> None:
    """Remove a callback that has not fired; 409 after it has."""
    with database.atomic():
        row = _owned(account_id, request_id)
        _pending(row)
        if not Callback.delete().where(_still_pending(row)).execute():
            _pending(_owned(account_id, request_id))


def read(account_id: str, request_id: str) -> dict[str, Any]:
    """One callback, with ``scheduled_at`` in its own zone."""
    row = _owned(account_id, request_id)
    return {
        "request_id": row.id,
        "agent_number": row.agent_number,
        "caller_id": row.caller_id,
        "destination_number": row.destination_number,
        "recording_option": row.recording_option,
        "transcript": row.transcript,
        "time_zone": row.time_zone,
        "scheduled_at": from_utc(row.scheduled_at, row.time_zone).strftime("%Y-%m-%d %H:%M:%S"),
        "status": row.status,
        "fired_at": row.fired_at.strftime("%Y-%m-%d %H:%M:%S") + " UTC" if row.fired_at else "",
    }
