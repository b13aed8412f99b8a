"""Call jobs: render a plan's speech, then hand the plan to the engine.

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

from cpaas import config, logs
from cpaas.redis_conn import get_redis
from cpaas.telephony import tts
from cpaas.telephony.engine import Engine
from cpaas.telephony.engines import get_engine
from cpaas.telephony.events import EVENT_STREAM, EngineEvent
from cpaas.telephony.plans import Play, Plan, Say

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _context() -> tuple[config.Settings, Engine]:
    logs.setup()
    settings = config.load()
    return settings, get_engine(settings, get_redis(settings.effective_redis_url))


def warm_up() -> None:
    """Load settings, the engine client and the TTS code before the first job."""
    _context()


def render_speech(plan: Plan, media_dir: Path, backend_name: str = tts.DEFAULT_BACKEND) -> Plan:
    """Replace every Say with a Play of its rendered audio.

    Secret text (an OTP) goes to a per-call file listed in ``ephemeral_files`` (the
    engine deletes it when the call ends); other text is cached by its parameters.
    """
    verbs, ephemeral = [], list(plan.ephemeral_files)
    backend = tts.get_backend(backend_name)
    for verb in plan.verbs:
        if not isinstance(verb, Say):
            verbs.append(verb)
            continue
        prosody = tts.Prosody(**{f.name: getattr(verb, f.name)
                                 for f in dataclasses.fields(tts.Prosody)})
        if verb.secret:
            folder = media_dir / "calls"
            folder.mkdir(parents=True, exist_ok=True)
            path = tts.render_text(verb.text, prosody,
                                   folder / f"{plan.plan_id}-{secrets.token_hex(4)}.wav", backend)
            ephemeral.append(str(path))
        else:
            path = tts.render_cached(verb.text, prosody, media_dir / "cache", backend)
        verbs.append(Play(verb.leg, str(path), verb.times))
    return dataclasses.replace(plan, verbs=verbs, ephemeral_files=ephemeral)


def place_call(plan_json: str) -> None:
    """RQ job: prepare ``plan`` and originate it on the configured engine."""
    plan = Plan.from_json(plan_json)
    logs.request_id_var.set(plan.plan_id)
    logs.account_id_var.set(plan.account_id)
    ready = plan
    try:
        settings, engine = _context()
        ready = render_speech(plan, settings.media_dir, settings.tts)
        engine.originate(ready)
        log.info("plan handed to engine", extra={"kind": plan.kind, "engine": engine.name})
    except Exception as err:  # noqa: BLE001 - reported as a failed call, never re-raised
        log.error("call could not be placed: %s", type(err).__name__)
        for path in ready.ephemeral_files:
            Path(path).unlink(missing_ok=True)
        event = EngineEvent("plan.ended", plan.plan_id, plan.account_id,
                            data={"legs": {}, "dtmf": "", "recordings": [],
                                  "cause": f"not placed: {type(err).__name__}"})
        get_redis(config.load().effective_redis_url).xadd(EVENT_STREAM, event.to_fields())
