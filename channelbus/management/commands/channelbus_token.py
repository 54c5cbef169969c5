"""``python manage.py channelbus_token <username>``: a connection token for a script or a service."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from channelbus.conf import settings
from channelbus.server.auth import connection_token


class Command(BaseCommand):
    """Print a connection token for a user (the client sends it as ``Authorization: Bearer``)."""

    help = "Print a connection token that signs a WebSocket client in as this user."

    def add_arguments(self, parser: CommandParser) -> None:
        """The user's ``username`` (the model's USERNAME_FIELD)."""
        parser.add_argument("username", help="the user's username (the user model's USERNAME_FIELD)")

    def handle(self, *args: Any, **options: Any) -> None:
        """Look the user up, refuse an inactive one, print the token (stdout) and its lifetime (stderr)."""
        model = get_user_model()
        field = model.USERNAME_FIELD
        try:
            user = model._default_manager.get(**{field: options["username"]})
        except model.DoesNotExist:
            raise CommandError(f"No user with {field} {options['username']!r}.") from None
        if not getattr(user, "is_active", True):
            raise CommandError(f"User {options['username']!r} is inactive: a token would be refused.")
        self.stdout.write(connection_token(user))
        self.stderr.write(
            f"valid for {settings.TOKEN_MAX_AGE} s (CHANNELBUS['TOKEN_MAX_AGE']); send it as "
            "'Authorization: Bearer <token>'"
        )
