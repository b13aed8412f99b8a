"""A generated id that is already taken is drawn again, on the real databases.

The random source (``cpaas.ids.hex10``) is made to repeat an id that exists once, then
to draw as usual: the request must succeed with a fresh id, never answer "already
exists" (409) or fail (500).
"""
from __future__ import annotations

from typing import Callable

import pytest

from cpaas import ids
from cpaas.models import AnnounceTemplate, Callback, Campaign, ContactList, DndList
from tests.api.helpers import (campaign_body, error_body, future_local, make_campaign,
                               make_dnd_list, make_list, ok_body)

class RepeatOnce:
    """``hex10`` that first answers an id already in use, then draws as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, taken: str) -> None:
        self.real, self.queue, self.drawn = ids.hex10, [taken[-10:]], 0
        monkeypatch.setattr(ids, "hex10", self)

    def __call__(self) -> str:
        self.drawn += 1
        return self.queue.pop(0) if self.queue else self.real()


def _callback(client) -> str:
    return ok_body(client.post("/api/callback", {
        "agent_number": "919979270001", "caller_id": "15168148111",
        "destination_number": "918000680001", "scheduled_at": future_local(24 * 30)}))["request_id"]


def _template(client) -> str:
    return ok_body(client.post("/api/announce_template",
                               {"template_text": "Your code is {otp}"}))["announce_template_id"]


#: kind → (model, create(client, n, list_id)); each draws exactly one id.
KINDS: dict[str, tuple[type, Callable]] = {
    "list": (ContactList, lambda api, n, _: make_list(api, f"list {n}")),
    "dnd_list": (DndList, lambda api, n, _: make_dnd_list(api, f"dnd {n}")),
    "campaign": (Campaign, lambda api, n, list_id: make_campaign(api, f"campaign {n}",
                                                                  list_id=list_id)),
    "template": (AnnounceTemplate, lambda api, n, _: _template(api)),
    "callback": (Callback, lambda api, n, _: _callback(api)),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_taken_id_is_drawn_again(api, monkeypatch, kind):
    model, create = KINDS[kind]
    list_id = make_list(api, "for campaigns")
    first = create(api, 1, list_id)
    draws = RepeatOnce(monkeypatch, first)
    second = create(api, 2, list_id)
    assert draws.queue == [] and draws.drawn == 2  # the taken id was offered, then a new one
    assert second != first and second[:-10] == first[:-10]
    assert {r.id for r in model.select()} >= {first, second}


def test_a_taken_id_with_a_taken_name_is_still_409_on_the_name(api, monkeypatch):
    first = make_list(api, "same")
    draws = RepeatOnce(monkeypatch, first)
    error_body(api.post("/api/create_campaign_list", {"list_name": "same"}), 409, "list_name")
    assert draws.drawn == 2
    assert [r.id for r in ContactList.select()] == [first]


def test_a_campaign_name_clash_is_409_not_a_retry_loop(api, monkeypatch):
    list_id = make_list(api)
    first = make_campaign(api, "c", list_id=list_id)
    draws = RepeatOnce(monkeypatch, first)
    error_body(api.post("/api/create_campaign", campaign_body(list_id, campaign_name="c")),
               409, "campaign_name")
    assert draws.drawn == 2
    assert [r.id for r in Campaign.select()] == [first]


@pytest.mark.parametrize("path", ["/api/click2call", "/api/outbound_call"])
def test_a_taken_request_id_is_drawn_again_and_one_job_is_queued(api, settings, monkeypatch, path):
    import redis
    from rq import Queue

    from cpaas.models import CallRequest
    from tests.api.test_call_safety import CLICK2CALL, _otp_body

    call_body = CLICK2CALL if path.endswith("click2call") else _otp_body(api)
    first = ok_body(api.post(path, call_body))["request_id"]
    draws = RepeatOnce(monkeypatch, first)
    second = ok_body(api.post(path, call_body))["request_id"]
    assert draws.queue == [] and draws.drawn == 2
    assert second != first
    assert {r.id for r in CallRequest.select()} == {first, second}
    queue = Queue("calls", connection=redis.Redis.from_url(settings.redis_url))
    assert sorted(queue.job_ids) == sorted([first, second])
