"""The platform's own end causes: only a call that surely sent no INVITE counts as never
having left (a callback whose call never left ends failed; one that rang does not)."""
from __future__ import annotations

import pytest

from cpaas.telephony import causes


@pytest.mark.parametrize("cause", [causes.NOT_QUEUED, causes.not_placed("ValueError"),
                                   causes.swept(causes.JOB_LOST),
                                   causes.swept(causes.NEVER_HANDED)])
def test_causes_of_a_call_that_never_left(cause):
    assert causes.never_left(cause)


@pytest.mark.parametrize("cause", [causes.swept(causes.NOT_DIALED), causes.swept(causes.NO_LIVE_LEG),
                                   "normal", "dial_failed", "engine_worker_died", "",
                                   "not queued yet", "swept: job lost later"])
def test_causes_of_a_call_that_may_have_rung(cause):
    assert not causes.never_left(cause)


def test_the_words_stay_those_the_cdrs_already_hold():
    # CDRs written by earlier releases carry these texts; a reader must still know them.
    assert (causes.NOT_QUEUED, causes.not_placed("X"), causes.swept(causes.JOB_LOST),
            causes.swept(causes.NEVER_HANDED)) == \
        ("not queued", "not placed: X", "swept: job lost", "swept: never handed")
