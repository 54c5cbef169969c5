"""RedisHistory against a real Redis: one numbering for every process, recovery, bounds, epochs,
one round trip per publish, and a Redis restart that starts a new epoch."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from channelbus.transport.history_redis import RedisHistory, redis_hosts
from tests.redis_support import REDIS_URL, OwnRedis, require_redis


def frame(text: str) -> str:
    return orjson.dumps({"t": "chat.message", "p": {"text": text}, "c": "room"}).decode()


@pytest.fixture
async def histories():
    """Two RedisHistory on the shared Redis (two server processes), with a prefix of their own."""
    require_redis()
    prefix = f"cbtest{uuid.uuid4().hex[:8]}"
    made = [RedisHistory([{"address": REDIS_URL}], prefix) for _ in range(2)]
    yield made
    client = aioredis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    for history in made:
        await history.close()


async def test_two_processes_share_one_numbering_and_one_history(histories):
    first, second = histories
    start = await first.read("room", None, 120, 1000)
    assert (start.n, start.recovered) == (0, None)
    numbers = []
    for k in range(6):
        history = histories[k % 2]
        n, text = await history.append("room", frame(str(k)), 100, 120)
        first = {"e": start.epoch} if n == 1 else {}  # the first frame of a numbering names its epoch
        assert orjson.loads(text) == {**orjson.loads(frame(str(k))), "n": n, **first}
        numbers.append(n)
    assert numbers == [1, 2, 3, 4, 5, 6]
    recovery = await second.read("room", (2, start.epoch), 120, 1000)
    assert (recovery.n, recovery.epoch, recovery.recovered) == (6, start.epoch, True)
    assert [orjson.loads(text)["p"]["text"] for text in recovery.frames] == ["2", "3", "4", "5"]
    assert [orjson.loads(text)["n"] for text in recovery.frames] == [3, 4, 5, 6]


async def test_concurrent_publishes_get_distinct_contiguous_numbers(histories):
    first, second = histories
    results = await asyncio.gather(
        *(histories[k % 2].append("room", frame(str(k)), 100, 120) for k in range(40))
    )
    assert sorted(n for n, _ in results) == list(range(1, 41))
    epoch = (await first.read("room", None, 120, 1000)).epoch
    recovery = await second.read("room", (0, epoch), 120, 1000)
    assert [orjson.loads(text)["n"] for text in recovery.frames] == list(range(1, 41))


async def test_the_history_keeps_its_last_size_frames_and_older_gaps_are_not_recovered(histories):
    first, _ = histories
    for k in range(10):
        await first.append("room", frame(str(k)), 4, 120)
    epoch = (await first.read("room", None, 120, 1000)).epoch
    assert (await first.read("room", (6, epoch), 120, 1000)).recovered is True
    assert (await first.read("room", (5, epoch), 120, 1000)).recovered is False
    assert (await first.read("room", (10, epoch), 120, 1000)).frames == ()
    assert (await first.read("room", (11, epoch), 120, 1000)).recovered is False
    assert (await first.read("room", (8, "another"), 120, 1000)).recovered is False
    assert (await first.read("room", (6, epoch), 120, 3)).recovered is False  # 4 frames > the limit of 3


async def test_without_history_only_an_exact_position_is_recovered(histories):
    first, _ = histories
    for k in range(3):
        await first.append("room", frame(str(k)), 0, 120)
    epoch = (await first.read("room", None, 120, 1000)).epoch
    assert (await first.read("room", (3, epoch), 120, 1000)).recovered is True
    assert (await first.read("room", (2, epoch), 120, 1000)).recovered is False


async def test_frames_older_than_the_ttl_are_not_replayed(histories):
    first, _ = histories
    await first.append("room", frame("old"), 100, 0.3)
    epoch = (await first.read("room", None, 0.3, 1000)).epoch
    assert (await first.read("room", (0, epoch), 0.3, 1000)).recovered is True
    await asyncio.sleep(0.5)
    assert (await first.read("room", (0, epoch), 0.3, 1000)).recovered is False


async def test_lost_keys_start_a_new_numbering_with_a_new_epoch(histories):
    first, second = histories
    for k in range(3):
        await first.append("room", frame(str(k)), 100, 120)
    old = (await first.read("room", None, 120, 1000)).epoch
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.delete(*first._place("room")[1])  # as an eviction or a flush would
    finally:
        await client.aclose()
    n, text = await second.append("room", frame("after"), 100, 120)
    assert n == 1
    recovery = await first.read("room", (3, old), 120, 1000)
    assert (recovery.recovered, recovery.n) == (False, 1)
    assert recovery.epoch != old
    assert orjson.loads(text)["e"] == recovery.epoch  # connected clients learn of the new numbering


async def test_a_publish_is_one_round_trip_and_a_restart_is_survived_with_a_new_epoch():
    own = OwnRedis()
    own.start()
    history = RedisHistory([{"address": own.url}], "cbtest")
    client = aioredis.from_url(own.url)
    try:
        await history.append("room", frame("first"), 100, 120)  # loads the script
        sent = []
        real = history.clients[0].execute_command

        async def counting(*args, **options):
            sent.append(args[0])
            return await real(*args, **options)

        history.clients[0].execute_command = counting
        for k in range(20):
            await history.append("room", frame(str(k)), 100, 120)
        assert sent == ["EVALSHA"] * 20  # one command, one round trip, per publish
        del history.clients[0].execute_command
        epoch = (await history.read("room", None, 120, 1000)).epoch
        own.kill()
        own.start()  # empty: the numbering is gone, the next publish starts another
        n, _ = await history.append("room", frame("after the restart"), 100, 120)
        assert n == 1
        recovery = await history.read("room", (21, epoch), 120, 1000)
        assert recovery.recovered is False
        assert recovery.epoch != epoch
    finally:
        await client.aclose()
        await history.close()
        own.kill()


async def test_redis_hosts_reads_both_channels_redis_layers():
    hosts = [{"address": REDIS_URL}]
    assert redis_hosts(RedisChannelLayer(hosts=hosts)) == hosts
    assert redis_hosts(RedisPubSubChannelLayer(hosts=hosts)) == hosts
    assert redis_hosts(object()) is None
