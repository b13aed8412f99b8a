"""Against a real FreeSWITCH (opt-in: only when ``FREESWITCH_ESL`` is set).

The node must be loopback-only (GUIDE §5) with a gateway (``FREESWITCH_GATEWAY``,
default ``trunk``) to the sandbox carrier on 127.0.0.1:5070, which these tests start
unless one already answers there. The node writes recordings and reads prompts in this
test's data folder, so it must run on this machine (the shared-folder mode). Run e.g.::

    FREESWITCH_ESL=127.0.0.1:8021 FREESWITCH_ESL_PASSWORD=… \\
        .venv/bin/pytest tests/freeswitch/test_real_freeswitch.py -q
"""
from __future__ import annotations

import os
import subprocess
import time
import wave

import pytest

import sandbox_carrier
from cpaas.calls.plan_builders import click2call
from cpaas.telephony.engine_client import LegAction
from cpaas.telephony.events import parse
from cpaas.telephony.plans import Branch, Dial, Gather, Hangup, Play, Plan
from tests.freeswitch.conftest import Rig
from tests.engine.rig import EventLog
from tests.launcher import wait_for

pytestmark = pytest.mark.skipif(not os.environ.get("FREESWITCH_ESL"),
                                reason="needs a real FreeSWITCH: set FREESWITCH_ESL")

CALLER = "919900000009"


@pytest.fixture(scope="module")
def carrier(tmp_path_factory):
    """The sandbox carrier the node's gateway points at (ours unless one runs)."""
    if sandbox_carrier.probe("127.0.0.1", 5070, timeout=0.5):
        yield None
        return
    proc = sandbox_carrier.start("127.0.0.1", 5070, hold=20,
                                 log_dir=tmp_path_factory.mktemp("carrier"), dtmf_delay=2.0)
    yield proc
    sandbox_carrier.stop(proc)


@pytest.fixture
def real(fs_redis, workdir, carrier):
    from cpaas import config

    url = fs_redis.connection_pool.connection_kwargs
    settings = config.load()
    settings.data_dir = workdir
    settings.redis_url = f"redis://{url['host']}:{url['port']}/{url['db']}"
    rig = Rig([], settings, fs_redis, EventLog(fs_redis))
    rig.start_listener()
    wait_for(lambda: rig.client.health()["engine"] == "ok", 15, "node up")
    yield rig
    rig.stop_listener()


def _tone(path, seconds: float = 1.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path), "synth",
                    str(seconds), "sine", "440"], check=True)


def _statuses(ended) -> dict[str, str]:
    return {role: o.dial_status for role, o in ended.legs.items()}


def test_click2call_with_stereo_recording(real):
    plan = click2call("c0ffee0001", "ACalpha", "919900000001", "919900000002", CALLER, "both",
                      "recordings/c0ffee0001.wav", ring_timeout=10)
    real.client.originate(plan)
    for role in ("agent", "customer"):
        real.events.wait(plan.plan_id, "leg.answered", 15, where=lambda e, r=role: e.leg == r)
    agent = real.events.wait(plan.plan_id, "leg.answered", 1, where=lambda e: e.leg == "agent")
    wait_for(lambda: real.r.hget("cpaas:live:legs", agent.channel) and b"bridged" in
             real.r.hget("cpaas:live:legs", agent.channel), 5, "bridged")
    time.sleep(2)   # the two sides talk (the carrier echoes) for two seconds of recording
    real.client.act(agent.channel, LegAction("hangup"))
    ended = parse(real.events.ended(plan.plan_id, 20))
    assert _statuses(ended) == {"agent": "ANSWER", "customer": "ANSWER"}
    assert ended.recordings == ("recordings/c0ffee0001.wav",)
    with wave.open(str(real.settings.data_dir / "bucket" / "recordings/c0ffee0001.wav")) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        assert wav.getnframes() > 8000 * 1.5


def test_otp_plays_twice_then_hangs_up(real):
    _tone(real.settings.media_dir / "prompts" / "otp-c0ffee0002.wav")
    plan = Plan("c0ffee0002", "ACalpha", "otp", [
        Dial("customer", "919900000003", CALLER, 10),
        Play("customer", "prompts/otp-c0ffee0002.wav", 2), Hangup()])
    real.client.originate(plan)
    ended = parse(real.events.ended(plan.plan_id, 20))
    leg = ended.legs["customer"]
    assert (ended.cause, leg.dial_status) == ("normal", "ANSWER")
    assert leg.ended_at - leg.answered_at >= 2.0   # two rounds of a one-second prompt


@pytest.mark.parametrize("number,status,cause", [
    ("919900000486", "BUSY", "USER_BUSY"), ("919900000503", "CONGESTION", None),
    ("919900000404", "CHANUNAVAIL", "UNALLOCATED_NUMBER"),
    ("919900000603", "CHANUNAVAIL", "CALL_REJECTED"), ("919900000480", "NOANSWER", "NO_ANSWER")])
def test_outcomes(real, number, status, cause):
    plan = Plan(f"c0ffee{number[-3:]}0", "ACalpha", "otp", [Dial("customer", number, CALLER, 3),
                                                            Hangup()])
    real.client.originate(plan)
    ended = parse(real.events.ended(plan.plan_id, 20))
    assert ended.legs["customer"].dial_status == status
    if cause:
        assert ended.legs["customer"].hangup_cause == cause


