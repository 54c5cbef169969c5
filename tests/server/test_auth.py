"""Connection tokens (channelbus/server/auth.py): connection_token/user_for_token (bound to the user's
session auth hash, so a password change revokes them), and TokenAuthMiddleware, which signs a connection
in from ``Authorization: Bearer``, a ``channelbus.token.<token>`` subprotocol or ``?token=`` when the
session did not."""

import time

import orjson
import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.test import override_settings

from channelbus.messages import Registry
from channelbus.routing import bus_application
from channelbus.server import BusConsumer, auth
from channelbus.server.auth import SUBPROTOCOL_PREFIX, TokenAuthMiddleware, connection_token, user_for_token
from channelbus.testing import BusTestClient

pytestmark = pytest.mark.django_db(transaction=True)


def test_round_trip(user):
    from django.contrib.auth import get_user_model

    other = get_user_model().objects.create_user(username="bob", password="x")
    token, other_token = connection_token(user), connection_token(other)
    assert isinstance(token, str)
    assert token != other_token
    assert user_for_token(token) == user
    assert user_for_token(other_token) == other


def test_a_forged_or_mangled_token_names_nobody(user):
    token = connection_token(user)
    assert user_for_token("forged") is None
    assert user_for_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
    # Signed with the same key for another purpose (another salt): not a connection token.
    assert user_for_token(signing.dumps({"u": str(user.pk)}, compress=True)) is None


def test_an_expired_token_names_nobody(user, monkeypatch):
    two_hours_ago = time.time() - 7200
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: two_hours_ago)
        old = connection_token(user)
    assert user_for_token(old) is None  # TOKEN_MAX_AGE is 3600 by default
    with override_settings(CHANNELBUS={"TOKEN_MAX_AGE": 3 * 3600}):
        assert user_for_token(old) == user


def test_a_token_of_an_inactive_or_deleted_user_names_nobody(user):
    token = connection_token(user)
    user.is_active = False
    user.save()
    assert user_for_token(token) is None
    user.delete()
    assert user_for_token(token) is None


@pytest.mark.parametrize("data", [{}, {"u": "not a pk"}, {"u": None}, ["u", "1"]], ids=repr)
def test_a_signed_token_of_another_shape_names_nobody(data):
    token = signing.TimestampSigner(salt="channelbus.connection-token", sep="~").sign_object(
        data, compress=True
    )
    assert user_for_token(token) is None


class Inner:
    """The application behind the middleware: records the user of each scope it gets."""

    def __init__(self):
        self.users = []

    async def __call__(self, scope, receive, send):
        self.users.append(scope.get("user"))


async def call(middleware, user=None, query=b"", headers=(), subprotocols=()):
    scope = {
        "type": "websocket",
        "path": "/ws/",
        "query_string": query,
        "headers": list(headers),
        "subprotocols": list(subprotocols),
    }
    if user is not None:
        scope["user"] = user
    await middleware(scope, None, None)
    return scope


async def test_the_middleware_signs_in_from_the_query_string(user):
    inner = Inner()
    token = connection_token(user)
    scope = await call(TokenAuthMiddleware(inner), AnonymousUser(), query=f"a=1&token={token}".encode())
    assert inner.users == [user]
    assert isinstance(scope["user"], AnonymousUser)  # a new scope for the inner app, the caller's untouched


async def test_the_middleware_signs_in_from_a_bearer_header(user):
    inner = Inner()
    headers = [(b"authorization", f"Bearer {connection_token(user)}".encode())]
    await call(TokenAuthMiddleware(inner), headers=headers)
    assert inner.users == [user]


async def test_the_middleware_leaves_a_signed_in_user_alone(user):
    from django.contrib.auth import get_user_model

    other = await get_user_model().objects.acreate_user(username="bob", password="x")
    inner = Inner()
    await call(TokenAuthMiddleware(inner), user, query=f"token={connection_token(other)}".encode())
    assert inner.users == [user]


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        (b"token=forged", ()),
        (b"token=", ()),
        (b"", [(b"authorization", b"Basic dXNlcjpwYXNz")]),
        (b"", [(b"authorization", b"Bearer ")]),
        (b"", ()),
    ],
)
async def test_without_a_valid_token_the_user_stays_as_it_was(query, headers):
    inner = Inner()
    anonymous = AnonymousUser()
    await call(TokenAuthMiddleware(inner), anonymous, query=query, headers=headers)
    assert inner.users == [anonymous]


