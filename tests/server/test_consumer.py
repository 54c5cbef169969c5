"""The consumer's pipeline, limits and order, through the in-process test client."""

import asyncio
import logging
import socket

import pytest
from demoapp.messages import Echo
from django.contrib.auth.models import AnonymousUser
from django.test import override_settings

from channelbus import BusConsumer, Registry, signals
from channelbus.messages.control import Ping
from channelbus.protocol import CloseCode
from channelbus.testing import BusTestClient, ConnectionRefused, RequestFailed
from channelbus.transport import get_hub
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


async def test_request_reply_and_ping(bus_client, user):
    client = await bus_client(user=user)
    assert await client.request("demo.echo", {"text": "hi"}) == {"text": "hi"}
    frame = await client.request_frame("s.ping")
    assert frame == {"t": "s.pong", "i": frame["i"], "s": "s"}
    assert await client.request("demo.add", {"a": 2, "b": 40}) == {"sum": 42}


async def test_fire_and_forget_gets_no_reply_but_errors(bus_client, user):
    client = await bus_client(user=user)
    await client.send("demo.echo", {"text": "hi"})
    await client.assert_nothing_received(0.2)
    await client.send("demo.echo", {"text": ""})
    frame = await client.receive()
    assert frame["t"] == "error.validation"
    assert "i" not in frame
    assert frame["s"] == "f"


async def test_validation_error_lists_locations(bus_client, user):
    client = await bus_client(user=user)
    with pytest.raises(RequestFailed) as exc:
        await client.request("demo.add", {"a": "two"})
    assert exc.value.type == "error.validation"
    p = exc.value.payload
    assert p["type_name"] == "demo.add"
    assert {tuple(e["loc"]) for e in p["errors"]} == {("a",), ("b",)}
    assert all(set(e) == {"loc", "msg", "type"} for e in p["errors"])


async def test_the_demos_add_refuses_numbers_beyond_safe_integers(bus_client, user):
    """Found by the fuzzer: a sum above 64 bits could not be encoded, and the client got error.server."""
    client = await bus_client(user=user)
    await client.send_raw('{"t":"demo.add","i":"big","p":{"a":' + str(2**70) + ',"b":1}}')
    frame = await client.receive()
    assert (frame["t"], frame["i"]) == ("error.validation", "big")
    assert await client.request("demo.add", {"a": 2**53 - 1, "b": 2**53 - 1}) == {"sum": 2**54 - 2}


async def test_payload_for_message_without_schema_is_refused(bus_client, user):
    client = await bus_client(user=user)
    with pytest.raises(RequestFailed) as exc:
        await client.request("s.ping", {"x": 1})
    assert exc.value.type == "error.validation"


@pytest.mark.parametrize(
    ("frame", "error", "has_i"),
    [
        ("not json", "error.bad_request", False),
        ("[1]", "error.bad_request", False),
        ('{"t":"demo.echo","i":"k1","x":1}', "error.bad_request", True),
        ('{"t":"Bad","i":"k1"}', "error.bad_request", True),
        ('{"t":"no.such","i":"k1"}', "error.msg_type", True),
    ],
)
async def test_bad_frames_get_errors_and_the_connection_stays(bus_client, user, frame, error, has_i):
    client = await bus_client(user=user)
    await client.send_raw(frame)
    reply = await client.receive()
    assert reply["t"] == error
    assert reply["s"] == "f"
    assert (reply.get("i") == "k1") is has_i
    assert await client.request("demo.echo", {"text": "still open"}) == {"text": "still open"}


async def test_unknown_type_names_it(bus_client, user):
    client = await bus_client(user=user)
    with pytest.raises(RequestFailed) as exc:
        await client.request("no.such")
    assert exc.value.payload == {"msg": "Unknown message type 'no.such'.", "type_name": "no.such"}


async def test_binary_frame_is_bad_request(bus_client, user):
    client = await bus_client(user=user)
    await client.send_raw(b'{"t":"s.ping","i":"b1"}')
    frame = await client.receive()
    assert frame["t"] == "error.bad_request"
    assert frame["i"] == "b1"