def test_ivr_campaign_dtmf_and_digit_map_transfer(real):
    plan = Plan("c0ffee0003", "ACalpha", "campaign", [
        Dial("contact", "919900000551", CALLER, 10), Gather("contact", 1, 8),
        Branch("contact", {"1": "number:919900000077"}, CALLER, 10)], max_legs=2)
    real.client.originate(plan)
    real.events.wait(plan.plan_id, "leg.dtmf", 15)
    target = real.events.wait(plan.plan_id, "leg.answered", 15,
                              where=lambda e: e.leg == "transfer_target")
    real.client.act(target.channel, LegAction("hangup"))
    ended = parse(real.events.ended(plan.plan_id, 20))
    assert (ended.ivr_result, ended.transfer_to, ended.dtmf) == ("transferred", "number:919900000077", "1")


def test_blind_transfer(real):
    # Only once the legs are bridged (answered is not enough: the bridge follows).
    agent, _ = _c2c(real, "c0ffee0004")
    real.client.act(agent.channel, LegAction("blind_transfer", target="919900000055",
                                             target_kind="number"))
    target = real.events.wait("c0ffee0004", "leg.answered", 15,
                              where=lambda e: e.leg == "transfer_target")
    real.events.wait("c0ffee0004", "leg.hangup", 10, where=lambda e: e.leg == "agent")
    real.client.act(target.channel, LegAction("hangup"))
    ended = parse(real.events.ended("c0ffee0004", 20))
    assert _statuses(ended) == {"agent": "ANSWER", "customer": "ANSWER",
                                "transfer_target": "ANSWER"}


def test_listener_restart_mid_call(real):
    plan = click2call("c0ffee0005", "ACalpha", "919900000001", "919900000002", CALLER, "none",
                      None, ring_timeout=10)
    real.client.originate(plan)
    customer = real.events.wait(plan.plan_id, "leg.answered", 15,
                                where=lambda e: e.leg == "customer")
    real.stop_listener()
    real.start_listener()
    wait_for(lambda: real.client.health()["engine"] == "ok", 15, "node up again")
    real.client.act(customer.channel, LegAction("hangup"))
    ended = parse(real.events.ended(plan.plan_id, 20))
    assert _statuses(ended) == {"agent": "ANSWER", "customer": "ANSWER"}
    assert [e.type for e in real.events.of(plan.plan_id)].count("plan.ended") == 1


def test_channels_no_plan_holds_are_hung_up_on_reconnect(real):
    from freeswitch import commands
    from freeswitch.esl import Connection
    from freeswitch.legs import uuid_of
    from freeswitch.nodes import parse_nodes
    from pjsua_engine import keys

    node = parse_nodes(os.environ["FREESWITCH_ESL"])[0]
    agent, customer = _c2c(real, "c0ffee000b")
    real.stop_listener()
    real.r.delete(keys.worker_plans(node.owner))   # the plan's snapshot lost with Redis
    real.start_listener()
    wait_for(lambda: real.client.health()["engine"] == "ok", 15, "node up again")
    conn = Connection(node.host, node.port, os.environ["FREESWITCH_ESL_PASSWORD"], timeout=3)
    conn.connect()
    try:
        def gone() -> bool:
            return all(conn.command(commands.exists(uuid_of(c.channel))).data.strip()
                       == "false" for c in (agent, customer))
        wait_for(gone, 15, "both stray legs hung up by the new driver")
    finally:
        conn.close()


def _c2c(real, plan_id: str):
    plan = click2call(plan_id, "ACalpha", "919900000001", "919900000002", CALLER, "none",
                      None, ring_timeout=10)
    real.client.originate(plan)
    agent = real.events.wait(plan_id, "leg.answered", 15, where=lambda e: e.leg == "agent")
    customer = real.events.wait(plan_id, "leg.answered", 15, where=lambda e: e.leg == "customer")
    wait_for(lambda: b"bridged" in (real.r.hget("cpaas:live:legs", agent.channel) or b""), 5,
             "bridged")
    return agent, customer


def test_attended_transfer(real):
    agent, customer = _c2c(real, "c0ffee0006")
    real.client.act(customer.channel, LegAction("attended_transfer", target="919900000066",
                                                target_kind="number"))
    assert b"held" in real.r.hget("cpaas:live:legs", customer.channel)
    target = real.events.wait("c0ffee0006", "leg.answered", 15,
                              where=lambda e: e.leg == "transfer_target")
    real.client.act(agent.channel, LegAction("hangup"))   # the agent leaves: customer joins
    wait_for(lambda: b"bridged" in (real.r.hget("cpaas:live:legs", customer.channel) or b""), 5,
             "customer bridged to the target")
    real.client.act(target.channel, LegAction("hangup"))
    ended = parse(real.events.ended("c0ffee0006", 20))
    assert _statuses(ended) == {"agent": "ANSWER", "customer": "ANSWER",
                                "transfer_target": "ANSWER"}
    assert ended.cause == "normal"


def test_recording_started_on_a_live_call(real):
    agent, customer = _c2c(real, "c0ffee0007")
    real.client.act(agent.channel, LegAction("record", record_key="rec/c0ffee0007.wav"))
    time.sleep(1.5)   # a second and a half of the call is recorded
    real.client.act(customer.channel, LegAction("hangup"))
    ended = parse(real.events.ended("c0ffee0007", 20))
    assert ended.recordings == ("rec/c0ffee0007.wav",)
    with wave.open(str(real.settings.data_dir / "bucket" / "rec/c0ffee0007.wav")) as wav:
        assert wav.getnchannels() == 2 and wav.getnframes() > 8000
