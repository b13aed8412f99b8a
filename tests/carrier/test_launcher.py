"""The launcher around sipp: scenario generation, command line, readiness, logs, __main__."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sandbox_carrier
from sandbox_carrier import carrier as carrier_module
from tests.carrier.calling import free_udp_port, needs_tools

REPO = Path(__file__).resolve().parents[2]


def test_build_scenario_fills_in_the_hold_time() -> None:
    text = sandbox_carrier.build_scenario(7)
    assert "%%" not in text
    assert 'timeout="7000" ontimeout="Lhangup"' in text
    # A ...55d call sends its digit at 3 s, then holds for the rest of the 7 s.
    assert 'timeout="3000" ontimeout="Ldtmf"' in text
    assert 'timeout="4000" ontimeout="Lhangup"' in text


def test_build_scenario_answers_with_pcma_only() -> None:
    text = re.sub(r"<!--.*?-->", "", sandbox_carrier.build_scenario(30), flags=re.S)
    media = re.findall(r"m=audio \S+ RTP/AVP (.*)", text)
    assert media and set(media) == {"8"}
    assert set(re.findall(r"a=rtpmap:(.*)", text)) == {"8 PCMA/8000"}
    assert "telephone-event" not in text


def test_build_scenario_without_recording_plays_nothing() -> None:
    with_recording = sandbox_carrier.build_scenario(30)
    without = sandbox_carrier.build_scenario(30, recording=None)
    assert f'<exec play_pcap_audio="{carrier_module.RECORDING}"/>' in with_recording
    assert '<recv request="ACK"></recv>' in without


def test_build_scenario_rejects_a_non_positive_hold() -> None:
    with pytest.raises(ValueError):
        sandbox_carrier.build_scenario(0)


def test_sipp_command_runs_one_echoing_uas_on_the_given_address(tmp_path: Path) -> None:
    cmd = sandbox_carrier.sipp_command("s.xml", "127.0.0.2", 5099, log_dir=tmp_path)
    line = " ".join(cmd)
    assert cmd[:3] == ["sipp", "-sf", "s.xml"]
    for part in ("-i 127.0.0.2", "-p 5099", "-bind_local", "-mi 127.0.0.2",
                 "-ci 127.0.0.2", "-rtp_echo", "-aa",
                 f"-log_file {tmp_path / 'invites.log'}"):
        assert part in line


def test_count_invites_reads_the_invite_log(tmp_path: Path) -> None:
    (tmp_path / "invites.log").write_text(
        "INVITE user=+14155550486 call_id=a request=INVITE sip:+14155550486\n"
        "INVITE user=14155550486 call_id=b request=INVITE sip:14155550486\n"
        "INVITE user=102 call_id=c request=INVITE sip:102\n"
        "INVITE user=alice call_id=d request=INVITE sip:alice\n"
        "INVITE user=%2B14155550486 call_id=e request=INVITE sip:%2B14155550486\n")
    assert sandbox_carrier.count_invites(tmp_path, "+14155550486") == 3
    assert sandbox_carrier.count_invites(tmp_path / "invites.log", "102") == 1
    assert sandbox_carrier.count_invites(tmp_path, "alice") == 1
    assert sandbox_carrier.count_invites(tmp_path, "bob") == 0
    assert sandbox_carrier.count_invites(tmp_path / "missing", "102") == 0


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "HOLD", "LOG_DIR"):
        monkeypatch.delenv(f"CPAAS_SANDBOX_{name}", raising=False)
    monkeypatch.delenv("CPAAS_RING_TIMEOUT", raising=False)
    assert sandbox_carrier.settings_from_env() == sandbox_carrier.CarrierSettings(
        host="127.0.0.1", port=5070, hold=60.0, log_dir=None)
    monkeypatch.setenv("CPAAS_SANDBOX_PORT", "5080")
    monkeypatch.setenv("CPAAS_SANDBOX_HOLD", "2.5")
    assert sandbox_carrier.settings_from_env().port == 5080
    assert sandbox_carrier.settings_from_env().hold == 2.5


def test_probe_is_false_when_nothing_listens() -> None:
    assert sandbox_carrier.probe("127.0.0.1", free_udp_port(), timeout=0.5) is False


@needs_tools
def test_start_fails_cleanly_on_a_port_in_use(carrier: sandbox_carrier.CarrierProcess,
                                              tmp_path: Path) -> None:
    assert sandbox_carrier.probe(carrier.host, carrier.port)
    with pytest.raises(sandbox_carrier.CarrierError):
        second = sandbox_carrier.start(carrier.host, carrier.port, log_dir=tmp_path, timeout=10)
        sandbox_carrier.stop(second)  # only reached if start wrongly succeeded
    # The first carrier is untouched.
    assert sandbox_carrier.probe(carrier.host, carrier.port)


@needs_tools
def test_start_without_log_dir_cleans_up(tmp_path: Path) -> None:
    proc = sandbox_carrier.start("127.0.0.1", free_udp_port(), hold=5)
    workdir = proc.workdir
    assert proc.invite_log is None and workdir.is_dir()
    sandbox_carrier.stop(proc)
    assert proc.poll() is not None
    assert not workdir.exists()


@needs_tools
def test_python_m_sandbox_carrier_runs_in_the_foreground_and_stops_on_sigterm(
        tmp_path: Path) -> None:
    port = free_udp_port()
    env = {**os.environ, "CPAAS_SANDBOX_PORT": str(port), "CPAAS_SANDBOX_HOLD": "5",
           "CPAAS_SANDBOX_LOG_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "sandbox_carrier"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not sandbox_carrier.probe("127.0.0.1", port, timeout=0.3):
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            assert time.monotonic() < deadline, "carrier never answered"
        # The hold time from the environment reached the scenario.
        assert 'timeout="5000" ontimeout="Lhangup"' in (
            tmp_path / "sandbox_carrier.xml").read_text()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        # sipp went with it: nothing answers on the port any more.
        assert not sandbox_carrier.probe("127.0.0.1", port, timeout=0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
