"""The long-lived objects one web process shares: settings, Redis, storage, the job queue."""
from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app
from rq import Queue

from cpaas.config import Settings
from cpaas.storage import Storage

#: RQ queue names: calls are placed from their own queue so bulk work never delays them.
CALLS_QUEUE = "calls"


@dataclass
class Platform:
    """Dependencies handed to services by the HTTP layer."""

    settings: Settings
    redis: redis.Redis
    storage: Storage

    @property
    def calls_queue(self) -> Queue:
        """The RQ queue call-placing jobs go to."""
        return Queue(CALLS_QUEUE, connection=self.redis)


def platform() -> Platform:
    """The current app's :class:`Platform`."""
    return current_app.extensions["cpaas"]
