"""The embedded engine against real SIP: a PJSUA2 worker pool calling sipp on loopback."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from cpaas.telephony import live
from cpaas.telephony.engine_client import EngineError, LegAction, LegNotFound
from cpaas.telephony.plans import Bridge, Dial, Gather, Hangup, Play, Plan, Record
from pjsua_engine import keys
from pjsua_engine.client import EmbeddedClient as EmbeddedEngine
from tests.engine.rig import (EventLog, PoolInfo, Sipp, free_udp_ports, start_pool, stop_pool,
                              wait_until)

ACCOUNT = "ACengine"
CALLER = "15551230000"
CUSTOMER = "15557650001"
AGENT_EXT = "1001"


def new_id() -> str:
    """A request id, as the platform makes them."""
    return secrets.token_hex(5)


def types(events: list) -> list[str]:
    return [e.type for e in events]


def live_leg(r: redis.Redis, channel: str) -> dict | None:
    raw = r.hget(live.LEGS_KEY, channel)
    return json.loads(raw) if raw else None


def rms(path: Path, channel: int) -> float:
    """RMS amplitude (0..1) of one channel of a WAV, measured by sox."""
    out = subprocess.run(["sox", str(path), "-n", "remix", str(channel), "stat"],
                         capture_output=True, text=True, check=True).stderr
    line = next(l for l in out.splitlines() if l.startswith("RMS     amplitude"))
    return float(line.split(":")[1])


def soxi(path: Path, flag: str) -> str:
    return subprocess.run(["soxi", flag, str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_otp_plan_plays_then_hangs_up(engine: EmbeddedEngine, events: EventLog,
                                      engine_redis: redis.Redis, far_end, tone: Path,
                                      pool: PoolInfo) -> None:
    far = far_end("answer")
    prompt = pool.workdir / "media" / f"otp-{new_id()}.wav"
    shutil.copy(tone, prompt)
    plan = Plan(new_id(), ACCOUNT, "otp",
                [Dial("customer", CUSTOMER, CALLER, 10), Play("customer", prompt.name, 2), Hangup()],
                ephemeral_files=[prompt.name])
    engine.originate(plan)

    ended = events.ended(plan.plan_id)
    seen = events.of(plan.plan_id)
    assert types(seen) == ["leg.ringing", "leg.answered", "leg.hangup", "plan.ended"]
    hangup = seen[2]
    assert hangup.leg == "customer" and hangup.channel.startswith("PJSIP/customer-")
    outcome = hangup.data
    assert outcome["dial_status"] == "ANSWER" and outcome["sip_code"] == 200
    assert outcome["number"] == CUSTOMER
    assert outcome["started_at"] <= outcome["answered_at"] <= outcome["ended_at"]
    # The one-second prompt was played twice before the plan hung up.
    assert outcome["ended_at"] - outcome["answered_at"] >= 1.9
    assert ended.data["legs"] == {"customer": outcome}
    assert ended.data["cause"] == "normal" and ended.data["recordings"] == []
    assert ended.account_id == ACCOUNT
    assert not prompt.exists(), "ephemeral prompt deleted when the plan ended"
    assert live_leg(engine_redis, hangup.channel) is None
    assert far.invites(CUSTOMER) == 1
    assert f"From: sip:{CALLER}@" in far.messages.read_text()


def _prompt_plan(pool: PoolInfo, wait: float) -> tuple[Plan, Path]:
    """An OTP plan whose one-call prompt does not exist yet (the job renders it later)."""
    prompt = pool.workdir / "media" / f"otp-{new_id()}.wav"
    return Plan(new_id(), ACCOUNT, "otp",
                [Dial("customer", CUSTOMER, CALLER, 10), Play("customer", prompt.name, 1, wait=wait),
                 Hangup()], ephemeral_files=[prompt.name]), prompt


def test_play_waits_for_a_prompt_rendered_after_the_dial(engine: EmbeddedEngine, events: EventLog,
                                                        far_end, tone: Path,
                                                        pool: PoolInfo) -> None:
    far_end("answer")
    plan, prompt = _prompt_plan(pool, wait=10)
    engine.originate(plan)
    answered = events.wait(plan.plan_id, "leg.answered")
    time.sleep(1.0)      # the render finishing a second after the answer (normally before)
    assert not any(e.type == "leg.hangup" for e in events.of(plan.plan_id))
    shutil.copy(tone, prompt.with_suffix(".part"))
    os.replace(prompt.with_suffix(".part"), prompt)

    ended = events.ended(plan.plan_id)
    leg = ended.data["legs"]["customer"]
    assert ended.data["cause"] == "normal"
    # Up for the wait plus the whole one-second prompt.
    assert leg["ended_at"] - leg["answered_at"] >= 1.9
    assert answered.data["sip_code"] == 200
    assert not prompt.exists()


def test_prompt_that_never_arrives_ends_the_call(engine: EmbeddedEngine, events: EventLog,
                                                 far_end, pool: PoolInfo) -> None:
    far_end("answer")
    plan, _ = _prompt_plan(pool, wait=1)
    engine.originate(plan)

    ended = events.ended(plan.plan_id)
    leg = ended.data["legs"]["customer"]
    assert ended.data["cause"] == "error"
    assert 0.9 <= leg["ended_at"] - leg["answered_at"] < 5


@pytest.mark.parametrize("code,status", [(486, "BUSY"), (503, "CONGESTION"),
                                         (404, "CHANUNAVAIL"), (480, "NOANSWER")])
def test_failed_dial_maps_sip_status(engine: EmbeddedEngine, events: EventLog, far_end,
                                     code: int, status: str) -> None:
    far_end("reject")
    number = f"15557650{code}"   # the scenario answers with the number's last three digits
    plan = Plan(new_id(), ACCOUNT, "otp", [Dial("customer", number, CALLER, 10), Hangup()])
    engine.originate(plan)

    ended = events.ended(plan.plan_id)
    assert types(events.of(plan.plan_id)) == ["leg.hangup", "plan.ended"]
    leg = ended.data["legs"]["customer"]
    assert (leg["sip_code"], leg["dial_status"]) == (code, status)
    assert leg["answered_at"] is None
    assert ended.data["cause"] == "dial_failed"


def test_ring_timeout_cancels_as_noanswer(engine: EmbeddedEngine, events: EventLog,
                                          far_end) -> None:
    far_end("ring")
    plan = Plan(new_id(), ACCOUNT, "otp", [Dial("customer", CUSTOMER, CALLER, 2), Hangup()])
    engine.originate(plan)

    ended = events.ended(plan.plan_id)
    assert types(events.of(plan.plan_id)) == ["leg.ringing", "leg.hangup", "plan.ended"]
    leg = ended.data["legs"]["customer"]
    assert leg["dial_status"] == "NOANSWER" and leg["sip_code"] == 487
    assert leg["ended_at"] - leg["started_at"] >= 2


def test_unreachable_trunk_is_chanunavail(engine: EmbeddedEngine, events: EventLog) -> None:
    # Nothing listens on the trunk port (no far end started): no response at all.
    plan = Plan(new_id(), ACCOUNT, "otp", [Dial("customer", CUSTOMER, CALLER, 2), Hangup()])
    engine.originate(plan)

    leg = events.ended(plan.plan_id).data["legs"]["customer"]
    assert leg["dial_status"] == "CHANUNAVAIL" and leg["answered_at"] is None


def test_gather_collects_sip_info_dtmf(engine: EmbeddedEngine, events: EventLog,
                                       far_end) -> None:
    far_end("dtmf_info")
    plan = Plan(new_id(), ACCOUNT, "otp",
                [Dial("customer", CUSTOMER, CALLER, 10), Gather("customer", 2, 10), Hangup()])
    engine.originate(plan)

    ended = events.ended(plan.plan_id)
    dtmf = [e for e in events.of(plan.plan_id) if e.type == "leg.dtmf"]
    assert [(e.data["digit"], e.data["method"]) for e in dtmf] == [("4", "info"), ("2", "info")]
    assert ended.data["dtmf"] == "42"
    assert ended.data["legs"]["customer"]["dial_status"] == "ANSWER"


def test_click2call_records_both_sides(engine: EmbeddedEngine, events: EventLog, far_end,
                                       pool: PoolInfo) -> None:
    far_end("answer", where="agent")                     # echoes what it hears
    far_end("talk_then_bye", where="trunk", echo=False)  # talks, hangs up after 2.5 s
    plan_id = new_id()
    key = f"accounts/{ACCOUNT}/recordings/{plan_id}.wav"
    plan = Plan(plan_id, ACCOUNT, "c2c", [
        Dial("agent", AGENT_EXT, CALLER, 10, target="agent"),
        Dial("customer", CUSTOMER, CALLER, 10),
        Record(key, left="agent", right="customer"),
        Bridge("agent", "customer")], max_legs=3)
    engine.originate(plan)

    ended = events.ended(plan_id)
    seen = events.of(plan_id)
    order = [(e.type, e.leg) for e in seen if e.type.startswith("leg.")]
    assert order.index(("leg.answered", "agent")) < order.index(("leg.answered", "customer"))
    # The customer hung up first; that ended the plan, which hung up the agent.
    assert order[-2:] == [("leg.hangup", "customer"), ("leg.hangup", "agent")]
    stored = [e for e in seen if e.type == "recording.stored"]
    assert [e.data for e in stored] == [{"key": key, "channels": 2}]
    assert types(seen)[-1] == "plan.ended"
    assert ended.data["recordings"] == [key] and ended.data["cause"] == "normal"
    assert {r: l["dial_status"] for r, l in ended.data["legs"].items()} == {
        "agent": "ANSWER", "customer": "ANSWER"}

    wav = pool.storage / key
    assert soxi(wav, "-c") == "2" and soxi(wav, "-r") == "8000"
    # Right: what the customer said; left: what the agent's phone sent back (its echo
    # of the customer, heard through the bridge). Silence measures 0.
    assert rms(wav, 2) > 0.01
    assert rms(wav, 1) > 0.01


def test_click2call_agent_busy_never_dials_customer(engine: EmbeddedEngine, events: EventLog,
                                                    far_end) -> None:
    far_end("reject", where="agent")
    customer = far_end("answer", where="trunk")
    plan = Plan(new_id(), ACCOUNT, "c2c", [
        Dial("agent", "1486", CALLER, 10, target="agent"),
        Dial("customer", CUSTOMER, CALLER, 10), Bridge("agent", "customer")], max_legs=3)
    engine.originate(plan)

    ended = events.ended(plan.plan_id)
    assert list(ended.data["legs"]) == ["agent"]
    assert ended.data["legs"]["agent"]["dial_status"] == "BUSY"
    assert customer.invites() == 0


def test_hangup_action_ends_plan(engine: EmbeddedEngine, events: EventLog,
                                 engine_redis: redis.Redis, far_end) -> None:
    far_end("answer")
    plan = Plan(new_id(), ACCOUNT, "callback", [Dial("customer", CUSTOMER, CALLER, 10)])
    engine.originate(plan)
    answered = events.wait(plan.plan_id, "leg.answered")
    # The live state is written just after the event.
    wait_until(lambda: live_leg(engine_redis, answered.channel)["state"] == "answered", 10,
               "answered state")

    engine.act(answered.channel, LegAction("hangup"))

    ended = events.ended(plan.plan_id)
    assert ended.data["legs"]["customer"]["dial_status"] == "ANSWER"
    assert ended.data["cause"] == "normal"
    assert live_leg(engine_redis, answered.channel) is None
    with pytest.raises(LegNotFound):
        engine.act(answered.channel, LegAction("hangup"))


def test_act_refuses_unsafe_actions(engine: EmbeddedEngine) -> None:
    with pytest.raises(EngineError):
        engine.act("PJSIP/agent-00000000", LegAction("blind_transfer", target="1;drop",
                                                     target_kind="number"))
    with pytest.raises(EngineError):
        engine.act("PJSIP/agent-00000000", LegAction("record", record_key="../../etc/passwd"))


def _bridged_call(engine: EmbeddedEngine, events: EventLog, far_end) -> tuple[Plan, dict, object]:
    """Agent and customer talking; returns the plan, channels by role and the trunk sipp."""
    far_end("answer", where="agent")
    trunk = far_end("answer", where="trunk")
    plan = Plan(new_id(), ACCOUNT, "c2c", [
        Dial("agent", AGENT_EXT, CALLER, 10, target="agent"),
        Dial("customer", CUSTOMER, CALLER, 10), Bridge("agent", "customer")], max_legs=3)
    engine.originate(plan)
    events.wait(plan.plan_id, "leg.answered", where=lambda e: e.leg == "customer")
    channels = {e.leg: e.channel for e in events.of(plan.plan_id) if e.type == "leg.answered"}
    return plan, channels, trunk


def test_blind_transfer_reaches_target(engine: EmbeddedEngine, events: EventLog,
                                       engine_redis: redis.Redis, far_end) -> None:
    plan, channels, trunk = _bridged_call(engine, events, far_end)
    wait_until(lambda: live_leg(engine_redis, channels["customer"])["state"] == "bridged",
               10, "bridge")
    target = "15557650099"

    engine.act(channels["agent"], LegAction("blind_transfer", target=target,
                                            target_kind="number", caller_id=CALLER))

    moved = events.wait(plan.plan_id, "leg.answered", where=lambda e: e.leg == "transfer_target")
    agent_gone = events.wait(plan.plan_id, "leg.hangup", where=lambda e: e.leg == "agent")
    assert agent_gone.data["dial_status"] == "ANSWER"
    assert trunk.invites(target) == 1
    wait_until(lambda: (live_leg(engine_redis, moved.channel) or {}).get("state") == "bridged",
               10, "target bridged")
    assert live_leg(engine_redis, channels["customer"])["state"] == "bridged"
    assert not any(e.type == "plan.ended" for e in events.of(plan.plan_id))

    engine.act(channels["customer"], LegAction("hangup"))
    ended = events.ended(plan.plan_id)
    assert set(ended.data["legs"]) == {"agent", "customer", "transfer_target"}
    assert ended.data["legs"]["transfer_target"]["number"] == target
    assert ended.data["cause"] == "normal"


def test_attended_transfer_joins_customer_and_target(engine: EmbeddedEngine, events: EventLog,
                                                     engine_redis: redis.Redis,
                                                     far_end) -> None:
    plan, channels, trunk = _bridged_call(engine, events, far_end)

    engine.act(channels["customer"], LegAction("attended_transfer", target="2002",
                                               target_kind="agent"))
    assert live_leg(engine_redis, channels["customer"])["state"] == "held"
    consult = events.wait(plan.plan_id, "leg.answered", where=lambda e: e.leg == "transfer_target")
    wait_until(lambda: live_leg(engine_redis, consult.channel)["state"] == "bridged",
               10, "consultation")
    assert live_leg(engine_redis, channels["customer"])["state"] == "held"

    # The agent leaves the consultation: the customer and the target are joined.
    engine.act(channels["agent"], LegAction("hangup"))
    events.wait(plan.plan_id, "leg.hangup", where=lambda e: e.leg == "agent")
    # The two legs' states are written one after the other: wait for both.
    wait_until(lambda: all(live_leg(engine_redis, channel)["state"] == "bridged"
                           for channel in (channels["customer"], consult.channel)),
               10, "customer joined to target")
    assert not any(e.type == "plan.ended" for e in events.of(plan.plan_id))

    engine.act(consult.channel, LegAction("hangup"))
    ended = events.ended(plan.plan_id)
    assert set(ended.data["legs"]) == {"agent", "customer", "transfer_target"}


def test_killed_worker_closes_its_plans(engine: EmbeddedEngine, events: EventLog,
                                        engine_redis: redis.Redis, far_end) -> None:
    far_end("answer")
    plan = Plan(new_id(), ACCOUNT, "callback", [Dial("customer", CUSTOMER, CALLER, 10)])
    engine.originate(plan)
    answered = events.wait(plan.plan_id, "leg.answered")
    owner = live_leg(engine_redis, answered.channel)["owner"]
    old_pid = json.loads(engine_redis.hget(keys.WORKERS, owner))["pid"]

    os.kill(old_pid, signal.SIGKILL)

    ended = events.ended(plan.plan_id)
    assert ended.data["cause"] == "engine_worker_died"
    leg = ended.data["legs"]["customer"]
    assert leg["dial_status"] == "ANSWER" and leg["ended_at"] >= leg["answered_at"]
    hangups = [e for e in events.of(plan.plan_id) if e.type == "leg.hangup"]
    assert len(hangups) == 1 and hangups[0].channel == answered.channel
    assert live_leg(engine_redis, answered.channel) is None

    def restarted() -> bool:
        raw = engine_redis.hget(keys.WORKERS, owner)
        entry = json.loads(raw) if raw else {}
        return entry.get("pid") not in (None, old_pid) and "ready_at" in entry
    wait_until(restarted, 30, "worker restart")


def test_fifth_call_goes_to_another_worker(engine: EmbeddedEngine, events: EventLog,
                                           engine_redis: redis.Redis, far_end) -> None:
    far_end("answer")
    plans = [Plan(new_id(), ACCOUNT, "campaign", [Dial("contact", CUSTOMER, CALLER, 10)])
             for _ in range(5)]
    for plan in plans:
        engine.originate(plan)
    answered = [events.wait(p.plan_id, "leg.answered") for p in plans]
    owners = Counter(live_leg(engine_redis, e.channel)["owner"] for e in answered)
    assert len(owners) == 2 and max(owners.values()) <= keys.MAX_CALLS_PER_WORKER

    for e in answered:
        engine.act(e.channel, LegAction("hangup"))
    for plan in plans:
        assert events.ended(plan.plan_id).data["cause"] == "normal"


def test_record_action_records_live_call(engine: EmbeddedEngine, events: EventLog,
                                         pool: PoolInfo, far_end) -> None:
    plan, channels, _ = _bridged_call(engine, events, far_end)
    key = f"accounts/{ACCOUNT}/recordings/{plan.plan_id}-live.wav"

    engine.act(channels["customer"], LegAction("record", record_key=key))
    with pytest.raises(EngineError):
        engine.act(channels["customer"], LegAction("record", record_key=key))
    engine.act(channels["agent"], LegAction("hangup"))

    stored = events.wait(plan.plan_id, "recording.stored")
    assert stored.data == {"key": key, "channels": 2}
    assert events.ended(plan.plan_id).data["recordings"] == [key]
    assert soxi(pool.storage / key, "-c") == "2"


def test_digest_credentials_answer_a_challenge(engine_redis_url: str,
                                               engine_workdir: Path) -> None:
    # A pool of its own (with credentials) on a database of its own, so the package's
    # pool cannot take this plan.
    url = engine_redis_url.rsplit("/", 1)[0] + "/10"
    r = redis.Redis.from_url(url)
    r.flushdb()
    trunk_port = free_udp_ports(1, 50000, 52000)
    workdir = engine_workdir / "auth"
    workdir.mkdir()
    trunk = Sipp("auth", trunk_port, workdir).start()
    info = start_pool(url, workdir, 1, trunk_port, trunk_port,
                      {"CPAAS_SIP_USER": "trunkuser", "CPAAS_SIP_PASSWORD": "s3cret"})
    try:
        plan = Plan(new_id(), ACCOUNT, "otp", [Dial("customer", CUSTOMER, CALLER, 10), Hangup()])
        EmbeddedEngine(r).originate(plan)
        ended = EventLog(r).ended(plan.plan_id)
        assert ended.data["legs"]["customer"]["dial_status"] == "ANSWER"
        assert "Authorization: Digest" in trunk.messages.read_text()
    finally:
        assert stop_pool(info) == 0
        trunk.stop()
        r.flushdb()
        r.close()
