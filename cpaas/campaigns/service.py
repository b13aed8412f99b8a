"""Campaign manager services: lists, contacts, DND lists and campaigns (no Flask here)."""
from __future__ import annotations

import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import peewee

from cpaas import ids
from cpaas.db import database
from cpaas.envelope import ApiError, Conflict, NotFound
from cpaas.campaigns import progress
from cpaas.campaigns.announcement import CAMPAIGN_AUDIO
from cpaas.campaigns.state import CAMPAIGN, CampaignStatus
from cpaas.models import Campaign, ContactList, DndList
from cpaas.storage import InvalidName, Storage, account_key
from cpaas.telephony import audio
from cpaas.validation import http_date, utcnow

STATUS_SCHEDULED, STATUS_RUNNING, STATUS_STOPPED, STATUS_COMPLETED = 0, 1, 2, 3


@lru_cache(maxsize=8)
def _insert_list_sql(table: str, param: str) -> str:
    return (f"INSERT INTO {table} (id, account_id, name, created_at) "
            f"VALUES ({param}, {param}, {param}, {param})")


def _insert_list(model: type[peewee.Model], new_id: str, account_id: str, name: str) -> None:
    """One INSERT of a named list, in autocommit (no BEGIN/COMMIT round trips), with
    constant SQL: building it with peewee cost more than the database's work."""
    sql = _insert_list_sql(model._meta.table_name, database.param)
    database.execute_sql(sql, [new_id, account_id, name, model.created_at.db_value(utcnow())])


def _name_taken(model: type[peewee.Model], account_id: str, name: str) -> bool:
    """Whether the account has a ``model`` row of that name: what tells a unique violation
    on the name (the user's 409) from any other one (a foreign key: our fault, not theirs)."""
    return model.select().where((model.account_id == account_id) & (model.name == name)).exists()


def create_list(account_id: str, name: str) -> str:
    """Create a contact list; 409 when the account already has one of that name."""
    try:
        return ids.insert_new(ContactList, ids.list_id,
                              lambda new_id: _insert_list(ContactList, new_id, account_id, name))
    except peewee.IntegrityError:
        if not _name_taken(ContactList, account_id, name):
            raise
        raise Conflict("list_name", "a list with this list_name already exists") from None


def create_dnd_list(account_id: str, name: str) -> str:
    """Create a DND list; 409 when the account already has one of that name."""
    try:
        return ids.insert_new(DndList, ids.dnd_list_id,
                              lambda new_id: _insert_list(DndList, new_id, account_id, name))
    except peewee.IntegrityError:
        if not _name_taken(DndList, account_id, name):
            raise
        raise Conflict("dnd_list_name", "a DND list with this dnd_list_name already exists") from None


def own_list(account_id: str, list_id: str, field: str = "list_id") -> None:
    """404 unless ``list_id`` is one of the account's contact lists."""
    if not ContactList.select().where((ContactList.id == list_id)
                                      & (ContactList.account_id == account_id)).exists():
        raise NotFound(field, "list")


def own_dnd_list(account_id: str, dnd_list_id: str, field: str = "dnd_list_id") -> None:
    """404 unless ``dnd_list_id`` is one of the account's DND lists."""
    if not DndList.select().where((DndList.id == dnd_list_id)
                                  & (DndList.account_id == account_id)).exists():
        raise NotFound(field, "DND list")


def merge_contacts(contacts: Iterable[tuple[str, str, dict[str, str]]]
                   ) -> dict[str, tuple[str, dict[str, str]]]:
    """number → (name, fields) with duplicates merged: a later name wins unless empty,
    fields are combined (later values win)."""
    merged: dict[str, tuple[str, dict[str, str]]] = {}
    for number, name, fields in contacts:
        if number in merged:
            old_name, old_fields = merged[number]
            merged[number] = (name or old_name, {**old_fields, **fields})
        else:
            merged[number] = (name, fields)
    return merged


def merge_dnd(contacts: Iterable[tuple[str, str]]) -> dict[str, str]:
    """number → name with duplicates merged: a later name wins unless empty."""
    merged: dict[str, str] = {}
    for number, name in contacts:
        merged[number] = name or merged.get(number, "")
    return merged


@lru_cache(maxsize=64)
def _guarded_upsert_sql(table: str, owner_table: str, owner_col: str, rows: int,
                        param: str) -> str:
    """One statement that upserts ``rows`` rows of (owner, number, name[, fields]) into a
    list, but only if the list is the account's (its last two parameters).

    Checking ownership inside the insert makes the request one autocommit round trip
    instead of BEGIN, SELECT, INSERT, COMMIT. Built once per row count and database.
    """
    columns = _LIST_COLUMNS[table]
    row = "(" + ", ".join([param] * (len(columns) + 1)) + ")"
    # Both SQLite and PostgreSQL name a VALUES list's columns column1, column2, …
    picked = ", ".join(f"column{i}" for i in range(1, len(columns) + 2))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "number")
    return (f"INSERT INTO {table} ({owner_col}, {', '.join(columns)}) "
            f"SELECT {picked} FROM (VALUES {', '.join([row] * rows)}) AS v "
            f"WHERE EXISTS (SELECT 1 FROM {owner_table} "
            f"WHERE id = {param} AND account_id = {param}) "
            f"ON CONFLICT ({owner_col}, number) DO UPDATE SET {updates}")


