"""Plain Django Channels: an ``AsyncJsonWebsocketConsumer`` that echoes the JSON it receives.

Routed like channelbus: ``ProtocolTypeRouter`` → ``AllowedHostsOriginValidator``
→ ``AuthMiddlewareStack`` → ``URLRouter`` at ``/ws/``, in-memory channel layer.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402


class EchoConsumer(AsyncJsonWebsocketConsumer):
    """Sends every JSON message back unchanged."""

    async def receive_json(self, content, **kwargs):
        """Echo."""
        await self.send_json(content)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/", EchoConsumer.as_asgi())]))
        ),
    }
)
