"""Registry of live legs in Redis, kept by the engines and read by the API.

Engines write a leg when they dial it and remove it when it ends; ``live_calls``,
``get_live_call_statistics`` and ``modify_call`` read it. Each entry names the engine
worker that holds the leg so actions can be routed to it.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import redis

LEGS_KEY = "cpaas:live:legs"            # hash channel -> LiveLeg JSON
ACCOUNT_KEY = "cpaas:live:account:{}"   # set of channels per account


@dataclass
class LiveLeg:
    """One leg of a call in progress."""

    channel: str
    account_id: str
    request_id: str
    kind: str          # c2c | otp | campaign | callback
    role: str          # agent | customer | contact | transfer_target
    number: str
    state: str = "ringing"   # ringing | answered | bridged | held
    started_at: float = field(default_factory=time.time)
    owner: str = ""          # engine worker holding the leg


def put(r: redis.Redis, leg: LiveLeg) -> None:
    """Add or replace a leg."""
    pipe = r.pipeline()
    pipe.hset(LEGS_KEY, leg.channel, json.dumps(asdict(leg)))
    pipe.sadd(ACCOUNT_KEY.format(leg.account_id), leg.channel)
    pipe.execute()


def set_state(r: redis.Redis, channel: str, state: str) -> None:
    """Change a leg's state, if it is still live."""
    raw = r.hget(LEGS_KEY, channel)
    if raw:
        data = json.loads(raw)
        data["state"] = state
        r.hset(LEGS_KEY, channel, json.dumps(data))


def remove(r: redis.Redis, channel: str, account_id: str) -> None:
    """Forget a leg that has ended."""
    pipe = r.pipeline()
    pipe.hdel(LEGS_KEY, channel)
    pipe.srem(ACCOUNT_KEY.format(account_id), channel)
    pipe.execute()


def get(r: redis.Redis, channel: str, account_id: str) -> LiveLeg | None:
    """The leg, only if it belongs to ``account_id`` (tenancy is enforced here)."""
    raw = r.hget(LEGS_KEY, channel)
    if not raw:
        return None
    leg = LiveLeg(**json.loads(raw))
    return leg if leg.account_id == account_id else None


def for_account(r: redis.Redis, account_id: str) -> list[LiveLeg]:
    """Every live leg of one account, oldest first."""
    channels = list(r.smembers(ACCOUNT_KEY.format(account_id)))
    if not channels:
        return []
    raws = r.hmget(LEGS_KEY, channels)
    legs = [LiveLeg(**json.loads(raw)) for raw in raws if raw]
    return sorted(legs, key=lambda leg: leg.started_at)


def for_owner(r: redis.Redis, owner: str) -> list[LiveLeg]:
    """Every leg held by one engine worker (used when a worker dies)."""
    return [LiveLeg(**json.loads(raw)) for raw in r.hvals(LEGS_KEY)
            if json.loads(raw).get("owner") == owner]
