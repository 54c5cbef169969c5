"""The origin check of WebSocket handshakes: ``Origin`` against ``ALLOWED_HOSTS``.

A refused socket is accepted, told why (``s.closing`` with 4403) and closed, so a client can
tell a refused origin from a network failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings as django_settings

from ..protocol import CloseCode, encode

if TYPE_CHECKING:
    from asgiref.typing import ASGI3Application, WebSocketScope

__all__ = ["BusOriginValidator"]


async def _deny_origin(scope: object, receive: Any, send: Any) -> None:
    """Accept, say why, and close with 4403, so the client can tell a refused origin apart."""
    event = await receive()
    if event["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    reason = "Origin not allowed."
    await send(
        {
            "type": "websocket.send",
            "text": encode("s.closing", {"code": CloseCode.FORBIDDEN, "reason": reason}),
        }
    )
    await send({"type": "websocket.close", "code": CloseCode.FORBIDDEN, "reason": reason})


class BusOriginValidator(OriginValidator):
    """Channels' origin check against ``ALLOWED_HOSTS``, closing refused sockets with 4403."""

    # Channels' stubs also allow an ASGI 2 application here, which Channels 4 never calls.
    application: ASGI3Application

    def __init__(self, application: Any, allowed_origins: list[str] | None = None) -> None:
        if allowed_origins is None:
            allowed_origins = list(django_settings.ALLOWED_HOSTS)
            if django_settings.DEBUG and not allowed_origins:
                allowed_origins = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, allowed_origins)

    async def __call__(self, scope: WebSocketScope, receive: Any, send: Any) -> None:
        parsed = None
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                try:
                    parsed = urlparse(value.decode("latin1"))
                except (UnicodeDecodeError, ValueError):
                    parsed = None
        if self.valid_origin(parsed):
            return await self.application(scope, receive, send)
        return await _deny_origin(scope, receive, send)
