"""The demo's topics and messages, in process: chat rooms, their history, shouts (issue 3's demo)."""

from datetime import datetime

import pytest
from demoapp.models import ChatMessage
from django.contrib.auth import get_user_model

from channelbus.testing import RequestFailed

pytestmark = pytest.mark.django_db(transaction=True)


async def _refusal(client, type_name, payload):
    with pytest.raises(RequestFailed) as exc:
        await client.request(type_name, payload)
    return exc.value


@pytest.mark.parametrize("room", ["a_b", "Lobby", "x" * 33, ""])
async def test_a_room_name_chat_send_refuses_cannot_be_followed_either(bus_client, user, room):
    client = await bus_client(user=user)
    subscribe = await _refusal(client, "topic.subscribe", {"topic": f"chat.room:{room}"})
    assert subscribe.type == "error.subscribe"
    send = await _refusal(client, "chat.send", {"room": room, "text": "hello"})
    assert send.type == "error.validation"
    assert [e["loc"] for e in send.payload["errors"]] == [["room"]]


@pytest.mark.parametrize("room", ["-x", "x" * 32, "room-2"])
async def test_a_room_name_chat_send_takes_can_be_followed(bus_client, user, room):
    client = await bus_client(user=user)
    reply = await client.request("topic.subscribe", {"topic": f"chat.room:{room}"})
    assert reply["topic"] == f"chat.room:{room}"
    await client.request("chat.send", {"room": room, "text": "hello"})
    assert (await client.receive("chat.message"))["c"] == f"chat.room:{room}"


@pytest.mark.parametrize(("text", "ok"), [("", False), ("x", True), ("x" * 2000, True), ("x" * 2001, False)])
async def test_chat_send_takes_1_to_2000_characters(bus_client, user, text, ok):
    client = await bus_client(user=user)
    if ok:
        assert isinstance((await client.request("chat.send", {"room": "lobby", "text": text}))["id"], int)
    else:
        refused = await _refusal(client, "chat.send", {"room": "lobby", "text": text})
        assert refused.type == "error.validation"
        assert [e["loc"] for e in refused.payload["errors"]] == [["text"]]
    assert await ChatMessage.objects.acount() == (1 if ok else 0)


async def test_chat_message_carries_room_id_user_text_and_time(bus_client, user):
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": "chat.room:fields"})
    reply = await client.request("chat.send", {"room": "fields", "text": "all five"})
    frame = await client.receive("chat.message")
    assert frame["c"] == "chat.room:fields"
    payload = frame["p"]
    assert set(payload) == {"room", "id", "user", "text", "at"}
    assert payload["room"] == "fields"
    assert payload["id"] == reply["id"]
    assert payload["text"] == "all five"
    assert payload["user"] == user.get_username()
    datetime.fromisoformat(payload["at"])


async def test_a_room_starts_with_its_last_50_messages_oldest_first(bus_client, user):
    history = [ChatMessage(room="busy", user=user, text=f"m{n}") for n in range(60)]
    await ChatMessage.objects.abulk_create(history)
    await ChatMessage.objects.acreate(room="other", user=user, text="elsewhere")
    client = await bus_client(user=user)
    state = (await client.request("topic.subscribe", {"topic": "chat.room:busy"}))["state"]
    assert [m["text"] for m in state] == [f"m{n}" for n in range(10, 60)]


async def test_shout_goes_to_every_follower_of_demo_all(bus_client, user):
    bob = await get_user_model().objects.acreate(username="bob-shouts")
    shouter, listener = await bus_client(user=user), await bus_client(user=bob)
    for tab in (shouter, listener):
        await tab.request("topic.subscribe", {"topic": "demo.all"})
    await shouter.request("demo.shout", {"text": "hi all"})
    for tab in (shouter, listener):
        frame = await tab.receive("demo.shouted")
        assert frame["c"] == "demo.all"
        assert frame["p"] == {"text": "hi all", "user": user.get_username()}


@pytest.mark.parametrize("text", ["", "x" * 201])
async def test_shout_takes_1_to_200_characters(bus_client, user, text):
    client = await bus_client(user=user)
    refused = await _refusal(client, "demo.shout", {"text": text})
    assert refused.type == "error.validation"
