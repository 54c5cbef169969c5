"""Built-in control messages (channelbus.messages.control): ``s.ping`` answered by ``s.pong``."""

import asyncio

import pytest

from channelbus.messages import Message, incoming, outgoing
from channelbus.messages.control import Ping, Pong
from channelbus.testing import RequestFailed

pytestmark = pytest.mark.django_db(transaction=True)

#: Set by the test to let ``test.hold`` finish.
RELEASE: dict[str, asyncio.Event] = {}


class Hold(Message):
    """Handled in order (not concurrent, not control): waits until the test releases it."""

    name = "test.control_hold"

    async def handle(self):
        await RELEASE["event"].wait()
        return {"released": True}


@pytest.fixture
def hold():
    RELEASE["event"] = asyncio.Event()
    incoming.register(Hold)
    yield RELEASE["event"]
    incoming.unregister(Hold.name)
    RELEASE.clear()


def test_ping_and_pong_are_registered_and_ping_is_a_control_message():
    assert incoming.get("s.ping") is Ping
    assert outgoing.get("s.pong") is Pong
    assert Ping.control is True
    assert Pong.control is False
    assert "s.pong" not in incoming


async def test_ping_handler_returns_a_pong():
    reply = await Ping().handle()
    assert isinstance(reply, Pong)
    assert reply.payload() is None


async def test_ping_gets_pong_with_the_same_trace_id(bus_client, user):
    client = await bus_client(user=user)
    frame = await client.request_frame("s.ping")
    assert frame == {"t": "s.pong", "i": frame["i"], "s": "s"}


async def test_ping_takes_no_payload(bus_client, user):
    client = await bus_client(user=user)
    with pytest.raises(RequestFailed) as exc:
        await client.request("s.ping", {"x": 1})
    assert exc.value.type == "error.validation"


async def test_a_signed_out_user_may_ping_but_not_send_other_messages(bus_client):
    client = await bus_client()  # anonymous: accepted because test.public allows anonymous senders
    assert (await client.request_frame("s.ping"))["t"] == "s.pong"
    with pytest.raises(RequestFailed) as exc:
        await client.request("test.slow", {"seconds": 0})
    assert exc.value.type == "error.unauthorized"


async def test_ping_is_answered_while_an_earlier_message_is_still_being_handled(bus_client, user, hold):
    client = await bus_client(user=user)
    await client.send(Hold.name, i="held")
    await client.send("s.ping", i="ping")
    first = await client.receive()
    assert first == {"t": "s.pong", "i": "ping", "s": "s"}  # not queued behind test.control_hold
    assert not hold.is_set()
    hold.set()
    assert await client.receive() == {"t": Hold.name, "i": "held", "p": {"released": True}, "s": "s"}
