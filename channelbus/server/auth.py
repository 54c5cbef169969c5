"""Token authentication for WebSocket clients that have no session cookie (scripts, services).

``connection_token(user)`` signs the user's pk, and a digest of the user's
session auth hash, with Django's ``SECRET_KEY``; a client sends it as
``Authorization: Bearer <token>``, as a WebSocket subprotocol
``channelbus.token.<token>`` offered beside ``channelbus.v1`` (what a browser
can set), or as ``?token=`` in the URL (which reaches access logs).
:class:`TokenAuthMiddleware` signs the connection in as that user when the
session did not. A token older than the ``TOKEN_MAX_AGE`` setting, forged,
naming a deleted or inactive user, or made before the user's password changed
leaves the connection signed out (and then refused with 4401 unless anonymous
use is allowed).
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
from ..topics.tokens import session_tag, session_tag_matches

__all__ = ["SUBPROTOCOL_PREFIX", "TokenAuthMiddleware", "connection_token", "user_for_token"]

logger = logging.getLogger("channelbus")
_SALT = "channelbus.connection-token"
#: Between the token's parts, instead of signing's ":": a token is also a WebSocket subprotocol,
#: which allows only HTTP token characters (letters, digits, "-", "_", ".", "~" fit).
_SEP = "~"
#: A subprotocol ``channelbus.token.<token>`` carries a connection token (never chosen by the server).
SUBPROTOCOL_PREFIX = "channelbus.token."


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=_SALT, sep=_SEP)  # checks SECRET_KEY_FALLBACKS too


def connection_token(user: Any) -> str:
    """A signed, expiring token that authenticates a WebSocket connection as ``user``.

    It stops working when the user's password changes (or the user is deactivated or deleted).
    """
    data = {"u": str(user.pk)}
    tag = session_tag(user)
    if tag is not None:
        data["h"] = tag
    return _signer().sign_object(data, compress=True)


def user_for_token(token: str) -> Any:
    """The active user a token names, or None if it is invalid, expired, made before the user's
    password changed, or the user is inactive or gone. Sync (ORM). Each refusal is logged at INFO."""
    if _SEP not in token and ":" in token:
        logger.info("channelbus: refused connection token: made by channelbus 0.1; make a new one")
        return None
    try:
        data = _signer().unsign_object(token, max_age=settings.TOKEN_MAX_AGE)
    except signing.BadSignature as exc:  # SignatureExpired is a subclass
        logger.info("channelbus: refused connection token: %s", exc)
        return None
    model = get_user_model()
    try:
        user = model._default_manager.get(pk=data["u"])
    except (model.DoesNotExist, KeyError, ValueError, TypeError):
        logger.info("channelbus: refused connection token: it names no user")
        return None
    if not getattr(user, "is_active", True):
        logger.info("channelbus: refused connection token of user %s: the user is inactive", user.pk)
        return None
    if not session_tag_matches(user, data.get("h")):
        logger.info("channelbus: refused connection token of user %s: the password changed since", user.pk)
        return None
    return user


def _token_from_scope(scope: dict[str, Any]) -> str | None:
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin1").partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    for protocol in scope.get("subprotocols") or ():
        if isinstance(protocol, str) and protocol.startswith(SUBPROTOCOL_PREFIX):
            return protocol[len(SUBPROTOCOL_PREFIX) :] or None
    query: bytes = scope.get("query_string", b"")
    if query and b"token=" in query:
        values = parse_qs(query.decode("latin1")).get("token")
        if values:
            return values[0]
    return None


class TokenAuthMiddleware:
    """ASGI middleware: sets ``scope["user"]`` from a connection token when no session user is signed in.

    The token is read from ``Authorization: Bearer``, else from a subprotocol
    ``channelbus.token.<token>``, else from ``?token=``. Place it inside Channels'
    ``AuthMiddlewareStack`` (``bus_application`` does).
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
