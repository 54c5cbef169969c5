"""The hub (channelbus.transport.hub): membership, local delivery, the serving hub, layer events.

Runs with the in-memory layer of the test settings (in-process delivery) or with no layer; the
Redis path is covered by ``tests/system/test_redis.py``, except a Redis that goes down, restarts
empty or is flushed: the tests at the end run a redis-server of their own for that.
"""

import asyncio
import contextlib
import hashlib
import logging
import threading
from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis
from channels.layers import InMemoryChannelLayer, channel_layers
from django.test import override_settings

from channelbus.protocol import CloseCode
from channelbus.transport import hub as hub_module
from channelbus.transport.addresses import make_address
from channelbus.transport.hub import (
    CLOSE_EVENT,
    DIRECT_EVENT,
    RECHECK_EVENT,
    RECHECK_FOLLOWED_EVENT,
    TOPIC_EVENT,
    Hub,
    get_hub,
    group_name,
)
from channelbus.transport.layer_health import DeliveryFailed, keeps_groups_in_redis, sentinel_key
from channelbus.transport.raw_frames import text_frame
from tests.redis_support import OwnRedis, layer_settings
from tests.waiting import wait_for


class FakeEndpoint:
    """An :class:`~channelbus.transport.hub.Endpoint` that records what the hub asks of it."""

    def __init__(self, connection_id, *, closed=False, raw=None, sending=0):
        self.connection_id = connection_id
        self.topics = set()
        self.closed = closed
        self.sending = sending
        self.raw = raw
        self.offered = []
        self.closes = []
        self.rechecks = []
        self.threads = []

    def offer(self, text, volatile=False):
        self.threads.append(threading.get_ident())
        self.offered.append((text, volatile) if volatile else text)

    async def close(self, code, reason=""):
        self.closes.append((code, reason))

    async def recheck_access(self, topic):
        self.rechecks.append(topic)

    def __repr__(self):
        return f"<FakeEndpoint {self.connection_id}>"


class FakeTransport:
    def __init__(self):
        self.written = []

    def write(self, data):
        self.written.append(data)

    def is_closing(self):
        return False


def fake_raw():
    """What ``deliver`` reads of a :class:`~.raw_frames.RawSocket` that may take a frame now."""
    writable = asyncio.Event()
    writable.set()
    return SimpleNamespace(
        writable=writable, conn=SimpleNamespace(state="OPEN"), open="OPEN", transport=FakeTransport()
    )


@pytest.fixture(autouse=True)
def no_serving_hub(monkeypatch):
    """No hub of an earlier test is the one that serves sockets; restored afterwards."""
    monkeypatch.setattr(hub_module, "_serving", None)


@pytest.fixture
async def hub():
    hub = Hub(asyncio.get_running_loop())
    await hub.start()
    yield hub
    await hub.stop()


def attached(hub, *ids):
    """New endpoints, attached to ``hub``."""
    endpoints = [FakeEndpoint(i) for i in ids]
    for endpoint in endpoints:
        hub.attach(endpoint)
    return endpoints


# ------------------------------------------------------------------------------ layer choice


async def test_the_in_memory_layer_means_in_process_delivery(hub):
    assert hub.layer is None
    assert hub.cross_process is False
    assert hub.channel == "local"
    assert hub._reader is None  # nothing to read
    assert hub_module._serving is hub


async def test_no_layer_at_all_means_in_process_delivery():
    with override_settings(CHANNEL_LAYERS={}):
        hub = Hub(asyncio.get_running_loop())
        hub.pick_layer()
    assert hub.layer is None
    assert hub.cross_process is False
    assert hub.channel == "local"


async def test_get_hub_is_one_hub_per_loop():
    first = get_hub()
    assert get_hub() is first
    assert first.loop is asyncio.get_running_loop()


# ------------------------------------------------------------------------------ membership


async def test_attach_gives_a_local_address(hub):
    endpoint = FakeEndpoint("abc")
    assert hub.attach(endpoint) == "local|abc"
    assert hub.connections == {"abc": endpoint}
    assert hub.address(endpoint) == "local|abc"


