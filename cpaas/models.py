"""peewee models mirroring ``schema.sql`` (which is the source of truth).

Models never create tables; ``cpaas.db.create_schema`` does, from schema.sql.
"""
from __future__ import annotations

import peewee as pw

from cpaas.db import database


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Account(BaseModel):
    id = pw.CharField(max_length=12, primary_key=True)
    name = pw.CharField(max_length=64, unique=True)
    auth_salt = pw.CharField(max_length=32)
    auth_hash = pw.CharField(max_length=64)
    created_at = pw.DateTimeField()


class AnnounceTemplate(BaseModel):
    id = pw.CharField(max_length=12, primary_key=True)
    account_id = pw.CharField(max_length=12)
    template_text = pw.CharField(max_length=1000)
    status = pw.CharField(max_length=10)
    created_at = pw.DateTimeField()


class ContactList(BaseModel):
    id = pw.CharField(max_length=12, primary_key=True)
    account_id = pw.CharField(max_length=12)
    name = pw.CharField(max_length=100)
    created_at = pw.DateTimeField()


class Contact(BaseModel):
    id = pw.BigAutoField()
    list_id = pw.CharField(max_length=12)
    number = pw.CharField(max_length=16)
    name = pw.CharField(max_length=100)
    fields = pw.TextField()


class DndList(BaseModel):
    id = pw.CharField(max_length=12, primary_key=True)
    account_id = pw.CharField(max_length=12)
    name = pw.CharField(max_length=100)
    created_at = pw.DateTimeField()


class DndContact(BaseModel):
    id = pw.BigAutoField()
    dnd_list_id = pw.CharField(max_length=12)
    number = pw.CharField(max_length=16)
    name = pw.CharField(max_length=100)


class Campaign(BaseModel):
    id = pw.CharField(max_length=12, primary_key=True)
    account_id = pw.CharField(max_length=12)
    name = pw.CharField(max_length=100)
    list_id = pw.CharField(max_length=12)
    dnd_list_id = pw.CharField(max_length=12, null=True)
    campaign_type = pw.SmallIntegerField()
    caller_id = pw.CharField(max_length=16)
    dynamic_announcement = pw.SmallIntegerField()
    recorded_filename = pw.CharField(max_length=200)
    announcement_text = pw.CharField(max_length=2000)
    start_at = pw.DateTimeField()
    end_at = pw.DateTimeField()
    time_zone = pw.CharField(max_length=64)
    repeat_count = pw.IntegerField()
    max_retries = pw.IntegerField()
    retry_time = pw.IntegerField()
    retry_on_statuses = pw.CharField(max_length=100)
    calls_per_minute = pw.IntegerField()
    voice = pw.CharField(max_length=32)
    volume = pw.CharField(max_length=10)
    rate = pw.CharField(max_length=10)
    pitch = pw.CharField(max_length=10)
    language_code = pw.CharField(max_length=10)
    tts_engine_type = pw.CharField(max_length=10)
    status = pw.SmallIntegerField()
    created_at = pw.DateTimeField()
    calling_hours = pw.CharField(max_length=11, default="")
    contact_local_time = pw.SmallIntegerField(default=0)
    ivr_max_digits = pw.IntegerField(default=1)
    ivr_timeout = pw.IntegerField(default=5)
    ivr_digit_map = pw.TextField(default="{}")
    announcement_audio = pw.CharField(max_length=200, default="")
    state_reason_code = pw.CharField(max_length=32, default="")
    state_reason = pw.CharField(max_length=200, default="")


class CampaignContact(BaseModel):
    """One contact's progress through one campaign."""

    campaign_id = pw.CharField(max_length=12)
    contact_id = pw.BigIntegerField()
    number = pw.CharField(max_length=16)
    state = pw.CharField(max_length=12)
    attempts = pw.IntegerField()
    next_at = pw.DateTimeField()
    reason_code = pw.CharField(max_length=32)
    updated_at = pw.DateTimeField()

    class Meta:
        primary_key = pw.CompositeKey("campaign_id", "contact_id")


class CampaignAttempt(BaseModel):
    """One dial of one contact; ``id`` is its call request's id."""

    id = pw.CharField(max_length=12, primary_key=True)
    account_id = pw.CharField(max_length=12)
    campaign_id = pw.CharField(max_length=12)
    contact_id = pw.BigIntegerField()
    attempt = pw.IntegerField()
    number = pw.CharField(max_length=16)
    status = pw.CharField(max_length=10)
    dial_status = pw.CharField(max_length=16)
    reason_code = pw.CharField(max_length=32)
    created_at = pw.DateTimeField()
    settled_at = pw.DateTimeField(null=True)


