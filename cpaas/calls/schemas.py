"""Request bodies of the call endpoints."""
from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, validates_schema

from cpaas.campaigns.schemas import VoiceParamsMixin
from cpaas.validation import (Choice, IntChoice, IntLike, Phone, PrefixedId, StrictSchema, Text,
                              TransferTarget)

#: ``on`` is click2call's own example and means both sides.
RECORDING_OPTIONS = ("both", "agent", "customer", "off")
CHANNEL_RE = re.compile(r"^[A-Za-z0-9/_.-]{1,64}$")
OTP_RE = re.compile(r"^[0-9]{4,10}$")


class Click2CallSchema(StrictSchema):
    agent_number = Phone(required=True)
    caller_id = Phone(required=True)
    destination_number = Phone(required=True)
    recording_option = Choice(RECORDING_OPTIONS, aliases={"on": "both"}, load_default="off")
    transcript = Choice(("on", "off"), load_default="off")


class Otp(Text):
    """4 to 10 digits, as a string or a JSON number."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not OTP_RE.fullmatch(text):
            raise ValidationError("must be 4 to 10 digits")
        return text


class OutboundCallSchema(VoiceParamsMixin):
    customer_number = Phone(required=True)
    otp = Otp(required=True, max_length=16)
    announce_template_id = PrefixedId("AN", required=True)
    repeat = IntLike(minimum=1, maximum=10, load_default=1)
    caller_id = Phone(required=True)


class TemplateText(Text):
    """Template text: holds ``{otp}`` exactly once and no other placeholder."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if text.count("{otp}") != 1:
            raise ValidationError("must contain {otp} exactly once")
        if "{" in text.replace("{otp}", "") or "}" in text.replace("{otp}", ""):
            raise ValidationError("only the {otp} placeholder is allowed")
        return text


class AnnounceTemplateSchema(StrictSchema):
    template_text = TemplateText(required=True, max_length=500)


class Channel(Text):
    """A live channel id as listed by ``/api/live_calls`` (spaces around it trimmed)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not CHANNEL_RE.fullmatch(text):
            raise ValidationError("must be a channel id from /api/live_calls")
        return text


class OptionalTransferTarget(TransferTarget):
    """``transfer_to``: ``""`` or null means no target (hangup and record take none)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_none=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        if value is None or value == "":
            return None
        return super()._deserialize(value, attr, data, **kwargs)


class ModifyCallSchema(StrictSchema):
    channel = Channel(required=True, max_length=80)
    modify_type = IntChoice(("0", "1", "2", "3"), required=True)
    transfer_to = OptionalTransferTarget()

    @validates_schema
    def _target(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("modify_type") in (0, 1) and not data.get("transfer_to"):
            raise ValidationError("required for a transfer (modify_type 0 or 1)", "transfer_to")


class RecordingQuerySchema(StrictSchema):
    request_id = PrefixedId("", required=True)
    recording_name = Text(max_length=300)
