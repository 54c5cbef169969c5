"""Resubscribing with ``since``: the missed frames, in order, once, before live ones; or recovered: false."""

from __future__ import annotations

import asyncio

import pytest
from django.test import override_settings

from channelbus import apublish
from channelbus.client import RequestFailed
from channelbus.messages import Message, outgoing
from tests.testapp.messages import Greet

pytestmark = pytest.mark.django_db(transaction=True)

LOG = "test.log:recover"


@outgoing.register
class Cursor(Message):
    """A volatile frame: not numbered, never in a history."""

    name = "test.recovery_cursor"
    volatile = True


async def subscribe(client, topic=LOG, since=None):
    payload = {"topic": topic} if since is None else {"topic": topic, "since": since}
    return await client.request("topic.subscribe", payload)


async def numbers(client, count):
    frames = [await client.receive("test.greeting") for _ in range(count)]
    assert all(frame["c"] == LOG for frame in frames)
    return [frame["n"] for frame in frames]


async def test_a_resubscribe_with_since_gets_exactly_the_missed_frames_then_live_ones(bus_client, user):
    client = await bus_client(user=user)
    first = await subscribe(client)
    assert first["n"] == 0
    assert "recovered" not in first
    for k in range(5):
        await apublish(Greet(text=str(k)), to=LOG)
    assert await numbers(client, 5) == [1, 2, 3, 4, 5]
    await client.close()

    for k in range(5, 105):  # published while the client was away
        await apublish(Greet(text=str(k)), to=LOG)
    again = await bus_client(user=user)
    reply = await subscribe(again, since={"n": 5, "epoch": first["epoch"]})
    assert (reply["recovered"], reply["n"], reply["epoch"]) == (True, 105, first["epoch"])
    missed = [await again.receive("test.greeting") for _ in range(100)]
    assert [frame["n"] for frame in missed] == list(range(6, 106))
    assert [frame["p"]["text"] for frame in missed] == [str(k) for k in range(5, 105)]
    await apublish(Greet(text="live"), to=LOG)
    live = await again.receive("test.greeting")
    assert (live["n"], live["p"]["text"]) == (106, "live")
    await again.assert_nothing_received()


async def test_publishes_racing_with_the_resubscribe_arrive_once_in_order(bus_client, user):
    client = await bus_client(user=user)
    epoch = (await subscribe(client))["epoch"]
    await client.close()
    for k in range(20):
        await apublish(Greet(text=str(k)), to=LOG)

    async def publish_more():
        for k in range(20, 220):
            await apublish(Greet(text=str(k)), to=LOG)
            if k % 7 == 0:
                await asyncio.sleep(0)

    again = await bus_client(user=user)
    publisher = asyncio.ensure_future(publish_more())
    reply = await subscribe(again, since={"n": 10, "epoch": epoch})
    await publisher
    assert reply["recovered"] is True
    assert await numbers(again, 210) == list(range(11, 221))
    await again.assert_nothing_received()


async def test_a_resubscribe_on_the_same_connection_replays_after_its_reply(bus_client, user):
    client = await bus_client(user=user)
    epoch = (await subscribe(client))["epoch"]
    for k in range(3):
        await apublish(Greet(text=str(k)), to=LOG)
    assert await numbers(client, 3) == [1, 2, 3]
    reply = await subscribe(client, since={"n": 1, "epoch": epoch})
    assert (reply["recovered"], reply["n"]) == (True, 3)
    assert await numbers(client, 2) == [2, 3]  # the client drops those it has (they carry n)


@pytest.mark.parametrize(
    ("since", "why"),
    [
        ({"n": 2, "epoch": "deadbeef"}, "another epoch"),
        ({"n": 99, "epoch": None}, "ahead of the topic"),
        ({"n": 2**53 - 1, "epoch": None}, "the largest n accepted, far ahead"),
    ],
)
async def test_what_cannot_be_recovered_says_so_with_the_initial_state(bus_client, user, since, why):
    client = await bus_client(user=user)
    epoch = (await subscribe(client))["epoch"]
    for k in range(3):
        await apublish(Greet(text=str(k)), to=LOG)
    await client.close()
    again = await bus_client(user=user)
    reply = await subscribe(again, since={"n": since["n"], "epoch": since["epoch"] or epoch})
    assert reply == {"topic": LOG, "state": "fresh", "n": 3, "epoch": epoch, "recovered": False}, why
    await again.assert_nothing_received()  # no missed frame follows: the app reloads from the state
    await apublish(Greet(text="live"), to=LOG)
    assert (await again.receive("test.greeting"))["n"] == 4