async def test_too_large_frame(bus_client, user):
    client = await bus_client(user=user)
    # Settings are read when a connection opens.
    with override_settings(CHANNELBUS={"MAX_FRAME_BYTES": 1000}):
        small = await bus_client(user=user)
        await small.send_raw('{"t":"demo.echo","i":"big","p":{"text":"' + "x" * 2000 + '"}}')
        reply = await small.receive()
    assert reply["t"] == "error.too_large"
    assert reply["p"]["limit"] == 1000
    assert await small.request("s.ping") is None
    assert await client.request("s.ping") is None


async def test_handler_exception_is_error_server_without_internals(bus_client, user, caplog):
    client = await bus_client(user=user)
    with caplog.at_level(logging.ERROR, logger="channelbus"), pytest.raises(RequestFailed) as exc:
        await client.request("test.boom")
    assert exc.value.frame == {
        "t": "error.server",
        "i": exc.value.frame["i"],
        "s": "f",
        "p": {"msg": "The server could not handle this message."},
    }
    assert "secret" not in str(exc.value.frame)
    record = next(r for r in caplog.records if "test.boom" in r.getMessage())
    assert record.exc_info
    assert exc.value.frame["i"] in record.getMessage()
    with pytest.raises(RequestFailed) as exc:
        await client.request("test.sync_boom")
    assert exc.value.type == "error.server"
    assert await client.request("s.ping") is None


async def test_domain_error_is_sent_as_is(bus_client, user):
    client = await bus_client(user=user)
    with pytest.raises(RequestFailed) as exc:
        await client.request("test.missing")
    assert exc.value.type == "error.not_found"
    assert exc.value.payload == {"msg": "No such thing.", "thing": 7}


async def test_reply_with_another_message_type(bus_client, user):
    client = await bus_client(user=user)
    frame = await client.request_frame("test.hello")
    assert frame["t"] == "test.greeting"
    assert frame["p"] == {"text": "hello"}
    assert frame["s"] == "s"


async def test_sync_handler_uses_the_orm_in_a_thread(bus_client, user):
    client = await bus_client(user=user)
    assert await client.request("test.count_users") == {"count": 1, "username": "alice"}


async def test_permission_hooks(bus_client, user):
    client = await bus_client(user=user)
    with pytest.raises(RequestFailed) as exc:
        await client.request("test.staff_only")
    assert exc.value.type == "error.unauthorized"
    assert exc.value.payload["type_name"] == "test.staff_only"
    assert await client.request("test.async_perm") is None
    assert await client.request("test.sync_async_perm") == {"users": 1}
    with pytest.raises(RequestFailed) as exc:
        await client.request("test.sync_staff_only")
    assert exc.value.type == "error.unauthorized"
    user.is_staff = True
    staff = await bus_client(user=user)
    assert await staff.request("test.staff_only") == {"ok": True}
    assert await staff.request("test.sync_staff_only") == {"users": 1}


async def test_async_permission_refusal_with_sync_handler(bus_client, db):
    from django.contrib.auth import get_user_model

    bob = await get_user_model().objects.acreate(username="bob")
    client = await bus_client(user=bob)
    with pytest.raises(RequestFailed) as exc:
        await client.request("test.sync_async_perm")
    assert exc.value.payload == {
        "msg": "You may not send test.sync_async_perm.",
        "type_name": "test.sync_async_perm",
    }


class StrictRegistryConsumer(BusConsumer):
    registry = Registry("strict")


StrictRegistryConsumer.registry.register(Echo)
StrictRegistryConsumer.registry.register(Ping)


async def test_signed_out_user_is_closed_with_4401(bus_client):
    with pytest.raises(ConnectionRefused) as exc:
        await bus_client(StrictRegistryConsumer.as_asgi(), user=AnonymousUser())
    assert exc.value.code == 4401


async def test_anonymous_allowed_by_setting(bus_client):
    with override_settings(CHANNELBUS={"ALLOW_ANONYMOUS": True}):
        client = await bus_client(StrictRegistryConsumer.as_asgi(), user=AnonymousUser())
        assert await client.request("demo.echo", {"text": "x"}) == {"text": "x"}


