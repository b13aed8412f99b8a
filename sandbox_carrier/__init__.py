"""The sandbox carrier: a local SIP carrier made of a single SIPp process.

It stands in for a real SIP trunk in the embedded default configuration and in
tests. The outcome of a call is chosen by the last three digits of the dialed
number (the Request-URI user part):

======== ===============================================================
``486``  486 Busy Here
``480``  180 Ringing and never answered; a CANCEL gets 200 and 487
``503``  503 Service Unavailable
``404``  404 Not Found
``603``  603 Decline (the callee declined: ``CHANUNAVAIL``, never retried)
``55d``  answered; ``d`` is sent as SIP INFO DTMF 3 s after the answer
         (``dtmf_delay`` / ``CPAAS_SANDBOX_DTMF_DELAY``)
``700``  answered; a PCMA recording is played instead of an echo
other    answered, the caller's audio is echoed, BYE after the hold time
======== ===============================================================

Answers offer exactly one codec, PCMA/8000. Use :func:`start` / :func:`stop`
from Python, or ``python -m sandbox_carrier`` for a foreground process.
"""
from sandbox_carrier.carrier import (
    DEFAULT_HOLD_SECONDS,
    DEFAULT_HOST,
    DEFAULT_PORT,
    CarrierError,
    CarrierProcess,
    CarrierSettings,
    build_scenario,
    count_invites,
    invited_numbers,
    probe,
    settings_from_env,
    sipp_command,
    start,
    stop,
    wait_ready,
)

__all__ = [
    "DEFAULT_HOLD_SECONDS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "CarrierError",
    "CarrierProcess",
    "CarrierSettings",
    "build_scenario",
    "count_invites",
    "invited_numbers",
    "probe",
    "settings_from_env",
    "sipp_command",
    "start",
    "stop",
    "wait_ready",
]
