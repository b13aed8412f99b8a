"""What a plan may carry to an engine: audio as safe names inside the media root."""
from __future__ import annotations

from pathlib import Path

import pytest

from cpaas.telephony import plans
from cpaas.telephony.plans import Dial, Gather, Hangup, Play, Plan, media_path


def _plan(audio: str, ephemeral: list[str] | None = None) -> Plan:
    return Plan("rq1a2b3c4d", "ACplans", "otp",
                [Dial("customer", "15557650001", "15551230000"), Play("customer", audio), Hangup()],
                ephemeral_files=ephemeral or [])


def test_relative_names_inside_the_media_root_are_accepted():
    _plan("calls/rq1a2b3c4d-00ff.wav", ["calls/rq1a2b3c4d-00ff.wav"]).validate()
    root = Path("/srv/data folder with spaces/media")
    assert media_path(root, "cache/ab.wav") == root / "cache" / "ab.wav"


@pytest.mark.parametrize("name", ["/etc/passwd", "../secret.wav", "calls/../../x.wav", "a b.wav",
                                  "calls/x.wav\nuuid_kill", "", "x" * 201])
def test_anything_else_is_refused_in_play_ephemeral_files_and_resolution(name):
    with pytest.raises(ValueError):
        _plan(name).validate()
    with pytest.raises(ValueError):
        _plan("calls/ok.wav", [name]).validate()
    with pytest.raises(ValueError):
        media_path(Path("/srv/media"), name)


# ----------------------------------------------------------------- Branch (IVR)
CALLER = "15551230000"
ROUTES = {"0": "agent:102", "9": "number:919900000001", "12": "number:12025550100",
          "*": "agent:4455", "#" + "0" * 19: "agent:99"}


def _ivr(routes: dict | None = None, max_legs: int = 2, **branch) -> Plan:
    """A campaign IVR plan: dial, announce, gather, branch (as the dialer builds it)."""
    return Plan("rq1a2b3c4d", "ACplans", "campaign", [
        Dial("contact", "919900000551", CALLER), Play("contact", "cache/an.wav", 2),
        Gather("contact", 2, 5),
        plans.Branch(**{"leg": "contact", "routes": ROUTES if routes is None else routes,
                        "caller_id": CALLER, **branch})], max_legs=max_legs)


def test_a_branch_plan_round_trips_through_json():
    plan = _ivr(ring_timeout=20)
    plan.validate()
    back = Plan.from_json(plan.to_json())
    assert back == plan
    assert isinstance(back.verbs[-1], plans.Branch)
    assert back.verbs[-1].routes == ROUTES and back.verbs[-1].ring_timeout == 20
    _ivr({}).validate()   # no route: every input ends the call as invalid


def test_a_branch_names_its_targets_and_misses():
    branch = _ivr().verbs[-1]
    assert branch.target("0") == ("agent", "102")
    assert branch.target("12") == ("number", "12025550100")
    assert branch.miss("9") is None and branch.miss("") == "no_input"
    assert branch.miss("7") == "invalid" and branch.miss("1") == "invalid"


@pytest.mark.parametrize("routes", [
    {"0": "agent:1"}, {"0": "agent:1234567"}, {"0": "number:1234567"},
    {"0": "number:1234567890123456"}, {"0": "sip:102"}, {"0": "agent:102;drop"},
    {"0": "agent:102\r\nuuid_kill"}, {"0": "number: 919900000001"}, {"0": "Agent:102"},
    {"0": "agent:１０２"}, {"a": "agent:102"}, {"": "agent:102"}, {"0\n": "agent:102"},
    {"0" * 21: "agent:102"}, {"0": 102}, ["0", "agent:102"],
])
def test_a_branch_carries_only_strict_tokens(routes):
    with pytest.raises(ValueError):
        _ivr(routes).validate()


@pytest.mark.parametrize("branch", [
    {"caller_id": "1555 123"}, {"caller_id": "+15551230000"}, {"leg": "contact;x"},
    {"leg": "boss"}, {"ring_timeout": 0}, {"ring_timeout": "30"}, {"ring_timeout": True},
    {"ring_timeout": 3600},
])
def test_a_branch_checks_its_leg_caller_id_and_ring_timeout(branch):
    with pytest.raises(ValueError):
        _ivr(**branch).validate()


def test_a_branch_needs_a_call_slot_for_its_transfer():
    with pytest.raises(ValueError, match="max_legs"):
        _ivr(max_legs=1).validate()
