"""Publishing (channelbus.publishing.api): publish, apublish, hold_publishes, Published and captures."""

import dataclasses
import logging

import pytest
from channels.db import database_sync_to_async
from django.db import transaction
from django.test import override_settings

from channelbus.publishing import api
from channelbus.publishing.api import Published, apublish, hold_publishes, message_frame, publish
from channelbus.testing import RequestFailed, capture_published
from channelbus.transport import DeliveryFailed, get_hub
from tests.redis_support import OwnRedis, layer_settings
from tests.testapp.messages import Greet

pytestmark = pytest.mark.django_db(transaction=True)

ROOM = "test.room:api"


def address_of(user):
    """The address of ``user``'s one connection in this test."""
    return next(c.channel_name for c in get_hub().connections.values() if c.user.pk == user.pk)


async def subscribed(bus_client, user):
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": ROOM})
    return client


async def test_apublish_to_a_topic(bus_client, user):
    client = await subscribed(bus_client, user)
    await apublish(Greet(text="hi"), to=ROOM)
    frame = await client.receive()
    assert len(frame.pop("e")) == 8  # the first frame of the topic's numbering names its epoch
    assert frame == {"t": "test.greeting", "p": {"text": "hi"}, "c": ROOM, "n": 1}
    await client.assert_nothing_received()


async def test_apublish_to_an_address_has_no_topic(bus_client, user):
    client = await bus_client(user=user)
    await apublish(Greet(text="just you"), to=address_of(user))
    assert await client.receive() == {"t": "test.greeting", "p": {"text": "just you"}}


async def test_apublish_to_several_targets_and_exclude(bus_client, user):
    client = await subscribed(bus_client, user)
    address = address_of(user)
    await apublish(Greet(text="both"), to=[ROOM, "broadcast"])
    assert [(await client.receive())["c"] for _ in range(2)] == [ROOM, "broadcast"]
    await apublish(Greet(text="not to me"), to=[ROOM, address], exclude=address)
    await client.assert_nothing_received()


def publish_in_transaction(text, *, fail):
    """Publish inside a transaction; returns (captured before the commit, captured after it)."""
    with capture_published() as sent:
        try:
            with transaction.atomic():
                publish(Greet(text=text), to=ROOM)
                before = len(sent)
                if fail:
                    raise RuntimeError("roll back")
        except RuntimeError:
            pass
        return before, len(sent)


async def test_publish_waits_for_the_commit(bus_client, user):
    client = await subscribed(bus_client, user)
    before, after = await database_sync_to_async(publish_in_transaction)("committed", fail=False)
    assert (before, after) == (0, 1)
    assert (await client.receive())["p"] == {"text": "committed"}


async def test_publish_is_dropped_on_rollback(bus_client, user):
    client = await subscribed(bus_client, user)
    before, after = await database_sync_to_async(publish_in_transaction)("rolled back", fail=True)
    assert (before, after) == (0, 0)
    await client.assert_nothing_received(0.2)


def publish_outside_a_transaction(address):
    with capture_published() as sent:
        publish(Greet(text="now"), to=address)
        return len(sent)


async def test_publish_outside_a_transaction_sends_at_once(bus_client, user):
    client = await bus_client(user=user)
    assert await database_sync_to_async(publish_outside_a_transaction)(address_of(user)) == 1
    assert await client.receive() == {"t": "test.greeting", "p": {"text": "now"}}


def publish_bad_target_in_a_transaction():
    with transaction.atomic():
        publish(Greet(text="x"), to="test.rooom:typo")


async def test_publish_refuses_a_bad_target_at_the_call_not_at_the_commit():
    with pytest.raises(ValueError, match=r"no topic kind 'test\.rooom'"):
        await database_sync_to_async(publish_bad_target_in_a_transaction)()


async def test_hold_publishes_collects_instead_of_sending(bus_client, user):
    client = await subscribed(bus_client, user)
    first, second, at_once = Greet(text="held 1"), Greet(text="held 2"), Greet(text="not held")
    with hold_publishes() as held:
        await apublish(first, to=ROOM)
        publish(second, to=[ROOM], exclude="local|x")  # sync code on the loop, on_commit by default
        publish(at_once, to=ROOM, on_commit=False)
        with pytest.raises(ValueError):
            await apublish(first, to="nosuch.kind:1")  # a bad target fails in the caller, even held
    assert held == [(first, ROOM, None), (second, [ROOM], "local|x")]
    assert (await client.receive())["p"] == {"text": "not held"}
    await client.assert_nothing_received()
    await apublish(Greet(text="after"), to=ROOM)  # no longer held
    assert (await client.receive())["p"] == {"text": "after"}


