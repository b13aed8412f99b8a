"""SIP outcomes of real calls through the sandbox carrier become the spec's CDR words."""
from __future__ import annotations

import pytest

from tests.api.conftest import body
from tests.e2e.numbers import CALLER_ID, number


@pytest.mark.parametrize("suffix, dial_status, call_status", [
    ("486", "BUSY", "BUSY"),
    ("503", "CONGESTION", "CONGESTION"),
    ("404", "CHANUNAVAIL", "CHANUNAVAIL"),
    ("480", "NOANSWER", "NO ANSWER"),
])
def test_agent_failure_ends_the_call_before_the_customer_is_dialed(platform, api, suffix,
                                                                   dial_status, call_status):
    agent, customer = number(suffix), number("101")
    r = api.post("/api/click2call", {"agent_number": agent, "caller_id": CALLER_ID,
                                     "destination_number": customer})
    assert r.status_code == 200, r.data
    request_id = body(r)["request_id"]
    cdr = platform.cdr(api, request_id)
    assert cdr["dial_status"] == dial_status
    assert cdr["call_status"] == call_status
    assert cdr["answer"] == "Thu, 01 Jan 1970 00:00:00 GMT" and cdr["billsec"] == 0
    assert cdr["agent_number"] == agent and cdr["dialed_number"] == customer
    assert cdr["destination_context"] == "click2call" and cdr["call_direction"] == "outbound-api"
    assert platform.invites(agent) == 1
    assert platform.invites(customer) == 0, "the customer must never be dialed"


@pytest.mark.parametrize("suffix, dial_status", [("486", "BUSY"), ("503", "CONGESTION"),
                                                 ("404", "CHANUNAVAIL")])
def test_customer_failure_after_agent_answers(platform, api, suffix, dial_status):
    agent, customer = number("101"), number(suffix)
    request_id = body(api.post("/api/click2call", {"agent_number": agent, "caller_id": CALLER_ID,
                                                   "destination_number": customer}))["request_id"]
    cdr = platform.cdr(api, request_id)
    assert cdr["dial_status"] == dial_status
    assert platform.invites(agent) == 1 and platform.invites(customer) == 1


def test_answered_click2call_is_billed_from_the_customer_answer(platform, api):
    agent, customer = number("101"), number("102")
    request_id = body(api.post("/api/click2call", {"agent_number": agent, "caller_id": CALLER_ID,
                                                   "destination_number": customer}))["request_id"]
    platform.live(api, request_id, "customer", "bridged")
    leg = platform.live(api, request_id, "agent")
    assert body(api.post("/api/modify_call", {"channel": leg["channel"], "modify_type": "2"})) == {
        "message": "call hangup successfully", "success": "true"}
    cdr = platform.cdr(api, request_id)
    assert cdr["dial_status"] == "ANSWER" and cdr["call_status"] == "ANSWERED"
    assert cdr["answer"] != "Thu, 01 Jan 1970 00:00:00 GMT"
    assert 0 < cdr["billsec"] <= cdr["call_duration"]
    assert cdr["uniqueid"] and cdr["request_id"] == request_id
    assert all(leg["request_id"] != request_id for leg in body(api.get("/api/live_calls"))["result"])
