"""``python manage.py channelbus_publish <topic> <type> '<json payload>'``: publish from a shell."""

from __future__ import annotations

from typing import Any

import orjson
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError, CommandParser
from pydantic import ValidationError

from channelbus.messages import outgoing, validation_errors
from channelbus.protocol import SubscribeRefused
from channelbus.publishing import publish
from channelbus.topics import topic_kinds
from channelbus.transport import is_address


class Command(BaseCommand):
    """Publish one message of a registered outgoing type to a topic (or a connection address)."""

    help = 'Publish a message to a topic: channelbus_publish user:42 demo.notice \'{"text": "hi"}\''

    def add_arguments(self, parser: CommandParser) -> None:
        """``topic``, ``type`` and an optional JSON ``payload``."""
        parser.add_argument(
            "topic", help="topic name (chat.room:lobby, user:42, broadcast) or connection address"
        )
        parser.add_argument("type", help="a message type registered in the outgoing registry")
        parser.add_argument("payload", nargs="?", default="null", help="the payload as JSON (default: none)")

    def handle(self, *args: Any, **options: Any) -> None:
        """Validate the payload against the type's schema, then publish at once."""
        cls = outgoing.get(options["type"])
        if cls is None:
            known = ", ".join(sorted(outgoing)) or "none"
            raise CommandError(
                f"{options['type']!r} is not a registered outgoing message type (known: {known})."
            )
        try:
            payload = orjson.loads(options["payload"])
        except orjson.JSONDecodeError as exc:
            raise CommandError(f"The payload is not valid JSON: {exc}") from None
        try:
            message = cls(payload)
        except ValidationError as exc:
            raise CommandError(f"Invalid payload for {cls.name}: {validation_errors(exc)}") from None
        target = options["topic"]
        if not is_address(target):  # a topic: its kind must exist and its key be well formed
            try:
                target = topic_kinds.resolve(target).name  # the name subscribers use: "user:042" -> "user:42"
            except SubscribeRefused as exc:
                kinds = ", ".join(sorted(topic_kinds)) or "none"
                raise CommandError(f"Cannot publish to {target!r}: {exc} (topic kinds: {kinds}).") from None
        layer = get_channel_layer()
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            self.stderr.write(
                "Warning: the channel layer is in-memory (or none), so this process cannot reach "
                "the server's sockets. Configure channels_redis to publish from a shell."
            )
        publish(message, to=target, on_commit=False)
        self.stdout.write(f"published {cls.name} to {target}")
