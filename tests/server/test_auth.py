"""Connection tokens (channelbus/server/auth.py): connection_token/user_for_token, and TokenAuthMiddleware,
which signs a connection in from ``?token=`` or ``Authorization: Bearer`` when the session did not."""

import time

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.test import override_settings

from channelbus.server.auth import TokenAuthMiddleware, connection_token, user_for_token

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
    token = signing.dumps(data, salt="channelbus.connection-token", compress=True)
    assert user_for_token(token) is None


class Inner:
    """The application behind the middleware: records the user of each scope it gets."""

    def __init__(self):
        self.users = []

    async def __call__(self, scope, receive, send):
        self.users.append(scope.get("user"))


async def call(middleware, user=None, query=b"", headers=()):
    scope = {"type": "websocket", "path": "/ws/", "query_string": query, "headers": list(headers)}
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
