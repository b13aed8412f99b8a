"""Reading back and removing what the account stored: its contact and DND lists, their
entries (paged with ``record_count``/``offset`` like the CDR reads), one entry, one list.

Contact lists and DND lists work alike, so each operation is written once over a
:class:`Kind` that names the tables, columns and API words of one of them. No Flask here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import peewee
from peewee import fn

from cpaas.db import database
from cpaas.envelope import ApiError, NotFound
from cpaas.models import Campaign, Contact, ContactList, DndContact, DndList
from cpaas.validation import http_date


@dataclass(frozen=True)
class Kind:
    """One kind of list: its tables, how the API names it and its fields."""

    lists: type[peewee.Model]      # ContactList / DndList
    entries: type[peewee.Model]    # Contact / DndContact
    owner_column: str              # the entries' column naming their list
    id_field: str                  # list_id / dnd_list_id
    what: str                      # "list" / "DND list": words in messages
    entry_what: str                # "contact" / "DND contact"
    prefix: str                    # "" / "dnd_": the API's field names for an entry
    campaign_column: str           # the campaign column that refers to such a list

    def owner(self) -> peewee.Field:
        return getattr(self.entries, self.owner_column)

    def campaign_ref(self) -> peewee.Field:
        return getattr(Campaign, self.campaign_column)


CONTACTS = Kind(ContactList, Contact, "list_id", "list_id", "list", "contact", "", "list_id")
DND = Kind(DndList, DndContact, "dnd_list_id", "dnd_list_id", "DND list", "DND contact", "dnd_",
           "dnd_list_id")


def _own(kind: Kind, account_id: str, list_id: str) -> None:
    """404 (naming the list id field) unless the list is the account's."""
    if not kind.lists.select().where((kind.lists.id == list_id)
                                     & (kind.lists.account_id == account_id)).exists():
        raise NotFound(kind.id_field, kind.what)


def lists_page(kind: Kind, account_id: str, count: int, offset: int) -> list[dict[str, str]]:
    """A page of the account's lists in creation order, each with how many entries it holds."""
    rows = list(kind.lists.select(kind.lists.id, kind.lists.name, kind.lists.created_at)
                .where(kind.lists.account_id == account_id)
                .order_by(kind.lists.created_at, kind.lists.id).offset(offset).limit(count))
    counts: dict[str, int] = {}
    if rows:
        # One grouped count over the (list, …) index for the whole page.
        counts = dict(kind.entries.select(kind.owner(), fn.COUNT(kind.entries.id))
                      .where(kind.owner().in_([r.id for r in rows]))
                      .group_by(kind.owner()).tuples())
    p = kind.prefix
    return [{kind.id_field: r.id, f"{p}list_name": r.name,
             f"{p}contact_count": str(counts.get(r.id, 0)), "created_at": http_date(r.created_at)}
            for r in rows]


def contacts_page(account_id: str, list_id: str, count: int, offset: int) -> list[dict[str, Any]]:
    """A page of one of the account's contact lists, in the order the contacts were added."""
    _own(CONTACTS, account_id, list_id)
    query = (Contact.select(Contact.number, Contact.name, Contact.fields)
             .where(Contact.list_id == list_id).order_by(Contact.id).offset(offset).limit(count))
    return [{"contact_name": name, "contact_number": number, "contact_fields": json.loads(fields)}
            for number, name, fields in query.tuples()]


def dnd_page(account_id: str, dnd_list_id: str, count: int, offset: int) -> list[dict[str, str]]:
    """A page of one of the account's DND lists, by number (the order of its unique index)."""
    _own(DND, account_id, dnd_list_id)
    query = (DndContact.select(DndContact.number, DndContact.name)
             .where(DndContact.dnd_list_id == dnd_list_id).order_by(DndContact.number)
             .offset(offset).limit(count))
    return [{"dnd_contact_name": name, "dnd_contact_number": number}
            for number, name in query.tuples()]


def delete_entry(kind: Kind, account_id: str, list_id: str, number: str) -> None:
    """Remove one number from one of the account's lists; 404 if either is not there."""
    _own(kind, account_id, list_id)
    deleted = (kind.entries.delete()
               .where((kind.owner() == list_id) & (kind.entries.number == number)).execute())
    if not deleted:
        field = f"{kind.prefix}contact_number"
        raise ApiError(404, f"{kind.entry_what} not found", {field: [f"not in this {kind.what}"]})


def delete_list(kind: Kind, account_id: str, list_id: str) -> None:
    """Remove one of the account's lists and its entries, unless a campaign refers to it (409).

    A campaign keeps naming its lists after it ends (its CDRs and statistics refer to
    them), so any campaign, finished or not, keeps its lists.
    """
    try:
        with database.atomic():
            _own(kind, account_id, list_id)
            user = (Campaign.select(Campaign.id).where(kind.campaign_ref() == list_id)
                    .order_by(Campaign.created_at).first())
            if user is not None:
                raise _in_use(kind, user.id)
            kind.entries.delete().where(kind.owner() == list_id).execute()
            kind.lists.delete().where(kind.lists.id == list_id).execute()
    except peewee.IntegrityError:
        # A campaign created after the check above: the campaign's foreign key refuses.
        raise _in_use(kind, "created meanwhile") from None


def _in_use(kind: Kind, campaign: str) -> ApiError:
    return ApiError(409, f"{kind.what} is used by a campaign",
                    {kind.id_field: [f"campaign {campaign} uses this {kind.what}"]})
