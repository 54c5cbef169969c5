"""BusClient (channelbus/client.py), the Python client that runs without Django, against a small websockets
server started here that speaks channelbus frames: requests resolve with the ``s`` payload and raise
RequestFailed on ``f``, states reach ``on_state``, ``on()`` handlers take their frames, ``receive()`` times
out with a message, everything raises ConnectionError once closed, and what it sends is protocol.encode's.

Then resuming (issue 12): Position's tracking of a topic's numbering, subscribe() dropping frames seen
already, reconnect() (and reconnect=True) renewing subscriptions with since and sending again, once and with
the same i, the requests still waiting, trace ids unique per client: against a scripted server that plays
the server's part frame by frame, then against the demo served by runbus."""

import asyncio
import contextlib

import orjson
import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from channelbus.client import AHEAD_LIMIT, BusClient, Position, RequestFailed, fetch_cookies
from channelbus.protocol import MAX_TRACE_ID_LENGTH, encode
from tests.servers import ROOT, demo_server, free_port
from tests.waiting import wait_for


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


# -- Position ----------------------------------------------------------------------------------------------


def test_a_position_refuses_duplicates_and_counts_frames_out_of_order_once():
    position = Position(3, "e1")
    assert [position.accept(n) for n in (4, 4, 3, 1)] == [True, False, False, False]
    assert [position.accept(n) for n in (7, 6, 7)] == [True, True, False]
    assert (position.last, position.ahead) == (4, {6, 7})
    assert position.accept(5)
    assert (position.last, position.ahead) == (7, set()), "5 fills the gap: 6 and 7 were seen"
    assert position.since() == {"n": 7, "epoch": "e1"}
    position.reset(2, "e2")
    assert (position.since(), position.ahead) == ({"n": 2, "epoch": "e2"}, set())
    assert Position().since() is None, "no epoch known: nothing to resume from"


def test_a_gap_that_never_fills_is_accepted_beyond_the_ahead_limit():
    position = Position(0, "e1")
    for n in range(2, AHEAD_LIMIT + 2):
        assert position.accept(n)
    assert (position.last, len(position.ahead)) == (0, AHEAD_LIMIT)
    assert position.accept(AHEAD_LIMIT + 2)
    assert (position.last, position.ahead) == (AHEAD_LIMIT + 2, set())
    assert not position.accept(1), "below the accepted gap: dropped"


def test_the_first_frame_of_a_new_numbering_restarts_the_count_instead_of_being_dropped():
    position = Position(40, "old")
    assert position.accept(41)
    assert position.accept(1, "new"), "n = 1 of another epoch: the topic's numbering restarted"
    assert position.since() == {"n": 1, "epoch": "new"}
    assert position.accept(2)
    assert not position.accept(1, "new"), "the same first frame again: a duplicate"


# -- A scripted server -------------------------------------------------------------------------------------


class Peer:
    """One connection as the server sees it: what the client sent, and ways to answer or drop it."""

    def __init__(self, ws):
        self.ws = ws
        self.frames = asyncio.Queue()

    async def next(self, timeout=5.0):
        """The next frame the client sent."""
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def send(self, frame):
        await self.ws.send(orjson.dumps(frame).decode())

    async def subscribed(self, request, n, epoch, recovered=None, state=None):
        """Answer a topic.subscribe as the server does: the topic's position (and recovered after a since)."""
        p = {"topic": request["p"]["topic"], "state": state, "n": n, "epoch": epoch}
        if recovered is not None:
            p["recovered"] = recovered
        await self.send({"t": "topic.subscribed", "i": request["i"], "p": p, "s": "s"})

    async def publish(self, topic, *numbers, t="x.msg"):
        """Frames published to topic, numbered as given (None: a volatile frame, no n)."""
        for n in numbers:
            frame = {"t": t, "p": {"n": n}, "c": topic}
            if n is not None:
                frame["n"] = n
            await self.send(frame)

    def drop(self):
        """Lose the connection without a close frame (the client sees 1006)."""
        self.ws.transport.abort()


