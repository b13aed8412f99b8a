"""The PJSUA2 side of a worker: one Endpoint, one Account, calls, players, recorders.

Every pjlib call happens on the worker's main thread (``mainThreadOnly``, no pjsua
worker threads); the main thread polls :meth:`SipStack.handle_events`. Callbacks only
append notices to a deque that the main loop drains afterwards, so no plan logic runs
inside a pjsua callback (where re-entering the library is easy to get wrong).
"""
from __future__ import annotations

import ctypes
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from cpaas.config import Settings
from pjsua_engine.keys import MAX_CALLS_PER_WORKER

log = logging.getLogger(__name__)
pj_log = logging.getLogger("pjsip")

#: Telephone audio only: one codec family keeps the carrier's SDP answer simple.
CODECS = {"PCMU/8000/1": 255, "PCMA/8000/1": 254}
#: Far ends that answer with several codecs make pjsua re-INVITE; tell apart by status.
USABLE_MEDIA = {pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD}
DTMF_METHODS = {pj.PJSUA_DTMF_METHOD_RFC2833: "rfc2833", pj.PJSUA_DTMF_METHOD_SIP_INFO: "info"}
#: Range of RTP ports each worker tries from its base port (pairs RTP/RTCP).
RTP_PORT_RANGE = 200

Notice = tuple[Any, ...]


class _LogWriter(pj.LogWriter):
    """pjsip's log lines into Python logging (pjsua2 delivers them on the main thread)."""

    LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}

    def write(self, entry: pj.LogEntry) -> None:
        pj_log.log(self.LEVELS.get(entry.level, logging.DEBUG), entry.msg.rstrip())


class SipCall(pj.Call):
    """An outbound call whose callbacks become notices for the main loop."""

    def __init__(self, account: pj.Account, owner: Any, sink: deque[Notice]) -> None:
        super().__init__(account)
        self.owner = owner
        self.sink = sink
        self.heard = False   # the far end answered our INVITE with anything, even 100

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        """Queue the new INVITE session state, the last SIP status, and whether the far
        end ever responded (an unreachable trunk and a phone left ringing differ)."""
        event = prm.e
        if (event.type == pj.PJSIP_EVENT_TSX_STATE
                and event.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG):
            self.heard = True   # e.g. a 486 with no provisional response before it
        info = self.getInfo()
        self.sink.append(("state", self.owner, info.state, info.lastStatusCode, self.heard))

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        """Notice a provisional response (100 Trying does not change the call state)."""
        if not self.heard:
            tsx = prm.e.body.tsxState.tsx
            if (tsx.role == pj.PJSIP_ROLE_UAC and tsx.method == "INVITE"
                    and tsx.statusCode >= 100):
                self.heard = True

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        """Queue the call's usable audio port (or None when there is none)."""
        info = self.getInfo()
        media = None
        for index, item in enumerate(info.media):
            if item.type == pj.PJMEDIA_TYPE_AUDIO and item.status in USABLE_MEDIA:
                media = self.getAudioMedia(index)
                break
        self.sink.append(("media", self.owner, media))

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        """Queue one DTMF digit (RFC 2833 or SIP INFO)."""
        self.sink.append(("dtmf", self.owner, prm.digit, DTMF_METHODS.get(prm.method, "other")))

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        """Decline REFER: a far end must never make the platform dial on its own."""
        prm.statusCode = pj.PJSIP_SC_DECLINE


class Player(pj.AudioMediaPlayer):
    """A WAV player that counts how many times it reached the end."""

    def __init__(self) -> None:
        super().__init__()
        self.loops = 0

    def onEof2(self) -> None:
        """Runs on the conference clock thread: only count, touch nothing else."""
        self.loops += 1


