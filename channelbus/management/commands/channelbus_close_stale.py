"""``python manage.py channelbus_close_stale``: close Connection rows left open by a crashed server."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from channelbus.jobs.tracking import close_stale


class Command(BaseCommand):
    """Mark open connection rows closed (all, or those idle for ``--older-than`` seconds)."""

    help = "Close Connection rows left open by a server that stopped without closing its sockets."

    def add_arguments(self, parser: CommandParser) -> None:
        """``--older-than SECONDS`` or ``--all``."""
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--older-than", type=float, help="rows without activity for this many seconds")
        group.add_argument("--all", action="store_true", help="every open row (all servers were restarted)")

    def handle(self, *args: Any, **options: Any) -> None:
        """Close them and say how many."""
        count = close_stale(None if options["all"] else options["older_than"])
        self.stdout.write(f"closed {count} connection row(s)")
