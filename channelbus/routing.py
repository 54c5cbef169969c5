"""Routing helpers, so a project's ``asgi.py`` is a few lines::

    from django.core.asgi import get_asgi_application
    django_asgi_app = get_asgi_application()

    from channelbus.routing import bus_application
    application = bus_application(django_asgi_app)

The WebSocket side is: origin check (the request's own origin, or the
``ALLOWED_ORIGINS`` setting; a foreign ``Origin`` is closed with 4403), Django session and auth middleware
(``scope["user"]``), connection tokens for clients without a session
(:mod:`channelbus.server.auth`), then :class:`~channelbus.server.BusConsumer` at the
``URL`` setting (``/ws/`` by default).
"""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import URLPattern
from django.urls import path as url_path

from .conf import settings
from .server import BusConsumer, BusOriginValidator, TokenAuthMiddleware

__all__ = ["BusOriginValidator", "bus_application", "websocket_urlpatterns"]


def websocket_urlpatterns(
    url: str | None = None, consumer: type[BusConsumer] = BusConsumer
) -> list[URLPattern]:
    """URL patterns for Channels' ``URLRouter``: ``consumer`` at ``url`` (default: the ``URL`` setting)."""
    # Channels routes ASGI applications with Django's path(); django-stubs types its view as a Django view.
    return [url_path(url if url is not None else settings.URL, consumer.as_asgi())]  # type: ignore[arg-type]


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
