"""Request bodies of the campaign manager endpoints."""
from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from cpaas.campaigns import hours
from cpaas.cdr.schemas import MAX_PAGE
from cpaas.validation import (ENGINE_TYPES, PITCHES, RATES, VOLUMES, Choice, IntChoice, IntLike,
                              LocalDateTime, Phone, PrefixedId, RetryStatuses, StrictSchema, Text,
                              TimeZone, to_utc)

#: Contact fields are a free string map; bound their number and size.
MAX_CONTACT_FIELDS = 50
MAX_CONTACTS_PER_REQUEST = 10000


class ContactFields(fields.Dict):
    """``contact_fields``: a map of short names to short strings (numbers become strings)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ValidationError("must be an object of field names to strings")
        if len(value) > MAX_CONTACT_FIELDS:
            raise ValidationError(f"at most {MAX_CONTACT_FIELDS} fields")
        return clean_contact_fields(value)


def clean_contact_fields(value: dict[Any, Any]) -> dict[str, str]:
    """Validate one contact's free fields (shared with the CSV importer)."""
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not (0 < len(key) <= 64) or not key.isprintable():
            raise ValidationError(f"field name {str(key)[:64]!r} must be 1-64 printable characters")
        if isinstance(item, bool) or not isinstance(item, (str, int, float)) or item is None:
            raise ValidationError(f"field {key!r} must be a string")
        text = str(item)
        if len(text) > 500 or not text.isprintable():
            raise ValidationError(f"field {key!r} must be at most 500 printable characters")
        out[key] = text
    return out


class CreateListSchema(StrictSchema):
    list_name = Text(required=True, max_length=100, strip=True, min_length=1)


class ContactSchema(StrictSchema):
    contact_name = Text(load_default="", max_length=100)
    contact_number = Phone(required=True)
    contact_fields = ContactFields(load_default=dict)


class AddContactsSchema(StrictSchema):
    list_id = PrefixedId("LS", required=True)
    contacts = fields.List(fields.Nested(ContactSchema), required=True,
                           validate=validate.Length(
                               1, MAX_CONTACTS_PER_REQUEST,
                               error=f"must hold 1 to {MAX_CONTACTS_PER_REQUEST} contacts"))


#: The columns of the two CSV files, as the upload and import operations describe them.
CONTACTS_CSV_COLUMNS = (
    "Contacts CSV: UTF-8 with a header row. contact_number (required; 8-15 digits, optional "
    "leading +), contact_name (optional, up to 100 characters), and any other named column "
    "(field1, field2, ...: at most 50, values up to 500 characters) becomes a contact field "
    "of that name, which announcement_text reads as {field1}. Empty cells are left out; a row "
    "with a bad number or value is skipped and reported; a number already in the list is "
    "updated. Example: examples/contacts.csv "
    "(contact_name,contact_number,field1,field2,field3).")
DND_CSV_COLUMNS = (
    "DND CSV: UTF-8 with a header row. dnd_contact_number (or contact_number; required, 8-15 "
    "digits, optional leading +) and dnd_contact_name (or contact_name; optional). Example: "
    "examples/dnd.csv (dnd_contact_name,dnd_contact_number).")


class ImportCsvSchema(StrictSchema):
    list_id = PrefixedId("LS", required=True)
    csv_name = Text(required=True, max_length=200, strip=True)


class CreateDndListSchema(StrictSchema):
    dnd_list_name = Text(required=True, max_length=100, strip=True, min_length=1)


class DndContactSchema(StrictSchema):
    dnd_contact_name = Text(load_default="", max_length=100)
    dnd_contact_number = Phone(required=True)


class AddDndContactsSchema(StrictSchema):
    dnd_list_id = PrefixedId("DN", required=True)
    dnd_contacts = fields.List(fields.Nested(DndContactSchema), required=True,
                               validate=validate.Length(
                                   1, MAX_CONTACTS_PER_REQUEST,
                                   error=f"must hold 1 to {MAX_CONTACTS_PER_REQUEST} contacts"))


class ImportDndCsvSchema(StrictSchema):
    dnd_list_id = PrefixedId("DN", required=True)
    dnd_csv_name = Text(required=True, max_length=200, strip=True)


class OptionalDndListId(PrefixedId):
    """``dnd_list_id`` may be empty or absent: a campaign without a DND list."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return super()._deserialize(value, attr, data, **kwargs)


class VoiceName(Text):
    """A Polly voice name from the known table (400 lists them otherwise)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        from cpaas.telephony import voices

        name = super()._deserialize(value, attr, data, **kwargs)
        try:
            voices.lookup(name)
        except voices.UnknownVoice as err:
            raise ValidationError(str(err)) from None
        return name


