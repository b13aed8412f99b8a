"""Call services: place click2call and OTP calls, templates, live calls (no Flask here)."""
from __future__ import annotations

import logging
import time
from typing import IO, Any, Callable

import redis
from rq import Queue

from cpaas import ids
from cpaas.accounts import AuthRecord
from cpaas.calls import plan_builders
from cpaas.calls.state import CallState
from cpaas.db import database
from cpaas.envelope import ApiError, NotFound
from cpaas.models import AnnounceTemplate, CallRequest, Cdr
from cpaas.platform import Platform
from cpaas.storage import NotFound as ObjectMissing, account_prefix
from cpaas.telephony import causes, live, sealed
from cpaas.telephony.engine_client import EngineError, LegAction, LegNotFound
from cpaas.telephony.events import PlanEnded
from cpaas.telephony.plans import Plan
from cpaas.telephony.tts import Prosody
from cpaas.transcription.keys import needs_own_audio, transcript_audio_key
from cpaas.validation import EXTENSION_RE, utcnow

log = logging.getLogger(__name__)

#: RQ job that hands a plan to the engine (runs in the ``worker`` process).
PLACE_CALL_JOB = "workers.jobs.place_call"
MODIFY_MESSAGES = {
    0: "blind transferred successfully",
    1: "attended transfer started successfully",
    2: "call hangup successfully",
    3: "call recording started successfully",
}


def recording_key(account_name: str, request_id: str, suffix: str = "") -> str:
    """Where a call's recording is stored (inside the account's prefix)."""
    return f"{account_prefix(account_name)}recordings/{request_id}{suffix}.wav"


def record_request(account_id: str, request_id: str, kind: str, **fields: Any) -> None:
    """Store the request, committed when this returns (before its job can be queued)
    unless the caller's transaction holds it (a callback's claim)."""
    with database.atomic():
        CallRequest.create(id=request_id, account_id=account_id, kind=kind,
                           status=CallState.QUEUED.value, created_at=utcnow(),
                           **{"campaign_id": None, "list_id": None, **fields})


def queue_plan(queue: Queue, plan: Plan) -> None:
    """Put the job that hands ``plan`` to the engine on ``queue`` (its job id is the
    request id); a Redis error is the caller's to handle.

    The job's arguments may hold an OTP, so neither its result nor a failure is kept.
    """
    queue.enqueue(PLACE_CALL_JOB, plan.to_json(), job_id=plan.plan_id, result_ttl=0,
                  failure_ttl=0, job_timeout=120)


def queue_plans(queue: Queue, plans: list[Plan]) -> None:
    """:func:`queue_plan` for several plans in one Redis round trip (a dialer's turn)."""
    if plans:
        queue.enqueue_many([Queue.prepare_data(
            PLACE_CALL_JOB, (plan.to_json(),), job_id=plan.plan_id, result_ttl=0,
            failure_ttl=0, timeout=120) for plan in plans])


def enqueue(platform: Platform, plan: Plan) -> None:
    """Queue the job that hands ``plan`` to the engine (:func:`queue_plan`).

    Callers commit the request's row first (:func:`record_request`), so the job always
    finds it; a request that could not be queued is closed with its CDR and 503.
    """
    try:
        queue_plan(platform.calls_queue, plan)
    except redis.RedisError:
        log.exception("call could not be queued")
        _not_queued(plan)
        raise ApiError(503, "the call could not be queued; try again shortly") from None


def _not_queued(plan: Plan) -> None:
    """Close a committed request whose job never reached Redis: its CDR says so, and a
    job that reached Redis after all finds it settled and does not dial."""
    from cpaas.cdr import consumer

    try:
        consumer.handle(PlanEnded(plan_id=plan.plan_id, account_id=plan.account_id,
                                  cause=causes.NOT_QUEUED))
    except Exception:  # noqa: BLE001 - the sweeper closes it instead
        log.exception("unqueued request left for the sweeper", extra={"request_id": plan.plan_id})


def _store_and_queue(platform: Platform, account_id: str, kind: str,
                     build: Callable[[str], Plan], **fields: Any) -> str:
    """Store a request under a fresh request_id, then queue its plan; returns the id.

    The plan is built before the row is written, so a plan that cannot be built stores
    nothing; a request_id that is already taken is drawn again with its plan.
    """
    built: list[Plan] = []

    def insert(request_id: str) -> None:
        built[:] = [build(request_id)]
        record_request(account_id, request_id, kind, **fields)

    request_id = ids.insert_new(CallRequest, ids.request_id, insert)
    enqueue(platform, built[0])
    return request_id


def click2call_plan(request_id: str, account_id: str, account_name: str, agent: str,
                    customer: str, caller_id: str, option: str, ring_timeout: int,
                    kind: str = "c2c", transcript: str = "off") -> Plan:
    """The plan of a click2call (or a fired callback), recorded under the account.

    ``transcript: on`` records both sides whatever ``option`` says: a second,
    transcript-only recording unless ``option`` is already both sides.
    """
    own = transcript == "on" and needs_own_audio(option)
    return plan_builders.click2call(
        request_id, account_id, agent, customer, caller_id, option,
        recording_key(account_name, request_id) if option != "off" else None, ring_timeout, kind,
        transcript_audio_key(account_name, request_id) if own else None)


