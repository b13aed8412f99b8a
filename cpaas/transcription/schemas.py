"""Query of ``GET /api/transcript``."""
from __future__ import annotations

from cpaas.validation import PrefixedId, StrictSchema


class TranscriptQuerySchema(StrictSchema):
    request_id = PrefixedId("", required=True)
