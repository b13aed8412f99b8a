"""Descriptions of the API's fields, in the words of the API spec this platform implements.

Keyed by field name, so every schema that uses a name gets its description without
repeating it; ``BY_SCHEMA`` holds the few names whose meaning differs between requests.
Allowed values are left to the schema's own ``enum``/``pattern`` (the spec's lists have
stray spaces such as ``'x- low'``). Names the spec does not describe are marked
"(not in the spec)".
"""
from __future__ import annotations

DESCRIPTIONS: dict[str, str] = {
    "agent_number": "The agent's mobile number to dial (8 to 15 digits, optional leading +).",
    "announce_template_id": "The approved otp announce template id for the account.",
    "announcement_text": "The dynamic text with variables which we want to announce to every "
                         "contact in the campaign.",
    "caller_id": "The caller id which you want to display, when agent or destination number "
                 "receives call.",
    "calls_per_minute": "Number of calls to dial per minute for the campaign.",
    "campaign_caller_id": "The caller_id which you want to display while dialing contacts in the "
                          "campaign.",
    "campaign_end_date": "The date and time when the campaign should end.",
    "campaign_id": "The campaign_id generated while creating campaign (from create_campaign API).",
    "campaign_name": "Provide unique campaign name of your choice.",
    "campaign_start_date": "The date and time when the campaign should start.",
    "campaign_type": "0=only announce, 1=Survey.",
    "channel": "For Blind Transfer: provide transferer channel. Whoever wants to transfer just "
               "provide his channel only. For Attended Transfer: provide customer channel.",
    "contacts": "Provide array of contacts.",
    "csv_name": "Provide CSV file name which you uploaded (POST /api/upload_file).",
    "customer_number": "The mobile number of customers with country code.",
    "destination_number": "The destination number to dial (8 to 15 digits, optional leading +).",
    "dnd_contacts": "Provide array of dnd contacts.",
    "dnd_csv_name": "Provide CSV file name for DND contacts which you uploaded "
                    "(POST /api/upload_file).",
    "dnd_list_id": "Provide created dnd_list_id of your account.",
    "dnd_list_name": "Provide unique dnd_list_name of your choice.",
    "dynamic_announcement": "0=pre-recorded file play, 1=play dynamic given text with variables "
                            "provided.",
    "end_call_date": "CDR end from this date or less than this date.",
    "language_code": "Provide language code in which you may need to announce.",
    "list_id": "Provide created list_id of your account.",
    "list_name": "Provide unique list_name of your choice.",
    "max_retries": "Max number of retries to dial contact number if call fails.",
    "modify_type": "0=blind transfer, 1=attended transfer, 2=hangup, 3=start recording.",
    "offset": "Offset value to skip some records. E.g., If given 5 then it will skip initial 5 "
              "records.",
    "otp": "The one-time password which you want to announce.",
    "pitch": "Provide pitch type.",
    "rate": "Provide rate of speed of announcement.",
    "record_count": "Number of CDR records you want in response.",
    "recorded_filename": "The pre uploaded wav filename which we want to play when contact "
                         "answers the call in the campaign.",
    "recording_option": "Possible values: on, off.",
    "repeat": "Number of times the announcement will happen.",
    "repeat_count": "Number of times the announcement should happen (the same setting as repeat).",
    "request_id": "The request_id generated from API request like outbound_call, click2call.",
    "retry_attempts": "Number of times to retry when contact does not answer the call (the same "
                      "setting as max_retries).",
    "retry_on_statuses": "On which status you need to re-dial the contact. E.g., NOANSER, BUSY "
                         "etc. A list, or a comma-separated string.",
    "retry_time": "After how much seconds retry should happen.",
    "scheduled_at": "Future date and time in format: YYYY-mm-dd hh:mm:ss.",
    "start_call_date": "CDR start from this date or greater than this date.",
    "time_zone": "Provide time zone for the dates, E.g., Asia/Kolkata, US/Eastern etc. "
                 "Default: UTC.",
    "transcript": "Possible values on, off. If on it will generate transcription of the call. "
                  "(not in the spec) Both sides are then recorded for the transcript whatever "
                  "recording_option says; audio recorded only for it is deleted once it is "
                  "made, never offered for download. Read it with GET /api/transcript.",
    "transfer_to": "SIP Agent extension or External number with country code.",
    "tts_engine_type": "Provide engine type for TTS.",
    "voice": "Male or female voice ids which you want to use for announcement.",
    "volume": "Provide volume value.",
    # Not in the spec:
    "after_id": "(not in the spec) Keyset paging: only CDRs with a larger id; faster than offset "
                "for deep pages.",
    "contact_name": "(not in the spec) The contact's name.",
    "contact_number": "(not in the spec) The contact's number (8 to 15 digits, optional leading +).",
    "contact_fields": "(not in the spec) Free fields of the contact (field1, field2, ...), for "
                      "the announcement's variables.",
    "dnd_contact_name": "(not in the spec) The DND entry's name.",
    "dnd_contact_number": "(not in the spec) The number never to call.",
    "template_text": "(not in the spec) The announcement, holding {otp} exactly once.",
    "calling_hours": "(not in the spec) The hours of each day, inside the campaign's window, "
                     "when it may dial: one range HH:MM-HH:MM (24-hour clock, start before end, "
                     "end exclusive), in time_zone, or in each contact's own zone with "
                     "contact_local_time 1. Empty or absent: any time of the window.",
    "contact_local_time": "(not in the spec) 1: calling_hours apply in each contact's own local "
                          "time, from the time zones of its number (a number in several zones "
                          "must fit all of them; one with none uses time_zone). Needs "
                          "calling_hours. Default 0.",
    "ivr_max_digits": "(not in the spec) How many keys an IVR campaign gathers after its "
                      "announcement (keys pressed during it count). Default 1.",
    "ivr_timeout": "(not in the spec) Seconds an IVR campaign waits for the keys. Default 5.",
    "ivr_digit_map": "(not in the spec) IVR campaigns (campaign_type 1) only: keys pressed to "
                     "where the contact is transferred, agent:<extension> or number:<number>, "
                     "e.g. {\"0\": \"agent:102\", \"9\": \"number:919900000001\"}; at most 12 "
                     "entries, keys no longer than ivr_max_digits. Keys it does not name, or no "
                     "keys before ivr_timeout, hang up.",
    "recording_name": "(not in the spec) Which recording of the request, when it has several.",
    "file": "(not in the spec) The file's content: CSV text or RIFF/WAVE audio.",
    "file_name": "(not in the spec) The name to store the file under; defaults to the uploaded "
                 "file's own name. Must end in .csv or .wav.",
    # A response field (the operations that answer it name it in their description):
    "tts_engine_used": "(not in the spec) The response also holds tts_engine_used: the TTS "
                       "engine that will speak the announcement, neural or standard (for a "
                       "campaign, only with dynamic_announcement 1). With tts_engine_type "
                       "neural it is standard when no offline neural voice is installed for "
                       "the voice's gender and language; the platform then speaks with the "
                       "standard engine and logs why.",
}

#: (schema class name, field name) → description, where a name means something else there.
BY_SCHEMA: dict[tuple[str, str], str] = {
    ("Click2CallSchema", "recording_option"): "How you want to record calls, agent side only, "
                                              "customer side only or both sides (on = both).",
    ("OutboundCallSchema", "caller_id"): "The number you want to display as caller_id to the "
                                         "customer.",
    ("UpdateCallbackSchema", "request_id"): "The generated callback request_id (POST /api/callback).",
    ("CallbackIdSchema", "request_id"): "The generated callback request_id (POST /api/callback).",
}


def describe(schema_name: str, field_name: str) -> str | None:
    """The description of ``field_name`` in the schema called ``schema_name``."""
    return BY_SCHEMA.get((schema_name, field_name), DESCRIPTIONS.get(field_name))
