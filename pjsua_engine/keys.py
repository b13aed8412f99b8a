"""Redis keys and message shapes shared by the engine front, the workers and the pool.

Plans wait in one list per leg count so a worker only pops plans that fit its free
call slots. Each worker has a command list for live-leg actions; replies come back on
a per-request list that expires on its own.
"""
from __future__ import annotations

#: PJSUA2 wheel limit: calls per process (GUIDE §1); a plan never spans processes.
MAX_CALLS_PER_WORKER = 4

PLAN_QUEUE = "cpaas:engine:plans:{n}"              # list of Plan JSON, n = max_legs
WORKER_CMD = "cpaas:engine:worker:{worker}:cmd"    # list of command JSON
WORKER_PLANS = "cpaas:engine:worker:{worker}:plans"  # hash plan_id -> state snapshot
WORKERS = "cpaas:engine:workers"                   # hash worker id -> {pid, port, ...}
#: A pool's heartbeat (JSON: its configured count and the ids of its live workers),
#: refreshed every POOL_BEAT seconds and gone POOL_TTL seconds after the pool stops
#: beating, so a pool killed outright is not taken for alive by the registry it left.
POOL = "cpaas:engine:pool:{host}"
POOL_BEAT, POOL_TTL = 1.0, 5
REPLY = "cpaas:engine:reply:{request}"             # list with one reply JSON
REPLY_TTL = 60                                     # seconds a reply waits for a reader


def plan_queue(max_legs: int) -> str:
    """The list holding plans that need ``max_legs`` call slots."""
    return PLAN_QUEUE.format(n=max_legs)


def worker_cmd(worker_id: str) -> str:
    """The command list of one worker."""
    return WORKER_CMD.format(worker=worker_id)


def worker_plans(worker_id: str) -> str:
    """The hash of plan snapshots one worker keeps for the pool's cleanup."""
    return WORKER_PLANS.format(worker=worker_id)


def reply_key(request_id: str) -> str:
    """The list a worker pushes its answer to one command onto."""
    return REPLY.format(request=request_id)


def pool_key(host: str) -> str:
    """The heartbeat key of the pool on ``host`` (worker ids are ``host:port``)."""
    return POOL.format(host=host)
