"""BusOriginValidator (channelbus/server/origin.py): the Origin of a handshake against the allowed origins.

By default (ALLOWED_ORIGINS None) only the request's own origin passes: the http/https of the socket's
ws/wss scheme with the host and port of its Host header, whose host must pass ALLOWED_HOSTS. A list of
origins, or "*", replaces that. An allowed origin reaches the application; any other is accepted, told why
(s.closing, 4403) and closed with 4403, so a client can tell it from a network failure, and logged.
"""

import asyncio
import logging

import orjson
import pytest
from django.test import override_settings

from channelbus.client import BusClient, fetch_cookies
from channelbus.protocol import CloseCode
from channelbus.server.origin import BusOriginValidator, own_origin, parse_origin
from tests.servers import demo_server


class Inner:
    """The application behind the validator: records the scopes it gets."""

    def __init__(self):
        self.scopes = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)
        await send({"type": "websocket.accept"})


def scope_of(origin, host="testserver", scheme="ws", extra=()):
    """A handshake's scope: ``origin`` and ``host`` headers (None: left out), then ``extra`` headers."""
    headers = [] if host is None else [(b"host", host.encode("latin1"))]
    if origin is not None:
        headers.append((b"origin", origin.encode("latin1")))
    headers.extend(extra)
    return {"type": "websocket", "scheme": scheme, "path": "/ws/", "headers": headers, "query_string": b""}


async def handshake(validator, origin, first_event="websocket.connect", **scope):
    """Run one handshake with ``origin`` (None: no Origin header); returns the events the server sent."""
    sent = []

    async def receive():
        return {"type": first_event}

    async def send(event):
        sent.append(event)

    await validator(scope_of(origin, **scope), receive, send)
    return sent


ACCEPTED = [{"type": "websocket.accept"}]


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


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("http://testserver", ("http", "testserver", 80)),
        ("https://App.Example.com", ("https", "app.example.com", 443)),
        ("HTTPS://app.example.com:8443", ("https", "app.example.com", 8443)),
        ("http://localhost:80", ("http", "localhost", 80)),
        ("http://[::1]:8000", ("http", "[::1]", 8000)),
        ("http://example.com.", ("http", "example.com", 80)),
    ],
)
def test_an_origin_parses_into_scheme_host_and_port(value, parsed):
    assert parse_origin(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "null",
        "testserver",
        "ws://testserver",
        "file://",
        "http://",
        "http://testserver/",
        "http://testserver/path",
        "http://testserver?x=1",
        "http://user@testserver",
        "http://testserver:99999",
        "http://testserver:0",
        "http://testserver:8x",
        "http://[::1",
        "http://a b",
        "*",
    ],
)
def test_what_is_no_origin_does_not_parse(value):
    assert parse_origin(value) is None


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://testserver", "testserver", "ws"),
        ("https://testserver", "testserver", "wss"),
        ("http://testserver:80", "testserver", "ws"),
        ("https://testserver", "testserver:443", "wss"),
        ("http://localhost:8000", "localhost:8000", "ws"),
        ("HTTP://LocalHost:8000", "localhost:8000", "ws"),
        ("http://127.0.0.1:9000", "127.0.0.1:9000", "ws"),
    ],
)
async def test_by_default_the_requests_own_origin_passes_through(origin, host, scheme):
    inner = Inner()
    assert await handshake(BusOriginValidator(inner), origin, host=host, scheme=scheme) == ACCEPTED
    [scope] = inner.scopes
    assert scope["path"] == "/ws/"


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://localhost:9999", "localhost:8000", "ws"),  # the probe: same host, another port
        ("http://localhost", "localhost:8000", "ws"),
        ("https://localhost:8000", "localhost:8000", "ws"),  # another scheme
        ("http://testserver", "testserver", "wss"),
        ("http://127.0.0.1:8000", "localhost:8000", "ws"),  # another host, allowed in ALLOWED_HOSTS too
        ("http://evil.example", "testserver", "ws"),
        ("https://testserver.evil.example", "testserver", "ws"),
        ("http://[::1", "testserver", "ws"),
        ("null", "testserver", "ws"),
        (None, "testserver", "ws"),  # no Origin: refused unless "*" (below)
        ("http://testserver", None, "ws"),  # no Host and no ASGI server: the own origin is unknown
        ("http://testserver", "test server", "ws"),
        ("http://testserver", "testserver", "http2"),
    ],
)
async def test_by_default_any_other_origin_is_accepted_told_and_closed_with_4403(origin, host, scheme):
    inner = Inner()
    assert await handshake(BusOriginValidator(inner), origin, host=host, scheme=scheme) == refused()
    assert CloseCode.FORBIDDEN == 4403
    assert inner.scopes == []


