"""presence() and apresence(): the members of a presence topic from server code, sync or async."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from channelbus import apresence, presence
from channelbus.transport import get_hub
from tests import presence_kinds  # noqa: F401 - registers the test kinds

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def stop_presence(settings):
    settings.CHANNELBUS = {"PRESENCE_INTERVAL": 3600, "PRESENCE_EXPIRY": 3 * 3600}
    yield
    await get_hub().presence.stop()


async def test_both_give_every_member_over_the_process(bus_client):
    alice = await sync_to_async(get_user_model().objects.create_user)(username="alice")
    client = await bus_client(user=alice)
    await client.request("topic.subscribe", {"topic": "test.lobby:x"})
    expected = {str(alice.pk): {"info": {"name": "alice"}, "conns": 1}}
    assert await apresence("test.lobby:x") == expected
    # A sync view under the server: a sync_to_async thread, run on the server's loop.
    assert await sync_to_async(presence)("test.lobby:x") == expected
    assert await apresence("test.lobby:nobody") == {}


def test_from_plain_sync_code_it_runs_on_the_sender_loop():
    assert presence("test.lobby:empty") == {}


async def test_sync_code_on_a_running_loop_cannot_wait():
    with pytest.raises(RuntimeError, match="use await apresence"):
        presence("test.lobby:x")


@pytest.mark.parametrize(
    ("topic", "msg"),
    [
        ("test.quiet:x", "topic kind 'test.quiet' keeps no presence"),
        ("nosuch:1", "no topic kind 'nosuch' is registered"),
    ],
)
def test_a_topic_without_presence_is_a_value_error(topic, msg):
    with pytest.raises(ValueError, match=msg):
        presence(topic)
    with pytest.raises(ValueError, match=msg):
        asyncio.run(apresence(topic))
