"""FREESWITCH_* configuration: the node list, the other knobs, the sandbox carrier rule."""
from __future__ import annotations

import pytest

from cpaas import config
from cpaas.telephony.status import carrier_wanted
from freeswitch.nodes import Node, parse_nodes


def test_node_list():
    assert parse_nodes("127.0.0.1:8021, fs-2.local:8022") == [Node("127.0.0.1", 8021),
                                                             Node("fs-2.local", 8022)]
    assert parse_nodes("[::1]:8021")[0].name == "::1:8021"


@pytest.mark.parametrize("spec", ["", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000",
                                  "127.0.0.1:8021,127.0.0.1:8021", "a b:8021", "h:8021;x"])
def test_bad_node_lists_are_refused(spec):
    with pytest.raises(ValueError, match="FREESWITCH_ESL"):
        parse_nodes(spec)


def test_environment(monkeypatch):
    monkeypatch.setenv("FREESWITCH_ESL", "127.0.0.1:8021,127.0.0.1:8022")
    monkeypatch.setenv("FREESWITCH_ESL_PASSWORD", "pw")
    monkeypatch.setenv("FREESWITCH_GATEWAY", "carrier1")
    monkeypatch.setenv("FREESWITCH_AGENT_DIAL", "user/{ext}@127.0.0.1")
    monkeypatch.setenv("FREESWITCH_MEDIA_DIR", "/srv/shared/media")
    monkeypatch.setenv("FREESWITCH_MEDIA_URL", "http://10.0.0.5:8080")
    settings = config.load()
    assert (settings.freeswitch_esl, settings.freeswitch_esl_password, settings.freeswitch_gateway,
            settings.freeswitch_agent_dial, settings.freeswitch_media_dir,
            settings.freeswitch_media_url) == (
        "127.0.0.1:8021,127.0.0.1:8022", "pw", "carrier1", "user/{ext}@127.0.0.1",
        "/srv/shared/media", "http://10.0.0.5:8080")


def test_with_freeswitch_the_sandbox_carrier_runs_only_when_asked(monkeypatch):
    monkeypatch.delenv("CPAAS_SANDBOX_CARRIER", raising=False)
    monkeypatch.setenv("FREESWITCH_ESL", "127.0.0.1:8021")
    assert not carrier_wanted(config.load())
    monkeypatch.setenv("CPAAS_SANDBOX_CARRIER", "1")
    assert carrier_wanted(config.load())
    monkeypatch.delenv("FREESWITCH_ESL")
    monkeypatch.delenv("CPAAS_SIP_TRUNK", raising=False)
    assert carrier_wanted(config.load())   # the embedded default: the trunk points at it


@pytest.mark.parametrize("field,value", [("freeswitch_media_dir", "/srv/my media"),
                                         ("freeswitch_media_dir", "relative/media"),
                                         ("data_dir", "/tmp/a data dir")])
def test_folders_that_cannot_go_into_a_command_stop_the_driver(field, value):
    import threading
    from pathlib import Path

    from freeswitch.driver import NodeDriver

    settings = config.Settings(freeswitch_esl="127.0.0.1:8021",
                               **{field: Path(value) if field == "data_dir" else value})
    with pytest.raises(ValueError, match="FREESWITCH_MEDIA_DIR|CPAAS_DATA_DIR"):
        NodeDriver(settings, Node("127.0.0.1", 8021), None, threading.Event())
