"""Plain Django Channels: a group broadcast with the usual per-subscriber encoding.

Every socket joins the group ``"all"`` on connect, except the publisher (``/ws/?pub=1``), so that
both servers deliver to exactly the M subscribers. A JSON message from the publisher is sent to
the group; each member's consumer gets the event through the channel layer and encodes the
payload itself (``send_json``). Routed like channelbus: ``AllowedHostsOriginValidator`` →
``AuthMiddlewareStack`` → ``URLRouter`` at ``/ws/``.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fanout_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "all"


class ShoutConsumer(AsyncJsonWebsocketConsumer):
    """Subscribers join ``"all"``; whatever the publisher sends goes to the whole group."""

    async def connect(self):
        """Accept; join the group unless this is the publisher."""
        if b"pub=1" not in self.scope.get("query_string", b""):
            await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        """Leave the group (the publisher never joined; discarding is harmless)."""
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs):
        """A shout from the publisher: to everyone in the group."""
        await self.channel_layer.group_send(GROUP, {"type": "shout", "payload": content})

    async def shout(self, event):
        """One member's copy of a shout, encoded for this socket."""
        await self.send_json(event["payload"])


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/", ShoutConsumer.as_asgi())]))
        ),
    }
)
