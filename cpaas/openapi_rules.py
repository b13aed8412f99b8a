"""What the OpenAPI document says beyond single fields: rules between a body's fields, and
the error statuses each operation answers besides the ones every operation shares.

Rules a JSON Schema can state are schemas (``anyOf`` of the allowed combinations); the few
it cannot (an order between two dates, a time in the future) are said in the schema's
description, in the words the 400 answer uses.
"""
from __future__ import annotations

from typing import Any, Callable

from marshmallow import Schema

from cpaas import openapi_fields as f
from cpaas.telephony import voices

#: Statuses an operation may answer because of its own service, by "METHOD path".
#: Every operation also declares 401, 413 and 429; one with a body 400 and 415.
ROUTE_ERRORS: dict[str, tuple[int, ...]] = {
    "POST /api/click2call": (503,),
    "POST /api/outbound_call": (404, 503),
    "POST /api/modify_call": (404, 409),
    "GET /api/recording": (404,),
    "GET /api/transcript": (404,),
    "PATCH /api/callback": (404, 409),
    "DELETE /api/callback": (404, 409),
    "GET /api/callback": (404,),
    "POST /api/create_campaign_list": (409,),
    "POST /api/create_campaign_dnd_list": (409,),
    "POST /api/add_contact_to_list": (404,),
    "POST /api/import_broadcast_contacts_csv": (404,),
    "POST /api/add_dnd_contact_to_list": (404,),
    "POST /api/import_dnd_contacts_csv": (404,),
    "POST /api/create_campaign": (404, 409),
    "POST /api/stop_campaign": (404, 409),
    "POST /api/pause_campaign": (404, 409),
    "POST /api/resume_campaign": (404, 409),
    "POST /api/get_campaign_contacts": (404,),
    "POST /stop_campaign": (404, 409),
    "POST /api/get_cdr_by_campaign_id": (404,),
    "POST /api/get_campaign_cdr_statistics": (404,),
    "POST /api/get_list_contacts": (404,),
    "POST /api/get_dnd_list_contacts": (404,),
    "POST /api/delete_contact_from_list": (404,),
    "POST /api/delete_dnd_contact_from_list": (404,),
    "POST /api/delete_campaign_list": (404, 409),
    "POST /api/delete_campaign_dnd_list": (404, 409),
}

_Rule = Callable[[], dict[str, Any]]


def _same_number(a: str, b: str, lo: int, hi: int) -> dict[str, Any]:
    """Either of two IntLike aliases alone, or both with one value."""
    return {"anyOf": [{"not": {"required": [a, b]}}] + [
        {"properties": {a: f.int_like_value(k), b: f.int_like_value(k)}} for k in range(lo, hi + 1)]}


def _voice_on_engine() -> dict[str, Any]:
    def names(engine: str) -> list[str]:
        return sorted(n for n, voice in voices.KNOWN_VOICES.items() if voice.supports(engine))

    # Without tts_engine_type the engine is standard; without voice, Joanna (on both).
    return {"anyOf": [
        {"properties": {"tts_engine_type": {"enum": ["standard"]}, "voice": {"enum": names("standard")}}},
        {"required": ["tts_engine_type"],
         "properties": {"tts_engine_type": {"enum": ["neural"]}, "voice": {"enum": names("neural")}}},
    ]}


def _announcement() -> dict[str, Any]:
    blank_free = {"anyOf": [{"type": "string", "pattern": f"[^{f.ws()[1:-1]}]"}, {"type": "number"}]}
    recorded = f.stored_file_name(200)
    return {"anyOf": [
        {"required": ["announcement_text"],
         "properties": {"dynamic_announcement": f.choice_values(("1",), {}),
                        "announcement_text": blank_free}},
        {"required": ["dynamic_announcement", "recorded_filename"],
         "properties": {"dynamic_announcement": f.choice_values(("0",), {}),
                        "recorded_filename": recorded}},
    ]}


def _transfer_needs_target() -> dict[str, Any]:
    return {"anyOf": [
        {"required": ["transfer_to"], "properties": {"modify_type": f.choice_values(("0", "1"), {}),
                                                     "transfer_to": f.transfer_target()}},
        {"properties": {"modify_type": f.choice_values(("2", "3"), {})}},
    ]}


