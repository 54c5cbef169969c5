"""Connections per user and per client address (issue 11): in-process through the consumer, and against a
real runbus, where uvicorn's proxy headers give the client address."""

import asyncio
import logging

import orjson
import pytest
from django.contrib.auth import get_user_model

from channelbus.client import BusClient, fetch_cookies
from channelbus.protocol import CloseCode
from channelbus.server import BusConsumer
from channelbus.server.limits import PER_ADDRESS, PER_USER, client_address
from channelbus.testing import BusTestClient, ConnectionRefused
from channelbus.transport import get_hub
from tests.servers import ROOT, demo_server

pytestmark = pytest.mark.django_db(transaction=True)

LIMITS = {"MAX_CONNECTIONS_PER_USER": 2, "MAX_CONNECTIONS_PER_ADDRESS": 3}


@pytest.fixture
def limits(settings):
    settings.CHANNELBUS = {**LIMITS, "ALLOW_ANONYMOUS": True}


def from_address(ip, user):
    """The consumer with ``scope["client"]`` and ``scope["user"]`` set, as uvicorn and the auth middleware
    would."""
    consumer = BusConsumer.as_asgi()

    async def app(scope, receive, send):
        await consumer({**scope, "client": (ip, 50000), "user": user}, receive, send)

    return app


async def open_socket(user=None, ip=None):
    """A connected test client; raises ConnectionRefused."""
    if ip is None:
        return await BusTestClient(user=user).connect()
    return await BusTestClient(from_address(ip, user)).connect()


async def refusal(user=None, ip=None):
    """Open one socket that must be refused: its ``s.closing`` payload and close code."""
    client = BusTestClient(from_address(ip, user) if ip else None, user=None if ip else user)
    await client.communicator.send_input({"type": "websocket.connect"})
    assert (await client.communicator.receive_output(3))["type"] == "websocket.accept"
    closing = await client.communicator.receive_output(3)
    close = await client.communicator.receive_output(3)
    assert close["type"] == "websocket.close"
    return orjson.loads(closing["text"]), close["code"]


@pytest.fixture
def users(db):
    model = get_user_model()
    return [model.objects.create_user(username=f"limits-{n}") for n in range(3)]


async def test_a_user_over_the_limit_is_closed_with_4429_and_a_reason(limits, users):
    alice, bob = users[0], users[1]
    first, second = await open_socket(alice), await open_socket(alice)
    closing, code = await refusal(alice)
    assert closing == {"t": "s.closing", "p": {"code": 4429, "reason": PER_USER}}
    assert code == CloseCode.TOO_MANY
    assert await (await open_socket(bob)).request("demo.echo", {"text": "bob"}) == {"text": "bob"}
    assert await first.request("demo.echo", {"text": "still open"}) == {"text": "still open"}
    await second.close()
    third = await open_socket(alice)  # a slot came free
    assert await third.request("demo.echo", {"text": "x"}) == {"text": "x"}
    for client in (first, third):
        await client.close()


async def test_the_counts_go_back_to_nothing(limits, users):
    clients = [await open_socket(users[0], ip="10.0.0.1") for _ in range(2)]
    hub = get_hub()
    assert hub.counts == {f"user:{users[0].pk}": 2, "address:10.0.0.1": 2}
    with pytest.raises(ConnectionRefused):
        await open_socket(users[0], ip="10.0.0.1")
    assert hub.counts == {f"user:{users[0].pk}": 2, "address:10.0.0.1": 2}  # the refused one never counted
    for client in clients:
        await client.close()
    assert hub.counts == {}


async def test_an_address_over_the_limit_is_closed_whoever_signs_in(limits, users):
    anonymous = [await open_socket(ip="192.0.2.7") for _ in range(2)]
    signed_in = await open_socket(users[0], ip="192.0.2.7")
    closing, code = await refusal(users[1], ip="192.0.2.7")
    assert closing["p"] == {"code": 4429, "reason": PER_ADDRESS}
    assert code == CloseCode.TOO_MANY
    with pytest.raises(ConnectionRefused) as exc:
        await open_socket(ip="192.0.2.7")
    assert exc.value.code == CloseCode.TOO_MANY
    other = await open_socket(users[1], ip="192.0.2.8")
    for client in (*anonymous, signed_in, other):
        await client.close()