class Scripted:
    """A server whose test plays each connection: accept() gives the next one."""

    def __init__(self):
        self.peers = asyncio.Queue()
        self.headers = []
        self.url = ""

    async def handle(self, ws):
        peer = Peer(ws)
        self.headers.append(ws.request.headers)
        self.peers.put_nowait(peer)
        try:
            async for text in ws:
                peer.frames.put_nowait(orjson.loads(text))
        except ConnectionClosed:
            pass

    async def accept(self, timeout=5.0):
        return await asyncio.wait_for(self.peers.get(), timeout)


@pytest.fixture
async def scripted():
    async with serving(Scripted()) as server:
        yield server


async def subscribe(bus, peer, topic, n, epoch, handler=None, **options):
    """bus.subscribe(topic) answered by peer with the topic's position."""
    pending = asyncio.ensure_future(bus.subscribe(topic, handler, **options))
    request = await peer.next()
    assert request["t"] == "topic.subscribe"
    assert request["p"] == {"topic": topic}
    await peer.subscribed(request, n, epoch, state={"at": n})
    return await pending


async def reconnect_with(bus, scripted, answer):
    """bus.reconnect(), with answer(peer) playing the new connection; returns that peer."""
    reconnecting = asyncio.ensure_future(bus.reconnect())
    peer = await scripted.accept()
    await answer(peer)
    await reconnecting
    return peer


# -- Trace ids ---------------------------------------------------------------------------------------------


def request_soon(bus, type_name="x.work"):
    """Send a request whose outcome the test does not wait for."""
    asyncio.ensure_future(bus.request(type_name, timeout=5)).add_done_callback(lambda done: done.exception())


async def test_trace_ids_are_a_random_prefix_and_a_counter_unique_per_client_and_across_reconnects(scripted):
    async with BusClient(scripted.url) as one, BusClient(scripted.url) as two:
        ids = []
        for bus in (one, two):
            peer = await scripted.accept()
            request_soon(bus)
            request_soon(bus)
            ids.append([(await peer.next())["i"] for _ in range(2)])
        prefixes = [pair[0].split("-")[0] for pair in ids]
        assert prefixes[0] != prefixes[1]
        for prefix, pair in zip(prefixes, ids, strict=True):
            assert len(prefix) == 8
            assert pair == [f"{prefix}-1", f"{prefix}-2"]

        async def silent(peer):
            pass

        peer = await reconnect_with(two, scripted, silent)
        assert [(await peer.next())["i"] for _ in range(2)] == ids[1], "sent again with their own i"
        request_soon(two)
        assert (await peer.next())["i"] == f"{prefixes[1]}-3"


# -- subscribe() -------------------------------------------------------------------------------------------


async def test_a_subscription_tracks_its_position_and_frames_seen_already_reach_nobody(scripted):
    async with BusClient(scripted.url) as bus:
        peer = await scripted.accept()
        handled, typed = [], []
        sub = await subscribe(bus, peer, "room:a", 3, "e1", lambda frame: handled.append(frame.get("n")))
        assert (sub.topic, sub.state, sub.n, sub.epoch, sub.recovered, sub.active) == (
            "room:a",
            {"at": 3},
            3,
            "e1",
            None,
            True,
        )
        quiet = await subscribe(bus, peer, "room:b", 0, "e9")  # no handler: its frames go to receive()
        bus.on("x.msg", lambda frame: typed.append((frame["c"], frame.get("n"))))

        await peer.publish("room:a", 4, 4, 3, 6, 5, 6, None, None)
        await peer.publish("room:b", 1, 1, 2, t="y.msg")
        await peer.publish("room:z", 1, 1)  # not subscribed with subscribe(): not tracked
        await peer.send({"t": "x.end"})
        assert (await bus.receive("x.end"))["t"] == "x.end"

        assert handled == [4, 6, 5, None, None]
        assert typed == [("room:a", n) for n in handled] + [("room:z", 1), ("room:z", 1)]
        assert (sub.n, sub.position.ahead) == (6, set())
        assert quiet.n == 2
        await peer.publish("room:b", 3, 2, t="y.msg")
        assert [(await bus.receive("y.msg", timeout=3))["n"] for _ in range(1)] == [3]
        assert bus.subscriptions == [sub, quiet]