def test_a_password_change_revokes_the_token(user, caplog):
    token = connection_token(user)
    user.set_password("a new one")
    user.save()
    with caplog.at_level("INFO", logger="channelbus"):
        assert user_for_token(token) is None
    assert f"refused connection token of user {user.pk}: the password changed since" in caplog.text
    assert user_for_token(connection_token(user)) == user  # a new token works


def test_refusals_are_logged_with_their_reason(user, caplog):
    token, pk = connection_token(user), user.pk
    user.is_active = False
    user.save()
    with caplog.at_level("INFO", logger="channelbus"):
        assert user_for_token(token) is None
        assert user_for_token("forged~1~x") is None
        user.delete()
        assert user_for_token(token) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"channelbus: refused connection token of user {pk}: the user is inactive",
        'channelbus: refused connection token: Signature "x" does not match',
        "channelbus: refused connection token: it names no user",
    ]


def test_a_token_of_channelbus_0_1_is_refused(user, caplog):
    old = signing.dumps({"u": str(user.pk)}, salt="channelbus.connection-token", compress=True)
    with caplog.at_level("INFO", logger="channelbus"):
        assert user_for_token(old) is None
    assert "refused connection token: made by channelbus 0.1; make a new one" in caplog.text


def test_a_token_survives_a_key_rotation_while_the_old_key_is_a_fallback(user):
    token = connection_token(user)
    with override_settings(SECRET_KEY="the new key", SECRET_KEY_FALLBACKS=["tests-only"]):
        assert user_for_token(token) == user
        assert user_for_token(connection_token(user)) == user
    with override_settings(SECRET_KEY="the new key", SECRET_KEY_FALLBACKS=[]):
        assert user_for_token(token) is None


def test_a_token_is_a_valid_subprotocol_name(user):
    # RFC 6455 subprotocols are HTTP tokens (RFC 9110 tchar): a browser refuses anything else.
    token = connection_token(user)
    tchar = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert set(SUBPROTOCOL_PREFIX + token) <= tchar
    assert ":" not in token


async def test_the_middleware_signs_in_from_a_subprotocol(user):
    inner = Inner()
    token = await database_sync_to_async(connection_token)(user)
    await call(
        TokenAuthMiddleware(inner),
        AnonymousUser(),
        subprotocols=["channelbus.v1", SUBPROTOCOL_PREFIX + token],
    )
    assert inner.users == [user]


async def test_the_bearer_header_comes_first_then_the_subprotocol_then_the_query(user):
    from django.contrib.auth import get_user_model

    users = [user] + [
        await get_user_model().objects.acreate_user(username=n, password="x") for n in ("b", "c")
    ]
    tokens = [await database_sync_to_async(connection_token)(u) for u in users]
    header = [(b"authorization", f"Bearer {tokens[0]}".encode())]
    protocols = [SUBPROTOCOL_PREFIX + tokens[1]]
    query = f"token={tokens[2]}".encode()
    inner = Inner()
    middleware = TokenAuthMiddleware(inner)
    await call(middleware, AnonymousUser(), query, header, protocols)
    await call(middleware, AnonymousUser(), query, (), protocols)
    await call(middleware, AnonymousUser(), query)
    assert inner.users == users


async def test_an_empty_token_subprotocol_signs_in_nobody():
    inner = Inner()
    anonymous = AnonymousUser()
    await call(TokenAuthMiddleware(inner), anonymous, subprotocols=["channelbus.v1", SUBPROTOCOL_PREFIX])
    assert inner.users == [anonymous]


async def test_over_the_whole_stack_the_server_never_chooses_the_token_subprotocol(user):
    token = await database_sync_to_async(connection_token)(user)
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    client = BusTestClient(
        bus_application(), headers=headers, subprotocols=["channelbus.v1", SUBPROTOCOL_PREFIX + token]
    )
    async with client:
        assert client.subprotocol == "channelbus.v1"
        assert (await client.request("topic.list"))["topics"] == ["broadcast", f"user:{user.pk}"]
    # Offered alone (no channelbus.v1), the token still signs in, and no subprotocol is chosen.
    client = BusTestClient(bus_application(), headers=headers, subprotocols=[SUBPROTOCOL_PREFIX + token])
    async with client:
        assert client.subprotocol is None
        assert (await client.request("topic.list"))["topics"] == ["broadcast", f"user:{user.pk}"]


