"""Django app configuration: loads the built-in messages, then every installed app's ``messages`` module."""

from __future__ import annotations

import contextlib

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.utils.module_loading import autodiscover_modules, import_string


class ChannelbusConfig(AppConfig):
    """``channelbus`` in ``INSTALLED_APPS``."""

    name = "channelbus"
    verbose_name = "channelbus"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register built-ins, autodiscover ``<app>.messages`` and the system checks.

        Also imports what a job needs (``channelbus.jobs`` and the channel layer's backend class),
        so a worker that forks per job (RQ's ``rqworker``) imports them once, not in every fork.
        """
        from . import checks, jobs  # noqa: F401
        from .jobs import tracking  # noqa: F401
        from .messages import control, dom  # noqa: F401
        from .publishing import closing  # noqa: F401  (closes a user's sockets on sign-out, password change)
        from .topics import control as topic_control  # noqa: F401

        autodiscover_modules("topics")
        autodiscover_modules("messages")
        _import_layer_backends()


def _import_layer_backends() -> None:
    """Import each ``CHANNEL_LAYERS`` backend class without creating a layer (no connection is opened)."""
    layers = getattr(django_settings, "CHANNEL_LAYERS", None)
    if not isinstance(layers, dict):
        return
    for config in layers.values():
        backend = config.get("BACKEND") if isinstance(config, dict) else None
        if isinstance(backend, str):
            with contextlib.suppress(ImportError):  # Channels reports a wrong backend when it is used
                import_string(backend)
