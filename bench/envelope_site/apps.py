"""Registers the benchmark's messages when Django starts (server and RQ worker alike)."""

from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The benchmark app: imports ``messages`` so that envelope's registries know ``bench.job``."""

    name = "envelope_site"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from envelope_site import messages  # noqa: F401 (registers the message classes)
