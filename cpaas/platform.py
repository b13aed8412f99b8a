"""The long-lived objects one web process shares: settings, Redis, storage, the job queue."""
from __future__ import annotations

from dataclasses import dataclass, field

import redis
from flask import current_app
from rq import Queue

from cpaas.config import Settings
from cpaas.storage import Storage
from cpaas.telephony.engine_client import EngineClient

#: RQ queue names: calls are placed from their own queue so bulk work never delays them.
CALLS_QUEUE = "calls"
#: Campaign attempts: workers take them only when no click2call, OTP or callback waits,
#: so a campaign's turn never queues ahead of another account's OTP.
CAMPAIGN_QUEUE = "campaign"


@dataclass
class Platform:
    """Dependencies handed to services by the HTTP layer."""

    settings: Settings
    redis: redis.Redis
    storage: Storage
    _engine: EngineClient | None = field(default=None, repr=False)

    @property
    def engine(self) -> EngineClient:
        """The configured engine's client, built on first use."""
        if self._engine is None:
            from cpaas.telephony.engine_client import engine_client

            self._engine = engine_client(self.settings, self.redis)
        return self._engine

    @property
    def calls_queue(self) -> Queue:
        """The RQ queue call-placing jobs go to."""
        return Queue(CALLS_QUEUE, connection=self.redis)


def platform() -> Platform:
    """The current app's :class:`Platform`."""
    return current_app.extensions["cpaas"]
