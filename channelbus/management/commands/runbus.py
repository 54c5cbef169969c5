"""``python manage.py runbus``: serve the project's ASGI application (HTTP and channelbus) with uvicorn."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    """Run uvicorn on ``settings.ASGI_APPLICATION``."""

    help = "Serve the project (HTTP and the channelbus WebSocket) with uvicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        """Options: ``--host``, ``--port``, ``--reload``, ``--log-level``."""
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--reload", action="store_true", help="Restart when code changes.")
        parser.add_argument("--log-level", default="info")

    def handle(self, *args: Any, **options: Any) -> None:
        """Start uvicorn; stops on Ctrl-C."""
        try:
            import uvicorn
        except ImportError:
            raise CommandError("runbus needs uvicorn: pip install 'channelbus[server]'.") from None
        target = getattr(settings, "ASGI_APPLICATION", None)
        if not target or "." not in target:
            raise CommandError("Set ASGI_APPLICATION = 'project.asgi.application' in your settings.")
        module, _, attr = target.rpartition(".")
        self.stdout.write(f"channelbus: serving {target} on http://{options['host']}:{options['port']}/")
        uvicorn.run(
            f"{module}:{attr}",
            host=options["host"],
            port=options["port"],
            reload=options["reload"],
            log_level=options["log_level"],
            ws_max_size=max(settings_max_frame() * 2, 1 << 20),
            lifespan="off",
        )


def settings_max_frame() -> int:
    """The channelbus frame limit; the server reads frames up to twice it, so error.too_large can answer."""
    from channelbus.conf import settings as bus_settings

    return int(bus_settings.MAX_FRAME_BYTES)
