"""The one table from an engine's outcome to the spec's dial statuses (GUIDE §1 and §6)."""
from __future__ import annotations

import pytest

from cpaas.telephony.events import LegOutcome
from cpaas.telephony.outcomes import LegEnd, call_status_for, declined, dial_status


@pytest.mark.parametrize("code,status", [
    (486, "BUSY"), (600, "BUSY"),
    (408, "NOANSWER"), (480, "NOANSWER"),
    (487, "CANCEL"),
    (500, "CONGESTION"), (502, "CONGESTION"), (503, "CONGESTION"), (504, "CONGESTION"),
    (404, "CHANUNAVAIL"), (484, "CHANUNAVAIL"), (403, "CHANUNAVAIL"), (603, "CHANUNAVAIL"),
    (410, "CHANUNAVAIL"), (606, "CHANUNAVAIL"),
])
def test_sip_final_responses(code, status):
    assert dial_status(LegEnd(sip_code=code)) == status


@pytest.mark.parametrize("cause,status", [
    ("USER_BUSY", "BUSY"),
    ("NO_ANSWER", "NOANSWER"), ("NO_USER_RESPONSE", "NOANSWER"),
    ("RECOVERY_ON_TIMER_EXPIRE", "NOANSWER"),
    ("ORIGINATOR_CANCEL", "CANCEL"),
    ("NORMAL_TEMPORARY_FAILURE", "CONGESTION"),
    ("CALL_REJECTED", "CHANUNAVAIL"), ("UNALLOCATED_NUMBER", "CHANUNAVAIL"),
    ("INVALID_NUMBER_FORMAT", "CHANUNAVAIL"), ("SOMETHING_NEW", "CHANUNAVAIL"),
])
def test_freeswitch_hangup_causes(cause, status):
    assert dial_status(LegEnd(cause=cause)) == status


# GUIDE §6: what FreeSWITCH reports for each SIP response the sandbox carrier can send.
FREESWITCH_CAUSE_OF = [(486, "USER_BUSY"), (480, "NO_USER_RESPONSE"),
                       (500, "NORMAL_TEMPORARY_FAILURE"), (503, "NORMAL_TEMPORARY_FAILURE"),
                       (404, "UNALLOCATED_NUMBER"), (403, "CALL_REJECTED"),
                       (603, "CALL_REJECTED"), (408, "RECOVERY_ON_TIMER_EXPIRE"),
                       (484, "INVALID_NUMBER_FORMAT"), (487, "ORIGINATOR_CANCEL")]


@pytest.mark.parametrize("code,cause", FREESWITCH_CAUSE_OF)
def test_a_cause_alone_gives_the_status_of_its_sip_code(code, cause):
    """The same far end gives the same CDR whichever engine placed the call."""
    assert dial_status(LegEnd(cause=cause)) == dial_status(LegEnd(sip_code=code))


def test_the_sip_code_decides_over_a_coarser_cause():
    # FreeSWITCH gives 408 and 504 one cause; the code tells them apart.
    assert dial_status(LegEnd(sip_code=504, cause="RECOVERY_ON_TIMER_EXPIRE")) == "CONGESTION"
    assert dial_status(LegEnd(sip_code=408, cause="RECOVERY_ON_TIMER_EXPIRE")) == "NOANSWER"


def test_an_answered_leg_is_answer_whatever_ended_it():
    assert dial_status(LegEnd(answered=True, sip_code=200)) == "ANSWER"
    assert dial_status(LegEnd(answered=True, cancelled=True, cause="NORMAL_CLEARING")) == "ANSWER"


def test_a_leg_we_cancelled_is_cancel_unless_its_ring_timed_out():
    assert dial_status(LegEnd(cancelled=True, sip_code=487)) == "CANCEL"
    assert dial_status(LegEnd(cancelled=True, heard=False)) == "CANCEL"
    assert dial_status(LegEnd(cancelled=True, ring_timeout=True, sip_code=487)) == "NOANSWER"


def test_nothing_ever_answered_is_chanunavail_not_noanswer():
    # Ringing past the timeout on silence, or pjsip's own 408 / 503: unreachable.
    assert dial_status(LegEnd(cancelled=True, ring_timeout=True, heard=False)) == "CHANUNAVAIL"
    assert dial_status(LegEnd(heard=False, sip_code=408)) == "CHANUNAVAIL"
    assert dial_status(LegEnd(heard=False, sip_code=503)) == "CHANUNAVAIL"
    assert dial_status(LegEnd(heard=False, cause="NORMAL_TEMPORARY_FAILURE")) == "CHANUNAVAIL"
    # The same ring timeout on a far end that rang is no answer.
    assert dial_status(LegEnd(cancelled=True, ring_timeout=True, heard=True)) == "NOANSWER"


def test_no_code_and_no_cause_is_chanunavail():
    assert dial_status(LegEnd()) == "CHANUNAVAIL"
    assert dial_status(LegEnd(sip_code=0)) == "CHANUNAVAIL"


@pytest.mark.parametrize("status,call_status", [
    ("ANSWER", "ANSWERED"), ("BUSY", "BUSY"), ("NOANSWER", "NO ANSWER"), ("CANCEL", "CANCEL"),
    ("CONGESTION", "CONGESTION"), ("CHANUNAVAIL", "CHANUNAVAIL"), ("DND", None),
    ("SOMETHING_ELSE", "CHANUNAVAIL"),
])
def test_call_status_of_each_dial_status(status, call_status):
    assert call_status_for(status) == call_status


def _outcome(sip_code=None, cause=None) -> LegOutcome:
    return LegOutcome("contact", "919900000603", "PJSIP/contact-1", 1.0, ended_at=2.0,
                      sip_code=sip_code, hangup_cause=cause)


def test_declined_by_the_callee():
    assert declined(_outcome(603)) and declined(_outcome(600))
    assert declined(_outcome(cause="CALL_REJECTED"))
    assert not declined(_outcome(486)) and not declined(_outcome(480))
    assert not declined(_outcome(cause="USER_BUSY")) and not declined(_outcome())
    # FreeSWITCH gives 403 the same cause; its SIP code says it was no decline.
    assert not declined(_outcome(403, "CALL_REJECTED"))


@pytest.mark.parametrize("code,status", [(603, "CHANUNAVAIL"), (600, "BUSY")])
def test_a_declined_leg_keeps_its_status_and_is_never_retried(code, status):
    """The sandbox carrier's ...603 (and a 600): the status is the table's, and
    ``declined`` is what keeps the dialer from retrying it, even when the status (600's
    BUSY) is one of ``retry_on_statuses``."""
    end = LegEnd(sip_code=code)
    outcome = _outcome(sip_code=code)
    outcome.dial_status = dial_status(end)
    assert outcome.dial_status == status and call_status_for(status) == status
    assert declined(outcome)
