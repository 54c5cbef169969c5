"""Raw frames (channelbus.transport.raw_frames): published frames written pre-built to uvicorn's transports.

The end-to-end tests run the demo (with ``tests.fastapp``) under a real uvicorn and read the
sockets with a minimal client of their own (``tests/rawws.py``), so they see every frame in the
order it came off the wire and what follows a close frame. What happens to a socket that stops
reading is in ``tests/system/test_slow_clients.py``.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson
import pytest

from channelbus.client import fetch_cookies
from channelbus.transport import Hub
from channelbus.transport.raw_frames import RawSocket, raw_socket, text_frame
from tests.rawws import check_tick, clients, uvicorn_demo


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uvicorn's default WebSocket implementation (websockets-sansio): raw frames are on."""
    with uvicorn_demo(tmp_path_factory.mktemp("fastpath")) as address:
        yield address


@pytest.fixture(scope="module", params=["legacy-websockets", "raw-frames-off"])
def fallback_server(request, tmp_path_factory):
    """Servers where every frame goes through the ASGI send."""
    tmp = tmp_path_factory.mktemp("fallback")
    if request.param == "legacy-websockets":
        manager = uvicorn_demo(tmp, ws="websockets")
    else:
        manager = uvicorn_demo(tmp, settings="tests.fastapp.settings_raw_off")
    with manager as address:
        yield address


# ------------------------------------------------------------------------------ end to end


async def test_published_frames_are_written_raw_and_arrive_whole(server):
    subscribers = await clients(server, 3)
    topic = "fp.t:whole"
    for client in subscribers:
        await client.subscribe(topic)
        assert (await client.stats())["raw"] is True
    before = await subscribers[0].stats()
    # Sizes on both sides of the 7-bit, 16-bit and 64-bit length boundaries, and non-ASCII text.
    sizes = [0, 60, 61, 65_400, 65_600, 200_000]
    publisher = subscribers[0]
    for size in sizes:
        i = publisher.request("fp.burst", {"topic": topic, "count": 1, "size": size, "by": "é✓"})
        check_tick(await publisher.message(), topic, 0, "é✓", size)
        await publisher.reply(i)
    for client in subscribers[1:]:
        for size in sizes:
            check_tick(await client.message(), topic, 0, "é✓", size)
    after = await subscribers[0].stats()
    assert after["raw_frames"] - before["raw_frames"] == 3 * len(sizes)
    assert after["asgi_frames"] == before["asgi_frames"]
    for client in subscribers:
        client.close()


async def test_published_and_direct_frames_keep_their_order(server):
    sender, other = await clients(server, 2)
    topic = "fp.t:order"
    await sender.subscribe(topic)
    await other.subscribe(topic)
    before = await sender.stats()
    count = 300
    i = sender.request("fp.burst", {"topic": topic, "count": count, "tocks": True})
    # The other subscriber asks for replies while the ticks are published to it.
    pings = [other.request("s.ping") for _ in range(50)]
    for k in range(count):
        check_tick(await sender.message(), topic, k)
        tock = await sender.message()
        assert tock["t"] == "fp.tock"
        assert tock["p"] == {"k": k}
    assert (await sender.reply(i))["p"] == {"count": count}
    ticks, pongs = [], []
    while len(ticks) < count or len(pongs) < len(pings):
        frame = await other.message()
        (pongs if frame["t"] == "s.pong" else ticks).append(frame)
    assert [p["i"] for p in pongs] == pings
    for k, frame in enumerate(ticks):
        check_tick(frame, topic, k)
    after = await sender.stats()
    raw = after["raw_frames"] - before["raw_frames"]
    assert raw + after["asgi_frames"] - before["asgi_frames"] == 2 * count
    assert raw > 0
    sender.close()
    other.close()


async def test_nothing_is_written_after_the_server_closes_a_socket(server):
    topic = "fp.t:close"
    closing, staying = await clients(server, 2)
    for client in (closing, staying):
        await client.subscribe(topic)
    closing.request("fp.close", {"topic": topic, "before": 20, "after": 20})
    for k in range(20):
        check_tick(await closing.message(), topic, k, "close")
    assert (await closing.message())["t"] == "s.closing"
    opcode, payload = await closing.frame()
    assert opcode == 0x8
    assert struct.unpack("!H", payload[:2])[0] == 4000
    # Whatever else arrives before the server drops the connection must not be a data frame.
    closing.writer.write(struct.pack("!BB", 0x88, 0x82) + b"\0\0\0\0" + struct.pack("!H", 4000))
    assert await asyncio.wait_for(closing.reader.read(), 10) == b""
    for k in range(40):
        check_tick(await staying.message(), topic, k, "close")
    staying.close()


async def test_compressed_sockets_get_the_asgi_send(server):
    from websockets.asyncio.client import connect

    topic = "fp.t:deflate"
    (plain,) = await clients(server, 1)
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    async with connect(
        f"ws://{server}/ws/",
        origin=f"http://{server}",  # type: ignore[arg-type]
        additional_headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())},
        subprotocols=["channelbus.v1"],  # type: ignore[list-item]
        compression="deflate",
        max_size=2**24,
    ) as compressed:
        assert compressed.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")

        async def ask(type_name: str, payload: Any = None) -> dict[str, Any]:
            await compressed.send(orjson.dumps({"t": type_name, "i": "1", "p": payload}).decode())
            return orjson.loads(await compressed.recv())

        assert (await ask("topic.subscribe", {"topic": topic}))["s"] == "s"
        assert (await ask("fp.stats", {}))["p"]["raw"] is False
        await plain.subscribe(topic)
        before = await plain.stats()
        count = 20
        i = plain.request("fp.burst", {"topic": topic, "count": count, "size": 5000})
        for k in range(count):
            check_tick(await plain.message(), topic, k, size=5000)
            check_tick(orjson.loads(await compressed.recv()), topic, k, size=5000)
        await plain.reply(i)
        after = await plain.stats()
        assert after["raw_frames"] - before["raw_frames"] == count
        assert after["asgi_frames"] - before["asgi_frames"] == count
    plain.close()


