"""Request bodies of ``/api/callback``."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, validates_schema

from cpaas.validation import (Choice, LocalDateTime, Phone, PrefixedId, StrictSchema, TimeZone,
                              to_utc, utcnow)

RECORDING_OPTIONS = ("on", "off")


def ensure_future(local, zone: str) -> None:
    if to_utc(local, zone) <= utcnow():
        raise ValidationError("must be in the future in time_zone", "scheduled_at")


class CreateCallbackSchema(StrictSchema):
    agent_number = Phone(required=True)
    caller_id = Phone(required=True)
    destination_number = Phone(required=True)
    recording_option = Choice(RECORDING_OPTIONS, load_default="off")
    transcript = Choice(("on", "off"), load_default="off")
    time_zone = TimeZone(load_default="UTC")
    scheduled_at = LocalDateTime(required=True)

    @validates_schema
    def _when(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "scheduled_at" in data:
            ensure_future(data["scheduled_at"], data.get("time_zone", "UTC"))


class UpdateCallbackSchema(StrictSchema):
    """PATCH: only ``request_id`` is required; the zone check happens in the service,
    which knows the stored zone when the body does not change it."""

    request_id = PrefixedId("", required=True)
    agent_number = Phone()
    caller_id = Phone()
    destination_number = Phone()
    recording_option = Choice(RECORDING_OPTIONS)
    transcript = Choice(("on", "off"))
    time_zone = TimeZone()
    scheduled_at = LocalDateTime()


class CallbackIdSchema(StrictSchema):
    request_id = PrefixedId("", required=True)