async def test_capture_published_records_what_is_sent(bus_client, user):
    await bus_client(user=user)
    address = address_of(user)
    message = Greet(text="recorded")
    with capture_published() as sent:
        await apublish(message, to=[ROOM, address, user], exclude=address)
        await apublish(Greet(text="second"), to="broadcast")
    await apublish(Greet(text="not recorded"), to="broadcast")
    assert sent == [
        Published(message, [ROOM, f"user:{user.pk}"], [address], address),
        Published(sent[1].message, ["broadcast"], [], None),
    ]
    assert sent[1].message.data.text == "second"
    assert sent not in api.captures


async def test_nested_captures_each_record_their_own_block():
    saved = list(api.captures)
    try:
        with capture_published() as outer:
            with capture_published() as inner:
                await apublish(Greet(text="both"), to="broadcast")
            await apublish(Greet(text="outer only"), to="broadcast")
        assert [p.message.data.text for p in inner] == ["both"]
        assert [p.message.data.text for p in outer] == ["both", "outer only"]
    finally:
        api.captures[:] = saved  # whatever happened, later tests capture into nothing stale


def test_published_is_frozen():
    record = Published(Greet(text="x"), ["broadcast"], [])
    assert record.exclude is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.topics = []


@pytest.mark.parametrize("message", [{"t": "test.greeting"}, "text", None, Greet])
async def test_only_message_instances_are_published(message):
    with pytest.raises(TypeError, match=r"publish\(\) takes a Message instance"):
        publish(message, to="broadcast")
    with pytest.raises(TypeError, match=r"publish\(\) takes a Message instance"):
        await apublish(message, to="broadcast")


def test_message_frame_carries_the_topic():
    message = Greet(text="x")
    assert message_frame(message, message.payload(), ROOM) == (
        '{"t":"test.greeting","p":{"text":"x"},"c":"test.room:api"}'
    )
    assert message_frame(message, message.payload(), None) == '{"t":"test.greeting","p":{"text":"x"}}'


# ------------------------------------------------------------------ a channel layer that cannot be reached
# Redis of the test's own (tests/redis_support.py OwnRedis), killed once the client is connected.

redis_layers = pytest.mark.parametrize("layer", ["redis", "redis-pubsub"])


@pytest.fixture
async def client_then_redis_down(bus_client, user, layer):
    """A connected client following ROOM over a Redis layer; then Redis is killed."""
    redis = OwnRedis()
    redis.start()
    try:
        with override_settings(CHANNEL_LAYERS=layer_settings(layer, redis.url)):
            client = await subscribed(bus_client, user)
            redis.kill()
            yield client
    finally:
        redis.kill()


@redis_layers
async def test_apublish_raises_delivery_failed_when_the_layer_cannot_be_reached(client_then_redis_down):
    with pytest.raises(DeliveryFailed) as failed:
        await apublish(Greet(text="lost?"), to=ROOM)
    assert failed.value.type == "error.unavailable"
    await client_then_redis_down.assert_nothing_received()


@redis_layers
async def test_publish_outside_a_transaction_raises_it_in_the_caller(client_then_redis_down):
    with pytest.raises(DeliveryFailed):
        await database_sync_to_async(publish)(Greet(text="lost?"), to=ROOM)


@redis_layers
async def test_publish_after_a_commit_logs_the_failure_and_the_next_callbacks_still_run(
    client_then_redis_down, caplog
):
    ran = []

    def publish_in_a_transaction():
        with transaction.atomic():
            publish(Greet(text="lost?"), to=ROOM)
            transaction.on_commit(lambda: ran.append("next callback"))
        return "committed"

    with caplog.at_level(logging.ERROR, logger="channelbus"):
        assert await database_sync_to_async(publish_in_a_transaction)() == "committed"
    assert ran == ["next callback"]
    errors = [r for r in caplog.records if r.name == "channelbus" and r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"channelbus: test.greeting to {ROOM} was not sent after its transaction committed"
    ]
    assert isinstance(errors[0].exc_info[1], DeliveryFailed)


@redis_layers
@pytest.mark.parametrize("type_name", ["test.publish_to", "test.sync_publish_to"])
async def test_a_handler_whose_publish_failed_answers_error_unavailable(client_then_redis_down, type_name):
    client = client_then_redis_down
    with pytest.raises(RequestFailed) as failed:
        await client.request(type_name, {"topic": ROOM, "text": "lost?"})
    assert failed.value.frame["t"] == "error.unavailable"
    assert failed.value.frame["p"] == {"msg": DeliveryFailed.default_msg}
    assert failed.value.frame["s"] == "f"
