"""A small asyncio client for scripts, services and benchmarks (needs ``pip install 'channelbus[client]'``).

It uses only the protocol layer and the ``websockets`` library, so it runs
outside Django. A project that requires sign-in gives it a connection token
(``manage.py channelbus_token <username>``, or ``connection_token(user)`` in
server code), sent in a header, never in the URL::

    async with BusClient("wss://app.example.com/ws/", token=token) as bus:
        reply = await bus.request("demo.add", {"a": 1, "b": 2})   # {"sum": 3}

The demo signs a guest in on ``GET /``: its session cookie does as well::

    cookies = fetch_cookies("http://127.0.0.1:8000/")
    async with BusClient("ws://127.0.0.1:8000/ws/", cookies=cookies) as bus:
        ...

``request()`` resolves with the payload of the terminal ``s`` frame and raises
:class:`RequestFailed` on ``f``; ``on(type, handler)`` receives messages the
server sends on its own; ``receive()`` waits for the next one not handled so.

``subscribe(topic)`` follows a topic and tracks where it stands in the topic's
numbering (:class:`Position`): numbered frames seen already are dropped, and
``reconnect()`` (or ``BusClient(..., reconnect=True)`` after a drop) subscribes
again from there and sends again, once and with the same trace id, the requests
still waiting for their reply. See docs/client.md, "The Python client".
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import itertools
import logging
import random
import secrets
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from .protocol import MAX_TRACE_ID_LENGTH, CloseCode, encode, states

__all__ = [
    "BusClient",
    "Frame",
    "Position",
    "PresenceMembers",
    "RequestFailed",
    "Subscription",
    "fetch_cookies",
]

logger = logging.getLogger("channelbus")

Frame = dict[str, Any]
Handler = Callable[[Frame], Awaitable[None] | None]

#: Requests not sent again after a reconnect: subscriptions are renewed by their own resubscribe (with
#: ``since``), and a ping is only about the socket that dropped.
NOT_RESENT = frozenset({"topic.subscribe", "topic.leave", "s.ping"})
#: Out-of-order frames remembered above a topic's position; beyond that many the gap is taken as lost.
AHEAD_LIMIT = 1000
#: Close codes after which ``reconnect=True`` does not reconnect: the server refused this user (4401) or
#: this client (4403, origin not allowed or access revoked); it would only refuse again.
NO_RECONNECT_CODES = frozenset({CloseCode.NOT_SIGNED_IN, CloseCode.FORBIDDEN})
#: Seconds a connection must stay open before the reconnect backoff starts again from its first delay.
STABLE_AFTER = 5.0


class RequestFailed(Exception):
    """The server answered a request with an error frame (state ``f``).

    ``type`` is the error type (``error.validation``...), ``payload`` its ``p``
    (``{"msg": ..., ...}``) and ``frame`` the whole frame.
    """

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.type: str = frame.get("t", "")
        self.payload: dict[str, Any] = frame.get("p") or {}
        super().__init__(f"{self.type}: {self.payload.get('msg', '')}")


class Position:
    """Where a client stands in one topic's numbering (the ``n`` of its frames).

    ``last`` is the highest ``n`` such that every ``n' <= last`` was seen since the
    position was set, ``ahead`` the ``n`` seen above ``last + 1`` (frames published
    from several processes may arrive out of order), ``epoch`` the numbering they
    belong to (None until a server reply names it).
    """

    __slots__ = ("ahead", "epoch", "last")

    def __init__(self, n: int = 0, epoch: str | None = None) -> None:
        self.last = n
        self.epoch = epoch
        self.ahead: set[int] = set()

    def reset(self, n: int, epoch: str | None) -> None:
        """Start again at ``n`` of numbering ``epoch`` (a subscribe, or a renewal that did not recover)."""
        self.last = n
        self.epoch = epoch
        self.ahead = set()

    def accept(self, n: int, epoch: str | None = None) -> bool:
        """Count frame ``n`` as seen; False for a duplicate (``n <= last``, or seen ahead already).

        ``epoch`` is the frame's ``e``, sent on the first frame of a numbering (``n`` = 1): when it is
        not this position's, the topic's numbering restarted (its history was lost) and counting starts
        again from it.

        Beyond :data:`AHEAD_LIMIT` frames ahead, the gap below them is accepted as lost (``last``
        jumps to the highest), which bounds the memory a gap that never fills can take.
        """
        if epoch is not None and epoch != self.epoch:
            self.reset(0, epoch)
        if n <= self.last or n in self.ahead:
            return False
        if n == self.last + 1:
            self.last = n
            self._advance()
        else:
            self.ahead.add(n)
            if len(self.ahead) > AHEAD_LIMIT:
                self.last = max(self.ahead)
                self.ahead.clear()
        return True

    def since(self) -> dict[str, Any] | None:
        """``{"n": last, "epoch": epoch}`` for a resubscribe; None while no epoch is known."""
        return None if not self.epoch else {"n": self.last, "epoch": self.epoch}

    def _advance(self) -> None:
        ahead = self.ahead
        while self.last + 1 in ahead:
            self.last += 1
            ahead.discard(self.last)


class PresenceMembers:
    """The members of one presence topic as a client keeps them (docs/protocol.md, "Presence").

    ``members`` maps a user key to ``{"info", "conns"}``; ``count`` and ``truncated`` are the server's,
    ``v`` the version the map stands at (None before any state). States and diffs may come in any order:
    :meth:`apply_state` and :meth:`apply_diff` keep the newest by ``v``.
    """

    def __init__(self) -> None:
        self.members: dict[str, Any] = {}
        self.count = 0
        self.truncated = False
        self.v: int | None = None

    def apply_state(self, state: Any, *, force: bool = False) -> bool:
        """Take a state unless it is older than the map (``force``: after a reconnect, whatever its ``v``)."""
        if not isinstance(state, dict) or type(state.get("v")) is not int:
            return False
        if not force and self.v is not None and state["v"] < self.v:
            return False
        self.members = dict(state.get("members") or {})
        self.count = int(state.get("count", len(self.members)))
        self.truncated = bool(state.get("truncated"))
        self.v = state["v"]
        return True

    def apply_diff(self, diff: Any) -> bool:
        """Apply a ``presence.diff`` payload whose ``v`` is above the map's. Returns True when ``v``
        jumped by more than one: a diff may be missing or late, ask ``presence.get`` to be exact."""
        if not isinstance(diff, dict) or type(diff.get("v")) is not int:
            return False
        if self.v is None or diff["v"] <= self.v:
            return False  # no state yet, or the state holds it already
        v: int = diff["v"]
        gap = v > self.v + 1
        # Leaves first, then joins: a member who left one process and joined another stays.
        for key in diff.get("leaves") or {}:
            self.members.pop(key, None)
        self.members.update(diff.get("joins") or {})
        self.count = int(diff.get("count", len(self.members)))
        self.v = v
        return gap


class Subscription:
    """A topic a :class:`BusClient` follows (from :meth:`BusClient.subscribe`).

    ``topic`` is the name as the server normalised it, ``state`` the state of the last
    ``topic.subscribed`` reply (the first subscribe's, or a renewal's), ``recovered`` what
    the last renewal said (None before any, or when no position was known; True: the missed
    frames were replayed; False: they could not be, ``state`` is fresh and ``on_reset`` was
    called), ``n`` and ``epoch`` the position reached, ``active`` False once left or lost.
    ``presence`` is the live :class:`PresenceMembers` of a topic whose kind keeps presence (None for
    others), and ``members`` its map.
    """

    def __init__(
        self,
        client: BusClient,
        topic: str,
        handler: Handler | None,
        on_reset: Callable[[Subscription], Awaitable[None] | None] | None,
    ) -> None:
        self.topic = topic
        self.state: Any = None
        self.recovered: bool | None = None
        self.position = Position()
        self.active = False
        #: Why the client stopped following the topic without leave(): the renewal's error, or the
        #: ``topic.left`` frame the server sent.
        self.lost: RequestFailed | TimeoutError | Frame | None = None
        self.handler = handler
        self.on_reset = on_reset
        self.presence: PresenceMembers | None = None
        self._client = client

    @property
    def members(self) -> dict[str, Any] | None:
        """The members now, ``{<user key>: {"info", "conns"}}`` (None: the topic keeps no presence)."""
        return None if self.presence is None else self.presence.members

    @property
    def n(self) -> int:
        """The position: every frame of the topic numbered up to ``n`` was seen (or covered by ``state``)."""
        return self.position.last

    @property
    def epoch(self) -> str | None:
        """The numbering ``n`` belongs to (None from a server that does not number frames)."""
        return self.position.epoch

    async def leave(self) -> Any:
        """Stop following the topic: ``topic.leave`` (when connected); returns its reply's ``p``."""
        return await self._client._leave(self)

    async def _subscribed(self, p: Any) -> None:
        """Apply a ``topic.subscribed`` payload, before the frames that follow it are dispatched."""
        p = p if isinstance(p, dict) else {}
        self.topic = p.get("topic") or self.topic  # the server normalises names: user:042 -> user:42
        self.state = p.get("state")
        self.recovered = p.get("recovered")
        self.active = True
        # Recovered: the missed frames follow and move the position on from since. Otherwise the
        # state covers what came before: count from the reply's n.
        if self.recovered is not True and p.get("epoch"):
            self.position.reset(int(p.get("n") or 0), p["epoch"])
        if p.get("presence") is not None:
            # A first subscribe or a renewal: either way the reply's state is where the map starts over.
            self.presence = self.presence or PresenceMembers()
            self.presence.apply_state(p["presence"], force=True)
        if self.recovered is False and self.on_reset is not None:
            await _call(self.on_reset, self)

    def __repr__(self) -> str:
        return f"<Subscription {self.topic} n={self.n} epoch={self.epoch}>"


