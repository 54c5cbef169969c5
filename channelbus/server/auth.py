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

A connection refused with 4401 at connect says why in its close reason and its
``s.closing`` (:func:`signed_out_refusal`): ``no credentials``, ``token
expired`` or ``token invalid``, nothing finer (not whether the user exists, is
inactive or changed password), and the refusal is logged at WARNING, at most
``CLIENT_ERROR_LOG_LINES`` lines per ``CLIENT_ERROR_LOG_INTERVAL`` in a process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core import signing

from ..conf import settings
from ..topics.tokens import session_tag, session_tag_matches
from .errorlog import ErrorLogLimiter, printable

__all__ = [
    "NO_CREDENTIALS",
    "REFUSED_TOKEN",
    "SUBPROTOCOL_PREFIX",
    "TOKEN_EXPIRED",
    "TOKEN_INVALID",
    "TokenAuthMiddleware",
    "check_token",
    "connection_token",
    "signed_out_refusal",
    "user_for_token",
]

logger = logging.getLogger("channelbus")
_SALT = "channelbus.connection-token"
#: Between the token's parts, instead of signing's ":": a token is also a WebSocket subprotocol,
#: which allows only HTTP token characters (letters, digits, "-", "_", ".", "~" fit).
_SEP = "~"
#: A subprotocol ``channelbus.token.<token>`` carries a connection token (never chosen by the server).
SUBPROTOCOL_PREFIX = "channelbus.token."

# Why a signed-out connection was refused, as its 4401 close says. Only which credential failed: a finer
# reason (no such user, inactive, password changed) would tell whoever holds a token about the account.
#: No session user and no token.
NO_CREDENTIALS = "no credentials"
#: A genuine token older than ``TOKEN_MAX_AGE`` (the signature is checked first: a forged one is invalid).
TOKEN_EXPIRED = "token expired"
#: Any other token that signs nobody in.
TOKEN_INVALID = "token invalid"
#: The scope key where :class:`TokenAuthMiddleware` leaves why the token it was given signed nobody in.
REFUSED_TOKEN = "channelbus.refused_token"


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
    return check_token(token)[0]


def check_token(token: str) -> tuple[Any, str | None]:
    """``(user, None)`` for a token that signs ``user`` in, else ``(None, TOKEN_EXPIRED or TOKEN_INVALID)``.
    Sync (ORM). Each refusal is logged at INFO with its full reason (never the token)."""
    if _SEP not in token and ":" in token:
        logger.info("channelbus: refused connection token: made by channelbus 0.1; make a new one")
        return None, TOKEN_INVALID
    try:
        data = _signer().unsign_object(token, max_age=settings.TOKEN_MAX_AGE)
    except signing.SignatureExpired as exc:  # raised only once the signature is found genuine
        logger.info("channelbus: refused connection token: %s", exc)
        return None, TOKEN_EXPIRED
    except signing.BadSignature as exc:
        logger.info("channelbus: refused connection token: %s", exc)
        return None, TOKEN_INVALID
    model = get_user_model()
    try:
        user = model._default_manager.get(pk=data["u"])
    except (model.DoesNotExist, KeyError, ValueError, TypeError):
        logger.info("channelbus: refused connection token: it names no user")
        return None, TOKEN_INVALID
    if not getattr(user, "is_active", True):
        logger.info("channelbus: refused connection token of user %s: the user is inactive", user.pk)
        return None, TOKEN_INVALID
    if not session_tag_matches(user, data.get("h")):
        logger.info("channelbus: refused connection token of user %s: the password changed since", user.pk)
        return None, TOKEN_INVALID
    return user, None


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
                found, refused = await database_sync_to_async(check_token)(token)
                # A new scope: the caller's stays as it was. A refusal is kept for the 4401 close reason.
                scope = dict(scope, user=found) if found is not None else {**scope, REFUSED_TOKEN: refused}
        return await self.inner(scope, receive, send)


class _RefusalLog:
    """This process's WARNING lines for connections refused with 4401: the first
    ``CLIENT_ERROR_LOG_LINES`` of each ``CLIENT_ERROR_LOG_INTERVAL``, then one line that counts the rest
    (a client that reconnects in a loop with a stale token must not fill the log)."""

    def __init__(self) -> None:
        self.limiter: ErrorLogLimiter | None = None
        self.timer: asyncio.TimerHandle | None = None

    def write(self, line: str) -> None:
        """Log ``line``, or count it; on an event loop the count is written when its interval ends."""
        limiter = self.limiter
        if limiter is None:
            limiter = self.limiter = ErrorLogLimiter(
                "connections refused with 4401",
                settings.CLIENT_ERROR_LOG_LINES,
                settings.CLIENT_ERROR_LOG_INTERVAL,
            )
        now = time.monotonic()
        for text in limiter.admit(now, line):
            logger.warning("channelbus: %s", text)
        if limiter.held and self.timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: the next refusal after the interval writes the count
            self.timer = loop.call_later(max(0.0, limiter.interval_end - now), self.summary)

    def summary(self) -> None:
        """Write the count of the lines held back, if any."""
        self.timer = None
        line = self.limiter.summary(time.monotonic()) if self.limiter is not None else None
        if line is not None:
            logger.warning("channelbus: %s", line)


_refusals = _RefusalLog()


def signed_out_refusal(scope: dict[str, Any]) -> str:
    """The close reason for a signed-out connection refused with 4401 at connect, which says which
    credential failed: "Sign in to use this connection: token expired." (or ``token invalid``, ``no
    credentials``). The refusal is logged at WARNING, with the client's address (rate limited)."""
    why = scope.get(REFUSED_TOKEN) or NO_CREDENTIALS
    client = scope.get("client") or ("an unknown address",)
    _refusals.write(f"refused a connection from {printable(client[0])} with 4401: {why}")
    return f"Sign in to use this connection: {why}."
