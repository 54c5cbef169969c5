"""The outbox (channelbus.server.outbox): its limits without a server, then a real consumer whose socket
cannot take frames (an ASGI ``send`` held shut, as uvicorn's is while its transport is paused).

A socket that a real client stops reading, among 1,000 that keep reading, is in
``tests/system/test_slow_clients.py``.
"""

import asyncio
import logging

import orjson
import pytest
from django.test import override_settings

from channelbus import BusConsumer, Message, outgoing
from channelbus.protocol import CloseCode
from channelbus.publishing.api import message_frame
from channelbus.server.outbox import DROPPED, OVERFLOW, QUEUED, Outbox
from channelbus.transport import get_hub
from tests.waiting import wait_for

# ------------------------------------------------------------------------------ the limits, no I/O


def test_frames_queue_until_the_limit_then_the_outbox_is_slow():
    box = Outbox(max_frames=3, max_bytes=1000)
    assert box.put("a", False, 1.0) is QUEUED
    assert box.put("b", False, 2.0) is QUEUED
    assert box.slow_since is None
    assert box.put("c", False, 3.0) is QUEUED
    assert box.slow_since == 3.0  # at the limit: slow since this put
    assert (len(box), box.size) == (3, 3)
    assert box.take() == "a"
    assert box.slow_since is None  # back under the limit
    assert [box.take(), box.take()] == ["b", "c"]
    assert not box


def test_the_byte_limit_counts_characters_and_an_empty_outbox_takes_any_frame():
    box = Outbox(max_frames=100, max_bytes=10)
    assert box.put("x" * 50, False, 0.0) is QUEUED  # larger than the limit, but the outbox was empty
    assert box.slow_since == 0.0
    assert box.put("y", True, 1.0) is DROPPED
    assert box.put("z" * 30, False, 1.0) is OVERFLOW  # 80 characters: over twice the limit
    assert box.take() == "x" * 50
    assert (box.size, box.slow_since) == (0, None)


def test_over_the_limit_volatile_frames_are_dropped_and_others_kept_up_to_twice_the_limit():
    box = Outbox(max_frames=2, max_bytes=1000)
    for text in "ab":
        assert box.put(text, False, 0.0) is QUEUED
    assert box.put("cursor", True, 0.5) is DROPPED
    assert box.put("c", False, 0.5) is QUEUED
    assert box.put("d", False, 0.5) is QUEUED
    assert box.put("e", False, 0.5) is OVERFLOW  # 4 frames = twice the limit
    assert box.put("cursor", True, 0.5) is DROPPED
    assert box.dropped == 2
    assert box.slow_since == 0.0
    assert box.clear() == 4
    assert (len(box), box.size, box.slow_since) == (0, 0, None)


def test_under_the_limit_volatile_frames_are_queued_like_any_other():
    box = Outbox(max_frames=10, max_bytes=1000)
    assert box.put("cursor", True, 0.0) is QUEUED
    assert box.take() == "cursor"


# ------------------------------------------------------------------------------ a consumer, a shut socket

pytestmark = pytest.mark.django_db(transaction=True)


@outgoing.register
class Cursor(Message):
    """A volatile outgoing type: the next one replaces it."""

    name = "test.cursor"
    volatile = True


class Socket:
    """The ASGI side of one connection: ``send`` waits while :attr:`shut` is set, as uvicorn's waits for
    ``writable``; the events it let through are in :attr:`sent`."""

    def __init__(self, user):
        self.user = user
        self.incoming: asyncio.Queue = asyncio.Queue()
        self.sent: list[dict] = []
        self.open = asyncio.Event()
        self.open.set()
        self.consumer = BusConsumer()
        self.task: asyncio.Task | None = None

    async def send(self, event):
        await self.open.wait()
        self.sent.append(event)

    async def start(self):
        scope = {
            "type": "websocket",
            "user": self.user,
            "subprotocols": [],
            "headers": [],
            "query_string": b"",
        }
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.ensure_future(self.consumer(scope, self.incoming.get, self.send))
        await wait(lambda: self.consumer.channel_name is not None and "broadcast" in self.consumer.topics)
        return self

    def texts(self):
        """What the socket took, each ``websocket.send`` decoded (the accept left out)."""
        return [orjson.loads(e["text"]) for e in self.sent if e["type"] == "websocket.send"]

    def ticks(self):
        return [env["p"]["k"] for env in self.texts() if env["t"] == "test.tick"]


@outgoing.register
class Tick(Message):
    """A numbered published frame."""

    name = "test.tick"


async def wait(predicate, timeout=5.0):
    await wait_for(predicate, timeout=timeout, interval=0.005)


async def publish(kind, k, topic="broadcast"):
    """What ``apublish`` does: one frame for every follower of ``topic``, volatile as its class says."""
    message = kind({"k": k})
    await get_hub().send_to_topic(
        topic, message_frame(message, message.payload(), topic), None, message.volatile
    )


LIMITS = {"OUTBOX_MAX_FRAMES": 5, "OUTBOX_MAX_BYTES": 1_000_000, "SLOW_CLIENT_GRACE": 60}


@pytest.fixture
async def sockets(user):
    started: list[Socket] = []

    async def make(n):
        for _ in range(n):
            started.append(await Socket(user).start())
        return started[-n:]

    yield make
    for socket in started:
        socket.open.set()
        if not socket.task.done():
            socket.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(socket.task, 5)