async def test_subscribing_twice_to_a_topic_is_refused_and_leave_stops_the_tracking(scripted):
    async with BusClient(scripted.url) as bus:
        peer = await scripted.accept()
        handled = []
        sub = await subscribe(bus, peer, "room:a", 0, "e1", lambda frame: handled.append(frame["n"]))
        with pytest.raises(ValueError, match="already subscribed to room:a"):
            await bus.subscribe("room:a")

        leaving = asyncio.ensure_future(sub.leave())
        request = await peer.next()
        assert (request["t"], request["p"]) == ("topic.leave", {"topic": "room:a"})
        await peer.send({"t": "topic.left", "i": request["i"], "p": {"topic": "room:a"}, "s": "s"})
        assert await leaving == {"topic": "room:a"}
        assert not sub.active
        assert bus.subscriptions == []
        await peer.publish("room:a", 1, 1)
        assert [(await bus.receive(timeout=3))["n"] for _ in range(2)] == [1, 1]
        assert handled == []


async def test_a_topic_the_server_takes_away_is_not_renewed(scripted):
    async with BusClient(scripted.url) as bus:
        peer = await scripted.accept()
        sub = await subscribe(bus, peer, "room:a", 0, "e1")
        left = {"t": "topic.left", "p": {"topic": "room:a", "reason": "You may not subscribe to room:a."}}
        await peer.send(left)
        assert await bus.receive("topic.left") == left
        assert (sub.active, sub.lost, bus.subscriptions) == (False, left, [])

        async def no_renewal(peer):
            pass

        peer = await reconnect_with(bus, scripted, no_renewal)
        await bus.send("x.marker")
        assert (await peer.next())["t"] == "x.marker"


# -- reconnect() -------------------------------------------------------------------------------------------


async def test_reconnect_resumes_each_subscription_from_its_position_and_replayed_frames_pass_once(scripted):
    async with BusClient(scripted.url, cookies={"sessionid": "abc"}, token="tok") as bus:
        peer = await scripted.accept()
        handled = []
        sub = await subscribe(bus, peer, "room:a", 10, "e1", lambda frame: handled.append(frame["n"]))
        await peer.publish("room:a", 11, 13)  # 12 is still on its way when the connection is replaced
        await wait_for(lambda: len(handled) == 2)

        async def recovered(peer):
            request = await peer.next()
            assert request["p"] == {"topic": "room:a", "since": {"n": 11, "epoch": "e1"}}
            await peer.subscribed(request, 14, "e1", recovered=True, state={"at": 14})
            await peer.publish("room:a", 12, 13, 14, 15)  # the replay, then a live frame

        await reconnect_with(bus, scripted, recovered)
        await wait_for(lambda: len(handled) == 5)
        assert handled == [11, 13, 12, 14, 15]
        assert (sub.recovered, sub.n, sub.epoch, sub.state) == (True, 15, "e1", {"at": 14})
        assert bus.reconnects == 1
        assert [h["Cookie"] for h in scripted.headers] == ["sessionid=abc"] * 2
        assert [h["Authorization"] for h in scripted.headers] == ["Bearer tok"] * 2
        assert scripted.headers[0]["Origin"] == scripted.headers[1]["Origin"]