async def test_a_gap_older_than_the_history_or_longer_than_the_replay_limit_is_not_recovered(
    bus_client, user
):
    client = await bus_client(user=user)
    epoch = (await subscribe(client, "test.room:plain"))["epoch"]  # test.room keeps no history
    await apublish(Greet(text="x"), to="test.room:plain")
    await client.receive("test.greeting")
    reply = await subscribe(client, "test.room:plain", since={"n": 0, "epoch": epoch})
    assert reply["recovered"] is False
    reply = await subscribe(client, "test.room:plain", since={"n": 1, "epoch": epoch})
    assert reply["recovered"] is True  # nothing missed: recovered without history

    log_epoch = (await subscribe(client))["epoch"]
    for k in range(30):
        await apublish(Greet(text=str(k)), to=LOG)
    await numbers(client, 30)
    with override_settings(CHANNELBUS={"RECOVERY_MAX_FRAMES": 20}):
        assert (await subscribe(client, since={"n": 9, "epoch": log_epoch}))["recovered"] is False
        assert (await subscribe(client, since={"n": 10, "epoch": log_epoch}))["recovered"] is True
    assert await numbers(client, 20) == list(range(11, 31))


@pytest.mark.parametrize(
    "since",
    [
        {"n": -1, "epoch": "abc"},
        {"n": "5", "epoch": "abc"},
        {"n": True, "epoch": "abc"},
        {"n": 2**53, "epoch": "abc"},
        {"n": 1.5, "epoch": "abc"},
        {"n": 1},
        {"n": 1, "epoch": ""},
        {"n": 1, "epoch": "x" * 65},
        {"n": 1, "epoch": "abc", "extra": 1},
        [1, "abc"],
        "1:abc",
    ],
)
async def test_a_since_of_the_wrong_shape_is_a_validation_error_and_subscribes_nothing(
    bus_client, user, since
):
    client = await bus_client(user=user)
    with pytest.raises(RequestFailed) as failed:
        await subscribe(client, since=since)
    assert failed.value.type == "error.validation"
    assert LOG not in (await client.request("topic.list"))["topics"]


async def test_a_replay_is_counted_against_no_outbox_limit(bus_client, user):
    with override_settings(CHANNELBUS={"OUTBOX_MAX_FRAMES": 10, "SLOW_CLIENT_GRACE": 0.2}):
        client = await bus_client(user=user)
        epoch = (await subscribe(client))["epoch"]
        await client.close()
        for k in range(300):
            await apublish(Greet(text=str(k)), to=LOG)
        again = await bus_client(user=user)
        assert (await subscribe(again, since={"n": 0, "epoch": epoch}))["recovered"] is True
        await asyncio.sleep(0.4)  # past the grace: a replay counted against the limit would close it
        assert await numbers(again, 300) == list(range(1, 301))
        assert await again.request("topic.list")  # still open


async def test_volatile_frames_are_not_numbered_and_not_replayed(bus_client, user):
    client = await bus_client(user=user)
    epoch = (await subscribe(client))["epoch"]
    await apublish(Cursor(), to=LOG)
    await apublish(Greet(text="kept"), to=LOG)
    cursor = await client.receive("test.recovery_cursor")
    assert "n" not in cursor
    assert (await client.receive("test.greeting"))["n"] == 1
    await client.close()
    again = await bus_client(user=user)
    assert (await subscribe(again, since={"n": 0, "epoch": epoch}))["n"] == 1
    assert (await again.receive())["t"] == "test.greeting"
    await again.assert_nothing_received()
