"""Choosing the engine from configuration."""
from __future__ import annotations

import redis

from cpaas.config import Settings
from cpaas.telephony.engine import Engine, EngineError


def get_engine(settings: Settings, client: redis.Redis) -> Engine:
    """The embedded PJSUA2 engine pool, the default when FreeSWITCH is not configured.

    The FreeSWITCH engine is a later capability (see ROADMAP); until it lands, a
    configured ``FREESWITCH_ESL`` is refused loudly rather than silently ignored.
    """
    if settings.freeswitch_esl:
        raise EngineError("FREESWITCH_ESL is set, but this release has no FreeSWITCH engine yet; "
                          "unset it to use the embedded engine")
    from pjsua_engine.engine import EmbeddedEngine

    return EmbeddedEngine(client, settings)
