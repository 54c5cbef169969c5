"""The test client of ``channelbus.testing``: BusTestClient, ConnectionRefused, capture_published."""

import pytest
from django.contrib.auth.models import AnonymousUser

from channelbus import BusConsumer, Registry, publish
from channelbus.testing import BusTestClient, ConnectionRefused, RequestFailed, capture_published
from tests.testapp.messages import Greet


async def test_request_returns_the_reply_payload_and_keeps_other_frames_for_receive(bus_client, user):
    client = await bus_client(user=user)
    assert await client.request("demo.add", {"a": 1, "b": 2}) == {"sum": 3}
    frame = await client.request_frame("demo.echo", {"text": "hi"})
    assert frame == {"t": "demo.echo", "i": frame["i"], "p": {"text": "hi"}, "s": "s"}
    await client.assert_nothing_received()


async def test_an_error_reply_raises_request_failed_with_the_frame(bus_client, user):
    client = await bus_client(user=user)
    with pytest.raises(RequestFailed) as failed:
        await client.request("demo.add", {"a": "x"})
    assert failed.value.type == "error.validation"
    assert failed.value.frame["s"] == "f"


async def test_send_encodes_like_the_protocol(bus_client, user):
    client = await bus_client(user=user)
    await client.send("s.ping", i="p1")
    assert await client.receive("s.pong") == {"t": "s.pong", "i": "p1", "s": "s"}


class SignedInOnly(BusConsumer):
    registry = Registry("signed-in only")  # no type a signed-out user may send


async def test_a_refused_connection_raises_with_its_close_code(db):
    client = BusTestClient(SignedInOnly.as_asgi(), user=AnonymousUser())
    with pytest.raises(ConnectionRefused) as refused:
        await client.connect()
    assert refused.value.code == client.close_code == 4401


async def test_assert_nothing_received_fails_when_a_frame_arrives(bus_client, user):
    client = await bus_client(user=user)
    await client.send("s.ping", i="p2")
    with pytest.raises(AssertionError, match=r"s\.pong"):
        await client.assert_nothing_received(0.5)


@pytest.mark.django_db(transaction=True)
def test_capture_published_records_what_was_sent_and_only_inside_the_block():
    with capture_published() as sent:
        publish(Greet(text="hi"), to="broadcast")
    publish(Greet(text="after"), to="broadcast")
    assert [(p.message.payload(), p.topics, p.addresses) for p in sent] == [
        ({"text": "hi"}, ["broadcast"], [])
    ]
