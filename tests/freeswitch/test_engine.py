"""The FreeSWITCH engine against the ESL double: the raw bytes each verb sends, the
engine events (hence CDRs) each outcome gives, actions on live legs."""
from __future__ import annotations

import re
import wave

import pytest

from cpaas.calls.plan_builders import click2call
from cpaas.telephony.engine_client import LegAction
from cpaas.telephony.events import parse
from cpaas.telephony.outcomes import declined
from cpaas.telephony.plans import Branch, Dial, Gather, Hangup, Play, Plan
from freeswitch import commands, runner
from tests.freeswitch import esl_double as fates
from tests.launcher import wait_for

AGENT, CUSTOMER, CALLER = "919900000001", "919900000002", "919900000009"


def _commands(rig, name: str, full: bool = False) -> list[str]:
    """The command blocks of one command the node received (first line only unless
    ``full``: a bgapi's second line is its Job-UUID)."""
    found = [c for c in rig.double.commands
             if c.split(" ", 2)[:2] in (["bgapi", name], ["api", name])]
    return found if full else [c.split("\n")[0] for c in found]


def _leg(rig, plan_id: str, role: str):
    return wait_for(lambda: rig.double.channel(plan_id, role), 10, f"{role} channel")


def _answered(rig, plan_id: str, role: str):
    return rig.events.wait(plan_id, "leg.answered", 10, where=lambda e: e.leg == role)


def test_engine_client_is_the_freeswitch_one(rig):
    assert rig.client.name == "freeswitch"
    rig.nodes_up(1)
    assert rig.client.health()["engine"] == "ok"
    # Subscribed to every event it uses; no filter: FreeSWITCH puts channel variables
    # only on some events (DTMF carries none), so a variable filter would drop digits.
    assert rig.double.commands[:2] == ["auth ClueCon", "events plain " + " ".join(commands.EVENTS)]


def test_click2call_with_stereo_recording_bytes_and_events(rig):
    rig.nodes_up(1)
    plan = click2call("a1b2c3d4e5", "ACalpha", AGENT, CUSTOMER, CALLER, "both",
                      "recordings/a1b2c3d4e5.wav", ring_timeout=20)
    rig.client.originate(plan)
    _answered(rig, plan.plan_id, "agent")
    _answered(rig, plan.plan_id, "customer")
    agent, customer = _leg(rig, plan.plan_id, "agent"), _leg(rig, plan.plan_id, "customer")
    wait_for(lambda: _commands(rig, "uuid_bridge"), 5, "bridge")

    originates = _commands(rig, "originate", full=True)
    assert re.fullmatch(
        r"bgapi originate \{origination_uuid=" + agent.uuid + r",origination_caller_id_number="
        + CALLER + r",origination_caller_id_name=" + CALLER + r",originate_timeout=25,"
        r"ignore_early_media=true,hangup_after_bridge=false,park_after_bridge=true,"
        r"cpaas_plan=a1b2c3d4e5,cpaas_account=ACalpha,cpaas_role=agent,cpaas_kind=c2c,"
        r"cpaas_node=127\.0\.0\.1:\d+\}sofia/gateway/trunk/" + AGENT
        + r" &park\(\)\nJob-UUID: [0-9a-f-]{36}", originates[0])
    assert f"sofia/gateway/trunk/{CUSTOMER} &park()" in originates[1]
    # Both sides on the customer's leg (the one a transfer keeps): its peer left, itself right.
    record = _commands(rig, "uuid_record")[0]
    assert re.fullmatch(rf"api uuid_record {customer.uuid} start /\S+/a1b2c3d4e5-0\.wav 0 "
                        r"\{RECORD_STEREO=true,RECORD_STEREO_SWAP=true\}", record)
    assert _commands(rig, "uuid_bridge")[0] == f"bgapi uuid_bridge {agent.uuid} {customer.uuid}"
    # Every bgapi carries a Job-UUID of our own, never repeated.
    bgapis = [c for c in rig.double.commands if c.startswith("bgapi ")]
    jobs = [re.fullmatch(r"bgapi [^\n]+\nJob-UUID: ([0-9a-f-]{36})", c).group(1) for c in bgapis]
    assert len(jobs) == len(set(jobs)) >= 3

    live = rig.r.hgetall("cpaas:live:legs")
    assert {k.decode() for k in live} == {f"FS/{agent.uuid}", f"FS/{customer.uuid}"}

    rig.double.hangup(customer.uuid)   # the customer hangs up: both end
    ended = parse(rig.events.ended(plan.plan_id))
    assert ended.cause == "normal"
    assert {r: o.dial_status for r, o in ended.legs.items()} == {"agent": "ANSWER",
                                                                 "customer": "ANSWER"}
    assert ended.legs["customer"].hangup_cause == "NORMAL_CLEARING"
    assert ended.recordings == ("recordings/a1b2c3d4e5.wav",)
    stored = parse(rig.events.wait(plan.plan_id, "recording.stored"))
    assert stored.channels == 2
    with wave.open(str(rig.settings.data_dir / "bucket" / "recordings/a1b2c3d4e5.wav")) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
    assert _commands(rig, "uuid_kill") == [f"bgapi uuid_kill {agent.uuid} NORMAL_CLEARING"]
    wait_for(lambda: not rig.r.hlen("cpaas:live:legs"), 5, "live registry emptied")