def _local_time_needs_hours() -> dict[str, Any]:
    from cpaas.campaigns import hours

    return {"anyOf": [
        {"not": {"required": ["contact_local_time"]}},
        {"properties": {"contact_local_time": f.choice_values(("0",), {})}},
        {"required": ["calling_hours"],
         "properties": {"calling_hours": {"type": "string",
                                          "pattern": f"^{f.ws()}*{hours.HOURS_RE.pattern}{f.ws()}*$"}}},
    ]}


def _digit_map_for_ivr() -> dict[str, Any]:
    # Its keys' length against ivr_max_digits is said in words: as 21 alternatives it
    # multiplies with the other rules past what a test-case generator will unfold.
    return {"anyOf": [{"properties": {"ivr_digit_map": {"maxProperties": 0}}},
                      {"properties": {"campaign_type": f.choice_values(("1",), {})}}]}


#: Per schema class name (looked up along the class hierarchy): combination rules.
_RULES: dict[str, list[_Rule]] = {
    "VoiceParamsMixin": [_voice_on_engine],
    "CreateCampaignSchema": [lambda: _same_number("repeat", "repeat_count", 1, 10),
                             lambda: _same_number("max_retries", "retry_attempts", 0, 10),
                             _announcement, _local_time_needs_hours, _digit_map_for_ivr],
    "ModifyCallSchema": [_transfer_needs_target],
}

#: Per schema class name: properties whose schema the field alone does not know.
_PROPERTIES: dict[str, dict[str, Callable[[], dict[str, Any]]]] = {
    "VoiceParamsMixin": {"language_code": lambda: {"type": "string",
                                                   "enum": sorted(voices.LANGUAGE_CODES)}},
    "ImportCsvSchema": {"csv_name": lambda: f.stored_file_name(200)},
    "ImportDndCsvSchema": {"dnd_csv_name": lambda: f.stored_file_name(200)},
}

#: Per schema class name: the rules no JSON Schema keyword can state.
_UNSTATED: dict[str, str] = {
    "CreateCampaignSchema": "campaign_end_date must be after campaign_start_date (both read in "
                            "time_zone). announcement_text is required (not blank) when "
                            "dynamic_announcement is 1 (the default); recorded_filename, a WAV "
                            "file uploaded by this account, when it is 0. calling_hours' start "
                            "must be before its end. No key of ivr_digit_map may be longer than "
                            "ivr_max_digits (1 when not sent).",
    "CreateCallbackSchema": "scheduled_at must be in the future in time_zone.",
    "UpdateCallbackSchema": "scheduled_at, when sent, must be in the future in the callback's "
                            "time_zone (the one sent, else the stored one).",
    "CdrByDateSchema": "end_call_date must not be before start_call_date.",
    "ModifyCallSchema": "transfer_to is required when modify_type is 0 or 1 (a transfer).",
}


def _lookup(table: dict[str, Any], schema: type[Schema]) -> list[Any]:
    return [table[cls.__name__] for cls in schema.__mro__ if cls.__name__ in table]


def apply(schema: type[Schema], document: dict[str, Any]) -> None:
    """Add ``schema``'s combination rules, property overrides and unstated rules to its
    generated JSON Schema ``document`` (changed in place)."""
    rules = [rule() for rules in _lookup(_RULES, schema) for rule in rules]
    if rules:
        document["allOf"] = rules
    for overrides in _lookup(_PROPERTIES, schema):
        for name, build in overrides.items():
            prop = document["properties"][name]
            document["properties"][name] = {**build(), **{k: prop[k] for k in
                                                         ("description", "default") if k in prop}}
    unstated = _lookup(_UNSTATED, schema)
    if unstated:
        document["description"] = " ".join(unstated)


def route_errors(method: str, path: str) -> tuple[int, ...]:
    """The statuses only this operation's service answers (404, 409, 503)."""
    return ROUTE_ERRORS.get(f"{method.upper()} {path}", ())
