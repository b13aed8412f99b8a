"""HTTP endpoints of the campaign manager."""
from __future__ import annotations

from flask import Blueprint, Response

from cpaas.campaigns import csv_import, listing, progress, schemas, service
from cpaas.envelope import ok
from cpaas.field_docs import DESCRIPTIONS
from cpaas.http import caller, json_body, route
from cpaas.platform import platform
from cpaas.telephony import tts

bp = Blueprint("campaigns", __name__)
#: The spec also shows ``/stop_campaign`` outside ``/api``.
root_bp = Blueprint("campaigns_root", __name__)


@route(bp, "/create_campaign_list", "POST", "Create a contact list", body=schemas.CreateListSchema)
def create_campaign_list() -> Response:
    data = json_body(schemas.CreateListSchema)
    return ok(list_id=service.create_list(caller().id, data["list_name"]))


@route(bp, "/add_contact_to_list", "POST", "Add contacts to a list", body=schemas.AddContactsSchema)
def add_contact_to_list() -> Response:
    data = json_body(schemas.AddContactsSchema)
    count = service.add_contacts(caller().id, data["list_id"], data["contacts"])
    return ok(message=f"({count}) contacts imported successfully")


def _import_response(result: csv_import.ImportResult, what: str) -> Response:
    return ok(message=f"({result.imported}) {what} imported successfully",
              skipped=result.skipped, errors=result.errors)


@route(bp, "/import_broadcast_contacts_csv", "POST", "Import contacts from an uploaded CSV",
       body=schemas.ImportCsvSchema, description=schemas.CONTACTS_CSV_COLUMNS)
def import_broadcast_contacts_csv() -> Response:
    data = json_body(schemas.ImportCsvSchema)
    account = caller()
    result = csv_import.import_contacts(platform().storage, account.id, account.name,
                                        data["list_id"], data["csv_name"])
    return _import_response(result, "contacts")


@route(bp, "/create_campaign_dnd_list", "POST", "Create a DND list", body=schemas.CreateDndListSchema)
def create_campaign_dnd_list() -> Response:
    data = json_body(schemas.CreateDndListSchema)
    return ok(dnd_list_id=service.create_dnd_list(caller().id, data["dnd_list_name"]))


@route(bp, "/add_dnd_contact_to_list", "POST", "Add numbers to a DND list",
       body=schemas.AddDndContactsSchema)
def add_dnd_contact_to_list() -> Response:
    data = json_body(schemas.AddDndContactsSchema)
    count = service.add_dnd_contacts(caller().id, data["dnd_list_id"], data["dnd_contacts"])
    return ok(message=f"({count}) DND contacts imported successfully")


@route(bp, "/import_dnd_contacts_csv", "POST", "Import DND numbers from an uploaded CSV",
       body=schemas.ImportDndCsvSchema, description=schemas.DND_CSV_COLUMNS)
def import_dnd_contacts_csv() -> Response:
    data = json_body(schemas.ImportDndCsvSchema)
    account = caller()
    result = csv_import.import_dnd(platform().storage, account.id, account.name,
                                   data["dnd_list_id"], data["dnd_csv_name"])
    return _import_response(result, "DND contacts")


@route(bp, "/create_campaign", "POST", "Create a campaign", body=schemas.CreateCampaignSchema,
       description=DESCRIPTIONS["tts_engine_used"])
def create_campaign() -> Response:
    data = json_body(schemas.CreateCampaignSchema)
    account = caller()
    campaign_id = service.create_campaign(account.id, account.name, platform().storage, data,
                                          platform().settings.media_dir)
    spoken = {"tts_engine_used": tts.engine_used_for(data, platform().settings.tts,
                                                     campaign_id=campaign_id)
              } if data["dynamic_announcement"] == 1 else {}
    return ok(campaign_id=campaign_id, **spoken)


@route(bp, "/get_campaign_details", "GET", "List the account's campaigns")
def get_campaign_details() -> Response:
    result = service.campaign_details(caller().id, dialer_up=_dialer_up())
    return ok(message="campaign found" if result else "no campaign found", result=result)


def _dialer_up() -> bool:
    """Whether a worker holds the scanner lease (the dialer runs in its holder)."""
    from cpaas import scanner
    from cpaas.lease import holder

    return holder(platform().redis, scanner.LEASE) is not None


@route(bp, "/pause_campaign", "POST", "Pause a campaign (beyond the spec): status 4",
       body=schemas.CampaignIdSchema)
def pause_campaign() -> Response:
    data = json_body(schemas.CampaignIdSchema)
    service.pause_campaign(caller().id, data["campaign_id"])
    return ok(message="campaign paused successfully")