class VoiceParamsMixin(StrictSchema):
    """The TTS parameters shared by OTP calls and campaigns, with the spec's defaults."""

    voice = VoiceName(load_default="Joanna", max_length=32)
    volume = Choice(VOLUMES, load_default="medium")
    rate = Choice(RATES, load_default="medium")
    pitch = Choice(PITCHES, load_default="medium")
    language_code = Text(load_default="en-US", max_length=10)
    tts_engine_type = Choice(ENGINE_TYPES, load_default="standard")

    @validates_schema
    def _speakable(self, data: dict[str, Any], **kwargs: Any) -> None:
        """The combination must be one the TTS engines accept (a voice must speak the
        language and exist on the chosen engine type, as on Polly)."""
        from cpaas.telephony import tts, voices

        code = data.get("language_code", "en-US")
        if code not in voices.LANGUAGE_CODES:
            raise ValidationError(f"must be one of: {', '.join(sorted(voices.LANGUAGE_CODES))}",
                                  "language_code")
        if "voice" not in data:
            return
        try:
            tts.Prosody.from_request(data)
        except ValueError as err:
            raise ValidationError(str(err), "tts_engine_type") from None


#: The keys a caller may press (DTMF) and what a digit map entry may name.
IVR_KEYS_RE = re.compile(r"[0-9*#]{1,20}")
IVR_TARGET_RE = re.compile(r"(?:agent:[0-9]{2,6}|number:\+?[0-9]{8,15})")
MAX_IVR_MAP_ENTRIES = 12


class CallingHours(fields.String):
    """``calling_hours``: one daily range ``HH:MM-HH:MM``, start before end; blank means
    no restriction. Returns the range without surrounding spaces, or ""."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            return ""
        try:
            return str(hours.parse_hours(text))
        except ValueError as err:
            raise ValidationError(str(err)) from None


class IvrDigitMap(fields.Field):
    """``ivr_digit_map``: keys pressed (1-20 of 0-9 * #) to ``agent:<extension>`` or
    ``number:<number>`` (stored without its ``+``), at most 12 entries."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ValidationError("must be an object of keys pressed to agent:<extension> or "
                                  "number:<number>")
        if len(value) > MAX_IVR_MAP_ENTRIES:
            raise ValidationError(f"at most {MAX_IVR_MAP_ENTRIES} entries")
        out: dict[str, str] = {}
        for keys, target in value.items():
            if not isinstance(keys, str) or not IVR_KEYS_RE.fullmatch(keys):
                raise ValidationError(f"key {str(keys)[:20]!r} must be 1-20 of the keys 0-9 * #")
            if not isinstance(target, str) or not IVR_TARGET_RE.fullmatch(target):
                raise ValidationError(f"{keys!r} must map to agent:<2-6 digit extension> or "
                                      "number:<8-15 digits>")
            out[keys] = target.replace("number:+", "number:", 1)
        return out


