"""A minimal WebSocket client for tests against a real uvicorn: every frame in wire order.

It reads only when asked, so a test can stop reading to make the server's flow control pause,
and it sees what follows a close frame. ``uvicorn_demo`` serves the demo with ``tests.fastapp``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import socket
import struct
from pathlib import Path
from typing import Any

import orjson

from channelbus.client import fetch_cookies
from tests.servers import ROOT, demo_server

# ------------------------------------------------------------------------------ a minimal client


class RawClient:
    """A WebSocket client on asyncio streams: every frame in wire order, reading only when asked."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ids = 0
        self.prefix = secrets.token_hex(3)

    @classmethod
    async def connect(cls, address: str, cookies: dict[str, str], rcvbuf: int | None = None) -> RawClient:
        """Open ``ws://address/ws/`` with the session cookie; ``rcvbuf`` shrinks the socket's buffer."""
        host, port = address.split(":")
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
        key = base64.b64encode(os.urandom(16)).decode()
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        writer.write(
            f"GET /ws/ HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: channelbus.v1\r\nOrigin: http://{address}\r\n"
            f"Cookie: {cookie}\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"sec-websocket-extensions" not in head.lower()
        return cls(reader, writer)

    def send(self, type_name: str, payload: Any = None, i: str | None = None) -> None:
        """Send one envelope as a masked text frame."""
        envelope: dict[str, Any] = {"t": type_name, "p": payload}
        if i is not None:
            envelope["i"] = i
        self.send_frame(0x1, orjson.dumps(envelope))

    def send_frame(self, opcode: int, data: bytes) -> None:
        """Send one masked frame (a client's frames are masked, RFC 6455 5.3)."""
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        self.writer.write(head + mask + bytes(b ^ mask[k % 4] for k, b in enumerate(data)))

    def request(self, type_name: str, payload: Any = None) -> str:
        """Send a request; returns its trace id."""
        self.ids += 1
        i = f"r{self.prefix}-{self.ids}"  # unique per socket: one user's repeated i gets its kept reply
        self.send(type_name, payload, i)
        return i

    async def frame(self, timeout: float = 10.0) -> tuple[int, bytes]:
        """The next frame as (opcode, payload); pings are answered and skipped."""
        async with asyncio.timeout(timeout):
            while True:
                b0, b1 = await self.reader.readexactly(2)
                assert b0 & 0x80, "a fragmented frame"
                assert not b1 & 0x80, "a masked server frame"
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
                payload = await self.reader.readexactly(n)
                if b0 & 0x0F != 0x9:
                    return b0 & 0x0F, payload
                self.send_frame(0xA, payload)  # pong, or uvicorn closes the socket after its ping timeout

    async def message(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next text frame, decoded."""
        opcode, payload = await self.frame(timeout)
        assert opcode == 0x1, (opcode, payload)
        return orjson.loads(payload)

    async def reply(self, i: str) -> dict[str, Any]:
        """Read until the terminal reply to ``i``; fails on any other frame."""
        frame = await self.message()
        assert frame.get("i") == i, frame
        assert frame.get("s") == "s", frame
        return frame

    async def subscribe(self, topic: str) -> None:
        """Follow ``topic`` and wait for the reply."""
        reply = await self.reply(self.request("topic.subscribe", {"topic": topic}))
        assert reply["p"]["topic"] == topic

    async def stats(self) -> dict[str, Any]:
        """``fp.stats``: whether this socket takes raw frames, and the hub's counters."""
        return await self.stats_of("")

    async def stats_of(self, connection_id: str) -> dict[str, Any]:
        """``fp.stats`` with the outbox of connection ``connection_id`` (``"of"``: None once it is gone)."""
        return (await self.reply(self.request("fp.stats", {"of": connection_id})))["p"]

    def close(self) -> None:
        """Drop the connection."""
        self.writer.close()


# ------------------------------------------------------------------------------ servers


def uvicorn_demo(tmp: Path, ws: str = "auto", settings: str = "tests.fastapp.settings") -> Any:
    """The demo with ``tests.fastapp`` under ``uvicorn --ws <ws>``: a context manager yielding the address."""
    env = {"DEMO_EXTRA_APPS": "tests.fastapp", "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": settings}
    command = ("-m", "uvicorn", "demo_site.asgi:application", "--ws", ws, "--lifespan", "off")
    return demo_server(tmp, env, command=command)


async def clients(address: str, n: int, rcvbuf: int | None = None) -> list[RawClient]:
    """``n`` clients, each with a guest session of its own."""
    result = []
    for _ in range(n):
        cookies = await asyncio.to_thread(fetch_cookies, f"http://{address}/")
        result.append(await RawClient.connect(address, cookies, rcvbuf))
    return result


def check_tick(frame: dict[str, Any], topic: str, k: int, by: str = "", size: int = 0) -> None:
    """``frame`` is tick ``k`` of ``by``, published to ``topic``, with its padding intact."""
    assert frame["t"] == "fp.tick", frame.get("t")
    assert frame["c"] == topic, frame.get("t")
    assert frame["p"]["k"] == k
    assert frame["p"]["by"] == by
    assert frame["p"]["pad"] == "x" * size
