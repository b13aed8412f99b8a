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


class Account:
    """account_1 on the API of a running `make run`, its secret read from ``credentials``."""

    def __init__(self, url: str, credentials: Path) -> None:
        self.url = url
        secret = json.loads(credentials.read_text())["account_1"]
        self.headers = {"account": "account_1", "auth": secret}

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """The envelope's inner object of a 200 answer."""
        answer = requests.request(method, self.url + path, headers=self.headers, json=body,
                                  timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()["response"]

    def click2call(self) -> str:
        """Place a click2call through the sandbox carrier; its request_id."""
        return self.call("POST", "/api/click2call", {
            "agent_number": number("101"), "caller_id": CALLER_ID,
            "destination_number": number("102")})["request_id"]

    def cdrs(self, request_id: str) -> list[dict]:
        return self.call("POST", "/api/get_cdr_by_request_id", {"request_id": request_id})["result"]

    def cdr(self, request_id: str, timeout: float = 60) -> dict:
        """Wait for the request's CDR."""
        return wait_for(lambda: (self.cdrs(request_id) or [None])[0], timeout,
                        f"the CDR of {request_id}", interval=0.5)

    def bridged(self, request_id: str, timeout: float = 30) -> None:
        """Wait until the request's customer leg is bridged to its agent."""
        def up() -> bool:
            return any(leg["request_id"] == request_id and leg["role"] == "customer"
                       and leg["state"] == "bridged"
                       for leg in self.call("GET", "/api/live_calls")["result"])
        wait_for(up, timeout, f"the bridged call {request_id}", interval=0.2)


def assert_clean_stop(output: str, processes: set[str]) -> None:
    """Every process stopped with status 0, Redis last, and nothing printed a traceback."""
    stopped = stops(output)
    assert {name for name, _ in stopped} == processes, output[-6000:]
    assert all(rc == 0 for _, rc in stopped), stopped
    assert stopped[-1][0] == "redis", stopped
    assert "Traceback" not in output, output[output.index("Traceback") - 2000:][:6000]
    # redis-server saved its data and said goodbye (it was not killed).
    assert re.search(r"redis.*ready to exit, bye bye", output), output[-3000:]
