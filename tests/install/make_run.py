"""`make run` on private ports, one call through it, and what a clean stop looks like.

Shared by the test that runs `make run` in this checkout and the one that runs it on a
fresh Debian root: both give the platform free ports (the machine's network is shared)
and a small process count (the machine has 2 cores).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import requests

from tests import servers
from tests.e2e.numbers import CALLER_ID, number
from tests.install.terminal import Terminal, stops
from tests.launcher import _up, wait_for

ENGINE_WORKERS = 2


def ports_env() -> dict[str, str]:
    """Free ports for every listener of `make run`, and short sandbox calls."""
    return {
        "PORT": str(servers.free_port()),
        "CPAAS_SANDBOX_PORT": str(servers.free_udp_port()),
        "CPAAS_SANDBOX_MEDIA_PORT": str(servers.free_media_port()),
        "CPAAS_SIP_PORT": str(servers.free_udp_ports(ENGINE_WORKERS)),
        # Each engine process takes 200 RTP ports from its base.
        "CPAAS_RTP_PORT": str(servers.free_udp_ports(200 * ENGINE_WORKERS, lo=12000, hi=19000)),
        "CPAAS_ENGINE_WORKERS": str(ENGINE_WORKERS),
        "CPAAS_RQ_WORKERS": "1",
        "WEB_CONCURRENCY": "2",
        "CPAAS_SANDBOX_HOLD": "2",
    }


def base_url(env: dict[str, str]) -> str:
    """Where the API of a `make run` started with ``env`` listens."""
    return f"http://127.0.0.1:{env['PORT']}"


def wait_healthy(term: Terminal, url: str, timeout: float) -> None:
    """Wait until `/healthz` answers 200; fail at once if `make run` has exited."""
    def healthy() -> bool:
        if term.proc.poll() is not None:
            raise AssertionError(f"make run exited with {term.proc.returncode}:\n"
                                 f"{term.output()[-6000:]}")
        return _up(requests, url)
    wait_for(healthy, timeout, f"{url}/healthz", interval=1.0)


def answered_click2call(url: str, credentials: Path) -> dict:
    """Place a click2call with account_1's secret from ``credentials``; return its CDR."""
    secret = json.loads(credentials.read_text())["account_1"]
    headers = {"account": "account_1", "auth": secret}
    placed = requests.post(f"{url}/api/click2call", headers=headers, timeout=10, json={
        "agent_number": number("101"), "caller_id": CALLER_ID,
        "destination_number": number("102")})
    assert placed.status_code == 200, placed.text
    request_id = placed.json()["response"]["request_id"]

    def cdr() -> dict | None:
        rows = requests.post(f"{url}/api/get_cdr_by_request_id", headers=headers, timeout=10,
                             json={"request_id": request_id}).json()["response"]["result"]
        return rows[0] if rows else None
    return wait_for(cdr, 60, f"the CDR of {request_id}", interval=0.5)


def assert_clean_stop(output: str, processes: set[str]) -> None:
    """Every process stopped with status 0, Redis last, and nothing printed a traceback."""
    stopped = stops(output)
    assert {name for name, _ in stopped} == processes, output[-6000:]
    assert all(rc == 0 for _, rc in stopped), stopped
    assert stopped[-1][0] == "redis", stopped
    assert "Traceback" not in output, output[output.index("Traceback") - 2000:][:6000]
    # redis-server saved its data and said goodbye (it was not killed).
    assert re.search(r"redis.*ready to exit, bye bye", output), output[-3000:]
