"""Deferred handlers through Django's Tasks API: the immediate backend in-process, and a real worker."""

import asyncio

import pytest

from channelbus.client import BusClient, RequestFailed, fetch_cookies
from channelbus.testing import RequestFailed as BusRequestFailed

from .servers import demo_server

pytestmark = pytest.mark.django_db(transaction=True)


async def test_count_sends_queued_progress_and_result(bus_client, user):
    client = await bus_client(user=user)
    frame = await client.request_frame("demo.count", {"to": 5})
    assert frame["t"] == "demo.count" and frame["p"] == {"total": 5} and frame["s"] == "s"
    states = [(f["s"], f.get("p")) for f in client.states]
    assert states[0] == ("q", None) and states[1] == ("r", None)
    assert [p["done"] for s, p in states[2:]] == [1, 2, 3, 4, 5]
    assert all(s == "r" and p["total"] == 5 for s, p in states[2:])
    assert all(f["i"] == frame["i"] for f in client.states)


async def test_fail_retries_then_error_job(bus_client, user):
    client = await bus_client(user=user)
    with pytest.raises(BusRequestFailed) as exc:
        await client.request("demo.fail", {}, timeout=10)
    assert exc.value.type == "error.job"
    assert exc.value.payload == {"msg": "demo.fail failed.", "type_name": "demo.fail", "attempts": 3}


async def test_deferred_validation_and_permission_errors_come_from_the_consumer(bus_client, user):
    client = await bus_client(user=user)
    with pytest.raises(BusRequestFailed) as exc:
        await client.request("demo.count", {"to": 500})
    assert exc.value.type == "error.validation"
    assert client.states == []  # refused before anything was queued


async def test_deferred_chat_send_writes_and_publishes_after_commit(bus_client, user):
    from channelbus.testing import capture_published

    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": "chat.room:deferred"})
    with capture_published() as sent:
        reply = await client.request("chat.send", {"room": "deferred", "text": "via a job"})
    assert [(p.message.name, p.topics) for p in sent] == [("chat.message", ["chat.room:deferred"])]
    assert sent[0].message.data.text == "via a job"
    assert isinstance(reply["id"], int)
    message = await client.receive("chat.message")
    assert message["p"]["text"] == "via a job" and message["c"] == "chat.room:deferred"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("deferred")) as address:
        yield address


async def test_a_real_worker_beside_the_server(server):
    """`manage.py runbus` runs a django_tasks_db worker on the demo's SQLite queue."""
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    async with BusClient(f"ws://{server}/ws/", cookies=cookies) as bus:
        seen = []
        reply = await bus.request_frame("demo.count", {"to": 5}, timeout=20, on_state=seen.append)
        assert reply["p"] == {"total": 5} and reply["s"] == "s"
        assert [f["s"] for f in seen] == ["q", "r", "r", "r", "r", "r", "r"]
        assert [f["p"]["done"] for f in seen[2:]] == [1, 2, 3, 4, 5]
        assert all(f["i"] == reply["i"] for f in seen)
        with pytest.raises(RequestFailed) as exc:
            await bus.request("demo.fail", {}, timeout=30)
        assert exc.value.payload["attempts"] == 3 and exc.value.type == "error.job"


async def test_a_failing_deferred_handler_rolls_back_and_publishes_nothing(bus_client, user):
    from channelbus.testing import capture_published
    from tests.testapp.models import Note

    client = await bus_client(user=user)
    with capture_published() as sent, pytest.raises(BusRequestFailed) as exc:
        await client.request("test.write_then_refuse", {"text": "rolled back"})
    assert exc.value.type == "error.not_found" and exc.value.payload == {"msg": "Changed my mind."}
    assert sent == [] and await Note.objects.acount() == 0
    await client.assert_nothing_received(0.2)


async def test_the_worker_knows_who_asked(bus_client, user):
    from channelbus.fanout import get_hub

    client = await bus_client(user=user)
    address = next(iter(get_hub().connections.values())).channel_name
    assert await client.request("test.who_asked") == {"user": "alice", "address": address, "attempt": 1}


async def test_trigger_from_python_code(bus_client, user):
    from channels.db import database_sync_to_async

    from channelbus.fanout import get_hub
    from channelbus.tasks import trigger

    client = await bus_client(user=user)
    address = next(iter(get_hub().connections.values())).channel_name
    await database_sync_to_async(trigger)(
        "demo.count", {"to": 2}, user=user, reply_to=address, trace_id="srv1"
    )
    frames = [await client.receive() for _ in range(4)]
    assert [f["s"] for f in frames] == ["r", "r", "r", "s"] and all(f["i"] == "srv1" for f in frames)
    assert frames[-1]["p"] == {"total": 2}
