"""``FreeSwitchClient``: the engine interface over the FreeSWITCH nodes' drivers.

Web and RQ processes never hold an ESL connection: a plan goes, through Redis, to the
driver of a node that is up (:mod:`freeswitch.driver`, in the ``events`` process), which
originates it with ``bgapi``; an action goes to the driver of the node holding the leg.
New calls are spread across the nodes whose heartbeat is present, fewest plans first.
"""
from __future__ import annotations

import json
import logging
import re
import secrets

import redis

from cpaas.config import Settings, load
from cpaas.telephony import handoff, live
from cpaas.telephony.engine_client import (EngineClient, EngineError, LegAction, LegNotFound,
                                           request_action)
from cpaas.telephony.plans import Plan
from freeswitch.nodes import Node, node_of_owner, parse_nodes
from pjsua_engine import keys
from pjsua_engine.client import check_action

log = logging.getLogger(__name__)

#: Most legs one plan may hold on FreeSWITCH (no per-process limit as on the wheel).
MAX_LEGS = 4
_PLAN_ID = re.compile(rb'"plan_id":\s*"([0-9a-zA-Z]+)"')


class FreeSwitchClient(EngineClient):
    """Hands plans and actions to the node drivers."""

    name = "freeswitch"

    def __init__(self, r: redis.Redis | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or load()
        self.r = r or redis.Redis.from_url(self.settings.effective_redis_url)
        self.nodes = parse_nodes(self.settings.freeswitch_esl or "")

    def _load(self) -> dict[Node, int]:
        """Plans each node that is up holds or has waiting (down nodes are absent)."""
        pipe = self.r.pipeline()
        for node in self.nodes:
            pipe.get(node.beat_key)
            pipe.llen(node.plans_key)
        found = pipe.execute()
        load: dict[Node, int] = {}
        for i, node in enumerate(self.nodes):
            beat, queued = found[2 * i], found[2 * i + 1]
            if beat:
                load[node] = int(json.loads(beat).get("plans", 0)) + int(queued)
        return load

    def originate(self, plan: Plan) -> None:
        """Validate ``plan`` and queue it for the least busy node that is up."""
        plan.validate()
        if not 1 <= plan.max_legs <= MAX_LEGS:
            raise EngineError(f"max_legs must be 1..{MAX_LEGS}")
        if len(plan.legs()) > plan.max_legs:
            raise EngineError("plan dials more legs than max_legs")
        load = self._load()
        if not load:
            raise EngineError("no FreeSWITCH node is up")
        node = min(load, key=lambda n: (load[n], secrets.randbelow(1 << 16)))
        handoff.push(self.r, node.plans_key, plan.plan_id, plan.to_json())
        log.info("plan queued", extra={"plan_id": plan.plan_id, "node": node.name})

    def act(self, channel: str, action: LegAction, timeout: float = 5.0) -> None:
        """Send ``action`` to the driver of the node holding ``channel``; wait for it."""
        check_action(action)
        raw = self.r.hget(live.LEGS_KEY, channel)
        node = node_of_owner(json.loads(raw).get("owner", ""), self.nodes) if raw else None
        if node is None:
            raise LegNotFound(channel)
        request_action(self.r, node.cmd_key, keys.reply_key, channel, action, timeout,
                       "FreeSWITCH driver")

    def held_plans(self) -> set[str]:
        """Plans waiting for a node's driver or run by one (its snapshots)."""
        found: set[str] = set()
        for node in self.nodes:
            for raw in self.r.lrange(node.plans_key, 0, -1):
                found.update(m.decode() for m in _PLAN_ID.findall(raw))
            found.update(k.decode() for k in self.r.hkeys(keys.worker_plans(node.owner)))
        return found

    def waiting(self) -> int:
        """Plans queued for a node's driver and not taken yet (one pipelined read)."""
        pipe = self.r.pipeline()
        for node in self.nodes:
            pipe.llen(node.plans_key)
        return sum(pipe.execute())

    def health(self) -> dict[str, str]:
        """ok when every node is up, degraded when some are, down when none."""
        try:
            up = len(self._load())
        except redis.RedisError:
            log.exception("engine check failed")
            return {"engine": "unknown", "engine_type": self.name}
        total = len(self.nodes)
        state = "ok" if up == total else "degraded" if up else "down"
        return {"engine": state, "engine_type": self.name, "engine_nodes": f"{up}/{total}"}