async def test_message_class_allows_anonymous_on_its_own(bus_client):
    # tests.testapp registers test.public with allow_anonymous = True, so the socket is accepted...
    client = await bus_client()
    assert await client.request("test.public") == {"anonymous": True}
    assert await client.request("s.ping") is None
    # ...but other types still need a signed-in user, and unknown ones do not tell they are unknown.
    for type_name in ("demo.echo", "no.such"):
        with pytest.raises(RequestFailed) as exc:
            await client.request(type_name, {"text": "x"})
        assert exc.value.type == "error.unauthorized"
        assert exc.value.payload == {"msg": f"Sign in to send {type_name}.", "type_name": type_name}


async def test_handlers_run_in_arrival_order(bus_client, user):
    client = await bus_client(user=user)
    await client.send("test.slow", {"seconds": 0.15, "tag": "first"}, i="1")
    await client.send("test.slow", {"seconds": 0.0, "tag": "second"}, i="2")
    first, second = await client.receive(), await client.receive()
    assert [first["p"]["tag"], second["p"]["tag"]] == ["first", "second"]


async def test_ping_is_not_stuck_behind_a_slow_handler(bus_client, user):
    client = await bus_client(user=user)
    await client.send("test.slow", {"seconds": 0.5, "tag": "slow"}, i="1")
    await client.send("s.ping", i="2")
    assert (await client.receive(timeout=0.3))["t"] == "s.pong"
    assert (await client.receive(timeout=1))["p"] == {"tag": "slow"}


async def test_concurrent_messages_overtake(bus_client, user):
    client = await bus_client(user=user)
    await client.send("test.slow_concurrent", {"seconds": 0.3, "tag": "slow"}, i="1")
    await client.send("test.slow_concurrent", {"seconds": 0.0, "tag": "fast"}, i="2")
    assert (await client.receive())["p"] == {"tag": "fast"}
    assert (await client.receive())["p"] == {"tag": "slow"}


async def test_concurrency_limit(bus_client, user):
    with override_settings(CHANNELBUS={"MAX_CONCURRENT_HANDLERS": 2}):
        client = await bus_client(user=user)
    for n in range(3):
        await client.send("test.slow_concurrent", {"seconds": 0.2, "tag": str(n)}, i=str(n))
    refused = await client.receive()
    assert refused["t"] == "error.rate_limited"
    assert refused["i"] == "2"
    assert refused["p"]["retry_after"] == 1


async def test_queue_limit(bus_client, user):
    with override_settings(CHANNELBUS={"MAX_QUEUED_MESSAGES": 2}):
        client = await bus_client(user=user)
    for n in range(5):
        await client.send("test.slow", {"seconds": 0.1, "tag": str(n)}, i=str(n))
    frames = [await client.receive() for _ in range(5)]
    refused = [f["i"] for f in frames if f["t"] == "error.rate_limited"]
    assert refused
    assert all(f["s"] == "f" for f in frames if f["i"] in refused)
    assert [f["p"]["tag"] for f in frames if f["t"] == "test.slow"] == sorted(
        f["p"]["tag"] for f in frames if f["t"] == "test.slow"
    )


async def test_rate_limit_then_flood_close(bus_client, user):
    with override_settings(CHANNELBUS={"RATE_LIMIT": 1, "RATE_BURST": 3, "FLOOD_CLOSE_AFTER": 5}):
        client = await bus_client(user=user)
    for _ in range(3):
        await client.send("s.ping")
    await client.send("s.ping", i="x")
    refused = await client.receive()
    assert refused["i"] == "x"
    assert refused["t"] == "error.rate_limited"
    assert 0 < refused["p"]["retry_after"] <= 1.01
    for _ in range(4):
        await client.send("s.ping")
    frames = []
    with pytest.raises(ConnectionRefused) as exc:
        while True:
            frames.append(await client.receive())
    assert exc.value.code == 4429
    assert frames[-1] == {"t": "s.closing", "p": {"code": 4429, "reason": "Too many messages."}}