async def test_two_origin_or_two_host_headers_are_refused():
    inner = Inner()
    validator = BusOriginValidator(inner)
    second_origin = [(b"origin", b"http://evil.example")]
    assert await handshake(validator, "http://testserver", extra=second_origin) == refused()
    second_host = [(b"host", b"evil.example")]
    assert await handshake(validator, "http://evil.example", extra=second_host) == refused()
    assert inner.scopes == []


async def test_without_a_host_header_the_asgi_server_names_the_request():
    inner = Inner()
    validator = BusOriginValidator(inner)
    sent = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(event):
        sent.append(event)

    for server, origin in ((["testserver", 8000], "http://testserver:8000"), (["::1", 80], "http://[::1]")):
        scope = {**scope_of(origin, host=None), "server": server}
        with override_settings(ALLOWED_HOSTS=["testserver", "[::1]"]):
            await validator(scope, receive, send)
    assert sent == ACCEPTED * 2
    assert own_origin({**scope_of(None, host=None), "scheme": "wss", "server": ["::1", 443]}) == (
        "https",
        "[::1]",
        443,
    )


@override_settings(ALLOWED_HOSTS=["app.example.com"])
async def test_the_own_origin_of_a_host_outside_allowed_hosts_is_refused():
    # A DNS rebinding page: its Host and Origin agree, but it is not a host of this site.
    inner = Inner()
    assert await handshake(BusOriginValidator(inner), "http://evil.example", host="evil.example") == refused()
    assert (
        await handshake(BusOriginValidator(inner), "http://app.example.com", host="app.example.com")
        == ACCEPTED
    )


@override_settings(ALLOWED_HOSTS=["*"])
async def test_allowed_hosts_star_no_longer_turns_the_check_off():
    inner = Inner()
    validator = BusOriginValidator(inner)
    assert await handshake(validator, "http://evil.example", host="app.example.com") == refused()
    assert await handshake(validator, "http://app.example.com", host="app.example.com") == ACCEPTED
    # As before ALLOWED_ORIGINS, a handshake without Origin (a script, never a browser) passes then.
    assert await handshake(validator, None, host="app.example.com") == ACCEPTED


@override_settings(CHANNELBUS={"ALLOWED_ORIGINS": ["https://app.example.com", "http://localhost:8000"]})
async def test_a_list_of_allowed_origins_replaces_the_own_origin():
    inner = Inner()
    validator = BusOriginValidator(inner)
    # The page's origin counts, whatever host the socket was opened on (a separate socket host).
    assert (
        await handshake(validator, "https://app.example.com", host="ws.example.com", scheme="wss") == ACCEPTED
    )
    assert await handshake(validator, "https://APP.example.com:443", host="ws.example.com") == ACCEPTED
    assert await handshake(validator, "http://localhost:8000", host="localhost:8000") == ACCEPTED
    assert len(inner.scopes) == 3
    for origin in ("http://app.example.com", "https://app.example.com:8443", "http://testserver", None):
        assert await handshake(validator, origin) == refused(), origin
    assert len(inner.scopes) == 3


@pytest.mark.parametrize("value", ["*", ["*"], ["https://app.example.com", "*"]])
async def test_star_allows_every_origin_and_none(value):
    inner = Inner()
    with override_settings(CHANNELBUS={"ALLOWED_ORIGINS": value}):
        validator = BusOriginValidator(inner)
        for origin in ("http://evil.example", "null", None):
            assert await handshake(validator, origin, host=None) == ACCEPTED, origin


