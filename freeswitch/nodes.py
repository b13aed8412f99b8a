"""The configured FreeSWITCH nodes and the Redis keys each one's driver and clients share.

``FREESWITCH_ESL`` is ``host:port[,host:port…]``. Each node has one driver (in the
``events`` process) holding its ESL connection; clients hand it plans and actions
through its own Redis lists and see whether it is up by its heartbeat, which the driver
refreshes only while its node answers. A node that is down or refuses the password
stops beating, so it takes no new calls until it answers again.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_NODE_RE = re.compile(r"^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:]{2,39}\]):([0-9]{1,5})$")

#: Seconds a heartbeat lives; the driver beats every BEAT_EVERY while connected.
BEAT_TTL, BEAT_EVERY = 3, 1.0


@dataclass(frozen=True)
class Node:
    """One FreeSWITCH event socket."""

    host: str
    port: int

    @property
    def name(self) -> str:
        """``host:port``: the node's name in keys and logs."""
        return f"{self.host}:{self.port}"

    @property
    def owner(self) -> str:
        """Its name as the owner of live legs (``modify_call`` routes actions by it)."""
        return f"fs:{self.name}"

    @property
    def plans_key(self) -> str:
        """List of plan JSON waiting for this node's driver."""
        return f"cpaas:fs:{self.name}:plans"

    @property
    def cmd_key(self) -> str:
        """List of live-leg actions for this node's driver."""
        return f"cpaas:fs:{self.name}:cmd"

    @property
    def beat_key(self) -> str:
        """The driver's heartbeat (JSON: plans held), present only while the node is up."""
        return f"cpaas:fs:{self.name}:beat"


def parse_nodes(spec: str) -> list[Node]:
    """The nodes of ``FREESWITCH_ESL``; ``ValueError`` naming the bad entry."""
    nodes = []
    for part in (p.strip() for p in spec.split(",")):
        match = _NODE_RE.fullmatch(part)
        if not match or not 0 < int(match.group(2)) < 65536:
            raise ValueError(f"FREESWITCH_ESL: {part!r} is not host:port")
        nodes.append(Node(match.group(1).strip("[]"), int(match.group(2))))
    if not nodes or len(set(nodes)) != len(nodes):
        raise ValueError("FREESWITCH_ESL: one or more distinct host:port entries")
    return nodes


def node_of_owner(owner: str, nodes: list[Node]) -> Node | None:
    """The configured node a live leg's owner names."""
    return next((n for n in nodes if n.owner == owner), None)
