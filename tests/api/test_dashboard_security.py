"""The RQ dashboard at /rq: its login throttle, and no state change from another site's page.

The operator's browser keeps the Basic credentials and sends them with any request to
/rq, including one a hostile page makes it send; these tests drive real RQ jobs on the
test Redis through the dashboard's own routes.
"""
from __future__ import annotations

import base64
import dataclasses
import operator
from typing import Iterator

import pytest
import redis as redis_lib
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from cpaas import accounts, app as app_module
from cpaas.db import database
from tests.api.conftest import SECRETS

QUEUE = "dashboard-test"
OWN_ORIGIN = "http://localhost"     # the Flask test client's host
EVIL = "https://evil.example"
PROXY, ATTACKER, CLIENT = "127.0.0.1", "203.0.113.9", "198.51.100.7"


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


OPERATOR = _basic("admin", "operator-pass")


@pytest.fixture
def rq_redis(app, settings) -> Iterator[redis_lib.Redis]:
    """The test Redis the dashboard reads (the app fixture has emptied it)."""
    conn = redis_lib.Redis.from_url(settings.redis_url)
    yield conn
    conn.close()


@pytest.fixture
def jobs(rq_redis) -> dict[str, Job]:
    """One job that really failed (run by a real worker) and one still queued."""
    queue = Queue(QUEUE, connection=rq_redis)
    failing = queue.enqueue(operator.truediv, 1, 0)
    SimpleWorker([queue], connection=rq_redis).work(burst=True)
    queued = queue.enqueue(operator.add, 1, 2)
    assert failing.get_status(refresh=True) == JobStatus.FAILED
    assert queue.job_ids == [queued.id]
    return {"failed": failing, "queued": queued}


def _state(conn: redis_lib.Redis) -> tuple[list[str], list[str]]:
    """(queued job ids, failed job ids) of the test queue."""
    return (Queue(QUEUE, connection=conn).job_ids,
            FailedJobRegistry(QUEUE, connection=conn).get_job_ids())


def _actions(jobs: dict[str, Job]) -> list[tuple[str, str]]:
    """Every state-changing route of rq-dashboard 0.9, with the method its JS uses."""
    return [("POST", f"/rq/job/{jobs['failed'].id}/requeue"),
            ("POST", f"/rq/requeue/{QUEUE}"),
            ("GET", f"/rq/requeue/{QUEUE}"),      # the route also answers GET
            ("POST", f"/rq/job/{jobs['queued'].id}/delete"),
            ("POST", f"/rq/job/{jobs['failed'].id}/delete"),
            ("POST", f"/rq/queue/{QUEUE}/queued/empty"),
            ("POST", f"/rq/queue/{QUEUE}/failed/empty"),
            ("POST", f"/rq/queue/{QUEUE}/compact")]


CROSS_SITE = {
    "foreign Origin": {"Origin": EVIL},
    "foreign Origin, same-looking Referer": {"Origin": EVIL, "Referer": f"{OWN_ORIGIN}/rq/"},
    "opaque Origin": {"Origin": "null"},
    "foreign Referer only": {"Referer": f"{EVIL}/page.html"},
    "Fetch metadata cross-site": {"Sec-Fetch-Site": "cross-site", "Origin": OWN_ORIGIN},
    "Fetch metadata same-site": {"Sec-Fetch-Site": "same-site"},
    "a subdomain's Origin": {"Origin": "http://evil.localhost"},
    "other port": {"Origin": "http://localhost:8081"},
    "no origin evidence at all": {},
}


@pytest.mark.parametrize("label", list(CROSS_SITE))
def test_cross_site_requests_with_operator_credentials_change_nothing(app, rq_redis, jobs, label):
    client = app.test_client()
    before = _state(rq_redis)
    for method, path in _actions(jobs):
        resp = client.open(path, method=method, headers={**OPERATOR, **CROSS_SITE[label]})
        assert resp.status_code == 403, (method, path, resp.status_code, resp.data[:200])
        assert b"same-origin" in resp.data
    assert _state(rq_redis) == before
    assert Job.exists(jobs["queued"].id, connection=rq_redis)
    assert jobs["failed"].get_status(refresh=True) == JobStatus.FAILED


