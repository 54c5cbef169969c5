"""BusOriginValidator (channelbus/server/origin.py): the Origin of a handshake against ALLOWED_HOSTS. An
allowed origin reaches the application; a foreign one is accepted, told why (s.closing, 4403) and closed
with 4403, so a client can tell it from a network failure."""

import orjson
import pytest
from django.test import override_settings

from channelbus.protocol import CloseCode
from channelbus.server.origin import BusOriginValidator


class Inner:
    """The application behind the validator: records the scopes it gets."""

    def __init__(self):
        self.scopes = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)
        await send({"type": "websocket.accept"})


async def handshake(validator, origin, first_event="websocket.connect"):
    """Run one handshake with ``origin`` (None: no Origin header); returns the events the server sent."""
    headers = [(b"host", b"testserver")]
    if origin is not None:
        headers.append((b"origin", origin.encode("latin1")))
    scope = {"type": "websocket", "path": "/ws/", "headers": headers, "query_string": b""}
    sent = []

    async def receive():
        return {"type": first_event}

    async def send(event):
        sent.append(event)

    await validator(scope, receive, send)
    return sent


def refused():
    """What a refused handshake gets: accept, s.closing saying why, close, all with 4403."""
    reason = "Origin not allowed."
    return [
        {"type": "websocket.accept"},
        {
            "type": "websocket.send",
            "text": orjson.dumps({"t": "s.closing", "p": {"code": 4403, "reason": reason}}).decode(),
        },
        {"type": "websocket.close", "code": 4403, "reason": reason},
    ]


@pytest.mark.parametrize("origin", ["http://testserver", "https://localhost:8000", "http://127.0.0.1:9000"])
async def test_an_allowed_origin_passes_through(origin):
    inner = Inner()
    assert await handshake(BusOriginValidator(inner), origin) == [{"type": "websocket.accept"}]
    [scope] = inner.scopes
    assert scope["path"] == "/ws/"


#: A foreign host, a look-alike, an origin that does not parse, and none at all.
FOREIGN = ["http://evil.example", "https://testserver.evil.example", "http://[::1", None]


@pytest.mark.parametrize("origin", FOREIGN)
async def test_a_foreign_or_missing_origin_is_accepted_told_and_closed_with_4403(origin):
    inner = Inner()
    sent = await handshake(BusOriginValidator(inner), origin)
    assert sent == refused()
    assert CloseCode.FORBIDDEN == 4403
    assert inner.scopes == []


async def test_a_refused_socket_that_went_away_before_connecting_gets_nothing():
    inner = Inner()
    assert await handshake(BusOriginValidator(inner), "http://evil.example", "websocket.disconnect") == []
    assert inner.scopes == []


async def test_explicit_allowed_origins_win_over_allowed_hosts():
    inner = Inner()
    validator = BusOriginValidator(inner, allowed_origins=["app.example"])
    assert await handshake(validator, "https://app.example") == [{"type": "websocket.accept"}]
    assert await handshake(validator, "http://testserver") == refused()


@override_settings(ALLOWED_HOSTS=[], DEBUG=True)
async def test_with_debug_and_no_allowed_hosts_localhost_is_allowed():
    inner = Inner()
    validator = BusOriginValidator(inner)
    for origin in ("http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000"):
        assert await handshake(validator, origin) == [{"type": "websocket.accept"}], origin
    assert await handshake(validator, "http://evil.example") == refused()


@override_settings(ALLOWED_HOSTS=[], DEBUG=False)
async def test_without_debug_no_allowed_hosts_allows_nothing():
    inner = Inner()
    assert await handshake(BusOriginValidator(inner), "http://localhost:8000") == refused()
    assert inner.scopes == []