def click2call(platform: Platform, account: AuthRecord, data: dict[str, Any]) -> str:
    """Store the request, compile the plan, queue it; returns the request_id."""
    option = data["recording_option"]

    def build(request_id: str) -> Plan:
        return click2call_plan(request_id, account.id, account.name, data["agent_number"],
                               data["destination_number"], data["caller_id"], option,
                               platform.settings.ring_timeout, transcript=data["transcript"])

    return _store_and_queue(platform, account.id, "c2c", build,
                            agent_number=data["agent_number"],
                            customer_number=data["destination_number"],
                            caller_id=data["caller_id"], recording_option=option,
                            transcript=data["transcript"], destination_context="click2call",
                            call_direction="outbound-api")


def outbound_call(platform: Platform, account: AuthRecord, data: dict[str, Any]) -> str:
    """Place an OTP call with one of the account's approved templates."""
    template = AnnounceTemplate.get_or_none((AnnounceTemplate.id == data["announce_template_id"])
                                            & (AnnounceTemplate.account_id == account.id))
    if template is None:
        raise NotFound("announce_template_id", "announce template")
    if template.status != "approved":
        raise ApiError(400, "announce template is not approved",
                       {"announce_template_id": [f"template is {template.status}"]})
    prosody = Prosody.from_request(data)
    box = sealed.box(platform.settings)

    def build(request_id: str) -> Plan:
        return plan_builders.otp(request_id, account.id, data["customer_number"],
                                 data["caller_id"], template.template_text, data["otp"], prosody,
                                 data["repeat"], platform.settings.ring_timeout, box)

    return _store_and_queue(platform, account.id, "otp", build, agent_number="",
                            customer_number=data["customer_number"], caller_id=data["caller_id"],
                            recording_option="off", transcript="off", destination_context="otp",
                            call_direction="outbound-api")


def create_template(account_id: str, text: str) -> dict[str, str]:
    """Store a template awaiting an operator's approval."""
    new_id = ids.insert_new(AnnounceTemplate, ids.template_id, lambda new_id: AnnounceTemplate.create(
        id=new_id, account_id=account_id, template_text=text, status="pending", created_at=utcnow()))
    return {"announce_template_id": new_id, "status": "pending"}


def list_templates(account_id: str) -> list[dict[str, str]]:
    """The account's templates, oldest first."""
    query = (AnnounceTemplate.select().where(AnnounceTemplate.account_id == account_id)
             .order_by(AnnounceTemplate.created_at))
    return [{"announce_template_id": t.id, "template_text": t.template_text, "status": t.status}
            for t in query]


def live_calls(platform: Platform, account_id: str) -> list[dict[str, Any]]:
    """The account's live legs."""
    return [{"channel": leg.channel, "request_id": leg.request_id, "kind": leg.kind,
             "role": leg.role, "number": leg.number, "state": leg.state,
             "started_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(leg.started_at))}
            for leg in live.for_account(platform.redis, account_id)]


def modify_call(platform: Platform, account: AuthRecord, data: dict[str, Any]) -> str:
    """Transfer, hang up or start recording a live leg of the account; returns the message."""
    leg = live.get(platform.redis, data["channel"], account.id)
    if leg is None:
        raise NotFound("channel", "live call")
    kind = data["modify_type"]
    request = CallRequest.get_or_none(CallRequest.id == leg.request_id)
    if kind in (0, 1):
        target = data["transfer_to"]
        action = LegAction("blind_transfer" if kind == 0 else "attended_transfer", target=target,
                           target_kind="agent" if EXTENSION_RE.fullmatch(target) else "number",
                           caller_id=request.caller_id if request else None)
    elif kind == 2:
        action = LegAction("hangup")
    else:
        action = LegAction("record", record_key=recording_key(
            account.name, leg.request_id, f"-{int(time.time() * 1000)}"))
    try:
        platform.engine.act(leg.channel, action)
    except LegNotFound:
        raise NotFound("channel", "live call") from None
    except EngineError as err:
        raise ApiError(409, f"the call could not be modified: {err}",
                       {"channel": [str(err)]}) from None
    return MODIFY_MESSAGES[kind]


def _deleted_by_retention(account_id: str, request_id: str) -> bool:
    """Whether retention deleted recordings of the account's request."""
    return (Cdr.select().where((Cdr.account_id == account_id) & (Cdr.request_id == request_id)
                               & Cdr.media_deleted_at.is_null(False)).exists())


def open_recording(platform: Platform, account: AuthRecord, request_id: str,
                   name: str | None) -> tuple[str, IO[bytes]]:
    """The account's recording of a request (latest unless ``name`` picks one)."""
    rows = (Cdr.select(Cdr.recording_name)
            .where((Cdr.account_id == account.id) & (Cdr.request_id == request_id)
                   & (Cdr.recording_name != "")).order_by(Cdr.id))
    keys = [key for row in rows for key in row.recording_name.split(",") if key]
    prefix = account_prefix(account.name)
    keys = [k for k in keys if k.startswith(prefix)]
    if name:
        keys = [k for k in keys if k.rsplit("/", 1)[-1] == name or k == name]
    if not keys:
        if _deleted_by_retention(account.id, request_id):
            raise ApiError(404, "recording deleted by retention",
                           {"request_id": ["the recording was deleted by the retention policy"]})
        raise NotFound("request_id", "recording")
    try:
        return keys[-1].rsplit("/", 1)[-1], platform.storage.open(keys[-1])
    except ObjectMissing:
        raise NotFound("request_id", "recording") from None
