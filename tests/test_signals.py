"""The signals of channelbus/signals.py as a connection sends them: connection_opened, message_received,
message_sent, error_sent and connection_closed, with their arguments; sync and async receivers; a receiver
that raises is logged and the connection goes on."""

import asyncio
import logging
import time

import pytest

from channelbus import signals
from channelbus.protocol import BusError, Envelope
from channelbus.server import BusConsumer

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = ["connection_opened", "connection_closed", "message_received", "message_sent", "error_sent"]


@pytest.fixture
def connect():
    """``connect(receiver, *names)``: connect ``receiver`` to those signals for the test."""
    connected = []

    def make(receiver, *names):
        for name in names or NAMES:
            getattr(signals, name).connect(receiver)
            connected.append((name, receiver))

    yield make
    for name, receiver in connected:
        getattr(signals, name).disconnect(receiver)


def name_of(signal):
    return next(n for n in NAMES if getattr(signals, n) is signal)


async def until(condition, timeout=3.0):
    """Wait for ``condition()``: a signal about a frame is sent after the frame, so it may come later."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_each_signal_fires_with_its_arguments(bus_client, user, connect):
    seen = []

    async def record(sender, signal, **kwargs):
        seen.append((name_of(signal), sender, kwargs))

    connect(record)
    client = await bus_client(user=user)
    await client.request("demo.echo", {"text": "hi"})
    await until(lambda: len(seen) == 3)
    await client.send("demo.echo", {"text": ""}, i="e1")  # its type is found, then its payload refused
    assert (await client.receive())["t"] == "error.validation"
    await until(lambda: len(seen) == 5)
    await client.send("no.such.type", i="e2")  # not found: no message_received
    assert (await client.receive())["t"] == "error.msg_type"
    await until(lambda: len(seen) == 6)
    await client.close(code=1000)

    assert [name for name, _, _ in seen] == [
        "connection_opened",
        "message_received",
        "message_sent",
        "message_received",
        "error_sent",
        "error_sent",
        "connection_closed",
    ]
    assert all(sender is BusConsumer for _, sender, _ in seen)
    connection = seen[0][2]["connection"]
    assert all(kwargs["connection"] is connection for _, _, kwargs in seen)
    assert connection.user == user
    opened, received, sent, refused, invalid, unknown, closed = (kwargs for _, _, kwargs in seen)
    assert set(opened) == {"connection"}
    i = received["message"].i
    assert i.startswith("t")
    assert i.endswith("-1")
    assert received["message"] == Envelope("demo.echo", i, {"text": "hi"})
    assert sent["frame"] == f'{{"t":"demo.echo","i":"{i}","p":{{"text":"hi"}},"s":"s"}}'
    assert refused["message"] == Envelope("demo.echo", "e1", {"text": ""})
    assert all(isinstance(e["error"], BusError) for e in (invalid, unknown))
    assert (invalid["error"].type, invalid["error"].trace_id) == ("error.validation", "e1")
    assert (unknown["error"].type, unknown["error"].trace_id) == ("error.msg_type", "e2")
    assert closed["code"] == 1000


async def test_a_sync_receiver_is_called_too(bus_client, user, connect):
    seen = []

    def record(sender, signal, **kwargs):  # Django runs it in a thread
        seen.append(name_of(signal))

    connect(record, "connection_opened", "message_sent")
    client = await bus_client(user=user)
    assert (await client.request_frame("s.ping"))["t"] == "s.pong"
    await until(lambda: len(seen) == 2)
    assert seen == ["connection_opened", "message_sent"]


async def test_a_raising_receiver_is_logged_and_the_connection_goes_on(bus_client, user, connect, caplog):
    ids = set()

    async def broken(sender, signal, connection, **kwargs):
        ids.add(connection.connection_id)
        raise RuntimeError(f"receiver bug in {name_of(signal)}")

    def broken_sync(sender, **kwargs):
        raise ValueError("sync receiver bug")

    connect(broken)
    connect(broken_sync, "message_sent")

    def failures():
        return [r for r in caplog.records if r.getMessage().startswith("channelbus: signal receiver ")]

    with caplog.at_level(logging.ERROR, logger="channelbus"):
        client = await bus_client(user=user)
        assert await client.request("demo.echo", {"text": "ok"}) == {"text": "ok"}
        await client.send_raw("not json")
        assert (await client.receive())["t"] == "error.bad_request"
        assert await client.request("demo.add", {"a": 1, "b": 2}) == {"sum": 3}
        await until(lambda: len(failures()) == 8)
        await client.close()
    logged = failures()
    # opened; echo received and sent (two receivers); the error; add received and sent (two); closed
    assert len(logged) == 9
    assert {type(r.exc_info[1]) for r in logged} == {RuntimeError, ValueError}
    [connection_id] = ids
    assert all(r.getMessage().endswith(f" failed on {connection_id}") for r in logged)
    assert {str(r.exc_info[1]) for r in logged} >= {f"receiver bug in {n}" for n in NAMES}