async def test_subprotocol_is_chosen_when_asked(user):
    client = BusTestClient(user=user, subprotocols=["channelbus.v1"])
    await client.connect()
    assert client.subprotocol == "channelbus.v1"
    await client.close()


async def test_signals(bus_client, user):
    seen = []

    async def record(sender, **kwargs):
        seen.append((kwargs.get("signal"), sorted(k for k in kwargs if k != "signal")))

    names = ["connection_opened", "connection_closed", "message_received", "message_sent", "error_sent"]
    for name in names:
        getattr(signals, name).connect(record)
    try:
        client = await bus_client(user=user)
        await client.request("s.ping")
        await client.send_raw("nope")
        await client.receive()
        await client.close()
    finally:
        for name in names:
            getattr(signals, name).disconnect(record)
    fired = [next(n for n in names if getattr(signals, n) is s) for s, _ in seen]
    assert fired == [
        "connection_opened",
        "message_received",
        "message_sent",
        "error_sent",
        "connection_closed",
    ]


async def test_a_failing_signal_receiver_is_logged_and_harmless(bus_client, user, caplog):
    async def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    signals.connection_opened.connect(broken)
    signals.message_received.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="channelbus"):
            client = await bus_client(user=user)
            assert await client.request("demo.echo", {"text": "ok"}) == {"text": "ok"}
    finally:
        signals.connection_opened.disconnect(broken)
        signals.message_received.disconnect(broken)
    assert sum("signal receiver" in r.getMessage() for r in caplog.records) == 2


async def test_frames_and_closes_reach_one_connection_by_its_address(bus_client, user):
    from channelbus.publishing import apublish
    from channelbus.transport import get_hub
    from tests.testapp.messages import Greet

    got = []

    async def opened(sender, connection, **kwargs):
        got.append(connection)

    signals.connection_opened.connect(opened)
    try:
        client = await bus_client(user=user)
    finally:
        signals.connection_opened.disconnect(opened)
    address = got[0].channel_name
    assert address.startswith("local|")
    await apublish(Greet(text="just you"), to=address)
    assert await client.receive() == {"t": "test.greeting", "p": {"text": "just you"}}
    await get_hub().close_connection(address, 4403, "revoked")
    with pytest.raises(ConnectionRefused) as exc:
        while True:
            await client.receive()
    assert exc.value.code == 4403


async def test_client_disconnect_cancels_running_handlers(user, monkeypatch):
    from tests.testapp.messages import Slow

    started, cancelled = asyncio.Event(), asyncio.Event()
    handle = Slow.handle

    async def observed_handle(self):
        started.set()
        try:
            return await handle(self)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    monkeypatch.setattr(Slow, "handle", observed_handle)
    client = BusTestClient(user=user)
    await client.connect()
    # Without i: a request with i runs to its end, for a repeat (tests/system/test_repeats.py).
    await client.send("test.slow", {"seconds": 5})
    await wait_for(started.is_set, what="the handler started")
    await client.close()  # returns once the application finished (fails after 3 s if it has not)
    assert cancelled.is_set(), "the application finished but the running handler was not cancelled"
    assert client.communicator.future.done()


async def test_asyncio_timeout_in_a_handler_cancels_only_the_handler(bus_client, user):
    client = await bus_client(user=user)
    assert await client.request("test.times_out") == {"timed_out": True}
    assert await client.request("s.ping") is None


async def test_a_connection_while_the_channel_layer_is_down_is_closed_with_1013(bus_client, user, caplog):
    """Redis cannot be reached (nothing listens on its port): the socket is told to try again later, and
    the server logs why, instead of an exception reaching the ASGI server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free, and closed again: nothing listens on it
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": f"redis://127.0.0.1:{port}/0", "socket_timeout": None}]},
        }
    }
    caplog.set_level(logging.WARNING, "channelbus")
    with override_settings(CHANNEL_LAYERS=layers):
        hub = get_hub()
        try:
            with pytest.raises(ConnectionRefused) as exc:
                await bus_client(user=user)
        finally:
            await hub.stop()
    assert exc.value.code == CloseCode.TRY_AGAIN_LATER
    assert "the channel layer cannot be reached" in caplog.text