async def test_join_and_leave(hub):
    a, b = attached(hub, "a", "b")
    await hub.join(a, "t:1")
    await hub.join(b, "t:1")
    await hub.join(a, "t:2")
    await hub.join(a, "t:2")  # twice: still one membership
    assert hub.members == {"t:1": {a, b}, "t:2": {a}}
    assert a.topics == {"t:1", "t:2"}
    assert b.topics == {"t:1"}
    await hub.leave(a, "t:2")
    assert "t:2" not in hub.members  # its last follower left
    assert a.topics == {"t:1"}
    await hub.leave(a, "t:1")
    assert hub.members == {"t:1": {b}}
    await hub.leave(a, "never:joined")  # nothing to do
    assert hub.members == {"t:1": {b}}
    assert a.topics == set()


async def test_detach_forgets_the_connection_and_its_memberships(hub):
    a, b = attached(hub, "a", "b")
    for topic in ("t:1", "t:2"):
        await hub.join(a, topic)
    await hub.join(b, "t:1")
    await hub.detach(a)
    assert hub.connections == {"b": b}
    assert hub.members == {"t:1": {b}}
    assert a.topics == set()


# ------------------------------------------------------------------------------ delivery


async def test_deliver_offers_every_follower_the_same_text_and_skips_excluded_and_closed(hub):
    a, b, c = attached(hub, "a", "b", "c")
    closed = FakeEndpoint("closed", closed=True)
    hub.attach(closed)
    for endpoint in (a, b, c, closed):
        await hub.join(endpoint, "t:1")
    await hub.deliver("t:1", '{"t":"x"}', exclude=hub.address(b))
    assert a.offered == c.offered == ['{"t":"x"}']
    assert a.offered[0] is c.offered[0]  # encoded once for all followers
    assert b.offered == []
    assert closed.offered == []
    assert hub.asgi_frames == 2
    assert hub.raw_frames == 0


async def test_deliver_to_a_topic_nobody_follows_does_nothing(hub):
    (a,) = attached(hub, "a")
    await hub.join(a, "t:1")
    await hub.deliver("t:other", "x")
    assert a.offered == []
    assert hub.asgi_frames == 0


async def test_deliver_writes_one_prebuilt_frame_to_raw_sockets_not_busy_sending(hub):
    raw_a, raw_b, raw_busy = fake_raw(), fake_raw(), fake_raw()
    a, b = FakeEndpoint("a", raw=raw_a), FakeEndpoint("b", raw=raw_b)
    busy = FakeEndpoint("busy", raw=raw_busy, sending=1)  # a send of its own in progress
    paused = FakeEndpoint("paused", raw=fake_raw())
    paused.raw.writable.clear()  # flow control
    for endpoint in (a, b, busy, paused):
        hub.attach(endpoint)
        await hub.join(endpoint, "t:1")
    await hub.deliver("t:1", "hello")
    assert raw_a.transport.written == raw_b.transport.written == [text_frame("hello")]
    assert raw_a.transport.written[0] is raw_b.transport.written[0]  # framed once
    assert a.offered == b.offered == []
    assert raw_busy.transport.written == []
    assert paused.raw.transport.written == []
    assert busy.offered == paused.offered == ["hello"]
    assert hub.raw_frames == 2
    assert hub.asgi_frames == 2


async def test_send_to_topic_delivers_locally_without_a_shared_layer(hub):
    a, b = attached(hub, "a", "b")
    for endpoint in (a, b):
        await hub.join(endpoint, "t:1")
    await hub.send_to_topic("t:1", '{"t":"x"}', exclude=hub.address(a))
    assert a.offered == []
    epoch = hub.history.logs["t:1"].epoch
    assert b.offered == [f'{{"t":"x","n":1,"e":"{epoch}"}}']


async def test_send_to_address_reaches_a_local_connection(hub):
    a, b = attached(hub, "a", "b")
    await hub.send_to_address(hub.address(a), "for a")
    assert a.offered == ["for a"]
    assert b.offered == []
    await hub.send_to_address("local|gone", "for nobody")  # a connection that has gone: nothing
    assert a.offered == ["for a"]
    assert b.offered == []


async def test_without_a_shared_layer_any_channel_is_this_process(hub):
    (a,) = attached(hub, "a")
    await hub.send_to_address("channelbus.hub.elsewhere!x|a", "x")
    assert a.offered == ["x"]


async def test_close_connection_closes_a_local_connection(hub):
    a, b = attached(hub, "a", "b")
    await hub.close_connection(hub.address(a), CloseCode.FORBIDDEN, "access revoked")
    assert a.closes == [(4403, "access revoked")]
    assert b.closes == []
    await hub.close_connection("local|gone", 4403, "")
    assert a.closes == [(4403, "access revoked")]


