"""Several nodes, a node going down, and the listener restarted mid-call: no call goes to
a node that is down, no CDR is lost and none is left open."""
from __future__ import annotations

import json

import pytest

from cpaas.telephony.engine_client import EngineError
from cpaas.telephony.events import parse
from cpaas.telephony.plans import Dial, Plan
from pjsua_engine import keys
from freeswitch import driver
from freeswitch.nodes import parse_nodes
from tests.freeswitch.conftest import make_rig
from tests.freeswitch.esl_double import Fate
from tests.freeswitch.test_engine import CALLER, CUSTOMER, _answered, _c2c_up, _commands
from tests.launcher import wait_for


def _held(plan_id: str) -> Plan:
    """A one-leg plan that stays up (answered, nothing after its Dial)."""
    return Plan(plan_id, "ACalpha", "callback", [Dial("customer", CUSTOMER, CALLER, 10)])


@pytest.fixture
def two(fs_redis, workdir):
    rig = make_rig(fs_redis, workdir, nodes=2)
    yield rig
    rig.stop_listener()
    for double in rig.doubles:
        double.stop()


def _plans_on(double) -> set[str]:
    return {c.variables["cpaas_plan"] for c in list(double.channels.values())}


def test_two_nodes_one_down_takes_no_calls_until_it_answers_again(two):
    two.nodes_up(2)
    first, second = two.doubles
    second.stop()
    wait_for(lambda: two.client.health()["engine"] == "degraded", 10, "one node down")
    ids = [f"7a7a7a7a{i:02d}" for i in range(4)]
    for plan_id in ids:
        two.client.originate(_held(plan_id))
    for plan_id in ids:
        _answered(two, plan_id, "customer")
    assert _plans_on(first) == set(ids) and not _plans_on(second)

    second.start()   # same port: the driver's next attempt connects
    two.nodes_up(2, timeout=15)
    later = [f"7b7b7b7b{i:02d}" for i in range(3)]
    for plan_id in later:
        two.client.originate(_held(plan_id))
    for plan_id in later:
        _answered(two, plan_id, "customer")
    # The node that came back holds fewer plans: the new calls go to it.
    assert _plans_on(second) == set(later)
    assert b"originate" in second.wire()


def test_a_node_that_refuses_the_password_takes_no_calls(two):
    two.nodes_up(2)
    two.doubles[1].password = "changed"
    two.doubles[1].stop()
    two.doubles[1].start()
    wait_for(lambda: two.client.health()["engine_nodes"] == "1/2", 10, "refused node down")
    two.client.originate(_held("7c7c7c7c7c"))
    _answered(two, "7c7c7c7c7c", "customer")
    assert _plans_on(two.doubles[0]) == {"7c7c7c7c7c"}
    assert b"originate" not in two.doubles[1].wire()


def test_no_node_up_refuses_the_call(rig):
    rig.nodes_up(1)
    rig.double.stop()
    wait_for(lambda: rig.client.health()["engine"] == "down", 10, "node down")
    with pytest.raises(EngineError):
        rig.client.originate(_held("7d7d7d7d7d"))


def _ended_once(rig, plan_id: str):
    ended = parse(rig.events.ended(plan_id, timeout=20))
    assert [e.type for e in rig.events.of(plan_id)].count("plan.ended") == 1
    return ended


def test_listener_restart_mid_call_follows_the_call_to_its_end(rig):
    rig.nodes_up(1)
    agent, customer = _c2c_up(rig, "8a8a8a8a8a")
    rig.stop_listener()
    rig.start_listener()
    rig.nodes_up(1)
    wait_for(lambda: len(rig.double.commands) and
             any(c.startswith("api uuid_exists") for c in rig.double.commands), 10, "reconcile")
    assert not _commands(rig, "uuid_kill")   # an established call is left to talk
    rig.double.hangup(customer.uuid)
    ended = _ended_once(rig, "8a8a8a8a8a")
    assert {r: o.dial_status for r, o in ended.legs.items()} == {"agent": "ANSWER",
                                                                 "customer": "ANSWER"}
    assert _commands(rig, "uuid_kill") == [f"bgapi uuid_kill {agent.uuid} NORMAL_CLEARING"]
    assert ended.cause == "normal"


