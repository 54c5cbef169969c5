import asyncio
import pytest
from channelbus import signals
from channelbus.publishing import apublish
from channelbus.fanout import get_hub
from tests.testapp.messages import Greet

pytestmark = pytest.mark.django_db(transaction=True)

async def test_sent(bus_client, user):
    seen = []
    async def rec(sender, connection, frame, **kw):
        seen.append(frame)
    signals.message_sent.connect(rec)
    try:
        client = await bus_client(user=user)
        await client.request("topic.subscribe", {"topic": "test.room:x"})
        seen.clear()
        await apublish(Greet(text="topic"), to="test.room:x")
        await client.receive()
        await apublish(Greet(text="direct"), to=client_addr() )
        await client.receive()
        await get_hub().close_connection(client_addr(), 4403, "bye")
        print(await client.receive())
        print("SEEN", seen)
    finally:
        signals.message_sent.disconnect(rec)

def client_addr():
    return next(iter(get_hub().connections.values())).channel_name