async def test_other_servers_and_the_setting_use_the_asgi_send(fallback_server):
    sender, other = await clients(fallback_server, 2)
    topic = "fp.t:fallback"
    for client in (sender, other):
        await client.subscribe(topic)
        assert (await client.stats())["raw"] is False
    before = await sender.stats()
    count = 100
    i = sender.request("fp.burst", {"topic": topic, "count": count, "tocks": True, "size": 70_000})
    for k in range(count):
        check_tick(await sender.message(), topic, k, size=70_000)
        assert (await sender.message())["p"] == {"k": k}
        check_tick(await other.message(), topic, k, size=70_000)
    await sender.reply(i)
    after = await sender.stats()
    assert after["raw_frames"] == before["raw_frames"] == 0
    assert after["asgi_frames"] - before["asgi_frames"] == 2 * count
    sender.close()
    other.close()


# ------------------------------------------------------------------------------ in process


class FakeTransport:
    """Collects what a uvicorn protocol writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8000)}.get(name, default)


async def accepted_protocol(extensions: str | None = None) -> tuple[Any, Any, FakeTransport]:
    """A real uvicorn ``WebSocketsSansIOProtocol`` after the handshake: (protocol, app's send, transport)."""
    from uvicorn.config import Config
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from uvicorn.server import ServerState

    accepted: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        accepted.set_result(send)
        while (await receive())["type"] != "websocket.disconnect":
            pass

    config = Config(app=app, ws="websockets-sansio", lifespan="off", log_level="warning")
    protocol = WebSocketsSansIOProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    request = (
        "GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    )
    if extensions:
        request += f"Sec-WebSocket-Extensions: {extensions}\r\n"
    protocol.data_received((request + "\r\n").encode())
    send = await asyncio.wait_for(accepted, 5)
    assert transport.written[-1].startswith(b"HTTP/1.1 101")
    transport.written.clear()
    return protocol, send, transport


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
async def test_a_raw_frame_is_the_frame_uvicorn_would_send(length):
    _, send, transport = await accepted_protocol()
    text = ("é" * length)[: length // 2] + "x" * (length - length // 2)
    await send({"type": "websocket.send", "text": text})
    assert transport.written == [text_frame(text)]
    transport.written.clear()
    raw = raw_socket(send)
    assert isinstance(raw, RawSocket)
    assert raw.write(text_frame(text)) is True
    assert b"".join(transport.written) == text_frame(text)


async def test_raw_sockets_only_for_uvicorn_sansio_without_extensions():
    _, send, _ = await accepted_protocol()
    assert isinstance(raw_socket(send), RawSocket)

    _, compressed_send, _ = await accepted_protocol("permessage-deflate; client_max_window_bits")
    assert raw_socket(compressed_send) is None

    async def wrapper(event: Any) -> None:  # middleware that wraps send
        await send(event)

    assert raw_socket(wrapper) is None
    assert raw_socket(FakeTransport().write) is None  # some other server's bound method
    assert raw_socket(None) is None


async def test_no_raw_write_while_paused_or_closing():
    protocol, send, transport = await accepted_protocol()
    raw = raw_socket(send)
    assert raw is not None
    frame = text_frame("hello")
    protocol.pause_writing()
    assert raw.write(frame) is False
    protocol.resume_writing()
    assert raw.write(frame) is True
    assert transport.written == [frame]
    transport.closing = True
    assert raw.write(frame) is False
    transport.closing = False
    await send({"type": "websocket.close", "code": 4000})
    transport.written.clear()
    assert raw.write(frame) is False
    assert transport.written == []


class FakeConnection:
    """What the hub uses of a :class:`~channelbus.server.BusConsumer`."""

    def __init__(self, name: str, raw: Any, sending: int = 0) -> None:
        self.connection_id = name
        self.closed = False
        self.raw = raw
        self.sending = sending
        self.topics: set[str] = set()
        self.offered: list[str] = []

    def offer(self, text: str, volatile: bool = False) -> None:
        self.offered.append(text)


async def test_the_hub_never_writes_past_a_send_in_progress():
    _, send_a, transport_a = await accepted_protocol()
    _, send_b, transport_b = await accepted_protocol()
    idle = FakeConnection("a", raw_socket(send_a))
    busy = FakeConnection("b", raw_socket(send_b), sending=1)
    plain = FakeConnection("c", None)
    hub = Hub(asyncio.get_running_loop())
    for connection in (idle, busy, plain):
        await hub.join(connection, "t")  # type: ignore[arg-type]
    await hub.deliver("t", '{"t":"x"}')
    assert transport_a.written == [text_frame('{"t":"x"}')]
    assert idle.offered == []
    assert transport_b.written == []
    assert busy.offered == ['{"t":"x"}']
    assert plain.offered == ['{"t":"x"}']
    assert (hub.raw_frames, hub.asgi_frames) == (1, 2)
    await hub.deliver("t", '{"t":"y"}', exclude="local|a")
    assert len(transport_a.written) == 1
    assert len(busy.offered) == 2