class _Account(pj.Account):
    """The engine's only account: outbound only, so inbound calls are refused."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[pj.Call] = []

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        """Answer an INVITE sent to the engine with 403; it takes a call slot otherwise."""
        call = pj.Call(self, prm.callId)
        op = pj.CallOpParam()
        op.statusCode = pj.PJSIP_SC_FORBIDDEN
        try:
            call.hangup(op)
        except pj.Error as exc:
            log.warning("refusing inbound call failed", extra={"error": exc.info()})
        self.refused.append(call)


#: pjsua's "too many calls" status, and how long a dial waits for a slot to be freed.
#: The wait blocks the whole process (every other call's signalling), so it only covers
#: the round or two pjsua takes to free the slot of a call we have just hung up; the
#: worker's slot accounting (:meth:`SipStack.calls_in_use`) keeps longer waits away.
PJ_ETOOMANY = 70010
SLOT_WAIT = 0.2


def _pjsua_call_counter() -> Callable[[], int] | None:
    """pjsua's own count of the call slots in use (``pjsua_call_get_count``), or None.

    pjsua2 does not wrap it, but the extension module exports the C symbol. It matters
    because pjsua reports DISCONNECTED as soon as it sends our BYE, yet keeps the slot
    until the BYE transaction ends: a far end that never answers the BYE holds it 32 s.
    """
    try:
        fn = ctypes.CDLL(pj._pjsua2.__file__).pjsua_call_get_count
    except (AttributeError, OSError):
        log.warning("pjsua_call_get_count not available: call slots counted by plan only")
        return None
    fn.restype = ctypes.c_uint
    fn.argtypes = []
    return fn


class SipStack:
    """The Endpoint, its UDP transport and its Account, owned by the main thread."""

    def __init__(self, settings: Settings, port: int, rtp_port: int,
                 host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.port = port
        self.rtp_port = rtp_port
        self.host = host
        self.ep: pj.Endpoint | None = None
        self.account: _Account | None = None
        self._writer = _LogWriter()
        self._call_count = _pjsua_call_counter()

    def start(self) -> None:
        """Create, configure and start the library; bind SIP (UDP and TCP) on ``host:port``."""
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0          # we poll libHandleEvents ourselves
        cfg.uaConfig.mainThreadOnly = True  # callbacks arrive on the polling thread
        cfg.uaConfig.maxCalls = MAX_CALLS_PER_WORKER
        cfg.uaConfig.userAgent = "cpaas-embedded"
        cfg.logConfig.writer = self._writer
        cfg.logConfig.decor = 0
        cfg.logConfig.level = 4 if pj_log.isEnabledFor(logging.DEBUG) else 2
        cfg.logConfig.consoleLevel = cfg.logConfig.level
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.channelCount = 1
        cfg.medConfig.ecTailLen = 0         # no echo canceller: nobody speaks into a mic here
        cfg.medConfig.noVad = True
        ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = self.port
        tcfg.boundAddress = self.host
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        # Same port over TCP, for trunks reached with ";transport=tcp" (never TLS: the
        # wheel's OpenSSL is too old to trust).
        ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        for codec in ep.codecEnum2():
            ep.codecSetPriority(codec.codecId, CODECS.get(codec.codecId, 0))
        self.ep = ep
        self.account = _Account()
        self.account.create(self._account_config())
        log.info("sip stack started",
                 extra={"host": self.host, "port": self.port, "rtp_port": self.rtp_port})

    def _account_config(self) -> pj.AccountConfig:
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:cpaas@{self.host}:{self.port}"
        acfg.regConfig.registerOnAdd = False
        nat = acfg.natConfig
        nat.sipOutboundUse = 0
        nat.contactRewriteUse = 0
        nat.viaRewriteUse = 0
        nat.sdpNatRewriteUse = 0
        nat.iceEnabled = False
        media = acfg.mediaConfig
        media.srtpUse = pj.PJMEDIA_SRTP_DISABLED
        media.transportConfig.boundAddress = self.host
        media.transportConfig.port = self.rtp_port
        media.transportConfig.portRange = RTP_PORT_RANGE
        if self.settings.sip_user and self.settings.sip_password:
            acfg.sipConfig.authCreds.append(pj.AuthCredInfo(
                "digest", "*", self.settings.sip_user, 0, self.settings.sip_password))
        return acfg

    def make_call(self, uri: str, caller_id: str, owner: Any, sink: deque[Notice]) -> SipCall:
        """Send an INVITE to ``uri`` with ``caller_id`` as the From user.

        A call that has just disconnected keeps its pjsua slot until pjsua finishes with
        it, a poll round later; the slot it frees may already be promised to the next
        plan. So a full table (PJ_ETOOMANY) is waited out briefly, polling events
        (callbacks only queue notices, so polling here is safe), before it is an error.
        """
        prm = pj.CallOpParam(True)
        prm.txOption.localUri = f"sip:{caller_id}@{self.host}:{self.port}"
        started = time.monotonic()
        deadline = started + SLOT_WAIT
        retries = 0
        while True:
            call = SipCall(self.account, owner, sink)
            try:
                call.makeCall(uri, prm)
                break
            except pj.Error as exc:
                if exc.status != PJ_ETOOMANY or time.monotonic() > deadline:
                    raise
            retries += 1
            self.ep.libHandleEvents(20)
        if retries:
            log.info("waited for a call slot", extra={
                "retries": retries, "waited_ms": round((time.monotonic() - started) * 1000)})
        return call

    def calls_in_use(self) -> int | None:
        """Call slots pjsua holds now, live or still closing (None when unknown)."""
        return int(self._call_count()) if self._call_count is not None else None

    def handle_events(self, msec: int) -> None:
        """Poll SIP sockets and timers for up to ``msec`` milliseconds."""
        self.ep.libHandleEvents(msec)
        if self.account.refused:
            self.account.refused = [c for c in self.account.refused if c.isActive()]

    def destroy(self) -> None:
        """Tear the library down; callers have dropped every call/player/recorder."""
        if self.account is not None:
            self.account.refused.clear()
            self.account.shutdown()
            self.account = None
        if self.ep is not None:
            self.ep.libDestroy()
            self.ep = None
        log.info("sip stack destroyed", extra={"port": self.port})