@dataclass(slots=True)
class _Pending:
    """A request waiting for its terminal frame."""

    future: asyncio.Future[Frame]
    on_state: Callable[[Frame], Any] | None
    type_name: str
    text: str
    #: Called with the ``p`` of an ``s`` reply before the frames after it are dispatched.
    on_reply: Callable[[Any], Awaitable[None]] | None = None
    #: Sent on a socket that dropped: to be sent again on the next one.
    waiting: bool = False
    #: Sent again once already: a second drop fails it.
    resent: bool = False


async def _call(function: Callable[..., Any], *args: Any) -> None:
    """Call a sync or async callback."""
    result = function(*args)
    if asyncio.iscoroutine(result):
        await result


def fetch_cookies(url: str, timeout: float = 10.0) -> dict[str, str]:
    """GET ``url`` and return the cookies it set (for example a Django session cookie).

    A blocking call (urllib); from async code use ``await asyncio.to_thread(fetch_cookies, url)``.
    """
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(url, timeout=timeout) as response:
        response.read()
    return {cookie.name: cookie.value or "" for cookie in jar}


class BusClient:
    """One WebSocket connection to a channelbus server.

    ``url`` is the ``ws://`` or ``wss://`` address; ``origin`` defaults to the
    matching ``http(s)://host``, which the server checks against ``ALLOWED_HOSTS``.
    Authenticate with ``cookies`` (a session cookie) or ``token`` (sent as
    ``Authorization: Bearer``, never in the URL, which reaches access logs; see
    :func:`channelbus.server.auth.connection_token`).

    ``reconnect=True``: when the connection drops (any close but 4401, 4403, the
    client's own ``close()`` or a frame it cannot read), reconnect by itself after
    a full-jitter delay in ``[0, min(backoff[1], backoff[0] * 2**attempt))`` seconds,
    then resume as :meth:`reconnect` does. Trace ids are ``<8 random hex digits>-<counter>``,
    unique per client across reconnects.
    """

    def __init__(
        self,
        url: str,
        *,
        cookies: dict[str, str] | None = None,
        token: str | None = None,
        origin: str | None = None,
        headers: dict[str, str] | None = None,
        max_size: int | None = 2**24,
        reconnect: bool = False,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.url = url
        parts = urlsplit(url)
        scheme = "https" if parts.scheme == "wss" else "http"
        self.origin = origin if origin is not None else f"{scheme}://{parts.netloc}"
        self.headers = dict(headers or {})
        if cookies:
            self.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.max_size = max_size
        self.websocket: Any = None
        #: The close code once the server closed the connection.
        self.close_code: int | None = None
        #: How many times the connection was opened again (by :meth:`reconnect` or by itself).
        self.reconnects = 0
        self.auto_reconnect = reconnect
        self.backoff = backoff
        # The server remembers each request's i per user to answer a re-sent one without running it twice:
        # two clients of one user must never send the same i, as a counter alone would.
        self._id_prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._subs: dict[str, Subscription] = {}
        self._inbox: asyncio.Queue[Frame] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._expired: set[str] = set()
        self._switching = False  # reconnect() is closing the socket itself: keep what it will send again
        self._stopped = False  # close() was called, or a drop that must not be reconnected
        self._broken = False  # a frame could not be read: not a channelbus server, never reconnect
        self._opened_at = 0.0
        self._attempt = 0
        self._reconnector: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one reconnect at a time
        self._presence_refresh: asyncio.Future[None] | None = None  # a presence.get after a jump in v

    async def connect(self) -> BusClient:
        """Open the connection (subprotocol ``channelbus.v1``)."""
        from websockets.asyncio.client import connect

        self._stopped = self._broken = False
        self.websocket = await connect(
            self.url,
            origin=self.origin,  # type: ignore[arg-type]
            additional_headers=self.headers,
            subprotocols=["channelbus.v1"],  # type: ignore[list-item]
            max_size=self.max_size,
            compression=None,
        )
        self.close_code = None
        self._opened_at = time.monotonic()
        self._drop_closed_marks()
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def close(self) -> None:
        """Close the connection for good (no reconnect) and fail pending requests."""
        self._stopped = True
        if self._reconnector is not None and self._reconnector is not asyncio.current_task():
            self._reconnector.cancel()
            with contextlib.suppress(BaseException):
                await self._reconnector
        await self._close_socket()
        self._fail_waiting()

    async def reconnect(self) -> None:
        """Open a new connection (closing the open one first) and resume on it.

        Same URL, origin, cookies, token and headers. Every :class:`Subscription` is
        subscribed again with ``since`` (its position); the requests sent on the old
        connection that have no terminal reply yet are sent again once, with the same
        ``i`` (the server answers a repeated ``i`` from what it remembers), except
        ``topic.subscribe``, ``topic.leave`` and ``s.ping``, which fail with
        ``ConnectionError``. A request sent again that loses its connection again fails
        with ``ConnectionError`` too. Raises what opening the connection raises (then the
        requests waiting to be sent again fail with ``ConnectionError``, unless the client
        reconnects by itself).
        """
        async with self._lock:
            self._switching = True
            try:
                await self._close_socket()
            finally:
                self._switching = False
            try:
                await self._resume()
            except BaseException:
                if self.auto_reconnect and not self._stopped:
                    self._reconnect_soon()  # the client keeps trying by itself
                else:
                    self._fail_waiting()
                raise

    async def __aenter__(self) -> BusClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def open(self) -> bool:
        """True while the connection is open."""
        return (
            self.websocket is not None
            and self.close_code is None
            and self._reader is not None
            and not self._reader.done()
        )

    def on(self, type_name: str, handler: Handler) -> None:
        """Call ``handler(frame)`` (sync or async) for each frame of ``type_name`` that answers no request."""
        self._handlers.setdefault(type_name, []).append(handler)

    async def subscribe(
        self,
        topic: str,
        handler: Handler | None = None,
        *,
        on_reset: Callable[[Subscription], Awaitable[None] | None] | None = None,
        timeout: float = 10.0,
    ) -> Subscription:
        """Follow ``topic`` (``topic.subscribe``); returns its :class:`Subscription`.

        ``handler(frame)`` (sync or async) gets the topic's frames, each numbered one once:
        frames seen already are dropped for everyone (also ``on()`` handlers and
        :meth:`receive`). A frame a handler takes still reaches the ``on()`` handlers of its
        type, but not :meth:`receive`. ``on_reset(subscription)`` is called when a renewal
        after a reconnect could not recover the frames missed meanwhile (before the frames that
        follow): reload from ``subscription.state``. Raises :class:`RequestFailed`
        (``error.subscribe``...) and ``ValueError`` for a topic this client follows already.
        """
        if topic in self._subs:
            raise ValueError(f"already subscribed to {topic}: use its Subscription")
        subscription = Subscription(self, topic, handler, on_reset)

        async def subscribed(p: Any) -> None:
            await subscription._subscribed(p)
            replaced = self._subs.get(subscription.topic)
            if replaced is not None and replaced is not subscription:  # another spelling of the same name
                replaced.active = False
            self._subs[subscription.topic] = subscription

        await self._request("topic.subscribe", {"topic": topic}, timeout, None, None, subscribed)
        return subscription

    async def presence(self, topic: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """The members of presence topic ``topic`` now (``presence.get``).

        ``{<user key>: {"info", "conns"}}``.

        At most ``PRESENCE_MAX_MEMBERS`` of them (the server's limit). The client need not follow the
        topic. Raises :class:`RequestFailed` (``error.subscribe`` for a topic it may not follow or a
        kind without presence).
        """
        state = await self.request("presence.get", {"topic": topic}, timeout=timeout)
        subscription = self._subs.get(topic)
        if subscription is not None and subscription.presence is not None:
            subscription.presence.apply_state(state)  # kept only if not older than the live map
        return dict(state.get("members") or {})

    @property
    def subscriptions(self) -> list[Subscription]:
        """The topics followed with :meth:`subscribe`, renewed after each reconnect."""
        return list(self._subs.values())

    async def send_raw(self, text: str | bytes) -> None:
        """Send any text (or bytes) as one frame, valid or not.

        Raises ``ConnectionError`` if the connection is not open (never opened, or closed).
        """
        from websockets.exceptions import ConnectionClosed

        if self.websocket is None:
            raise ConnectionError("not connected: call connect() (or use async with) first")
        if self.close_code is not None:  # the reader stopped: nothing would read a reply
            raise ConnectionError(f"connection closed ({self.close_code})")
        try:
            await self.websocket.send(text)
        except ConnectionClosed as exc:
            code = self.close_code or (exc.rcvd.code if exc.rcvd is not None else CloseCode.ABNORMAL)
            raise ConnectionError(f"connection closed ({code})") from None

    async def send(self, type_name: str, payload: Any = None) -> None:
        """Fire and forget: a message without ``i`` (errors still come back, to :meth:`receive`)."""
        await self.send_raw(encode(type_name, payload))

    async def request(
        self,
        type_name: str,
        payload: Any = None,
        *,
        timeout: float = 10.0,
        on_state: Callable[[Frame], Any] | None = None,
        trace_id: str | None = None,
    ) -> Any:
        """Send a request and return the payload of its ``s`` reply.

        Raises :class:`RequestFailed` on an ``f`` reply, ``TimeoutError``
        after ``timeout`` seconds, and ``ConnectionError`` if the connection is
        closed (before or while waiting). ``on_state(frame)`` sees ``a``/``q``/``r`` frames.
        """
        return (
            await self.request_frame(
                type_name, payload, timeout=timeout, on_state=on_state, trace_id=trace_id
            )
        )["p"]

    async def request_frame(
        self,
        type_name: str,
        payload: Any = None,
        *,
        timeout: float = 10.0,
        on_state: Callable[[Frame], Any] | None = None,
        trace_id: str | None = None,
    ) -> Frame:
        """Like :meth:`request`, but return the whole terminal frame (``p`` is None if absent)."""
        return await self._request(type_name, payload, timeout, on_state, trace_id)

    async def _request(
        self,
        type_name: str,
        payload: Any,
        timeout: float,
        on_state: Callable[[Frame], Any] | None,
        trace_id: str | None,
        on_reply: Callable[[Any], Awaitable[None]] | None = None,
    ) -> Frame:
        i = trace_id or f"{self._id_prefix}-{next(self._ids)}"
        if len(i) > MAX_TRACE_ID_LENGTH:
            raise ValueError(f"trace ids are at most {MAX_TRACE_ID_LENGTH} characters")
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        text = encode(type_name, payload, i=i)
        self._pending[i] = _Pending(future, on_state, type_name, text, on_reply)
        try:
            await self.send_raw(text)
            try:
                frame = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise TimeoutError(f"no reply to {type_name} (i={i}) within {timeout:g} s") from None
        finally:
            self._pending.pop(i, None)
            if future.cancelled() or not future.done():  # timed out or cancelled: drop its late frames
                self._expired.add(i)
        if frame.get("s") == states.FAILED:
            raise RequestFailed(frame)
        frame.setdefault("p", None)
        return frame

    async def receive(self, type_name: str | None = None, timeout: float = 10.0) -> Frame:
        """The next frame not taken by a request or a handler.

        With ``type_name``, frames of other types are skipped and dropped. Frames that arrived
        before the server closed the connection are still returned; after them, ``ConnectionError``
        at once. ``TimeoutError`` if no frame comes within ``timeout`` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame = await self._inbox.get()
                    if frame is _CLOSED:
                        self._inbox.put_nowait(frame)  # for the next receive() too
                        raise ConnectionError(f"connection closed ({self.close_code})")
                    if type_name is None or frame.get("t") == type_name:
                        return frame
        except TimeoutError:
            what = f"no {type_name} frame" if type_name else "no frame"
            raise TimeoutError(f"{what} within {timeout:g} s") from None

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        """Wait until the server closes the connection; returns the close code."""
        async with asyncio.timeout(timeout):
            assert self._reader is not None
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._reader)
        return self.close_code

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for text in self.websocket:
                await self._dispatch(orjson.loads(text))
        except ConnectionClosed:
            pass
        except Exception:  # a frame that is no JSON object: not a channelbus server; stop for good
            logger.warning("channelbus client: unreadable frame from %s; closing", self.url, exc_info=True)
            self._broken = True
            closing = asyncio.ensure_future(self.websocket.close(CloseCode.PROTOCOL_ERROR))
            closing.add_done_callback(lambda done: done.cancelled() or done.exception())
        finally:
            rcvd = getattr(self.websocket, "close_rcvd", None)
            self.close_code = (
                rcvd.code if rcvd is not None else (self.websocket.close_code or CloseCode.ABNORMAL)
            )
            self._dropped()

    def _dropped(self) -> None:
        """The socket closed: keep the requests a reconnect sends again, fail the others, reconnect if due."""
        code = self.close_code
        again = self._switching or (
            self.auto_reconnect and not self._stopped and not self._broken and code not in NO_RECONNECT_CODES
        )
        for entry in self._pending.values():
            if entry.future.done() or entry.waiting:
                continue
            if again and not entry.resent and entry.type_name not in NOT_RESENT:
                entry.waiting = True
            else:
                entry.future.set_exception(ConnectionError(f"connection closed ({code})"))
        if not again:
            self._stopped = True
            self._fail_waiting()
            return
        if self._switching:
            return  # reconnect() opens the next connection itself
        if time.monotonic() - self._opened_at >= STABLE_AFTER:
            self._attempt = 0  # that connection lasted: not a server that closes at once
        if code == CloseCode.TOO_MANY:
            self._attempt = max(self._attempt, 4)  # flooding: wait at least as for the fifth try
        self._reconnect_soon()

    def _reconnect_soon(self) -> None:
        if self._reconnector is None or self._reconnector.done():
            self._reconnector = asyncio.ensure_future(self._reconnect_by_itself())

    async def _reconnect_by_itself(self) -> None:
        """``reconnect=True``: open a new connection after a growing random delay, until one resumes."""
        from websockets.exceptions import InvalidStatus

        while not self._stopped:
            base, most = self.backoff
            await asyncio.sleep(random.uniform(0, min(most, base * 2**self._attempt)))
            self._attempt += 1
            async with self._lock:
                reconnected = self.open  # by reconnect(), while this waited
                if self._stopped or reconnected:
                    return
                try:
                    await self._resume()
                except InvalidStatus as exc:
                    if exc.response.status_code in (401, 403):  # refused at the handshake
                        self._stopped = True
                        self._fail_waiting()
                        return
                    logger.info("channelbus client: reconnecting to %s failed: %s", self.url, exc)
                except Exception as exc:  # refused, reset, timed out, dropped again: try again later
                    logger.info("channelbus client: reconnecting to %s failed: %r", self.url, exc)
                else:
                    if self.open:
                        return

    async def _resume(self) -> None:
        """Open the connection again, send the waiting requests again and renew the subscriptions.

        Raises ``ConnectionError`` when the new connection dropped before it was all done (the drop
        itself decided what is kept for the next attempt).
        """
        await self.connect()
        if self._stopped:  # close() was called while the connection opened
            await self._close_socket()
            raise ConnectionError("the client was closed")
        self.reconnects += 1
        for entry in list(self._pending.values()):
            if entry.waiting and not entry.future.done():
                await self.send_raw(entry.text)  # on a failure it still waits for the next connection
                entry.waiting = False
                entry.resent = True
        renewals = await asyncio.gather(
            *(self._renew(subscription) for subscription in list(self._subs.values())),
            return_exceptions=True,
        )
        for outcome in renewals:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _renew(self, subscription: Subscription) -> None:
        """Subscribe again from the position reached; a refusal or a timeout drops the subscription."""
        payload: dict[str, Any] = {"topic": subscription.topic}
        since = subscription.position.since()
        if since is not None:
            payload["since"] = since
        try:
            await self._request("topic.subscribe", payload, 10.0, None, None, subscription._subscribed)
        except (RequestFailed, TimeoutError) as exc:
            logger.warning("channelbus client: %s could not be renewed: %s", subscription.topic, exc)
            self._lose(subscription, exc)

    def _lose(self, subscription: Subscription, why: RequestFailed | TimeoutError | Frame) -> None:
        if self._subs.get(subscription.topic) is subscription:
            del self._subs[subscription.topic]
        subscription.active = False
        subscription.lost = why

    async def _leave(self, subscription: Subscription) -> Any:
        if self._subs.get(subscription.topic) is subscription:
            del self._subs[subscription.topic]
        subscription.active = False
        if not self.open:
            return None  # the server forgot the topic with the connection
        return await self.request("topic.leave", {"topic": subscription.topic})

    async def _close_socket(self) -> None:
        if self.websocket is not None:
            await self.websocket.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

    def _fail_waiting(self) -> None:
        """Fail the requests waiting to be sent again, and tell receive() that the connection is gone."""
        for entry in self._pending.values():
            if entry.waiting and not entry.future.done():
                entry.future.set_exception(ConnectionError(f"connection closed ({self.close_code})"))
        self._inbox.put_nowait(_CLOSED)  # receive() says so instead of waiting out its timeout

    def _drop_closed_marks(self) -> None:
        """Take the closed marks of an earlier connection out of the inbox (its frames stay)."""
        kept = []
        while not self._inbox.empty():
            frame = self._inbox.get_nowait()
            if frame is not _CLOSED:
                kept.append(frame)
        for frame in kept:
            self._inbox.put_nowait(frame)

    async def _dispatch(self, frame: Frame) -> None:
        i = frame.get("i")
        pending = self._pending.get(i) if i is not None else None
        if pending is not None:
            await self._answer(pending, frame)
            return
        if i is not None and i in self._expired:
            if frame.get("s") in states.TERMINAL_STATES:
                self._expired.discard(i)
            return
        topic = frame.get("c")
        subscription = self._subs.get(topic) if topic is not None else None
        if subscription is not None:
            n = frame.get("n")
            e = frame.get("e")
            epoch = e if isinstance(e, str) else None
            if type(n) is int and not subscription.position.accept(n, epoch):
                return  # seen already (a replay overlapping what arrived): for nobody
            self._presence_diff(subscription, frame)
            if subscription.handler is not None:
                await _call(subscription.handler, frame)
        elif frame.get("t") == "topic.left" and i is None:
            self._revoked(frame)
        handlers = self._handlers.get(frame.get("t", ""))
        if handlers:
            for handler in handlers:
                await _call(handler, frame)
            return
        if subscription is None or subscription.handler is None:
            self._inbox.put_nowait(frame)

    async def _answer(self, pending: _Pending, frame: Frame) -> None:
        """A frame of a pending request: its terminal reply, or a state for ``on_state``."""
        if frame.get("s") not in states.TERMINAL_STATES:
            if pending.on_state is not None:
                await _call(pending.on_state, frame)
            return
        if pending.future.done():
            return
        if pending.on_reply is not None and frame.get("s") == states.SUCCESS:
            try:
                await pending.on_reply(frame.get("p"))
            except Exception:  # an on_reset that raised: the reply still answers the request
                logger.exception("channelbus client: applying %s failed", frame.get("t"))
        pending.future.set_result(frame)

    def _presence_diff(self, subscription: Subscription, frame: Frame) -> None:
        """Apply a followed topic's ``presence.diff`` to its members; on a jump in ``v``, ask the state."""
        if frame.get("t") != "presence.diff" or subscription.presence is None:
            return
        if not subscription.presence.apply_diff(frame.get("p")):
            return
        # Ask presence.get once in the background: the reader cannot wait for its own reply.
        if self._presence_refresh is not None and not self._presence_refresh.done():
            return

        async def refresh() -> None:
            with contextlib.suppress(RequestFailed, TimeoutError, ConnectionError):
                await self.presence(subscription.topic)

        self._presence_refresh = asyncio.ensure_future(refresh())

    def _revoked(self, frame: Frame) -> None:
        """``topic.left`` without ``i``: the server took the topic away; it is not renewed either."""
        p = frame.get("p")
        left = self._subs.get(str(p.get("topic"))) if isinstance(p, dict) else None
        if left is not None:
            self._lose(left, frame)


#: Put in the inbox when the connection has closed.
_CLOSED: Frame = {"t": "", "closed": True}
