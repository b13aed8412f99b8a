"""Call jobs: hand a plan to the engine, rendering its speech around the dial.

A job never lets an exception escape with its arguments (they may hold an OTP): any
failure is logged without them and reported as a ``plan.ended`` event, so the call
still gets its CDR, with ``CHANUNAVAIL`` and the cause.
"""
from __future__ import annotations

import dataclasses
import logging
import secrets
from functools import lru_cache
from pathlib import Path

import redis

from cpaas import config, logs
from cpaas.calls import claim, line
from cpaas.redis_conn import get_redis
from cpaas.telephony import causes, ephemeral, espeak, events, handoff, sealed, tts
from cpaas.telephony.engine_client import EngineClient, engine_client
from cpaas.telephony.plans import Play, Plan, Say, media_path

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _context() -> tuple[config.Settings, EngineClient]:
    logs.setup()
    settings = config.load()
    return settings, engine_client(settings, get_redis(settings.effective_redis_url))


def warm_up() -> None:
    """Load settings, the engine client and the TTS library before the first job."""
    settings, _ = _context()
    if settings.tts == "espeak":
        try:
            espeak.load()
        except espeak.EspeakUnavailable as exc:
            # Each OTP job will fail its render and end its call with a logged error.
            log.error("espeak-ng cannot start: %s", exc)
        tts.warm_up()


#: How long the engine waits, once the callee has answered, for a prompt still being
#: rendered (espeak-ng and sox take ~20 ms, Polly a round trip; both normally finish
#: while the call is still ringing). Past it the plan ends with cause ``error``.
SPEECH_WAIT = 10.0
#: Folders of the media root: per-call (secret) prompts, and cached shared speech.
CALLS_FOLDER, CACHE_FOLDER = "calls", "cache"


@dataclasses.dataclass(frozen=True)
class PendingSpeech:
    """Secret text to render into ``path`` after the call is placed."""

    text: str
    prosody: tts.Prosody
    path: Path


def prepare_speech(plan: Plan, media_dir: Path, box: sealed.Box,
                   backend_name: str = tts.DEFAULT_BACKEND,
                   group: str | None = None) -> tuple[Plan, list[PendingSpeech]]:
    """Replace every Say with a Play of its audio (named inside ``media_dir``, which the
    engine resolves under its own media root).

    Cacheable text is rendered now (normally a cache hit). Secret text (an OTP) gets a
    per-call path, listed in ``ephemeral_files`` (deleted when the call ends), that is
    rendered only after the call is placed: its Play waits for the file, so the INVITE
    does not wait for the speech. Its sealed text is opened here, so a token that
    cannot be opened (another key) fails the job before anyone is dialed.
    """
    verbs, ephemeral_files, pending = [], list(plan.ephemeral_files), []
    for verb in plan.verbs:
        if not isinstance(verb, Say):
            verbs.append(verb)
            continue
        prosody = tts.Prosody(**{f.name: getattr(verb, f.name)
                                 for f in dataclasses.fields(tts.Prosody)})
        if verb.secret:
            name = f"{CALLS_FOLDER}/{plan.plan_id}-{secrets.token_hex(4)}.wav"
            ephemeral.private_folder(media_dir / CALLS_FOLDER, group)
            pending.append(PendingSpeech(box.open(verb.text, plan.plan_id), prosody,
                                         media_path(media_dir, name)))
            ephemeral_files.append(name)
            verbs.append(Play(verb.leg, name, verb.times, wait=SPEECH_WAIT))
        else:
            path = tts.render_cached(verb.text, prosody, media_dir / CACHE_FOLDER,
                                     tts.get_backend(backend_name))
            verbs.append(Play(verb.leg, path.relative_to(media_dir).as_posix(), verb.times))
    return dataclasses.replace(plan, verbs=verbs, ephemeral_files=ephemeral_files), pending


def render_pending(plan: Plan, pending: list[PendingSpeech], backend_name: str,
                   r: redis.Redis) -> None:
    """Render the placed call's secret prompts; one whose call already ended is deleted."""
    for speech in pending:
        try:
            tts.render_text(speech.text, speech.prosody, speech.path, tts.get_backend(backend_name))
        except Exception as err:  # noqa: BLE001 - the text may hold an OTP: never logged
            # The engine's Play gives up after SPEECH_WAIT and ends the call.
            log.error("prompt not rendered: %s", type(err).__name__)
            continue
        try:
            ephemeral.settle(r, plan.plan_id, str(speech.path))
        except redis.RedisError:
            # Not knowing, keep it: the engine deletes it when the call ends.
            log.warning("cannot check whether the call already ended")


def _admitted(settings: config.Settings, plan: Plan) -> bool:
    """The check at the moment of dialing of a campaign attempt (claimed just now)."""
    from cpaas.campaigns import dial_check
    from cpaas.db import database

    with database.connection_context():
        return dial_check.admit(get_redis(settings.effective_redis_url), plan.plan_id,
                                settings.max_attempts_per_number_24h)


def _waits_in_line(settings: config.Settings, plan: Plan, plan_json: str) -> bool:
    """Put the plan in its account's line when the account is at its cap (or others
    wait); True when it did (:mod:`cpaas.calls.line`). Campaigns hold back by themselves."""
    from cpaas.db import database

    r = get_redis(settings.effective_redis_url)
    claim.bind(settings.effective_database_url)
    with database.connection_context():
        if not line.must_wait(r, plan.account_id, settings.account_max_calls):
            return False
    line.join(r, plan.account_id, plan_json)
    log.info("call waits in the account's line", extra={"kind": plan.kind})
    return True


def place_call(plan_json: str, from_line: bool = False) -> None:
    """RQ job: place ``plan`` on the configured engine, then render its secret prompts.

    ``from_line``: the account's line let it through (its turn has come; no new look)."""
    plan = Plan.from_json(plan_json)
    logs.request_id_var.set(plan.plan_id)
    logs.account_id_var.set(plan.account_id)
    try:
        settings, engine = _context()
        if plan.kind != "campaign" and not from_line and _waits_in_line(settings, plan, plan_json):
            return
        if not claim.for_dialing(settings.effective_database_url, plan.plan_id):
            return
        if plan.kind == "campaign" and not _admitted(settings, plan):
            return
        # A FreeSWITCH reading our folder as another user reads secrets through a group.
        group = settings.freeswitch_media_group if settings.freeswitch_esl else None
        ready, pending = prepare_speech(plan, settings.media_dir, sealed.box(settings),
                                        settings.tts, group)
        engine.originate(ready)
        log.info("plan handed to engine", extra={"kind": plan.kind, "engine": engine.name})
    except handoff.Revoked:
        # Too slow: the sweeper took this job for dead and settled the request.
        log.warning("plan revoked by the sweeper before its handoff; not dialed",
                    extra={"kind": plan.kind})
        return
    except Exception as err:  # noqa: BLE001 - reported as a failed call, never re-raised
        log.error("call could not be placed: %s", type(err).__name__)
        events.publish(get_redis(config.load().effective_redis_url), events.PlanEnded(
            plan_id=plan.plan_id, account_id=plan.account_id,
            cause=causes.not_placed(type(err).__name__)))
        return
    render_pending(ready, pending, settings.tts, get_redis(settings.effective_redis_url))
