"""BusClient (channelbus/client.py), the Python client that runs without Django, against a small websockets
server started here that speaks channelbus frames: requests resolve with the ``s`` payload and raise
RequestFailed on ``f``, states reach ``on_state``, ``on()`` handlers take their frames, ``receive()`` times
out with a message, everything raises ConnectionError once closed, and what it sends is protocol.encode's."""

import asyncio
import contextlib

import orjson
import pytest
from websockets.asyncio.server import serve

from channelbus.client import BusClient, RequestFailed
from channelbus.protocol import MAX_TRACE_ID_LENGTH, encode


class Server:
    """A channelbus-speaking server: records what it receives and answers by type."""

    def __init__(self):
        self.received = []
        self.headers = []
        self.url = ""

    async def handle(self, ws):
        self.headers.append(ws.request.headers)
        async for text in ws:
            self.received.append(text)
            frame = orjson.loads(text)
            t, i, p = frame["t"], frame.get("i"), frame.get("p")
            if t == "x.echo":
                await ws.send(encode(t, {"step": 1}, i=i, s="q"))
                await ws.send(encode(t, {"step": 2}, i=i, s="r"))
                await ws.send(encode(t, p, i=i, s="s"))
            elif t == "x.empty":
                await ws.send(encode(t, i=i, s="s"))
            elif t == "x.fail":
                await ws.send(encode("error.not_found", {"msg": "Gone.", "thing": 7}, i=i, s="f"))
            elif t == "x.push":  # messages of the server's own, then the answer
                await ws.send(encode("x.note", {"n": 1}))
                await ws.send(encode("x.note", {"n": 2}))
                await ws.send(encode("x.other", {"n": 3}))
                await ws.send(encode(t, i=i, s="s"))
            elif t == "x.slow":
                await asyncio.sleep(p["after"])
                await ws.send(encode(t, {"late": True}, i=i, s="r"))
                await ws.send(encode(t, {"late": True}, i=i, s="s"))
            elif t == "x.garbage":  # a server (or proxy) that breaks the protocol
                await ws.send("this is not json")
            elif t == "x.close":
                await ws.send(encode("s.closing", {"code": 4403, "reason": "Go away."}))
                await ws.close(4403, "Go away.")
            # anything else (x.fire, x.silent): no answer


@contextlib.asynccontextmanager
async def serving(server):
    """Serve ``server.handle`` on a free port of 127.0.0.1 (channelbus.v1); sets ``server.url``."""
    async with serve(server.handle, "127.0.0.1", 0, subprotocols=["channelbus.v1"]) as running:
        server.url = f"ws://127.0.0.1:{running.sockets[0].getsockname()[1]}/ws/"
        yield server


@pytest.fixture
async def server():
    async with serving(Server()) as bus_server:
        yield bus_server


async def test_connect_sends_subprotocol_origin_cookies_and_token(server):
    async with BusClient(server.url, cookies={"sessionid": "abc", "csrftoken": "x"}, token="tok") as bus:
        assert bus.open
        assert bus.websocket.subprotocol == "channelbus.v1"
        assert await bus.request("x.empty") is None
    [headers] = server.headers
    assert headers["Origin"] == server.url.removesuffix("/ws/").replace("ws://", "http://")
    assert headers["Cookie"] == "sessionid=abc; csrftoken=x"
    assert headers["Authorization"] == "Bearer tok"
    assert not bus.open


async def test_a_request_resolves_with_the_s_payload_and_states_go_to_on_state(server):
    async with BusClient(server.url) as bus:
        seen = []
        assert await bus.request("x.echo", {"text": "hi"}, on_state=seen.append) == {"text": "hi"}
        assert [(f["s"], f["p"]) for f in seen] == [("q", {"step": 1}), ("r", {"step": 2})]
        frame = await bus.request_frame("x.empty", trace_id="mine")
        assert frame == {"t": "x.empty", "i": "mine", "s": "s", "p": None}

        async def async_on_state(frame):
            seen.append(frame["s"])

        await bus.request("x.echo", {"n": 2}, on_state=async_on_state)
        assert seen[2:] == ["q", "r"]


async def test_what_it_sends_is_protocol_encode(server):
    async with BusClient(server.url) as bus:
        await bus.send("x.fire", {"a": [1, "é"], "b": None})
        await bus.send("x.fire")
        await bus.request("x.echo", {"text": "hi"}, trace_id="r1")
    assert server.received == [
        encode("x.fire", {"a": [1, "é"], "b": None}),
        encode("x.fire"),
        encode("x.echo", {"text": "hi"}, i="r1"),
    ]
    assert server.received[1] == '{"t":"x.fire"}'


