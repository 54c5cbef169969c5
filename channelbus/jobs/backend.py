"""Django's Tasks API, wherever it lives: ``django.tasks`` on Django 6, the ``django-tasks``
backport on Django 5.2. Every job of channelbus is declared with this :func:`task`."""

from __future__ import annotations

try:  # Django >= 6.0
    from django.tasks import task
except ImportError:  # Django 5.2 with the django-tasks backport
    from django_tasks import task  # type: ignore[no-redef,unused-ignore]

__all__ = ["task"]
