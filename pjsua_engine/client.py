"""``EmbeddedClient``: the engine interface over the PJSUA2 worker pool, through Redis.

Web and RQ processes use it to queue plans for the pool's workers and to send actions
to the worker holding a leg; the calls themselves run in the pool
(``python -m pjsua_engine``).
"""
from __future__ import annotations

import json
import logging
import re

import redis

from cpaas.config import Settings, load
from cpaas.telephony import handoff, live
from cpaas.telephony.engine_client import (EngineClient, EngineError, LegAction, LegNotFound,
                                           request_action)
from cpaas.telephony.plans import EXTENSION_RE, NUMBER_RE, SAFE_TOKEN_RE, Plan
from pjsua_engine import keys

log = logging.getLogger(__name__)

ACTIONS = {"blind_transfer", "attended_transfer", "hangup", "record"}
#: A plan's id inside its queued JSON (read without parsing the whole plan).
_PLAN_ID = re.compile(rb'"plan_id":\s*"([0-9a-zA-Z]+)"')


def check_action(action: LegAction) -> None:
    """Refuse an action carrying anything that must not reach a worker (or the wire)."""
    if action.kind not in ACTIONS:
        raise EngineError(f"unknown action {action.kind!r}")
    if action.kind in ("blind_transfer", "attended_transfer"):
        pattern = EXTENSION_RE if action.target_kind == "agent" else NUMBER_RE
        if action.target_kind not in (None, "agent", "number") or not pattern.fullmatch(
                action.target or ""):
            raise EngineError("transfer target must be validated digits")
        if action.caller_id is not None and not NUMBER_RE.fullmatch(action.caller_id):
            raise EngineError("caller id must be validated digits")
    if action.kind == "record":
        key = action.record_key or ""
        if not SAFE_TOKEN_RE.fullmatch(key) or ".." in key:
            raise EngineError("unsafe record key")


class EmbeddedClient(EngineClient):
    """Queues plans for the worker pool and routes live-leg actions to their worker."""

    name = "embedded"

    def __init__(self, r: redis.Redis | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or load()
        self.r = r or redis.Redis.from_url(self.settings.effective_redis_url)

    def originate(self, plan: Plan) -> None:
        """Validate ``plan`` and queue it for a worker with ``max_legs`` free call slots."""
        plan.validate()
        if not 1 <= plan.max_legs <= keys.MAX_CALLS_PER_WORKER:
            raise EngineError(f"max_legs must be 1..{keys.MAX_CALLS_PER_WORKER}")
        if len(plan.legs()) > plan.max_legs:
            raise EngineError("plan dials more legs than max_legs")
        handoff.push(self.r, keys.plan_queue(plan.max_legs), plan.plan_id, plan.to_json())

    def act(self, channel: str, action: LegAction, timeout: float = 5.0) -> None:
        """Send ``action`` to the worker holding ``channel`` and wait for its answer."""
        check_action(action)
        raw = self.r.hget(live.LEGS_KEY, channel)
        if not raw:
            raise LegNotFound(channel)
        owner = json.loads(raw).get("owner")
        if not owner:
            raise LegNotFound(channel)
        request_action(self.r, keys.worker_cmd(owner), keys.reply_key, channel, action, timeout,
                       "engine worker")

    def held_plans(self) -> set[str]:
        """Plans waiting in the pool's queues for a worker, or run by one (its snapshots)."""
        found: set[str] = set()
        for n in range(1, keys.MAX_CALLS_PER_WORKER + 1):
            for raw in self.r.lrange(keys.plan_queue(n), 0, -1):
                found.update(m.decode() for m in _PLAN_ID.findall(raw))
        for key in self.r.scan_iter(match=keys.WORKER_PLANS.format(worker="*"), count=500):
            found.update(k.decode() for k in self.r.hkeys(key))
        return found

    def waiting(self) -> int:
        """Plans in the pool's queues, not yet taken by a worker (one pipelined read)."""
        pipe = self.r.pipeline()
        for n in range(1, keys.MAX_CALLS_PER_WORKER + 1):
            pipe.llen(keys.plan_queue(n))
        return sum(pipe.execute())

    def health(self) -> dict[str, str]:
        """ok when every configured worker is alive (by its pool's heartbeat) and announced
        ready; degraded when some are; down when none. Two Redis reads."""
        try:
            registry = self.r.hgetall(keys.WORKERS)
            hosts = sorted({wid.decode().rsplit(":", 1)[0] for wid in registry})
            beats = self.r.mget([keys.pool_key(h) for h in hosts]) if hosts else []
        except redis.RedisError:
            log.exception("engine check failed")
            return {"engine": "unknown", "engine_type": self.name}
        announced = {wid.decode() for wid, entry in registry.items()
                     if "ready_at" in json.loads(entry)}
        ready, configured = 0, 0
        for beat in filter(None, beats):
            pool = json.loads(beat)
            configured += int(pool["configured"])
            ready += len(announced.intersection(pool["alive"]))
        configured = configured or self.settings.engine_workers
        state = "ok" if ready >= configured else "degraded" if ready else "down"
        return {"engine": state, "engine_type": self.name, "engine_workers": f"{ready}/{configured}"}