class CampaignPlaceholder(BaseModel):
    """How many contacts had no value for one announcement placeholder."""

    campaign_id = pw.CharField(max_length=12)
    field = pw.CharField(max_length=64)
    missing = pw.BigIntegerField()

    class Meta:
        primary_key = pw.CompositeKey("campaign_id", "field")


class Callback(BaseModel):
    id = pw.CharField(max_length=10, primary_key=True)
    account_id = pw.CharField(max_length=12)
    agent_number = pw.CharField(max_length=16)
    caller_id = pw.CharField(max_length=16)
    destination_number = pw.CharField(max_length=16)
    recording_option = pw.CharField(max_length=10)
    time_zone = pw.CharField(max_length=64)
    scheduled_at = pw.DateTimeField()
    status = pw.CharField(max_length=10)
    fired_at = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField()
    transcript = pw.CharField(max_length=3, default="off")


class CallRequest(BaseModel):
    id = pw.CharField(max_length=12, primary_key=True)
    account_id = pw.CharField(max_length=12)
    kind = pw.CharField(max_length=10)
    agent_number = pw.CharField(max_length=16)
    customer_number = pw.CharField(max_length=16)
    caller_id = pw.CharField(max_length=16)
    recording_option = pw.CharField(max_length=10)
    transcript = pw.CharField(max_length=3)
    destination_context = pw.CharField(max_length=40)
    call_direction = pw.CharField(max_length=20)
    campaign_id = pw.CharField(max_length=12, null=True)
    list_id = pw.CharField(max_length=12, null=True)
    status = pw.CharField(max_length=10)
    created_at = pw.DateTimeField()


class CdrStats(BaseModel):
    account_id = pw.CharField(max_length=12)
    campaign_id = pw.CharField(max_length=12)
    answer_calls = pw.BigIntegerField()
    busy_calls = pw.BigIntegerField()
    cancel_calls = pw.BigIntegerField()
    chanunavail_calls = pw.BigIntegerField()
    congestion_calls = pw.BigIntegerField()
    noanswer_calls = pw.BigIntegerField()
    dnd_calls = pw.BigIntegerField()
    total_calls = pw.BigIntegerField()

    class Meta:
        primary_key = pw.CompositeKey("account_id", "campaign_id")


class Cdr(BaseModel):
    id = pw.BigAutoField()
    account_id = pw.CharField(max_length=12)
    request_id = pw.CharField(max_length=12)
    campaign_id = pw.CharField(max_length=12, null=True)
    list_id = pw.CharField(max_length=12)
    uniqueid = pw.CharField(max_length=40)
    agent_number = pw.CharField(max_length=16)
    customer_number = pw.CharField(max_length=16)
    dialed_number = pw.CharField(max_length=16)
    caller_id = pw.CharField(max_length=16)
    call_date = pw.DateTimeField()
    answer_at = pw.DateTimeField(null=True)
    end_at = pw.DateTimeField(null=True)
    billsec = pw.FloatField(null=True)
    call_duration = pw.FloatField(null=True)
    call_status = pw.CharField(max_length=16, null=True)
    dial_status = pw.CharField(max_length=16)
    destination_context = pw.CharField(max_length=40)
    call_direction = pw.CharField(max_length=20)
    dtmf_inputs = pw.CharField(max_length=64)
    recording_name = pw.CharField(max_length=300)
    is_dnd = pw.SmallIntegerField()
    hangup_cause = pw.CharField(max_length=64, default="")
    api_json = pw.TextField()
    media_deleted_at = pw.DateTimeField(null=True)   # when retention deleted its recordings
    transfer_to = pw.CharField(max_length=24, default="")
    transcript_status = pw.CharField(max_length=10, default="off")


class Transcript(BaseModel):
    """A call's transcript: ``turns`` is the JSON list the API serves."""

    request_id = pw.CharField(max_length=12, primary_key=True)
    account_id = pw.CharField(max_length=12)
    backend = pw.CharField(max_length=16)
    turns = pw.TextField()
    created_at = pw.DateTimeField()


ALL_MODELS = [Account, AnnounceTemplate, ContactList, Contact, DndList, DndContact,
              Campaign, CampaignContact, CampaignAttempt, CampaignPlaceholder, Callback,
              CallRequest, CdrStats, Cdr, Transcript]