_LIST_COLUMNS = {"contact": ("number", "name", "fields"), "dnd_contact": ("number", "name")}


def _add_to_list(table: str, owner_table: str, owner_col: str, account_id: str,
                 owner_id: str, rows: list[tuple[str, ...]]) -> int:
    """Upsert merged ``rows`` into one of the account's lists; how many were stored.

    Nothing stored means the list is not the account's (every merged row is either
    inserted or updated otherwise): the caller answers 404.
    """
    sql = _guarded_upsert_sql(table, owner_table, owner_col, len(rows), database.param)
    params: list[str] = []
    for row in rows:
        params.append(owner_id)
        params.extend(row)
    params += [owner_id, account_id]
    return database.execute_sql(sql, params).rowcount


def add_contacts(account_id: str, list_id: str, contacts: list[dict[str, Any]]) -> int:
    """Add validated contacts to one of the account's lists, atomically (one statement)."""
    merged = merge_contacts((c["contact_number"], c["contact_name"], c["contact_fields"])
                            for c in contacts)
    rows = [(number, name, json.dumps(fields, separators=(",", ":")))
            for number, (name, fields) in merged.items()]
    stored = _add_to_list("contact", "contact_list", "list_id", account_id, list_id, rows)
    if not stored:
        raise NotFound("list_id", "list")
    return stored


def add_dnd_contacts(account_id: str, dnd_list_id: str, contacts: list[dict[str, Any]]) -> int:
    """Add validated numbers to one of the account's DND lists, atomically (one statement)."""
    merged = merge_dnd((c["dnd_contact_number"], c["dnd_contact_name"]) for c in contacts)
    stored = _add_to_list("dnd_contact", "dnd_list", "dnd_list_id", account_id, dnd_list_id,
                          list(merged.items()))
    if not stored:
        raise NotFound("dnd_list_id", "DND list")
    return stored


def _announcement_audio(storage: Storage, key: str, media_dir: Path, campaign_id: str) -> str:
    """The uploaded announcement converted once to telephone WAV in the media root (its
    name there); 400 naming ``recorded_filename`` when it is not audio."""
    folder = media_dir / CAMPAIGN_AUDIO
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{CAMPAIGN_AUDIO}/{campaign_id}.wav"
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".upload") as tmp:
        with storage.open(key) as src:
            shutil.copyfileobj(src, tmp)
        tmp.flush()
        if not audio.is_audio_wav(tmp.name):
            raise ApiError(400, "invalid recorded_filename",
                           {"recorded_filename": ["the file is not a WAV audio file"]})
        try:
            audio.to_telephone(tmp.name, media_dir / name)
        except audio.AudioError:
            raise ApiError(400, "invalid recorded_filename",
                           {"recorded_filename": ["the audio could not be converted"]}) from None
    return name


def create_campaign(account_id: str, account_name: str, storage: Storage, data: dict[str, Any],
                    media_dir: Path | None = None) -> str:
    """Store a campaign (status scheduled) after checking the lists and file are the
    account's; a recorded announcement is converted to 8 kHz mono once, here."""
    own_list(account_id, data["list_id"])
    if data.get("dnd_list_id"):
        own_dnd_list(account_id, data["dnd_list_id"])
    key = None
    if data["dynamic_announcement"] == 0:
        try:
            key = account_key(account_name, data["recorded_filename"])
        except InvalidName as err:
            raise ApiError(400, "invalid recorded_filename", {"recorded_filename": [str(err)]}) from None
        if not data["recorded_filename"].lower().endswith(".wav") or not storage.exists(key):
            raise NotFound("recorded_filename", "uploaded WAV file")

    def insert(new_id: str) -> None:
        audio_name = (_announcement_audio(storage, key, media_dir, new_id)
                      if key and media_dir is not None else "")
        with database.atomic():
            Campaign.create(
                id=new_id, account_id=account_id, name=data["campaign_name"],
                list_id=data["list_id"], dnd_list_id=data.get("dnd_list_id"),
                campaign_type=data["campaign_type"], caller_id=data["campaign_caller_id"],
                dynamic_announcement=data["dynamic_announcement"],
                recorded_filename=data["recorded_filename"],
                announcement_text=data["announcement_text"], start_at=data["start_at"],
                end_at=data["end_at"], time_zone=data["time_zone"], repeat_count=data["repeat"],
                max_retries=data["max_retries"], retry_time=data["retry_time"],
                retry_on_statuses=",".join(data["retry_on_statuses"]),
                calls_per_minute=data["calls_per_minute"], voice=data["voice"],
                volume=data["volume"], rate=data["rate"], pitch=data["pitch"],
                language_code=data["language_code"], tts_engine_type=data["tts_engine_type"],
                status=STATUS_SCHEDULED, created_at=utcnow(),
                calling_hours=data.get("calling_hours", ""),
                contact_local_time=data.get("contact_local_time", 0),
                ivr_max_digits=data.get("ivr_max_digits", 1),
                ivr_timeout=data.get("ivr_timeout", 5),
                ivr_digit_map=json.dumps(data.get("ivr_digit_map") or {}, sort_keys=True),
                announcement_audio=audio_name)

    try:
        return ids.insert_new(Campaign, ids.campaign_id, insert)
    except peewee.IntegrityError:
        if not _name_taken(Campaign, account_id, data["campaign_name"]):
            raise
        raise Conflict("campaign_name", "a campaign with this campaign_name already exists") from None