@route(bp, "/resume_campaign", "POST", "Resume a paused campaign where it stopped (beyond the spec)",
       body=schemas.CampaignIdSchema)
def resume_campaign() -> Response:
    data = json_body(schemas.CampaignIdSchema)
    service.resume_campaign(caller().id, data["campaign_id"])
    return ok(message="campaign resumed successfully")


@route(bp, "/get_campaign_contacts", "POST",
       "A campaign's contacts, each with its attempts, outcomes and reason codes (paged)",
       body=schemas.CampaignContactsSchema)
def get_campaign_contacts() -> Response:
    data = json_body(schemas.CampaignContactsSchema)
    account = caller()
    service.get_campaign(account.id, data["campaign_id"])
    result = progress.contacts(data["campaign_id"], data["record_count"], data["offset"],
                               data.get("after_id"))
    return ok(message="contacts found" if result else "no contact found", result=result)


def _stop() -> Response:
    data = json_body(schemas.CampaignIdSchema)
    service.stop_campaign(caller().id, data["campaign_id"])
    return ok(message="campaign stopped successfully")


route(bp, "/stop_campaign", "POST", "Stop a campaign", body=schemas.CampaignIdSchema)(_stop)
route(root_bp, "/stop_campaign", "POST", "Stop a campaign (path outside /api, as in the spec)",
      body=schemas.CampaignIdSchema, prefix="")(_stop)


# -- reading back and removing lists and their entries ------------------------------------

def _found(result: list, what: str) -> Response:
    return ok(message=f"{what} found" if result else f"no {what} found", result=result)


@route(bp, "/get_campaign_lists", "POST", "The account's contact lists, with their sizes (paged)",
       body=schemas.PageSchema)
def get_campaign_lists() -> Response:
    data = json_body(schemas.PageSchema)
    return _found(listing.lists_page(listing.CONTACTS, caller().id, data["record_count"],
                                     data["offset"]), "list")


@route(bp, "/get_list_contacts", "POST", "The contacts of one list, in the order added (paged)",
       body=schemas.ListContactsSchema)
def get_list_contacts() -> Response:
    data = json_body(schemas.ListContactsSchema)
    return _found(listing.contacts_page(caller().id, data["list_id"], data["record_count"],
                                        data["offset"]), "contact")


@route(bp, "/get_dnd_lists", "POST", "The account's DND lists, with their sizes (paged)",
       body=schemas.PageSchema)
def get_dnd_lists() -> Response:
    data = json_body(schemas.PageSchema)
    return _found(listing.lists_page(listing.DND, caller().id, data["record_count"],
                                     data["offset"]), "DND list")


@route(bp, "/get_dnd_list_contacts", "POST", "The numbers of one DND list, by number (paged)",
       body=schemas.DndListContactsSchema)
def get_dnd_list_contacts() -> Response:
    data = json_body(schemas.DndListContactsSchema)
    return _found(listing.dnd_page(caller().id, data["dnd_list_id"], data["record_count"],
                                   data["offset"]), "DND contact")


@route(bp, "/delete_contact_from_list", "POST", "Remove one contact from a list",
       body=schemas.DeleteContactSchema)
def delete_contact_from_list() -> Response:
    data = json_body(schemas.DeleteContactSchema)
    listing.delete_entry(listing.CONTACTS, caller().id, data["list_id"], data["contact_number"])
    return ok(message="contact deleted successfully")


@route(bp, "/delete_dnd_contact_from_list", "POST", "Remove one number from a DND list",
       body=schemas.DeleteDndContactSchema)
def delete_dnd_contact_from_list() -> Response:
    data = json_body(schemas.DeleteDndContactSchema)
    listing.delete_entry(listing.DND, caller().id, data["dnd_list_id"], data["dnd_contact_number"])
    return ok(message="DND contact deleted successfully")


@route(bp, "/delete_campaign_list", "POST",
       "Delete a contact list and its contacts (409 while a campaign refers to it)",
       body=schemas.ListIdSchema)
def delete_campaign_list() -> Response:
    data = json_body(schemas.ListIdSchema)
    listing.delete_list(listing.CONTACTS, caller().id, data["list_id"])
    return ok(message="list deleted successfully")


@route(bp, "/delete_campaign_dnd_list", "POST",
       "Delete a DND list and its numbers (409 while a campaign refers to it)",
       body=schemas.DndListIdSchema)
def delete_campaign_dnd_list() -> Response:
    data = json_body(schemas.DndListIdSchema)
    listing.delete_list(listing.DND, caller().id, data["dnd_list_id"])
    return ok(message="DND list deleted successfully")
