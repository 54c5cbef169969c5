"""Topic delivery: the local sockets of each topic, and the way to other server processes.

One :class:`Hub` per event loop (one per server process under uvicorn) keeps
which local connections follow which topic. A published frame is encoded
once per topic; under uvicorn it is also framed once and the same bytes are
written to every local socket's transport (:mod:`channelbus.transport.raw_frames`),
and elsewhere the same ASGI event is handed to every socket's ``push``: no JSON
work, no Task and no database query per subscriber.

Across processes the hub, not each connection, talks to the channel layer:
it owns one layer channel and joins one layer group per topic that has local
subscribers. Sending to a topic is one ``group_send`` per topic, received once by
each process that has subscribers, whatever their number. With Channels'
``InMemoryChannelLayer`` (one process) or no layer, delivery is direct; a
send made on another event loop of the process (a worker thread) is handed to
the hub that serves the sockets.

The hub knows connections only as :class:`Endpoint` (what it calls on them), so
it imports nothing of the server layer above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.signals import setting_changed

from ..protocol import CloseCode
from .addresses import LOCAL, make_address, split_address
from .raw_frames import RawSocket, text_frame

__all__ = ["Endpoint", "Hub", "get_hub", "group_name"]

logger = logging.getLogger("channelbus")

#: Layer calls (group add/discard/send, send) in flight at once per process: redis-py's pool holds
#: 100 connections, and 1,000 sockets closing (or 1,000 publishes) together must not exhaust it.
MAX_GROUP_CALLS = 32
#: Re-join layer groups this often (channels_redis forgets members after ``group_expiry``, a day by default).
GROUP_REFRESH_SECONDS = 3600.0

#: The events hubs send each other through the channel layer (their wire between processes).
TOPIC_EVENT = "bus.publish"  # a frame for every follower of a topic
DIRECT_EVENT = "bus.direct"  # a frame for one connection
CLOSE_EVENT = "bus.close"  # close one connection
RECHECK_EVENT = "bus.recheck"  # ask every follower of a topic again whether it may follow


class Endpoint(Protocol):
    """A local connection as the hub sees it (:class:`~channelbus.server.BusConsumer` is one)."""

    connection_id: str
    #: The topics it follows (the hub keeps it up to date).
    topics: set[str]
    closed: bool
    #: ASGI sends of its own in progress: no pre-built frame is written meanwhile.
    sending: int
    #: Its socket, when it may take pre-built frames (:mod:`channelbus.transport.raw_frames`).
    raw: RawSocket | None

    async def push(self, event: dict[str, Any]) -> None:
        """Hand a ready ``websocket.send`` event to the socket."""

    async def send_frame(self, text: str) -> None:
        """Send one encoded frame."""

    async def close(self, code: int, reason: str = "") -> None:
        """Say ``s.closing`` and close the socket."""

    async def recheck_access(self, topic: str) -> None:
        """Ask again whether its user may follow ``topic``; leave it if not."""


P = ParamSpec("P")
T = TypeVar("T")


def _on_serving_hub(
    method: Callable[Concatenate[Hub, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Hub, P], Coroutine[Any, Any, T]]:
    """Run a delivery method on the hub that holds the sockets (see :meth:`Hub.serving_hub`)."""

    @functools.wraps(method)
    async def call(self: Hub, /, *args: P.args, **kwargs: P.kwargs) -> T:
        serving = self.serving_hub()
        if serving is self:
            return await method(self, *args, **kwargs)
        coro = method(serving, *args, **kwargs)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, serving.loop))

    return call


def group_name(topic: str) -> str:
    """The channel-layer group of a topic: stable across processes and valid for every layer."""
    return "channelbus.t." + hashlib.blake2b(topic.encode(), digest_size=16).hexdigest()


class Hub:
    """Which local connections follow which topic, and delivery to them and to other processes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: topic name -> local connections following it.
        self.members: dict[str, set[Endpoint]] = {}
        #: connection id -> local connection.
        self.connections: dict[str, Endpoint] = {}
        self.layer: Any = None
        #: This hub's layer channel (``"local"`` when delivery is in-process only).
        self.channel = LOCAL
        self._layer_picked = False
        self._starting: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._group_calls = asyncio.Semaphore(MAX_GROUP_CALLS)
        #: Deliveries of published frames so far: written as pre-built frames
        #: (:mod:`channelbus.transport.raw_frames`), and handed to the socket's ASGI ``send``.
        self.raw_frames = 0
        self.asgi_frames = 0

    @property
    def cross_process(self) -> bool:
        """True when publishing goes through a channel layer that reaches other processes."""
        return self.layer is not None

    def pick_layer(self) -> None:
        """Choose the delivery mode from ``CHANNEL_LAYERS``: a shared layer, or in-process only."""
        if self._layer_picked:
            return
        layer = get_channel_layer()
        if layer is not None and not isinstance(layer, InMemoryChannelLayer):
            self.layer = layer
        self._layer_picked = True

    async def start(self) -> None:
        """Get ready to serve connections: with a shared layer, open this hub's channel and read it."""
        global _serving
        _serving = self
        self.pick_layer()
        if self.layer is None or self._reader is not None:
            return
        if self._starting is None:
            self._starting = self.loop.create_task(self._open_channel())
        await asyncio.shield(self._starting)

    async def _open_channel(self) -> None:
        try:
            self.channel = await self.layer.new_channel("channelbus.hub")
        except BaseException:
            self._starting = None
            raise
        self._reader = self.loop.create_task(self._read())
        self._refresher = self.loop.create_task(self._refresh_groups())

    async def stop(self) -> None:
        """Stop reading from the layer (tests, shutdown)."""
        for task in (self._reader, self._refresher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    def serving_hub(self) -> Hub:
        """The hub that must make a delivery asked of this one (the layer choice, written once).

        With a shared channel layer, or when this hub serves the sockets, this one. Without a
        shared layer, a send made on another event loop of the process (a worker thread, the sender
        loop) is handed to the hub that serves the sockets, on its own loop.
        """
        self.pick_layer()
        peer = _serving
        if (
            self.layer is not None
            or peer is None
            or peer is self
            or peer.loop.is_closed()
            or not peer.loop.is_running()
        ):
            return self
        return peer

    async def _layer_call(self, call: Coroutine[Any, Any, None]) -> None:
        """Await one channel-layer call, at most ``MAX_GROUP_CALLS`` at once per process."""
        try:
            async with self._group_calls:
                await call
        finally:
            call.close()  # never started if cancelled while waiting for a slot: no "never awaited"

    # ------------------------------------------------------------------ connections

    def address(self, connection: Endpoint) -> str:
        """The address of a local connection."""
        return make_address(self.channel, connection.connection_id)

    def attach(self, connection: Endpoint) -> str:
        """Register a new local connection; returns its address."""
        self.connections[connection.connection_id] = connection
        return self.address(connection)

    async def detach(self, connection: Endpoint) -> None:
        """Forget a closed connection and drop all its memberships."""
        self.connections.pop(connection.connection_id, None)
        for topic in list(connection.topics):
            await self.leave(connection, topic)

    async def join(self, connection: Endpoint, topic: str) -> None:
        """Make ``connection`` follow ``topic``."""
        subscribers = self.members.get(topic)
        if subscribers is None:
            if self.layer is not None:
                await self._layer_call(self.layer.group_add(group_name(topic), self.channel))
            subscribers = self.members.setdefault(topic, set())  # another join may have made it meanwhile
        subscribers.add(connection)
        connection.topics.add(topic)

    async def leave(self, connection: Endpoint, topic: str) -> None:
        """Stop ``connection`` following ``topic``."""
        connection.topics.discard(topic)
        subscribers = self.members.get(topic)
        if subscribers is None:
            return
        subscribers.discard(connection)
        if not subscribers:
            del self.members[topic]
            if self.layer is not None:
                try:
                    await self._layer_call(self.layer.group_discard(group_name(topic), self.channel))
                except Exception:  # the group expires by itself; a stray delivery finds no member
                    logger.warning("channelbus: could not leave layer group of %s", topic, exc_info=True)

    # ------------------------------------------------------------------ delivery

    @_on_serving_hub
    async def send_to_topic(self, topic: str, text: str, exclude: str | None = None) -> None:
        """Deliver an encoded frame to every follower of ``topic``, in every process.

        ``exclude`` is the address of a connection that does not get it.
        """
        if self.layer is None:
            return await self.deliver(topic, text, exclude)
        event = {"type": TOPIC_EVENT, "topic": topic, "text": text}
        if exclude:
            event["exclude"] = exclude
        await self._layer_call(self.layer.group_send(group_name(topic), event))

    @_on_serving_hub
    async def send_to_address(self, address: str, text: str) -> None:
        """Deliver an encoded frame to one connection, in whatever process it lives."""
        connection, channel, connection_id = self._find(address)
        if connection is not None:
            await connection.send_frame(text)
        elif channel is not None:
            event = {"type": DIRECT_EVENT, "connection": connection_id, "text": text}
            await self._layer_call(self.layer.send(channel, event))

    @_on_serving_hub
    async def close_connection(self, address: str, code: int, reason: str) -> None:
        """Close one connection (sends ``s.closing`` first), in whatever process it lives."""
        connection, channel, connection_id = self._find(address)
        if connection is not None:
            await connection.close(code, reason)
        elif channel is not None:
            event = {"type": CLOSE_EVENT, "connection": connection_id, "code": code, "reason": reason}
            await self._layer_call(self.layer.send(channel, event))

    @_on_serving_hub
    async def recheck(self, topic: str) -> None:
        """Ask every follower of ``topic``, in every process, whether it may still follow it."""
        if self.layer is None:
            return await self.recheck_local(topic)
        event = {"type": RECHECK_EVENT, "topic": topic}
        await self._layer_call(self.layer.group_send(group_name(topic), event))

    def _find(self, address: str) -> tuple[Endpoint | None, str | None, str]:
        """Where ``address`` lives: ``(local connection, None, id)`` when it is this hub's (the
        connection is None if it has gone), ``(None, layer channel, id)`` when another process's."""
        channel, connection_id = split_address(address)
        if channel == self.channel or self.layer is None or channel == LOCAL:
            return self.connections.get(connection_id), None, connection_id
        return None, channel, connection_id

    async def deliver(self, topic: str, text: str, exclude: str | None = None) -> None:
        """Hand one frame to every local follower of ``topic`` (the per-delivery hot path).

        A socket that may take pre-built frames (``connection.raw``, see :mod:`~.raw_frames`)
        and has no ``send`` of its own in progress gets the frame framed once for all of them,
        written to its transport; every other one gets the same ASGI ``websocket.send`` event.
        """
        subscribers = self.members.get(topic)
        if not subscribers:
            return
        excluded = split_address(exclude)[1] if exclude else None
        event = {"type": "websocket.send", "text": text}
        frame: bytes | None = None
        raw_count = pushed = 0
        try:
            for connection in tuple(subscribers):
                if connection.connection_id == excluded or connection.closed:
                    continue
                raw = connection.raw
                # RawSocket.write's test, inlined: no send of the connection's own in progress, not
                # paused by flow control, open, transport not closing.
                if (
                    raw is not None
                    and not connection.sending
                    and raw.writable.is_set()
                    and raw.conn.state is raw.open
                    and not raw.transport.is_closing()
                ):
                    if frame is None:
                        frame = text_frame(text)
                    raw.transport.write(frame)
                    raw_count += 1
                    continue
                pushed += 1
                await connection.push(event)
        finally:
            self.raw_frames += raw_count
            self.asgi_frames += pushed

    async def _read(self) -> None:
        """Receive what other processes send to this hub's channel."""
        layer, channel = self.layer, self.channel
        delay = 0.1
        while True:
            try:
                event = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("channelbus: channel layer receive failed on %s; retrying", channel)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            try:
                await self._handle(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("channelbus: could not handle channel-layer message %r", event)

    async def _handle(self, event: Any) -> None:
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == TOPIC_EVENT:
            await self.deliver(event["topic"], event["text"], event.get("exclude"))
        elif kind == DIRECT_EVENT:
            connection = self.connections.get(event["connection"])
            if connection is not None:
                await connection.send_frame(event["text"])
        elif kind == CLOSE_EVENT:
            connection = self.connections.get(event["connection"])
            if connection is not None:
                code = int(event.get("code", CloseCode.FORBIDDEN))
                await connection.close(code, str(event.get("reason", "")))
        elif kind == RECHECK_EVENT:
            await self.recheck_local(event["topic"])
        else:
            logger.warning("channelbus: ignored unknown channel-layer message %r", event)

    async def recheck_local(self, topic: str) -> None:
        """Ask again whether each local follower may still follow ``topic``; drop those who may not."""
        for connection in tuple(self.members.get(topic, ())):
            await connection.recheck_access(topic)

    async def _refresh_groups(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            started = time.monotonic()
            for topic in list(self.members):
                try:
                    await self._layer_call(self.layer.group_add(group_name(topic), self.channel))
                except Exception:
                    logger.warning("channelbus: could not refresh layer group of %s", topic, exc_info=True)
            logger.debug(
                "channelbus: refreshed %d groups in %.3fs", len(self.members), time.monotonic() - started
            )


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}
#: The hub that last started serving connections in this process.
_serving: Hub | None = None


def _forget_layer_choice(*, setting: str, **kwargs: Any) -> None:
    """When ``CHANNEL_LAYERS`` changes (``override_settings`` in tests), as Channels resets its layers,
    hubs that serve no connection and read no channel (a worker's sender loop) pick the layer again."""
    if setting != "CHANNEL_LAYERS":
        return
    for hub in list(_hubs.values()):
        if not hub.connections and hub._reader is None and hub._starting is None:
            hub.layer = None
            hub.channel = LOCAL
            hub._layer_picked = False


setting_changed.connect(_forget_layer_choice)


def get_hub() -> Hub:
    """The hub of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for old in [old for old in _hubs if old.is_closed()]:
            del _hubs[old]
        hub = _hubs[loop] = Hub(loop)
    return hub
