"""What a client keeps of one topic's presence, by the rules of docs/protocol.md ("Presence"), for tests
with either client (``BusTestClient`` in process, ``BusClient`` over a socket)."""

from __future__ import annotations

import asyncio
from typing import Any


class PresenceView:
    """The member map, ``count`` and ``v`` of one topic, kept from a state and the diffs that follow."""

    def __init__(self, client: Any, topic: str, state: dict[str, Any]) -> None:
        self.client, self.topic = client, topic
        self.members, self.count, self.v = dict(state["members"]), state["count"], state["v"]

    @classmethod
    async def subscribe(cls, client: Any, topic: str) -> PresenceView:
        """Subscribe ``client`` to ``topic`` and start from the reply's state."""
        reply = await client.request("topic.subscribe", {"topic": topic})
        return cls(client, topic, reply["presence"])

    def apply(self, diff: dict[str, Any]) -> None:
        """Apply one ``presence.diff`` frame (dropped when its ``v`` is not above the view's)."""
        p = diff["p"]
        assert diff["c"] == self.topic == p["topic"]
        if p["v"] <= self.v:
            return
        for key in p["leaves"]:
            self.members.pop(key, None)
        self.members.update(p["joins"])
        self.count, self.v = p["count"], p["v"]

    def conns(self) -> dict[str, int]:
        """``{member key: connections}``."""
        return {key: entry["conns"] for key, entry in self.members.items()}

    async def until(self, conns: dict[str, int], timeout: float = 10.0) -> None:
        """Apply diffs until the members and their connections are ``conns`` (fails after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            while self.conns() != conns:
                self.apply(await self.client.receive("presence.diff", timeout=timeout))
        assert self.count == len(conns)
