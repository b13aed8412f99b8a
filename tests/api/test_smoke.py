from tests.api.conftest import body


def test_create_list(api):
    r = api.post("/api/create_campaign_list", {"list_name": "my_list"})
    assert r.status_code == 200, r.data
    assert body(r)["list_id"].startswith("LS")
