"""Django app configuration: loads the built-in messages, then every installed app's ``messages`` module."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class ChannelbusConfig(AppConfig):
    """``channelbus`` in ``INSTALLED_APPS``."""

    name = "channelbus"
    verbose_name = "channelbus"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register built-ins, autodiscover ``<app>.messages`` and the system checks."""
        from . import builtins, checks, dom, topic_messages  # noqa: F401

        autodiscover_modules("topics")
        autodiscover_modules("messages")
