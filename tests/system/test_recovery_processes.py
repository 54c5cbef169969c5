"""Recovery across server processes on a real Redis (both channels_redis layers): a tab away for 2 s,
a server process restarted under it, an epoch that changed, a history window that passed."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest
import redis.asyncio as aioredis

from channelbus.client import BusClient, RequestFailed, fetch_cookies
from tests.redis_support import REDIS_URL, require_redis
from tests.servers import demo_server, migrate_demo

ROOM = "chat.room:lobby"

pytestmark = pytest.mark.parametrize("layer", ["redis", "redis-pubsub"])


def environment(layer: str, **extra: str) -> dict[str, str]:
    prefix = f"cbtest{uuid.uuid4().hex[:8]}"
    return {"DEMO_CHANNEL_LAYER": layer, "DEMO_CACHE": "redis", "DEMO_REDIS_PREFIX": prefix, **extra}


async def connect(server: str) -> BusClient:
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    return await BusClient(f"ws://{server}/ws/", cookies=cookies).connect()


async def chat_frames(client: BusClient, count: int, timeout: float = 30.0) -> list[dict]:
    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < count:
        frame = await client.receive("chat.message", timeout=max(0.1, deadline - time.monotonic()))
        assert frame["c"] == ROOM
        frames.append(frame)
    return frames


async def send_chat(client: BusClient, texts: list[str]) -> None:
    """Send ``chat.send`` (a deferred message) for each text, 5 at a time, in order of the batches (the job
    cap is 10 per connection, and a job's slot is given back just after its reply: over it, try again)."""

    async def send(text: str) -> None:
        while True:
            try:
                await client.request("chat.send", {"room": "lobby", "text": text})
                return
            except RequestFailed as failed:
                if failed.type != "error.rate_limited":
                    raise
                await asyncio.sleep(0.1)

    for start in range(0, len(texts), 5):
        await asyncio.gather(*(send(text) for text in texts[start : start + 5]))


async def nothing_more(client: BusClient) -> None:
    with pytest.raises(TimeoutError):
        await client.receive("chat.message", timeout=0.5)


async def test_a_tab_away_for_two_seconds_gets_exactly_what_it_missed_then_live_frames(tmp_path, layer):
    require_redis()
    env = environment(layer)
    migrate_demo(tmp_path, env)
    with (
        demo_server(tmp_path, env, migrate=False) as first,
        demo_server(tmp_path, env, migrate=False) as second,
    ):
        writer = await connect(second)
        reader = await connect(first)
        try:
            await writer.request("topic.subscribe", {"topic": ROOM})
            start = await reader.request("topic.subscribe", {"topic": ROOM})
            await send_chat(writer, ["before"])
            seen = (await chat_frames(reader, 1))[0]["n"]
            await reader.close()

            away = time.monotonic()
            await send_chat(writer, [f"m{k}" for k in range(100)])
            await chat_frames(writer, 101)  # every one was published
            await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - away)))

            reader = await connect(first)
            reply = await reader.request(
                "topic.subscribe", {"topic": ROOM, "since": {"n": seen, "epoch": start["epoch"]}}
            )
            assert (reply["recovered"], reply["epoch"], reply["n"]) == (True, start["epoch"], seen + 100)
            missed = await chat_frames(reader, 100)
            assert [frame["n"] for frame in missed] == list(range(seen + 1, seen + 101))
            assert sorted(frame["p"]["text"] for frame in missed) == sorted(f"m{k}" for k in range(100))
            await send_chat(writer, ["live"])
            live = (await chat_frames(reader, 1))[0]
            assert (live["n"], live["p"]["text"]) == (seen + 101, "live")
            await nothing_more(reader)
        finally:
            await reader.close()
            await writer.close()


async def test_the_history_outlives_the_server_process_that_held_the_socket(tmp_path, layer):
    require_redis()
    env = environment(layer)
    migrate_demo(tmp_path, env)
    with demo_server(tmp_path, env, migrate=False) as second:
        writer = await connect(second)
        try:
            await writer.request("topic.subscribe", {"topic": ROOM})
            with demo_server(tmp_path, env, migrate=False) as first:
                reader = await connect(first)
                start = await reader.request("topic.subscribe", {"topic": ROOM})
                await send_chat(writer, ["before"])
                seen = (await chat_frames(reader, 1))[0]["n"]
            # The process that held the socket is gone; publishing goes on in the other one.
            await reader.wait_closed(timeout=10)
            await send_chat(writer, [f"m{k}" for k in range(20)])
            await chat_frames(writer, 21)
            with demo_server(tmp_path, env, migrate=False) as restarted:
                reader = await connect(restarted)
                reply = await reader.request(
                    "topic.subscribe", {"topic": ROOM, "since": {"n": seen, "epoch": start["epoch"]}}
                )
                assert reply["recovered"] is True
                missed = await chat_frames(reader, 20)
                assert [frame["n"] for frame in missed] == list(range(seen + 1, seen + 21))
                await nothing_more(reader)
                await reader.close()
        finally:
            await writer.close()


async def test_not_recovered_after_the_epoch_changed_or_the_window_passed(tmp_path, layer):
    require_redis()
    env = environment(layer, DEMO_HISTORY_TTL="2")
    migrate_demo(tmp_path, env)
    with demo_server(tmp_path, env, migrate=False) as server:
        writer = await connect(server)
        try:
            start = await writer.request("topic.subscribe", {"topic": ROOM})
            await send_chat(writer, ["one", "two"])
            await chat_frames(writer, 2)
            since = {"n": start["n"], "epoch": start["epoch"]}
            recovered = await writer.request("topic.subscribe", {"topic": ROOM, "since": since})
            assert recovered["recovered"] is True
            await chat_frames(writer, 2)  # the replay (the client would drop them: it has them)

            await asyncio.sleep(2.5)  # the window of 2 s passed: those frames are gone
            late = await writer.request("topic.subscribe", {"topic": ROOM, "since": since})
            assert (late["recovered"], late["epoch"]) == (False, start["epoch"])
            assert [m["text"] for m in late["state"]][-2:] == ["one", "two"]  # the app reloads from it

            client = aioredis.from_url(REDIS_URL)
            try:  # as a flush or an eviction would: the numbering is lost
                keys = [key async for key in client.scan_iter(f"{env['DEMO_REDIS_PREFIX']}:channelbus.h:*")]
                assert keys
                await client.delete(*keys)
            finally:
                await client.aclose()
            await send_chat(writer, ["three"])
            assert (await chat_frames(writer, 1))[0]["n"] == 1  # a new numbering
            since = {"n": late["n"], "epoch": start["epoch"]}
            changed = await writer.request("topic.subscribe", {"topic": ROOM, "since": since})
            assert changed["recovered"] is False
            assert changed["epoch"] != start["epoch"]
            assert changed["n"] == 1
            with contextlib.suppress(TimeoutError):
                await writer.receive("chat.message", timeout=0.3)
        finally:
            await writer.close()
