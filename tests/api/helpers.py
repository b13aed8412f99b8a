"""Small builders shared by the Platform-core API tests (requests go through the real app)."""
from __future__ import annotations

import io
import shutil
import struct
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cpaas.http import ROUTES, RouteDoc
from tests.api.conftest import body


def all_routes() -> list[RouteDoc]:
    """Every documented route (``cpaas.http.ROUTES``), complete even before any app exists:
    the blueprints register their routes when imported, so build them once on a scratch app."""
    if not any(r.path == "/stop_campaign" for r in ROUTES):
        from flask import Flask

        from cpaas import app as app_module, config

        # The scratch folder is only named, never written: it goes with the scratch app.
        with tempfile.TemporaryDirectory(prefix="cpaas-routes-") as folder:
            scratch = config.Settings(data_dir=Path(folder), redis_url="redis://127.0.0.1:1/0",
                                      admin_password="x")
            app_module._register_blueprints(Flask("routes"), scratch)
    return list(ROUTES)


@pytest.fixture
def clean_bucket(settings):
    """Empty the local object storage, which outlives one test (the data dir is per session)."""
    shutil.rmtree(settings.data_dir / "bucket", ignore_errors=True)
    (settings.data_dir / "bucket").mkdir(parents=True, exist_ok=True)


def wav_bytes(frames: int = 800) -> bytes:
    """A valid 8 kHz mono 16-bit PCM WAV file."""
    data = b"\x00\x00" * frames
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)


def upload(client, name: str, content: bytes | str, *, file_name: str | None = None):
    """POST /api/upload_file as multipart with the client's headers."""
    if isinstance(content, str):
        content = content.encode()
    data: dict[str, Any] = {"file": (io.BytesIO(content), name)}
    if file_name is not None:
        data["file_name"] = file_name
    return client.client.post("/api/upload_file", data=data, headers=client.headers,
                              content_type="multipart/form-data")


def ok_body(resp) -> dict:
    """Assert a 200 success envelope and return its inner object."""
    assert resp.status_code == 200, resp.data[:500]
    inner = body(resp)
    assert inner["success"] == "true", inner
    return inner


def error_body(resp, status: int, field: str | None = None) -> dict:
    """Assert an error envelope with ``status`` (naming ``field`` when given)."""
    assert resp.status_code == status, resp.data[:500]
    inner = body(resp)
    assert inner["success"] == "false", inner
    assert isinstance(inner["message"], str) and inner["message"], inner
    if field is not None:
        assert field in inner.get("errors", {}), inner
    return inner


def make_list(client, name: str = "my_campaign_list") -> str:
    return ok_body(client.post("/api/create_campaign_list", {"list_name": name}))["list_id"]


def make_dnd_list(client, name: str = "my_first_DND_list") -> str:
    return ok_body(client.post("/api/create_campaign_dnd_list", {"dnd_list_name": name}))["dnd_list_id"]


def campaign_body(list_id: str, dnd_list_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The spec's create_campaign example, for ``list_id``."""
    data: dict[str, Any] = {
        "list_id": list_id, "dnd_list_id": dnd_list_id or "",
        "campaign_name": "test_broadcast_campaign", "campaign_type": "0",
        "campaign_caller_id": "15168148111", "dynamic_announcement": "1",
        "recorded_filename": "",
        "announcement_text": "Dear, {field1} , {field2}, Your due balance is,, {field3},,INR only",
        "campaign_start_date": "2023-09-25 14:05:00", "campaign_end_date": "2023-09-26 20:00:00",
        "time_zone": "Asia/Kolkata", "repeat": "2", "max_retries": "1", "retry_time": "60",
        "calls_per_minute": "10", "voice": "Matthew", "volume": "soft", "rate": "slow",
        "pitch": "medium",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def make_campaign(client, name: str = "test_broadcast_campaign", **overrides: Any) -> str:
    list_id = overrides.pop("list_id", None) or make_list(client, f"list_for_{name}")
    resp = client.post("/api/create_campaign", campaign_body(list_id, campaign_name=name, **overrides))
    return ok_body(resp)["campaign_id"]


def account_id(name: str) -> str:
    """The id (``AC…``) of an account by name."""
    from cpaas.models import Account

    return Account.get(Account.name == name).id


def future_local(hours: float = 48, zone_offset_hours: float = 0) -> str:
    """Wall-clock time ``hours`` from now in a zone ``zone_offset_hours`` east of UTC."""
    when = datetime.now(timezone.utc) + timedelta(hours=hours + zone_offset_hours)
    return when.strftime("%Y-%m-%d %H:%M:%S")
