"""Token authentication for WebSocket clients that have no session cookie (scripts, services).

``connection_token(user)`` signs the user's pk with Django's ``SECRET_KEY``;
a client sends it as ``Authorization: Bearer <token>`` (or ``?token=`` in
the URL, for browsers that cannot set headers). :class:`TokenAuthMiddleware`
signs the connection in as that user when the session did not. A token older
than the ``TOKEN_MAX_AGE`` setting, forged, or naming a deleted or inactive
user leaves the connection signed out (and then refused with 4401 unless
anonymous use is allowed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core import signing

from ..conf import settings

__all__ = ["TokenAuthMiddleware", "connection_token", "user_for_token"]

logger = logging.getLogger("channelbus")
_SALT = "channelbus.connection-token"


def connection_token(user: Any) -> str:
    """A signed, expiring token that authenticates a WebSocket connection as ``user``."""
    return signing.dumps({"u": str(user.pk)}, salt=_SALT, compress=True)


def user_for_token(token: str) -> Any:
    """The active user a token names, or None if it is invalid, expired or the user is gone. Sync (ORM)."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=settings.TOKEN_MAX_AGE)
    except signing.BadSignature as exc:  # SignatureExpired is a subclass
        logger.info("channelbus: refused connection token: %s", exc)
        return None
    model = get_user_model()
    try:
        user = model._default_manager.get(pk=data["u"])
    except (model.DoesNotExist, KeyError, ValueError, TypeError):
        return None
    return user if getattr(user, "is_active", True) else None


def _token_from_scope(scope: dict[str, Any]) -> str | None:
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin1").partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    query: bytes = scope.get("query_string", b"")
    if query and b"token=" in query:
        values = parse_qs(query.decode("latin1")).get("token")
        if values:
            return values[0]
    return None


class TokenAuthMiddleware:
    """ASGI middleware: sets ``scope["user"]`` from a connection token when no session user is signed in.

    Place it inside Channels' ``AuthMiddlewareStack`` (``bus_application`` does).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        user = scope.get("user")
        if not (user is not None and user.is_authenticated):
            token = _token_from_scope(scope)
            if token:
                found = await database_sync_to_async(user_for_token)(token)
                if found is not None:
                    scope = dict(scope, user=found)
        return await self.inner(scope, receive, send)
