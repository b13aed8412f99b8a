"""create_campaign's calling-hours and IVR fields: 400 naming the field, good values accepted."""
from __future__ import annotations

import jsonschema_rs
import pytest
from marshmallow import ValidationError

from cpaas.campaigns.schemas import CreateCampaignSchema
from tests.api.helpers import campaign_body, error_body, make_list, ok_body

IVR = {"campaign_type": "1"}
GOOD_MAP = {"0": "agent:102", "9": "number:919900000001", "*": "number:+14155550100"}


def create(client, list_id: str | None = None, **overrides):
    return client.post("/api/create_campaign", campaign_body(list_id or make_list(client), **overrides))


@pytest.mark.parametrize("overrides,field", [
    ({"calling_hours": "9-21"}, "calling_hours"),
    ({"calling_hours": "9:00-21:00"}, "calling_hours"),
    ({"calling_hours": "21:00-09:00"}, "calling_hours"),
    ({"calling_hours": "09:00-09:00"}, "calling_hours"),
    ({"calling_hours": "09:00-24:00"}, "calling_hours"),
    ({"calling_hours": 900}, "calling_hours"),
    ({"calling_hours": ["09:00-21:00"]}, "calling_hours"),
    ({"contact_local_time": "2"}, "contact_local_time"),
    ({"contact_local_time": "yes", "calling_hours": "09:00-21:00"}, "contact_local_time"),
    ({"contact_local_time": True, "calling_hours": "09:00-21:00"}, "contact_local_time"),
    ({"contact_local_time": "1"}, "contact_local_time"),                      # no calling_hours
    ({"contact_local_time": 1, "calling_hours": " "}, "contact_local_time"),
    ({**IVR, "ivr_max_digits": "0"}, "ivr_max_digits"),
    ({**IVR, "ivr_max_digits": 21}, "ivr_max_digits"),
    ({**IVR, "ivr_max_digits": "two"}, "ivr_max_digits"),
    ({**IVR, "ivr_max_digits": 1.5}, "ivr_max_digits"),
    ({**IVR, "ivr_timeout": 0}, "ivr_timeout"),
    ({**IVR, "ivr_timeout": "61"}, "ivr_timeout"),
    ({**IVR, "ivr_timeout": "5s"}, "ivr_timeout"),
    ({"ivr_digit_map": {"1": "agent:102"}}, "ivr_digit_map"),                # campaign_type 0
    ({**IVR, "ivr_digit_map": "1:agent:102"}, "ivr_digit_map"),
    ({**IVR, "ivr_digit_map": ["agent:102"]}, "ivr_digit_map"),
    ({**IVR, "ivr_digit_map": {"a": "agent:102"}}, "ivr_digit_map"),
    ({**IVR, "ivr_digit_map": {"": "agent:102"}}, "ivr_digit_map"),
    ({**IVR, "ivr_digit_map": {"12": "agent:102"}}, "ivr_digit_map"),        # ivr_max_digits 1
    ({**IVR, "ivr_max_digits": 2, "ivr_digit_map": {"123": "agent:102"}}, "ivr_digit_map"),
    ({**IVR, "ivr_digit_map": {"1": "agent:1"}}, "ivr_digit_map"),
    ({**IVR, "ivr_digit_map": {"1": "agent:1234567"}}, "ivr_digit_map"),
    ({**IVR, "ivr_digit_map": {"1": "number:1234567"}}, "ivr_digit_map"),
    ({**IVR, "ivr_digit_map": {"1": "sip:102"}}, "ivr_digit_map"),
    ({**IVR, "ivr_digit_map": {"1": "agent:102 "}}, "ivr_digit_map"),
    ({**IVR, "ivr_digit_map": {"1": 102}}, "ivr_digit_map"),
    ({**IVR, "ivr_digit_map": {"1": None}}, "ivr_digit_map"),
    ({**IVR, "ivr_max_digits": 2, "ivr_digit_map": {str(i): "agent:102" for i in range(10, 23)}},
     "ivr_digit_map"),                                                          # 13 entries
])
def test_bad_values_are_400_naming_the_field(api, overrides, field):
    inner = error_body(create(api, **overrides), 400, field)
    assert field in inner["message"]
    assert inner["errors"][field] != ["Unknown field."]  # a field of the schema, refusing the value


