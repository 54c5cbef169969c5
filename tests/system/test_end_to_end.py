"""The issue's acceptance script: channelbus.client against the demo served by uvicorn."""

import asyncio
import subprocess
import sys

import pytest

from channelbus.client import BusClient, RequestFailed, fetch_cookies
from tests.servers import DEMO, ROOT, demo_env, demo_server


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def server(demo_dir):
    # tests.slowapp adds a slow message type to the demo.
    with demo_server(demo_dir, {"DEMO_EXTRA_APPS": "tests.slowapp", "PYTHONPATH": str(ROOT)}) as address:
        yield address


async def test_contract_replies_over_a_real_socket(server):
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    assert "sessionid" in cookies
    async with BusClient(f"ws://{server}/ws/", cookies=cookies) as bus:
        assert bus.websocket.subprotocol == "channelbus.v1"
        pong = await bus.request_frame("s.ping", trace_id="p1")
        assert pong == {"t": "s.pong", "i": "p1", "s": "s", "p": None}

        assert await bus.request("demo.echo", {"text": "hello"}) == {"text": "hello"}
        assert await bus.request("demo.add", {"a": 2, "b": 3}) == {"sum": 5}

        with pytest.raises(RequestFailed) as exc:
            await bus.request("demo.add", {"a": "two"}, trace_id="bad1")
        assert exc.value.frame["i"] == "bad1"
        assert exc.value.type == "error.validation"
        assert exc.value.payload["type_name"] == "demo.add"
        assert [e["loc"] for e in exc.value.payload["errors"]] == [["a"], ["b"]]

        with pytest.raises(RequestFailed) as exc:
            await bus.request("demo.nothing", trace_id="u1")
        assert exc.value.frame == {
            "t": "error.msg_type",
            "i": "u1",
            "s": "f",
            "p": {"msg": "Unknown message type 'demo.nothing'.", "type_name": "demo.nothing"},
        }

        await bus.send_raw("this is not json")
        frame = await bus.receive()
        assert frame == {"t": "error.bad_request", "s": "f", "p": {"msg": "The frame is not valid JSON."}}

        big = '{"t":"demo.echo","i":"big1","p":{"text":"' + "x" * (300 * 1024) + '"}}'
        await bus.send_raw(big)
        frame = await bus.receive()
        assert frame["t"] == "error.too_large"
        assert frame["s"] == "f"
        assert frame["i"] == "big1"
        assert frame["p"]["limit"] == 256 * 1024

        # Still open after all of them.
        assert bus.open
        assert await bus.request("demo.echo", {"text": "still here"}) == {"text": "still here"}


async def test_without_cookie_closed_with_4401(server):
    bus = BusClient(f"ws://{server}/ws/")
    with pytest.raises(ConnectionError, match=r"not connected: call connect\(\)"):
        await bus.send("demo.echo", {"text": "too early"})
    await bus.connect()
    closing = await bus.receive("s.closing")
    assert closing["p"]["code"] == 4401
    assert await bus.wait_closed() == 4401
    # After the close: ConnectionError at once (a 30 s timeout would fail this test with TimeoutError).
    for _ in range(2):
        with pytest.raises(ConnectionError, match=r"connection closed \(4401\)"):
            await bus.receive(timeout=30)
    with pytest.raises(ConnectionError, match=r"connection closed \(4401\)"):
        await bus.request("demo.echo", {"text": "after the close"}, timeout=30)


async def test_foreign_origin_is_refused(server):
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    bus = BusClient(f"ws://{server}/ws/", cookies=cookies, origin="http://evil.example")
    await bus.connect()
    assert await bus.wait_closed() == 4403


async def test_connection_token_for_scripts(server, demo_dir):
    # A token made by the server's code authenticates a client that has no cookie.
    await asyncio.to_thread(fetch_cookies, f"http://{server}/")  # creates a guest user
    script = (
        "import django; django.setup();"
        "from django.contrib.auth import get_user_model;"
        "from channelbus.server.auth import connection_token;"
        "print(connection_token(get_user_model().objects.order_by('pk').first()))"
    )
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        cwd=DEMO,
        env=demo_env(demo_dir),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    async with BusClient(f"ws://{server}/ws/", token=out.stdout.strip()) as bus:
        assert await bus.request("demo.add", {"a": 1, "b": 1}) == {"sum": 2}
    bus = BusClient(f"ws://{server}/ws/", token="forged")
    await bus.connect()
    assert await bus.wait_closed() == 4401


async def test_client_handlers_timeouts_and_fire_and_forget(server):
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    async with BusClient(f"ws://{server}/ws/", cookies=cookies) as bus:
        seen = []
        bus.on("error.bad_request", seen.append)
        await bus.send_raw("[]")
        await bus.send("demo.echo", {"text": "no reply expected"})
        with pytest.raises(TimeoutError, match=r"no reply to e2e.sleep \(i=[0-9a-f]+-\d+\) within 0.05 s"):
            await bus.request("e2e.sleep", {"seconds": 0.3}, timeout=0.05)
        # The late reply is dropped; the connection goes on.
        assert await bus.request("demo.add", {"a": 1, "b": 2}) == {"sum": 3}
        assert seen == [
            {"t": "error.bad_request", "s": "f", "p": {"msg": "The frame must be a JSON object."}}
        ]
        await asyncio.sleep(0.3)
        try:
            extra = await bus.receive(timeout=0.2)
        except TimeoutError:
            extra = None
        assert (
            extra is None
        )  # the fire-and-forget echo got no reply, and the late e2e.sleep reply was dropped