async def test_a_renewal_that_cannot_recover_resets_the_position_and_calls_on_reset_before_the_next_frame(
    scripted,
):
    async with BusClient(scripted.url) as bus:
        peer = await scripted.accept()
        log = []

        async def on_reset(subscription):  # async callbacks are awaited
            log.append(("reset", subscription.state, subscription.n, subscription.epoch))

        sub = await subscribe(
            bus, peer, "room:a", 40, "e1", lambda frame: log.append(("frame", frame["n"])), on_reset=on_reset
        )
        await peer.publish("room:a", 41)
        await wait_for(lambda: log)

        async def restarted(peer):  # a new epoch, counting from 1 again
            request = await peer.next()
            assert request["p"]["since"] == {"n": 41, "epoch": "e1"}
            await peer.subscribed(request, 3, "e2", recovered=False, state={"fresh": True})
            await peer.publish("room:a", 4, 3)  # 4 right away: under the old position, a duplicate

        await reconnect_with(bus, scripted, restarted)
        await wait_for(lambda: len(log) == 3)
        assert log == [("frame", 41), ("reset", {"fresh": True}, 3, "e2"), ("frame", 4)]
        assert (sub.recovered, sub.state, sub.n, sub.epoch) == (False, {"fresh": True}, 4, "e2")


async def test_reconnect_sends_a_waiting_request_again_once_with_its_i_and_the_caller_has_the_reply(scripted):
    async with BusClient(scripted.url) as bus:
        peer = await scripted.accept()
        states = []
        work = asyncio.ensure_future(bus.request("x.work", {"a": 1}, on_state=states.append))
        ping = asyncio.ensure_future(bus.request("s.ping"))
        subscribing = asyncio.ensure_future(bus.subscribe("room:a"))
        sent = [await peer.next() for _ in range(3)]
        assert [f["t"] for f in sent] == ["x.work", "s.ping", "topic.subscribe"]

        async def answer_later(peer):
            pass

        peer = await reconnect_with(bus, scripted, answer_later)
        # Not sent again: a ping is about the old connection, a subscribe is renewed by its own resubscribe.
        for request in (ping, subscribing):
            with pytest.raises(ConnectionError):
                await request
        again = await peer.next()
        assert again == sent[0]
        await peer.send({"t": "x.work", "i": again["i"], "s": "q"})
        await peer.send({"t": "x.work", "i": again["i"], "p": {"done": True}, "s": "s"})
        assert await work == {"done": True}
        assert [f["s"] for f in states] == ["q"]


async def test_a_request_sent_again_that_loses_its_connection_again_fails(scripted):
    async with BusClient(scripted.url) as bus:
        peer = await scripted.accept()
        work = asyncio.ensure_future(bus.request("x.work", timeout=30))
        first = await peer.next()

        async def silent(peer):
            pass

        peer = await reconnect_with(bus, scripted, silent)
        assert await peer.next() == first
        peer = await reconnect_with(bus, scripted, silent)
        with pytest.raises(ConnectionError):
            await work
        await bus.send("x.marker")
        assert (await peer.next())["t"] == "x.marker", "not sent a third time"


async def test_reconnect_opens_a_closed_client_again_and_a_failed_reconnect_fails_the_waiting_requests(
    scripted,
):
    bus = await BusClient(scripted.url).connect()
    peer = await scripted.accept()
    sub = await subscribe(bus, peer, "room:a", 5, "e1")
    await bus.close()
    with pytest.raises(ConnectionError):
        await bus.receive(timeout=3)

    async def resumed(peer):
        request = await peer.next()
        assert request["p"]["since"] == {"n": 5, "epoch": "e1"}
        await peer.subscribed(request, 5, "e1", recovered=True)

    peer = await reconnect_with(bus, scripted, resumed)
    assert bus.open
    assert sub.recovered is True

    work = asyncio.ensure_future(bus.request("x.work", timeout=30))
    await peer.next()
    bus.url = f"ws://127.0.0.1:{free_port()}/ws/"  # nothing listens there
    with pytest.raises(OSError):
        await bus.reconnect()
    with pytest.raises(ConnectionError):
        await work
    await bus.close()


