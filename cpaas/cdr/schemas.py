"""Request bodies of the CDR endpoints."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, validates_schema

from cpaas.validation import Date, IntLike, PrefixedId, StrictSchema

MAX_PAGE = 5000


class CdrByDateSchema(StrictSchema):
    start_call_date = Date(required=True)
    end_call_date = Date(required=True)
    record_count = IntLike(minimum=1, maximum=MAX_PAGE, load_default=1000)
    offset = IntLike(minimum=0, maximum=10_000_000, load_default=0)
    after_id = IntLike(minimum=0)

    @validates_schema
    def _range(self, data: dict[str, Any], **kwargs: Any) -> None:
        start, end = data.get("start_call_date"), data.get("end_call_date")
        if start and end and end < start:
            raise ValidationError("must not be before start_call_date", "end_call_date")


class RequestIdSchema(StrictSchema):
    request_id = PrefixedId("", required=True)


class CampaignIdSchema(StrictSchema):
    campaign_id = PrefixedId("CM", required=True)