async def test_two_guests_chat_in_a_room(server):
    cookies = [await asyncio.to_thread(fetch_cookies, f"http://{server}/") for _ in range(2)]
    async with (
        BusClient(f"ws://{server}/ws/", cookies=cookies[0]) as ann,
        BusClient(f"ws://{server}/ws/", cookies=cookies[1]) as ben,
    ):
        joined = await ann.request("topic.subscribe", {"topic": "chat.room:lobby"})
        assert joined["topic"] == "chat.room:lobby"
        assert isinstance(joined["state"], list)
        history = len(joined["state"])
        await ben.request("topic.subscribe", {"topic": "chat.room:lobby"})
        for n in range(3):
            await (ann if n % 2 == 0 else ben).request("chat.send", {"room": "lobby", "text": f"hello {n}"})
        for tab in (ann, ben):
            frames = [await tab.receive("chat.message", timeout=5) for _ in range(3)]
            assert [f["p"]["text"] for f in frames] == ["hello 0", "hello 1", "hello 2"]
            assert all(f["c"] == "chat.room:lobby" for f in frames)
            assert frames[0]["p"]["user"] != frames[1]["p"]["user"]
        # A later visitor sees the messages as the room's history.
        async with BusClient(f"ws://{server}/ws/", cookies=cookies[0]) as late:
            state = (await late.request("topic.subscribe", {"topic": "chat.room:lobby"}))["state"]
            assert [m["text"] for m in state[history:]] == ["hello 0", "hello 1", "hello 2"]
        # Another user's own topic is refused.
        mine = next(t for t in (await ann.request("topic.list"))["topics"] if t.startswith("user:"))
        with pytest.raises(RequestFailed) as exc:
            await ben.request("topic.subscribe", {"topic": mine})
        assert exc.value.type == "error.subscribe"
        assert exc.value.payload["topic"] == mine
        with pytest.raises(RequestFailed) as exc:
            await ann.request("chat.send", {"room": "Not a room!", "text": "x"})
        assert exc.value.type == "error.validation"


async def test_mentions_notify_the_user_on_their_own_topic(server):
    cookies = [await asyncio.to_thread(fetch_cookies, f"http://{server}/") for _ in range(2)]
    async with (
        BusClient(f"ws://{server}/ws/", cookies=cookies[0]) as ann,
        BusClient(f"ws://{server}/ws/", cookies=cookies[1]) as ben,
    ):
        ben_topic = next(t for t in (await ben.request("topic.list"))["topics"] if t.startswith("user:"))
        for tab in (ann, ben):
            await tab.request("topic.subscribe", {"topic": "chat.room:mentions"})
        await ben.request("chat.send", {"room": "mentions", "text": "hello from ben"})
        ben_name = (await ann.receive("chat.message", timeout=5))["p"]["user"]
        await ann.request("chat.send", {"room": "mentions", "text": f"hi @{ben_name}"})
        notice = await ben.receive("demo.notice", timeout=5)
        assert notice["c"] == ben_topic
        assert "mentioned you in #mentions" in notice["p"]["text"]


def _get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


async def test_runbus_serves_the_client_and_the_page_that_loads_it(server):
    # runbus serves STATIC_URL with DEBUG, as runserver does: the page's {% channelbus_client %} works.
    status, script = await asyncio.to_thread(_get, f"http://{server}/static/channelbus/channelbus.js")
    assert status == 200
    assert "globalThis.channelbus = api" in script
    status, page = await asyncio.to_thread(_get, f"http://{server}/")
    assert status == 200
    config = '<script id="channelbus-config" type="application/json">{"url": "/ws/", "token": null}</script>'
    assert config in page
    assert '<script src="/static/channelbus/channelbus.js" defer></script>' in page
    status, _ = await asyncio.to_thread(_get, f"http://{server}/static/channelbus/no-such-file.js")
    assert status == 404


async def test_runbus_turns_websocket_compression_off(server):
    # Every browser offers permessage-deflate, as websockets' client does by default; runbus declines it so
    # that a published frame is built once and written as is to every subscriber (docs/deployment.md).
    from websockets.asyncio.client import connect

    cookies = await asyncio.to_thread(fetch_cookies, f"http://{server}/")
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    async with connect(
        f"ws://{server}/ws/",
        origin=f"http://{server}",
        additional_headers={"Cookie": cookie},
        subprotocols=["channelbus.v1"],
    ) as websocket:
        assert "permessage-deflate" in websocket.request.headers["Sec-WebSocket-Extensions"]
        assert websocket.response.headers.get("Sec-WebSocket-Extensions") is None
        await websocket.send('{"t": "s.ping", "i": "1"}')
        assert await websocket.recv() == '{"t":"s.pong","i":"1","s":"s"}'