@pytest.mark.parametrize("fate,status,cause,sip", [
    (fates.BUSY, "BUSY", "USER_BUSY", 486),
    (fates.NO_USER_RESPONSE, "NOANSWER", "NO_USER_RESPONSE", 480),
    (fates.CONGESTION, "CONGESTION", "NORMAL_TEMPORARY_FAILURE", 503),
    (fates.UNALLOCATED, "CHANUNAVAIL", "UNALLOCATED_NUMBER", 404),
    (fates.REJECTED, "CHANUNAVAIL", "CALL_REJECTED", 603),
    (fates.RING, "NOANSWER", "NO_ANSWER", None),
    (fates.SILENT, "CHANUNAVAIL", "NORMAL_TEMPORARY_FAILURE", None),
    (fates.REFUSE, "CHANUNAVAIL", "DESTINATION_OUT_OF_ORDER", None),
], ids=["busy", "480", "503", "404", "603", "ring-timeout", "nothing-listening", "sps-refused"])
def test_failure_causes_become_dial_statuses(rig, fate, status, cause, sip):
    rig.nodes_up(1)
    rig.double.fates[CUSTOMER] = fate
    plan = Plan("f00dfeed01", "ACalpha", "otp", [Dial("customer", CUSTOMER, CALLER, 1),
                                                 Hangup()])
    rig.client.originate(plan)
    ended = parse(rig.events.ended(plan.plan_id, timeout=15))
    leg = ended.legs["customer"]
    assert (ended.cause, leg.dial_status, leg.hangup_cause, leg.sip_code) == (
        "dial_failed", status, cause, sip)
    assert declined(leg) == (sip == 603)
    hangups = [e for e in rig.events.of(plan.plan_id) if e.type == "leg.hangup"]
    assert len(hangups) == 1 and hangups[0].data["dial_status"] == status


def test_play_n_times_then_hang_up(rig):
    rig.nodes_up(1)
    prompt = rig.settings.media_dir / "prompts" / "otp-1.wav"
    prompt.parent.mkdir(parents=True)
    prompt.write_bytes(b"RIFF")
    plan = Plan("0a0b0c0d0e", "ACalpha", "otp", [Dial("customer", CUSTOMER, CALLER, 10),
                                                 Play("customer", "prompts/otp-1.wav", 3),
                                                 Hangup()])
    rig.client.originate(plan)
    ended = parse(rig.events.ended(plan.plan_id))
    uuid = rig.double.channel(plan.plan_id, "customer").uuid
    assert _commands(rig, "uuid_broadcast") == [
        f"bgapi uuid_broadcast {uuid} playback::{prompt} aleg"] * 3
    assert _commands(rig, "uuid_kill") == [f"bgapi uuid_kill {uuid} NORMAL_CLEARING"]
    assert ended.cause == "normal" and ended.legs["customer"].dial_status == "ANSWER"


