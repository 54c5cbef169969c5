"""Presence over two demo server processes (``manage.py runbus``) on a real Redis, with both channels_redis
layers: joins and leaves seen across processes, one user's two tabs (one on each process) as one member,
a server process killed with SIGKILL whose members leave (a diff from the live one says so), and a
private room whose members nobody else may see."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from channelbus.client import BusClient, RequestFailed, fetch_cookies
from tests.presence_view import PresenceView
from tests.redis_support import require_redis
from tests.servers import ROOT, demo_server, migrate_demo

ROOM = "chat.room:presence"
#: Seconds a killed process's members may stay (DEMO_PRESENCE_EXPIRY), and between two diffs of a room.
EXPIRY, INTERVAL = 3.0, 0.2

pytestmark = pytest.mark.parametrize("layer", ["redis", "redis-pubsub"])


def environment(layer: str) -> dict[str, str]:
    return {
        "DEMO_CHANNEL_LAYER": layer,
        "DEMO_CACHE": "redis",
        "DEMO_REDIS_PREFIX": f"cbtest{uuid.uuid4().hex[:8]}",
        "DEMO_PRESENCE_EXPIRY": str(EXPIRY),
        "DEMO_PRESENCE_INTERVAL": str(INTERVAL),
        "DEMO_EXTRA_APPS": "tests.presenceapp",  # test.private, a presence kind for its owner only
        "PYTHONPATH": str(ROOT),
    }


@contextlib.contextmanager
def two_servers(tmp_path: Path, layer: str, started: list | None = None) -> Iterator[tuple[str, str]]:
    """Two demo processes on one database and one Redis; the second's process goes into ``started``."""
    require_redis()
    env = environment(layer)
    migrate_demo(tmp_path, env)
    with (
        demo_server(tmp_path, env, migrate=False) as first,
        demo_server(tmp_path, env, migrate=False, started=started) as second,
    ):
        yield first, second


async def guest(server: str) -> dict[str, str]:
    """The cookies of a new guest of the demo (GET / signs one in)."""
    return await asyncio.to_thread(fetch_cookies, f"http://{server}/")


async def connect(server: str, cookies: dict[str, str]) -> BusClient:
    return await BusClient(f"ws://{server}/ws/", cookies=cookies).connect()


async def key_of(client: BusClient) -> str:
    """The member key of a client's user: the pk of its ``user:<pk>`` topic."""
    topics = (await client.request("topic.list"))["topics"]
    return next(topic.partition(":")[2] for topic in topics if topic.startswith("user:"))


async def test_members_join_and_leave_across_processes_and_two_tabs_are_one(tmp_path, layer):
    with two_servers(tmp_path, layer) as (first, second):
        ann = await connect(first, await guest(first))
        ben_cookies = await guest(second)
        ben_tabs = [await connect(second, ben_cookies), await connect(first, ben_cookies)]
        try:
            view = await PresenceView.subscribe(ann, ROOM)
            ann_key, ben_key = await key_of(ann), await key_of(ben_tabs[0])
            assert view.conns() == {ann_key: 1}
            for tab in ben_tabs:
                await tab.request("topic.subscribe", {"topic": ROOM})
            await view.until({ann_key: 1, ben_key: 2})  # one member, a tab on each process
            assert view.members[ben_key]["info"]["name"].startswith("guest-")
            asked = (await ben_tabs[0].request("presence.get", {"topic": ROOM}))["members"]
            assert {key: entry["conns"] for key, entry in asked.items()} == {ann_key: 1, ben_key: 2}
            await ben_tabs[0].close()
            await view.until({ann_key: 1, ben_key: 1})
            await ben_tabs[1].request("topic.leave", {"topic": ROOM})
            await view.until({ann_key: 1})
        finally:
            for client in (ann, *ben_tabs):
                await client.close()


async def test_the_members_of_a_killed_process_leave_within_the_expiry(tmp_path, layer):
    started: list = []
    with two_servers(tmp_path, layer, started) as (first, second):
        ann = await connect(first, await guest(first))
        ben = await connect(second, await guest(second))
        try:
            view = await PresenceView.subscribe(ann, ROOM)
            await ben.request("topic.subscribe", {"topic": ROOM})
            ann_key, ben_key = await key_of(ann), await key_of(ben)
            await view.until({ann_key: 1, ben_key: 1})
            started[0].kill()  # SIGKILL: no close, no cleanup; its entry in Redis stops being renewed
            started[0].wait(10)
            # First's next renewal after the expiry sweeps it; the bound is generous for a loaded machine.
            await view.until({ann_key: 1}, timeout=3 * EXPIRY + 10)
            state = await ann.request("presence.get", {"topic": ROOM})
            assert (set(state["members"]), state["count"]) == ({ann_key}, 1)
        finally:
            await ann.close()


async def test_a_private_room_shows_its_members_to_nobody_else(tmp_path, layer):
    with two_servers(tmp_path, layer) as (first, second):
        ann = await connect(first, await guest(first))
        ben = await connect(second, await guest(second))
        try:
            room = f"test.private:{await key_of(ann)}"
            view = await PresenceView.subscribe(ann, room)
            assert view.conns() == {await key_of(ann): 1}
            for request in ("presence.get", "topic.subscribe"):
                with pytest.raises(RequestFailed) as refused:
                    await ben.request(request, {"topic": room})
                assert refused.value.type == "error.subscribe"
                assert refused.value.payload == {"msg": f"You may not subscribe to {room}.", "topic": room}
        finally:
            for client in (ann, ben):
                await client.close()
