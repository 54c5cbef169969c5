"""Layer health (channelbus.transport.layer_health): one log line per outage, the sentinel on real Redis."""

import logging
import uuid

import pytest
import redis.asyncio as aioredis
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from channelbus.protocol import BusError, Unavailable
from channelbus.transport import DeliveryFailed
from channelbus.transport.layer_health import (
    LayerHealth,
    drop_idle_connections,
    keeps_groups_in_redis,
    place_sentinel,
    renew_sentinel,
    sentinel_key,
    sentinel_ttl,
)
from tests.redis_support import REDIS_URL, require_redis


def test_delivery_failed_is_an_unavailable_error_without_internals():
    error = DeliveryFailed()
    assert isinstance(error, Unavailable)
    assert isinstance(error, BusError)
    assert error.type == "error.unavailable"
    assert error.payload() == {"msg": "The server cannot deliver messages right now; try again shortly."}


def test_one_warning_per_outage_and_one_info_when_it_ends(caplog):
    health = LayerHealth()
    with caplog.at_level(logging.INFO, logger="channelbus"):
        health.recovered()  # not down: nothing to say
        for _ in range(3):
            health.failed("RedisChannelLayer.group_send", ConnectionError("Connection refused"))
        assert health.down
        assert health.failed_calls == 3
        health.recovered()
        health.recovered()
    assert not health.down
    assert health.outages == 1
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "channelbus: the channel layer cannot be reached (RedisChannelLayer.group_send: ConnectionError: "
            "Connection refused); publishes fail with DeliveryFailed until it answers again",
        ),
        (
            "INFO",
            caplog.records[1].getMessage(),
        ),
    ]
    assert (
        caplog.records[1]
        .getMessage()
        .startswith("channelbus: the channel layer answers again; delivery resumed")
    )
    assert caplog.records[1].getMessage().endswith("(3 layer calls failed meanwhile)")


def test_lost_groups_is_an_outage_until_recovered(caplog):
    health = LayerHealth()
    with caplog.at_level(logging.INFO, logger="channelbus"):
        health.lost_groups(4)
        assert health.down
        health.failed("check", OSError("gone again"))  # same outage: no second "cannot be reached"
        health.recovered(" (4 groups added again)")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == (
        "channelbus: the channel layer lost this process's 4 group memberships (Redis restarted empty, "
        "or was flushed); adding them again"
    )
    assert len(messages) == 2
    assert messages[1].startswith("channelbus: the channel layer answers again (4 groups added again)")
    assert health.outages == 1


def test_which_layers_keep_groups_in_redis():
    assert keeps_groups_in_redis(RedisChannelLayer(hosts=[REDIS_URL]))
    assert not keeps_groups_in_redis(InMemoryChannelLayer())
    assert not keeps_groups_in_redis(object())


async def test_the_pubsub_layer_keeps_its_groups_in_the_process():
    assert not keeps_groups_in_redis(RedisPubSubChannelLayer(hosts=[REDIS_URL]))


def test_sentinel_ttl_outlives_many_checks():
    assert sentinel_ttl(1.0) == 60
    assert sentinel_ttl(10) == 300


async def test_the_sentinel_on_real_redis():
    require_redis()
    layer = RedisChannelLayer(
        hosts=[{"address": REDIS_URL, "socket_timeout": None}], prefix="cbtest" + uuid.uuid4().hex[:8]
    )
    key = sentinel_key(layer, "channelbus.hub.x!y")
    assert key == f"{layer.prefix}:channelbus.sentinel:channelbus.hub.x!y"
    redis = aioredis.from_url(REDIS_URL)
    try:
        assert not await renew_sentinel(layer, key, 60)  # never placed: "lost"
        await place_sentinel(layer, key, 60)
        assert await renew_sentinel(layer, key, 60)
        assert 0 < await redis.ttl(key) <= 60
        await redis.delete(key)  # what a flush or a restart does
        assert not await renew_sentinel(layer, key, 60)
        await drop_idle_connections(layer)
        await place_sentinel(layer, key, 60)  # new connections are made as needed
        assert await renew_sentinel(layer, key, 60)
    finally:
        await redis.delete(key)
        await redis.aclose()
        await layer.close_pools()


@pytest.mark.parametrize("exc", [ConnectionError("x"), TimeoutError()])
def test_failed_counts_every_kind_of_exception(exc):
    health = LayerHealth()
    health.failed("check", exc)
    assert health.down