def _announce_with_drops(rig, plan_id: str, drops: int):
    """One announcement call while the double drops the first ``drops`` broadcasts; the
    prompt's path and the plan's end."""
    rig.nodes_up(1)
    prompt = rig.settings.media_dir / "prompts" / "hello.wav"
    prompt.parent.mkdir(parents=True)
    prompt.write_bytes(b"RIFF")
    rig.double.drop_broadcasts = drops
    plan = Plan(plan_id, "ACalpha", "campaign", [Dial("contact", CUSTOMER, CALLER, 10),
                                                 Play("contact", "prompts/hello.wav", 1),
                                                 Hangup()])
    rig.client.originate(plan)
    return prompt, parse(rig.events.ended(plan_id, timeout=30))


def test_a_broadcast_the_node_drops_is_sent_again(rig):
    """FreeSWITCH runs and drops a broadcast that reaches a leg between its answer and its
    park() (no audio, no PLAYBACK_START): the prompt is sent again, not waited for until
    the callee hangs up."""
    prompt, ended = _announce_with_drops(rig, "0a0b0c0d0f", drops=1)
    uuid = rig.double.channel("0a0b0c0d0f", "contact").uuid
    assert _commands(rig, "uuid_broadcast") == [
        f"bgapi uuid_broadcast {uuid} playback::{prompt} aleg"] * 2
    assert ended.cause == "normal" and ended.legs["contact"].dial_status == "ANSWER"


def test_a_prompt_that_never_starts_ends_the_plan(rig, monkeypatch):
    monkeypatch.setattr(runner, "PLAYBACK_START_WAIT", 0.5)
    _, ended = _announce_with_drops(rig, "0a0b0c0d10", drops=99)
    assert len(_commands(rig, "uuid_broadcast")) == runner.PLAYBACK_TRIES
    assert ended.cause == "error"


def test_a_slow_node_reply_holds_no_other_plan_back(rig):
    """The driver posts its commands without waiting for each reply: with a node that
    takes 0.3 s to answer each bgapi, all five plans' originates reach it before it has
    answered the first (waiting for each reply in turn, none could), in the order the
    plans were taken, and every call still plays and ends."""
    rig.nodes_up(1)
    prompt = rig.settings.media_dir / "prompts" / "hello.wav"
    prompt.parent.mkdir(parents=True)
    prompt.write_bytes(b"RIFF")
    rig.double.reply_delay = 0.3
    ids = [f"5a5a5a5a5{n}" for n in range(5)]
    for plan_id in ids:
        rig.client.originate(Plan(plan_id, "ACalpha", "campaign", [
            Dial("contact", CUSTOMER, CALLER, 10), Play("contact", "prompts/hello.wav", 1),
            Hangup()]))
    ended = {plan_id: parse(rig.events.ended(plan_id, timeout=30)) for plan_id in ids}
    assert all(e.cause == "normal" and e.legs["contact"].dial_status == "ANSWER"
               for e in ended.values())
    first_reply = next(i for i, (what, _) in enumerate(rig.double.log) if what == "replied")
    read_first = [block for what, block in rig.double.log[:first_reply]
                  if what == "read" and block.startswith("bgapi originate")]
    assert [re.search(r"cpaas_plan=(\w+)", b).group(1) for b in read_first] == ids


def test_ivr_gathers_a_digit_and_branches_to_an_agent(rig):
    rig.nodes_up(1)
    plan = Plan("1e1e1e1e1e", "ACalpha", "campaign", [
        Dial("contact", CUSTOMER, CALLER, 10), Gather("contact", 1, 5),
        Branch("contact", {"1": "agent:102", "2": "number:919900000077"}, CALLER, 10)],
        max_legs=2)
    rig.client.originate(plan)
    _answered(rig, plan.plan_id, "contact")
    contact = _leg(rig, plan.plan_id, "contact")
    rig.double.dtmf(contact.uuid, "1")
    rig.events.wait(plan.plan_id, "leg.dtmf")
    _answered(rig, plan.plan_id, "transfer_target")
    target = _leg(rig, plan.plan_id, "transfer_target")
    assert "}user/102 &park()" in _commands(rig, "originate")[1]
    assert "cpaas_role=transfer_target" in _commands(rig, "originate")[1]
    wait_for(lambda: _commands(rig, "uuid_bridge"), 5, "bridge")
    assert _commands(rig, "uuid_bridge") == [f"bgapi uuid_bridge {contact.uuid} {target.uuid}"]
    rig.double.hangup(target.uuid)
    ended = parse(rig.events.ended(plan.plan_id))
    assert (ended.ivr_result, ended.transfer_to, ended.dtmf) == ("transferred", "agent:102", "1")