async def test_the_allowed_origins_argument_wins_over_the_setting():
    inner = Inner()
    validator = BusOriginValidator(inner, allowed_origins=["https://app.example"])
    assert await handshake(validator, "https://app.example") == ACCEPTED
    assert await handshake(validator, "http://testserver") == refused()
    assert await handshake(BusOriginValidator(inner, allowed_origins="*"), "http://evil.example") == ACCEPTED


@override_settings(CHANNELBUS={"ALLOWED_ORIGINS": ["app.example.com", "https://ok.example/", 42]})
async def test_entries_that_are_no_origins_match_nothing():
    # manage.py check reports them (channelbus.E003, tests/test_checks.py); here they never match.
    inner = Inner()
    validator = BusOriginValidator(inner)
    for origin in ("http://app.example.com", "https://app.example.com", "https://ok.example"):
        assert await handshake(validator, origin, host="app.example.com") == refused()


async def test_a_refused_socket_that_went_away_before_connecting_gets_nothing():
    inner = Inner()
    assert await handshake(BusOriginValidator(inner), "http://evil.example", "websocket.disconnect") == []
    assert inner.scopes == []


async def test_a_refusal_is_logged_with_origin_and_host(caplog):
    with caplog.at_level(logging.INFO, logger="channelbus"):
        await handshake(BusOriginValidator(Inner()), "http://localhost:9999", host="localhost:8000")
        await handshake(BusOriginValidator(Inner()), None)
    assert caplog.messages == [
        "channelbus: origin 'http://localhost:9999' not allowed for host 'localhost:8000'; closing with 4403",
        "channelbus: origin None not allowed for host 'testserver'; closing with 4403",
    ]


@override_settings(ALLOWED_HOSTS=[], DEBUG=True)
async def test_with_debug_and_no_allowed_hosts_localhost_is_allowed():
    inner = Inner()
    validator = BusOriginValidator(inner)
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost:8000"):
        assert await handshake(validator, f"http://{host}", host=host) == ACCEPTED, host
    assert await handshake(validator, "http://evil.example", host="evil.example") == refused()


@override_settings(ALLOWED_HOSTS=[], DEBUG=False)
async def test_without_debug_no_allowed_hosts_allows_nothing():
    inner = Inner()
    assert (
        await handshake(BusOriginValidator(inner), "http://localhost:8000", host="localhost:8000")
        == refused()
    )
    assert inner.scopes == []


# End to end: the demo's ASGI application under runbus (uvicorn), a signed-in guest's session cookie.


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("origin")) as address:
        yield address


PROFILE = {"name": "Ada", "email": "ada@example.com", "age": 36}


async def test_end_to_end_only_the_pages_own_origin_may_post_the_demos_form(demo):
    port = demo.rsplit(":", 1)[1]
    cookies = await asyncio.to_thread(fetch_cookies, f"http://{demo}/")
    assert "sessionid" in cookies
    # The demo's form (demo.profile, {% channelbus_bind %}) carries no CSRF token: the origin check guards it.
    async with BusClient(f"ws://{demo}/ws/", cookies=cookies) as bus:
        assert bus.origin == f"http://{demo}"
        reply = await bus.request("demo.profile", PROFILE)
        assert reply == {"msg": "Thanks, Ada: we would write to ada@example.com."}
    for origin in (
        "http://127.0.0.1:9999",  # another port on the same host (the probe)
        f"https://127.0.0.1:{port}",  # another scheme
        f"http://localhost:{port}",  # another host, though one of ALLOWED_HOSTS
        "http://evil.example",
    ):
        bus = BusClient(f"ws://{demo}/ws/", cookies=cookies, origin=origin)
        await bus.connect()
        closing = await bus.receive("s.closing")
        assert closing["p"] == {"code": 4403, "reason": "Origin not allowed."}, origin
        assert await bus.wait_closed() == 4403
        with pytest.raises(ConnectionError):
            await bus.request("demo.profile", PROFILE, timeout=5)
