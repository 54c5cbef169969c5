"""Test helpers: an async client that talks to the consumer in-process, and pytest fixtures.

::

    async def test_echo(bus_client):
        client = await bus_client(user=some_user)
        assert await client.request("demo.echo", {"text": "hi"}) == {"text": "hi"}

It drives the ASGI application directly (asgiref's ``ApplicationCommunicator``,
the base of Channels' ``WebsocketCommunicator``). It does not import
``channels.testing``, because that package cannot be imported unless daphne is
installed. Use ``pytest_plugins = ["channelbus.testing"]`` in ``conftest.py``
to get the fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import orjson
from asgiref.testing import ApplicationCommunicator

from .client import Frame, RequestFailed
from .protocol import CloseCode, encode, states
from .publishing.api import Published, captures

__all__ = [
    "BusTestClient",
    "ConnectionRefused",
    "Published",
    "RequestFailed",
    "bus_client",
    "capture_published",
]


class ConnectionRefused(Exception):
    """The server closed the connection during or right after the handshake; ``code`` is the close code."""

    def __init__(self, code: int | None) -> None:
        self.code = code
        super().__init__(f"connection refused with close code {code}")


class BusTestClient:
    """An in-process WebSocket client of a channelbus ASGI application.

    ``application`` defaults to the bare :class:`~channelbus.server.BusConsumer`
    with ``scope["user"] = user`` (``AnonymousUser`` if None), skipping the
    origin check and middleware; pass ``application`` (e.g. your project's
    ``asgi.application``) and ``headers`` to test the whole stack.
    """

    def __init__(
        self,
        application: Any = None,
        *,
        user: Any = None,
        path: str = "/ws/",
        query_string: str = "",
        headers: list[tuple[bytes, bytes]] | None = None,
        subprotocols: list[str] | None = None,
    ) -> None:
        scope: dict[str, Any] = {
            "type": "websocket",
            "path": path,
            "query_string": query_string.encode(),
            "headers": headers or [],
            "subprotocols": subprotocols or [],
        }
        if application is None:
            from django.contrib.auth.models import AnonymousUser

            from .server import BusConsumer

            application = BusConsumer.as_asgi()
            scope["user"] = user if user is not None else AnonymousUser()
        elif user is not None:
            scope["user"] = user
        self.scope = scope
        self.communicator = ApplicationCommunicator(application, scope)
        self.subprotocol: str | None = None
        #: The close code once the server closed the connection.
        self.close_code: int | None = None
        #: Non-terminal state frames (``a``, ``q``, ``r``) seen by requests, in order.
        self.states: list[Frame] = []
        self._inbox: list[Frame] = []
        self._ids = 0
        #: The start of this client's trace ids (``t<6 random hex digits>-``, then 1, 2, ...): unique per
        #: client, as a browser tab's are, so that repeated-request detection never mistakes two
        #: clients' (or two tests') requests for one.
        self.id_prefix = f"t{secrets.token_hex(3)}-"

    async def connect(self, timeout: float = 3.0) -> BusTestClient:
        """Open the connection; raises :class:`ConnectionRefused` if the server closes it at once."""
        await self.communicator.send_input({"type": "websocket.connect"})
        event = await self.communicator.receive_output(timeout)
        if event["type"] == "websocket.close":
            raise ConnectionRefused(event.get("code", CloseCode.NORMAL))
        assert event["type"] == "websocket.accept", event
        self.subprotocol = event.get("subprotocol")
        # A server that accepts only to close at once (4401, 4403) says so right away.
        if not await self.communicator.receive_nothing(0.02):
            event = await self.communicator.receive_output(timeout)
            if event["type"] == "websocket.send":
                frame = orjson.loads(event["text"])
                if frame.get("t") == "s.closing":
                    close = await self.communicator.receive_output(timeout)
                    self.close_code = close.get("code")
                    raise ConnectionRefused(self.close_code)
                self._inbox.append(frame)
        return self

    async def close(self, code: int = CloseCode.NORMAL) -> None:
        """Close from the client side and wait for the application to finish."""
        await self.communicator.send_input({"type": "websocket.disconnect", "code": code})
        await self.communicator.wait(timeout=3)

    async def __aenter__(self) -> BusTestClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        if self.close_code is None:
            await self.close()

    async def send_raw(self, data: str | bytes) -> None:
        """Send any text or bytes as one frame."""
        if isinstance(data, bytes):
            await self.communicator.send_input({"type": "websocket.receive", "bytes": data})
        else:
            await self.communicator.send_input({"type": "websocket.receive", "text": data})

    async def send(self, type_name: str, payload: Any = None, *, i: str | None = None) -> None:
        """Send a message (fire and forget unless ``i`` is given)."""
        await self.send_raw(encode(type_name, payload, i=i))

    async def _next_frame(self, timeout: float) -> Frame:
        event = await self.communicator.receive_output(timeout)
        if event["type"] == "websocket.close":
            self.close_code = event.get("code")
            raise ConnectionRefused(self.close_code)
        assert event["type"] == "websocket.send", event
        frame: Frame = orjson.loads(event["text"])
        return frame

    async def request_frame(self, type_name: str, payload: Any = None, *, timeout: float = 3.0) -> Frame:
        """Send a request and return its terminal frame; raises :class:`RequestFailed` on ``f``."""
        self._ids += 1
        i = f"{self.id_prefix}{self._ids}"
        await self.send(type_name, payload, i=i)
        async with asyncio.timeout(timeout):
            while True:
                frame = await self._next_frame(timeout)
                if frame.get("i") != i:
                    self._inbox.append(frame)
                elif frame.get("s") in states.TERMINAL_STATES:
                    break
                else:
                    self.states.append(frame)
        if frame.get("s") == states.FAILED:
            raise RequestFailed(frame)
        return frame

    async def request(self, type_name: str, payload: Any = None, *, timeout: float = 3.0) -> Any:
        """Send a request and return the payload of its ``s`` reply (None if it has none)."""
        return (await self.request_frame(type_name, payload, timeout=timeout)).get("p")

    async def receive(self, type_name: str | None = None, *, timeout: float = 1.0) -> Frame:
        """The next frame (of ``type_name`` if given) not taken by a request; others are kept for later."""
        for n, frame in enumerate(self._inbox):
            if type_name is None or frame.get("t") == type_name:
                return self._inbox.pop(n)
        async with asyncio.timeout(timeout):
            while True:
                frame = await self._next_frame(timeout)
                if type_name is None or frame.get("t") == type_name:
                    return frame
                self._inbox.append(frame)

    async def assert_nothing_received(self, timeout: float = 0.1) -> None:
        """Fail if any frame arrives (or is already waiting) within ``timeout`` seconds."""
        assert not self._inbox, f"frames were received: {self._inbox}"
        if not await self.communicator.receive_nothing(timeout):
            event = await self.communicator.receive_output(timeout)
            raise AssertionError(f"a frame was received: {event}")


@contextlib.contextmanager
def capture_published() -> Iterator[list[Published]]:
    """Record every message published while the block runs (the df_websockets test queue, for messages)::

        with capture_published() as sent:
            await client.request("chat.send", {"room": "lobby", "text": "hi"})
        assert sent[0].message.name == "chat.message" and sent[0].topics == ["chat.room:lobby"]

    A message published with ``publish()`` is recorded when it is sent: after the commit.
    Messages are still delivered.
    """
    sent: list[Published] = []
    captures.append(sent)
    try:
        yield sent
    finally:
        # By identity: an inner capture may hold an equal list.
        del captures[next(n for n, c in enumerate(captures) if c is sent)]


def _fixture(func: Callable[..., Any]) -> Any:
    """An async fixture that works in pytest-asyncio's strict and auto modes."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - pytest-asyncio is optional
        return func
    return pytest_asyncio.fixture(func)


@_fixture
async def bus_client() -> AsyncIterator[Callable[..., Awaitable[BusTestClient]]]:
    """pytest fixture: ``await bus_client(user=..., application=...)`` returns a connected client.

    Every client made is closed after the test.
    """
    clients: list[BusTestClient] = []

    async def make(application: Any = None, **kwargs: Any) -> BusTestClient:
        client = BusTestClient(application, **kwargs)
        await client.connect()
        clients.append(client)
        return client

    yield make
    for client in clients:
        if client.close_code is None:
            await client.close()