def test_ivr_no_input_hangs_up(rig):
    rig.nodes_up(1)
    plan = Plan("2e2e2e2e2e", "ACalpha", "campaign", [
        Dial("contact", CUSTOMER, CALLER, 10), Gather("contact", 1, 1),
        Branch("contact", {"1": "agent:102"}, CALLER, 10)], max_legs=2)
    rig.client.originate(plan)
    ended = parse(rig.events.ended(plan.plan_id))
    assert ended.ivr_result == "no_input" and len(_commands(rig, "originate")) == 1


def _c2c_up(rig, plan_id: str):
    plan = click2call(plan_id, "ACalpha", AGENT, CUSTOMER, CALLER, "none", None, ring_timeout=10)
    rig.client.originate(plan)
    _answered(rig, plan_id, "customer")
    wait_for(lambda: _commands(rig, "uuid_bridge"), 5, "bridge")
    return _leg(rig, plan_id, "agent"), _leg(rig, plan_id, "customer")


def test_blind_transfer_through_modify_call(rig):
    rig.nodes_up(1)
    agent, customer = _c2c_up(rig, "3e3e3e3e3e")
    rig.client.act(f"FS/{agent.uuid}", LegAction("blind_transfer", target="919900000055",
                                                 target_kind="number"))
    _answered(rig, "3e3e3e3e3e", "transfer_target")
    target = _leg(rig, "3e3e3e3e3e", "transfer_target")
    wait_for(lambda: len(_commands(rig, "uuid_bridge")) == 2, 5, "second bridge")
    assert _commands(rig, "uuid_bridge")[1] == f"bgapi uuid_bridge {customer.uuid} {target.uuid}"
    wait_for(lambda: agent.ended, 5, "transferer hung up")
    rig.double.hangup(customer.uuid)
    ended = parse(rig.events.ended("3e3e3e3e3e"))
    assert set(ended.legs) == {"agent", "customer", "transfer_target"}
    assert ended.legs["transfer_target"].dial_status == "ANSWER"


def test_attended_transfer_holds_the_customer_then_joins_the_target(rig):
    rig.nodes_up(1)
    agent, customer = _c2c_up(rig, "4e4e4e4e4e")
    rig.client.act(f"FS/{customer.uuid}", LegAction("attended_transfer", target="102",
                                                    target_kind="agent"))
    assert _commands(rig, "uuid_transfer") == [f"bgapi uuid_transfer {customer.uuid} park inline"]
    target = _leg(rig, "4e4e4e4e4e", "transfer_target")
    wait_for(lambda: len(_commands(rig, "uuid_bridge")) == 2, 5, "consultation")
    assert _commands(rig, "uuid_bridge")[1] == f"bgapi uuid_bridge {agent.uuid} {target.uuid}"
    rig.double.hangup(agent.uuid)    # the agent leaves: customer and target are joined
    wait_for(lambda: len(_commands(rig, "uuid_bridge")) == 3, 5, "join")
    assert _commands(rig, "uuid_bridge")[2] == f"bgapi uuid_bridge {customer.uuid} {target.uuid}"
    rig.double.hangup(target.uuid)
    ended = parse(rig.events.ended("4e4e4e4e4e"))
    assert ended.cause == "normal" and len(ended.legs) == 3