def test_good_values_are_accepted(api):
    list_id = make_list(api)
    ok_body(create(api, list_id, **IVR, calling_hours="09:00-21:00", contact_local_time="1",
                   ivr_max_digits="2", ivr_timeout=10,
                   ivr_digit_map={**GOOD_MAP, "#1": "agent:123456"}))
    ok_body(create(api, list_id, campaign_name="numbers", calling_hours=" 08:00-20:30 ",
                   contact_local_time=1, ivr_max_digits=20, ivr_timeout="60"))
    ok_body(create(api, list_id, campaign_name="twelve", **IVR, ivr_max_digits=2,
                   ivr_digit_map={str(i): "agent:102" for i in range(12)} | {"1": "agent:10"}))


@pytest.mark.parametrize("absent", [{"calling_hours": "", "ivr_digit_map": None},
                                    {"calling_hours": None, "ivr_digit_map": {}, "contact_local_time": "0"}])
def test_absent_or_empty_means_none(api, absent):
    ok_body(create(api, **absent))


# --- what the schema hands the service --------------------------------------------------

def _load(**overrides):
    return CreateCampaignSchema().load(campaign_body("LS0123456789", **overrides))


def test_loaded_defaults():
    data = _load()
    assert (data["calling_hours"], data["contact_local_time"]) == ("", 0)
    assert (data["ivr_max_digits"], data["ivr_timeout"], data["ivr_digit_map"]) == (1, 5, {})
    assert _load(calling_hours=None, ivr_digit_map=None)["calling_hours"] == ""
    assert _load(calling_hours=None, ivr_digit_map=None)["ivr_digit_map"] == {}


def test_loaded_values_are_normalised():
    data = _load(**IVR, calling_hours="\t09:00-21:00 ", contact_local_time="1", ivr_max_digits="3",
                 ivr_timeout="7", ivr_digit_map=GOOD_MAP)
    assert (data["calling_hours"], data["contact_local_time"]) == ("09:00-21:00", 1)
    assert (data["ivr_max_digits"], data["ivr_timeout"]) == (3, 7)
    assert data["ivr_digit_map"] == {"0": "agent:102", "9": "number:919900000001",
                                     "*": "number:14155550100"}


# --- the OpenAPI document says the same -------------------------------------------------

DOCUMENT_CASES = [
    {}, {"calling_hours": " 09:00-21:00\t"}, {"calling_hours": ""}, {"calling_hours": None},
    {"calling_hours": "9:00-21:00"}, {"calling_hours": "09:00-24:00"}, {"calling_hours": 900},
    {"contact_local_time": "1"}, {"contact_local_time": 1, "calling_hours": "09:00-21:00"},
    {"contact_local_time": 0.0}, {"contact_local_time": True, "calling_hours": "09:00-21:00"},
    {"contact_local_time": "1", "calling_hours": " "}, {"ivr_max_digits": "20"},
    {"ivr_max_digits": 0}, {"ivr_timeout": 60}, {"ivr_timeout": 61}, {"ivr_timeout": " 7 "},
    {"ivr_digit_map": {"1": "agent:102"}}, {"ivr_digit_map": {}}, {"ivr_digit_map": None},
    {**IVR, "ivr_digit_map": GOOD_MAP},
    {**IVR, "ivr_max_digits": "2", "ivr_digit_map": {"12": "agent:102"}},
    {**IVR, "ivr_digit_map": {"1": "number:919"}}, {**IVR, "ivr_digit_map": {"a": "agent:10"}},
    {**IVR, "ivr_digit_map": {"": "agent:10"}}, {**IVR, "ivr_digit_map": "x"},
    {**IVR, "ivr_digit_map": {"#": "agent:10\n"}}, {**IVR, "ivr_max_digits": 1.0, "ivr_digit_map": {"*": "agent:102"}},
    {**IVR, "ivr_max_digits": 2, "ivr_digit_map": {str(i): "agent:10" for i in range(10, 22)}},
    {**IVR, "ivr_max_digits": 2, "ivr_digit_map": {str(i): "agent:10" for i in range(10, 23)}},
]


def test_the_document_accepts_what_the_schema_accepts(app):
    """Keys longer than ivr_max_digits are a rule in words (see the schema's description)."""
    document = app.test_client().get("/api/openapi.json").get_json()
    schema = document["components"]["schemas"]["CreateCampaign"]
    assert "No key of ivr_digit_map may be longer than ivr_max_digits" in schema["description"]
    validator = jsonschema_rs.Draft202012Validator(schema)
    for case in DOCUMENT_CASES:
        sent = {**campaign_body("LS0123456789"), **case}   # an explicit null stays null
        try:
            CreateCampaignSchema().load(sent)
            accepted = True
        except ValidationError:
            accepted = False
        assert validator.is_valid(sent) == accepted, case