async def test_an_f_reply_raises_request_failed(server):
    async with BusClient(server.url) as bus:
        with pytest.raises(RequestFailed) as exc:
            await bus.request("x.fail", trace_id="f1")
        assert exc.value.type == "error.not_found"
        assert exc.value.payload == {"msg": "Gone.", "thing": 7}
        assert exc.value.frame == {"t": "error.not_found", "i": "f1", "p": exc.value.payload, "s": "f"}
        assert str(exc.value) == "error.not_found: Gone."
        assert await bus.request("x.echo", {"still": "open"}) == {"still": "open"}


async def test_on_handlers_take_their_frames_and_receive_gets_the_rest(server):
    async with BusClient(server.url) as bus:
        plain, awaited = [], []

        async def async_handler(frame):
            awaited.append(frame["p"]["n"])

        bus.on("x.note", plain.append)
        bus.on("x.note", async_handler)
        await bus.request("x.push")
        assert [f["p"] for f in plain] == [{"n": 1}, {"n": 2}]
        assert awaited == [1, 2]
        assert await bus.receive(timeout=3) == {"t": "x.other", "p": {"n": 3}}


async def test_receive_times_out_with_a_message(server):
    async with BusClient(server.url) as bus:
        with pytest.raises(TimeoutError, match=r"^no frame within 0.05 s$"):
            await bus.receive(timeout=0.05)
        await bus.request("x.push")  # x.note and x.other arrive; receive() skips and drops them
        with pytest.raises(TimeoutError, match=r"^no x.missing frame within 0.05 s$"):
            await bus.receive("x.missing", timeout=0.05)
        with pytest.raises(TimeoutError, match=r"^no frame within 0.05 s$"):
            await bus.receive(timeout=0.05)


async def test_a_request_times_out_and_its_late_frames_are_dropped(server):
    async with BusClient(server.url) as bus:
        with pytest.raises(TimeoutError, match=r"no reply to x.slow \(i=s1\) within 0.05 s"):
            await bus.request("x.slow", {"after": 0.2}, timeout=0.05, trace_id="s1")
        # The server answers in order: its late r and s come before the echo's reply.
        assert await bus.request("x.echo", {"n": 1}) == {"n": 1}
        with pytest.raises(TimeoutError):
            await bus.receive(timeout=0.05)  # the late frames went nowhere


async def test_a_too_long_trace_id_is_refused_before_sending(server):
    async with BusClient(server.url) as bus:
        with pytest.raises(ValueError, match="trace ids are at most"):
            await bus.request("x.echo", trace_id="x" * (MAX_TRACE_ID_LENGTH + 1))
        await bus.request("x.empty")
    assert len(server.received) == 1


async def test_connection_error_before_connecting_and_after_the_server_closed(server):
    bus = BusClient(server.url)
    with pytest.raises(ConnectionError, match=r"not connected: call connect\(\)"):
        await bus.send("x.fire")
    await bus.connect()
    try:
        with pytest.raises(ConnectionError, match=r"connection closed \(4403\)"):
            await bus.request("x.close", timeout=30)  # pending when the server closed
        assert await bus.wait_closed(timeout=3) == 4403
        assert not bus.open
        # Frames that came before the close are still returned, then ConnectionError at once.
        assert (await bus.receive(timeout=3))["t"] == "s.closing"
        for _ in range(2):
            with pytest.raises(ConnectionError, match=r"connection closed \(4403\)"):
                await bus.receive(timeout=30)
        with pytest.raises(ConnectionError, match=r"connection closed \(4403\)"):
            await bus.request("x.echo", timeout=30)
        with pytest.raises(ConnectionError, match=r"connection closed \(4403\)"):
            await bus.send("x.fire")
    finally:
        await bus.close()


async def test_closing_from_the_client(server):
    bus = await BusClient(server.url).connect()
    assert bus.open
    await bus.close()
    assert not bus.open
    assert bus.close_code == 1000
    with pytest.raises(ConnectionError):
        await bus.send("x.fire")


async def test_after_a_frame_it_cannot_read_the_client_is_closed_for_good(server):
    async with BusClient(server.url) as bus:
        with pytest.raises(ConnectionError, match=r"connection closed \(1006\)"):
            await bus.request("x.garbage", timeout=3)  # pending when the reader stopped
        assert not bus.open
        assert bus.close_code == 1006
        with pytest.raises(ConnectionError):
            await bus.request("x.echo", {"n": 1}, timeout=1)
