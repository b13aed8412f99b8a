"""A PJSUA2 caller for the sandbox carrier tests, run as a subprocess.

PJSUA2 allows one Endpoint per process and aborts the whole process on some
misuse, so the tests never load it into pytest itself: they run this script
with a JSON description of up to four concurrent calls and read back a JSON
report of what each call saw.

    python tests/carrier/pj_caller.py SPEC.json REPORT.json

SPEC: ``{"calls": [{"uri": "sip:486@127.0.0.1:5070", ...}], "max_seconds": 20}``
with, per call, optional ``cancel_after_ringing`` (seconds after the first 18x
to hang up, i.e. CANCEL), ``hangup_after_answer`` (seconds after the answer to
send BYE), ``hangup_after_dtmf`` (seconds after the first DTMF digit),
``reinvite_after_answer`` (seconds after the answer to send a re-INVITE), ``play`` (WAV file played into the call), ``record`` (WAV file
receiving the far end's audio).

REPORT: per call, the provisional and final status codes, answer and
disconnect times (seconds since the call was placed), DTMF digits with their
arrival time and method, and whether this side hung up.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Optional

import pjsua2 as pj


class TestCall(pj.Call):
    """One outgoing call that records what happens to it."""

    def __init__(self, account: pj.Account, spec: dict[str, Any]) -> None:
        super().__init__(account)
        self.spec = spec
        self.started = time.monotonic()
        self.report: dict[str, Any] = {
            "uri": spec["uri"], "provisional": [], "final_code": None,
            "answered_at": None, "ringing_at": None, "disconnected_at": None,
            "dtmf": [], "we_hung_up": False, "media_active": False,
            "last_reason": None, "call_id": None, "media_updates": 0,
            "reinvited": False,
        }
        self.recorder: Optional[pj.AudioMediaRecorder] = None
        self.player: Optional[pj.AudioMediaPlayer] = None
        self.disconnected = False

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        code = int(info.lastStatusCode)
        if info.callIdString:
            self.report["call_id"] = info.callIdString
        if info.state == pj.PJSIP_INV_STATE_EARLY:
            if code not in self.report["provisional"]:
                self.report["provisional"].append(code)
            if self.report["ringing_at"] is None and 180 <= code < 190:
                self.report["ringing_at"] = self.elapsed()
        elif info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.report["answered_at"] = self.elapsed()
            self.report["final_code"] = code
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.report["disconnected_at"] = self.elapsed()
            if self.report["final_code"] is None:
                self.report["final_code"] = code
            self.report["last_reason"] = info.lastReason
            self.disconnected = True

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if (media.type != pj.PJMEDIA_TYPE_AUDIO
                    or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE):
                continue
            self.report["media_active"] = True
            self.report["media_updates"] += 1
            audio = self.getAudioMedia(index)
            # Media state can be reported more than once; connect only once.
            if self.spec.get("record") and self.recorder is None:
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(self.spec["record"])
                audio.startTransmit(self.recorder)
            if self.spec.get("play") and self.player is None:
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(self.spec["play"], pj.PJMEDIA_FILE_NO_LOOP)
                self.player.startTransmit(audio)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        method = "info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc2833"
        self.report["dtmf"].append({"digit": prm.digit, "method": method,
                                    "at": self.elapsed()})

    def hang_up(self) -> None:
        if not self.disconnected and not self.report["we_hung_up"]:
            self.report["we_hung_up"] = True
            self.hangup(pj.CallOpParam(True))

    def reinvite_if_due(self) -> None:
        """Send the re-INVITE the spec asks for, once."""
        after_answer = self.spec.get("reinvite_after_answer")
        if (after_answer is not None and not self.report["reinvited"]
                and self.report["answered_at"] is not None and not self.disconnected
                and self.elapsed() >= self.report["answered_at"] + after_answer):
            self.report["reinvited"] = True
            self.reinvite(pj.CallOpParam(True))

    def due_for_hangup(self) -> bool:
        """Whether this call's own plan says to hang up now."""
        now = self.elapsed()
        after_ring = self.spec.get("cancel_after_ringing")
        if (after_ring is not None and self.report["ringing_at"] is not None
                and self.report["answered_at"] is None
                and now >= self.report["ringing_at"] + after_ring):
            return True
        after_dtmf = self.spec.get("hangup_after_dtmf")
        if (after_dtmf is not None and self.report["dtmf"]
                and now >= self.report["dtmf"][0]["at"] + after_dtmf):
            return True
        after_answer = self.spec.get("hangup_after_answer")
        return (after_answer is not None and self.report["answered_at"] is not None
                and now >= self.report["answered_at"] + after_answer)


def run(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Place the calls of ``spec`` at once and return one report per call."""
    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    config.uaConfig.maxCalls = 4
    # threadCnt 0: every callback runs in this thread, inside libHandleEvents.
    config.uaConfig.threadCnt = 0
    config.logConfig.level = 2
    config.logConfig.consoleLevel = 2
    config.medConfig.clockRate = 8000
    config.medConfig.sndClockRate = 8000
    endpoint.libInit(config)
    transport = pj.TransportConfig()
    transport.boundAddress = "127.0.0.1"
    transport.port = 0
    endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    endpoint.libStart()
    endpoint.audDevManager().setNullDev()

    account_config = pj.AccountConfig()
    account_config.idUri = "sip:carrier-test@127.0.0.1"
    account_config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    account = pj.Account()
    account.create(account_config)

    calls = []
    for call_spec in spec["calls"]:
        call = TestCall(account, call_spec)
        call.makeCall(call_spec["uri"], pj.CallOpParam(True))
        calls.append(call)

    deadline = time.monotonic() + float(spec.get("max_seconds", 20))
    while not all(call.disconnected for call in calls):
        endpoint.libHandleEvents(20)
        for call in calls:
            call.reinvite_if_due()
            if not call.disconnected and call.due_for_hangup():
                call.hang_up()
        if time.monotonic() > deadline:
            for call in calls:
                call.hang_up()
            deadline = time.monotonic() + 5  # let the BYEs/CANCELs complete

    reports = [call.report for call in calls]
    # Shutdown order (GUIDE section 1): calls are all DISCONNECTED; now drop
    # players, recorders (which also finalises the WAV headers) and calls,
    # and only then destroy the library.
    for finished in calls:
        finished.player = None
        finished.recorder = None
    finished = call = None
    calls.clear()
    account.shutdown()
    del account
    endpoint.libDestroy()
    return reports


def main() -> int:
    """Read the spec, place the calls, write the report."""
    spec_path, report_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as handle:
        spec = json.load(handle)
    reports = run(spec)
    with open(report_path, "w") as handle:
        json.dump({"calls": reports}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