@override_settings(CHANNELBUS=LIMITS)
async def test_a_publish_never_waits_for_a_socket_that_cannot_take_it(sockets):
    shut, reading = await sockets(2)
    shut.open.clear()
    async with asyncio.timeout(2):  # before: the publish waited here until the shut socket drained
        for k in range(4):
            await publish(Tick, k)
    await wait(lambda: reading.ticks() == [0, 1, 2, 3])
    assert shut.ticks() == []
    shut.open.set()
    await wait(lambda: shut.ticks() == [0, 1, 2, 3])
    assert not shut.consumer.closed


@override_settings(CHANNELBUS=LIMITS)
async def test_replies_wait_behind_published_frames_in_order(sockets):
    (shut,) = await sockets(1)
    shut.open.clear()
    for k in range(2):
        await publish(Tick, k)
    shut.incoming.put_nowait({"type": "websocket.receive", "text": '{"t":"s.ping","i":"p1"}'})
    await asyncio.sleep(0.05)
    shut.open.set()
    await wait(lambda: len(shut.texts()) == 3)
    assert [(env["t"], env.get("i")) for env in shut.texts()] == [
        ("test.tick", None),
        ("test.tick", None),
        ("s.pong", "p1"),
    ]


@override_settings(CHANNELBUS=LIMITS)
async def test_over_the_limit_volatile_frames_are_dropped_for_that_socket_only(sockets):
    shut, reading = await sockets(2)
    shut.open.clear()
    await publish(Tick, 0)  # taken by the writer: its send waits
    for k in range(1, 6):
        await publish(Tick, k)  # 5 waiting: the limit
    await publish(Cursor, 100)
    await publish(Tick, 6)  # kept: under twice the limit
    await wait(lambda: [env["t"] for env in reading.texts()].count("test.cursor") == 1)
    shut.open.set()
    await wait(lambda: shut.ticks() == list(range(7)))
    assert [env["t"] for env in shut.texts()].count("test.cursor") == 0
    assert not shut.consumer.closed


@override_settings(CHANNELBUS=LIMITS)
async def test_twice_the_limit_closes_the_socket_at_once_with_4408(sockets, caplog):
    shut, reading = await sockets(2)
    shut.open.clear()
    caplog.set_level(logging.WARNING, "channelbus")
    for k in range(12):  # 1 being sent, 10 waiting = twice the limit, the 12th overflows
        await publish(Tick, k)
    assert shut.consumer.closed
    await wait(lambda: reading.ticks() == list(range(12)))
    # It cannot take even the close within 1 s: the connection is ended by the server.
    await asyncio.wait_for(shut.task, 3)
    assert shut.consumer._close_code == CloseCode.TOO_SLOW
    assert shut.consumer.connection_id not in get_hub().connections
    assert "closing" in caplog.text
    assert "4408" in caplog.text
    assert "outbox is full" in caplog.text


@override_settings(CHANNELBUS={**LIMITS, "SLOW_CLIENT_GRACE": 0.3})
async def test_a_socket_over_the_limit_for_the_grace_time_is_closed_with_4408(sockets):
    shut, _ = await sockets(2)
    shut.open.clear()
    loop = asyncio.get_running_loop()
    for k in range(6):
        await publish(Tick, k)
    over_at = loop.time()
    await asyncio.sleep(0.2)
    assert not shut.consumer.closed
    await wait(lambda: shut.consumer.closed, timeout=2)
    closed_after = loop.time() - over_at
    assert 0.25 <= closed_after < 1.0
    # A client that reads again now gets s.closing and 4408; as it does not answer the close, the
    # server ends the connection 1 s later.
    shut.open.set()
    await asyncio.wait_for(shut.task, 3)
    texts = shut.texts()
    assert texts[-1]["t"] == "s.closing"
    assert texts[-1]["p"]["code"] == CloseCode.TOO_SLOW
    assert texts[-1]["p"]["reason"].startswith("Too slow")
    assert shut.sent[-1] == {"type": "websocket.close", "code": 4408, "reason": texts[-1]["p"]["reason"]}


@override_settings(CHANNELBUS={**LIMITS, "SLOW_CLIENT_GRACE": 0.3})
async def test_a_socket_that_drains_within_the_grace_time_stays(sockets):
    (shut,) = await sockets(1)
    shut.open.clear()
    for k in range(6):
        await publish(Tick, k)
    await asyncio.sleep(0.1)
    shut.open.set()
    await asyncio.sleep(0.4)
    assert not shut.consumer.closed
    await publish(Tick, 6)
    await wait(lambda: shut.ticks() == list(range(7)))


@override_settings(CHANNELBUS=LIMITS)
async def test_a_close_sends_what_waits_first(sockets):
    (shut,) = await sockets(1)
    shut.open.clear()
    for k in range(3):
        await publish(Tick, k)
    closing = asyncio.ensure_future(shut.consumer.close(4000, "bye"))
    await asyncio.sleep(0.05)
    assert not closing.done()
    shut.open.set()
    await asyncio.wait_for(closing, 2)
    assert [env["t"] for env in shut.texts()] == ["test.tick"] * 3 + ["s.closing"]
    assert shut.sent[-1] == {"type": "websocket.close", "code": 4000, "reason": "bye"}
