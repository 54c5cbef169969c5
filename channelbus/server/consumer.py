"""The socket: :class:`BusConsumer`, one instance per WebSocket connection.

It is a plain ASGI application (``BusConsumer.as_asgi()``) that lives in
Channels' world (routing, auth middleware, channel layers) but does not stack
on Channels' generic consumers: Channels creates an asyncio Task and makes a
thread-pool hop per message, which costs 3.6x the CPU of the socket itself
(``docs/performance.md``). Here each connection runs one receive loop that
decodes and routes each frame inline. Handlers of ordinary messages run in
arrival order: when none is running, the handler starts in an eager task
(Python >= 3.12: no loop iteration when it finishes without waiting; 3.11: a
plain task); messages arriving meanwhile wait in a bounded deque that the
running task drains. Control messages (``s.ping``) are answered at once from
the receive loop, and ``concurrent`` types get a task each.

Per frame: rate limit → ``protocol.decode`` → registry lookup → route;
then, in order: permission → payload validation → handler → reply. Every
failure becomes an error frame and a log line with the trace id; nothing a
client sends closes the connection except the limits (rate flood: 4429).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, cast
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.dispatch import Signal

from .. import signals
from ..background import in_background
from ..conf import settings
from ..jobs import caps, liveness, tracking
from ..jobs.deferred import enqueue, new_job_id
from ..messages import REPLIED, Message, Metadata, Registry, incoming, repeats, reply_frame
from ..protocol import (
    BadRequest,
    BusError,
    CloseCode,
    Envelope,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    UnknownMessageType,
    decode,
    encode,
    error_frame,
    states,
)
from ..publishing.recheck import check_access_again
from ..session import ConnectionSession
from ..topics import topic_kinds, topics_from_token
from ..topics.control import TopicLeft
from ..transport import Hub, Recovery, get_hub
from ..transport.raw_frames import RawSocket, raw_socket
from . import auth, limits
from .errorlog import ErrorLogLimiter, printable
from .outbox import OVERFLOW, QUEUED, Outbox
from .ratelimit import TokenBucket

__all__ = ["BusConsumer"]

logger = logging.getLogger("channelbus")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SUBPROTOCOL = "channelbus.v1"
#: The close reason when the channel layer cannot be reached at connect (close code 1013).
LAYER_DOWN = "The server cannot reach its channel layer; try again later."
#: Seconds a socket has to take its close frame (and a slow one its ``s.closing``) before it is dropped.
CLOSE_TIMEOUT = 1.0
#: Seconds between two looks at the entry of a request whose repeat waits for its first run to end.
REPEAT_POLL = 0.2


class BusConsumer:
    """The channelbus WebSocket endpoint; route it with :func:`channelbus.routing.websocket_urlpatterns`.

    Subclass to change :attr:`registry` (the incoming registry). Attributes of
    a live connection: ``scope``, ``user``, ``connection_id``, ``channel_name``
    (its address, for ``publish(to=...)``) and ``topics`` (those it follows).
    """

    #: Where incoming message types are looked up.
    registry: Registry = incoming

    def __init__(self) -> None:
        self.scope: Scope = {}
        self.user: Any = None
        self.connection_id = secrets.token_hex(8)
        self.channel_name: str | None = None
        self.anonymous = True
        self.closed = False
        self._send: Send | None = None
        #: Frames of this connection not written yet: ASGI sends in progress and frames in its
        #: outbox (the hub writes no raw frame meanwhile, so frames keep their order).
        self.sending = 0
        # Frames the socket could not take at once, and the task that writes them (made on first use).
        self._outbox: Outbox | None = None
        self._writer: asyncio.Task[None] | None = None
        self._slow_timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None  # the task running __call__, cancelled as a last resort
        self._dropped_by_server = False
        self._outbox_limits = (0, 0)  # OUTBOX_MAX_FRAMES, OUTBOX_MAX_BYTES: read when the connection opens
        self._grace = 0.0  # SLOW_CLIENT_GRACE
        #: The socket's transport for pre-built frames (:mod:`channelbus.transport.raw_frames`), or None.
        self.raw: RawSocket | None = None
        # In-order handling: messages waiting behind a handler that is still running.
        # Both containers are made on first use: most sockets never need them.
        self._waiting: deque[tuple[type[Message], Envelope, float]] | None = None
        self._worker: asyncio.Task[None] | None = None  # set while an in-order handler is running
        self._concurrent: set[asyncio.Task[None]] | None = None
        self._anonymous_ok = False  # the ALLOW_ANONYMOUS setting, read when the connection opens
        #: Topics this connection follows.
        self.topics: set[str] = set()
        self.max_topics = 0
        self.hub: Hub | None = None
        self._topic_lock: asyncio.Lock | None = None
        self._strict_seq = 0  # places handed to strictly ordered deferred messages
        #: This connection's session (``channel_session``), in Django's cache.
        self.session: ConnectionSession | None = None
        self._track = False
        self._activity_due = 0.0
        self._close_code: int | None = None
        self._max_concurrent = 0
        self._max_queued = 0
        # Repeated requests (messages/repeats.py): this connection's owner's requests (None: not
        # deduplicated), found on first use; and the tasks running a request seen for the first time,
        # with its entry's key and when its window ends: kept running at the close.
        self._requests: repeats.Requests | None = None
        self._requests_found = False
        self._recording: dict[asyncio.Task[Any], tuple[str, float]] | None = None
        # Client-error log lines within CLIENT_ERROR_LOG_LINES per interval, and the summary's timer.
        self._error_log: ErrorLogLimiter | None = None
        self._error_log_timer: asyncio.TimerHandle | None = None

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        """An ASGI application that makes one consumer instance per connection."""

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await cls(**initkwargs)(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        app.__doc__ = cls.__doc__
        app.__name__ = cls.__name__
        return app

    # ------------------------------------------------------------------ lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the connection until the client or the server closes it."""
        self.scope = scope
        self._send = _unwrap_session_send(send)
        self._task = asyncio.current_task()
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        self.user = user = scope.get("user")
        self.anonymous = not (user is not None and getattr(user, "is_authenticated", False))
        self.max_topics = settings.MAX_TOPICS_PER_CONNECTION
        self._outbox_limits = (settings.OUTBOX_MAX_FRAMES, settings.OUTBOX_MAX_BYTES)
        self._grace = float(settings.SLOW_CLIENT_GRACE)
        registry = self.registry
        self._anonymous_ok = bool(settings.ALLOW_ANONYMOUS)
        if self.anonymous and not (self._anonymous_ok or registry.allows_anonymous()):
            await self.accept()
            # Says which credential failed (none, an expired or an invalid token), and logs it.
            await self.close(CloseCode.NOT_SIGNED_IN, auth.signed_out_refusal(scope))
            return
        hub = self.hub = get_hub()
        try:
            await hub.start()
        except Exception:
            logger.warning(
                "channelbus: refused a connection: the channel layer cannot be reached", exc_info=True
            )
            await self.accept()
            await self.close(CloseCode.TRY_AGAIN_LATER, LAYER_DOWN)
            return
        await self.accept()
        # Counted and checked with no await in between: sockets opening at once cannot pass together.
        counted = limits.limits_for(scope, user)
        refused = limits.over_limit(hub, counted)
        if refused is not None:
            await self.close(CloseCode.TOO_MANY, refused)
            return
        # Pre-built frames (not for a subclass with an offer() of its own: it must see every frame).
        if settings.RAW_FRAMES and type(self).offer is BusConsumer.offer:
            self.raw = raw_socket(self._send)
        self.channel_name = address = hub.attach(self, tuple(key for key, _, _ in counted))
        self.session = ConnectionSession(address)
        self._track = bool(settings.TRACK_CONNECTIONS)
        try:
            if self._track:
                self._strict_seq = 1  # the set-up job is place 1: strict messages come after it
                self._activity_due = time.monotonic() + tracking.activity_interval()
                in_background(self._record_opened())
            try:
                await self._join_initial_topics()
            except Unavailable:
                logger.warning(
                    "channelbus: closing %s: the channel layer cannot be reached", self.connection_id
                )
                await self.close(CloseCode.TRY_AGAIN_LATER, LAYER_DOWN)
                return
            await self._notify(signals.connection_opened)
            await self._receive_loop(receive)
        except asyncio.CancelledError:
            # Cancelled by _drop() (a slow socket whose transport cannot be aborted): the socket is
            # done with, not the server. Any other cancellation goes on.
            if not self._dropped_by_server:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            await self._cleanup()

    async def accept(self) -> None:
        """Accept the handshake, choosing ``channelbus.v1`` if the client asked for it."""
        event: dict[str, Any] = {"type": "websocket.accept"}
        if SUBPROTOCOL in self.scope.get("subprotocols", ()):
            event["subprotocol"] = SUBPROTOCOL
        await self._send_event(event)

    async def _send_event(self, event: dict[str, Any]) -> None:
        """``send`` an event, counted in :attr:`sending` while it is in progress."""
        assert self._send is not None
        self.sending += 1
        try:
            await self._send(event)
        finally:
            self.sending -= 1

    async def close(self, code: int, reason: str = "") -> None:
        """Send ``s.closing`` with the code and reason, then close the socket.

        Frames already waiting in the outbox go first. A socket that does not take them within
        ``SLOW_CLIENT_GRACE`` seconds (and the close within 1 s more) is dropped instead.
        """
        if self.closed:
            return
        await self.send_frame(encode("s.closing", {"code": code, "reason": reason}))
        self.closed = True
        self._close_code = code
        writer = self._writer
        if writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(writer), self._grace)
            except TimeoutError:
                self._drop()
                return
        await self._send_close(code, reason)

    async def _send_close(self, code: int, reason: str) -> None:
        """The close frame, within :data:`CLOSE_TIMEOUT`; the socket is dropped if it cannot take it."""
        # A close reason is at most 123 UTF-8 bytes.
        short = reason.encode()[:123].decode(errors="ignore")
        try:
            await asyncio.wait_for(
                self._send_event({"type": "websocket.close", "code": code, "reason": short}), CLOSE_TIMEOUT
            )
        except TimeoutError:
            self._drop()
        except Exception:
            pass  # the client went away first: nothing left to close

    async def _receive_loop(self, receive: Receive) -> None:
        conf = settings
        max_bytes: int = conf.MAX_FRAME_BYTES
        rate = conf.RATE_LIMIT
        bucket = TokenBucket(float(rate), conf.RATE_BURST) if rate else None
        flood_limit: int = conf.FLOOD_CLOSE_AFTER
        self._max_concurrent = conf.MAX_CONCURRENT_HANDLERS
        self._max_queued = conf.MAX_QUEUED_MESSAGES
        refused = 0
        on_frame = self._on_frame
        while not self.closed:
            event = await receive()
            kind = event["type"]
            if kind == "websocket.receive":
                if bucket is not None:
                    wait = bucket.take()
                    if wait:
                        refused += 1
                        if refused >= flood_limit:
                            logger.warning("channelbus: closing %s after a message flood", self.connection_id)
                            await self.close(CloseCode.TOO_MANY, "Too many messages.")
                            return
                        await self.send_error(
                            RateLimited(
                                trace_id=_trace_id_of(event, max_bytes), retry_after=round(wait + 0.005, 2)
                            )
                        )
                        continue
                    refused = 0
                text = event.get("text")
                if text is None:
                    await self.send_error(
                        BadRequest(
                            "Send JSON envelopes as text frames, not binary.",
                            trace_id=_trace_id_of(event, max_bytes),
                        )
                    )
                    continue
                if self._track and time.monotonic() >= self._activity_due:
                    self._activity_due = time.monotonic() + tracking.activity_interval()
                    in_background(_enqueue_job(tracking.record_activity, self.channel_name, time.time()))
                await on_frame(text, max_bytes)
            elif kind == "websocket.disconnect":
                self._close_code = event.get("code")
                return

    async def _cleanup(self) -> None:
        self.closed = True
        if self._slow_timer is not None:
            self._slow_timer.cancel()
        if self._writer is not None:
            self._writer.cancel()
        self._forget_outbox()
        tasks = [t for t in (self._worker, *(self._concurrent or ())) if t is not None]
        if self._recording:
            tasks = self._keep_recording(tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._log_error_summary()
        if self.hub is not None:
            await self.hub.detach(self)
        if self.session is not None:
            in_background(self.session.aclear())
        if self._track and self.channel_name is not None:
            in_background(_enqueue_job(tracking.record_closed, self.channel_name, time.time()))
        await self._notify(signals.connection_closed, code=self._close_code)

    async def _record_opened(self) -> None:
        user = self.user
        user_pk = str(user.pk) if not self.anonymous else None
        headers = dict(self.scope.get("headers") or ())
        agent = headers.get(b"user-agent", b"").decode("latin1")
        client = self.scope.get("client") or (None, None)
        await _enqueue_job(tracking.record_opened, self.channel_name, user_pk, time.time(), agent, client[0])

    # ------------------------------------------------------------------ topics

    @property
    def topic_lock(self) -> asyncio.Lock:
        """Taken by ``topic.subscribe`` and ``topic.leave``, so they apply in the order they arrived."""
        if self._topic_lock is None:
            self._topic_lock = asyncio.Lock()
        return self._topic_lock

    async def join(self, topic: str) -> None:
        """Follow ``topic`` (no permission check: callers check first)."""
        assert self.hub is not None
        await self.hub.join(self, topic)

    async def leave(self, topic: str) -> None:
        """Stop following ``topic``."""
        if self.hub is not None:
            await self.hub.leave(self, topic)

    async def follow(self, topic: str, since: tuple[int, str] | None) -> Recovery:
        """Follow ``topic``, holding its frames back until :meth:`release`; returns where it stands
        and, after ``since = (n, epoch)``, the frames missed (see :meth:`Hub.follow`)."""
        assert self.hub is not None
        return await self.hub.follow(self, topic, since)

    def release(self, topic: str, recovery: Recovery) -> None:
        """Send the missed frames of ``recovery``, then the held ones: ``topic`` is followed live."""
        if self.hub is not None:
            self.hub.release(self, topic, recovery)

    async def _join_initial_topics(self) -> None:
        """The kinds every connection joins (``user:<pk>``, ``broadcast``), then the page's signed topics."""
        for kind in topic_kinds.auto_join_kinds():
            key = kind.auto_key(self.user)
            if key is not False:
                await self.join(kind.kind if key is None else f"{kind.kind}:{key}")
        token = _query_value(self.scope, "topics")
        if token:
            try:
                names = topics_from_token(token, self.user)  # refused if made for another user
            except BusError as exc:
                await self.send_error(exc)
                return
            for name in names[: max(0, self.max_topics - len(self.topics))]:
                await self.join(name)

    async def recheck_access(self, topic: str) -> None:
        """Ask again whether this connection's user may follow ``topic``; if not, leave it and say why."""
        try:
            # With its permissions read again: Django cached them on this user object at the first check.
            await database_sync_to_async(check_access_again)(topic, self.user)
        except BusError as exc:
            await self.leave(topic)
            await self.send_message(TopicLeft(topic=topic, reason=exc.msg))

    # ------------------------------------------------------------------ the outbox

    def offer(self, text: str, volatile: bool = False) -> None:
        """Queue one encoded frame for this socket without waiting (what a publish does per socket).

        The frame goes into the connection's outbox (:mod:`channelbus.server.outbox`) and the
        connection's own writer sends it. Over the outbox's limit a ``volatile`` frame is dropped;
        a socket that stays over it is closed with 4408 (``docs/protocol.md``, "Slow clients").
        """
        if self.closed:
            return
        box = self._outbox
        if box is None:
            box = self._outbox = Outbox(*self._outbox_limits)
        loop = asyncio.get_running_loop()
        verdict = box.put(text, volatile, loop.time())
        if verdict is QUEUED:
            self.sending += 1
            if self._writer is None:
                self._writer = loop.create_task(self._write_outbox(box))
            if box.slow_since is not None and self._slow_timer is None:
                self._slow_timer = loop.call_at(box.slow_since + self._grace, self._check_slow)
        elif verdict is OVERFLOW:
            self._too_slow(box, "its outbox is full")

    def replay(self, texts: tuple[str, ...]) -> None:
        """Queue the missed frames of a recovered topic, beyond the outbox's limits (the replay is
        bounded by ``RECOVERY_MAX_FRAMES``; the limits apply again once they are written)."""
        if self.closed or not texts:
            return
        box = self._outbox
        if box is None:
            box = self._outbox = Outbox(*self._outbox_limits)
        box.put_replay(texts)
        self.sending += len(texts)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_outbox(box))

    async def _write_outbox(self, box: Outbox) -> None:
        """Send what waits in the outbox, oldest first, until it is empty (the connection's writer)."""
        send = self._send
        assert send is not None
        try:
            while box:
                text = box.take()
                try:
                    await send({"type": "websocket.send", "text": text})
                except Exception:  # the client went away
                    self.closed = True
                    return
                finally:
                    self.sending -= 1
        finally:
            self._writer = None
            if not box:
                self._outbox = None  # most sockets need one only now and then: give the memory back

    def _forget_outbox(self) -> None:
        """Drop what waits in the outbox (the connection is closing)."""
        box = self._outbox
        if box is not None:
            self.sending -= box.clear()

    def _check_slow(self) -> None:
        """The grace timer: close the socket if its outbox is still over the limit."""
        self._slow_timer = None
        box = self._outbox
        if self.closed or box is None or box.slow_since is None:
            return
        loop = asyncio.get_running_loop()
        due = box.slow_since + self._grace
        if loop.time() < due:  # it came back under the limit and went over again since
            self._slow_timer = loop.call_at(due, self._check_slow)
            return
        self._too_slow(box, f"its outbox stayed over the limit for {self._grace:g} s")

    def _too_slow(self, box: Outbox, why: str) -> None:
        """Close a socket that does not read what it is sent: 4408, or dropped if it cannot take that."""
        reason = f"Too slow: {len(box)} frames were waiting."
        logger.warning(
            "channelbus: closing %s (4408): %s (%d frames, %d characters waiting; %d volatile dropped)",
            self.connection_id,
            why,
            len(box),
            box.size,
            box.dropped,
        )
        self.closed = True
        self._close_code = CloseCode.TOO_SLOW
        if self._slow_timer is not None:
            self._slow_timer.cancel()
            self._slow_timer = None
        if self._writer is not None:
            self._writer.cancel()  # waiting on the socket: nothing half written (ASGI sends wait first)
        self._forget_outbox()
        in_background(self._close_slow(reason))

    async def _close_slow(self, reason: str) -> None:
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(BaseException):
                await writer
        try:
            await asyncio.wait_for(
                self._send_event(
                    {
                        "type": "websocket.send",
                        "text": encode("s.closing", {"code": CloseCode.TOO_SLOW, "reason": reason}),
                    }
                ),
                CLOSE_TIMEOUT,
            )
        except TimeoutError:
            self._drop()
            return
        except Exception:  # gone already
            return
        await self._send_close(CloseCode.TOO_SLOW, reason)
        # A client that does not answer the close does not read: drop it rather than wait for it.
        await asyncio.sleep(CLOSE_TIMEOUT)
        task = self._task
        if task is not None and not task.done():
            self._drop()

    def _drop(self) -> None:
        """Drop a socket that cannot take even its close frame: abort its transport, else end the app."""
        self.closed = True
        transport = getattr(getattr(self._send, "__self__", None), "transport", None)
        if transport is not None and hasattr(transport, "abort"):
            transport.abort()  # the server sees the connection lost and ends the receive loop
            return
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            self._dropped_by_server = True
            task.cancel()

    # ------------------------------------------------------------------ frames in

    async def _on_frame(self, text: str, max_bytes: int) -> None:  # noqa: C901 - per-frame hot path, kept inline
        try:
            env = decode(text, max_bytes)
        except BusError as exc:
            await self.send_error(exc)
            return
        cls = self.registry.get(env.t)
        if self.anonymous and not (
            (cls is not None and (cls.allow_anonymous or cls.control)) or self._anonymous_ok
        ):
            # Checked before "unknown type", so signed-out users cannot probe the registered names.
            await self.send_error(Unauthorized(f"Sign in to send {env.t}.", trace_id=env.i, type_name=env.t))
            return
        if cls is None:
            await self.send_error(
                UnknownMessageType(f"Unknown message type {env.t!r}.", trace_id=env.i, type_name=env.t)
            )
            return
        if signals.message_received.receivers:
            await self._notify(signals.message_received, message=env)
        received = time.time()
        if cls.control:
            await self._process(cls, env, received)
        elif cls.concurrent:
            running = self._concurrent
            if running is None:
                running = self._concurrent = set()
            if len(running) >= self._max_concurrent:
                await self.send_error(
                    RateLimited("Too many messages are being handled.", trace_id=env.i, retry_after=1)
                )
                return
            task = asyncio.ensure_future(self._process(cls, env, received))
            running.add(task)
            task.add_done_callback(running.discard)
        elif self._worker is None:
            # Nothing runs ahead of it. On Python >= 3.12 the task starts eagerly: a handler
            # that finishes without waiting costs no loop iteration.
            task = _start_task(self._run_in_order(cls, env, received))
            if not task.done():
                self._worker = task
        elif self._waiting is None:
            self._waiting = deque(((cls, env, received),))
        elif len(self._waiting) >= self._max_queued:
            await self.send_error(
                RateLimited("Too many messages are waiting.", trace_id=env.i, retry_after=1)
            )
        else:
            self._waiting.append((cls, env, received))

    async def _run_in_order(self, cls: type[Message], env: Envelope, received: float) -> None:
        """Handle one message, then those that arrived meanwhile, in arrival order."""
        try:
            await self._process(cls, env, received)
            waiting = self._waiting
            while waiting:
                await self._process(*waiting.popleft())
        finally:
            self._worker = None

    async def _process(self, cls: type[Message], env: Envelope, received: float) -> None:  # noqa: C901 - per-request hot path, kept inline
        """permission → validation → handler → reply, with every failure sent as an error frame.

        A request that may be a repeat (``idempotent`` type, with ``i``) is looked up first: a repeat is
        answered from its first run's entry; a first run records its terminal frame (:meth:`_record`).
        """
        key: str | None = None
        if cls.idempotent and env.i is not None and not cls.control:
            found = await self._begin_request(cls, env, received)
            if found is False:
                return  # a repeat, answered
            key = found
        meta = Metadata(
            trace_id=env.i,
            user=self.user,
            connection_id=self.connection_id,
            channel_name=self.channel_name,
            received_at=received,
            registry=self.registry,
            connection=self,
        )
        try:
            allowed_kind = cls._allowed_kind
            if allowed_kind == "async" and not await cls.allowed(self.user, self):  # type: ignore[misc]
                raise _refusal(cls, meta)
            if cls.deferred:
                await self._enqueue(cls, env, meta, allowed_kind, key)
                return
            if cls._sync_handle:
                result = await database_sync_to_async(_run_sync)(cls, env.p, meta, self)
            else:
                if allowed_kind == "sync":
                    await database_sync_to_async(_check_allowed)(cls, meta, self)
                result = await cls.from_payload(env.p, meta).handle()
            if env.i is not None and result is not REPLIED:
                frame = reply_frame(cls, env.i, result)
                if key is not None:
                    await self._record(key, frame)
                await self.send_frame(frame)
            elif key is not None:
                await self._record(key, None)  # it sent its reply itself: nothing to keep
        except BusError as exc:
            if exc.trace_id is None:
                exc.trace_id = env.i
            await self._record(key, exc)
            await self.send_error(exc)
        except asyncio.CancelledError:
            if key is not None and self._requests is not None:  # ended without a reply: a repeat runs it
                in_background(self._requests.forget(key))
            raise
        except Exception:
            logger.exception("channelbus: handler of %s failed (i=%s)", cls.name, env.i)
            error = ServerError(trace_id=env.i)
            # A deferred type failed here, before its job was queued: not kept, a repeat may queue it.
            await self._record(key, None if cls.deferred else error)
            await self.send_error(error, log=False)
        finally:
            if key is not None:
                self._recorded()

    async def _enqueue(
        self,
        cls: type[Message],
        env: Envelope,
        meta: Metadata,
        allowed_kind: str | None,
        repeat_key: str | None = None,
    ) -> None:
        """A deferred message: check and validate here, take its places under the job caps, say ``q``,
        and put it on the task queue (with ``repeat_key``, the job keeps its frames for a repeat)."""
        if allowed_kind == "sync":
            await database_sync_to_async(_check_allowed)(cls, meta, self)
        cls.from_payload(env.p, meta)  # errors are the client's: answer now, not from a worker
        job_id = new_job_id()
        slots: tuple[str, ...] = ()
        owner = None if self.anonymous else str(self.user.pk)
        if caps.applies(self.channel_name, owner):
            # Over a cap: error.rate_limited, before q and before anything is queued.
            slots = await database_sync_to_async(caps.take)(cls, job_id, self.channel_name, owner, env.i)
        liveness.watch(self)  # its close is recorded, for cancel_on_disconnect
        seq = None
        if cls.ordering == "strict":
            self._strict_seq += 1
            seq = self._strict_seq
        if env.i is not None:
            # Before the enqueue: a backend that runs the job at once (the immediate one in tests)
            # sends r and s from inside it, and q must come first.
            queued = encode(cls.name, i=env.i, s=states.QUEUED)
            if repeat_key is not None and self._requests is not None:
                await self._requests.record(repeat_key, queued, False)
            await self.send_frame(queued)
        # If the enqueue fails, its place stays open: successors go ahead after STRICT_ORDER_TIMEOUT.
        try:
            await database_sync_to_async(enqueue)(
                cls, env.p, meta, seq=seq, job_id=job_id, slots=slots, repeat_key=repeat_key
            )
        except Exception:
            await database_sync_to_async(caps.release)(slots, job_id)
            raise

    # ------------------------------------------------------------------ repeated requests

    async def _begin_request(
        self, cls: type[Message], env: Envelope, received: float
    ) -> str | Literal[False] | None:
        """Look a request up in :mod:`channelbus.messages.repeats`: the key to record its frames under
        when it is seen for the first time; None when it is not deduplicated (no owner, the window
        off, the cache failing); False when it was a repeat, answered here (or followed in the
        background, for a deferred type: the messages behind it need not wait for a worker)."""
        if not self._requests_found:  # once per connection
            self._requests_found = True
            self._requests = repeats.of_connection(self.user, self.scope)
        requests = self._requests
        if requests is None:
            return None
        assert env.i is not None
        key = requests.key(cls.name, env.i)
        while True:
            found = await requests.begin(key)
            if found is repeats.Begun.FIRST:
                recording = self._recording
                if recording is None:
                    recording = self._recording = {}
                task = asyncio.current_task()
                assert task is not None
                recording[task] = (key, asyncio.get_running_loop().time() + requests.window)
                return key
            if found is repeats.Begun.UNRECORDED:
                return None
            assert isinstance(found, repeats.Entry)
            if cls.deferred:
                in_background(self._follow_in_background(cls, env, received, key, found))
                return False
            if await self._follow_repeat(cls, env.i, key, found):
                return False
            # Its first run ended with nothing kept: this one runs it (unless another got there first).

    async def _follow_repeat(self, cls: type[Message], trace_id: str, key: str, entry: repeats.Entry) -> bool:
        """Answer a repeat from the entry of its first run: the terminal frame if it is kept, else the
        latest state, then each new one, then the terminal frame, looking every :data:`REPEAT_POLL`
        seconds until it ends or this connection closes. False when the entry went away first (the
        first run ended with nothing kept, or its window passed): the repeat must run it."""
        requests = self._requests
        assert requests is not None
        sent = entry.frame
        if sent is not None:
            await self.send_frame(sent)
        while not entry.done and not self.closed:
            await asyncio.sleep(REPEAT_POLL)
            now = await requests.look(key)
            if now is repeats.Gone.MISSING:
                return False
            if now is repeats.Gone.UNKNOWN:
                await self.send_error(
                    Unavailable(
                        "The server cannot tell whether this request ran; try again shortly.",
                        trace_id=trace_id,
                        type_name=cls.name,
                    )
                )
                return True
            assert isinstance(now, repeats.Entry)
            entry = now
            if entry.frame is not None and entry.frame != sent:
                sent = entry.frame
                await self.send_frame(sent)
        return True

    async def _follow_in_background(
        self, cls: type[Message], env: Envelope, received: float, key: str, entry: repeats.Entry
    ) -> None:
        """A repeat of a deferred request, followed beside the connection's other messages; run again
        if its first run ended with nothing kept (a job dropped by ``cancel_on_disconnect``)."""
        assert env.i is not None
        if not await self._follow_repeat(cls, env.i, key, entry) and not self.closed:
            await self._process(cls, env, received)

    async def _record(self, key: str | None, reply: str | BusError | None) -> None:
        """Keep the terminal reply of request ``key`` (None: not deduplicated) seen for the first time,
        a frame or an error: a repeat gets the same frame. With nothing to keep (None, or an error
        that says "try again later": :func:`~channelbus.messages.repeats.is_recorded`) the entry is
        dropped, and a repeat runs the request again."""
        requests = self._requests
        if key is None or requests is None:
            return
        if reply is None or (isinstance(reply, BusError) and not repeats.is_recorded(reply)):
            await requests.forget(key)
            return
        if isinstance(reply, BusError):
            reply = error_frame(reply)
        await requests.record(key, reply, True)

    def _recorded(self) -> None:
        """The current task's request has ended: nothing to keep running at the close."""
        task = asyncio.current_task()
        if self._recording is not None and task is not None:
            self._recording.pop(task, None)

    def _keep_recording(self, tasks: list[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
        """At the close: the tasks to cancel. Those running a request seen for the first time are kept
        running to their end, at most until their window ends, so that their reply is kept for a
        repeat from the client's next connection (a sync handler's thread cannot be stopped anyway:
        cancelled, its effect would happen with its reply lost). Messages still waiting behind them
        in arrival order never began: they are dropped."""
        if self._waiting:
            self._waiting.clear()
        recording = self._recording or {}
        for task in tasks:
            if task in recording:
                in_background(_finish_within(task, recording[task][1], self.connection_id))
        return [task for task in tasks if task not in recording]

    # ------------------------------------------------------------------ frames out

    async def send_frame(self, text: str) -> None:
        """Send one already encoded frame; does nothing once the socket is closed.

        It waits for the socket only when nothing else of this connection is waiting: otherwise
        the frame goes into the outbox behind the others.
        """
        if not await self._write(text):
            return
        if signals.message_sent.receivers:
            await self._notify(signals.message_sent, frame=text)

    async def _write(self, text: str) -> bool:
        """Send ``text`` now, or queue it behind this connection's frames still waiting; False if closed."""
        if self.closed:
            return False
        if self.sending:
            self.offer(text)
            return True
        try:
            await self._send_event({"type": "websocket.send", "text": text})
        except Exception:  # the client went away between receive and send
            self.closed = True
            return False
        return True

    async def send_message(self, message: Message, *, i: str | None = None, s: str | None = None) -> None:
        """Send a :class:`Message` built in server code to this connection."""
        await self.send_frame(message.encode(i=i, s=s))

    async def send_error(self, error: BusError, *, log: bool = True) -> None:
        """Send ``error`` as an error frame (state ``f``) and log it with its trace id."""
        if log and settings.LOG_CLIENT_ERRORS:
            self._log_client_error(error)
        if not await self._write(error_frame(error)):
            return
        if signals.error_sent.receivers:
            await self._notify(signals.error_sent, error=error)

    def _log_client_error(self, error: BusError) -> None:
        """Log a refused frame at INFO: ``CLIENT_ERROR_LOG_LINES`` lines per interval, then a summary."""
        limiter = self._error_log
        if limiter is None:
            limiter = self._error_log = ErrorLogLimiter(
                self.connection_id, settings.CLIENT_ERROR_LOG_LINES, settings.CLIENT_ERROR_LOG_INTERVAL
            )
        now = time.monotonic()
        line = f"{error.type} to {self.connection_id} (i={printable(error.trace_id)}): {printable(error.msg)}"
        for text in limiter.admit(now, line):
            logger.info("channelbus: %s", text)
        if limiter.held and self._error_log_timer is None:
            delay = max(0.0, limiter.interval_end - now)
            self._error_log_timer = asyncio.get_running_loop().call_later(delay, self._log_error_summary)

    def _log_error_summary(self) -> None:
        """The summary line of the client errors held back (at the interval's end, and at the close)."""
        if self._error_log_timer is not None:
            self._error_log_timer.cancel()
            self._error_log_timer = None
        line = self._error_log.summary(time.monotonic()) if self._error_log is not None else None
        if line is not None:
            logger.info("channelbus: %s", line)

    async def _notify(self, signal: Signal, **kwargs: Any) -> None:
        """Send ``signal``; a receiver that raises is logged and does not hurt the connection."""
        if not signal.receivers:
            return
        for receiver, result in await signal.asend_robust(type(self), connection=self, **kwargs):
            if isinstance(result, Exception):
                logger.error(
                    "channelbus: signal receiver %r failed on %s",
                    receiver,
                    self.connection_id,
                    exc_info=(type(result), result, result.__traceback__),
                )


if sys.version_info >= (3, 12):

    def _start_task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start ``coro`` as an eager task: it runs now, up to its first real wait."""
        return asyncio.eager_task_factory(asyncio.get_running_loop(), coro)  # type: ignore[attr-defined,no-any-return]

else:

    def _start_task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start ``coro`` as a task (Python 3.11 has no eager tasks: it runs on the next loop iteration)."""
        return asyncio.get_running_loop().create_task(coro)


async def _finish_within(task: asyncio.Task[Any], deadline: float, connection_id: str) -> None:
    """Let a request's handler end after its connection closed; cancel it at ``deadline`` (its entry is
    dropped then, by its own cancellation)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - asyncio.get_running_loop().time()))
    except TimeoutError:
        logger.warning(
            "channelbus: cancelled a handler of closed connection %s: it ran past IDEMPOTENCY_WINDOW",
            connection_id,
        )
        task.cancel()
    except BaseException:  # its failure was answered (and logged) by the handler's task itself
        pass


async def _enqueue_job(job: Any, *args: Any) -> None:
    """Enqueue one of :mod:`channelbus.jobs.tracking`' jobs, off the event loop."""
    await database_sync_to_async(job.enqueue)(*args)


def _unwrap_session_send(send: Send) -> Send:
    """Skip Channels' session wrapper around ``send`` on the per-frame path.

    ``SessionMiddleware`` wraps ``send`` to save the session on HTTP responses;
    for WebSocket events it only reads the session's state and forwards the
    event, which costs a few microseconds per frame for nothing.
    """
    from channels.sessions import InstanceSessionWrapper

    wrapper = getattr(send, "__self__", None)
    while isinstance(wrapper, InstanceSessionWrapper) and not any(
        t.startswith("websocket.") for t in wrapper.save_message_types
    ):
        # asgiref types it as taking its event TypedDicts; it is the same send, taking any event dict.
        send = cast(Send, wrapper.real_send)
        wrapper = getattr(send, "__self__", None)
    return send


def _query_value(scope: Scope, name: str) -> str | None:
    """One value of the connection URL's query string."""
    query = scope.get("query_string", b"")
    if not query or name.encode() not in query:
        return None
    values = parse_qs(query.decode("latin1")).get(name)
    return values[0] if values else None


def _trace_id_of(event: dict[str, Any], max_bytes: int) -> str | None:
    """The ``i`` of a refused frame, if it can be read, so a request still gets its terminal reply."""
    data = event.get("text")
    if data is None:
        data = event.get("bytes") or b""
    try:
        return decode(data, max_bytes).i
    except BusError as exc:
        return exc.trace_id


def _check_allowed(cls: type[Message], meta: Metadata, connection: BusConsumer) -> None:
    """A sync ``allowed`` hook: runs in a worker thread, so it may query the database."""
    if not cls.allowed(meta.user, connection):
        raise _refusal(cls, meta)


def _refusal(cls: type[Message], meta: Metadata) -> Unauthorized:
    return Unauthorized(f"You may not send {cls.name}.", trace_id=meta.trace_id, type_name=cls.name)


def _run_sync(cls: type[Message], payload: Any, meta: Metadata, connection: BusConsumer) -> Any:
    """The pipeline of a sync handler, in one worker thread: sync permission, validation, handler."""
    if cls._allowed_kind == "sync":
        _check_allowed(cls, meta, connection)
    return cls.from_payload(payload, meta).handle()