# -- reconnect=True ----------------------------------------------------------------------------------------


async def test_after_a_drop_the_client_reconnects_by_itself_sends_again_and_resumes(scripted):
    async with BusClient(scripted.url, reconnect=True, backoff=(0.01, 0.05)) as bus:
        peer = await scripted.accept()
        handled = []
        await subscribe(bus, peer, "room:a", 7, "e1", lambda frame: handled.append(frame["n"]))
        work = asyncio.ensure_future(bus.request("x.work", timeout=30))
        first = await peer.next()
        peer.drop()

        peer = await scripted.accept()
        again, renewal = await peer.next(), await peer.next()
        assert again == first
        assert renewal["p"] == {"topic": "room:a", "since": {"n": 7, "epoch": "e1"}}
        await peer.subscribed(renewal, 8, "e1", recovered=True)
        await peer.publish("room:a", 8)
        await peer.send({"t": "x.work", "i": first["i"], "p": 1, "s": "s"})
        assert await work == 1
        await wait_for(lambda: handled == [8])
        await wait_for(lambda: bus.open and bus.reconnects == 1)

        # A request sent again whose connection drops again fails; the client reconnects all the same.
        work = asyncio.ensure_future(bus.request("x.work", timeout=30))
        first = await peer.next()
        peer.drop()
        peer = await scripted.accept()
        assert await peer.next() == first
        assert (await peer.next())["p"]["since"] == {"n": 8, "epoch": "e1"}
        peer.drop()  # before the renewal's reply: that attempt fails, the next one renews again
        with pytest.raises(ConnectionError):
            await work
        peer = await scripted.accept()
        renewal = await peer.next()
        assert renewal["t"] == "topic.subscribe", "the request is not sent a third time"
        await peer.subscribed(renewal, 8, "e1", recovered=True)
        await wait_for(lambda: bus.open and bus.reconnects == 3)


async def test_no_reconnect_after_a_refusal_and_none_after_close(scripted):
    async with BusClient(scripted.url, reconnect=True, backoff=(0.01, 0.05)) as bus:
        peer = await scripted.accept()
        work = asyncio.ensure_future(bus.request("x.work", timeout=30))
        await peer.next()
        await peer.send({"t": "s.closing", "p": {"code": 4403, "reason": "Go away."}})
        await peer.ws.close(4403, "Go away.")
        with pytest.raises(ConnectionError, match=r"connection closed \(4403\)"):
            await work
        assert (await bus.receive(timeout=3))["t"] == "s.closing"
        with pytest.raises(ConnectionError):  # only once the client has given up
            await bus.receive(timeout=30)

    bus = await BusClient(scripted.url, reconnect=True, backoff=(30, 30)).connect()
    peer = await scripted.accept()
    work = asyncio.ensure_future(bus.request("x.work", timeout=30))
    await peer.next()
    peer.drop()
    await bus.wait_closed()
    await bus.close()  # during the backoff wait: no reconnect, the waiting request fails
    with pytest.raises(ConnectionError):
        await work
    with pytest.raises(ConnectionError):
        await bus.receive(timeout=30)
    assert scripted.peers.empty()


async def test_without_reconnect_a_drop_fails_the_requests_at_once(scripted):
    async with BusClient(scripted.url) as bus:
        peer = await scripted.accept()
        work = asyncio.ensure_future(bus.request("x.work", timeout=30))
        await peer.next()
        peer.drop()
        with pytest.raises(ConnectionError, match=r"connection closed \(1006\)"):
            await work
        assert bus.reconnects == 0


# -- Against the demo server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    # tests.slowapp adds e2e.sleep, a request that takes as long as asked.
    env = {"DEMO_EXTRA_APPS": "tests.slowapp", "PYTHONPATH": str(ROOT)}
    with demo_server(tmp_path_factory.mktemp("demo"), env) as address:
        yield address


