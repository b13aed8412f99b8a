"""Random public identifiers (never sequential, GUIDE §1 "Ids")."""
from __future__ import annotations

import secrets
import string

_ALNUM = string.ascii_letters + string.digits


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
