"""Every command builder takes only whitelisted tokens: CRLF, commas, quotes, braces and
spaces in any argument raise ValueError before a byte could be sent."""
from __future__ import annotations

import inspect

import pytest

from freeswitch import commands

U1 = "0e6a6c5e-0a44-4d5d-9a53-2a1f6f1f7a10"
U2 = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
PATH = "/srv/media/prompts/otp-1.wav"
HOSTILE = ["1\r\nbgapi fsctl shutdown", "1,origination_uuid=x", "1'", '1"', "1}", "{1",
           "1 2", "1\n", "../../etc/passwd", "", "1;2", "1`id`", "1^park", "1(x)"]

#: One good call of every builder, and the arguments each may be fed hostile values in.
GOOD = {
    commands.originate: dict(leg_uuid=U1, dial="sofia/gateway/trunk/919900000001",
                             caller_id="919900000002", ring_timeout=30,
                             variables={"cpaas_plan": "57362de4f0", "cpaas_role": "agent"}),
    commands.broadcast_playback: dict(leg_uuid=U1, path=PATH),
    commands.bridge: dict(a_uuid=U1, b_uuid=U2),
    commands.record_start: dict(leg_uuid=U1, path="/srv/rec/57362de4f0-0.wav",
                                flags=("RECORD_STEREO", "RECORD_STEREO_SWAP")),
    commands.park: dict(leg_uuid=U1),
    commands.kill: dict(leg_uuid=U1, cause="NORMAL_CLEARING"),
    commands.exists: dict(leg_uuid=U1),
    commands.getvar: dict(leg_uuid=U1, name="cpaas_node"),
    commands.dial_string: dict(template="sofia/gateway/trunk/{number}", number="919900000001"),
    commands.node_path: dict(root="/srv/media", name="prompts/otp-1.wav"),
}


def test_every_builder_is_covered():
    builders = {fn for name, fn in inspect.getmembers(commands, inspect.isfunction)
                if fn.__module__ == commands.__name__ and not name.startswith("_")}
    assert builders - {commands.subscribe, commands.show_channels} == set(GOOD)


@pytest.mark.parametrize("builder", list(GOOD), ids=lambda fn: fn.__name__)
def test_good_arguments_make_one_line(builder):
    line = builder(**GOOD[builder])
    assert "\n" not in line and "\r" not in line


CASES = [(fn, arg, bad) for fn, kwargs in GOOD.items() for arg in kwargs
         for bad in HOSTILE if arg not in ("ring_timeout", "template", "flags")]


@pytest.mark.parametrize("builder,arg,bad", CASES,
                         ids=[f"{fn.__name__}-{arg}-{i}" for i, (fn, arg, _) in enumerate(CASES)])
def test_hostile_values_are_refused(builder, arg, bad):
    kwargs = dict(GOOD[builder])
    if arg == "variables":
        for hostile in ({"cpaas_plan": bad}, {bad: "1"}, {"origination_uuid": U2}):
            with pytest.raises(ValueError):
                builder(**{**kwargs, "variables": hostile})
        return
    kwargs[arg] = bad
    with pytest.raises(ValueError):
        builder(**kwargs)


@pytest.mark.parametrize("builder,arg,bad", [
    (commands.originate, "ring_timeout", 0), (commands.originate, "ring_timeout", "30"),
    (commands.originate, "ring_timeout", 3601), (commands.kill, "cause", "USER_BUSY"),
    (commands.record_start, "flags", ("RECORD_STEREO=true,x",)),
    (commands.record_start, "flags", ("RECORD_STEREO}",)),
    (commands.record_start, "flags", "RECORD_STEREO")])
def test_numbers_and_enumerations_out_of_range(builder, arg, bad):
    with pytest.raises(ValueError):
        builder(**{**GOOD[builder], arg: bad})


def test_a_template_that_makes_an_unsafe_dial_string_is_refused():
    with pytest.raises(ValueError):
        commands.dial_string("sofia/gateway/trunk/{number} &bridge(x)", "919900000001")


def test_originate_as_sent():
    assert commands.originate(**GOOD[commands.originate]) == (
        "bgapi originate {origination_uuid=" + U1 + ",origination_caller_id_number=919900000002,"
        "origination_caller_id_name=919900000002,originate_timeout=30,ignore_early_media=true,"
        "hangup_after_bridge=false,park_after_bridge=true,cpaas_plan=57362de4f0,"
        "cpaas_role=agent}sofia/gateway/trunk/919900000001 &park()")


def test_recording_flags_as_sent():
    assert commands.record_start(**GOOD[commands.record_start]) == (
        f"api uuid_record {U1} start /srv/rec/57362de4f0-0.wav 0 "
        "{RECORD_STEREO=true,RECORD_STEREO_SWAP=true}")
    assert commands.record_start(U1, "/srv/rec/a.wav") == f"api uuid_record {U1} start /srv/rec/a.wav"


def test_a_recording_to_an_upload_url_is_made_by_mod_httapi():
    url = "http://127.0.0.1:8080/engine-recordings/sealed1.AbC_d-9.wav"
    assert commands.record_start(U1, url, ("RECORD_READ_ONLY",)) == (
        f"api uuid_record {U1} start {{modname=mod_httapi}}{url} 0 {{RECORD_READ_ONLY=true}}")
    for bad in ("http://h/a b.wav", "http://h/x.wav\r\nbgapi x", "http://h/{x}.wav",
                "http://h/../x.wav"):
        with pytest.raises(ValueError):
            commands.record_start(U1, bad)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/engine-media/t.wav",
                                 "https://media.example.org/cpaas/engine-media/t.wav"])
def test_a_prompt_url_is_played_by_a_named_module(url):
    assert commands.broadcast_playback(U1, url) == (
        f"bgapi uuid_broadcast {U1} playback::{{modname=mod_http_cache}}{url} aleg")
    scheme, rest = url.split("://")
    assert commands.broadcast_playback(U1, url, secret=True) == (
        f"bgapi uuid_broadcast {U1} playback::{{modname=mod_httapi}}{scheme}://(nohead=true){rest} aleg")


@pytest.mark.parametrize("url", ["http://h/a b.wav", "http://h/a,b.wav", "http://h/../x.wav",
                                 "ftp://h/x.wav", "http://h/x.wav\r\nbgapi x", "http://h/{x}.wav",
                                 "http://user@h/x.wav", "http://h/x.wav?a=1"])
def test_hostile_prompt_urls_are_refused(url):
    for secret in (False, True):
        with pytest.raises(ValueError):
            commands.broadcast_playback(U1, url, secret)
