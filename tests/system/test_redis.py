"""Topics over the real Redis on 127.0.0.1:6379, with both channels_redis layers."""

import asyncio
import logging

import pytest
import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer
from django.contrib.auth import get_user_model
from django.test import override_settings

from channelbus.publishing import apublish, arecheck
from channelbus.testing import BusTestClient
from channelbus.transport import get_hub, group_name
from tests.redis_support import REDIS_URL, layer_settings, require_redis
from tests.testapp.messages import Greet
from tests.testapp.models import Note
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.parametrize("layer", ["redis", "redis-pubsub"]),
]


@pytest.fixture
def redis_layer(layer):
    require_redis()
    settings = layer_settings(layer)
    with override_settings(CHANNEL_LAYERS=settings):
        yield settings["default"]["CONFIG"]["prefix"]


async def test_publish_goes_through_redis_once(bus_client, user, redis_layer):
    client = await bus_client(user=user)
    assert get_hub().cross_process
    await client.request("topic.subscribe", {"topic": "test.room:r"})
    for n in range(5):
        await apublish(Greet(text=str(n)), to="test.room:r")
    frames = [await client.receive(timeout=3) for _ in range(5)]
    assert [f["p"]["text"] for f in frames] == ["0", "1", "2", "3", "4"]
    assert all(f["c"] == "test.room:r" for f in frames)
    await client.assert_nothing_received(0.3)


async def test_direct_frames_and_recheck_through_redis(bus_client, user, redis_layer):
    client = await bus_client(user=user)
    address = next(iter(get_hub().connections.values())).channel_name
    assert "channelbus.hub" in address
    await apublish(Greet(text="direct"), to=address)
    assert (await client.receive(timeout=3))["p"] == {"text": "direct"}
    await client.request("topic.subscribe", {"topic": f"user:{user.pk}"})
    await arecheck(f"user:{user.pk}")  # still allowed: nothing happens
    await client.assert_nothing_received(0.3)
    # Access taken away: the recheck goes through the layer and removes the follower.
    bob = await get_user_model().objects.acreate(username="bob-redis")
    note = await Note.objects.acreate(owner=user, text="mine")
    topic = f"testapp.note:{note.pk}"
    await client.request("topic.subscribe", {"topic": topic})
    await Note.objects.filter(pk=note.pk).aupdate(owner=bob)  # no signal: no recheck of the binding's own
    await arecheck(topic)
    left = await client.receive(timeout=3)
    assert left == {"t": "topic.left", "p": {"topic": topic, "reason": f"You may not subscribe to {topic}."}}
    await apublish(Greet(text="after"), to=topic)
    await client.assert_nothing_received(0.3)


async def test_a_socket_quiet_through_empty_layer_reads_still_gets_messages(
    bus_client, user, redis_layer, layer, caplog, monkeypatch
):
    """The hub's reader of the layer comes back empty from its reads on a quiet socket and goes on.

    ``RedisChannelLayer`` reads with a ``BZPOPMIN`` of ``brpop_timeout`` (5 s) seconds, which redis-py 8's
    default ``socket_timeout`` of 5 s breaks (docs/deployment.md); here the read is shortened to 0.25 s and
    the test waits for two reads that found nothing, as two 5 s reads did in 11 s of sleep. The pub/sub
    layer has no long read: it polls every 0.1 s, and the test waits for two empty polls.
    """
    empty_reads = 0
    if layer == "redis":
        monkeypatch.setattr(RedisChannelLayer, "brpop_timeout", 0.25)
        bzpopmin = aioredis.Redis.bzpopmin

        async def counted_bzpopmin(self, keys, timeout=0):
            nonlocal empty_reads
            result = await bzpopmin(self, keys, timeout)
            empty_reads += result is None
            return result

        monkeypatch.setattr(aioredis.Redis, "bzpopmin", counted_bzpopmin)
    else:
        get_message = aioredis.client.PubSub.get_message

        async def counted_get_message(self, *args, **kwargs):
            nonlocal empty_reads
            message = await get_message(self, *args, **kwargs)
            empty_reads += message is None
            return message

        monkeypatch.setattr(aioredis.client.PubSub, "get_message", counted_get_message)
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": "test.room:quiet"})
    with caplog.at_level(logging.WARNING, logger="channelbus"):
        empty_reads = 0
        await wait_for(lambda: empty_reads >= 2, what="two reads of the layer that found nothing")
        await apublish(Greet(text="still here"), to="test.room:quiet")
        assert (await client.receive(timeout=3))["p"] == {"text": "still here"}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_a_thousand_sockets_closing_at_once_leave_nothing_behind(
    user, redis_layer, layer, caplog, settings
):
    settings.CHANNELBUS = {**settings.CHANNELBUS, "MAX_CONNECTIONS_PER_USER": None}  # one user, 1,000 sockets
    clients = [BusTestClient(user=user) for _ in range(1000)]
    await asyncio.gather(*(c.connect() for c in clients))
    await asyncio.gather(
        # Two Redis round trips each (the group, the topic's numbering), 32 at a time: more than the
        # default 3 s on a busy 2-core machine.
        *(
            c.request("topic.subscribe", {"topic": f"test.room:n{n}"}, timeout=20)
            for n, c in enumerate(clients)
        )
    )
    hub = get_hub()
    assert len(hub.members) == 1000 + 2  # 1,000 rooms, the user's topic and broadcast
    with caplog.at_level(logging.WARNING, logger="channelbus"):
        await asyncio.gather(*(c.close() for c in clients))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert hub.members == {}
    assert hub.connections == {}
    if layer == "redis":
        redis = aioredis.from_url(REDIS_URL)
        try:
            groups = [f"{redis_layer}:group:{group_name(f'test.room:n{n}')}" for n in range(1000)]
            assert await redis.exists(*groups) == 0
        finally:
            await redis.aclose()
    else:
        loop_layers = list(hub.layer._layers.values())  # the pub/sub layer keeps its groups in process
        assert loop_layers
        for loop_layer in loop_layers:
            ours = {loop_layer._get_group_channel_name(group_name(f"test.room:n{n}")) for n in range(1000)}
            assert not ours & set(loop_layer.groups)