# ------------------------------------------------------------------ why a signed-out connection is refused


class StrictConsumer(BusConsumer):
    """Only types that want a signed-in user: a signed-out connection is refused with 4401."""

    registry = Registry("auth-strict")


async def refusal(headers=(), client=("198.51.100.7", 50000)):
    """Connect to the whole stack as a script would; returns the s.closing payload and the close event."""
    scope = {
        "type": "websocket",
        "path": "/ws/",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"origin", b"http://testserver"), *headers],
        "subprotocols": ["channelbus.v1"],
        "client": client,
    }
    communicator = ApplicationCommunicator(bus_application(consumer=StrictConsumer), scope)
    await communicator.send_input({"type": "websocket.connect"})
    assert (await communicator.receive_output(3))["type"] == "websocket.accept"
    closing = orjson.loads((await communicator.receive_output(3))["text"])
    close = await communicator.receive_output(3)
    await communicator.wait(3)
    assert closing["t"] == "s.closing"
    return closing["p"], close


def bearer(token):
    return [(b"authorization", f"Bearer {token}".encode())]


async def expired_token(user, monkeypatch):
    """A genuine token made two hours ago (TOKEN_MAX_AGE is one)."""
    two_hours_ago = time.time() - 7200
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: two_hours_ago)
        return await database_sync_to_async(connection_token)(user)


async def test_the_close_says_there_were_no_credentials():
    closing, close = await refusal()
    assert closing == {"code": 4401, "reason": "Sign in to use this connection: no credentials."}
    assert (close["code"], close["reason"]) == (4401, closing["reason"])


async def test_the_close_says_the_token_expired(user, monkeypatch):
    closing, _ = await refusal(bearer(await expired_token(user, monkeypatch)))
    assert closing["reason"] == "Sign in to use this connection: token expired."


async def test_the_close_says_the_token_is_invalid_and_nothing_finer(user):
    """Forged, revoked by a password change, of an inactive user: one answer, which tells a token's holder
    nothing about the account."""
    token = await database_sync_to_async(connection_token)(user)
    user.set_password("a new one")
    await user.asave()
    reasons = {(await refusal(bearer(t)))[0]["reason"] for t in ("forged~1~x", token, "old:style")}
    user.is_active = False
    await user.asave()
    fresh = await database_sync_to_async(connection_token)(user)
    reasons.add((await refusal(bearer(fresh)))[0]["reason"])
    assert reasons == {"Sign in to use this connection: token invalid."}


async def test_an_expired_token_is_invalid_when_its_signature_is_not_genuine(user, monkeypatch):
    token = await expired_token(user, monkeypatch)
    closing, _ = await refusal(bearer(token[:-2] + ("AA" if not token.endswith("AA") else "BB")))
    assert closing["reason"] == "Sign in to use this connection: token invalid."


async def test_refusals_are_logged_at_warning_with_the_address_and_then_counted(user, caplog):
    with override_settings(CHANNELBUS={"CLIENT_ERROR_LOG_LINES": 2, "CLIENT_ERROR_LOG_INTERVAL": 3600}):
        auth._refusals = auth._RefusalLog()  # this test's limits, from its first line
        with caplog.at_level("WARNING", logger="channelbus"):
            await refusal(client=("203.0.113.5", 1))
            await refusal(bearer("forged~1~x"), client=("203.0.113.6", 1))
            for _ in range(3):
                await refusal(client=("203.0.113.7", 1))
            warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
            assert warnings == [
                "channelbus: refused a connection from 203.0.113.5 with 4401: no credentials",
                "channelbus: refused a connection from 203.0.113.6 with 4401: token invalid",
            ]
            auth._refusals.summary()  # what the timer does at the interval's end
    last = caplog.records[-1]
    assert last.levelname == "WARNING"
    assert last.getMessage().startswith(
        "channelbus: 3 more client errors on connections refused with 4401 in"
    )
    assert last.getMessage().endswith("last: refused a connection from 203.0.113.7 with 4401: no credentials")
    auth._refusals = auth._RefusalLog()