async def demo_client(address, **options):
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{address}/")  # signs a guest in
    return await BusClient(f"ws://{address}/ws/", cookies=cookies, **options).connect()


async def test_demo_numbers_frames_and_a_reconnect_recovers_when_nothing_was_missed(demo):
    shouter = await demo_client(demo)
    listener = await demo_client(demo)
    try:
        heard = []
        sub = await listener.subscribe("demo.all", lambda frame: heard.append(frame))
        assert sub.epoch
        start = sub.n
        for text in ("one", "two"):
            await shouter.request("demo.shout", {"text": text})
        await wait_for(lambda: len(heard) == 2)
        assert [(f["p"]["text"], f["n"]) for f in heard] == [("one", start + 1), ("two", start + 2)]
        assert sub.n == start + 2

        await listener.reconnect()
        assert (sub.recovered, sub.n, sub.active) == (True, start + 2, True)
        await shouter.request("demo.shout", {"text": "three"})
        await wait_for(lambda: len(heard) == 3)
        assert heard[-1]["n"] == sub.n == start + 3
    finally:
        await shouter.close()
        await listener.close()


async def test_demo_frames_missed_without_a_history_reset_the_subscription(demo):
    shouter = await demo_client(demo)
    resets = []
    listener = await demo_client(demo)
    try:
        sub = await listener.subscribe("demo.all", on_reset=resets.append)
        await listener.close()
        await shouter.request("demo.shout", {"text": "missed"})
        await listener.reconnect()  # the demo keeps no history for demo.all: nothing can be replayed
        assert resets == [sub]
        assert sub.recovered is False
        assert sub.n >= 1
    finally:
        await shouter.close()
        await listener.close()


async def test_demo_answers_a_request_sent_again_after_a_reconnect(demo):
    bus = await demo_client(demo)
    try:
        sleeping = asyncio.ensure_future(bus.request_frame("e2e.sleep", {"seconds": 0.5}, trace_id="nap-1"))
        await wait_for(lambda: bus._pending)  # sent
        await bus.reconnect()
        frame = await sleeping
        assert (frame["i"], frame["p"]) == ("nap-1", {"slept": 0.5})
        with pytest.raises(RequestFailed):
            await bus.request("demo.add", {"a": "two"})  # the new connection answers as any
    finally:
        await bus.close()


async def test_demo_replays_what_a_chat_room_missed_once_and_in_order(demo):
    # chat.room keeps its last 200 frames (demo/demoapp/topics.py): a reconnect gets the missed ones.
    sender = await demo_client(demo)
    listener = await demo_client(demo)
    try:
        heard = []
        sub = await listener.subscribe("chat.room:resume", lambda frame: heard.append(frame["p"]["text"]))
        await sender.request("chat.send", {"room": "resume", "text": "before"})
        await wait_for(lambda: heard == ["before"])
        await listener.close()
        for text in ("missed 1", "missed 2"):
            await sender.request("chat.send", {"room": "resume", "text": text})
        await listener.reconnect()
        assert sub.recovered is True
        await sender.request("chat.send", {"room": "resume", "text": "after"})
        await wait_for(lambda: len(heard) == 4)
        assert heard == ["before", "missed 1", "missed 2", "after"]
    finally:
        await sender.close()
        await listener.close()


# -- Presence ----------------------------------------------------------------------------------------------


def member(name, conns=1):
    return {"info": {"name": name}, "conns": conns}


def presence_state(members, v):
    return {"members": members, "count": len(members), "v": v, "truncated": False}


async def subscribed_with_presence(bus, peer, topic, members, v):
    """bus.subscribe(topic) answered with a presence state, as a presence topic's reply is."""
    pending = asyncio.ensure_future(bus.subscribe(topic))
    request = await peer.next()
    p = {"topic": topic, "state": [], "n": 0, "epoch": "e1", "presence": presence_state(members, v)}
    await peer.send({"t": "topic.subscribed", "i": request["i"], "p": p, "s": "s"})
    return await pending