def test_an_agent_leaving_while_the_consultation_forms_still_hands_the_call_over(rig):
    """FreeSWITCH's uuid_bridge takes the other leg down when one leaves while the
    bridge forms (the double does the same): the agent's hangup waits for the
    consultation bridge, so the target stays and the held customer joins it. Seen on
    the real node, with the agent hanging up the instant the target answered."""
    rig.nodes_up(1)
    agent, customer = _c2c_up(rig, "4f4f4f4f4f")
    rig.double.bridge_delay = 0.4
    rig.client.act(f"FS/{customer.uuid}", LegAction("attended_transfer", target="102",
                                                    target_kind="agent"))
    target = _leg(rig, "4f4f4f4f4f", "transfer_target")
    wait_for(lambda: len(_commands(rig, "uuid_bridge")) == 2, 5, "consultation asked for")
    rig.client.act(f"FS/{agent.uuid}", LegAction("hangup"))
    assert _commands(rig, "uuid_kill") == []          # held: the bridge has not formed
    wait_for(lambda: len(_commands(rig, "uuid_bridge")) == 3, 5, "customer joined to the target")
    assert _commands(rig, "uuid_bridge")[2] == f"bgapi uuid_bridge {customer.uuid} {target.uuid}"
    assert _commands(rig, "uuid_kill") == [f"bgapi uuid_kill {agent.uuid} NORMAL_CLEARING"]
    rig.double.hangup(target.uuid)
    ended = parse(rig.events.ended("4f4f4f4f4f"))
    assert ended.cause == "normal"
    assert ended.legs["transfer_target"].hangup_cause == "NORMAL_CLEARING"


def test_a_hangup_held_for_a_bridge_that_never_forms_goes_after_a_while(rig, monkeypatch):
    monkeypatch.setattr(runner, "BRIDGE_FORM_WAIT", 0.5)
    rig.nodes_up(1)
    rig.double.bridge_delay = 60                      # the bridge never forms in this test
    agent, _customer = _c2c_up(rig, "4f4f4f4f50")
    rig.client.act(f"FS/{agent.uuid}", LegAction("hangup"))
    assert _commands(rig, "uuid_kill") == []
    wait_for(lambda: _commands(rig, "uuid_kill"), 5, "the held hangup")
    # (then the plan's end hangs up the customer, whose bridge never formed either)
    assert _commands(rig, "uuid_kill")[0] == f"bgapi uuid_kill {agent.uuid} NORMAL_CLEARING"
    ended = parse(rig.events.ended("4f4f4f4f50"))
    assert ended.legs["agent"].dial_status == "ANSWER"


def test_hangup_and_record_on_a_live_call(rig):
    rig.nodes_up(1)
    agent, customer = _c2c_up(rig, "5e5e5e5e5e")
    rig.client.act(f"FS/{customer.uuid}", LegAction("record", record_key="rec/5e5e5e5e5e.wav"))
    assert _commands(rig, "uuid_record")[0].startswith(f"api uuid_record {customer.uuid} start ")
    rig.client.act(f"FS/{agent.uuid}", LegAction("hangup"))
    ended = parse(rig.events.ended("5e5e5e5e5e"))
    assert ended.recordings == ("rec/5e5e5e5e5e.wav",)
    assert _commands(rig, "uuid_kill")[0] == f"bgapi uuid_kill {agent.uuid} NORMAL_CLEARING"


def test_an_unknown_channel_is_not_found(rig):
    from cpaas.telephony.engine_client import LegNotFound

    rig.nodes_up(1)
    with pytest.raises(LegNotFound):
        rig.client.act("FS/0e6a6c5e-0a44-4d5d-9a53-2a1f6f1f7a10", LegAction("hangup"))


@pytest.mark.parametrize("field", ["caller_id", "number"])
@pytest.mark.parametrize("bad", ["9199000000\r\nbgapi fsctl shutdown", "91990000,01", "9199'0001",
                                 "9199{0001}", "9199 00001"])
def test_hostile_plan_fields_never_reach_the_node(rig, field, bad):
    rig.nodes_up(1)
    dial = {"leg": "customer", "number": CUSTOMER, "caller_id": CALLER, "ring_timeout": 5}
    dial[field] = bad
    with pytest.raises(ValueError):
        rig.client.originate(Plan("6e6e6e6e6e", "ACalpha", "otp", [Dial(**dial)]))
    assert b"originate" not in rig.double.wire()