def test_a_leg_that_ended_while_the_listener_was_away_is_closed_on_reconnect(rig):
    rig.nodes_up(1)
    agent, customer = _c2c_up(rig, "8b8b8b8b8b")
    rig.stop_listener()
    rig.double.hangup(customer.uuid)   # nobody is listening: the event is lost
    rig.start_listener()
    ended = _ended_once(rig, "8b8b8b8b8b")
    assert ended.legs["customer"].dial_status == "ANSWER"
    assert ended.legs["customer"].ended_at is not None
    assert f"api uuid_exists {customer.uuid}" in rig.double.commands
    # The agent, still up on the node, was hung up: nothing is left open anywhere.
    assert _commands(rig, "uuid_kill") == [f"bgapi uuid_kill {agent.uuid} NORMAL_CLEARING"]
    wait_for(lambda: not rig.r.hlen("cpaas:live:legs"), 5, "live registry emptied")


def test_a_plan_caught_half_way_by_a_restart_is_hung_up(rig):
    rig.nodes_up(1)
    rig.double.fates[CUSTOMER] = Fate(delay=1.5)
    rig.client.originate(Plan("8c8c8c8c8c", "ACalpha", "otp",
                              [Dial("customer", CUSTOMER, CALLER, 10)]))
    channel = wait_for(lambda: rig.double.channel("8c8c8c8c8c", "customer"), 5, "dialed")
    rig.stop_listener()
    rig.start_listener()
    ended = _ended_once(rig, "8c8c8c8c8c")
    assert ended.cause == driver.RESTART_CAUSE
    assert channel.ended and _commands(rig, "uuid_kill")


def test_a_node_lost_for_good_closes_its_plans(rig, monkeypatch):
    monkeypatch.setattr(driver, "NODE_LOST_AFTER", 1.0)
    rig.nodes_up(1)
    rig.client.originate(_held("8d8d8d8d8d"))
    _answered(rig, "8d8d8d8d8d", "customer")
    rig.double.stop()
    ended = _ended_once(rig, "8d8d8d8d8d")
    assert ended.cause == driver.NODE_LOST_CAUSE
    assert ended.legs["customer"].dial_status == "ANSWER"
    wait_for(lambda: not rig.r.hlen("cpaas:live:legs"), 5, "live registry emptied")


def test_plans_waiting_for_a_node_that_went_down(two):
    """What the dialer's no_engine_capacity reads: queued, not taken by a driver."""
    two.nodes_up(2)
    two.stop_listener()
    for node in two.client.nodes:   # the drivers' last beats, as drivers stalled after them
        two.r.set(node.beat_key, json.dumps({"plans": 0}), ex=5)
    for i in range(3):
        two.client.originate(_held(f"7e7e7e7e{i:02d}"))
    assert two.client.waiting() == 3
    assert {f"7e7e7e7e{i:02d}" for i in range(3)} <= two.client.held_plans()
    two.start_listener()
    wait_for(lambda: two.client.waiting() == 0, 10, "plans taken")


def test_channels_of_ours_that_no_plan_holds_are_hung_up_on_reconnect(rig):
    rig.nodes_up(1)
    agent, customer = _c2c_up(rig, "8e8e8e8e8e")
    rig.stop_listener()
    # Redis lost the plan's snapshot while nobody listened: no driver holds the call now.
    rig.r.delete(keys.worker_plans(parse_nodes(rig.double.address)[0].owner))
    foreign = rig.double.add_channel("919900000071")   # not ours: no cpaas_* variables
    elsewhere = rig.double.add_channel("919900000072", cpaas_node="10.0.0.9:8021",
                                       cpaas_plan="9f9f9f9f9f")   # another node's driver
    rig.start_listener()
    rig.nodes_up(1)
    wait_for(lambda: agent.ended and customer.ended, 10, "strays hung up")
    assert "api show channels as json" in rig.double.commands
    assert sorted(_commands(rig, "uuid_kill")) == sorted(
        f"bgapi uuid_kill {leg.uuid} NORMAL_CLEARING" for leg in (agent, customer))
    assert not foreign.ended and not elsewhere.ended


def test_a_call_the_driver_holds_is_not_taken_for_a_stray(rig):
    rig.nodes_up(1)
    _c2c_up(rig, "8f8f8f8f8f")
    rig.stop_listener()
    rig.start_listener()
    rig.nodes_up(1)
    wait_for(lambda: "api show channels as json" in rig.double.commands, 10, "listing")
    rig.double.hangup(rig.double.channel("8f8f8f8f8f", "customer").uuid)
    _ended_once(rig, "8f8f8f8f8f")
    # Only the plan's own end hung the agent up; nothing was killed as a stray.
    assert len(_commands(rig, "uuid_kill")) == 1
    assert not _commands(rig, "uuid_getvar")