class CreateCampaignSchema(VoiceParamsMixin):
    list_id = PrefixedId("LS", required=True)
    dnd_list_id = OptionalDndListId("DN", load_default=None)
    campaign_name = Text(required=True, max_length=100, strip=True, min_length=1)
    campaign_type = IntChoice(("0", "1"), required=True)
    campaign_caller_id = Phone(required=True)
    dynamic_announcement = IntChoice(("0", "1"), load_default=1)
    recorded_filename = Text(load_default="", max_length=200, strip=True)
    announcement_text = Text(load_default="", max_length=2000, multiline=True)
    campaign_start_date = LocalDateTime(iso=True, required=True)
    campaign_end_date = LocalDateTime(iso=True, required=True)
    time_zone = TimeZone(load_default="UTC")
    repeat = IntLike(minimum=1, maximum=10)
    repeat_count = IntLike(minimum=1, maximum=10)
    max_retries = IntLike(minimum=0, maximum=10)
    retry_attempts = IntLike(minimum=0, maximum=10)
    retry_time = IntLike(minimum=1, maximum=86400, load_default=60)
    retry_on_statuses = RetryStatuses(load_default=lambda: ["NOANSWER", "BUSY"])
    calls_per_minute = IntLike(minimum=1, maximum=6000, load_default=10)
    calling_hours = CallingHours(load_default="", allow_none=True)
    contact_local_time = IntChoice(("0", "1"), load_default=0)
    ivr_max_digits = IntLike(minimum=1, maximum=20, load_default=1)
    ivr_timeout = IntLike(minimum=1, maximum=60, load_default=5)
    ivr_digit_map = IvrDigitMap(load_default=dict, allow_none=True)

    @validates_schema
    def _hours_and_ivr(self, data: dict[str, Any], **kwargs: Any) -> None:
        """contact_local_time moves calling_hours into each contact's zones, so it needs
        them; a digit map belongs to an IVR campaign and fits ivr_max_digits."""
        if data.get("contact_local_time") == 1 and not data.get("calling_hours"):
            raise ValidationError("1 needs calling_hours (the hours it applies in each "
                                  "contact's own time zone)", "contact_local_time")
        digit_map = data.get("ivr_digit_map") or {}
        if digit_map and data.get("campaign_type") == 0:
            raise ValidationError("only for campaign_type 1 (IVR)", "ivr_digit_map")
        most = data.get("ivr_max_digits", 1)
        longer = [keys for keys in digit_map if len(keys) > most]
        if longer:
            raise ValidationError(f"key {longer[0]!r} is longer than ivr_max_digits ({most})",
                                  "ivr_digit_map")

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        for a, b in (("repeat", "repeat_count"), ("max_retries", "retry_attempts")):
            if a in data and b in data and data[a] != data[b]:
                raise ValidationError(f"{a} and {b} are the same setting; they disagree", b)
        if data.get("dynamic_announcement", 1) == 1 and not data.get("announcement_text", "").strip():
            raise ValidationError("required when dynamic_announcement is 1", "announcement_text")
        if data.get("dynamic_announcement") == 0 and not data.get("recorded_filename"):
            raise ValidationError("required when dynamic_announcement is 0", "recorded_filename")
        start, end = data.get("campaign_start_date"), data.get("campaign_end_date")
        zone = data.get("time_zone", "UTC")
        if start and end and to_utc(end, zone) <= to_utc(start, zone):
            raise ValidationError("must be after campaign_start_date", "campaign_end_date")

    @post_load
    def _merge(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["repeat"] = data.pop("repeat_count", None) or data.get("repeat") or 1
        retries = data.pop("retry_attempts", None)
        data["max_retries"] = data.get("max_retries", retries if retries is not None else 0)
        zone = data["time_zone"]
        data["start_at"] = to_utc(data.pop("campaign_start_date"), zone)
        data["end_at"] = to_utc(data.pop("campaign_end_date"), zone)
        data["calling_hours"] = data.get("calling_hours") or ""
        data["ivr_digit_map"] = data.get("ivr_digit_map") or {}
        return data


class CampaignIdSchema(StrictSchema):
    campaign_id = PrefixedId("CM", required=True)


# -- reading back and removing lists and their entries ------------------------------------

#: The CDR reads' page limits, so every paged read pages alike.
MAX_OFFSET = 10_000_000


class PageSchema(StrictSchema):
    """``record_count``/``offset`` paging, as ``get_cdr_by_date`` pages."""

    record_count = IntLike(minimum=1, maximum=MAX_PAGE, load_default=1000,
                           metadata={"description": f"How many records to return (1-{MAX_PAGE})."})
    offset = IntLike(minimum=0, maximum=MAX_OFFSET, load_default=0,
                     metadata={"description": "How many records to skip first."})


_LIST_ID = "A list_id of your account (from create_campaign_list or get_campaign_lists)."
_DND_LIST_ID = ("A dnd_list_id of your account (from create_campaign_dnd_list or "
                "get_dnd_lists).")


class ListContactsSchema(PageSchema):
    list_id = PrefixedId("LS", required=True, metadata={"description": _LIST_ID})


class DndListContactsSchema(PageSchema):
    dnd_list_id = PrefixedId("DN", required=True, metadata={"description": _DND_LIST_ID})


class ListIdSchema(StrictSchema):
    list_id = PrefixedId("LS", required=True, metadata={"description": _LIST_ID})


class DndListIdSchema(StrictSchema):
    dnd_list_id = PrefixedId("DN", required=True, metadata={"description": _DND_LIST_ID})


class DeleteContactSchema(ListIdSchema):
    contact_number = Phone(required=True, metadata={
        "description": "The contact's number, as added (8-15 digits, optional leading +)."})


class DeleteDndContactSchema(DndListIdSchema):
    dnd_contact_number = Phone(required=True, metadata={
        "description": "The DND number, as added (8-15 digits, optional leading +)."})


class CampaignContactsSchema(PageSchema):
    """``get_campaign_contacts``: a page by ``offset``, or after the last ``contact_id``
    seen (``after_id``, steady while contacts are added; it wins when both are given)."""

    campaign_id = PrefixedId("CM", required=True, metadata={
        "description": "A campaign_id of your account (from create_campaign)."})
    after_id = IntLike(minimum=0, maximum=10**12 - 1, metadata={
        "description": "Return the contacts after this contact_id (from a previous page)."})
