"""Concurrent writers never turn into errors (SQLite once answered 'database is locked')."""
from __future__ import annotations

import threading

from tests.api.conftest import Api, body
from tests.launcher import SECRETS


def test_concurrent_contact_writes_all_succeed(app):
    list_id = body(Api(app.test_client(), "account_1", SECRETS["account_1"]).post(
        "/api/create_campaign_list", {"list_name": "busy"}))["list_id"]
    statuses: list[int] = []
    lock = threading.Lock()

    def writer(k: int) -> None:
        client = Api(app.test_client(), "account_1", SECRETS["account_1"])
        for i in range(25):
            r = client.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": [
                {"contact_number": f"91{k:03d}{i:07d}", "contact_fields": {"n": str(i)}}]})
            with lock:
                statuses.append(r.status_code)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 200
    from cpaas.models import Contact
    assert Contact.select().where(Contact.list_id == list_id).count() == 200
