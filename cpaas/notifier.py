"""The platform's domain events, told to whoever subscribed: one method per event.

As wazo-calld's ``plugins/calls/notifier.py``: the code where a fact becomes true (the
events consumer, once a CDR is committed) calls one method here and knows nothing of
who listens. Subscribers (callbacks and the campaign dialer now; status webhooks later)
register a handler for the events they care about. Each event is told after its facts
are committed, so a subscriber that fails is logged and never undoes them, nor keeps
the other subscribers from hearing it.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from cpaas.cdr.settle import Settled
from cpaas.cdr.writer import CdrRecord
from cpaas.models import CallRequest

log = logging.getLogger(__name__)

CallSettled = Callable[[CallRequest, CdrRecord], None]


class Notifier:
    """Holds the subscribers of each domain event and tells them in order."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable[..., None]]] = defaultdict(list)

    def subscribe_call_settled(self, handler: CallSettled) -> None:
        """Call ``handler(request, cdr)`` after each call request's CDR is committed."""
        self._subscribers["call_settled"].append(handler)

    def call_settled(self, request: CallRequest, cdr: CdrRecord) -> None:
        """A call request ended: its one CDR is committed."""
        self._tell("call_settled", request, cdr, request_id=request.id,
                   account_id=request.account_id)

    def on_settled(self, settled: Settled) -> None:
        """The events consumer's post-commit hook (``consumer.run(on_settled=…)``)."""
        self.call_settled(settled.request, settled.record)

    def _tell(self, event: str, *args: Any, **context: str) -> None:
        for handler in self._subscribers[event]:
            try:
                handler(*args)
            except Exception:  # noqa: BLE001 - the event's facts are committed already
                log.exception("subscriber failed", extra={
                    "event": event, "subscriber": getattr(handler, "__qualname__", repr(handler)),
                    **context})


def platform_notifier() -> Notifier:
    """The notifier of the ``events`` process, with the platform's subscribers."""
    from cpaas import config
    from cpaas.callbacks import scheduler
    from cpaas.campaigns import attempts
    from cpaas.redis_conn import get_redis
    from cpaas.transcription.queueing import TranscriptionQueuer

    notifier = Notifier()
    notifier.subscribe_call_settled(scheduler.on_call_settled)
    # An attempt is settled (its contact moved on, a retry scheduled) as its CDR commits;
    # the dialer's reconcile only catches one whose settle died with this process.
    notifier.subscribe_call_settled(attempts.on_call_settled)
    notifier.subscribe_call_settled(
        TranscriptionQueuer(get_redis(config.load().effective_redis_url)))
    return notifier