async def test_sockets_opened_at_once_do_not_slip_past_the_limit(limits, users):
    async def attempt():
        try:
            return await open_socket(users[0])
        except ConnectionRefused as exc:
            return exc.code

    results = await asyncio.gather(*(attempt() for _ in range(6)))
    opened = [r for r in results if isinstance(r, BusTestClient)]
    assert len(opened) == 2
    assert sorted(r for r in results if not isinstance(r, BusTestClient)) == [4429] * 4
    for client in opened:
        await client.close()


async def test_none_means_no_limit(settings, users):
    settings.CHANNELBUS = {"MAX_CONNECTIONS_PER_USER": None, "MAX_CONNECTIONS_PER_ADDRESS": None}
    clients = [await open_socket(users[0], ip="10.1.1.1") for _ in range(5)]
    assert get_hub().counts[f"user:{users[0].pk}"] == 5
    for client in clients:
        await client.close()


async def test_refusals_are_logged_at_most_a_few_lines_per_interval(settings, users, caplog):
    settings.CHANNELBUS = {**LIMITS, "CLIENT_ERROR_LOG_LINES": 2, "CLIENT_ERROR_LOG_INTERVAL": 60}
    first, second = await open_socket(users[0]), await open_socket(users[0])
    with caplog.at_level(logging.WARNING, logger="channelbus"):
        for _ in range(5):
            with pytest.raises(ConnectionRefused):
                await open_socket(users[0])
    lines = [r.getMessage() for r in caplog.records if "refused a connection" in r.getMessage()]
    line = f"channelbus: refused a connection with 4429: user:{users[0].pk} has 2 open (the limit)"
    assert lines == [line, line]  # CLIENT_ERROR_LOG_LINES; the other three wait for the summary
    for client in (first, second):
        await client.close()


def test_the_client_address_comes_from_the_scope():
    assert client_address({"client": ("203.0.113.9", 443)}) == "203.0.113.9"
    assert client_address({"client": None}) is None
    assert client_address({}) is None


# --------------------------------------------------------------------------- a real runbus

#: The demo with limits of 2 per user and 3 per address, signed-out sockets allowed.
LIMITED = {"DJANGO_SETTINGS_MODULE": "tests.server.settings_limits", "PYTHONPATH": str(ROOT)}


async def _sockets(address, count, *, cookies=None, forwarded=None):
    """``count`` BusClients to ``address``, signed in with ``cookies`` (signed out without), sent through a
    proxy that says the client is ``forwarded``."""
    headers = {"X-Forwarded-For": forwarded} if forwarded else None
    url = f"ws://{address}/ws/"
    return [await BusClient(url, cookies=cookies, headers=headers).connect() for _ in range(count)]


async def _refused(client):
    closing = await client.receive("s.closing", timeout=10)
    return closing["p"], await client.wait_closed()


async def _accepted(client):
    return await client.request("demo.echo", {"text": "ok"}, timeout=10) == {"text": "ok"}


async def test_runbus_counts_per_user_and_per_forwarded_address(tmp_path):
    """runbus runs uvicorn with --proxy-headers for 127.0.0.1 (uvicorn's defaults): the address counted is
    the X-Forwarded-For one from a local proxy."""
    with demo_server(tmp_path, LIMITED) as address:
        jar = await asyncio.to_thread(fetch_cookies, f"http://{address}/")
        mine = await _sockets(address, 3, cookies=jar, forwarded="198.51.100.1")
        assert [await _accepted(c) for c in mine[:2]] == [True, True]
        assert await _refused(mine[2]) == ({"code": 4429, "reason": PER_USER}, 4429)
        same = await _sockets(address, 2, forwarded="198.51.100.1")  # signed out, from my address
        assert await _accepted(same[0])
        assert await _refused(same[1]) == ({"code": 4429, "reason": PER_ADDRESS}, 4429)
        crowd = await _sockets(address, 3, forwarded="198.51.100.2")
        assert [await _accepted(c) for c in crowd] == [True] * 3
        for client in (*mine, *same, *crowd):
            await client.close()


async def test_runbus_ignores_forwarded_addresses_from_an_untrusted_proxy(tmp_path):
    with demo_server(tmp_path, {**LIMITED, "FORWARDED_ALLOW_IPS": "10.255.255.1"}) as address:
        clients = await _sockets(address, 2, forwarded="198.51.100.3")
        clients += await _sockets(address, 2, forwarded="198.51.100.4")
        assert [await _accepted(c) for c in clients[:3]] == [True] * 3
        # All four come from 127.0.0.1 as far as the server knows: the fourth is over 3 per address.
        assert await _refused(clients[3]) == ({"code": 4429, "reason": PER_ADDRESS}, 4429)
        for client in clients:
            await client.close()
