"""Routing helpers, so a project's ``asgi.py`` is a few lines::

    from django.core.asgi import get_asgi_application
    django_asgi_app = get_asgi_application()

    from channelbus.routing import bus_application
    application = bus_application(django_asgi_app)

The WebSocket side is: origin check against ``ALLOWED_HOSTS`` (a foreign
``Origin`` is closed with 4403), Django session and auth middleware
(``scope["user"]``), connection tokens for clients without a session
(:mod:`channelbus.auth`), then :class:`~channelbus.consumer.BusConsumer` at the
``URL`` setting (``/ws/`` by default).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import OriginValidator
from django.conf import settings as django_settings
from django.urls import path as url_path

from .auth import TokenAuthMiddleware
from .conf import settings
from .consumer import BusConsumer
from .protocol import CloseCode, encode

__all__ = ["BusOriginValidator", "bus_application", "websocket_urlpatterns"]


def websocket_urlpatterns(url: str | None = None, consumer: type[BusConsumer] = BusConsumer) -> list[Any]:
    """URL patterns for Channels' ``URLRouter``: ``consumer`` at ``url`` (default: the ``URL`` setting)."""
    return [url_path(url if url is not None else settings.URL, consumer.as_asgi())]


async def _deny_origin(scope: dict[str, Any], receive: Any, send: Any) -> None:
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

    def __init__(self, application: Any, allowed_origins: list[str] | None = None) -> None:
        if allowed_origins is None:
            allowed_origins = list(django_settings.ALLOWED_HOSTS)
            if django_settings.DEBUG and not allowed_origins:
                allowed_origins = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, allowed_origins)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
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


def bus_application(
    http_app: Any = None,
    *,
    url: str | None = None,
    consumer: type[BusConsumer] = BusConsumer,
    extra_websocket_routes: list[Any] | None = None,
) -> ProtocolTypeRouter:
    """The project's ASGI application: Django for HTTP, channelbus for WebSockets.

    ``http_app`` is Django's ``get_asgi_application()`` (call that first, before
    importing models). ``extra_websocket_routes`` are added after channelbus's route.
    """
    routes = websocket_urlpatterns(url, consumer) + list(extra_websocket_routes or ())
    websocket = BusOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(routes))))
    mapping: dict[str, Any] = {"websocket": websocket}
    if http_app is not None:
        mapping["http"] = http_app
    return ProtocolTypeRouter(mapping)