async def test_recheck_asks_each_local_follower(hub):
    a, b, c = attached(hub, "a", "b", "c")
    for endpoint in (a, b):
        await hub.join(endpoint, "t:1")
    await hub.join(c, "t:2")
    await hub.recheck("t:1")
    assert a.rechecks == b.rechecks == ["t:1"]
    assert c.rechecks == []
    await hub.recheck_local("t:2")
    assert c.rechecks == ["t:2"]
    await hub.recheck_local("t:none")
    assert a.rechecks == b.rechecks == ["t:1"]
    assert c.rechecks == ["t:2"]


async def test_recheck_followed_asks_each_follower_about_each_topic_it_follows(hub):
    a, b, c = attached(hub, "a", "b", "c")
    for endpoint, topics in ((a, ("user:1", "t:1", "t:2")), (b, ("user:1", "t:3")), (c, ("user:2", "t:1"))):
        for topic in topics:
            await hub.join(endpoint, topic)
    await hub.recheck_followed("user:1")
    assert a.rechecks == ["t:1", "t:2", "user:1"]
    assert b.rechecks == ["t:3", "user:1"]
    assert c.rechecks == []
    await hub.recheck_followed_local("user:none")
    assert c.rechecks == []


async def test_recheck_followed_skips_what_an_earlier_recheck_left_or_closed(hub):
    (a,) = attached(hub, "a")
    for topic in ("user:1", "t:1", "t:2"):
        await hub.join(a, topic)

    async def recheck_access(topic):
        a.rechecks.append(topic)
        if topic == "t:1":
            await hub.leave(a, "t:2")  # what a topic.left of another recheck did meanwhile

    a.recheck_access = recheck_access
    await hub.recheck_followed("user:1")
    assert a.rechecks == ["t:1", "user:1"]
    a.closed = True
    await hub.recheck_followed("user:1")
    assert a.rechecks == ["t:1", "user:1"]


async def test_the_recheck_followed_event_runs_in_the_background(hub):
    (a,) = attached(hub, "a")
    await hub.join(a, "user:1")
    await hub.join(a, "t:1")
    await hub._handle({"type": RECHECK_FOLLOWED_EVENT, "topic": "user:1"})
    assert a.rechecks == []  # the layer's reader does not wait for the database checks
    await asyncio.sleep(0)
    assert a.rechecks == ["t:1", "user:1"]


# ------------------------------------------------------------------------------ the serving hub


