"""An engine worker that dies is replaced, and its calls are closed in the CDRs with a cause."""
from __future__ import annotations

import json
import os
import signal

from tests.api.conftest import body
from tests.e2e.numbers import CALLER_ID, number
from tests.launcher import wait_for


def test_killed_engine_worker_closes_its_calls_and_is_replaced(platform, api):
    request_id = body(api.post("/api/click2call", {
        "agent_number": number("101"), "caller_id": CALLER_ID,
        "destination_number": number("102")}))["request_id"]
    leg = platform.live(api, request_id, "customer", "bridged")
    owner = json.loads(platform.redis.hget("cpaas:live:legs", leg["channel"]))["owner"]
    pid = json.loads(platform.redis.hget("cpaas:engine:workers", owner))["pid"]
    os.kill(pid, signal.SIGKILL)
    cdr = platform.cdr(api, request_id)
    assert cdr["hangup_cause"] == "engine_worker_died"
    assert cdr["dial_status"] == "ANSWER" and cdr["billsec"] > 0
    assert all(l["request_id"] != request_id for l in body(api.get("/api/live_calls"))["result"])
    wait_for(lambda: json.loads(platform.redis.hget("cpaas:engine:workers", owner) or "{}")
             .get("pid") not in (None, pid), 60, "a new worker in the dead one's place")
    # Calls still go through afterwards.
    again = body(api.post("/api/click2call", {"agent_number": number("486"), "caller_id": CALLER_ID,
                                              "destination_number": number("102")}))["request_id"]
    assert platform.cdr(api, again)["dial_status"] == "BUSY"