async def diff(peer, topic, v, joins=None, leaves=None):
    p = {"topic": topic, "joins": joins or {}, "leaves": leaves or {}, "count": 0, "v": v}
    await peer.send({"t": "presence.diff", "p": p, "c": topic})


async def test_a_presence_subscription_keeps_its_members_by_v_and_asks_the_state_after_a_jump(scripted):
    async with BusClient(scripted.url) as bus:
        peer = await scripted.accept()
        sub = await subscribed_with_presence(bus, peer, "chat.room:a", {"4": member("alice")}, 100)
        assert sub.members == {"4": member("alice")}
        await diff(peer, "chat.room:a", 101, joins={"9": member("bob")})
        await diff(peer, "chat.room:a", 102, joins={"9": member("bob", 2)})  # bob's second tab: one member
        await wait_for(lambda: sub.presence.v == 102)
        assert sub.members == {"4": member("alice"), "9": member("bob", 2)}
        await diff(peer, "chat.room:a", 100, leaves={"4": member("alice", 0)})  # older than the map: dropped
        await diff(peer, "chat.room:a", 103, leaves={"9": member("bob", 0)})
        await wait_for(lambda: sub.presence.v == 103)
        assert sub.members == {"4": member("alice")}

        await diff(peer, "chat.room:a", 107, joins={"12": member("carol")})  # a jump: one presence.get
        ask = await peer.next()
        assert (ask["t"], ask["p"]) == ("presence.get", {"topic": "chat.room:a"})
        exact = presence_state({"4": member("alice"), "12": member("carol"), "13": member("dave")}, 107)
        exact["topic"] = "chat.room:a"
        await peer.send({"t": "presence.state", "i": ask["i"], "p": exact, "s": "s"})
        await wait_for(lambda: "13" in sub.members)
        assert set(sub.members) == {"4", "12", "13"}


async def test_a_presence_subscription_starts_over_from_the_renewal_state(scripted):
    async with BusClient(scripted.url) as bus:
        peer = await scripted.accept()
        sub = await subscribed_with_presence(bus, peer, "chat.room:b", {"4": member("alice")}, 500)

        async def answer(new_peer):
            request = await new_peer.next()
            # A restarted server: v below the old one, still the state to start over from.
            p = {"topic": "chat.room:b", "state": [], "n": 0, "epoch": "e2"}
            p["presence"] = presence_state({}, 300)
            await new_peer.send({"t": "topic.subscribed", "i": request["i"], "p": p, "s": "s"})

        await reconnect_with(bus, scripted, answer)
        assert (sub.members, sub.presence.v) == ({}, 300)


async def test_a_topic_without_presence_has_no_members(scripted):
    async with BusClient(scripted.url) as bus:
        peer = await scripted.accept()
        sub = await subscribe(bus, peer, "demo.all", 0, "e1")
        assert sub.members is None


async def test_demo_presence_lists_the_guests_of_a_room_and_shows_arrivals_and_departures(demo):
    alice = await demo_client(demo)
    bob = await demo_client(demo)
    try:
        room = "chat.room:presence-py"
        sub = await alice.subscribe(room)
        assert [entry["conns"] for entry in sub.members.values()] == [1]
        (alice_key,) = sub.members
        assert set(await bob.presence(room)) == {alice_key}  # asking does not make bob a member
        await bob.subscribe(room)
        await wait_for(lambda: len(sub.members) == 2)
        (bob_key,) = set(sub.members) - {alice_key}
        assert sub.members[bob_key]["info"]["name"].startswith("guest")
        assert set(await bob.presence(room)) == {alice_key, bob_key}
        await bob.close()
        await wait_for(lambda: set(sub.members) == {alice_key})
        with pytest.raises(RequestFailed) as refused:
            await alice.presence("demo.all")
        assert refused.value.type == "error.subscribe"
    finally:
        await alice.close()
        await bob.close()