@pytest.fixture
def other_loop():
    """An event loop running in its own thread (as a server's, when a worker thread sends)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop, thread
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


async def test_serving_hub_is_self_when_no_other_hub_serves():
    hub = Hub(asyncio.get_running_loop())
    assert hub_module._serving is None
    assert hub.serving_hub() is hub
    await hub.start()
    assert hub.serving_hub() is hub


async def test_a_send_on_another_loop_is_made_by_the_serving_hub_on_its_loop(other_loop):
    loop, thread = other_loop
    serving = Hub(loop)
    asyncio.run_coroutine_threadsafe(serving.start(), loop).result(5)
    endpoint = FakeEndpoint("a")
    serving.attach(endpoint)
    here = Hub(asyncio.get_running_loop())  # a worker thread's hub, no sockets
    assert here.serving_hub() is serving
    await here.send_to_address("local|a", "from elsewhere")
    assert endpoint.offered == ["from elsewhere"]
    assert endpoint.threads == [thread.ident]  # sent on the serving hub's loop


async def test_a_stopped_serving_hub_is_not_used(other_loop):
    loop, _ = other_loop
    hub_module._serving = Hub(loop)
    loop.call_soon_threadsafe(loop.stop)
    async with asyncio.timeout(5):
        while loop.is_running():  # noqa: ASYNC110 - stopped by another thread, not an Event
            await asyncio.sleep(0.005)
    here = Hub(asyncio.get_running_loop())
    assert here.serving_hub() is here


# ------------------------------------------------------------------------------ layer events


async def test_handle_routes_the_four_layer_events(hub):
    a, b = attached(hub, "a", "b")
    for endpoint in (a, b):
        await hub.join(endpoint, "t:1")
    await hub._handle({"type": TOPIC_EVENT, "topic": "t:1", "text": "all", "exclude": hub.address(b)})
    assert a.offered == ["all"]
    assert b.offered == []
    await hub._handle({"type": DIRECT_EVENT, "connection": "b", "text": "only b"})
    assert b.offered == ["only b"]
    assert a.offered == ["all"]
    await hub._handle({"type": TOPIC_EVENT, "topic": "t:1", "text": "cursor", "volatile": True})
    await hub._handle({"type": DIRECT_EVENT, "connection": "b", "text": "cursor b", "volatile": True})
    assert a.offered == ["all", ("cursor", True)]
    assert b.offered == ["only b", ("cursor", True), ("cursor b", True)]
    await hub._handle({"type": CLOSE_EVENT, "connection": "a", "code": 4429, "reason": "flood"})
    await hub._handle({"type": CLOSE_EVENT, "connection": "b"})
    await asyncio.sleep(0)  # closes run in the background: the reader never waits for one socket
    assert a.closes == [(4429, "flood")]
    assert b.closes == [(CloseCode.FORBIDDEN, "")]
    await hub._handle({"type": RECHECK_EVENT, "topic": "t:1"})
    assert a.rechecks == b.rechecks == ["t:1"]


async def test_handle_ignores_events_for_connections_that_have_gone(hub):
    (a,) = attached(hub, "a")
    await hub._handle({"type": DIRECT_EVENT, "connection": "gone", "text": "x"})
    await hub._handle({"type": CLOSE_EVENT, "connection": "gone", "code": 4403, "reason": ""})
    assert a.offered == []
    assert a.closes == []


@pytest.mark.parametrize("event", [{"type": "bus.unknown"}, {"no": "type"}, "bus.publish", None])
async def test_handle_ignores_unknown_events_with_a_warning(hub, caplog, event):
    (a,) = attached(hub, "a")
    await hub.join(a, "t:1")
    with caplog.at_level(logging.WARNING, logger="channelbus"):
        await hub._handle(event)
    records = [r for r in caplog.records if r.name == "channelbus"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].getMessage() == f"channelbus: ignored unknown channel-layer message {event!r}"
    assert a.offered == a.closes == a.rechecks == []


# ------------------------------------------------------------------------------ group names


def test_group_name_is_stable():
    expected = "channelbus.t." + hashlib.blake2b(b"test.room:lobby", digest_size=16).hexdigest()
    assert group_name("test.room:lobby") == expected
    assert group_name("test.room:lobby") == group_name("test.room:lobby")
    assert group_name("test.room:lobby") != group_name("test.room:lobbY")


@pytest.mark.parametrize(
    "topic", ["broadcast", "user:1", "chat.room:lobby", "x" * 200, "ünïcode:ключ", "a b|c!d?e", ""]
)
def test_group_name_is_valid_for_every_layer(topic):
    name = group_name(topic)
    assert InMemoryChannelLayer().require_valid_group_name(name) is True
    assert len(name) < 100  # channels' limit, which channels_redis shares


# ------------------------------------------------------------------------------ closing a topic's followers


class RecordingLayer:
    """A shared channel layer that records what the hub sends to groups."""

    def __init__(self):
        self.group_sends = []

    async def group_send(self, group, event):
        self.group_sends.append((group, event))


async def test_close_topic_closes_each_local_follower_in_the_background(hub):
    a, b, c = attached(hub, "a", "b", "c")
    for endpoint in (a, b):
        await hub.join(endpoint, "user:1")
    await hub.join(c, "user:2")
    await hub.close_topic("user:1", CloseCode.NOT_SIGNED_IN, "Password changed.")
    await asyncio.sleep(0)  # the closes run as tasks: no socket is waited for
    assert a.closes == b.closes == [(4401, "Password changed.")]
    assert c.closes == []
    await hub.close_topic("user:nobody", 4401, "")
    await asyncio.sleep(0)
    assert c.closes == []


async def test_close_topic_with_a_shared_layer_is_one_group_send_handled_by_each_hub(hub):
    from channelbus.transport.hub import CLOSE_TOPIC_EVENT

    (a,) = attached(hub, "a")
    await hub.join(a, "user:1")
    layer = hub.layer = RecordingLayer()
    await hub.close_topic("user:1", 4401, "Signed out.")
    event = {"type": CLOSE_TOPIC_EVENT, "topic": "user:1", "code": 4401, "reason": "Signed out."}
    assert layer.group_sends == [(group_name("user:1"), event)]
    await asyncio.sleep(0)
    assert a.closes == []  # the reader of each process's hub closes its own followers
    await hub._handle(event)
    await asyncio.sleep(0)
    assert a.closes == [(4401, "Signed out.")]
    hub.layer = None


# ---------------------------------------------------------------------- Redis down, restarted, flushed
# Each test runs a redis-server of its own (tests/redis_support.py OwnRedis) that it kills and restarts.

redis_layers = pytest.mark.parametrize("layer", ["redis", "redis-pubsub"])


@pytest.fixture
def own_redis():
    redis = OwnRedis()
    redis.start()
    yield redis
    redis.kill()


@pytest.fixture
async def redis_hub(own_redis, layer):
    """A started hub on ``layer`` (``redis`` or ``redis-pubsub``) over ``own_redis``."""
    with override_settings(CHANNEL_LAYERS=layer_settings(layer, own_redis.url)):
        hub = Hub(asyncio.get_running_loop())
        await hub.start()
        yield hub
        await hub.stop()


def layer_failures(caplog):
    return [r for r in caplog.records if "the channel layer cannot be reached" in r.getMessage()]


@redis_layers
async def test_while_redis_is_down_every_layer_call_raises_delivery_failed_and_the_outage_is_logged_once(
    redis_hub, own_redis, caplog
):
    (a,) = attached(redis_hub, "a")
    await redis_hub.join(a, "room")
    own_redis.kill()
    with caplog.at_level(logging.INFO, logger="channelbus"):
        for n in range(3):
            with pytest.raises(DeliveryFailed) as failed:
                await redis_hub.send_to_topic("room", f"frame {n}")
            assert failed.value.__cause__ is not None  # the layer's own exception, for the log
            assert failed.value.type == "error.unavailable"
        with pytest.raises(DeliveryFailed):
            await redis_hub.send_to_address(make_address("channelbus.hub.elsewhere!x", "c1"), "frame")
        if keeps_groups_in_redis(redis_hub.layer):
            with pytest.raises(DeliveryFailed):
                await redis_hub.join(a, "another room")
            assert "another room" not in redis_hub.members
            assert "another room" not in a.topics
        else:  # redis-py's pub/sub writes SUBSCRIBE without waiting, and subscribes again on reconnect;
            # if its connection is being torn down right then (a busy machine), the write fails instead
            with contextlib.suppress(DeliveryFailed):
                await redis_hub.join(a, "another room")
        await redis_hub.leave(a, "room")  # logged, not raised: the group expires by itself
    assert redis_hub.health.down
    assert len(layer_failures(caplog)) == 1, caplog.text
    assert a.offered == []


@redis_layers
async def test_delivery_resumes_within_seconds_after_redis_restarts_empty(redis_hub, own_redis, caplog):
    (a,) = attached(redis_hub, "a")
    await redis_hub.join(a, "room")
    other = channel_layers.make_backend("default")  # another process publishing through the same Redis

    async def publish_from_elsewhere(text):
        await other.group_send(group_name("room"), {"type": TOPIC_EVENT, "topic": "room", "text": text})

    await publish_from_elsewhere("before")
    await wait_for(lambda: a.offered == ["before"], timeout=5)
    with caplog.at_level(logging.INFO, logger="channelbus"):
        own_redis.kill()
        await wait_for(lambda: redis_hub.health.down, timeout=5, what="the hub saw the outage")
        own_redis.start()  # empty: no group, no sentinel
        started = asyncio.get_running_loop().time()

        async def delivered_again():
            with contextlib.suppress(Exception):  # a publisher's own stale connection may fail once
                await publish_from_elsewhere("after")
            return "after" in a.offered

        await wait_for(delivered_again, timeout=10, interval=0.1, what="a publish reached the hub again")
        assert asyncio.get_running_loop().time() - started < 10
        await wait_for(lambda: not redis_hub.health.down, timeout=5)
        await redis_hub.send_to_topic("room", '{"t":"inside"}')  # through Redis to this process too
        await wait_for(lambda: any(text.startswith('{"t":"inside","n":') for text in a.offered), timeout=5)
    messages = [r.getMessage() for r in caplog.records if r.name == "channelbus"]
    assert len(layer_failures(caplog)) == 1, messages
    assert any(m.startswith("channelbus: the channel layer answers again") for m in messages), messages
    if keeps_groups_in_redis(redis_hub.layer):
        assert any("lost this process's 1 group memberships" in m for m in messages), messages
    if hasattr(other, "close_pools"):
        await other.close_pools()
    else:
        await other.flush()


@pytest.mark.parametrize("layer", ["redis"])
@override_settings(CHANNELBUS={"LAYER_CHECK_INTERVAL": 0})  # no check of its own meanwhile
async def test_a_flushed_redis_is_found_by_the_next_check_and_every_group_added_again(
    redis_hub, own_redis, caplog
):
    endpoints = attached(redis_hub, "a", "b")
    for n, endpoint in enumerate(endpoints):
        await redis_hub.join(endpoint, f"room {n}")
    redis = aioredis.from_url(own_redis.url)
    prefix = redis_hub.layer.prefix
    try:
        await redis.flushall()  # no restart, no failed call: only the sentinel tells
        with caplog.at_level(logging.INFO, logger="channelbus"):
            await redis_hub.check_layer()
        for n in range(2):
            members = await redis.zrange(f"{prefix}:group:{group_name(f'room {n}')}", 0, -1)
            assert members == [redis_hub.channel.encode()]
        assert await redis.exists(sentinel_key(redis_hub.layer, redis_hub.channel))
    finally:
        await redis.aclose()
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "channelbus"]
    assert len(messages) == 2, messages
    assert messages[0][0] == "WARNING"
    assert "lost this process's 2 group memberships" in messages[0][1]
    assert messages[1][0] == "INFO"
    assert messages[1][1].startswith("channelbus: the channel layer answers again (2 groups added again)")


@pytest.mark.parametrize("layer", ["redis-pubsub"])
async def test_the_check_of_the_pubsub_layer_is_a_message_to_itself_that_the_reader_drops(redis_hub, caplog):
    (a,) = attached(redis_hub, "a")
    await redis_hub.join(a, "room")
    received = []
    handle = redis_hub._handle

    async def recording_handle(event):
        received.append(event)
        await handle(event)

    redis_hub._handle = recording_handle
    with caplog.at_level(logging.INFO, logger="channelbus"):
        await redis_hub.check_layer()
        await redis_hub.send_to_topic("room", '{"t":"after.probe"}')  # the reader went past the probe
        await wait_for(lambda: len(a.offered) == 1, timeout=5)
        assert a.offered[0].startswith('{"t":"after.probe","n":')
    assert [e["type"] for e in received] == [TOPIC_EVENT]
    assert [r for r in caplog.records if r.name == "channelbus"] == []


async def test_a_full_channel_of_another_process_is_a_delivery_failure_but_no_outage(own_redis, caplog):
    settings = layer_settings("redis", own_redis.url)
    settings["default"]["CONFIG"]["capacity"] = 1
    with override_settings(CHANNEL_LAYERS=settings):
        hub = Hub(asyncio.get_running_loop())
        await hub.start()
        try:
            address = make_address("channelbus.hub.elsewhere!x", "c1")  # a process that reads nothing
            with caplog.at_level(logging.INFO, logger="channelbus"):
                await hub.send_to_address(address, "one")
                with pytest.raises(DeliveryFailed) as failed:
                    await hub.send_to_address(address, "two")
            assert failed.value.msg == "The receiving server is too busy; try again shortly."
            assert type(failed.value.__cause__).__name__ == "ChannelFull"
            assert not hub.health.down
            assert [r for r in caplog.records if r.name == "channelbus"] == []
        finally:
            await hub.stop()


@pytest.mark.parametrize("layer", ["redis"])
@override_settings(CHANNELBUS={"LAYER_CHECK_INTERVAL": 0})
async def test_without_checks_the_next_call_that_goes_through_ends_the_outage(redis_hub, own_redis, caplog):
    (a,) = attached(redis_hub, "a")
    own_redis.kill()
    with caplog.at_level(logging.INFO, logger="channelbus"):
        with pytest.raises(DeliveryFailed):
            await redis_hub.join(a, "room")
        own_redis.start()
        for _ in range(3):  # a connection of the pool made before the restart fails once
            with contextlib.suppress(DeliveryFailed):
                await redis_hub.join(a, "room")
            if "room" in redis_hub.members:
                break
    assert "room" in redis_hub.members
    assert not redis_hub.health.down
    messages = [r.getMessage() for r in caplog.records if r.name == "channelbus"]
    assert messages[0].startswith("channelbus: the channel layer cannot be reached"), messages
    assert messages[-1].startswith("channelbus: the channel layer answers again; delivery resumed"), messages
