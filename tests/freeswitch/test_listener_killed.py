"""The listener process SIGKILLed mid-call (no goodbye, no clean shutdown): the next one
adopts the call from the snapshots, follows it to its hangup, and the CDR event comes
out exactly once; a leg that ended while no listener ran is closed on reconnect."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from cpaas.calls.plan_builders import click2call
from cpaas.telephony.events import parse
from tests.freeswitch.conftest import make_rig
from tests.freeswitch.test_engine import AGENT, CALLER, CUSTOMER, _commands
from tests.launcher import ROOT, wait_for

#: The events process's FreeSWITCH side alone, as ``cpaas.procs events`` starts it.
LISTENER = ("import threading, time; from cpaas import config, logs; from freeswitch import listener; "
            "logs.setup(); listener.start(config.load(), threading.Event()); time.sleep(3600)")


@pytest.fixture
def killable(fs_redis, workdir):
    rig = make_rig(fs_redis, workdir)
    rig.stop_listener()   # this test's listeners are processes
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        env = {**os.environ, "FREESWITCH_ESL": rig.settings.freeswitch_esl,
               "REDIS_URL": rig.settings.redis_url, "CPAAS_DATA_DIR": str(workdir),
               "CPAAS_RING_TIMEOUT": "5"}
        proc = subprocess.Popen([sys.executable, "-c", LISTENER], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=open(workdir / "listener.log", "ab"))
        procs.append(proc)
        return proc

    yield rig, start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    rig.double.stop()


def _connections(rig) -> int:
    return sum(1 for c in rig.double.commands if c.startswith("events plain"))


def _call_then_kill(rig, start, plan_id: str):
    """A click2call bridged under one listener process, which is then SIGKILLed."""
    first = start()
    rig.nodes_up(1)
    plan = click2call(plan_id, "ACalpha", AGENT, CUSTOMER, CALLER, "none", None, 10)
    rig.client.originate(plan)
    rig.events.wait(plan.plan_id, "leg.answered", 10, where=lambda e: e.leg == "customer")
    wait_for(lambda: _commands(rig, "uuid_bridge"), 5, "bridged")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    return plan


def test_sigkill_mid_call_then_a_new_listener_finishes_the_call(killable):
    rig, start = killable
    plan = _call_then_kill(rig, start, "9a9a9a9a9a")
    start()
    wait_for(lambda: _connections(rig) == 2, 15, "a second connection")
    wait_for(lambda: len(_commands(rig, "uuid_exists")) == 2, 10, "both legs reconciled")
    customer = rig.double.channel(plan.plan_id, "customer")
    rig.double.hangup(customer.uuid)
    ended = parse(rig.events.ended(plan.plan_id, 15))
    assert {r: o.dial_status for r, o in ended.legs.items()} == {"agent": "ANSWER",
                                                                 "customer": "ANSWER"}
    assert [e.type for e in rig.events.of(plan.plan_id)].count("plan.ended") == 1
    wait_for(lambda: not rig.r.hlen("cpaas:live:legs"), 5, "live registry emptied")


def test_a_leg_that_ended_while_no_listener_ran_is_closed(killable):
    rig, start = killable
    plan = _call_then_kill(rig, start, "9b9b9b9b9b")
    rig.double.hangup(rig.double.channel(plan.plan_id, "customer").uuid)   # nobody hears it
    start()
    ended = parse(rig.events.ended(plan.plan_id, 20))
    assert ended.legs["customer"].dial_status == "ANSWER"
    assert [e.type for e in rig.events.of(plan.plan_id)].count("plan.ended") == 1
    assert rig.double.channel(plan.plan_id, "agent").ended   # hung up: nothing left open
