"""A small asyncio client for scripts, services and benchmarks (needs ``pip install 'channelbus[client]'``).

It uses only the protocol layer and the ``websockets`` library, so it runs
outside Django::

    cookies = fetch_cookies("http://127.0.0.1:8000/")   # GET / signs in (the demo)
    async with BusClient("ws://127.0.0.1:8000/ws/", cookies=cookies) as bus:
        reply = await bus.request("demo.add", {"a": 1, "b": 2})   # {"sum": 3}

``request()`` resolves with the payload of the terminal ``s`` frame and raises
:class:`RequestFailed` on ``f``; ``on(type, handler)`` receives messages the
server sends on its own; ``receive()`` waits for the next one not handled so.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import itertools
import logging
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

from .protocol import MAX_TRACE_ID_LENGTH, CloseCode, encode, states

__all__ = ["BusClient", "Frame", "RequestFailed", "fetch_cookies"]

logger = logging.getLogger("channelbus")

Frame = dict[str, Any]
Handler = Callable[[Frame], Awaitable[None] | None]


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
        self._ids = itertools.count(1)
        self._pending: dict[str, tuple[asyncio.Future[Any], Callable[[Frame], Any] | None]] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._inbox: asyncio.Queue[Frame] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._expired: set[str] = set()

    async def connect(self) -> BusClient:
        """Open the connection (subprotocol ``channelbus.v1``)."""
        from websockets.asyncio.client import connect

        self.websocket = await connect(
            self.url,
            origin=self.origin,  # type: ignore[arg-type]
            additional_headers=self.headers,
            subprotocols=["channelbus.v1"],  # type: ignore[list-item]
            max_size=self.max_size,
            compression=None,
        )
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def close(self) -> None:
        """Close the connection and fail pending requests."""
        if self.websocket is not None:
            await self.websocket.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

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
        i = trace_id or str(next(self._ids))
        if len(i) > MAX_TRACE_ID_LENGTH:
            raise ValueError(f"trace ids are at most {MAX_TRACE_ID_LENGTH} characters")
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[i] = (future, on_state)
        try:
            await self.send_raw(encode(type_name, payload, i=i))
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
            closing = asyncio.ensure_future(self.websocket.close(CloseCode.PROTOCOL_ERROR))
            closing.add_done_callback(lambda done: done.cancelled() or done.exception())
        finally:
            rcvd = getattr(self.websocket, "close_rcvd", None)
            self.close_code = (
                rcvd.code if rcvd is not None else (self.websocket.close_code or CloseCode.ABNORMAL)
            )
            for future, _ in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"connection closed ({self.close_code})"))
            self._inbox.put_nowait(_CLOSED)  # receive() says so instead of waiting out its timeout

    async def _dispatch(self, frame: Frame) -> None:
        i = frame.get("i")
        pending = self._pending.get(i) if i is not None else None
        if pending is not None:
            future, on_state = pending
            if frame.get("s") in states.TERMINAL_STATES:
                if not future.done():
                    future.set_result(frame)
            elif on_state is not None:
                result = on_state(frame)
                if asyncio.iscoroutine(result):
                    await result
            return
        if i is not None and i in self._expired:
            if frame.get("s") in states.TERMINAL_STATES:
                self._expired.discard(i)
            return
        handlers = self._handlers.get(frame.get("t", ""))
        if handlers:
            for handler in handlers:
                result = handler(frame)
                if asyncio.iscoroutine(result):
                    await result
            return
        self._inbox.put_nowait(frame)


#: Put in the inbox when the connection has closed.
_CLOSED: Frame = {"t": "", "closed": True}
