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

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.signals import setting_changed

from ..background import in_background
from ..conf import settings
from ..protocol import CloseCode
from ..topics import topic_kinds
from .addresses import LOCAL, make_address, split_address
from .history import NUMBERING_TTL, MemoryHistory, Recovery
from .history_redis import RedisHistory, redis_hosts
from .layer_health import (
    PROBE_EVENT,
    DeliveryFailed,
    LayerHealth,
    drop_idle_connections,
    keeps_groups_in_redis,
    place_sentinel,
    renew_sentinel,
    sentinel_key,
    sentinel_ttl,
)
from .presence_tracker import PresenceTracker
from .raw_frames import RawSocket, text_frame

__all__ = ["Endpoint", "Hub", "get_hub", "group_name", "history_of"]

logger = logging.getLogger("channelbus")

#: Layer calls (group add/discard/send, send) in flight at once per process: redis-py's pool holds
#: 100 connections, and 1,000 sockets closing (or 1,000 publishes) together must not exhaust it.
MAX_GROUP_CALLS = 32
#: Re-join layer groups this often (channels_redis forgets members after ``group_expiry``, a day by default).
GROUP_REFRESH_SECONDS = 3600.0
#: Seconds one check of the layer may take before the layer counts as unreachable.
CHECK_TIMEOUT = 5.0
#: Longest pause of the hub's reader between two failed reads of its layer channel.
READ_RETRY_MAX = 1.0

#: The events hubs send each other through the channel layer (their wire between processes).
TOPIC_EVENT = "bus.publish"  # a frame for every follower of a topic
DIRECT_EVENT = "bus.direct"  # a frame for one connection
CLOSE_EVENT = "bus.close"  # close one connection
RECHECK_EVENT = "bus.recheck"  # ask every follower of a topic again whether it may follow
RECHECK_FOLLOWED_EVENT = "bus.recheck_followed"  # ... each follower of a topic, for every topic it follows
CLOSE_TOPIC_EVENT = "bus.close_topic"  # close every follower of a topic (a user signed out)


class Endpoint(Protocol):
    """A local connection as the hub sees it (:class:`~channelbus.server.BusConsumer` is one)."""

    connection_id: str
    #: The topics it follows (the hub keeps it up to date).
    topics: set[str]
    closed: bool
    #: Its frames not written yet (waiting in its outbox or being sent): no pre-built frame is
    #: written meanwhile, so frames never overtake each other.
    sending: int
    #: Its socket, when it may take pre-built frames (:mod:`channelbus.transport.raw_frames`).
    raw: RawSocket | None

    def offer(self, text: str, volatile: bool = False) -> None:
        """Queue one encoded frame for the socket without waiting (its outbox applies the limits)."""

    def replay(self, texts: tuple[str, ...]) -> None:
        """Queue the missed frames of a recovered topic (counted against none of the outbox's limits)."""

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