SAME_ORIGIN = {
    "Origin": {"Origin": OWN_ORIGIN},
    "Fetch metadata": {"Sec-Fetch-Site": "same-origin"},
    "Referer only": {"Referer": f"{OWN_ORIGIN}/rq/0/view/jobs"},
}


@pytest.mark.parametrize("label", list(SAME_ORIGIN))
def test_same_origin_actions_work(app, rq_redis, jobs, label):
    client = app.test_client()
    headers = {**OPERATOR, **SAME_ORIGIN[label]}
    resp = client.post(f"/rq/job/{jobs['failed'].id}/requeue", headers=headers)
    assert resp.status_code == 200 and resp.get_json() == {"status": "OK"}
    assert _state(rq_redis) == ([jobs["queued"].id, jobs["failed"].id], [])
    resp = client.post(f"/rq/job/{jobs['queued'].id}/delete", headers=headers)
    assert resp.get_json() == {"status": "OK"}
    assert not Job.exists(jobs["queued"].id, connection=rq_redis)
    resp = client.post(f"/rq/queue/{QUEUE}/queued/empty", headers=headers)
    assert resp.get_json() == {"status": "OK"}
    assert _state(rq_redis) == ([], [])


def test_dashboard_reads_need_no_origin(app, jobs):
    """Pages and their JSON stay plain GETs (bookmarks, reloads, the dashboard's polling)."""
    client = app.test_client()
    resp = client.get(f"/rq/0/data/jobs/{QUEUE}/failed/10/asc/1.json", headers=OPERATOR)
    assert resp.status_code == 200
    assert [j["id"] for j in resp.get_json()["jobs"]] == [jobs["failed"].id]


def test_dashboard_pages_refuse_to_be_framed(app):
    resp = app.test_client().get("/rq/0/view/jobs", headers=OPERATOR)
    assert resp.status_code == 200
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


def _proxied(settings, limit: int = 2):
    return app_module.create_app(dataclasses.replace(
        settings, auth_fail_limit=limit, auth_fail_window=60, trusted_proxies=("127.0.0.0/8",)))


def _rq_via(client, headers: dict[str, str], xff: str):
    return client.get("/rq/0/data/queues.json", headers={**headers, "X-Forwarded-For": xff},
                      environ_base={"REMOTE_ADDR": PROXY})


def test_dashboard_password_guessing_is_throttled_per_client(app, settings):
    client = _proxied(settings, 2).test_client()
    wrong = _basic("admin", "guess")
    statuses = [_rq_via(client, wrong, ATTACKER).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    refused = _rq_via(client, OPERATOR, ATTACKER)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert b"too many" in refused.data and b"<html" not in refused.data.lower()
    # The operator, through the same proxy, is not locked out.
    assert _rq_via(client, OPERATOR, CLIENT).status_code == 200


def test_dashboard_visits_without_credentials_are_not_failures(app, settings):
    """A browser's first request carries no credentials (it waits for the 401's challenge)."""
    limited = app_module.create_app(dataclasses.replace(settings, auth_fail_limit=2))
    client = limited.test_client()
    assert {client.get("/rq/0/data/queues.json").status_code for _ in range(6)} == {401}
    assert client.get("/rq/0/data/queues.json", headers=OPERATOR).status_code == 200


def test_unknown_account_names_are_cached_within_a_bound(app):
    bound = accounts.AUTH_CACHE_SIZE
    with database.connection_context():
        for i in range(bound + 200):
            assert accounts.verify(f"nobody-{i}", "x" * 20) is None
        assert len(accounts._cache) == bound
        assert accounts.verify("account_1", SECRETS["account_1"]) is not None
        assert len(accounts._cache) == bound
