"""HTTP endpoints for CDRs and statistics."""
from __future__ import annotations

from flask import Blueprint, Response

from cpaas.campaigns.service import get_campaign
from cpaas.cdr import schemas, service
from cpaas.envelope import ok
from cpaas.http import caller, json_body, route
from cpaas.jsontext import JsonArray
from cpaas.platform import platform

bp = Blueprint("cdr", __name__)


def _found(result: JsonArray) -> Response:
    return ok(message="cdr found" if result else "no cdr found", result=result)


@route(bp, "/get_cdr_by_date", "POST", "CDRs in a date range (UTC, inclusive)",
       body=schemas.CdrByDateSchema)
def get_cdr_by_date() -> Response:
    data = json_body(schemas.CdrByDateSchema)
    return _found(service.by_date(caller().id, data["start_call_date"], data["end_call_date"],
                                  data["record_count"], data["offset"], data.get("after_id")))


@route(bp, "/get_cdr_by_request_id", "POST", "CDRs of one request", body=schemas.RequestIdSchema)
def get_cdr_by_request_id() -> Response:
    data = json_body(schemas.RequestIdSchema)
    return _found(service.by_request(caller().id, data["request_id"]))


@route(bp, "/get_cdr_by_campaign_id", "POST", "CDRs of one campaign", body=schemas.CampaignIdSchema)
def get_cdr_by_campaign_id() -> Response:
    data = json_body(schemas.CampaignIdSchema)
    get_campaign(caller().id, data["campaign_id"])
    return _found(service.by_campaign(caller().id, data["campaign_id"]))


@route(bp, "/get_cdr_statistics", "GET", "Call counts by outcome")
def get_cdr_statistics() -> Response:
    return ok(result=service.statistics(caller().id))


@route(bp, "/get_campaign_cdr_statistics", "POST", "Call counts by outcome for one campaign",
       body=schemas.CampaignIdSchema)
def get_campaign_cdr_statistics() -> Response:
    data = json_body(schemas.CampaignIdSchema)
    get_campaign(caller().id, data["campaign_id"])
    return ok(result=service.statistics(caller().id, data["campaign_id"]))


@route(bp, "/get_live_call_statistics", "GET", "Live calls by kind")
def get_live_call_statistics() -> Response:
    return ok(result=service.live_statistics(platform().redis, caller().id))