def get_campaign(account_id: str, campaign_id: str) -> Campaign:
    """One of the account's campaigns, or 404."""
    row = Campaign.get_or_none((Campaign.id == campaign_id) & (Campaign.account_id == account_id))
    if row is None:
        raise NotFound("campaign_id", "campaign")
    return row


def campaign_details(account_id: str, dialer_up: bool = True) -> list[dict[str, Any]]:
    """Every campaign of the account, in the spec's shape (dates in UTC, values as
    strings), with its progress and why it is not dialing (``dialer_down`` when no
    process holds the dialer's lease)."""
    campaigns = list(Campaign.select().where(Campaign.account_id == account_id)
                     .order_by(Campaign.created_at))
    books = progress.for_campaigns(campaigns)
    out = []
    for c in campaigns:
        code, reason = c.state_reason_code, c.state_reason
        if c.status == STATUS_STOPPED:
            # Said from the status (a campaign stopped before the dialer existed has no
            # stored reason), as stop_campaign stores it.
            code, reason = "stopped", "stopped by the user"
        elif not dialer_up and c.status in (STATUS_SCHEDULED, STATUS_RUNNING):
            code, reason = progress.DIALER_DOWN
        out.append({
            "calls_per_minute": str(c.calls_per_minute),
            "campaign_caller_id": c.caller_id,
            "campaign_end_date": http_date(c.end_at),
            "campaign_id": c.id,
            "campaign_name": c.name,
            "campaign_start_date": http_date(c.start_at),
            "campaign_status": str(c.status),
            "campaign_type": str(c.campaign_type),
            "dnd_list_id": c.dnd_list_id or "",
            "list_id": c.list_id,
            "max_retries": str(c.max_retries),
            "repeat_announcement_count": str(c.repeat_count),
            "retry_time": str(c.retry_time),
            "time_zone": c.time_zone,
            "calling_hours": c.calling_hours,
            "contact_local_time": str(c.contact_local_time),
            "progress": books[c.id].counts,
            "placeholders_missing": books[c.id].placeholders,
            "state_reason_code": code,
            "state_reason": reason,
        })
    return out


def _change_status(account_id: str, campaign_id: str, target: CampaignStatus, verb: str) -> None:
    """Move one of the account's campaigns to ``target``; 409 when its status does not
    allow it (moving to where it already is succeeds: the calls are idempotent)."""
    with database.atomic():
        campaign = get_campaign(account_id, campaign_id)
        if campaign.status == target:
            return
        if not CAMPAIGN.advance(campaign_id, target):
            now = CampaignStatus(campaign.status).name.lower()
            raise ApiError(409, f"campaign is {now}",
                           {"campaign_id": [f"a {now} campaign cannot be {verb}"]})
        code = {CampaignStatus.PAUSED: "paused", CampaignStatus.STOPPED: "stopped"}.get(target, "")
        Campaign.update(state_reason_code=code,
                        state_reason=f"{code} by the user" if code else "").where(
            Campaign.id == campaign_id).execute()


def stop_campaign(account_id: str, campaign_id: str) -> None:
    """Stop a scheduled, running or paused campaign at once (idempotent); 409 once it
    has completed. Attempts already queued are handed back undialed by their check."""
    _change_status(account_id, campaign_id, CampaignStatus.STOPPED, "stopped")


def pause_campaign(account_id: str, campaign_id: str) -> None:
    """Pause a scheduled or running campaign; 409 when stopped or completed."""
    _change_status(account_id, campaign_id, CampaignStatus.PAUSED, "paused")


def resume_campaign(account_id: str, campaign_id: str) -> None:
    """Resume a paused campaign where it stopped (scheduled again when its window has
    not opened yet, else running); 409 unless it is paused."""
    with database.atomic():
        campaign = get_campaign(account_id, campaign_id)
        if campaign.status != CampaignStatus.PAUSED:
            now = CampaignStatus(campaign.status).name.lower()
            raise ApiError(409, f"campaign is {now}",
                           {"campaign_id": [f"only a paused campaign can be resumed; it is {now}"]})
        target = (CampaignStatus.SCHEDULED if utcnow() < campaign.start_at
                  else CampaignStatus.RUNNING)
        _change_status(account_id, campaign_id, target, "resumed")