def history_of(topic: str) -> tuple[int, float]:
    """``(size, ttl)`` of ``topic``'s history (its kind's or the settings'; ttl at most ``NUMBERING_TTL``)."""
    size, ttl = topic_kinds.history_of(topic)
    return size, min(ttl, NUMBERING_TTL)


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
        #: Local connections per key they are counted under (a user, a client address; see
        #: :mod:`channelbus.server.limits`), and the keys of each connection id. No key stays at 0.
        self.counts: dict[str, int] = {}
        self._counted: dict[str, tuple[str, ...]] = {}
        self.layer: Any = None
        #: This hub's layer channel (``"local"`` when delivery is in-process only).
        self.channel = LOCAL
        self._layer_picked = False
        self._starting: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        #: Whether the layer answers (:mod:`channelbus.transport.layer_health`).
        self.health = LayerHealth()
        self._rejoin_due = False
        self._group_calls = asyncio.Semaphore(MAX_GROUP_CALLS)
        #: Who follows presence topics here, written in batches and published as presence.diff.
        self.presence = PresenceTracker(self, self._group_calls)
        #: Deliveries of published frames so far: written as pre-built frames
        #: (:mod:`channelbus.transport.raw_frames`), and handed to the socket's ASGI ``send``.
        self.raw_frames = 0
        self.asgi_frames = 0
        #: Topic numbering and history: in this process, or in Redis with a channels_redis layer.
        self._history: MemoryHistory | RedisHistory | None = None
        #: topic -> local connections subscribing with recovery, and the frames held back for each
        #: (``(n or None, text, volatile)``) until :meth:`release` sends them after the missed ones.
        self.holding: dict[str, dict[Endpoint, list[tuple[int | None, str, bool]]]] = {}

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
            await self._place_sentinel()
        except Exception as exc:  # Redis may be down (the pub/sub layer subscribes at once)
            self._starting = None
            self.health.failed("new_channel", exc)
            raise DeliveryFailed() from exc
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
        history = self._history
        if isinstance(history, RedisHistory):
            self._history = None
            with contextlib.suppress(Exception):
                await history.close()
        await self.presence.stop()

    @property
    def history(self) -> MemoryHistory | RedisHistory:
        """Where topics are numbered: Redis with a channels_redis layer, else this process's memory."""
        history = self._history
        if history is None:
            self.pick_layer()
            hosts = redis_hosts(self.layer) if self.layer is not None else None
            prefix = getattr(self.layer, "prefix", "asgi")
            history = self._history = RedisHistory(hosts, prefix) if hosts else MemoryHistory()
        return history

    async def number(self, topic: str, text: str) -> tuple[int, str]:
        """Give one frame published to ``topic`` its ``n`` (kept in the topic's history if it has one)."""
        size, ttl = history_of(topic)
        history = self.history
        if isinstance(history, MemoryHistory):
            return history.append(topic, text, size, ttl, time.monotonic())
        try:
            async with self._group_calls:  # Redis calls share the layer calls' bound (redis-py's pool)
                return await history.append(topic, text, size, ttl)
        except Exception as exc:  # Redis unreachable: the publish fails as a layer call would
            self.health.failed("history append", exc)
            raise DeliveryFailed() from exc

    async def position(self, topic: str, since: tuple[int, str] | None) -> Recovery:
        """Where ``topic`` stands, and (with ``since``) the frames missed since then, if all are kept."""
        ttl = history_of(topic)[1]
        max_frames = int(settings.RECOVERY_MAX_FRAMES)
        history = self.history
        if isinstance(history, MemoryHistory):
            return history.read(topic, since, ttl, max_frames, time.monotonic())
        try:
            async with self._group_calls:
                return await history.read(topic, since, ttl, max_frames)
        except Exception as exc:
            self.health.failed("history read", exc)
            raise DeliveryFailed() from exc

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
        """Await one channel-layer call, at most ``MAX_GROUP_CALLS`` at once per process.

        Raises :class:`DeliveryFailed` when the call fails (its exception is the cause): the layer
        is unreachable (counted by :attr:`health`, which logs the outage once), or the channel of
        the process it was sent to is full (``ChannelFull``, not an outage).
        """
        try:
            async with self._group_calls:
                await call
        except ChannelFull as exc:
            raise DeliveryFailed("The receiving server is too busy; try again shortly.") from exc
        except Exception as exc:
            self.health.failed(getattr(call, "__qualname__", "a layer call"), exc)
            raise DeliveryFailed() from exc
        else:
            if self.health.down and not self._rejoin_due and not settings.LAYER_CHECK_INTERVAL:
                self.health.recovered()  # no checks: a call that went through is the only sign
        finally:
            call.close()  # never started if cancelled while waiting for a slot: no "never awaited"

    # ------------------------------------------------------------------ connections

    def address(self, connection: Endpoint) -> str:
        """The address of a local connection."""
        return make_address(self.channel, connection.connection_id)

    def attach(self, connection: Endpoint, count_as: tuple[str, ...] = ()) -> str:
        """Register a new local connection, counted in :attr:`counts` under each of ``count_as``; returns
        its address."""
        self.connections[connection.connection_id] = connection
        if count_as:
            self._counted[connection.connection_id] = count_as
            for key in count_as:
                self.counts[key] = self.counts.get(key, 0) + 1
        return self.address(connection)

    async def detach(self, connection: Endpoint) -> None:
        """Forget a closed connection (and uncount it) and drop all its memberships."""
        self.connections.pop(connection.connection_id, None)
        for key in self._counted.pop(connection.connection_id, ()):
            if self.counts[key] > 1:
                self.counts[key] -= 1
            else:
                del self.counts[key]
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
        presence = topic_kinds.presence_of(topic)
        if presence:
            await self.presence.join(connection, topic, presence)

    async def follow(self, connection: Endpoint, topic: str, since: tuple[int, str] | None) -> Recovery:
        """Join ``topic`` and tell where it stands (with ``since``: what was missed), holding back its
        frames for ``connection`` until :meth:`release`; the caller must call it (or :meth:`leave`).

        The frames published meanwhile are held, not lost: :meth:`release` sends the missed ones,
        then the held ones that are newer (no gap, no duplicate, in order).
        """
        holding = self.holding.setdefault(topic, {})
        holding[connection] = []
        try:
            await self.join(connection, topic)
            return await self.position(topic, since)
        except BaseException:
            self._unhold(topic, connection)
            raise

    def release(self, connection: Endpoint, topic: str, recovery: Recovery) -> None:
        """End :meth:`follow`: queue the missed frames (when recovered), then the frames held since
        that are newer than ``recovery.n``; from now on the topic's frames reach ``connection`` live."""
        held = self._unhold(topic, connection)
        if connection.closed or topic not in connection.topics:
            return
        if recovery.recovered and recovery.frames:
            connection.replay(recovery.frames)
        after = recovery.n
        for n, text, volatile in held:
            if n is None or n > after:
                connection.offer(text, volatile)

    def _unhold(self, topic: str, connection: Endpoint) -> list[tuple[int | None, str, bool]]:
        holding = self.holding.get(topic)
        if holding is None:
            return []
        held = holding.pop(connection, [])
        if not holding:
            del self.holding[topic]
        return held

    async def leave(self, connection: Endpoint, topic: str) -> None:
        """Stop ``connection`` following ``topic``."""
        connection.topics.discard(topic)
        self.presence.leave(connection, topic)
        if self.holding:
            self._unhold(topic, connection)
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
    async def send_to_topic(
        self, topic: str, text: str, exclude: str | None = None, volatile: bool = False, numbered: bool = True
    ) -> None:
        """Deliver an encoded frame to every follower of ``topic``, in every process.

        ``exclude`` is the address of a connection that does not get it. A ``volatile`` frame
        may be dropped for a connection whose outbox is over its limit, and is not numbered;
        any other gets the topic's next ``n`` (and a place in its history, if it keeps one),
        unless ``numbered`` is False (a ``presence.diff``: never dropped, yet no place in the history).
        """
        n = None
        if not volatile and numbered:
            n, text = await self.number(topic, text)
        if self.layer is None:
            return await self.deliver(topic, text, exclude, volatile, n)
        event: dict[str, Any] = {"type": TOPIC_EVENT, "topic": topic, "text": text}
        if n is not None:
            event["n"] = n
        if exclude:
            event["exclude"] = exclude
        if volatile:
            event["volatile"] = True
        await self._layer_call(self.layer.group_send(group_name(topic), event))

    @_on_serving_hub
    async def presence_state(self, topic: str, limit: int | None = None) -> dict[str, Any]:
        """``{"members", "count", "v", "truncated"}`` of a presence topic, over every process (at most
        ``limit`` members; None: all). Raises :class:`DeliveryFailed` when Redis cannot be read."""
        return await self.presence.state(topic, limit)

    @_on_serving_hub
    async def send_to_address(self, address: str, text: str, volatile: bool = False) -> None:
        """Deliver an encoded frame to one connection, in whatever process it lives."""
        connection, channel, connection_id = self._find(address)
        if connection is not None:
            connection.offer(text, volatile)
        elif channel is not None:
            event: dict[str, Any] = {"type": DIRECT_EVENT, "connection": connection_id, "text": text}
            if volatile:
                event["volatile"] = True
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
    async def close_topic(self, topic: str, code: int, reason: str) -> None:
        """Close every follower of ``topic`` (each gets ``s.closing`` first), in every process."""
        if self.layer is None:
            self.close_local(topic, code, reason)
            return
        event = {"type": CLOSE_TOPIC_EVENT, "topic": topic, "code": code, "reason": reason}
        await self._layer_call(self.layer.group_send(group_name(topic), event))

    @_on_serving_hub
    async def recheck(self, topic: str) -> None:
        """Ask every follower of ``topic``, in every process, whether it may still follow it."""
        if self.layer is None:
            return await self.recheck_local(topic)
        event = {"type": RECHECK_EVENT, "topic": topic}
        await self._layer_call(self.layer.group_send(group_name(topic), event))

    @_on_serving_hub
    async def recheck_followed(self, topic: str) -> None:
        """Ask every follower of ``topic``, in every process, again for **each** topic it follows.

        ``recheck_followed("user:4")`` rechecks every topic of user 4's connections (after a change
        of their groups or permissions): one layer message, to the processes where they are.
        """
        if self.layer is None:
            return await self.recheck_followed_local(topic)
        event = {"type": RECHECK_FOLLOWED_EVENT, "topic": topic}
        await self._layer_call(self.layer.group_send(group_name(topic), event))

    def _find(self, address: str) -> tuple[Endpoint | None, str | None, str]:
        """Where ``address`` lives: ``(local connection, None, id)`` when it is this hub's (the
        connection is None if it has gone), ``(None, layer channel, id)`` when another process's."""
        channel, connection_id = split_address(address)
        if channel == self.channel or self.layer is None or channel == LOCAL:
            return self.connections.get(connection_id), None, connection_id
        return None, channel, connection_id

    async def deliver(
        self, topic: str, text: str, exclude: str | None = None, volatile: bool = False, n: int | None = None
    ) -> None:
        """Hand one frame to every local follower of ``topic`` (the per-delivery hot path).

        It never waits on a socket. A socket that may take pre-built frames (``connection.raw``,
        see :mod:`~.raw_frames`), can take them now and has no frame of its own waiting gets the
        frame framed once for all of them, written to its transport; every other one gets the
        text in its outbox (``offer``), which its own writer sends when the socket drains.
        A connection being subscribed with recovery (:meth:`follow`) gets it held instead.
        """
        subscribers = self.members.get(topic)
        if not subscribers:
            return
        excluded = split_address(exclude)[1] if exclude else None
        held = self.holding.get(topic) if self.holding else None
        if held:
            for connection, frames in held.items():
                if connection.connection_id != excluded:
                    frames.append((n, text, volatile))
        frame: bytes | None = None
        raw_count = pushed = 0
        try:
            # No await in this loop: offer() only appends, so the set cannot change meanwhile.
            for connection in subscribers:
                if connection.connection_id == excluded or connection.closed or (held and connection in held):
                    continue
                raw = connection.raw
                # RawSocket.write's test, inlined: no frame of the connection waiting or being sent,
                # not paused by flow control, open, transport not closing.
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
                connection.offer(text, volatile)
        finally:
            self.raw_frames += raw_count
            self.asgi_frames += pushed
        if pushed:
            # Let the connections' writers run before the next publish: a loop that publishes without
            # waiting (an in-memory layer never waits) would otherwise fill every outbox at once.
            await asyncio.sleep(0)

    async def _read(self) -> None:
        """Receive what other processes send to this hub's channel.

        A failed read counts as a layer failure (:attr:`health` logs the outage once) and is tried
        again after a pause that grows from 0.1 s to ``READ_RETRY_MAX``.
        """
        layer, channel = self.layer, self.channel
        delay = 0.1
        while True:
            try:
                event = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.health.failed(f"receive on {channel}", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, READ_RETRY_MAX)
                continue
            delay = 0.1
            if type(event) is dict and event.get("type") == PROBE_EVENT:
                continue  # check_layer's message to itself: it went through the layer, nothing to do
            try:
                await self._handle(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("channelbus: could not handle channel-layer message %r", event)

    async def _handle(self, event: Any) -> None:
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == TOPIC_EVENT:
            await self.deliver(
                event["topic"],
                event["text"],
                event.get("exclude"),
                bool(event.get("volatile")),
                event.get("n"),
            )
        elif kind == DIRECT_EVENT:
            connection = self.connections.get(event["connection"])
            if connection is not None:
                connection.offer(event["text"], bool(event.get("volatile")))
        elif kind == CLOSE_EVENT:
            connection = self.connections.get(event["connection"])
            if connection is not None:
                code = int(event.get("code", CloseCode.FORBIDDEN))
                # Not awaited here: this reader serves every connection and must not wait for one socket.
                in_background(connection.close(code, str(event.get("reason", ""))))
        elif kind == RECHECK_EVENT:
            await self.recheck_local(event["topic"])
        elif kind == RECHECK_FOLLOWED_EVENT:
            # In the background: one database check per followed topic must not hold up this reader.
            in_background(self.recheck_followed_local(event["topic"]))
        elif kind == CLOSE_TOPIC_EVENT:
            self.close_local(event["topic"], int(event["code"]), str(event.get("reason", "")))
        else:
            logger.warning("channelbus: ignored unknown channel-layer message %r", event)

    def close_local(self, topic: str, code: int, reason: str) -> None:
        """Close each local follower of ``topic``, in background tasks: no socket is waited for."""
        for connection in tuple(self.members.get(topic, ())):
            in_background(connection.close(code, reason))

    async def recheck_local(self, topic: str) -> None:
        """Ask again whether each local follower may still follow ``topic``; drop those who may not."""
        for connection in tuple(self.members.get(topic, ())):
            await connection.recheck_access(topic)

    async def recheck_followed_local(self, topic: str) -> None:
        """For each local follower of ``topic``, ask again about every topic it follows (sorted)."""
        for connection in tuple(self.members.get(topic, ())):
            for followed in sorted(connection.topics):
                if not connection.closed and followed in connection.topics:
                    await connection.recheck_access(followed)

    async def _refresh_groups(self) -> None:
        """Check the layer every ``LAYER_CHECK_INTERVAL`` seconds, and renew every group hourly."""
        renew_at = time.monotonic() + GROUP_REFRESH_SECONDS
        while True:
            interval = settings.LAYER_CHECK_INTERVAL
            await asyncio.sleep(max(0.0, min(interval or GROUP_REFRESH_SECONDS, renew_at - time.monotonic())))
            if interval:
                await self.check_layer()
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + GROUP_REFRESH_SECONDS
                with contextlib.suppress(DeliveryFailed):  # logged; the next renewal or check tries again
                    await self._rejoin_groups("renewed")

    async def check_layer(self) -> None:
        """One cheap look at the channel layer (every ``LAYER_CHECK_INTERVAL`` seconds per process).

        With ``RedisChannelLayer`` it renews this hub's sentinel key (one ``EXPIRE`` per Redis host);
        when the key is gone, Redis lost this process's group memberships (restarted empty, flushed,
        evicted): every group is added again at once, with a WARNING. Other layers get a message to
        the hub's own channel. A check that fails or takes over ``CHECK_TIMEOUT`` seconds counts
        as a layer failure; the first check that passes after failures logs at INFO that delivery
        resumed (:class:`~channelbus.transport.layer_health.LayerHealth`).
        """
        try:
            try:
                lost = await self._probe_layer()
            except Exception:
                if not keeps_groups_in_redis(self.layer):
                    raise
                # Once more on new connections: after a restart, each idle one fails once.
                await drop_idle_connections(self.layer)
                lost = await self._probe_layer()
            if lost:
                self.health.lost_groups(len(self.members))
                self._rejoin_due = True
            rejoined = self._rejoin_due
            if rejoined:  # until every group is back, even if Redis went away again meanwhile
                await self._rejoin_groups("added again")
                self._rejoin_due = False
        except Exception as exc:
            if not isinstance(exc, DeliveryFailed):  # a DeliveryFailed was counted by _layer_call
                self.health.failed("check", exc)
            return
        self.health.recovered(f" ({len(self.members)} groups added again)" if rejoined else "")

    async def _probe_layer(self) -> bool:
        """Reach the layer once, within ``CHECK_TIMEOUT``; True when Redis lost this hub's groups."""
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await self._probe_layer_now()

    async def _probe_layer_now(self) -> bool:
        layer = self.layer
        if not keeps_groups_in_redis(layer):
            await layer.send(self.channel, {"type": PROBE_EVENT})
            return False
        if await renew_sentinel(layer, sentinel_key(layer, self.channel), self._sentinel_ttl()):
            return False
        # Placed before the groups are added again: a restart in the middle is found by the next check.
        await self._place_sentinel()
        return True

    def _sentinel_ttl(self) -> int:
        return sentinel_ttl(settings.LAYER_CHECK_INTERVAL or 1.0)

    async def _place_sentinel(self) -> None:
        """With ``RedisChannelLayer``, write this hub's sentinel key (see :meth:`check_layer`)."""
        if keeps_groups_in_redis(self.layer):
            await place_sentinel(self.layer, sentinel_key(self.layer, self.channel), self._sentinel_ttl())

    async def _rejoin_groups(self, done: str) -> None:
        """``group_add`` for every topic with local followers, ``MAX_GROUP_CALLS`` at a time.

        Raises :class:`DeliveryFailed` (after trying them all) when any failed.
        """
        started = time.monotonic()
        topics = list(self.members)
        results = await asyncio.gather(
            *(self._layer_call(self.layer.group_add(group_name(topic), self.channel)) for topic in topics),
            return_exceptions=True,
        )
        failed = [result for result in results if isinstance(result, BaseException)]
        if failed:
            logger.warning(
                "channelbus: %d of %d layer groups could not be %s", len(failed), len(topics), done
            )
            raise failed[0]
        logger.debug("channelbus: %s %d groups in %.3fs", done, len(topics), time.monotonic() - started)


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
            hub._history = None  # numbered where the new layer says (its Redis, or this process)
            hub.presence.forget_store()


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
