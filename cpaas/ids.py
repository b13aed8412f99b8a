"""Random public identifiers (never sequential, GUIDE §1 "Ids")."""
from __future__ import annotations

import secrets
import string
from contextlib import nullcontext
from typing import Callable

import peewee

from cpaas.db import database

_ALNUM = string.ascii_letters + string.digits
#: Draws of a fresh id before giving up; with 40 random bits even a second is rare.
INSERT_ATTEMPTS = 5


def hex10() -> str:
    """10 lowercase hex characters, e.g. a request_id."""
    return secrets.token_hex(5)


def request_id() -> str:
    """A call request's id (``57362de4f0``)."""
    return hex10()


def list_id() -> str:
    return "LS" + hex10()


def dnd_list_id() -> str:
    return "DN" + hex10()


def campaign_id() -> str:
    return "CM" + hex10()


def template_id() -> str:
    return "AN" + hex10()


def account_id() -> str:
    """``AC`` + 10 random letters and digits."""
    return "AC" + "".join(secrets.choice(_ALNUM) for _ in range(10))


def insert_new(model: type[peewee.Model], make_id: Callable[[], str],
               insert: Callable[[str], object]) -> str:
    """Run ``insert(new_id)`` with an id from ``make_id`` that no ``model`` row holds yet;
    returns the id stored.

    A unique violation whose id turns out to be taken already is a collision of random
    ids: a new one is drawn. Any other violation (a name the account already uses) is
    raised for the caller to answer. Inside a caller's transaction each attempt is a
    savepoint, so a failed one leaves that transaction usable for the check.
    """
    for attempt in range(1, INSERT_ATTEMPTS + 1):
        new_id = make_id()
        try:
            with database.atomic() if database.in_transaction() else nullcontext():
                insert(new_id)
            return new_id
        except peewee.IntegrityError:
            taken = model.select().where(model._meta.primary_key == new_id).exists()
            if not taken or attempt == INSERT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")
